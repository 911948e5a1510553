"""Values keyed on output frames, and the one interpolator between keys: linear in between, held before the first
key and after the last. Prompts (their text states) and strengths are keyframed this way. No torch."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")


class Keyframes(Generic[T]):
    """``{frame: value}`` keys. ``span(frame)`` → (lower key, upper key, weight of the upper) for any interpolation
    (``torch.lerp`` of text states); ``number(frame)`` → the interpolated value of numeric keys."""

    def __init__(self, keys: Mapping[int, T]):
        if not keys:
            raise ValueError("at least one keyframe is needed")
        self.frames = sorted(keys)
        self.keys = {f: keys[f] for f in self.frames}

    def span(self, frame: int) -> tuple[int, int, float]:
        first, last = self.frames[0], self.frames[-1]
        if frame <= first:
            return first, first, 0.0
        if frame >= last:
            return last, last, 0.0
        hi = next(k for k in self.frames if k >= frame)
        lo = max(k for k in self.frames if k <= frame)
        return lo, hi, 0.0 if hi == lo else (frame - lo) / (hi - lo)

    def number(self, frame: int) -> float:
        # np.interp rather than span's weight: the same figures as before the two were one class (strength keys)
        return float(np.interp(frame, self.frames, [float(self.keys[f]) for f in self.frames]))

    def __call__(self, frame: int) -> float:
        return self.number(frame)

    def __len__(self) -> int:
        return len(self.frames)
