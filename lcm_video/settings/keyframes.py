"""Keyframed settings (``--prompt-at`` / ``--strength-at``): their option kinds parse ``FRAME=VALUE`` once, into
sorted ``(frame, value)`` pairs (``options.Option``); here the pairs become the map a render reads, checked against
the output's frame count once that is known."""

from __future__ import annotations

from typing import Any

from ..errors import UserError


def keyframe_map(flag: str, keys: tuple[tuple[int, Any], ...], frames: int | None, first: Any) -> dict[int, Any]:
    """Sorted ``(frame, value)`` pairs of ``flag`` → {frame: value}, frame 0 defaulting to ``first`` (``--prompt`` or
    ``--strength``). ``frames``: the output's frame count, or None where it is not known yet (a stylise before its
    source is probed); a key past the last frame is a UserError."""
    out: dict[int, Any] = {}
    for frame, value in keys:
        if frames is not None and frame >= frames:
            raise UserError(f"{flag} {frame}=…: frame {frame} is past the output's last frame ({frames - 1})")
        out[frame] = value
    out.setdefault(0, first)
    return dict(sorted(out.items()))
