"""Adapters that turn a diffusers UNet into ``denoiser(x, t) -> model output`` for the sampler.

They hide everything the loop should not see: text embeddings, guidance (a w-embedding for LCM checkpoints, or
classifier-free guidance for LCM-LoRA models at guidance > 1), dtype and layout.
"""

from __future__ import annotations

import torch


class UNetDenoiser:
    """Frames as a batch through a 2D ``UNet2DConditionModel``.

    cond / uncond: (1, L, D) text states; uncond given → classifier-free guidance ``u + g·(c - u)`` in one UNet batch
    of 2f. timestep_cond: (1, E) LCM w-embedding or None. ``__call__``: x (f, c, h, w) float32 → (f, c, h, w) float32.

    ``batch``: a short window is padded to this many frames (the pad is dropped from the output). BLAS kernels round
    differently for different batch sizes (~1e-6), so one fixed shape makes identical inputs give bit-identical
    outputs wherever they fall in the video; the cost is the tail window's padding, once per video.
    """

    def __init__(
        self,
        unet,
        cond: torch.Tensor,
        uncond: torch.Tensor | None = None,
        guidance: float = 1.0,
        timestep_cond: torch.Tensor | None = None,
        batch: int | None = None,
    ):
        self.unet, self.cond, self.uncond, self.guidance, self.tcond = unet, cond, uncond, guidance, timestep_cond
        self.batch = batch
        self.dtype = unet.dtype
        self.calls = 0  # UNet forward passes, for tests of "steps are steps"

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor, t: int) -> torch.Tensor:
        n = x.shape[0]
        x = pad_batch(x, self.batch)
        f = x.shape[0]
        xin = x.to(self.dtype)
        states = self.cond.expand(f, -1, -1)
        if self.uncond is not None:
            xin = torch.cat([xin, xin])
            states = torch.cat([self.uncond.expand(f, -1, -1), states])
        tcond = None if self.tcond is None else self.tcond.expand(xin.shape[0], -1)
        timestep = torch.tensor(t, device=x.device)
        out = self.unet(xin, timestep, encoder_hidden_states=states, timestep_cond=tcond, return_dict=False)[0]
        self.calls += 1
        out = out.float()
        if self.uncond is not None:
            u, c = out.chunk(2)
            out = u + self.guidance * (c - u)
        return out[:n]


def pad_batch(x: torch.Tensor, size: int | None) -> torch.Tensor:
    """Repeat the last item of ``x`` (f, ...) until it has ``size`` items; unchanged if already that long."""
    if size is None or x.shape[0] >= size:
        return x
    return torch.cat([x, x[-1:].expand(size - x.shape[0], *x.shape[1:])])
