"""Per-step constants of a few-step method, computed once from diffusers' own scheduler, and each method's update.

``LCMSchedule`` (``LCMScheduler``: timesteps, ᾱ_t, the consistency boundary scalings c_skip / c_out) and
``StepSchedule`` (TCD, DDIM and Euler with trailing timesteps) share one interface, which ``core.sampler.sample``
calls: ``predict`` (model output → x̂0, ε̂), ``step`` (x̂0, ε̂ and the keyed noise → the next latents, or the result
after the last step), ``add_noise`` and ``start`` (where img2img and text-to-video begin). ``make_schedule`` builds
either by method name."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from diffusers import DDIMScheduler, EulerDiscreteScheduler, LCMScheduler, TCDScheduler

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


def output_from(eps: torch.Tensor, x: torch.Tensor, a, s, prediction_type: str) -> torch.Tensor:
    """The model output that means noise ``eps`` at x = a·x0 + s·ε (``x0_from``'s inverse): ε itself, v = a·ε - s·x̂0,
    or x̂0 = (x - s·ε)/a."""
    if prediction_type == "epsilon":
        return eps
    x0 = (x - s * eps) / a
    if prediction_type == "v_prediction":
        return a * eps - s * x0
    if prediction_type == "sample":
        return x0
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

    def predict(self, model_out: torch.Tensor, x: torch.Tensor, step: int) -> tuple[torch.Tensor, None]:
        """(the consistency function's x0, no ε̂: LCM's update does not use one)."""
        return self.denoise(model_out, x, step), None

    def step(self, x0: torch.Tensor, eps, step: int, noise) -> torch.Tensor:
        """LCM's update (Algorithm 3): re-noise x0 to the next timestep with that step's keyed ε; x0 after the last."""
        return x0 if step == len(self) - 1 else self.add_noise(x0, noise[step + 1], step + 1)

    def start(self, eps: torch.Tensor) -> torch.Tensor:
        """Text-to-video's first latents: ε itself (diffusers' LCM pipelines start from unscaled noise)."""
        return eps


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
    predict = LCMSchedule.predict
    step = LCMSchedule.step
    start = LCMSchedule.start


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


def eps_from(model_out: torch.Tensor, x: torch.Tensor, x0: torch.Tensor, a, s, prediction_type: str) -> torch.Tensor:
    """ε̂ from a model output at x = a·x0 + s·ε, as diffusers' DDIM and TCD steps take it: the output itself for ε
    models, from x̂0 (the unclipped one) for x0 models, a·v + s·x for v models."""
    if prediction_type == "epsilon":
        return model_out
    if prediction_type == "v_prediction":
        return a * model_out + s * x
    return (x - a * x0) / s


METHODS: dict[str, type] = {
    "lcm": LCMScheduler,
    "tcd": TCDScheduler,
    "ddim-trailing": DDIMScheduler,
    "euler-trailing": EulerDiscreteScheduler,
}
"""``--scheduler`` name → the diffusers scheduler whose constants that method's schedule takes."""

METHOD_CONFIG: dict[str, dict] = {"ddim-trailing": {"timestep_spacing": "trailing"}}
METHOD_CONFIG["euler-trailing"] = METHOD_CONFIG["ddim-trailing"]


@dataclass(frozen=True)
class StepSchedule:
    """Per-step constants of TCD, DDIM or Euler, computed once from diffusers' own scheduler, and their one update.

    At step i the model output at x = a_i·x0 + s_i·ε gives x̂0 (clipped where the scheduler clips) and ε̂; the blended
    x̂0 and ε̂ then make ``x' = A_i·x̂0 + B_i·ε̂``, and where ``D_i > 0``, ``x' ← C_i·x' + D_i·ε_{i+1}`` with the keyed
    noise of step i+1. After the last step x' is the result (TCD and DDIM may leave it a hair from clean, exactly as
    their diffusers steps do). Per method:

    - TCD (Zheng et al. 2024, ``TCDScheduler.step``): ``A, B = √ᾱ_s, √(1-ᾱ_s)`` at ``s = ⌊(1-γ)·t_prev⌋``, then forward
      to t_prev: ``C, D = √(ᾱ_prev/ᾱ_s), √(1-ᾱ_prev/ᾱ_s)`` (γ = ``eta``; no noise at the last step or at γ = 0).
    - DDIM (Song et al. 2021, ``DDIMScheduler.step``, t_prev = t - 1000 // steps): ``A = √ᾱ_prev``,
      ``B = √(1-ᾱ_prev-σ²)``, ``C, D = 1, σ`` with σ = η·√((1-ᾱ_prev)/(1-ᾱ_t)·(1-ᾱ_t/ᾱ_prev)).
    - Euler (``EulerDiscreteScheduler.step``, s_churn 0): the ODE step from σ_i to σ_{i+1} in x's variance-preserving
      form: ``A, B = 1/√(1+σ²_{i+1}), σ_{i+1}/√(1+σ²_{i+1})``. Fed the same x̂0 this is exactly Euler's
      ``x + (x - x̂0)/σ·(σ_{i+1} - σ)``; with blending it moves the whole way to the blended x̂0, as LCM's update does.

    ``start_scale``: text-to-video's first latents are ``start_scale·ε`` (Euler with trailing timesteps starts at
    σ_max·ε, which the UNet sees as σ/√(1+σ²)·ε; the others at ε).
    """

    method: str
    timesteps: tuple[int, ...]
    sqrt_alpha: tuple[float, ...]
    sqrt_one_minus_alpha: tuple[float, ...]
    x0_coef: tuple[float, ...]
    eps_coef: tuple[float, ...]
    keep_coef: tuple[float, ...]
    noise_coef: tuple[float, ...]
    prediction_type: str
    clip_sample: float | None = None
    start_scale: float = 1.0

    def __len__(self) -> int:
        return len(self.timesteps)

    def add_noise(self, x: torch.Tensor, eps: torch.Tensor, step: int = 0) -> torch.Tensor:
        """Forward diffusion of clean latents ``x`` to the timestep of ``step``: √ᾱ·x + √(1-ᾱ)·ε."""
        return self.sqrt_alpha[step] * x + self.sqrt_one_minus_alpha[step] * eps

    def start(self, eps: torch.Tensor) -> torch.Tensor:
        return eps if self.start_scale == 1.0 else self.start_scale * eps

    def predict(self, model_out: torch.Tensor, x: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        a, s = self.sqrt_alpha[step], self.sqrt_one_minus_alpha[step]
        x0 = x0_from(model_out, x, a, s, self.prediction_type)
        eps = eps_from(model_out, x, x0, a, s, self.prediction_type)
        if self.clip_sample is not None:
            x0 = x0.clamp(-self.clip_sample, self.clip_sample)
        return x0, eps

    def step(self, x0: torch.Tensor, eps: torch.Tensor, step: int, noise) -> torch.Tensor:
        x = self.x0_coef[step] * x0 + self.eps_coef[step] * eps
        if self.noise_coef[step] > 0.0:
            x = self.keep_coef[step] * x + self.noise_coef[step] * noise[step + 1]
        return x


def img2img_start(steps: int, strength: float) -> int:
    """Where diffusers' img2img pipelines start in a ``steps``-long schedule at ``strength`` (``get_timesteps``):
    the last ``int(steps·strength)`` timesteps run."""
    return max(steps - min(int(steps * strength), steps), 0)


def make_schedule(
    method: str,
    scheduler,
    steps: int,
    strength: float = 1.0,
    eta: float | None = None,
    config: dict | None = None,
) -> LCMSchedule | StepSchedule:
    """The schedule of ``method`` (``METHODS``) for ``steps`` at ``strength``, from the constants of that method's
    diffusers scheduler built on ``scheduler``'s config (betas, prediction type, …) with the method's settings
    (trailing timesteps) and ``config`` (a preset's, e.g. ``clip_sample=False``) over it. LCM runs exactly ``steps``
    at any strength; TCD, DDIM and Euler run the last ``int(steps·strength)`` of their ``steps``-long schedule, as
    diffusers' img2img pipelines do. ``eta``: TCD's γ (default 0.3) or DDIM's η (default 0)."""
    if method == "lcm":
        base = scheduler if not config else LCMScheduler.from_config(scheduler.config, **config)
        return LCMSchedule.from_scheduler(base, steps, strength)
    if scheduler.config.get("thresholding", False):
        raise UserError("the model's scheduler asks for dynamic thresholding, which lcm_video does not support")
    from ..notices import library_notices_off

    with library_notices_off():  # another scheduler's leftover keys are not the user's
        probe = METHODS[method].from_config(scheduler.config, **METHOD_CONFIG.get(method, {}), **(config or {}))
    begin = img2img_start(steps, strength)
    if begin >= steps:
        need = 1 / steps
        raise UserError(
            f"--strength {strength:g} leaves no step of {steps} with --scheduler {method} (its img2img runs the last "
            f"int(steps x strength)); raise --strength to at least {need:.2f} or --steps"
        )
    probe.set_timesteps(steps)
    acp = probe.alphas_cumprod.double()
    full = [int(t) for t in probe.timesteps]
    build = {"tcd": _tcd, "ddim-trailing": _ddim, "euler-trailing": _euler}[method]
    return build(probe, acp, full, begin, steps, eta)


def _clip(probe) -> float | None:
    return probe.config.clip_sample_range if probe.config.get("clip_sample", False) else None


def _vp(acp, ts) -> tuple[tuple[float, ...], tuple[float, ...]]:
    return tuple(float(acp[t].sqrt()) for t in ts), tuple(float((1 - acp[t]).sqrt()) for t in ts)


def _tcd(probe, acp, full, begin, steps, eta) -> StepSchedule:
    gamma = 0.3 if eta is None else eta
    ts = full[begin:]
    A, B, C, D = [], [], [], []
    for j in range(begin, steps):
        prev = full[j + 1] if j + 1 < steps else 0
        s = int(math.floor((1 - gamma) * prev))
        a_prev, a_s = acp[prev], acp[s]
        A.append(float(a_s.sqrt()))
        B.append(float((1 - a_s).sqrt()))
        noisy = gamma > 0 and j != steps - 1
        C.append(float((a_prev / a_s).sqrt()) if noisy else 1.0)
        D.append(float((1 - a_prev / a_s).sqrt()) if noisy else 0.0)
    sa, s1 = _vp(acp, ts)
    return StepSchedule("tcd", tuple(ts), sa, s1, tuple(A), tuple(B), tuple(C), tuple(D), probe.config.prediction_type)


def _ddim(probe, acp, full, begin, steps, eta) -> StepSchedule:
    eta = 0.0 if eta is None else eta
    ts = full[begin:]
    ratio = probe.config.num_train_timesteps // steps
    final = float(probe.final_alpha_cumprod)
    A, B, D = [], [], []
    for t in ts:
        prev = t - ratio
        a_t, a_prev = float(acp[t]), float(acp[prev]) if prev >= 0 else final
        variance = (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)
        std = eta * math.sqrt(variance)
        A.append(math.sqrt(a_prev))
        B.append(math.sqrt(max(1 - a_prev - std**2, 0.0)))
        D.append(std)
    sa, s1 = _vp(acp, ts)
    ones = (1.0,) * len(ts)
    return StepSchedule(
        "ddim-trailing",
        tuple(ts),
        sa,
        s1,
        tuple(A),
        tuple(B),
        ones,
        tuple(D),
        probe.config.prediction_type,
        _clip(probe),
    )


def _euler(probe, acp, full, begin, steps, eta) -> StepSchedule:
    sig = [float(v) for v in probe.sigmas]  # one per timestep, and the final one (0)
    sig = sig[begin:]
    ts = full[begin:]
    norm = [math.sqrt(1 + v * v) for v in sig]
    sa = tuple(1 / n for n in norm[:-1])
    s1 = tuple(v / n for v, n in zip(sig[:-1], norm[:-1], strict=True))
    A = tuple(1 / n for n in norm[1:])
    B = tuple(v / n for v, n in zip(sig[1:], norm[1:], strict=True))
    zeros, ones = (0.0,) * len(ts), (1.0,) * len(ts)
    start = float(probe.init_noise_sigma) / norm[0]
    pred = probe.config.prediction_type
    return StepSchedule("euler-trailing", tuple(ts), sa, s1, A, B, ones, zeros, pred, None, start)
