"""The composed configs: ``RenderConfig`` is the eight parts, ``StylizeConfig`` and ``GenerateConfig`` the same with
their command's defaults; ``setting(command, key)`` finds a flat option of a command, with "did you mean"."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import UserError
from ..options import GENERATE, STYLIZE, Option, did_you_mean
from .parts import (
    PARTS,
    SETTINGS,
    ControlConfig,
    FramesConfig,
    ModelConfig,
    OutputConfig,
    PromptConfig,
    SamplingConfig,
    StyleConfig,
    TemporalConfig,
)


def _part_defaults(part: type, command: str) -> Any:
    """A part with ``command``'s defaults (most options have one default; a few differ per command)."""
    return part(**{f.name: SETTINGS[f.name].default_for(command) for f in dataclasses.fields(part)})


@dataclass(frozen=True)
class RenderConfig:
    """A render's settings as parts: ``cfg.sampling.steps``, ``cfg.temporal.blend``, ``cfg.model.model``, ...

    A part left out gets the command's defaults. Build one from flat ``name=value`` pairs (as in YAML and keyword
    arguments) with :meth:`from_options`, or with :func:`resolve`, which also reads a YAML file and validates.
    """

    command: ClassVar[str] = ""
    prompt: PromptConfig | None = None
    model: ModelConfig | None = None
    sampling: SamplingConfig | None = None
    temporal: TemporalConfig | None = None
    frames: FramesConfig | None = None
    output: OutputConfig | None = None
    control: ControlConfig | None = None
    style: StyleConfig | None = None

    def __post_init__(self) -> None:
        for name, part in PARTS.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, _part_defaults(part, self.command))

    @classmethod
    def from_options(cls, values: dict[str, Any] | None = None, source: str = "options", base=None):
        """A config from flat ``name: value`` pairs over ``base`` (default: this command's defaults); types coerced,
        unknown keys and keys of another command refused (``source`` names where they came from)."""
        base = cls() if base is None else base
        changes: dict[str, dict[str, Any]] = {}
        for key, value in (values or {}).items():
            opt = setting(cls.command, key, source)
            value = opt.coerce(value)
            opt.check(value)  # limits and choices now, where the value is given (rules between options: validate)
            changes.setdefault(opt.part, {})[opt.name] = value
        parts = {name: dataclasses.replace(getattr(base, name), **ch) for name, ch in changes.items()}
        return dataclasses.replace(base, **parts)

    @classmethod
    def make(cls, **options: Any):
        """A config from keyword options over this command's defaults: ``StylizeConfig.make(strength=0.4)``; types
        coerced, each value checked against its limits, unknown names refused (a UserError naming the option). The
        rules between options are :func:`resolve`'s (``validate``)."""
        return cls.from_options(options, f"{cls.__name__}.make()")

    def replace(self, **values: Any):
        """A copy with flat options changed: ``cfg.replace(steps=2, blend=0.3)``."""
        return self.from_options(values, base=self)

    def flat(self) -> dict[str, Any]:
        """Every setting of this command as ``{name: value}``: what a YAML file of this config would hold."""
        return {o.name: getattr(getattr(self, o.part), o.name) for o in SETTINGS.values() if self.command in o.commands}


@dataclass(frozen=True)
class StylizeConfig(RenderConfig):
    """Every setting of ``lcm-video stylize``, with stylize's defaults (``shared_noise`` 1, ``blend`` 0.5, ...)."""

    command: ClassVar[str] = STYLIZE


@dataclass(frozen=True)
class GenerateConfig(RenderConfig):
    """Every setting of ``lcm-video generate``, with generate's defaults (``shared_noise`` 0, ``fps`` 8, ...)."""

    command: ClassVar[str] = GENERATE


CONFIGS: dict[str, type[RenderConfig]] = {STYLIZE: StylizeConfig, GENERATE: GenerateConfig}


def setting(command: str, key: Any, source: str = "options") -> Option:
    """The setting ``key`` (``-`` or ``_``) of ``command``; unknown, or of the other command: a UserError with the
    closest valid key."""
    name = str(key).replace("-", "_")
    opt = SETTINGS.get(name)
    if opt is not None and command in opt.commands:
        return opt
    valid = [o.name for o in SETTINGS.values() if command in o.commands]
    if opt is not None:
        raise UserError(
            f"{opt.label} is not an option of {command} ({source}); it applies to {', '.join(opt.commands)}"
        )
    hint = did_you_mean(name, valid)
    if hint:
        raise UserError(f"unknown key {key!r} in {source}{hint}")
    raise UserError(f"unknown key {key!r} in {source}; valid keys: {', '.join(sorted(valid))}")
