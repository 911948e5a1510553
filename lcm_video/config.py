"""Typed, frozen settings for a render, loaded from YAML and the command line and validated in one place."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from fractions import Fraction
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError

DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float32", "float16", "bfloat16")
RENOISE = ("fresh", "initial")
FUSE = ("flat", "linear", "pyramid")
DEFAULT_WINDOW = 16  # frames per 2D UNet batch: 12 frames at batch 12 run 7% faster per frame than 2 x 6 on CPU


@dataclass(frozen=True)
class StylizeConfig:
    """Every option of ``lcm-video stylize``; YAML keys and keyword arguments use these names.

    ``None`` means "derive it": ``guidance`` from the model preset, ``width``/``height`` from the source (aspect kept,
    longer side at most 768, multiples of 8), ``end`` the end of the video, ``fps`` the source's exact rate,
    ``window`` 16.
    ``skip_similar`` > 0 turns on the similarity filter (a quality trade-off, off by default): a source frame whose
    mean absolute difference from the last rendered one is at most this many 8-bit levels (on a 64-pixel thumbnail)
    repeats that frame's output, at most ``skip_max`` times in a row.
    ``motion_adapter`` switches to motion-aware windows of ``context`` frames (default 16) sharing ``overlap``
    (default 4), fused with ``fuse`` weights; without it those three do not apply.
    """

    prompt: str = ""
    model: str = "lcm-dreamshaper-v7"
    lora: tuple[str, ...] = ()
    vae: str | None = None
    fast: bool = False
    steps: int = 4
    strength: float = 0.5
    guidance: float | None = None
    negative_prompt: str = ""
    seed: int = 0
    width: int | None = None
    height: int | None = None
    start: float = 0.0
    end: float | None = None
    max_frames: int | None = None
    fps: Fraction | None = None
    shared_noise: float = 1.0
    blend: float = 0.2
    renoise: str = "fresh"
    skip_similar: float = 0.0
    skip_max: int = 10
    window: int | None = None
    motion_adapter: str | None = None
    context: int | None = None
    overlap: int | None = None
    fuse: str = "linear"
    device: str = "auto"
    dtype: str = "auto"
    compile: bool = False
    crf: int = 18
    codec: str = "libx264"
    preset: str = "medium"
    audio: bool = True
    metrics: bool = False
    quiet: bool = False

    def replace(self, **changes: Any) -> StylizeConfig:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class GenerateConfig:
    """Every option of ``lcm-video generate``.

    ``None`` means "derive it": ``model`` from the motion preset (the tiny model for ``motion_adapter: tiny``),
    ``motion_adapter`` ``tiny`` for tiny models else ``animatelcm``, ``guidance`` from the presets, ``width``/
    ``height`` 512 (64 for tiny models), ``context`` 16 (the motion module's training length).
    ``prompt_at``: ``"FRAME=TEXT"`` keyframes; the prompt of frame 0 is ``prompt`` unless a key sets it.
    """

    prompt: str = ""
    model: str | None = None
    motion_adapter: str | None = None
    lora: tuple[str, ...] = ()
    vae: str | None = None
    fast: bool = False
    frames: int = 16
    fps: Fraction = Fraction(8)
    width: int | None = None
    height: int | None = None
    steps: int = 4
    guidance: float | None = None
    negative_prompt: str = ""
    seed: int = 0
    context: int | None = None
    overlap: int = 4
    fuse: str = "linear"
    shared_noise: float = 0.0
    blend: float = 0.0
    renoise: str = "fresh"
    prompt_at: tuple[str, ...] = ()
    device: str = "auto"
    dtype: str = "auto"
    compile: bool = False
    crf: int = 18
    codec: str = "libx264"
    preset: str = "medium"
    metrics: bool = False
    quiet: bool = False

    def replace(self, **changes: Any) -> GenerateConfig:
        return dataclasses.replace(self, **changes)


def option_names(cls: type = StylizeConfig) -> list[str]:
    return [f.name for f in fields(cls)]


def flag(name: str) -> str:
    """The command-line spelling of a config key: ``max_frames`` → ``--max-frames``."""
    return "--" + name.replace("_", "-")


def parse_fps(value: Any) -> Fraction:
    """``30``, ``29.97``, ``"30000/1001"`` → an exact positive Fraction.

    A decimal within 0.005 of an NTSC rate (N·1000/1001) means that rate, as it does to every video tool: 29.97 is
    30000/1001, not 2997/100.
    """
    try:
        frac = Fraction(str(value).strip())
    except (ValueError, ZeroDivisionError):
        raise UserError(f"--fps {value!r} is not a number; give e.g. 24, 29.97 or 30000/1001") from None
    if frac <= 0:
        raise UserError(f"--fps must be positive, got {value}; give e.g. 24 or 30000/1001")
    if frac.denominator != 1 and "/" not in str(value):
        ntsc = Fraction(round(frac * Fraction(1001, 1000)) * 1000, 1001)
        if abs(frac - ntsc) < Fraction(5, 1000):
            return ntsc
    return frac


def _coerce(name: str, value: Any, kind: str) -> Any:
    """Turn a YAML / keyword value into the field's type, or raise a one-line UserError naming the option."""
    opt = flag(name)
    if value is None:
        return None
    try:
        if kind == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError
            out = float(value)
            if not math.isfinite(out):
                raise ValueError
            return out
        if kind == "bool":
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "yes", "1", "on"):
                return True
            if str(value).lower() in ("false", "no", "0", "off"):
                return False
            raise ValueError
        if kind == "str":
            if isinstance(value, (dict, list)):
                raise ValueError
            return str(value)
        if kind == "strs":
            if isinstance(value, str):
                return (value,)
            if isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float)) for v in value):
                return tuple(str(v) for v in value)
            raise ValueError
        if kind == "fps":
            return parse_fps(value)
    except (TypeError, ValueError):
        raise UserError(f"{opt} expects {_KIND_WORDS[kind]}, got {value!r}") from None
    raise AssertionError(kind)


_KIND_WORDS = {
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "str": "text",
    "strs": "a list of text values",
    "fps": "a frame rate such as 24 or 30000/1001",
}


def _kind_of(f: dataclasses.Field) -> str:
    t = str(f.type)
    if "tuple" in t:
        return "strs"
    if "Fraction" in t:
        return "fps"
    if t.startswith("bool"):
        return "bool"
    if t.startswith("int"):
        return "int"
    if t.startswith("float"):
        return "float"
    return "str"


def make_config(cls: type = StylizeConfig, values: dict[str, Any] | None = None, source: str = "options"):
    """Build a config from a flat mapping, refusing unknown keys and coercing types.

    Keys may use ``-`` or ``_``. ``source`` names where the values came from, for the error message.
    """
    values = dict(values or {})
    by_name = {f.name: f for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        name = str(key).replace("-", "_")
        if name not in by_name:
            valid = ", ".join(sorted(by_name))
            raise UserError(f"unknown key {key!r} in {source}; valid keys: {valid}")
        kwargs[name] = _coerce(name, value, _kind_of(by_name[name]))
    return cls(**kwargs)


def config_from(cls: type, config, prompt: str | None, options: dict[str, Any], source: str):
    """A ``cls`` config from an existing config object, a prompt and keyword options (later wins), types checked."""
    values = {} if config is None else {f.name: getattr(config, f.name) for f in fields(config)}
    if prompt is not None:
        values["prompt"] = prompt
    values.update(options)
    return make_config(cls, values, source)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping with the safe loader; any Python object tag is refused."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"config file {str(p)!r} not found; check the path given to --config")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"config file {str(p)!r} is not plain YAML{line}: {problem}") from None
    except UnicodeDecodeError:
        raise UserError(f"config file {str(p)!r} is not UTF-8 text") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {str(p)!r} must hold a mapping of option: value, not {type(data).__name__}")
    return data


def merge(cls: type, *layers: dict[str, Any], sources: tuple[str, ...] = ()):
    """Later layers win; each layer is validated for unknown keys with its own source name."""
    merged: dict[str, Any] = {}
    for i, layer in enumerate(layers):
        src = sources[i] if i < len(sources) else "options"
        make_config(cls, layer, src)  # unknown keys and types are reported against the layer that has them
        merged.update({str(k).replace("-", "_"): v for k, v in layer.items()})
    return make_config(cls, merged)


def parse_prompt_at(specs: tuple[str, ...], frames: int, prompt: str) -> dict[int, str]:
    """``("0=a fox", "24=a fox at night")`` → {0: ..., 24: ...}; frame 0 defaults to ``prompt``."""
    keys: dict[int, str] = {}
    for spec in specs:
        head, sep, text = spec.partition("=")
        if not sep or not head.strip().isdigit() or not text.strip():
            raise UserError(f"--prompt-at {spec!r} must be FRAME=TEXT with a frame number, e.g. 24='a fox at night'")
        frame = int(head)
        if frame >= frames:
            raise UserError(f"--prompt-at {spec!r}: frame {frame} is past the clip's last frame ({frames - 1})")
        if frame in keys:
            raise UserError(f"--prompt-at gives frame {frame} twice; give each frame once")
        keys[frame] = text.strip()
    keys.setdefault(0, prompt)
    return dict(sorted(keys.items()))


def _check_range(name: str, value: float | None, lo: float, hi: float, lo_open=False, hint: str = "") -> None:
    if value is None:
        return
    bad = value < lo or value > hi or (lo_open and value == lo)
    if bad:
        lo_b = "(" if lo_open else "["
        raise UserError(f"{flag(name)} must be in {lo_b}{lo:g}, {hi:g}], got {value:g}{hint}")


def _validate_common(cfg) -> None:
    """Checks for the options stylize and generate share."""
    if cfg.steps < 1:
        raise UserError(f"--steps must be at least 1, got {cfg.steps}; LCM models work best with 2-8")
    if cfg.steps > 50:
        raise UserError(f"--steps {cfg.steps} is more than the LCM schedule's 50 points; use 1-8")
    if cfg.guidance is not None and cfg.guidance < 0:
        raise UserError(f"--guidance must be >= 0, got {cfg.guidance:g}")
    if cfg.seed < 0:
        raise UserError(f"--seed must be >= 0, got {cfg.seed}")
    for name in ("width", "height"):
        v = getattr(cfg, name)
        if v is not None and (v < 8 or v % 8):
            lo, hi = max(8, v // 8 * 8), max(8, (v + 7) // 8 * 8)
            raise UserError(f"{flag(name)} must be a positive multiple of 8, got {v}; try {lo} or {hi}")
    _check_range("shared_noise", cfg.shared_noise, 0.0, 1.0)
    _check_range("blend", cfg.blend, 0.0, 1.0, hint="; 0 turns blending off, 0.1-0.5 is typical")
    if cfg.renoise not in RENOISE:
        raise UserError(f"--renoise must be one of {', '.join(RENOISE)}, got {cfg.renoise!r}")
    if cfg.fuse not in FUSE:
        raise UserError(f"--fuse must be one of {', '.join(FUSE)}, got {cfg.fuse!r}")
    if cfg.context is not None and cfg.context < 2:
        raise UserError(f"--context must be at least 2 frames, got {cfg.context}; motion modules are trained on 16")
    if cfg.overlap is not None and cfg.overlap < 0:
        raise UserError(f"--overlap must be >= 0, got {cfg.overlap}")
    if cfg.overlap is not None and cfg.context is not None and cfg.overlap >= cfg.context:
        raise UserError(f"--overlap ({cfg.overlap}) must be smaller than --context ({cfg.context})")
    if cfg.device not in DEVICES and not cfg.device.startswith(("cuda:", "mps:")):
        raise UserError(f"--device must be one of {', '.join(DEVICES)} or cuda:N, got {cfg.device!r}")
    if cfg.dtype not in DTYPES:
        raise UserError(f"--dtype must be one of {', '.join(DTYPES)}, got {cfg.dtype!r}")
    if not 0 <= cfg.crf <= 63:
        raise UserError(f"--crf must be in [0, 63] (lower is better quality; 18 is near lossless), got {cfg.crf}")
    if cfg.fast and cfg.vae:
        raise UserError("--fast swaps the VAE for TAESD; it cannot be combined with --vae (pick one)")
    if cfg.model is not None and not cfg.model:
        raise UserError("--model is empty; give a preset name (see `lcm-video models`), hub id or path")


def validate(cfg: StylizeConfig) -> StylizeConfig:
    """Check every stylize value; raise a UserError naming the option and the fix. Returns ``cfg``."""
    _validate_common(cfg)
    _check_range("strength", cfg.strength, 0.0, 1.0, lo_open=True, hint="; 0.3-0.7 keeps the source's layout")
    if cfg.start < 0:
        raise UserError(f"--start must be >= 0 seconds, got {cfg.start:g}")
    if cfg.end is not None and cfg.end <= cfg.start:
        raise UserError(f"--end ({cfg.end:g} s) must be after --start ({cfg.start:g} s)")
    if cfg.max_frames is not None and cfg.max_frames < 1:
        raise UserError(f"--max-frames must be at least 1, got {cfg.max_frames}")
    _check_range("skip_similar", cfg.skip_similar, 0.0, 255.0, hint="; 0 turns the filter off, 1-3 is typical")
    if cfg.skip_max < 1:
        raise UserError(f"--skip-max must be at least 1 frame, got {cfg.skip_max}")
    if cfg.window is not None and cfg.window < 1:
        raise UserError(f"--window must be at least 1 frame, got {cfg.window}")
    if cfg.motion_adapter is not None and cfg.window is not None:
        raise UserError("--window is for the 2D UNet; with --motion-adapter the window is --context")
    if cfg.motion_adapter is None:
        for name in ("context", "overlap"):
            if getattr(cfg, name) is not None:
                raise UserError(f"{flag(name)} applies to motion-aware stylise only; add --motion-adapter or drop it")
    return cfg


def validate_generate(cfg: GenerateConfig) -> GenerateConfig:
    """Check every generate value; raise a UserError naming the option and the fix. Returns ``cfg``."""
    _validate_common(cfg)
    if cfg.frames < 1:
        raise UserError(f"--frames must be at least 1, got {cfg.frames}")
    if cfg.frames > 100_000:
        raise UserError(f"--frames {cfg.frames} is more than 100000; render in parts")
    parse_prompt_at(cfg.prompt_at, cfg.frames, cfg.prompt)
    return cfg
