"""Residual classifier-free guidance (``--cfg-type self|initialize``, StreamDiffusion's R-CFG): the virtual negative
is the noise each step's latents were made with, and the UNet sees the conditional branch alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import LCMScheduler

from lcm_video.core.sampler import Residual, sample
from lcm_video.core.schedule import LCMSchedule, make_schedule, output_from, x0_from
from lcm_video.errors import UserError
from lcm_video.pipelines.video_to_video import Stylizer
from lcm_video.settings.configs import StylizeConfig


class FakeDenoiser:
    """A model whose output is a fixed function of x; records the negative it was handed, and (when none) keeps an
    unconditional output as ``UNetDenoiser`` does."""

    def __init__(self):
        self.negatives, self.last_uncond, self.record = [], None, []

    def __call__(self, x, t, negative=None):
        self.negatives.append(negative)
        self.record.append(x)
        if negative is None:
            self.last_uncond = 0.5 * x
        return 0.3 * x + 0.01 * t


def _noise(steps: int, shape=(2, 4, 8, 8)) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.randn(shape, generator=g) for _ in range(steps)]


def test_self_negative_is_the_residual_of_each_steps_latents_against_the_source():
    schedule = LCMSchedule.from_scheduler(LCMScheduler(), 4, 0.6)
    noise = _noise(4)
    clean = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    d, xs = FakeDenoiser(), []
    d.record = xs
    sample(d, schedule.add_noise(clean, noise[0]), schedule, noise, residual=Residual("self", ref=clean))
    assert len(d.negatives) == 4
    torch.testing.assert_close(d.negatives[0], noise[0], atol=2e-5, rtol=0)  # step 0: exactly the source's noise
    for i, (x, neg) in enumerate(zip(xs, d.negatives, strict=True)):
        a, s = schedule.sqrt_alpha[i], schedule.sqrt_one_minus_alpha[i]
        torch.testing.assert_close(neg, (x - a * clean) / s, atol=2e-5, rtol=0)


def test_without_a_source_self_follows_each_steps_x0():
    """Text-to-video: the residual against the x0 the latents were re-noised from is LCM's keyed ε of that step."""
    schedule = LCMSchedule.from_scheduler(LCMScheduler(), 4, 1.0)
    noise = _noise(4)
    d = FakeDenoiser()
    sample(d, schedule.start(noise[0]), schedule, noise, residual=Residual("self"))
    for i, neg in enumerate(d.negatives):
        torch.testing.assert_close(neg, noise[i], atol=2e-5, rtol=0)


def test_initialize_runs_one_real_negative_pass_and_keeps_its_x0():
    schedule = LCMSchedule.from_scheduler(LCMScheduler(), 4, 0.6)
    noise = _noise(4)
    x = schedule.add_noise(torch.zeros(2, 4, 8, 8), noise[0])
    d = FakeDenoiser()
    sample(d, x, schedule, noise, residual=Residual("initialize", denoiser=d))
    assert d.negatives[0] is None and all(n is not None for n in d.negatives[1:])
    ref = schedule.predict(0.5 * x, x, 0)[0]  # the x0 of the real negative pass at step 0
    # step 1's latents: step 0's (guided) x0 re-noised with noise[1]; their negative is the residual against ref
    x1 = schedule.add_noise(schedule.predict(0.3 * x + 0.01 * schedule.timesteps[0], x, 0)[0], noise[1], 1)
    a, s = schedule.sqrt_alpha[1], schedule.sqrt_one_minus_alpha[1]
    torch.testing.assert_close(d.negatives[1], (x1 - a * ref) / s, atol=1e-5, rtol=0)


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction", "sample"])
def test_the_negative_means_its_noise_for_every_prediction_type(prediction):
    g = torch.Generator().manual_seed(2)
    x, eps = torch.randn(3, 4, 4, generator=g), torch.randn(3, 4, 4, generator=g)
    a, s = 0.6, 0.8
    out = output_from(eps, x, a, s, prediction)
    torch.testing.assert_close(x0_from(out, x, a, s, prediction), (x - s * eps) / a, atol=1e-6, rtol=0)


def _batches(models, frames: np.ndarray, **opts) -> tuple[np.ndarray, list[int]]:
    """The stylised frames and the UNet batch size of every call."""
    sizes = []
    hook = models.unet.register_forward_pre_hook(
        lambda m, args, kw: sizes.append(int(args[0].shape[0])), with_kwargs=True
    )
    try:
        cfg = StylizeConfig.make(prompt="stained glass", window=4, **opts)
        out = Stylizer(models, cfg).window(frames, range(len(frames)))
    finally:
        hook.remove()
    return out, sizes


@pytest.fixture(scope="module")
def tiny_lora():
    from lcm_video.models.loading import load_models

    return load_models("tiny-lora", device="cpu", dtype="float32")  # no w-embedding: guidance > 1 runs CFG


@pytest.fixture(scope="module")
def frames():
    g = np.random.default_rng(0)
    return g.integers(0, 256, (4, 48, 64, 3), dtype=np.uint8)


def test_self_halves_the_unet_batch_and_initialize_pays_one_step(tiny_lora, frames):
    full, a = _batches(tiny_lora, frames, guidance=3.0)
    own, b = _batches(tiny_lora, frames, guidance=3.0, cfg_type="self")
    init, c = _batches(tiny_lora, frames, guidance=3.0, cfg_type="initialize")
    assert a == [8] * 4 and b == [4] * 4 and c == [8, 4, 4, 4]
    assert np.abs(own.astype(int) - full).mean() > 1.0  # a different negative, a different picture
    assert np.abs(init.astype(int) - full).mean() > 1.0


def test_without_classifier_free_guidance_the_cfg_type_changes_nothing(tiny_lora, frames):
    plain, a = _batches(tiny_lora, frames, guidance=1.0)
    own, b = _batches(tiny_lora, frames, guidance=1.0, cfg_type="self")
    assert a == b == [4] * 4 and np.array_equal(plain, own)


def test_other_methods_take_residual_cfg_too():
    schedule = make_schedule("ddim-trailing", LCMScheduler(), 4, 1.0)
    noise = _noise(len(schedule))
    d = FakeDenoiser()
    out = sample(d, schedule.start(noise[0]), schedule, noise, residual=Residual("self"))
    assert torch.isfinite(out).all() and all(n is not None for n in d.negatives)


def test_stream_batch_refuses_initialize_in_one_line():
    from lcm_video.live.config import check_stream_batch

    with pytest.raises(UserError, match="--cfg-type self"):
        check_stream_batch(StylizeConfig.make(prompt="x", cfg_type="initialize"))
