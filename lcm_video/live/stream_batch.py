"""StreamDiffusion's stream batch over the stylise parts: with N steps, N frames are in flight, frame j of the batch
at step j, and one UNet call per input frame denoises all of them (a batch of N instead of N calls of one). Output
lags input by N - 1 frames. Everything else is the per-frame path's: keyed noise, latent blending (frame f at step k
is pulled toward frame f-1's x0 at step k, made in the previous call), flow, pixel blending, typed changes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass
class _InFlight:
    """One frame on its way: its position (blending's order), noise key, step, latents at that step's timestep, its
    schedule (a strength typed later does not change a frame already started), ε, flow, what the caller gave, and
    its residual-CFG state (``--cfg-type self``), or None."""

    position: int
    key: int
    step: int
    x: torch.Tensor
    schedule: Any
    eps: Any
    motion: Any
    tag: Any
    residual: Any = None


class StreamBatch:
    """``push(frame, position, key, tag)`` → the (uint8 (h, w, 3) frame, tag) pairs finished by this call: none
    while the first N - 1 frames fill the batch, then one a call. ``flush()`` finishes the frames still in flight."""

    def __init__(self, stylizer):
        self.st, self.sampler = stylizer, stylizer.sampler
        self.inflight: list[_InFlight] = []
        # One UNet shape for every call, the batch filling and emptying included (padded): a compiled or OpenVINO
        # UNet builds it once, and a frame's numbers do not depend on how full the batch was.
        self.sampler.denoiser.batch = len(self.sampler.schedule)

    def push(self, frame: np.ndarray, position: int, key: int, tag: Any) -> list[tuple[np.ndarray, Any]]:
        st, s = self.st, self.sampler
        at = range(position, position + 1)
        motion = st.motion.window(frame[None], at) if st.motion is not None else None
        latents = st.codec.encode_frames(frame[None])  # (1, c, h, w)
        s.begin(tuple(latents.shape[1:]))  # keyed noise, SDXL's added conditioning
        eps = s.noise.window([key], s.models.device)
        schedule = s.schedule
        x = schedule.add_noise(latents, eps[0])
        self.inflight.append(_InFlight(position, key, 0, x, schedule, eps, motion, tag, s.residual(latents)))
        return self._call()

    def flush(self) -> list[tuple[np.ndarray, Any]]:
        out = []
        while self.inflight:
            out += self._call()
        return out

    def _call(self) -> list[tuple[np.ndarray, Any]]:
        """One UNet call over every frame in flight, each at its own step; the frame at its last step is finished."""
        s, items = self.sampler, self.inflight
        x = torch.cat([it.x for it in items])
        t = torch.tensor([it.schedule.timesteps[it.step] for it in items])
        negative = None
        if items[0].residual is not None:  # residual CFG: each frame's negative branch from its own state
            negative = torch.cat([it.residual.negative(it.x, it.eps[0], it.schedule, it.step) for it in items])
        model_out = s.denoiser(x, t, [it.key for it in items], negative=negative)
        done = []
        for j, it in enumerate(items):
            # each method's own update (LCM, TCD, DDIM, Euler), as ``core.sampler.sample`` runs it
            x0, eps_hat = it.schedule.predict(model_out[j : j + 1], it.x, it.step)
            x0 = s.blender(x0, it.step, range(it.position, it.position + 1), it.motion)
            if it.residual is not None:
                it.residual.update(x0, it.step, it.x, it.schedule)
            x = it.schedule.step(x0, eps_hat, it.step, it.eps)
            if it.step == len(it.schedule) - 1:
                done.append((it, x))
            else:
                it.step += 1
                it.x = x
        s.blender.end_window()
        finished = {id(it) for it, _ in done}
        self.inflight = [it for it in items if id(it) not in finished]
        out = []
        for it, x0 in done:
            frame = self.st.codec.decode_frames(x0)
            if self.st.pixels is not None:
                frame = self.st.pixels(frame, range(it.position, it.position + 1), it.motion)
            out.append((frame[0], it.tag))
        return out
