"""Temporal state between frames and windows: overlap fusion and latent blending of x0 estimates, at every step.

Windows are rendered one after another. The state carried from a window to the next is the previous window's x0 at
each step (steps × window × c × h × w), so memory depends on the window and never on the video's length.
"""

from __future__ import annotations

import torch

from ..choices import FUSE
from .flow import warp_latent


def _pyramid(pos: int, size: int) -> float:
    """Weight of position ``pos`` in a window of ``size``: highest in the middle, lowest at the edges."""
    return float(min(pos + 1, size - pos))


def pull_along(x0: torch.Tensor, before: torch.Tensor, motion, beta: float) -> torch.Tensor:
    """``x0`` (c, h, w) of a frame pulled with weight ``beta`` toward ``before`` (c, h, w), the previous frame's final
    x0, moved along ``motion`` (``LatentMotion``) onto this frame: bilinear along the cell's mean flow for the share
    of its pixels that passed the checks, in place for the rest; not at all across a cut. Returns (c, h, w).

    Measured and not kept (the temporal benchmark's since-removed ``experiments`` mode, at df3a05c): sampling
    ``before`` at pixel resolution along the pixel flow and pooling back (a cell on an object's edge then takes each
    part from where it came), and leaving the occluded share unblended; neither does better under the clips' true
    motion."""
    if motion.cut:
        return x0
    share = motion.valid.to(x0.device, x0.dtype)
    target = torch.lerp(before, warp_latent(before, motion.flow), share)
    return torch.lerp(x0, target, beta)


class TemporalBlender:
    """Per step, for one window of output frames ``frames`` (consecutive indices):

    1. **overlap fusion**: a frame the previous window also rendered gets ``x0 ← (1-w)·x0_prev + w·x0`` with ``w`` the
       current window's weight (``flat`` 1/2, ``linear`` rising across the overlap, ``pyramid`` by each window's
       distance to its edge);
    2. **latent blending**: every other frame, in order, ``x0[f] ← (1-β)·x0[f] + β·x0[f-1]``, where ``x0[f-1]`` is
       already final (from this window, or from the previous one at the window's first frame). Given the frame's
       ``LatentMotion`` (``--warp flow``), the target is ``x0[f-1]`` warped along the flow onto frame f, in place (as
       without flow) for the share of each cell that is occluded; no blending across a hard cut. (Not blending
       occluded cells at all left them flickering against their blended neighbours, part of why an object crossing
       measured 1.75-2.27x the warp error of in-place blending at first, 0.59-0.68x now; BENCHMARKS.md.)

    Call with x0 (f, c, h, w) float32 once per step in step order, then ``end_window()``. With no overlap and β = 0
    this is the identity.
    """

    def __init__(self, beta: float = 0.0, fuse: str = "linear"):
        if fuse not in FUSE:
            raise ValueError(f"fuse must be one of {FUSE}")
        self.beta, self.fuse = float(beta), fuse
        self._prev: dict[int, dict[int, torch.Tensor]] = {}  # step → {frame: final x0} of the previous window
        self._prev_frames: range | None = None
        self._cur: dict[int, dict[int, torch.Tensor]] = {}
        self._cur_frames: range | None = None

    def reset(self) -> None:
        """Forget all carried state (a cold start)."""
        self._prev, self._cur, self._prev_frames, self._cur_frames = {}, {}, None, None

    def _weight(self, frame: int, j: int, n_overlap: int, size: int) -> float:
        if self.fuse == "flat":
            return 0.5
        if self.fuse == "linear":
            return (j + 1) / (n_overlap + 1)
        prev = self._prev_frames
        wp = _pyramid(frame - prev.start, len(prev))
        wc = _pyramid(j, size)
        return wc / (wc + wp)

    def __call__(self, x0: torch.Tensor, step: int, frames: range, motion: dict | None = None) -> torch.Tensor:
        """``motion``: {frame: LatentMotion from the previous frame}, for motion-compensated blending; None blends
        in place."""
        if len(frames) != x0.shape[0]:
            raise ValueError("one index per frame of x0 expected")
        prev = self._prev.get(step, {})
        out = list(x0.unbind(0))
        shared = [j for j, f in enumerate(frames) if f in prev]
        for j in shared:
            out[j] = torch.lerp(prev[frames[j]], out[j], self._weight(frames[j], j, len(shared), len(frames)))
        if self.beta > 0.0:
            for j, f in enumerate(frames):
                if f in prev:
                    continue  # already pulled toward the previous window, which was blended
                before = out[j - 1] if j > 0 else prev.get(f - 1)
                if before is None:
                    continue
                if motion is None:
                    out[j] = torch.lerp(out[j], before, self.beta)
                    continue
                out[j] = pull_along(out[j], before, motion[f], self.beta)
        self._cur[step] = {f: t.detach() for f, t in zip(frames, out, strict=True)}
        self._cur_frames = frames
        return torch.stack(out)

    @property
    def carried(self) -> dict[int, int]:
        """{step: frames of x0 kept for the next window}: the whole state carried between windows."""
        return {step: len(frames) for step, frames in self._prev.items()}

    def end_window(self) -> None:
        """Commit this window's x0 as the previous window of the next."""
        self._prev, self._prev_frames = self._cur, self._cur_frames
        self._cur, self._cur_frames = {}, None
