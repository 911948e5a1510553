"""The few-step sampler as a plain loop over tensors, with its noise given as input.

The constants come from diffusers' own schedulers (``core.schedule``); only the loop is ours, because their ``step``
methods draw re-noise from a generator per call, which can neither be shared between frames nor made independent of
how a video is cut into windows. Each method's update (LCM, TCD, DDIM, Euler) is its schedule's ``step``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .schedule import LCMSchedule, StepSchedule

Denoiser = Callable[[torch.Tensor, int], torch.Tensor]
"""``denoiser(x, t) -> model output``: x (f, c, h, w) float32 noisy latents at integer timestep t; output same shape."""

Blend = Callable[[torch.Tensor, int], torch.Tensor]
"""``blend(x0, step) -> x0``: (f, c, h, w) float32 denoised latents of one window at sampler step ``step``."""


def sample(
    denoiser: Denoiser,
    x: torch.Tensor,
    schedule: LCMSchedule | StepSchedule,
    noise: Sequence[torch.Tensor],
    blend: Blend | None = None,
) -> torch.Tensor:
    """Few-step sampling with optional latent blending: at each step the model's x̂0 (blended), then the method's
    update (LCM: Luo et al. 2023, Algorithm 3; TCD, DDIM, Euler: ``StepSchedule``).

    x: (f, c, h, w) float32 latents already noised to ``schedule.timesteps[0]``; ``noise[k]`` (same shape) is the ε
    of step k's re-noise, read only by methods that re-noise (``noise[0]`` is the caller's initial ε and is not read
    here). Returns the final latents, (f, c, h, w) float32.
    """
    for i, t in enumerate(schedule.timesteps):
        x0, eps = schedule.predict(denoiser(x, t), x, i)
        if blend is not None:
            x0 = blend(x0, i)
        x = schedule.step(x0, eps, i, noise)
    return x
