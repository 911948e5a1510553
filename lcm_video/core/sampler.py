"""The few-step sampler as a plain loop over tensors, with its noise given as input.

The constants come from diffusers' own schedulers (``core.schedule``); only the loop is ours, because their ``step``
methods draw re-noise from a generator per call, which can neither be shared between frames nor made independent of
how a video is cut into windows. Each method's update (LCM, TCD, DDIM, Euler) is its schedule's ``step``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .schedule import LCMSchedule, StepSchedule, output_from

Denoiser = Callable[[torch.Tensor, int], torch.Tensor]
"""``denoiser(x, t) -> model output``: x (f, c, h, w) float32 noisy latents at integer timestep t; output same shape."""

Blend = Callable[[torch.Tensor, int], torch.Tensor]
"""``blend(x0, step) -> x0``: (f, c, h, w) float32 denoised latents of one window at sampler step ``step``."""


@dataclass
class Residual:
    """StreamDiffusion's residual classifier-free guidance (Kodaira et al. 2023, §3.3) for one batch of frames: the
    negative branch's ε at step i is the *virtual residual noise* of the latents x_i against a reference x̂0,
    ``(x_i - √ᾱ_i·x̂0_ref) / √(1-ᾱ_i)``, times ``delta``, instead of a UNet pass on the negative prompt.

    ``mode`` ``self`` (self-negative): the reference is the source's clean latents ``ref`` (f, c, h, w) at every step
    (at step 0 the residual is exactly the initial ε; later it also holds how far the picture has moved from the
    source, which guidance then pushes further), so no negative pass runs at all; text-to-video has no source, and
    there the reference is the x̂0 the step's latents were made from. ``initialize`` (onetime-negative): one real
    negative pass at step 0, whose x̂0 is the reference at every later step; ``denoiser`` (the ``UNetDenoiser``)
    keeps that pass's output as ``last_uncond``."""

    mode: str
    delta: float = 1.0
    denoiser: object = None
    ref: torch.Tensor | None = None

    def __post_init__(self):
        self._follow = self.mode == "self" and self.ref is None  # no source: follow each step's x̂0

    def negative(self, x: torch.Tensor, noise0: torch.Tensor, schedule, i: int) -> torch.Tensor | None:
        """The negative branch's model output at step ``i`` for latents x (f, c, h, w), or None where a real pass
        runs (``initialize`` at step 0). ``noise0``: the initial ε (x at step 0 is the source noised by it)."""
        if self.mode == "initialize" and i == 0:
            return None
        a, s = schedule.sqrt_alpha[i], schedule.sqrt_one_minus_alpha[i]
        eps = noise0 if self.ref is None else (x - a * self.ref) / s
        return output_from(self.delta * eps, x, a, s, schedule.prediction_type)

    def update(self, x0: torch.Tensor, i: int, x: torch.Tensor, schedule) -> None:
        """After step i at latents x: ``x0`` (f, c, h, w) is the blended x̂0 the next latents are made from."""
        if self._follow:
            self.ref = x0
        elif self.mode == "initialize" and i == 0:  # the real negative pass's x̂0
            self.ref = schedule.predict(self.denoiser.last_uncond, x, 0)[0]


def sample(
    denoiser: Denoiser,
    x: torch.Tensor,
    schedule: LCMSchedule | StepSchedule,
    noise: Sequence[torch.Tensor],
    blend: Blend | None = None,
    residual: Residual | None = None,
) -> torch.Tensor:
    """Few-step sampling with optional latent blending: at each step the model's x̂0 (blended), then the method's
    update (LCM: Luo et al. 2023, Algorithm 3; TCD, DDIM, Euler: ``StepSchedule``).

    x: (f, c, h, w) float32 latents already noised to ``schedule.timesteps[0]``; ``noise[k]`` (same shape) is the ε
    of step k's re-noise, read only by methods that re-noise (``noise[0]`` is the caller's initial ε, read only by
    ``residual``). ``residual``: residual CFG (the denoiser then takes ``negative=``, the negative branch's output).
    Returns the final latents, (f, c, h, w) float32.
    """
    for i, t in enumerate(schedule.timesteps):
        if residual is None:
            out = denoiser(x, t)
        else:
            out = denoiser(x, t, negative=residual.negative(x, noise[0], schedule, i))
        x0, eps = schedule.predict(out, x, i)
        if blend is not None:
            x0 = blend(x0, i)
        if residual is not None:
            residual.update(x0, i, x, schedule)
        x = schedule.step(x0, eps, i, noise)
    return x
