"""Few-step methods beside LCM (TCD, DDIM and Euler with trailing timesteps): our sampler, fed the noise diffusers
draws, reproduces diffusers' own img2img and AnimateDiff pipelines with those schedulers on the same weights."""

from __future__ import annotations

import pytest
import torch
from diffusers import (
    AnimateDiffPipeline,
    DDIMScheduler,
    EulerDiscreteScheduler,
    StableDiffusionImg2ImgPipeline,
    TCDScheduler,
)

from lcm_video.core.codec import LatentCodec, to_unit
from lcm_video.core.denoiser import UNetDenoiser
from lcm_video.core.sampler import sample
from lcm_video.core.schedule import make_schedule
from lcm_video.models.container import models_from_components
from lcm_video.models.tiny import tiny_components, tiny_motion_adapter

from .test_parity import NO_SAFETY, _generator_draws, _image

TOLERANCE = 1e-4  # the LCM parity tests' (tests/test_parity.py)

SCHEDULERS = {
    "tcd": lambda cfg: TCDScheduler.from_config(cfg),
    "ddim-trailing": lambda cfg: DDIMScheduler.from_config(cfg, timestep_spacing="trailing"),
    "euler-trailing": lambda cfg: EulerDiscreteScheduler.from_config(cfg, timestep_spacing="trailing"),
}
SD15_SCHEDULER = {  # SD1.5's own scheduler config (a PNDM one): no final ᾱ of 1, no clipping, steps_offset 1
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "clip_sample": False,
}


def _reference_scheduler(method: str):
    return SCHEDULERS[method](DDIMScheduler(**SD15_SCHEDULER).config)


@pytest.mark.parametrize(
    ("method", "strength", "eta"),
    [
        ("tcd", 1.0, 0.3),
        ("tcd", 0.5, 0.3),
        ("tcd", 0.75, 0.0),
        ("ddim-trailing", 1.0, 0.0),
        ("ddim-trailing", 0.5, 0.0),
        ("ddim-trailing", 1.0, 0.5),
        ("euler-trailing", 1.0, None),
        ("euler-trailing", 0.5, None),
    ],
)
def test_img2img_parity_with_sd_img2img_pipeline(method, strength, eta):
    comps = tiny_components(guidance_embedding=False)
    comps["scheduler"] = _reference_scheduler(method)
    ref_pipe = StableDiffusionImg2ImgPipeline(**comps, **NO_SAFETY)
    ref_pipe.set_progress_bar_config(disable=True)
    models = models_from_components(comps, "cpu", torch.float32, 1.5, "tiny")
    latents = LatentCodec(comps["vae"]).encode(to_unit(_image(2)))  # (1, 4, 8, 6)
    extra = {} if eta is None else {"eta": eta}
    ref = ref_pipe(
        prompt="a woodcut",
        negative_prompt="blurry",
        image=latents,  # 4-channel input: diffusers skips its own (sampled) VAE encode
        num_inference_steps=4,
        strength=strength,
        guidance_scale=2.0,
        generator=torch.Generator().manual_seed(7),
        output_type="latent",
        **extra,
    ).images

    schedule = make_schedule(method, models.scheduler, 4, strength, eta)
    assert len(schedule) == int(4 * strength)  # diffusers' img2img cut: the last int(steps x strength) timesteps
    noise = _generator_draws(7, latents.shape, 6)
    cond, uncond, tcond = models.text_conditioning("a woodcut", "blurry", 2.0)
    denoiser = UNetDenoiser(comps["unet"], cond, uncond, 2.0, tcond)
    ours = sample(lambda x, t: denoiser(x, t, [0]), schedule.add_noise(latents, noise[0]), schedule, noise)
    assert denoiser.calls == len(schedule)
    diff = (ours - ref).abs().max().item()
    print(f"{method} strength {strength} eta {eta}: max abs diff {diff:.2e}")
    assert diff <= TOLERANCE


def test_clip_sample_is_applied_where_the_scheduler_asks_for_it():
    """PCM's preset turns DDIM's clip_sample off; DDIMScheduler's own default clips x̂0 to [-1, 1]."""
    comps = tiny_components(guidance_embedding=False)
    clipped = make_schedule("ddim-trailing", comps["scheduler"], 4, config={"clip_sample": True})
    plain = make_schedule("ddim-trailing", comps["scheduler"], 4, config={"clip_sample": False})
    assert clipped.clip_sample == 1.0 and plain.clip_sample is None
    assert clipped.timesteps == plain.timesteps == (999, 749, 499, 249)


@pytest.mark.parametrize("method", ["euler-trailing", "tcd"])
def test_animatediff_parity(method, monkeypatch):
    """AnimateDiffPipeline (a Lightning-style adapter with Euler trailing, and TCD) on the same weights: text to
    video from the noise the pipeline draws."""
    comps = tiny_components(guidance_embedding=False)
    comps["scheduler"] = SCHEDULERS[method](DDIMScheduler(**{**SD15_SCHEDULER, "beta_schedule": "linear"}).config)
    adapter = tiny_motion_adapter()
    ref_pipe = AnimateDiffPipeline(**{k: comps[k] for k in ("unet", "vae", "text_encoder", "tokenizer")},
                                   scheduler=comps["scheduler"], motion_adapter=adapter)  # fmt: skip
    ref_pipe.set_progress_bar_config(disable=True)
    models = models_from_components({**comps, "unet": ref_pipe.unet}, "cpu", torch.float32, 1.0, "tiny", adapter)
    frames, h, w = 4, 64, 64
    shape = (1, 4, frames, h // 8, w // 8)
    ref = ref_pipe(
        prompt="a fox running",
        num_frames=frames,
        height=h,
        width=w,
        num_inference_steps=4,
        guidance_scale=1.0,
        generator=torch.Generator().manual_seed(3),
        output_type="latent",
        eta=0.3,  # TCD's γ (the pipeline's default is 0); Euler takes none
    ).frames  # (1, c, f, h, w)

    schedule = make_schedule(method, models.scheduler, 4, 1.0, 0.3 if method == "tcd" else None)
    draws = [d[0].permute(1, 0, 2, 3) for d in _generator_draws(3, shape, 5)]  # (f, c, h, w) each
    cond, uncond, tcond = models.text_conditioning("a fox running", "", 1.0)
    denoiser = UNetDenoiser(models.unet, cond, uncond, 1.0, tcond)
    ours = sample(lambda x, t: denoiser(x, t, range(frames)), schedule.start(draws[0]), schedule, draws)
    diff = (ours - ref[0].permute(1, 0, 2, 3)).abs().max().item()
    print(f"AnimateDiff {method}: max abs diff {diff:.2e}")
    assert diff <= TOLERANCE


@pytest.mark.parametrize(("method", "eta"), [("tcd", 0.5), ("ddim-trailing", 0.5), ("euler-trailing", None)])
def test_stylizer_one_frame_equals_diffusers_img2img_fed_our_keyed_noise(method, eta, monkeypatch):
    """The whole per-window path (encode → keyed noise → the method's steps → decode → uint8) with ``--scheduler``
    and ``--eta`` as options, against StableDiffusionImg2ImgPipeline with that scheduler drawing the same ε."""
    import numpy as np
    from diffusers.pipelines.stable_diffusion import pipeline_stable_diffusion_img2img as img2img
    from diffusers.schedulers import scheduling_ddim, scheduling_tcd

    from lcm_video.core.noise import FrameNoise
    from lcm_video.pipelines.video_to_video import Stylizer
    from lcm_video.settings.configs import StylizeConfig

    comps = tiny_components(guidance_embedding=False)
    comps["scheduler"] = _reference_scheduler(method)
    models = models_from_components(comps, "cpu", torch.float32, 1.0, "tiny")
    extra = {} if eta is None else {"eta": eta}
    opts = {"strength": 0.75, "steps": 4, "blend": 0.0, "pixel_blend": 0.0, "shared_noise": 0.5, "seed": 9}
    cfg = StylizeConfig.make(prompt="a mosaic", scheduler=method, **opts, **extra)
    frame = _image(4)
    stylizer = Stylizer(models, cfg)
    ours = stylizer.window(frame.numpy(), range(1))
    assert stylizer.sampler.denoiser.calls == 3  # int(4 x 0.75) of a 4-step schedule

    latents = LatentCodec(comps["vae"]).encode(to_unit(frame))
    eps = FrameNoise(9, tuple(latents.shape[1:]), 0.5).window([0])
    draws = iter([eps[k] for k in range(5)])  # the initial ε, then each re-noise in order
    for module in (img2img, scheduling_tcd, scheduling_ddim):
        monkeypatch.setattr(module, "randn_tensor", lambda *a, **k: next(draws))
    ref_pipe = StableDiffusionImg2ImgPipeline(**comps, **NO_SAFETY)
    ref_pipe.set_progress_bar_config(disable=True)
    ref = ref_pipe(
        prompt="a mosaic", image=latents, num_inference_steps=4, strength=0.75, guidance_scale=1.0, output_type="np",
        **({"eta": eta} if eta is not None else {}),
    ).images  # fmt: skip
    ref_u8 = (ref * 255).round().astype(np.uint8)
    diff = np.abs(ours.astype(int) - ref_u8.astype(int))
    assert diff.max() <= 1  # the same float up to 1e-5 can round to neighbouring bytes
    assert (diff == 0).mean() > 0.99


def test_a_strength_change_rebuilds_the_methods_schedule(tiny_models):
    """The seam a strength changed mid-render (the live mode's) goes through: checked, then the schedule rebuilt."""
    from lcm_video.errors import UserError
    from lcm_video.pipelines.window import WindowSampler
    from lcm_video.settings.configs import StylizeConfig
    from lcm_video.settings.resolve import check_strength

    cfg = StylizeConfig.make(prompt="x", scheduler="ddim-trailing", steps=4, strength=1.0)
    sampler = WindowSampler(tiny_models, cfg, prompts="x", strength=1.0, batch=None)
    assert sampler.sampling.scheduler == "ddim-trailing" and sampler.schedule.timesteps == (999, 749, 499, 249)
    check_strength(sampler.sampling, 0.5)
    sampler.set_strength(0.5)
    assert sampler.schedule.timesteps == (499, 249)
    with pytest.raises(UserError, match="leaves no step of 4 with --scheduler ddim-trailing"):
        check_strength(sampler.sampling, 0.2)
