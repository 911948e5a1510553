"""``--style-image`` (IP-Adapter): the loading path on tiny folders shaped like ``h94/IP-Adapter``, parity with
diffusers' own pipelines given ``ip_adapter_image``, InstantStyle's per-block scales, one embedding per render, the
record, and the one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import (
    AnimateDiffPipeline,
    LatentConsistencyModelImg2ImgPipeline,
    StableDiffusionImg2ImgPipeline,
    UNet2DConditionModel,
)
from diffusers.pipelines.latent_consistency_models import pipeline_latent_consistency_img2img as lcm_img2img
from diffusers.pipelines.stable_diffusion import pipeline_stable_diffusion_img2img as img2img
from diffusers.schedulers import scheduling_lcm
from einops import rearrange
from PIL import Image

from lcm_video import cli
from lcm_video.core.codec import LatentCodec, to_unit
from lcm_video.core.noise import FrameNoise
from lcm_video.models.container import models_from_components
from lcm_video.models.ip_adapter import style_scales
from lcm_video.models.loading import load_models
from lcm_video.models.tiny import save_tiny_ip_adapter, tiny_components, tiny_motion_adapter
from lcm_video.pipelines.text_to_video import ClipGenerator
from lcm_video.pipelines.video_to_video import Stylizer
from lcm_video.record import read_record
from lcm_video.settings.configs import GenerateConfig, StylizeConfig

NO_SAFETY = {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}


@pytest.fixture(scope="module")
def style_png(tmp_path_factory) -> str:
    """A 40x56 reference image of random colours."""
    path = tmp_path_factory.mktemp("style") / "ref.png"
    rng = np.random.default_rng(7)
    Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(path)
    return str(path)


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> dict[str, str]:
    """``h94/IP-Adapter``'s layout with random tiny weights for the tiny UNet: the plain and the Plus adapter."""
    root = tmp_path_factory.mktemp("IP-Adapter")
    unet = tiny_components()["unet"]
    return {"plain": save_tiny_ip_adapter(root, unet), "plus": save_tiny_ip_adapter(root, unet, "sd15-plus")}


def _image(seed=4, h=64, w=48):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (1, h, w, 3), generator=g, dtype=torch.uint8)


def _draws(monkeypatch, eps, steps: int, layout=lambda e: e):
    """diffusers' LCM re-noise draws replaced by our keyed ε of steps 1, 2, ..."""
    draws = iter([layout(eps[k]) for k in range(1, steps)])
    monkeypatch.setattr(scheduling_lcm, "randn_tensor", lambda *a, **k: next(draws))


# ---------------------------------------------------------------------------------------------------------------------
# Parity with diffusers' pipelines, each loading the same files through its own load_ip_adapter


@pytest.mark.parametrize(
    ("kind", "guidance_embedding", "mode", "scale"),
    [
        ("plain", True, "style", 1.0),
        ("plain", False, "full", 0.7),
        # the plain adapter in the quick loop (w-embedding + style block; CFG + every block), Plus in the full suite
        pytest.param("plus", True, "full", 0.8, marks=pytest.mark.slow),
        pytest.param("plus", False, "style", 1.0, marks=pytest.mark.slow),
    ],
)
def test_stylise_frame_equals_diffusers_img2img_with_ip_adapter(repo, style_png, kind, guidance_embedding, mode, scale,
                                                                monkeypatch):  # fmt: skip
    """One window through the whole stylise path (encode, keyed noise, 4 LCM steps with the reference's embedding,
    decode, uint8) against diffusers' LCM img2img pipeline (a w-embedding model) or SD img2img with the LCM scheduler
    and classifier-free guidance (its zero negative embedding), fed the same ε."""
    comps = tiny_components(guidance_embedding=guidance_embedding)
    # LCM img2img runs 4 steps at any strength; SD img2img cuts its schedule by strength, so it runs at 1
    guidance, strength = (2.0, 0.6) if guidance_embedding else (1.8, 1.0)
    models = models_from_components(comps, "cpu", torch.float32, guidance, "tiny")
    cfg = StylizeConfig.make(prompt="a mosaic", strength=strength, blend=0.0, pixel_blend=0.0, shared_noise=0.5,
                             seed=9, style_image=style_png, style_scale=scale, style_mode=mode,
                             ip_adapter=repo[kind])  # fmt: skip
    frame = _image()
    ours = Stylizer(models, cfg).window(frame.numpy(), range(1))

    ref_comps = tiny_components(guidance_embedding=guidance_embedding)  # the same seeded weights, loaded apart
    cls = LatentConsistencyModelImg2ImgPipeline if guidance_embedding else StableDiffusionImg2ImgPipeline
    ref_pipe = cls(**ref_comps, **NO_SAFETY, image_encoder=None)
    ref_pipe.set_progress_bar_config(disable=True)
    folder, name = repo[kind].rsplit("/", 1)
    ref_pipe.load_ip_adapter(folder, subfolder="", weight_name=name)  # image encoder: folder/image_encoder
    ref_pipe.set_ip_adapter_scale(style_scales(ref_pipe.unet, scale, mode))
    latents = LatentCodec(comps["vae"]).encode(to_unit(frame))
    eps = FrameNoise(9, tuple(latents.shape[1:]), 0.5).window([0])
    draws = iter([eps[k] for k in range(4)])  # the initial ε, then each re-noise in order
    for module in (img2img, lcm_img2img, scheduling_lcm):
        monkeypatch.setattr(module, "randn_tensor", lambda *a, **k: next(draws))
    ref = ref_pipe(
        prompt="a mosaic",
        image=latents,
        num_inference_steps=4,
        strength=strength,
        guidance_scale=guidance,
        ip_adapter_image=Image.open(style_png),
        output_type="np",
    ).images
    ref_u8 = (ref * 255).round().astype(np.uint8)
    diff = np.abs(ours.astype(int) - ref_u8.astype(int))
    print(f"stylise {kind} {mode}: max uint8 diff {diff.max()}")
    assert diff.max() <= 1  # the parity tolerance of tests/test_parity.py
    assert (diff == 0).mean() > 0.999
    # the style image changes the frame (not a silently ignored option)
    plain = Stylizer(models, cfg.replace(style_image=None, ip_adapter=None)).window(frame.numpy(), range(1))
    assert np.abs(plain.astype(int) - ours.astype(int)).max() > 5
    assert models.ip_adapter is None  # a render without a style image unloads it


def test_generate_equals_animatediff_pipeline_with_ip_adapter_image(repo, style_png, monkeypatch):
    """A clip through the motion UNet with classifier-free guidance and the style image, against diffusers'
    AnimateDiffPipeline given ``ip_adapter_image`` (its IP-Adapter loaded from the same folder), fed our keyed ε."""
    comps = tiny_components(guidance_embedding=False)
    models = models_from_components(comps, "cpu", torch.float32, 1.8, "tiny-lora", tiny_motion_adapter(zero_out=False))
    cfg = GenerateConfig.make(prompt="a red fox", frames=8, guidance=1.8, seed=3, style_image=style_png,
                              style_mode="full", style_scale=0.9, ip_adapter=repo["plain"])  # fmt: skip
    gen = ClipGenerator(models, cfg, (64, 48))
    gen.window(range(8), range(8))  # builds the noise source
    eps = gen.sampler.noise.window(range(8))
    from lcm_video.core.sampler import sample

    ours = sample(lambda x, t: gen.sampler.denoiser(x, t, range(8)), eps[0], gen.sampler.schedule, eps)

    ref_comps = tiny_components(guidance_embedding=False)
    ref_pipe = AnimateDiffPipeline(**ref_comps, motion_adapter=tiny_motion_adapter(zero_out=False))
    ref_pipe.set_progress_bar_config(disable=True)
    folder, name = repo["plain"].rsplit("/", 1)
    ref_pipe.load_ip_adapter(folder, subfolder="", weight_name=name)
    ref_pipe.set_ip_adapter_scale(0.9)
    _draws(monkeypatch, eps, len(gen.sampler.schedule), lambda e: rearrange(e, "f c h w -> 1 c f h w"))
    ref = ref_pipe(
        prompt="a red fox",
        num_frames=8,
        num_inference_steps=len(gen.sampler.schedule),
        latents=rearrange(eps[0], "f c h w -> 1 c f h w"),
        guidance_scale=1.8,
        ip_adapter_image=Image.open(style_png),
        output_type="latent",
    ).frames
    ref = rearrange(ref, "1 c f h w -> f c h w")
    diff = (ours - ref).abs().max().item()
    print(f"generate with IP-Adapter: max abs latent diff {diff:.2e}")
    assert diff <= 1e-4


# ---------------------------------------------------------------------------------------------------------------------
# SDXL: h94/IP-Adapter's sdxl_models, through a tiny SDXL model saved to a folder


IP_ADAPTERS_FILE = {
    "sdxl": "ip-adapter_sdxl.safetensors",
    "sdxl-vit-h": "ip-adapter_sdxl_vit-h.safetensors",
    "sdxl-plus": "ip-adapter-plus_sdxl_vit-h.safetensors",
}  # h94/IP-Adapter's file names, written out here to check IP_ADAPTERS against them


@pytest.fixture(scope="module")
def sdxl_world(tmp_path_factory) -> dict[str, Path]:
    """Tiny SDXL models saved as diffusers folders (LCM-LoRA-SDXL-like, and LCM-SDXL-like with a w-embedding) and a
    hub cache holding ``h94/IP-Adapter``'s SDXL files for their UNet, as the real repository lays them out:
    ``sdxl_models/ip-adapter_sdxl.safetensors`` with the (tiny) ViT-bigG encoder in ``sdxl_models/image_encoder``,
    ``sdxl_models/ip-adapter_sdxl_vit-h`` and ``ip-adapter-plus_sdxl_vit-h`` with the ViT-H one in
    ``models/image_encoder``."""
    from diffusers import StableDiffusionXLPipeline

    from lcm_video.models.container import SDXL_PARTS
    from lcm_video.models.tiny import tiny_sdxl_components

    from .test_presets import _put

    tmp = tmp_path_factory.mktemp("sdxl_ip")
    world = {}
    for name, embedding in (("lora", False), ("lcm", True)):
        comps = tiny_sdxl_components(guidance_embedding=embedding)
        StableDiffusionXLPipeline(**{k: comps[k] for k in SDXL_PARTS}).save_pretrained(tmp / name)
        world[name] = tmp / name
    repo = tmp / "IP-Adapter"
    unet = tiny_sdxl_components()["unet"]  # the w-embedding does not change the attention an adapter extends
    for name in ("sdxl", "sdxl-vit-h", "sdxl-plus"):
        save_tiny_ip_adapter(repo, unet, name)
    _put(tmp / "cache", "h94/IP-Adapter", {p.name: p for p in repo.iterdir()})
    world["repo"], world["cache"] = repo, tmp / "cache"
    return world


@pytest.fixture
def offline_h94(sdxl_world, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(sdxl_world["cache"]))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return sdxl_world


@pytest.mark.parametrize(
    ("adapter", "model", "guidance", "mode", "scale"),
    [
        ("sdxl", "lora", 1.0, "style", 1.0),  # the SDXL family's default at LCM-LoRA-SDXL's guidance
        ("sdxl", "lora", 2.0, "full", 0.7),  # classifier-free guidance: zero negative image embeds, as diffusers
        ("sdxl", "lcm", 8.0, "style", 0.8),  # LCM-SDXL's w-embedding
        ("sdxl-plus", "lora", 1.5, "style", 1.0),  # Plus on ViT-H (16 resampled tokens)
    ],
)
def test_sdxl_stylise_frame_equals_diffusers_with_ip_adapter(offline_h94, style_png, adapter, model, guidance, mode,
                                                             scale, monkeypatch):  # fmt: skip
    """A window of two frames through the whole stylise path of an SDXL model loaded from its folder (pooled text
    and time ids beside the reference's image embeds in ``added_cond_kwargs``, per frame and guidance branch) against
    ``StableDiffusionXLImg2ImgPipeline`` with the LCM scheduler from the same folder on the same two frames, its
    IP-Adapter loaded by diffusers' ``load_ip_adapter`` from the same ``h94/IP-Adapter`` files, scaled by the same
    per-block dict, fed the same ε."""
    from diffusers import StableDiffusionXLImg2ImgPipeline
    from diffusers.pipelines.stable_diffusion_xl import pipeline_stable_diffusion_xl_img2img as xl_img2img

    from lcm_video.models.container import SDXL_EXTRA
    from lcm_video.models.ip_presets import IP_ADAPTERS

    folder = str(offline_h94[model])
    models = load_models(folder, device="cpu", dtype="float32")
    assert models.family == "sdxl"
    cfg = StylizeConfig.make(prompt="a mosaic", guidance=guidance, strength=1.0, blend=0.0, pixel_blend=0.0,
                             shared_noise=0.5, seed=9, window=2, style_image=style_png, style_scale=scale,
                             style_mode=mode, ip_adapter=None if adapter == "sdxl" else adapter)  # fmt: skip
    frames = torch.cat([_image(4), _image(5)])
    ours = Stylizer(models, cfg).window(frames.numpy(), range(2))
    assert models.ip_adapter == adapter  # a folder's family read from its modules: SDXL's default, not SD1.5's
    # InstantStyle's style block on SDXL: the second transformer of up_blocks.0 (the tiny UNet's has two)
    scales = {"up": {"block_0": [0.0, scale]}} if mode == "style" else scale
    assert style_scales(models.pipe.unet, scale, mode) == scales
    on = {n: p.scale[0] for n, p in models.pipe.unet.attn_processors.items() if hasattr(p, "scale")}
    assert on == {n: scale if mode == "full" or n.startswith("up_blocks.0.attentions.1.") else 0.0 for n in on}

    spec = IP_ADAPTERS[adapter]
    ref_pipe = StableDiffusionXLImg2ImgPipeline.from_pretrained(folder, **SDXL_EXTRA)
    ref_pipe.set_progress_bar_config(disable=True)
    ref_pipe.load_ip_adapter("h94/IP-Adapter", subfolder=spec.subfolder, weight_name=spec.weight_name,
                             image_encoder_folder=spec.image_encoder)  # fmt: skip
    ref_pipe.set_ip_adapter_scale(scales)
    latents = LatentCodec(ref_pipe.vae).encode(to_unit(frames))
    eps = FrameNoise(9, tuple(latents.shape[1:]), 0.5).window([0, 1])
    draws = iter([eps[k] for k in range(5)])  # the initial ε, then each re-noise in order
    for module in (xl_img2img, scheduling_lcm):
        monkeypatch.setattr(module, "randn_tensor", lambda *a, **k: next(draws))
    ref = ref_pipe(prompt=["a mosaic"] * 2, image=latents, num_inference_steps=4, strength=1.0, guidance_scale=guidance,
                   ip_adapter_image=Image.open(style_png), output_type="np").images  # fmt: skip
    ref_u8 = (ref * 255).round().astype(np.uint8)
    diff = np.abs(ours.astype(int) - ref_u8.astype(int))
    print(f"SDXL stylise {adapter} {model} guidance {guidance} {mode}: max uint8 diff {diff.max()}")
    assert diff.max() <= 1  # the parity tolerance of tests/test_parity.py and test_sdxl.py
    assert (diff == 0).mean() > 0.99
    plain = Stylizer(models, cfg.replace(style_image=None, ip_adapter=None)).window(frames.numpy(), range(2))
    assert np.abs(plain.astype(int) - ours.astype(int)).max() > 5  # the style image acts


@pytest.mark.parametrize(("guidance", "negative"), [(1.0, ""), (2.0, "blurry")])
def test_sdxl_latents_equal_diffusers_with_ip_adapter(sdxl_world, style_png, guidance, negative):
    """The SDXL denoiser's latents, the image embeds beside the pooled text and time ids (negative branch first under
    guidance, a negative prompt's own pooled text there), against ``StableDiffusionXLImg2ImgPipeline`` drawing its own
    noise from a generator, both with ``sdxl_models/ip-adapter_sdxl.safetensors`` from the same folder."""
    from diffusers import StableDiffusionXLImg2ImgPipeline

    from lcm_video.core.denoiser import UNetDenoiser
    from lcm_video.core.sampler import sample
    from lcm_video.core.schedule import make_schedule
    from lcm_video.models.container import SDXL_EXTRA

    from .test_parity import _generator_draws

    folder, repo = str(sdxl_world["lora"]), str(sdxl_world["repo"])
    ref_pipe = StableDiffusionXLImg2ImgPipeline.from_pretrained(folder, **SDXL_EXTRA)
    ref_pipe.set_progress_bar_config(disable=True)
    ref_pipe.load_ip_adapter(repo, subfolder="sdxl_models", weight_name="ip-adapter_sdxl.safetensors")
    ref_pipe.set_ip_adapter_scale(0.7)
    latents = LatentCodec(ref_pipe.vae).encode(to_unit(_image(2)))
    ref = ref_pipe(prompt="a woodcut", negative_prompt=negative or None, image=latents, num_inference_steps=4,
                   strength=1.0, guidance_scale=guidance, generator=torch.Generator().manual_seed(7),
                   ip_adapter_image=Image.open(style_png), output_type="latent").images  # fmt: skip

    models = load_models(folder, device="cpu", dtype="float32")
    adapter = f"{repo}/sdxl_models/ip-adapter_sdxl.safetensors"
    cfg = guidance > 1
    embeds = models.style_conditioning(style_png, adapter, 0.7, "full", cfg)
    assert embeds[0].shape == (2 if cfg else 1, 1, 40)  # the tiny ViT-bigG's projection
    cond, uncond, tcond = models.text_conditioning("a woodcut", negative, guidance)
    denoiser = UNetDenoiser(models.unet, cond, uncond, guidance, tcond)
    denoiser.added.append(models.added_conditioning("a woodcut", negative, guidance, (48, 64)))
    denoiser.image_embeds = embeds
    schedule = make_schedule("lcm", models.scheduler, 4, 1.0)
    noise = _generator_draws(7, latents.shape, 5)
    ours = sample(lambda x, t: denoiser(x, t, [0]), schedule.add_noise(latents, noise[0]), schedule, noise)
    diff = (ours - ref).abs().max().item()
    print(f"SDXL latents with IP-Adapter, guidance {guidance}: max abs diff {diff:.2e}")
    assert diff <= 1e-4  # the LCM parity tests' tolerance


def test_sdxl_generate_equals_animatediff_sdxl_with_ip_adapter_image(sdxl_world, style_png):
    """A clip through the SDXL motion UNet with classifier-free guidance and the style image (per clip: the image
    embeds beside the pooled text and time ids) against ``AnimateDiffSDXLPipeline`` given ``ip_adapter_image``, its
    adapter loaded from the same ``sdxl_models`` folder, both from the noise the pipeline draws."""
    from diffusers import AnimateDiffSDXLPipeline

    from lcm_video.core.denoiser import UNetDenoiser
    from lcm_video.core.sampler import sample
    from lcm_video.core.schedule import make_schedule
    from lcm_video.models.container import SDXL_PARTS
    from lcm_video.models.tiny import tiny_sdxl_components

    from .test_parity import _generator_draws

    comps = tiny_sdxl_components()
    adapter = tiny_motion_adapter(zero_out=False)
    ref_pipe = AnimateDiffSDXLPipeline(**{k: comps[k] for k in SDXL_PARTS}, motion_adapter=adapter)
    ref_pipe.set_progress_bar_config(disable=True)
    repo = sdxl_world["repo"]
    ref_pipe.load_ip_adapter(str(repo), subfolder="sdxl_models", weight_name="ip-adapter_sdxl.safetensors")
    ref_pipe.set_ip_adapter_scale(0.8)
    frames, h, w = 4, 48, 64
    ref = ref_pipe(prompt="a fox running", num_frames=frames, height=h, width=w, num_inference_steps=4,
                   guidance_scale=2.0, generator=torch.Generator().manual_seed(3),
                   ip_adapter_image=Image.open(style_png), output_type="latent").frames  # fmt: skip

    # The reference's motion UNet without its adapter (from_unet2d leaves SDXL's added embedding random: share it),
    # then ours loads the same file into it through the same load_ip_adapter.
    ref_pipe.unload_ip_adapter()
    models = models_from_components({**comps, "unet": ref_pipe.unet}, "cpu", torch.float32, 2.0, "x", adapter)
    embeds = models.style_conditioning(style_png, str(repo / "sdxl_models" / "ip-adapter_sdxl.safetensors"), 0.8,
                                       "full", True)  # fmt: skip
    schedule = make_schedule("lcm", models.scheduler, 4, 1.0)
    draws = [d[0].permute(1, 0, 2, 3) for d in _generator_draws(3, (1, 4, frames, h // 8, w // 8), 5)]
    cond, uncond, tcond = models.text_conditioning("a fox running", "", 2.0)
    denoiser = UNetDenoiser(models.unet, cond, uncond, 2.0, tcond)
    denoiser.added.append(models.added_conditioning("a fox running", "", 2.0, (w, h)))
    denoiser.image_embeds = embeds
    ours = sample(lambda x, t: denoiser(x, t, range(frames)), schedule.start(draws[0]), schedule, draws)
    diff = (ours - ref[0].permute(1, 0, 2, 3)).abs().max().item()
    print(f"AnimateDiffSDXL with IP-Adapter: max abs latent diff {diff:.2e}")
    assert diff <= 1e-4


def test_the_sdxl_adapters_load_from_h94s_layout_each_with_its_encoder(offline_h94, tmp_path, style_png):
    """``sdxl`` (ViT-bigG, ``sdxl_models/image_encoder``), ``sdxl-vit-h`` and ``sdxl-plus`` (ViT-H,
    ``models/image_encoder``) from the hub cache, offline; the same files named as hub files or in a local copy of the
    repository pair with the same encoders; a ViT-H adapter beside the bigG encoder is one line."""
    import shutil

    from lcm_video.errors import UserError
    from lcm_video.models.tiny import TINY_ENCODERS, tiny_sdxl_components

    models = models_from_components(tiny_sdxl_components(), "cpu", torch.float32, 1.0, "lcm-lora-sdxl")
    bigg, vith = TINY_ENCODERS["sdxl_models/image_encoder"], TINY_ENCODERS["models/image_encoder"]
    local = offline_h94["repo"]
    for name, shape in (("sdxl", (1, 1, bigg[1])), ("sdxl-vit-h", (1, 1, vith[1])), ("sdxl-plus", (1, 1, 17, vith[0]))):
        weights = f"sdxl_models/{IP_ADAPTERS_FILE[name]}"
        for source in (name, f"h94/IP-Adapter/{weights}", str(local / weights)):
            embeds = models.style_conditioning(style_png, source, 1.0, "style", False)
            assert models.ip_adapter == source and embeds[0].shape == shape, (source, embeds[0].shape)
    mixed = tmp_path / "mixed"
    shutil.copytree(local / "sdxl_models" / "image_encoder", mixed / "image_encoder")  # bigG beside a ViT-H adapter
    shutil.copy(local / "sdxl_models" / IP_ADAPTERS_FILE["sdxl-vit-h"], mixed / "adapter.safetensors")
    with pytest.raises(UserError, match=f"takes {vith[1]}-wide image embeddings but its image encoder gives {bigg[1]}"):
        models.style_conditioning(style_png, str(mixed / "adapter.safetensors"), 1.0, "style", False)


def test_tiny_sdxl_stylises_with_a_style_image_through_the_cli(tmp_path, videos, style_png):
    """``tiny-sdxl`` carries the random tiny IP-Adapter (built for its UNet) and image encoder: the quick check."""
    out = tmp_path / "s.mp4"
    args = ["stylize", str(videos["moving"]), "-o", str(out), "-p", "x", "--model", "tiny-sdxl", "--guidance", "2",
            "--style-image", style_png, "--style-mode", "full", "--max-frames", "2", "-q"]  # fmt: skip
    assert cli.main(args) == 0 and read_record(out)["settings"]["style_image"] == style_png


# ---------------------------------------------------------------------------------------------------------------------
# Loading, scales, once per render


def test_the_sd15_preset_loads_from_a_hub_cache_shaped_like_h94(tmp_path, style_png, monkeypatch):
    """``--ip-adapter sd15`` (an SD1.5 model's default) reads ``h94/IP-Adapter``'s ``models/ip-adapter_sd15
    .safetensors`` and ``models/image_encoder`` from the hub cache, offline."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    snap = cache / "models--h94--IP-Adapter" / "snapshots" / ("0" * 40)
    save_tiny_ip_adapter(snap, tiny_components()["unet"])
    (cache / "models--h94--IP-Adapter" / "refs").mkdir()
    (cache / "models--h94--IP-Adapter" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    models = models_from_components(tiny_components(), "cpu", torch.float32, 2.0, "tiny")
    embeds = models.style_conditioning(style_png, "sd15", 1.0, "style", False)
    assert models.ip_adapter == "sd15" and embeds[0].shape == (1, 1, 32)
    assert type(models.pipe.image_encoder).__name__ == "CLIPVisionModelWithProjection"


def test_style_mode_scales_follow_the_unet_blocks():
    """InstantStyle's style block: the second transformer of the first up block with attention (SD1.5-shaped:
    ``up.block_1``; SDXL-shaped: ``up.block_0``, as InstantStyle names it); full: one scale everywhere."""

    def unet(down, up):
        shape = {"cross_attention_dim": 32, "norm_num_groups": 8, "sample_size": 8, "layers_per_block": 2}
        return UNet2DConditionModel(block_out_channels=(32,) * len(down), down_block_types=down, up_block_types=up,
                                    **shape)  # fmt: skip

    sd15 = unet(("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",), ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)
    sdxl = unet(("DownBlock2D",) + ("CrossAttnDownBlock2D",) * 2, ("CrossAttnUpBlock2D",) * 2 + ("UpBlock2D",))
    assert style_scales(sd15, 0.8, "style") == {"up": {"block_1": [0.0, 0.8, 0.0]}}
    assert style_scales(sdxl, 0.8, "style") == {"up": {"block_0": [0.0, 0.8, 0.0]}}
    assert style_scales(sd15, 0.8, "full") == 0.8


def test_style_mode_turns_on_the_style_block_only(tiny_models, style_png):
    tiny_models.style_conditioning(style_png, "tiny", 0.8, "style", False)
    scales = {n: p.scale[0] for n, p in tiny_models.pipe.unet.attn_processors.items() if hasattr(p, "scale")}
    assert scales == {n: (0.8 if n.startswith("up_blocks.1.attentions.1.") else 0.0) for n in scales}
    tiny_models.style_conditioning(style_png, "tiny", 0.5, "full", False)
    assert {p.scale[0] for p in tiny_models.pipe.unet.attn_processors.values() if hasattr(p, "scale")} == {0.5}
    tiny_models.style_conditioning(None, None, 1.0, "style", False)
    assert tiny_models.ip_adapter is None and tiny_models.pipe.unet.encoder_hid_proj is None


def test_the_reference_is_embedded_once_per_render_whatever_the_windows(tmp_path, videos, style_png):
    models = load_models("tiny", device="cpu")
    from lcm_video.pipelines.video_to_video import stylize

    models.style_conditioning(style_png, "tiny", 1.0, "style", False)  # load the adapter to count its encoder
    calls = []
    models.pipe.image_encoder.register_forward_hook(lambda *a: calls.append(1))
    models._style_cache.clear()
    opts = {"window": 2, "max_frames": 6, "quiet": True, "style_image": style_png}
    stylize(videos["moving"], tmp_path / "a.mp4", "x", models=models, **opts)  # 3 windows
    stylize(videos["moving"], tmp_path / "b.mp4", "x", models=models, **opts)  # the same image again: cached
    assert len(calls) == 1


def test_the_record_names_the_style_image_by_path_and_content(tmp_path, videos, style_png, tiny_models, capsys):
    import hashlib

    from lcm_video.pipelines.video_to_video import stylize

    out = tmp_path / "o.mp4"
    stylize(videos["moving"], out, "x", models=tiny_models, max_frames=2, quiet=True, style_image=style_png,
            style_scale=0.6, style_mode="full")  # fmt: skip
    rec = read_record(out)
    digest = hashlib.sha256(Path(style_png).read_bytes()).hexdigest()
    assert rec["style_image"]["sha256"] == digest
    assert rec["settings"]["style_image"] == style_png
    assert rec["settings"]["style_scale"] == 0.6 and rec["settings"]["style_mode"] == "full"
    assert cli.main(["info", str(out)]) == 0
    assert f"# style image sha256 {digest}" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------------------------------
# One-line errors, nothing written


def test_bad_style_input_is_one_line_and_writes_nothing(tmp_path, videos, style_png, capsys):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    not_ipa = tmp_path / "lora.safetensors"
    from safetensors.torch import save_file

    save_file({"unet.down.weight": torch.zeros(2, 2)}, str(not_ipa))
    out = tmp_path / "out.mp4"
    base = ["stylize", str(videos["moving"]), "-o", str(out), "-p", "x", "--model", "tiny", "-q", "--max-frames", "2"]
    for extra, expect in (
        (["--style-image", str(tmp_path / "missing.png")], "--style-image"),
        (["--style-image", str(text)], "is not a readable image"),
        (["--style-image", style_png, "--style-scale", "3"], "--style-scale must be in [0, 2], got 3"),
        (["--style-image", style_png, "--style-mode", "layout"], "--style-mode must be one of style, full"),
        (["--style-image", style_png, "--model", "toy"], "model 'toy' has no IP-Adapter"),
        (["--style-image", style_png, "--ip-adapter", "nope"], "is not an IP-Adapter name"),
        (["--style-image", style_png, "--model", "tiny-sdxl", "--ip-adapter", "sd15"], "is for sd15 models, this"),
        (["--style-image", style_png, "--ip-adapter", str(not_ipa)], "cannot load IP-Adapter"),
        (["--ip-adapter", "tiny"], "--ip-adapter is for a style image"),
        (["--style-image", style_png, "--backend", "openvino"], "use it with --backend torch"),
    ):
        assert cli.main(base + extra) == 2, extra
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and expect in err[0], (extra, err)
        assert not out.exists() and not list(tmp_path.glob("*.mp4*"))


def test_a_job_files_style_image_is_relative_to_it(tmp_path, style_png):
    import shutil

    import yaml

    from lcm_video.batch.jobs import load_jobs

    (tmp_path / "jobs" / "refs").mkdir(parents=True)
    shutil.copy(style_png, tmp_path / "jobs" / "refs" / "r.png")
    job = {"name": "g", "mode": "generate", "prompt": "x", "output": "g.mp4", "model": "tiny"}
    path = tmp_path / "jobs" / "jobs.yaml"
    path.write_text(yaml.safe_dump({"defaults": {"style_image": "refs/r.png"}, "jobs": [job]}))
    (only,) = load_jobs(path, tmp_path / "out")
    assert only.cfg.style.style_image == str(tmp_path / "jobs" / "refs" / "r.png")
    # a resumed batch does not mix segments made from an older reference image
    from lcm_video.batch.work import _fingerprint

    before = _fingerprint(only)
    Image.new("RGB", (8, 8)).save(tmp_path / "jobs" / "refs" / "r.png")
    assert _fingerprint(only) != before


@pytest.mark.slow  # two renders through the CLI
def test_rerun_warns_when_the_style_image_changed(tmp_path, videos, style_png, capsys):
    import shutil

    ref = tmp_path / "ref.png"
    shutil.copy(style_png, ref)
    out = tmp_path / "o.mp4"
    base = ["--model", "tiny", "-p", "x", "--max-frames", "2", "-q", "--style-image", str(ref)]
    assert cli.main(["stylize", str(videos["moving"]), "-o", str(out), *base]) == 0
    Image.new("RGB", (16, 16), (200, 10, 10)).save(ref)
    assert cli.main(["rerun", str(out), "-o", str(tmp_path / "again.mp4")]) == 0
    assert "the style image" in capsys.readouterr().err


def test_a_style_image_with_a_controlnet_and_the_plus_adapter(tmp_path, videos, style_png):
    """The tiny ControlNet is built from a UNet that carries an IP-Adapter (not copying its image projection), and
    both act in one UNet call."""
    from lcm_video.pipelines.video_to_video import stylize

    models = load_models("tiny", device="cpu")
    opts = {"max_frames": 3, "quiet": True, "control": ("canny",), "style_image": style_png, "ip_adapter": "tiny-plus"}
    res = stylize(videos["moving"], tmp_path / "c.mp4", "x", models=models, **opts)
    assert res.frames == 3 and models.ip_adapter == "tiny-plus"


def test_an_adapter_is_named_by_preset_file_or_hub_file(tmp_path):
    from lcm_video.errors import UserError
    from lcm_video.models.ip_presets import ip_adapter_source, ip_adapter_spec

    real = ip_adapter_spec("sd15")
    assert (real.repo, real.subfolder, real.weight_name, real.image_encoder) == (
        "h94/IP-Adapter", "models", "ip-adapter_sd15.safetensors", "models/image_encoder",
    )  # fmt: skip
    hub = ip_adapter_spec("h94/IP-Adapter/models/ip-adapter-plus_sd15.safetensors")
    assert (hub.repo, hub.subfolder, hub.weight_name, hub.image_encoder) == (
        "h94/IP-Adapter", "models", "ip-adapter-plus_sd15.safetensors", "models/image_encoder",
    )  # fmt: skip
    local = tmp_path / "ip" / "my_adapter.safetensors"
    local.parent.mkdir()
    local.write_bytes(b"x")
    mine = ip_adapter_spec(str(local))
    assert (mine.repo, mine.subfolder, mine.weight_name, mine.image_encoder) == (
        str(local.parent), "", "my_adapter.safetensors", "image_encoder",
    )  # fmt: skip
    assert ip_adapter_source("sd15-lcm-lora", None) == "sd15" and ip_adapter_source("tiny", None) == "tiny"
    assert ip_adapter_source("./some/sd15/folder", None) == "sd15"  # not a preset: taken to be SD1.5-family
    assert ip_adapter_source("toy", "sd15-plus") == "sd15-plus"  # --ip-adapter wins
    assert ip_adapter_source("lcm-lora-sdxl", None) == "sdxl" and ip_adapter_source("tiny-sdxl", None) == "tiny"
    assert ip_adapter_source("./some/folder", None, family="sdxl") == "sdxl"  # the loaded model's family
    for name, weights in IP_ADAPTERS_FILE.items():
        spec = ip_adapter_spec(name)
        assert (spec.repo, spec.subfolder, spec.weight_name) == ("h94/IP-Adapter", "sdxl_models", weights)
        assert spec.image_encoder == ("sdxl_models" if name == "sdxl" else "models") + "/image_encoder"
        assert ip_adapter_spec(f"h94/IP-Adapter/sdxl_models/{weights}").image_encoder == spec.image_encoder
    with pytest.raises(UserError, match="--ip-adapter sd15-plus is for sd15 models, this model is sdxl"):
        ip_adapter_source("lcm-lora-sdxl", "sd15-plus")
    with pytest.raises(UserError, match="use one of: sd15, sd15-plus, sd15-light, tiny, tiny-plus"):
        ip_adapter_source("./an/sd15/folder", "sdxl", family="sd15")


def test_live_with_a_style_image_is_stylise_a_frame_at_a_time(tmp_path, style_png):
    """Live takes stylise's settings, the style image too: its recording equals ``stylize --window 1``'s frames, the
    stream batch's within one level, and the record names the image."""
    import lcm_video
    from lcm_video.video.synthetic import lavfi_clip

    from .conftest import read_frames

    clip = lavfi_clip(tmp_path / "c.mp4", seconds=0.3)
    models = load_models("tiny", device="cpu")
    opts = {"models": models, "strength": 0.6, "seed": 3, "quiet": True, "crf": 0, "codec": "libx264rgb",
            "style_image": style_png}  # fmt: skip
    lcm_video.run_live(str(clip), tmp_path / "live.mkv", "x", **opts)
    lcm_video.run_live(str(clip), tmp_path / "sb.mkv", "x", stream_batch=True, **opts)
    lcm_video.stylize(clip, tmp_path / "file.mkv", "x", window=1, audio=False, **opts)
    live, sb, file = (read_frames(tmp_path / f).astype(int) for f in ("live.mkv", "sb.mkv", "file.mkv"))
    assert live.shape == file.shape and np.array_equal(live, file)
    assert np.abs(live - sb).max() <= 1
    assert read_record(tmp_path / "live.mkv")["style_image"]["path"] == str(Path(style_png).resolve())
