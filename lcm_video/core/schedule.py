"""Per-step constants of an LCM run, computed once from diffusers' own ``LCMScheduler``: timesteps, ᾱ_t and the
consistency boundary scalings c_skip / c_out; forward diffusion and the consistency function that use them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from diffusers import LCMScheduler

from ..errors import UserError


def x0_from(model_out: torch.Tensor, x: torch.Tensor, a, s, prediction_type: str) -> torch.Tensor:
    """x̂0 from a model output at x = a·x0 + s·ε (a = √ᾱ, s = √(1-ᾱ), scalars or broadcastable tensors), for the
    scheduler's prediction type: ε, v or x0 itself. The sampler and consistency distillation both use it."""
    if prediction_type == "epsilon":
        return (x - s * model_out) / a
    if prediction_type == "v_prediction":
        return a * x - s * model_out
    if prediction_type == "sample":
        return model_out
    raise UserError(f"unsupported scheduler prediction_type {prediction_type!r}")


@dataclass(frozen=True)
class LCMSchedule:
    """Per-step constants of an LCM run, computed once.

    All lists have one entry per step. ``next_*`` are the re-noise coefficients toward the following timestep (unused
    after the last step).
    """

    timesteps: tuple[int, ...]
    sqrt_alpha: tuple[float, ...]
    sqrt_one_minus_alpha: tuple[float, ...]
    c_skip: tuple[float, ...]
    c_out: tuple[float, ...]
    prediction_type: str
    clip_sample: float | None

    def __len__(self) -> int:
        return len(self.timesteps)

    @classmethod
    def from_scheduler(cls, scheduler: LCMScheduler, steps: int, strength: float = 1.0) -> LCMSchedule:
        """The timesteps diffusers' LCM pipelines run for ``steps`` at ``strength``: always exactly ``steps`` of them.

        At strength 0.5 and 4 steps these are [499, 379, 259, 139].
        """
        if scheduler.config.get("thresholding", False):
            raise UserError("the model's scheduler asks for dynamic thresholding, which lcm_video does not support")
        from ..notices import library_notices_off

        with library_notices_off():  # a converted DDPM config's leftover keys ("variance_type") are not the user's
            probe = LCMScheduler.from_config(scheduler.config)
        try:
            probe.set_timesteps(steps, strength=strength)
        except ValueError:
            origin = int(probe.config.original_inference_steps * strength)
            need = steps / probe.config.original_inference_steps
            raise UserError(
                f"--steps {steps} needs more of the schedule than --strength {strength:g} leaves ({origin} points); "
                f"raise --strength to at least {need:.2f} or lower --steps"
            ) from None
        ts = [int(t) for t in probe.timesteps]
        acp = probe.alphas_cumprod.double()
        sa = [float(acp[t].sqrt()) for t in ts]
        s1 = [float((1 - acp[t]).sqrt()) for t in ts]
        scal = [probe.get_scalings_for_boundary_condition_discrete(t) for t in ts]
        clip = probe.config.clip_sample_range if probe.config.clip_sample else None
        return cls(
            tuple(ts),
            tuple(sa),
            tuple(s1),
            tuple(float(c[0]) for c in scal),
            tuple(float(c[1]) for c in scal),
            probe.config.prediction_type,
            clip,
        )

    @classmethod
    def check(cls, steps: int, strength: float) -> None:
        """Refuse a steps/strength pair that LCM's 50-point schedule cannot run, before any model is loaded."""
        cls.from_scheduler(LCMScheduler(), steps, strength)

    def add_noise(self, x: torch.Tensor, eps: torch.Tensor, step: int = 0) -> torch.Tensor:
        """Forward diffusion of clean latents ``x`` to the timestep of ``step``: √ᾱ·x + √(1-ᾱ)·ε."""
        return self.sqrt_alpha[step] * x + self.sqrt_one_minus_alpha[step] * eps

    def denoise(self, model_out: torch.Tensor, x: torch.Tensor, step: int) -> torch.Tensor:
        """The consistency function: c_out·x̂0 + c_skip·x, with x̂0 from the model's prediction type."""
        x0 = x0_from(model_out, x, self.sqrt_alpha[step], self.sqrt_one_minus_alpha[step], self.prediction_type)
        if self.clip_sample is not None:
            x0 = x0.clamp(-self.clip_sample, self.clip_sample)
        return self.c_out[step] * x0 + self.c_skip[step] * x


class WindowSchedule:
    """The constants of one window whose frames run different schedules (strength keyframes): ``LCMSchedule``'s
    interface with per-frame values, ``timesteps[i]`` a long tensor (f,) and coefficients (f, 1, 1, 1) float32
    tensors that broadcast over latents (f, c, h, w). All schedules have the same number of steps."""

    def __init__(self, schedules: Sequence[LCMSchedule]):
        first = schedules[0]
        self.prediction_type, self.clip_sample = first.prediction_type, first.clip_sample
        self.timesteps = tuple(torch.tensor([s.timesteps[i] for s in schedules]) for i in range(len(first)))

        def per_step(name: str) -> tuple[torch.Tensor, ...]:
            values = [getattr(s, name) for s in schedules]
            return tuple(torch.tensor([v[i] for v in values]).view(-1, 1, 1, 1) for i in range(len(first)))

        self.sqrt_alpha, self.sqrt_one_minus_alpha = per_step("sqrt_alpha"), per_step("sqrt_one_minus_alpha")
        self.c_skip, self.c_out = per_step("c_skip"), per_step("c_out")

    def __len__(self) -> int:
        return len(self.timesteps)

    add_noise = LCMSchedule.add_noise
    denoise = LCMSchedule.denoise


class FrameSchedules:
    """Strength keyframes: ``strength_of(frame)`` → that frame's LCM schedule (strengths rounded to 0.01, so frames
    share schedules and a constant strength gives exactly ``LCMSchedule``'s numbers). ``window(frames)`` → a
    ``WindowSchedule``."""

    def __init__(self, scheduler: LCMScheduler, steps: int, strength_of):
        self._scheduler, self._steps, self._strength_of = scheduler, steps, strength_of
        self._cache: dict[float, LCMSchedule] = {}

    def of(self, frame: int) -> LCMSchedule:
        s = round(float(self._strength_of(frame)), 2)
        if s not in self._cache:
            self._cache[s] = LCMSchedule.from_scheduler(self._scheduler, self._steps, s)
        return self._cache[s]

    def window(self, frames: Sequence[int]) -> WindowSchedule:
        return WindowSchedule([self.of(f) for f in frames])
