"""Our sampler, fed the noise diffusers draws, reproduces diffusers' own LCM pipelines on the same weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import LatentConsistencyModelImg2ImgPipeline, LCMScheduler, StableDiffusionImg2ImgPipeline
from diffusers.schedulers import scheduling_lcm

from lcm_video.core.codec import LatentCodec, to_unit
from lcm_video.core.denoiser import UNetDenoiser
from lcm_video.core.noise import FrameNoise
from lcm_video.core.sampler import sample
from lcm_video.core.schedule import LCMSchedule
from lcm_video.models.container import Models, models_from_components
from lcm_video.models.tiny import tiny_components
from lcm_video.pipelines.video_to_video import Stylizer
from lcm_video.settings.configs import StylizeConfig

NO_SAFETY = {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}


def _models(comps) -> Models:
    guidance = 2.0 if comps["unet"].config.time_cond_proj_dim else 1.5
    return models_from_components(comps, "cpu", torch.float32, guidance, "tiny")


def _image(seed=1, h=64, w=48):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (1, h, w, 3), generator=g, dtype=torch.uint8)


def _generator_draws(seed: int, shape, n: int) -> list[torch.Tensor]:
    """The n normal tensors a fresh generator of ``seed`` yields: the initial ε, then each step's re-noise ε."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g) for _ in range(n)]


@pytest.mark.parametrize("strength", [0.5, 1.0])
def test_lcm_img2img_parity_with_noise_drawn_by_diffusers(strength):
    comps = tiny_components()
    ref_pipe = LatentConsistencyModelImg2ImgPipeline(**comps, **NO_SAFETY)
    ref_pipe.set_progress_bar_config(disable=True)
    models = _models(comps)
    codec = LatentCodec(comps["vae"])
    latents = codec.encode(to_unit(_image()))  # (1, 4, 8, 6)

    ref = ref_pipe(
        prompt="an oil painting",
        image=latents,  # 4-channel input: diffusers skips its own (sampled) VAE encode
        num_inference_steps=4,
        strength=strength,
        guidance_scale=3.0,
        generator=torch.Generator().manual_seed(42),
        output_type="latent",
    ).images

    schedule = LCMSchedule.from_scheduler(comps["scheduler"], 4, strength)
    noise = _generator_draws(42, latents.shape, 4)
    cond, uncond, tcond = models.text_conditioning("an oil painting", "", 3.0)
    assert uncond is None and tcond is not None  # w-embedding model: guidance is an embedding, not CFG
    denoiser = UNetDenoiser(comps["unet"], cond, uncond, 3.0, tcond)
    ours = sample(lambda x, t: denoiser(x, t, [0]), schedule.add_noise(latents, noise[0]), schedule, noise)

    assert denoiser.calls == 4
    assert schedule.timesteps == ((499, 379, 259, 139) if strength == 0.5 else (999, 759, 499, 259))
    assert (ours - ref).abs().max().item() <= 1e-4
    pixels_ref = comps["vae"].decode(ref / comps["vae"].config.scaling_factor).sample
    assert (codec.decode(ours) - pixels_ref).abs().max().item() <= 1e-4


def test_lcm_lora_style_cfg_parity_with_sd_img2img_and_lcm_scheduler():
    comps = tiny_components(guidance_embedding=False)
    comps["scheduler"] = LCMScheduler(steps_offset=1)
    ref_pipe = StableDiffusionImg2ImgPipeline(**comps, **NO_SAFETY)
    ref_pipe.set_progress_bar_config(disable=True)
    models = _models(comps)
    codec = LatentCodec(comps["vae"])
    latents = codec.encode(to_unit(_image(3)))

    ref = ref_pipe(
        prompt="a charcoal sketch",
        negative_prompt="blurry",
        image=latents,
        num_inference_steps=4,
        strength=1.0,
        guidance_scale=2.0,
        generator=torch.Generator().manual_seed(5),
        output_type="latent",
    ).images

    schedule = LCMSchedule.from_scheduler(comps["scheduler"], 4, 1.0)
    noise = _generator_draws(5, latents.shape, 4)
    cond, uncond, tcond = models.text_conditioning("a charcoal sketch", "blurry", 2.0)
    assert uncond is not None and tcond is None  # no w-embedding: guidance > 1 runs classifier-free guidance
    denoiser = UNetDenoiser(comps["unet"], cond, uncond, 2.0, tcond)
    ours = sample(lambda x, t: denoiser(x, t, [0]), schedule.add_noise(latents, noise[0]), schedule, noise)
    assert (ours - ref).abs().max().item() <= 1e-4


def test_stylizer_one_frame_equals_diffusers_fed_our_keyed_noise(monkeypatch):
    """The full per-window path (encode → noise → sample → decode → uint8) against diffusers' pipeline output."""
    comps = tiny_components()
    models = _models(comps)
    cfg = StylizeConfig.make(prompt="a mosaic", strength=0.6, steps=4, blend=0.0, shared_noise=0.5, seed=9)
    frame = _image(4)
    ours = Stylizer(models, cfg).window(frame.numpy(), range(1))

    schedule = LCMSchedule.from_scheduler(comps["scheduler"], 4, 0.6)
    latents = LatentCodec(comps["vae"]).encode(to_unit(frame))
    eps = FrameNoise(9, tuple(latents.shape[1:]), 0.5).window([0])
    draws = iter([eps[k] for k in range(1, 4)])
    monkeypatch.setattr(scheduling_lcm, "randn_tensor", lambda *a, **k: next(draws))
    ref_pipe = LatentConsistencyModelImg2ImgPipeline(**comps, **NO_SAFETY)
    ref_pipe.set_progress_bar_config(disable=True)
    ref = ref_pipe(
        prompt="a mosaic",
        image=latents,
        latents=schedule.add_noise(latents, eps[0]),
        num_inference_steps=4,
        strength=0.6,
        guidance_scale=2.0,
        output_type="np",
    ).images
    ref_u8 = (ref * 255).round().astype(np.uint8)
    diff = np.abs(ours.astype(int) - ref_u8.astype(int))
    assert diff.max() <= 1  # the same float up to 1e-5 can round to neighbouring bytes
    assert (diff == 0).mean() > 0.999
