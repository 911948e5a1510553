"""SDXL-shaped models through the one sampler: our window path, fed the noise diffusers draws, reproduces
``StableDiffusionXLImg2ImgPipeline`` with the LCM, TCD and Euler-trailing schedulers on tiny random SDXL weights (two
text encoders, pooled text, size/crop time ids); every method handles v-prediction as diffusers does; the SDXL
presets load from hub caches shaped like their real repos."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import (
    DDIMScheduler,
    EulerDiscreteScheduler,
    LCMScheduler,
    StableDiffusionImg2ImgPipeline,
    StableDiffusionXLImg2ImgPipeline,
    TCDScheduler,
)

from lcm_video.core.codec import LatentCodec, to_unit
from lcm_video.core.denoiser import UNetDenoiser
from lcm_video.core.sampler import sample
from lcm_video.core.schedule import make_schedule
from lcm_video.models.container import SDXL_EXTRA, models_from_components
from lcm_video.models.tiny import tiny_components, tiny_sdxl_components

from .test_parity import NO_SAFETY, _generator_draws, _image

TOLERANCE = 1e-4  # the LCM parity tests' (tests/test_parity.py)
SDXL_SCHEDULER = {  # SDXL base's scheduler config (an Euler one): SD's betas, leading spacing, steps_offset 1
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "steps_offset": 1,
    "timestep_spacing": "leading",
}
SCHEDULERS = {
    "lcm": lambda cfg: LCMScheduler.from_config(cfg),
    "tcd": lambda cfg: TCDScheduler.from_config(cfg),
    "ddim-trailing": lambda cfg: DDIMScheduler.from_config(cfg, timestep_spacing="trailing", clip_sample=False),
    "euler-trailing": lambda cfg: EulerDiscreteScheduler.from_config(cfg, timestep_spacing="trailing"),
}


def _reference(method: str, **config):
    return SCHEDULERS[method](EulerDiscreteScheduler(**SDXL_SCHEDULER, **config).config)


def _sdxl_ours(comps, latents, method, strength, guidance, eta, seed, prompt, negative, size):
    """Our sampler on ``latents`` with the models' SDXL conditioning (pooled text + time ids for ``size``)."""
    models = models_from_components(comps, "cpu", torch.float32, guidance, "tiny-sdxl")
    schedule = make_schedule(method, models.scheduler, 4, strength, eta)
    noise = _generator_draws(seed, latents.shape, 6)
    cond, uncond, tcond = models.text_conditioning(prompt, negative, guidance)
    denoiser = UNetDenoiser(comps["unet"], cond, uncond, guidance, tcond)
    denoiser.added.append(models.added_conditioning(prompt, negative, guidance, size))
    out = sample(lambda x, t: denoiser(x, t, [0]), schedule.add_noise(latents, noise[0]), schedule, noise)
    return out, denoiser.calls, len(schedule)


@pytest.mark.parametrize(
    ("method", "strength", "guidance", "eta", "embedding"),
    [
        ("lcm", 1.0, 1.0, None, False),  # LCM-LoRA-SDXL at its default guidance
        ("lcm", 1.0, 2.0, None, False),  # ... with classifier-free guidance (pooled and time ids per branch)
        ("lcm", 1.0, 8.0, None, True),  # LCM-SDXL: guidance as a w-embedding
        ("tcd", 1.0, 1.0, 0.3, False),
        ("tcd", 0.5, 2.0, 0.3, False),
        ("euler-trailing", 1.0, 1.0, None, False),  # SDXL-Lightning
        ("euler-trailing", 0.5, 1.0, None, False),
    ],
)
def test_sdxl_img2img_parity(method, strength, guidance, eta, embedding):
    comps = tiny_sdxl_components(guidance_embedding=embedding)
    comps["scheduler"] = _reference(method)
    ref_pipe = StableDiffusionXLImg2ImgPipeline(**comps, **SDXL_EXTRA)
    ref_pipe.set_progress_bar_config(disable=True)
    latents = LatentCodec(comps["vae"]).encode(to_unit(_image(2)))  # (1, 4, 8, 6): a 48x64 frame
    negative = "blurry" if guidance > 1 and not embedding else ""
    ref = ref_pipe(
        prompt="a woodcut",
        negative_prompt=negative or None,
        image=latents,  # 4-channel input: diffusers skips its own (sampled) VAE encode
        num_inference_steps=4,
        strength=strength,
        guidance_scale=guidance,
        generator=torch.Generator().manual_seed(7),
        output_type="latent",
        **({} if eta is None else {"eta": eta}),
    ).images
    ours, calls, steps = _sdxl_ours(comps, latents, method, strength, guidance, eta, 7, "a woodcut", negative, (48, 64))
    assert calls == steps == int(4 * strength)
    diff = (ours - ref).abs().max().item()
    print(f"SDXL {method} strength {strength} guidance {guidance} w-embedding {embedding}: max abs diff {diff:.2e}")
    assert diff <= TOLERANCE


def test_time_ids_follow_the_render_size_and_the_aesthetic_variant():
    """Time ids as SDXL img2img makes them: (orig h, orig w, crop top, crop left, target h, target w), or the score
    (6 / 2.5 for the unconditional branch) in place of the target size for a refiner-shaped UNet."""
    base = models_from_components(tiny_sdxl_components(), "cpu", torch.float32, 2.0, "x")
    added = base.added_conditioning("a", "b", 2.0, (48, 64))
    assert added.time_ids.tolist() == [[64, 48, 0, 0, 64, 48]]
    kwargs = added([0, 1])
    assert kwargs["time_ids"].shape == (4, 6) and kwargs["text_embeds"].shape == (4, 32)  # (uncond, cond) x 2 frames
    refiner = models_from_components(tiny_sdxl_components(aesthetics=True), "cpu", torch.float32, 2.0, "x")
    assert refiner.pipe.config.requires_aesthetics_score
    added = refiner.added_conditioning("a", "b", 2.0, (48, 64))
    assert added.time_ids.tolist() == [[64, 48, 0, 0, 6.0]] and added.uncond_time_ids.tolist() == [[64, 48, 0, 0, 2.5]]
    assert models_from_components(tiny_components(), "cpu").added_conditioning("a", "", 1.0, (8, 8)) is None


@pytest.mark.parametrize(
    ("method", "prediction"),
    [
        ("lcm", "v_prediction"),
        ("tcd", "v_prediction"),
        ("ddim-trailing", "v_prediction"),
        ("euler-trailing", "v_prediction"),
        ("euler-trailing", "sample"),  # SDXL-Lightning's 1-step UNet (x0 prediction)
    ],
)
def test_every_method_handles_v_prediction_as_diffusers_does(method, prediction):
    """SD2.1-style v-prediction (the scheduler config says it): x̂0 = a·x − s·v, ε̂ = a·v + s·x, per method; and x0
    prediction with Euler."""
    comps = tiny_components(guidance_embedding=False)
    sd = {k: v for k, v in SDXL_SCHEDULER.items() if k != "timestep_spacing"}
    comps["scheduler"] = SCHEDULERS[method](DDIMScheduler(**sd, prediction_type=prediction).config)
    ref_pipe = StableDiffusionImg2ImgPipeline(**comps, **NO_SAFETY)
    ref_pipe.set_progress_bar_config(disable=True)
    latents = LatentCodec(comps["vae"]).encode(to_unit(_image(5)))
    eta = 0.3 if method == "tcd" else None
    ref = ref_pipe(
        prompt="a fresco", image=latents, num_inference_steps=4, strength=1.0, guidance_scale=1.0,
        generator=torch.Generator().manual_seed(3), output_type="latent", **({} if eta is None else {"eta": eta}),
    ).images  # fmt: skip
    models = models_from_components(comps, "cpu", torch.float32, 1.0, "tiny")
    schedule = make_schedule(method, models.scheduler, 4, 1.0, eta)
    assert schedule.prediction_type == prediction
    noise = _generator_draws(3, latents.shape, 6)
    cond, _, _ = models.text_conditioning("a fresco", "", 1.0)
    denoiser = UNetDenoiser(comps["unet"], cond)
    ours = sample(lambda x, t: denoiser(x, t, [0]), schedule.add_noise(latents, noise[0]), schedule, noise)
    diff = (ours - ref).abs().max().item()
    print(f"{prediction} {method}: max abs diff {diff:.2e}")
    assert diff <= TOLERANCE


@pytest.mark.parametrize(("method", "eta"), [("lcm", None), ("tcd", 0.5), ("euler-trailing", None)])
def test_sdxl_stylizer_one_frame_equals_diffusers_fed_our_keyed_noise(method, eta, monkeypatch):
    """The whole per-window path (encode → keyed noise → SDXL conditioning → the method's steps → decode → uint8)
    against StableDiffusionXLImg2ImgPipeline with that scheduler drawing the same ε."""
    from diffusers.pipelines.stable_diffusion_xl import pipeline_stable_diffusion_xl_img2img as img2img
    from diffusers.schedulers import scheduling_lcm, scheduling_tcd

    from lcm_video.core.noise import FrameNoise
    from lcm_video.pipelines.video_to_video import Stylizer
    from lcm_video.settings.configs import StylizeConfig

    comps = tiny_sdxl_components()
    comps["scheduler"] = _reference(method)
    models = models_from_components(comps, "cpu", torch.float32, 1.0, "tiny-sdxl")
    strength = 1.0 if method == "lcm" else 0.75  # LCM's strength cuts differently in diffusers' SDXL img2img
    opts = {"strength": strength, "steps": 4, "blend": 0.0, "pixel_blend": 0.0, "shared_noise": 0.5, "seed": 9}
    cfg = StylizeConfig.make(prompt="a mosaic", scheduler=method, **opts, **({} if eta is None else {"eta": eta}))
    frame = _image(4)
    stylizer = Stylizer(models, cfg)
    ours = stylizer.window(frame.numpy(), range(1))
    assert stylizer.sampler.denoiser.calls == int(4 * strength)

    latents = LatentCodec(comps["vae"]).encode(to_unit(frame))
    eps = FrameNoise(9, tuple(latents.shape[1:]), 0.5).window([0])
    draws = iter([eps[k] for k in range(5)])  # the initial ε, then each re-noise in order
    for module in (img2img, scheduling_tcd, scheduling_lcm):
        monkeypatch.setattr(module, "randn_tensor", lambda *a, **k: next(draws))
    ref_pipe = StableDiffusionXLImg2ImgPipeline(**comps, **SDXL_EXTRA)
    ref_pipe.set_progress_bar_config(disable=True)
    ref = ref_pipe(
        prompt="a mosaic", image=latents, num_inference_steps=4, strength=strength, guidance_scale=1.0,
        output_type="np", **({} if eta is None else {"eta": eta}),
    ).images  # fmt: skip
    ref_u8 = (ref * 255).round().astype(np.uint8)
    diff = np.abs(ours.astype(int) - ref_u8.astype(int))
    assert diff.max() <= 1  # the same float up to 1e-5 can round to neighbouring bytes
    assert (diff == 0).mean() > 0.99


@pytest.mark.parametrize(("method", "guidance"), [("lcm", 2.0), ("euler-trailing", 1.0)])
def test_animatediff_sdxl_parity(method, guidance):
    """AnimateDiffSDXLPipeline (a motion adapter on the SDXL UNet; LCM with CFG, and Euler trailing): text to video
    from the noise the pipeline draws, the pooled text and time ids once per clip."""
    from diffusers import AnimateDiffSDXLPipeline

    from lcm_video.models.container import SDXL_PARTS
    from lcm_video.models.tiny import tiny_motion_adapter

    comps = tiny_sdxl_components()
    comps["scheduler"] = _reference(method)
    adapter = tiny_motion_adapter(zero_out=False)
    ref_pipe = AnimateDiffSDXLPipeline(**{k: comps[k] for k in SDXL_PARTS}, motion_adapter=adapter)
    ref_pipe.set_progress_bar_config(disable=True)
    models = models_from_components({**comps, "unet": ref_pipe.unet}, "cpu", torch.float32, guidance, "x", adapter)
    frames, h, w = 4, 48, 64
    shape = (1, 4, frames, h // 8, w // 8)
    negative = "blurry" if guidance > 1 else ""
    ref = ref_pipe(
        prompt="a fox running", negative_prompt=negative or None, num_frames=frames, height=h, width=w,
        num_inference_steps=4, guidance_scale=guidance, generator=torch.Generator().manual_seed(3),
        output_type="latent",
    ).frames  # (1, c, f, h, w)  # fmt: skip

    schedule = make_schedule(method, models.scheduler, 4, 1.0)
    draws = [d[0].permute(1, 0, 2, 3) for d in _generator_draws(3, shape, 5)]  # (f, c, h, w) each
    cond, uncond, tcond = models.text_conditioning("a fox running", negative, guidance)
    denoiser = UNetDenoiser(models.unet, cond, uncond, guidance, tcond)
    denoiser.added.append(models.added_conditioning("a fox running", negative, guidance, (w, h)))
    ours = sample(lambda x, t: denoiser(x, t, range(frames)), schedule.start(draws[0]), schedule, draws)
    diff = (ours - ref[0].permute(1, 0, 2, 3)).abs().max().item()
    print(f"AnimateDiffSDXL {method}: max abs diff {diff:.2e}")
    assert diff <= TOLERANCE


# --- the SDXL presets load from hub caches shaped like their real repos ---------------------------------------------


def _sdxl_lora(folder, seed: int):
    from diffusers import StableDiffusionXLPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = tiny_sdxl_components()["unet"]
    cfg = LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=False)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        unet.add_adapter(cfg)
    folder.mkdir(parents=True)
    StableDiffusionXLPipeline.save_lora_weights(folder, unet_lora_layers=get_peft_model_state_dict(unet))
    return folder / "pytorch_lora_weights.safetensors"


@pytest.fixture(scope="module")
def sdxl_hub(tmp_path_factory):
    """A hub cache with SDXL base, SDXL-Turbo, LCM-SDXL's UNet, LCM-LoRA-SDXL, SDXL-Lightning's LoRAs and 1-step
    UNet, SD-Turbo, TAESDXL and the fp16-fix VAE: tiny random weights under the real repo ids and file names."""
    from diffusers import AutoencoderKL, StableDiffusionXLPipeline
    from safetensors.torch import save_file

    from lcm_video.models.container import SDXL_PARTS
    from lcm_video.models.tiny import tiny_taesd

    from .test_presets import _put

    tmp = tmp_path_factory.mktemp("sdxl_hub")
    cache = tmp / "cache"

    def files(folder):
        return {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()}

    comps = tiny_sdxl_components()
    comps["scheduler"] = EulerDiscreteScheduler(**SDXL_SCHEDULER)  # the base repo's own
    StableDiffusionXLPipeline(**{k: comps[k] for k in SDXL_PARTS}).save_pretrained(tmp / "base")
    _put(cache, "stabilityai/stable-diffusion-xl-base-1.0", files(tmp / "base"))
    turbo = tiny_sdxl_components(seed=1)
    turbo["scheduler"] = EulerDiscreteScheduler(**{**SDXL_SCHEDULER, "timestep_spacing": "trailing"})
    StableDiffusionXLPipeline(**{k: turbo[k] for k in SDXL_PARTS}).save_pretrained(tmp / "turbo")
    _put(cache, "stabilityai/sdxl-turbo", files(tmp / "turbo"))
    tiny_sdxl_components(seed=2, guidance_embedding=True)["unet"].save_pretrained(tmp / "lcm-unet")
    _put(cache, "latent-consistency/lcm-sdxl", files(tmp / "lcm-unet"))  # the UNet at the repo's root
    _put(cache, "latent-consistency/lcm-lora-sdxl", {"pytorch_lora_weights.safetensors": _sdxl_lora(tmp / "lcm", 3)})
    lightning = {f"sdxl_lightning_{n}step_lora.safetensors": _sdxl_lora(tmp / f"l{n}", 10 + n) for n in (2, 4, 8)}
    one = tiny_sdxl_components(seed=4)["unet"].state_dict()
    save_file({k: v.contiguous() for k, v in one.items()}, tmp / "one.safetensors")
    lightning["sdxl_lightning_1step_unet_x0.safetensors"] = tmp / "one.safetensors"
    _put(cache, "ByteDance/SDXL-Lightning", lightning)
    sd = tiny_components(seed=5, guidance_embedding=False)
    sd["scheduler"] = EulerDiscreteScheduler(**{**SDXL_SCHEDULER, "timestep_spacing": "trailing"})
    StableDiffusionImg2ImgPipeline(**sd, **NO_SAFETY).save_pretrained(tmp / "sd-turbo")
    _put(cache, "stabilityai/sd-turbo", files(tmp / "sd-turbo"))
    tiny_taesd().save_pretrained(tmp / "taesdxl")
    _put(cache, "madebyollin/taesdxl", files(tmp / "taesdxl"))
    from lcm_video.models.tiny import tiny_motion_adapter

    tiny_motion_adapter(seed=6, zero_out=False).save_pretrained(tmp / "motion")  # config + weights at the root
    _put(cache, "guoyww/animatediff-motion-adapter-sdxl-beta", files(tmp / "motion"))
    fix = AutoencoderKL.from_config(comps["vae"].config, force_upcast=False)
    fix.save_pretrained(tmp / "fix")
    _put(cache, "madebyollin/sdxl-vae-fp16-fix", files(tmp / "fix"))
    return cache


@pytest.fixture
def offline_sdxl_hub(sdxl_hub, monkeypatch):
    import huggingface_hub.constants

    assert huggingface_hub.constants.HF_HUB_OFFLINE  # conftest: never the network
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(sdxl_hub))
    return sdxl_hub


def _probe_sdxl(unet) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x, states = torch.randn(1, 4, 8, 8, generator=g), torch.randn(1, 77, 64, generator=g)
    added = {"text_embeds": torch.randn(1, 32, generator=g), "time_ids": torch.tensor([[64.0, 64, 0, 0, 64, 64]])}
    extra = {}
    if unet.config.time_cond_proj_dim:
        extra["timestep_cond"] = torch.randn(1, unet.config.time_cond_proj_dim, generator=g)
    with torch.no_grad():
        return unet(x, 499, encoder_hidden_states=states, added_cond_kwargs=added, **extra).sample


@pytest.mark.slow  # 5 s: over the quick loop's budget (README), in the full suite
def test_every_sdxl_preset_loads_from_its_repos_and_samples_as_its_card_says(offline_sdxl_hub):
    from lcm_video.models.loading import load_models
    from lcm_video.models.presets import PRESETS

    base = _probe_sdxl(load_models("stabilityai/stable-diffusion-xl-base-1.0", device="cpu", dtype="float32").unet)
    seen = []
    for name in ("lcm-lora-sdxl", "lcm-sdxl", "sdxl-turbo", *(f"sdxl-lightning-{n}step" for n in (1, 2, 4, 8))):
        preset = PRESETS[name]
        models = load_models(name, device="cpu", dtype="float32")
        assert models.family == "sdxl" and type(models.pipe).__name__ == "StableDiffusionXLImg2ImgPipeline", name
        assert models.sampling == preset.sampling and models.default_guidance == preset.guidance, name
        out = _probe_sdxl(models.unet)
        assert (out - base).abs().max() > 1e-4, name  # its LoRA, UNet or checkpoint, not the base's
        assert all((out - other).abs().max() > 1e-6 for other in seen), name
        seen.append(out)
    assert load_models("lcm-sdxl", device="cpu", dtype="float32").uses_guidance_embedding  # LCM-SDXL's w-embedding
    one = load_models("sdxl-lightning-1step", device="cpu", dtype="float32")
    schedule = make_schedule("euler-trailing", one.scheduler, 1, 1.0, config=dict(one.sampling.config))
    assert schedule.prediction_type == "sample" and schedule.timesteps == (999,)  # x0 prediction, trailing
    turbo = load_models("sd-turbo", device="cpu", dtype="float32")
    assert type(turbo.pipe).__name__ == "StableDiffusionImg2ImgPipeline" and turbo.sampling.steps == 1


def test_an_sdxl_preset_generates_with_the_sdxl_motion_adapter_by_default(offline_sdxl_hub, tmp_path):
    import lcm_video

    res = lcm_video.generate(
        "a fox", tmp_path / "fox.mp4", model="lcm-lora-sdxl", device="cpu", frames=4, width=64, height=48, context=4,
        quiet=True,
    )  # fmt: skip
    assert res.frames == 4 and res.unet_calls == 4
    models = lcm_video.load_models("lcm-lora-sdxl", device="cpu", motion_adapter="animatediff-sdxl-beta")
    assert type(models.pipe).__name__ == "AnimateDiffSDXLPipeline" and models.scheduler.config.beta_schedule == "linear"


def test_sdxl_vae_choices(offline_sdxl_hub):
    """``--fast`` takes TAESDXL for an SDXL preset; SDXL's own VAE (force_upcast) stays float32 under a float16
    model, as diffusers upcasts it; the fp16-fix VAE does not ask for it and runs in float16."""
    from diffusers import AutoencoderKL

    from lcm_video.models.loading import load_models
    from lcm_video.pipelines.loader import vae_source
    from lcm_video.settings.parts import ModelConfig

    assert vae_source(ModelConfig(model="lcm-lora-sdxl", fast=True)) == "taesdxl"
    assert vae_source(ModelConfig(model="lcm-dreamshaper-v7", fast=True)) == "taesd"
    fast = load_models("lcm-lora-sdxl", vae="taesdxl", device="cpu", dtype="float32")
    assert type(fast.vae).__name__ == "AutoencoderTiny"
    from lcm_video.models.loading import load_vae, upcast_vae

    own = AutoencoderKL.from_pretrained("stabilityai/stable-diffusion-xl-base-1.0", subfolder="vae")  # force_upcast
    fixed = load_vae("sdxl-vae-fp16-fix", torch.float16)
    for vae in (own, fixed):
        upcast_vae(vae, torch.float16)  # what loading does after moving a float16 model (float16 is GPU-only)
    assert own.dtype == torch.float32 and fixed.dtype == torch.float16


def test_an_sdxl_preset_stylises_and_refuses_what_does_not_fit(offline_sdxl_hub, videos, tmp_path):
    import lcm_video
    from lcm_video.errors import Note, UserError

    with pytest.warns(Note, match="1024x1024"):  # the size note names the preset's trained size
        res = lcm_video.stylize(
            videos["moving"], tmp_path / "l.mp4", "x", model="sdxl-lightning-2step", device="cpu", max_frames=3,
            width=64, quiet=True,
        )  # fmt: skip
    assert res.frames == 3 and res.unet_calls == 1  # int(2 steps x strength 0.5)
    with pytest.raises(UserError, match="ControlNet"), pytest.warns(Note):
        lcm_video.stylize(videos["moving"], tmp_path / "c.mp4", "x", model="lcm-lora-sdxl", control=["canny"],
                          device="cpu", max_frames=2, quiet=True)  # fmt: skip


@pytest.mark.slow  # 5 s: over the quick loop's budget (README), in the full suite
def test_an_sdxl_motion_unet_keeps_the_2d_unets_added_embedding():
    """diffusers' ``UNetMotionModel.from_unet2d`` does not copy SDXL's added embedding (pooled text + time ids); the
    loader does, so a motion render neither runs random weights there nor depends on the global RNG."""
    from lcm_video.models.loading import load_models

    torch.manual_seed(1)
    a = load_models("tiny-sdxl", device="cpu", dtype="float32", motion_adapter="tiny")
    torch.manual_seed(2)
    b = load_models("tiny-sdxl", device="cpu", dtype="float32", motion_adapter="tiny")
    assert all(torch.equal(a.pipe.unet.state_dict()[k], v) for k, v in b.pipe.unet.state_dict().items())
    two_d = load_models("tiny-sdxl", device="cpu", dtype="float32").pipe.unet.add_embedding.state_dict()
    assert all(torch.equal(a.pipe.unet.add_embedding.state_dict()[k], v) for k, v in two_d.items())


@pytest.mark.slow  # three conversions, ~15 s on 2 cores (as tests/test_openvino.py's conversion tests)
def test_openvino_runs_an_sdxl_unet_with_its_added_conditioning(tmp_path, monkeypatch):
    """The converted UNet takes the pooled text and time ids as two more inputs: frames equal torch's."""
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    from lcm_video.models.loading import load_models
    from lcm_video.pipelines.video_to_video import Stylizer
    from lcm_video.settings.configs import StylizeConfig

    monkeypatch.setenv("LCM_VIDEO_CACHE", str(tmp_path))
    frames = _image(6).numpy()
    cfg = StylizeConfig.make(prompt="a cat", negative_prompt="blurry", strength=0.6, window=1, quiet=True)
    ours = Stylizer(load_models("tiny-sdxl", device="cpu", dtype="float32"), cfg).window(frames, range(1))
    ov = load_models("tiny-sdxl", device="cpu", dtype="float32", backend="openvino")
    assert np.abs(Stylizer(ov, cfg).window(frames, range(1)).astype(int) - ours.astype(int)).max() <= 1
