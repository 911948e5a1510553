"""How an option is declared, and everything derived from a declaration: type coercion, range checks, command-line
flags, ``--help`` text, "did you mean" suggestions and the README's option tables. No torch, no I/O.

An option is declared once, as a field of a config part (``config.py``) or, for the few that are not render settings
(input and output paths, ``--config``, batch and eval options), as an :class:`Option` of its own. Its name is the
YAML key and the keyword argument; ``--name-with-dashes`` is its flag.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from .errors import UserError

STYLIZE, GENERATE, BATCH, EVAL, DISTILL = "stylize", "generate", "batch", "eval", "distill"
INFO, RERUN, UI, LIVE = "info", "rerun", "ui", "live"
RENDER = (STYLIZE, GENERATE)

KINDS = {
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "str": "text",
    "strs": "a list of text values",
    "fps": "a frame rate such as 24 or 30000/1001",
    "path": "a path",
    "text_keys": "FRAME=TEXT keys",
    "number_keys": "FRAME=NUMBER keys",
    "named": "NAME=VALUE pairs",
    "scaled": "NAME[:SCALE] values",
}


@dataclass(frozen=True)
class PairKind:
    """A kind whose value is a sorted tuple of ``(key, value)`` pairs, typed ``KEY<sep>VALUE`` (repeatable) or given
    as a YAML mapping: parsed once, when a config is made, so nothing downstream parses them again."""

    sep: str
    key: type  # int: an output frame number; str: a name
    value: type  # str or float
    example: str
    optional_value: bool = False  # ``canny`` means ``canny:1``


PAIRS: dict[str, PairKind] = {
    "text_keys": PairKind("=", int, str, "24=a fox at night"),
    "number_keys": PairKind("=", int, float, "48=0.7"),
    "named": PairKind("=", str, str, "canny=lllyasviel/control_v11p_sd15_canny"),
    "scaled": PairKind(":", str, float, "canny:0.8", optional_value=True),
}
KEYS = tuple(PAIRS)


@dataclass(frozen=True)
class Option:
    """One option: its name (YAML key, keyword argument), kind, default per command, limits and help.

    ``default`` applies to every command of ``commands`` unless ``defaults`` names another for a command. ``None``
    means "derived", and ``derived`` says from what, for all commands or per command (shown as the default in
    ``--help`` and the README).
    ``help`` is the one-line ``--help`` text; ``doc`` (default: ``help``) the README's longer explanation.
    ``part`` is the config part that holds it (``None``: not a render setting, e.g. ``--config`` or batch's
    ``--out``). ``flag`` overrides the spelling on the command line; ``short`` adds e.g. ``-p``.
    """

    name: str
    kind: str
    help: str
    default: Any = None
    commands: tuple[str, ...] = RENDER
    defaults: tuple[tuple[str, Any], ...] = ()
    derived: str | tuple[tuple[str, str], ...] | None = None
    doc: str | None = None
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hint: str = ""
    choices: tuple[str, ...] = ()
    multiple_of: int | None = None
    part: str | None = None
    flag: str | None = None
    short: str | None = None
    metavar: str | None = None
    positional: bool = False
    required: bool = False
    upload: str | None = None  # the web UI takes it as an uploaded file of this kind ("image"), not as text

    @property
    def cli(self) -> str:
        """The command-line spelling: ``max_frames`` → ``--max-frames``; ``audio`` (on by default) → ``--no-audio``."""
        if self.flag:
            return self.flag
        if self.kind == "bool" and self.default is True:
            return "--no-" + self.name.replace("_", "-")
        return "--" + self.name.replace("_", "-")

    @property
    def repeatable(self) -> bool:
        """Given once per value on the command line (``--prompt-at 0=a --prompt-at 24=b``), a line each in the UI."""
        return self.kind == "strs" or self.kind in KEYS

    @property
    def label(self) -> str:
        """How error messages name it: the flag a user would type."""
        return self.name if self.positional else "--" + self.name.replace("_", "-")

    def default_for(self, command: str) -> Any:
        return dict(self.defaults).get(command, self.default)

    def default_text(self, command: str) -> str:
        """The default as a person reads it: ``4``, ``off``, ``30000/1001``, or what a derived default comes from."""
        value = self.default_for(command)
        if value is None or (value == () and self.derived):
            derived = dict(self.derived).get(command) if isinstance(self.derived, tuple) else self.derived
            return derived or ""
        if self.kind == "bool":  # a --no-X flag is off unless given, whatever the setting's default
            return "on" if value and not self.cli.startswith("--no-") else "off"
        if self.kind == "strs":
            return ", ".join(value)
        if self.kind in KEYS:
            return ", ".join(self.format(value))
        if isinstance(value, float):
            return f"{value:g}"
        return str(value)

    def coerce(self, value: Any) -> Any:
        """A YAML / keyword / command-line value as this option's type, or a one-line UserError naming the option."""
        if value is None:
            return None
        if self.kind in KEYS:
            return self._keys(value)
        try:
            return _COERCE[self.kind](value)
        except (TypeError, ValueError, ZeroDivisionError):
            raise UserError(f"{self.label} expects {KINDS[self.kind]}, got {value!r}") from None

    def _keys(self, value: Any) -> tuple[tuple[Any, Any], ...]:
        """``"24=a fox"``, a list of such, a ``{key: value}`` mapping or ``(key, value)`` pairs → sorted pairs."""
        kind = PAIRS[self.kind]
        what = "a frame number" if kind.key is int else "a name"
        then = "a number" if kind.value is float else "the text"
        form = f"{self.metavar or 'KEY' + kind.sep + 'VALUE'}: {what}, {kind.sep!r}, then {then}, e.g. {kind.example}"
        if isinstance(value, dict):
            items = list(value.items())
        elif isinstance(value, (str, int, float)):
            items = [value]
        elif isinstance(value, (list, tuple)):
            items = list(value)
        else:
            raise UserError(f"{self.label} expects {form}, got {value!r}")
        keys: dict[Any, Any] = {}
        for item in items:
            if isinstance(item, (list, tuple)) and len(item) == 2:
                head, text = item
            elif isinstance(item, str) and kind.sep in item:
                head, text = item.split(kind.sep, 1)
            elif isinstance(item, str) and kind.optional_value:
                head, text = item, 1.0
            else:
                raise UserError(f"{self.label} {item!r} must be {form}")
            spec = f"{head}{kind.sep}{text}"
            try:
                key = _int(head.strip() if isinstance(head, str) else head) if kind.key is int else str(head).strip()
                got = _float(text) if kind.value is float else str(text).strip()
            except (TypeError, ValueError):
                raise UserError(f"{self.label} {spec!r} must be {form}") from None
            if (kind.key is int and key < 0) or key == "" or got == "":
                raise UserError(f"{self.label} {spec!r} must be {form}")
            if key in keys:
                name = f"frame {key}" if kind.key is int else repr(key)
                raise UserError(f"{self.label} gives {name} twice; give each once")
            keys[key] = got
        return tuple(sorted(keys.items()))

    def format(self, value: Any) -> tuple[str, ...]:
        """A pair kind's value as it is typed: ``((24, "a fox"),)`` → ``("24=a fox",)``; ``(("canny", 0.8),)`` →
        ``("canny:0.8",)``."""
        sep = PAIRS[self.kind].sep
        return tuple(f"{k}{sep}{v:g}" if isinstance(v, float) else f"{k}{sep}{v}" for k, v in value)

    def check(self, value: Any) -> None:
        """Range, choices and multiple-of limits; a UserError naming the option and the fix."""
        if value is None:
            return
        if self.kind in KEYS:
            sep = PAIRS[self.kind].sep
            for key, v in value:
                if self.choices and key not in self.choices:
                    raise UserError(f"{self.label}: {key!r} is not one of {', '.join(self.choices)}")
                if isinstance(v, float) and self._out_of_range(v):
                    raise UserError(f"{self.label} {key}{sep}{v:g}: the value must be {self._bound(v)}")
            return
        if self.choices and value not in self.choices:
            raise UserError(f"{self.label} must be one of {', '.join(self.choices)}, got {value!r}")
        if self.multiple_of and (value < self.multiple_of or value % self.multiple_of):
            m = self.multiple_of
            lo, hi = max(m, value // m * m), max(m, (value + m - 1) // m * m)
            raise UserError(f"{self.label} must be a positive multiple of {m}, got {value}; try {lo} or {hi}")
        if self.kind not in ("int", "float") or not self._out_of_range(value):
            return
        raise UserError(f"{self.label} must be {self._bound(value)}, got {value:g}{self.hint}")

    def _out_of_range(self, value: float) -> bool:
        too_low = self.lo is not None and (value < self.lo or (self.lo_open and value == self.lo))
        return too_low or (self.hi is not None and value > self.hi)

    def _bound(self, value: float) -> str:
        """What an out-of-range ``value`` should have been: ``in (0, 1]``, ``at least 1``, ``at most 50``."""
        if self.kind in ("float", "number_keys", "scaled") and self.lo is not None and self.hi is not None:
            return f"in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}]"
        if self.lo is not None and (value < self.lo or (self.lo_open and value == self.lo)):
            return f"> {self.lo:g}" if self.lo_open else f"at least {self.lo:g}"
        return f"at most {self.hi:g}"

    def help_text(self, command: str) -> str:
        """The ``--help`` line: the help and, where there is one, the default."""
        shown = self.default_text(command)
        if self.positional or self.required or shown == "" or self.kind == "bool":
            return self.help
        return f"{self.help} (default: {shown})"


def option(default: Any = None, help: str = "", **spec: Any) -> Any:
    """A config-part field that is also the option's declaration: ``steps: int = option(4, "…", lo=1)``.

    The kind comes from the field's type; ``spec`` takes :class:`Option`'s other attributes (``commands``,
    ``defaults`` as a dict of command → default, ``derived``, ``lo``/``hi``, ``choices``, ...).
    """
    for key in ("defaults", "derived"):  # per-command values, as a dict; stored hashable
        if isinstance(spec.get(key), dict):
            spec[key] = tuple(spec[key].items())
    meta = {"option": {"default": default, "help": help, **spec}}
    if isinstance(default, (list, tuple)):
        return field(default=tuple(default), metadata=meta)
    return field(default=default, metadata=meta)


def kind_of(annotation: Any) -> str:
    """The option kind of a field's type annotation (a string under ``from __future__ import annotations``)."""
    t = str(annotation).replace(" ", "")
    pairs = {"int,str": "text_keys", "int,float": "number_keys", "str,str": "named", "str,float": "scaled"}
    for types, kind in pairs.items():
        if t.startswith(f"tuple[tuple[{types}]"):
            return kind
    if "tuple" in t:
        return "strs"
    if "Fraction" in t:
        return "fps"
    for kind in ("bool", "int", "float"):
        if t.startswith(kind):
            return kind
    return "str"


def options_of(part: type, part_name: str) -> list[Option]:
    """The options a config-part dataclass declares, in field order."""
    out = []
    for f in dataclasses.fields(part):
        meta = dict(f.metadata["option"])
        out.append(Option(name=f.name, kind=kind_of(f.type), part=part_name, **meta))
    return out


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


def _int(value: Any) -> int:
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError
    return int(value)


def _float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError
    out = float(value)
    if not math.isfinite(out):
        raise ValueError
    return out


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).lower()
    if word in ("true", "yes", "1", "on"):
        return True
    if word in ("false", "no", "0", "off"):
        return False
    raise ValueError


def _str(value: Any) -> str:
    if isinstance(value, (dict, list, tuple)):
        raise ValueError
    return str(value)


def _strs(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float)) for v in value):
        return tuple(str(v) for v in value)
    raise ValueError


_COERCE = {
    "int": _int,
    "float": _float,
    "bool": _bool,
    "str": _str,
    "strs": _strs,
    "fps": parse_fps,
    "path": _str,
}


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """``"; did you mean --strength?"`` for a near miss among ``candidates``, else ``""``."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def markdown_table(options: Iterable[Option], command: str) -> str:
    """The README table of a command's options, one row per option: flag, default, explanation."""
    rows = ["| option | default | meaning |", "|---|---|---|"]
    for opt in options:
        if command not in opt.commands:
            continue
        spelled = opt.name.upper() if opt.positional else opt.cli
        if opt.short:
            spelled = f"{opt.short}, {spelled}"
        if opt.kind != "bool" and not opt.positional:
            spelled += f" {opt.metavar or opt.name.upper()}"
        default = "required" if opt.required or opt.positional else opt.default_text(command)
        cells = [f"`{spelled}`", default, opt.doc or opt.help]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows)
