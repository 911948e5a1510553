"""Latent blending: pull each frame's x0 estimate toward its predecessor's at the same step.

The state carried from one window to the next is the blended x0 of the last frame at each step (steps × c × h × w),
so the result does not depend on the window size.
"""

from __future__ import annotations

import torch


class LatentBlender:
    """``x0[f] ← (1-β)·x0[f] + β·x0[f-1]`` applied in frame order, where ``x0[f-1]`` is already blended.

    Call once per sampler step with the window's x0 (f, c, h, w) float32, in step order; then ``end_window()``
    before the next window. ``reset()`` forgets the carried state (a cold start).
    """

    def __init__(self, beta: float):
        self.beta = float(beta)
        self._carry: dict[int, torch.Tensor] = {}  # step → blended x0 of the previous window's last frame
        self._next: dict[int, torch.Tensor] = {}

    def reset(self) -> None:
        self._carry.clear()
        self._next.clear()

    def __call__(self, x0: torch.Tensor, step: int) -> torch.Tensor:
        if self.beta <= 0.0:
            return x0
        frames = list(x0.unbind(0))
        prev = self._carry.get(step)
        for f in range(len(frames)):
            if prev is not None:
                frames[f] = torch.lerp(frames[f], prev, self.beta)
            prev = frames[f]
        self._next[step] = prev.detach().clone()
        return torch.stack(frames)

    def end_window(self) -> None:
        """Commit this window's last-frame x0 as the predecessor of the next window's first frame."""
        self._carry, self._next = self._next, {}

    def state(self) -> dict[int, torch.Tensor]:
        """The carried per-step x0 of the last rendered frame (for tests and resume)."""
        return dict(self._carry)
