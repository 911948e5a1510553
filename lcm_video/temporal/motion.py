"""The source's motion as a render goes: optical flow between consecutive source frames, computed by a pool of
threads ahead of the UNet, and ``--pixel-blend``'s pull of each decoded frame toward the previous output frame.

State carried across windows is small: the last window's source frames (the next flow starts from them), their
pending flows, and the last output frame (unrounded)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from .flow import FlowEstimator, LatentMotion, fuse_frame, latent_motion

_POOL: ThreadPoolExecutor | None = None


def flow_pool() -> ThreadPoolExecutor:
    """The threads that compute optical flow ahead of the render (one per core, at most 8), made once: OpenCV's flow
    leaves Python's lock, so pairs run while the VAE encodes and the first UNet call runs."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1), thread_name_prefix="lcm-video-flow")
    return _POOL


class PendingMotion(Mapping):
    """{index: LatentMotion}, each computed in the background; ``[index]`` waits for that one."""

    def __init__(self, futures: dict[int, Future]):
        self._futures = futures

    def __getitem__(self, index: int) -> LatentMotion:
        return self._futures[index].result()

    def __iter__(self):
        return iter(self._futures)

    def __len__(self) -> int:
        return len(self._futures)


class SourceMotion:
    """Motion from each source frame's predecessor, window by window: ``window(frames, indices)`` → PendingMotion for
    every frame whose previous frame is known (this window's or the last one's). A pair's flow is computed once,
    however windows overlap. ``factor``: pixels per latent cell."""

    def __init__(self, estimator: FlowEstimator, factor: int):
        self.estimator, self.factor = estimator, factor
        self.reset()

    def reset(self) -> None:
        """Forget the previous window (a cold start: its first frame has nothing to follow)."""
        self._sources: dict[int, np.ndarray] = {}  # index → uint8 (h, w, 3) source frame, the last window's
        self._motion: dict[int, Future] = {}  # index → motion from its previous frame, the last window's

    def window(self, frames: np.ndarray, indices: range) -> PendingMotion:
        """``frames``: uint8 (f, h, w, 3) source frames at positions ``indices``."""
        current = {i: frames[j] for j, i in enumerate(indices)}
        known = {**self._sources, **current}
        out = {}
        for i in indices:
            if i in self._motion:
                out[i] = self._motion[i]
            elif i - 1 in known:
                out[i] = flow_pool().submit(latent_motion, known[i - 1], known[i], self.factor, self.estimator)
        self._sources, self._motion = current, out
        return PendingMotion(out)


class PixelBlender:
    """``--pixel-blend``: each decoded frame, in order, pulled toward the previous output frame (moved along the
    source's flow when given, else in place). The first frame after a cold start has nothing to follow. The previous
    frame is kept unrounded, so a segment that warms up converges to a continuous render's frames."""

    def __init__(self, amount: float):
        self.amount = amount
        self.reset()

    def reset(self) -> None:
        self._last: tuple[int, np.ndarray] | None = None  # (index, float32 (h, w, 3)): the last frame emitted

    def __call__(self, frames: np.ndarray, emit: range, motion: Mapping[int, LatentMotion] | None) -> np.ndarray:
        """uint8 (e, h, w, 3) decoded frames at positions ``emit`` → uint8 (e, h, w, 3) blended frames."""
        out = frames.copy()
        for j, i in enumerate(emit):
            if self._last is not None and self._last[0] == i - 1:
                follows = None if motion is None else motion[i]
                fused = fuse_frame(out[j], self._last[1], self.amount, follows)
                out[j] = np.rint(fused).clip(0, 255).astype(np.uint8)
            else:
                fused = out[j].astype(np.float32)
            self._last = (i, fused)
        return out
