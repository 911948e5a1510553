"""Keyframed settings: ``--prompt-at`` / ``--strength-at`` specs (``FRAME=VALUE``) parsed into a map, and the one
interpolator between keys (linear in between, held before the first key and after the last), for numbers and for
text states alike."""

from __future__ import annotations

from ..errors import UserError


def _keyframes(flag: str, specs: tuple[str, ...], frames: int | None, first, value, form: str) -> dict:
    """``FRAME=VALUE`` specs of ``flag`` → {frame: value(text)} sorted, frame 0 defaulting to ``first``. ``value``
    turns the text after ``=`` into the key's value, or None when it is not one (``form`` says what is wanted).
    ``frames``: the output's frame count, or None where it is not known yet (a stylise before its source is probed)."""
    keys: dict = {}
    for spec in specs:
        head, sep, text = spec.partition("=")
        got = value(text) if sep else None
        if got is None or not head.strip().isdigit():
            raise UserError(f"{flag} {spec!r} must be {form}")
        frame = int(head)
        if frames is not None and frame >= frames:
            raise UserError(f"{flag} {spec!r}: frame {frame} is past the output's last frame ({frames - 1})")
        if frame in keys:
            raise UserError(f"{flag} gives frame {frame} twice; give each frame once")
        keys[frame] = got
    keys.setdefault(0, first)
    return dict(sorted(keys.items()))


def parse_prompt_at(specs: tuple[str, ...], frames: int | None, prompt: str) -> dict[int, str]:
    """``("0=a fox", "24=a fox at night")`` → {0: ..., 24: ...}; frame 0 defaults to ``prompt``."""
    form = "FRAME=TEXT with a frame number, e.g. 24='a fox at night'"
    return _keyframes("--prompt-at", specs, frames, prompt, lambda t: t.strip() or None, form)


def parse_strength_at(specs: tuple[str, ...], frames: int | None, strength: float) -> dict[int, float]:
    """``("0=0.3", "48=0.7")`` → {0: 0.3, 48: 0.7}; frame 0 defaults to ``strength``."""

    def value(text: str) -> float | None:
        try:
            s = float(text)
        except ValueError:
            return None
        return s if 0 < s <= 1 else None

    return _keyframes("--strength-at", specs, frames, strength, value, "FRAME=S with S in (0, 1], e.g. 48=0.7")
