"""The pieces of latent consistency distillation (Luo et al. 2023, "Latent Consistency Models", Algorithm 1; and
LCM-LoRA, Luo et al. 2023), as diffusers' ``examples/consistency_distillation`` scripts use them: a DDIM solver over a
skipping schedule, the consistency boundary scalings, the classifier-free-guided teacher step and the Huber loss.

Plain functions over tensors; the training loop in ``distill.py`` strings them together.
"""

from __future__ import annotations

import torch

from ..core.schedule import x0_from

SIGMA_DATA = 0.5  # the boundary scalings' σ_data, as LCMScheduler's


def boundary_scalings(t: torch.Tensor, timestep_scaling: float = 10.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(c_skip, c_out) of the consistency function f(x, t) = c_skip(t)·x + c_out(t)·x̂0 at integer timesteps ``t``
    (b,): c_skip = σ²/((s·t)² + σ²), c_out = s·t/√((s·t)² + σ²), σ = 0.5, s = ``timestep_scaling`` (LCMScheduler's
    constants), so f(x, 0) = x. Float32 (b,)."""
    st = timestep_scaling * t.float()
    denom = st**2 + SIGMA_DATA**2
    return SIGMA_DATA**2 / denom, st / denom.sqrt()


def predicted_x0(model_out: torch.Tensor, x: torch.Tensor, alpha: torch.Tensor, prediction_type: str) -> torch.Tensor:
    """x̂0 from a model output at noise level ᾱ (``alpha``: (b,) ᾱ_t); x, model_out (b, c, h, w)."""
    return x0_from(model_out, x, _col(alpha.sqrt()), _col((1 - alpha).sqrt()), prediction_type)


def predicted_eps(model_out: torch.Tensor, x: torch.Tensor, alpha: torch.Tensor, prediction_type: str) -> torch.Tensor:
    """ε̂ from a model output at noise level ᾱ; shapes as :func:`predicted_x0`."""
    a, s = _col(alpha.sqrt()), _col((1 - alpha).sqrt())
    if prediction_type == "epsilon":
        return model_out
    if prediction_type == "v_prediction":
        return a * model_out + s * x
    if prediction_type == "sample":
        return (x - a * model_out) / s
    raise ValueError(f"unsupported prediction_type {prediction_type!r}")


def _col(v: torch.Tensor) -> torch.Tensor:
    return v.reshape(-1, 1, 1, 1)


class DDIMSolver:
    """Deterministic DDIM (η = 0) over ``points`` of the teacher's T training timesteps: t_k = (k+1)·T/points − 1
    (19, 39, …, 999 for 50 of 1000, diffusers' "trailing" spacing), each step going from t_k to t_k − T/points
    (to ᾱ_0 from the first point, as DDIMScheduler with ``set_alpha_to_one=False``).

    ``alphas_cumprod``: (T,) float ᾱ_t of the teacher's noise schedule.
    """

    def __init__(self, alphas_cumprod: torch.Tensor, points: int = 50):
        total = alphas_cumprod.shape[0]
        self.skip = total // points
        self.alphas_cumprod = alphas_cumprod.float()
        self.timesteps = torch.arange(1, points + 1) * self.skip - 1  # (points,) long
        prev = (self.timesteps - self.skip).clamp(min=0)
        self.prev_timesteps = prev
        self.alpha = self.alphas_cumprod[self.timesteps]
        self.alpha_prev = self.alphas_cumprod[prev]

    def __len__(self) -> int:
        return self.timesteps.shape[0]

    def step(self, x0: torch.Tensor, eps: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """x at the previous point of the schedule: √ᾱ_prev·x̂0 + √(1 − ᾱ_prev)·ε̂. ``index`` (b,) long into
        :attr:`timesteps`; x0, eps (b, c, h, w)."""
        a = _col(self.alpha_prev[index].to(x0.device))
        return a.sqrt() * x0 + (1 - a).sqrt() * eps


def guided(cond: torch.Tensor, uncond: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Classifier-free guidance in LCM's form: cond + w·(cond − uncond) (w = guidance scale − 1), w (b,)."""
    return cond + _col(w) * (cond - uncond)


def huber(pred: torch.Tensor, target: torch.Tensor, c: float) -> torch.Tensor:
    """Pseudo-Huber loss mean(√((pred − target)² + c²) − c); ``c`` = 0 gives the mean absolute error's shape, large c
    the mean squared error's (scaled)."""
    return (torch.sqrt((pred.float() - target.float()) ** 2 + c**2) - c).mean()
