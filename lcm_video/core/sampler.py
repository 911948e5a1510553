"""The multistep LCM sampler as a plain loop over tensors, with its noise given as input.

The constants (``LCMSchedule``) come from diffusers' own ``LCMScheduler``; only the loop is ours, because
``LCMScheduler.step`` draws its re-noise from a generator per call, which can neither be shared between frames nor
made independent of how a video is cut into windows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .schedule import LCMSchedule

Denoiser = Callable[[torch.Tensor, int], torch.Tensor]
"""``denoiser(x, t) -> model output``: x (f, c, h, w) float32 noisy latents at integer timestep t; output same shape."""

Blend = Callable[[torch.Tensor, int], torch.Tensor]
"""``blend(x0, step) -> x0``: (f, c, h, w) float32 denoised latents of one window at sampler step ``step``."""


def sample(
    denoiser: Denoiser,
    x: torch.Tensor,
    schedule: LCMSchedule,
    noise: Sequence[torch.Tensor],
    blend: Blend | None = None,
) -> torch.Tensor:
    """Multistep latent consistency sampling (Luo et al. 2023, Algorithm 3) with optional latent blending.

    x: (f, c, h, w) float32 latents already noised to ``schedule.timesteps[0]``; ``noise[k]`` (same shape) is the ε
    that re-noises the step-(k-1) estimate to timestep k, for k = 1 … len(schedule)-1 (``noise[0]`` is the caller's
    initial ε and is not read here). Returns the final x0 estimate, (f, c, h, w) float32.
    """
    n = len(schedule)
    for i, t in enumerate(schedule.timesteps):
        x0 = schedule.denoise(denoiser(x, t), x, i)
        if blend is not None:
            x0 = blend(x0, i)
        if i == n - 1:
            return x0
        x = schedule.add_noise(x0, noise[i + 1], i + 1)
    raise AssertionError("empty schedule")
