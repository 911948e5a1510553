"""``--control``: ControlNets beside the UNet. Parity with diffusers' ControlNet pipelines on tiny random models with a
tiny ControlNet saved to a folder, windows and segments, the annotators, control videos, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from diffusers import (
    AnimateDiffControlNetPipeline,
    ControlNetModel,
    LCMScheduler,
    StableDiffusionControlNetImg2ImgPipeline,
)
from diffusers.schedulers import scheduling_lcm
from einops import rearrange
from PIL import Image

from lcm_video import cli
from lcm_video.control.annotators import canny
from lcm_video.core.codec import LatentCodec, to_unit
from lcm_video.core.noise import FrameNoise
from lcm_video.core.schedule import LCMSchedule
from lcm_video.errors import UserError
from lcm_video.models.loading import load_models
from lcm_video.models.tiny import tiny_controlnet, tiny_motion_adapter
from lcm_video.pipelines.text_to_video import ClipGenerator
from lcm_video.pipelines.video_to_video import Stylizer, stylize
from lcm_video.settings.configs import GenerateConfig, StylizeConfig

from .conftest import read_frames
from .test_batch import write_jobs

NO_SAFETY = {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    from lcm_video.video.synthetic import lavfi_clip

    return lavfi_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", seconds=2.0)


@pytest.fixture(scope="module")
def lora_models():
    """tiny-lora: no w-embedding (diffusers' ControlNet pipelines pass none), classifier-free guidance above 1."""
    return load_models("tiny-lora", device="cpu")


@pytest.fixture(scope="module")
def nets(lora_models, tmp_path_factory):
    """Two tiny ControlNets saved as diffusers folders (what `--control-model TYPE=DIR` loads)."""
    root = tmp_path_factory.mktemp("controlnets")
    paths = []
    for seed in (0, 1):
        path = root / f"net{seed}"
        tiny_controlnet(lora_models.pipe.unet, seed=seed).save_pretrained(path)
        paths.append(path)
    return paths


def _frame(seed: int, h: int = 64, w: int = 48) -> np.ndarray:
    """uint8 (1, h, w, 3): blocks of colour, so canny finds edges."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 256, (1, h // 16, w // 16, 3), dtype=np.uint8)
    return cells.repeat(16, axis=1).repeat(16, axis=2)


@pytest.mark.parametrize(
    ("guidance", "kinds", "start", "end"),
    [(1.0, ("canny",), 0.0, 1.0), (1.5, ("canny",), 0.0, 1.0), (1.0, ("canny", "tile"), 0.25, 0.75)],
)
def test_stylize_with_control_equals_diffusers_controlnet_img2img(
    lora_models, nets, monkeypatch, guidance, kinds, start, end
):
    """One frame through the Stylizer (temporal options off) against ``StableDiffusionControlNetImg2ImgPipeline`` with
    an LCMScheduler, fed our keyed noise: one net, one with classifier-free guidance, two at once on half the steps
    (diffusers' ``MultiControlNetModel`` and ``control_guidance_start/end``). At strength 1: the SD img2img pipelines
    cut LCMScheduler's 4 steps to int(4 x strength), where ours (and diffusers' LCM img2img) runs 4 over the range."""
    scales = (0.8, 0.5)[: len(kinds)]
    control = tuple(f"{k}:{s}" for k, s in zip(kinds, scales, strict=True))
    models = tuple(f"{k}={p}" for k, p in zip(kinds, nets, strict=False))
    cfg = StylizeConfig.make(
        prompt="a mosaic",
        strength=1.0,
        steps=4,
        blend=0.0,
        seed=9,
        guidance=guidance,
        control=control,
        control_model=models,
        control_start=start,
        control_end=end,
    )
    frame = _frame(4)
    stylizer = Stylizer(lora_models, cfg, size=(48, 64))
    ours = stylizer.window(frame, range(1))
    expected_calls = 4 * len(kinds) if (start, end) == (0.0, 1.0) else 2 * len(kinds)  # steps 1-2 of 0-3
    assert stylizer.control.guide.calls == expected_calls

    comps = {k: getattr(lora_models.pipe, k) for k in ("vae", "text_encoder", "tokenizer", "unet")}
    controlnets = [ControlNetModel.from_pretrained(p) for p in nets[: len(kinds)]]
    ref_pipe = StableDiffusionControlNetImg2ImgPipeline(
        **comps,
        controlnet=controlnets if len(kinds) > 1 else controlnets[0],
        scheduler=LCMScheduler.from_config(lora_models.scheduler.config),
        **NO_SAFETY,
    )
    ref_pipe.set_progress_bar_config(disable=True)
    schedule = LCMSchedule.from_scheduler(lora_models.scheduler, 4, 1.0)
    latents = LatentCodec(comps["vae"]).encode(to_unit(torch.from_numpy(frame)))
    eps = FrameNoise(9, tuple(latents.shape[1:]), cfg.temporal.shared_noise).window([0])
    draws = iter([eps[k] for k in range(1, 4)])
    monkeypatch.setattr(scheduling_lcm, "randn_tensor", lambda *a, **k: next(draws))
    maps = {"canny": Image.fromarray(canny(frame[0])), "tile": Image.fromarray(frame[0])}
    images = [maps[k] for k in kinds]
    ref = ref_pipe(
        prompt="a mosaic",
        image=Image.fromarray(frame[0]),
        control_image=images if len(kinds) > 1 else images[0],
        latents=schedule.add_noise(latents, eps[0]),
        num_inference_steps=4,
        strength=1.0,
        guidance_scale=guidance,
        controlnet_conditioning_scale=list(scales) if len(kinds) > 1 else scales[0],
        control_guidance_start=start,
        control_guidance_end=end,
        output_type="np",
    ).images
    ref_u8 = (ref * 255).round().astype(np.uint8)
    diff = np.abs(ours.astype(int) - ref_u8.astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.999
    plain = Stylizer(lora_models, cfg.replace(control=()), size=(48, 64)).window(frame, range(1))
    assert np.abs(plain.astype(int) - ours).mean() > 0.3  # the control: the nets change the picture


def test_generate_with_control_equals_diffusers_animatediff_controlnet(tmp_path, monkeypatch):
    """A clip through the motion UNet with a control video against ``AnimateDiffControlNetPipeline`` fed our noise
    and the same maps (guidance 1.8: classifier-free guidance, the maps in both halves of the batch)."""
    from lcm_video.video.reader import probe
    from lcm_video.video.synthetic import lavfi_clip

    tiny_motion_adapter(zero_out=False).save_pretrained(tmp_path / "adapter")  # random: the motion path is live
    models = load_models("tiny-lora", device="cpu", motion_adapter=str(tmp_path / "adapter"))
    unet2d = load_models("tiny-lora", device="cpu").pipe.unet
    net_dir = tmp_path / "net"
    tiny_controlnet(unet2d).save_pretrained(net_dir)
    maps = lavfi_clip(tmp_path / "maps.mp4", "testsrc2", "64x48", "8", 1.0, audio=False)
    cfg = GenerateConfig.make(
        prompt="a red fox",
        frames=8,
        fps=8,
        guidance=1.8,
        seed=3,
        control=("canny:0.7",),
        control_model=(f"canny={net_dir}",),
        control_video=str(maps),
    )
    gen = ClipGenerator(models, cfg, (64, 48), control_video=probe(maps))
    ours = gen.window(range(8), range(8))
    assert gen.control.guide.calls == 4

    pics = read_frames(maps)
    ref_pipe = AnimateDiffControlNetPipeline(
        vae=models.pipe.vae,
        text_encoder=models.pipe.text_encoder,
        tokenizer=models.pipe.tokenizer,
        unet=unet2d,
        motion_adapter=tiny_motion_adapter(zero_out=False),
        controlnet=ControlNetModel.from_pretrained(net_dir),
        scheduler=LCMScheduler.from_config(models.scheduler.config),
    )
    ref_pipe.set_progress_bar_config(disable=True)
    eps = gen.sampler.noise.window(range(8))
    draws = iter([rearrange(eps[k], "f c h w -> 1 c f h w") for k in range(1, 4)])
    monkeypatch.setattr(scheduling_lcm, "randn_tensor", lambda *a, **k: next(draws))
    ref = ref_pipe(
        prompt="a red fox",
        num_frames=8,
        height=48,
        width=64,
        num_inference_steps=4,
        guidance_scale=1.8,
        conditioning_frames=[Image.fromarray(p) for p in pics],
        controlnet_conditioning_scale=0.7,
        latents=rearrange(eps[0], "f c h w -> 1 c f h w"),
        output_type="np",
    ).frames[0]
    ref_u8 = (np.asarray(ref) * 255).round().astype(np.uint8)
    diff = np.abs(ours.astype(int) - ref_u8.astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.999


@pytest.mark.slow  # 11 s: over the quick loop's budget (README), in the full suite
def test_windows_and_segments_with_control_give_one_renders_frames(tmp_path, clip, nets):
    """Control maps are made per window from the window's own frames: windows of 5 and of 16, and a batch cut into
    segments of 7 (cold starts with warm-up), give the frames of one render."""
    from lcm_video.batch import run as batch

    opts = {
        "model": "tiny-lora",
        "device": "cpu",
        "crf": 0,
        "codec": "libx264rgb",
        "max_frames": 20,
        "control": ["canny:0.8"],
        "control_model": [f"canny={nets[0]}"],
    }
    whole = stylize(clip, tmp_path / "whole.mp4", "x", quiet=True, **opts)
    small = stylize(clip, tmp_path / "small.mp4", "x", quiet=True, window=5, **opts)
    job = {"name": "s", "mode": "stylize", "input": str(clip), "prompt": "x", "output": "s.mp4"}
    batch.run_batch(write_jobs(tmp_path, [job], opts), tmp_path / "out", segment_frames=7, quiet=True)
    a = read_frames(whole.output).astype(int)
    assert np.abs(a - read_frames(small.output)).max() <= 2
    assert np.abs(a - read_frames(tmp_path / "out" / "s.mp4")).max() <= 2
    plain = stylize(
        clip, tmp_path / "plain.mp4", "x", quiet=True, **{k: v for k, v in opts.items() if "control" not in k}
    )
    assert np.abs(a - read_frames(plain.output)).mean() > 2


def test_canny_finds_the_edges_of_a_shape_and_tile_is_the_frame():
    img = np.zeros((32, 32, 3), np.uint8)
    img[8:24, 8:24] = (200, 40, 40)
    edges = canny(img)
    assert edges.shape == (32, 32, 3) and set(np.unique(edges)) == {0, 255}
    rows, cols = np.nonzero(edges[..., 0])
    assert rows.min() >= 7 and rows.max() <= 24 and cols.min() >= 7 and cols.max() <= 24
    assert edges[16, 16, 0] == 0 and edges[2, 2, 0] == 0  # inside and outside are flat
    # Two colours of equal brightness still meet at an edge: Canny on the colour image, not on grey.
    iso = np.zeros((32, 32, 3), np.uint8)
    iso[:, :16] = (180, 0, 0)
    iso[:, 16:] = (0, 92, 0)
    assert canny(iso)[..., 0].any()


def test_control_video_is_read_by_time_and_scaled(tmp_path, clip, nets, capsys):
    """--control-video maps replace the annotator; a video of another size is scaled (said once), one too short is
    refused before anything loads."""
    from lcm_video.video.synthetic import lavfi_clip

    maps = lavfi_clip(tmp_path / "maps.mp4", "testsrc2", "96x128", "12", 2.0, audio=False)  # another size and rate
    out = tmp_path / "o.mp4"
    base = ["stylize", str(clip), "-o", str(out), "-p", "x", "--model", "tiny-lora", "--max-frames", "6", "-q"]
    control = ["--control", "canny", "--control-model", f"canny={nets[0]}"]
    assert cli.main([*base, *control, "--control-video", str(maps)]) == 0
    err = capsys.readouterr().err
    assert err.count("--control-video is 96x128: its frames are scaled to") == 1
    short = lavfi_clip(tmp_path / "short.mp4", "testsrc2", "64x48", "12", 2 / 12, audio=False)
    assert cli.main([*base, "-o", str(tmp_path / "s.mp4"), *control, "--control-video", str(short)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--control-video" in err[0] and "lasts 0.17 s" in err[0], err
    assert not (tmp_path / "s.mp4").exists()


BAD = {
    "unknown type": (["--control", "sketch"], "'sketch' is not one of canny, tile, depth"),
    "bad scale": (["--control", "canny:x"], "must be TYPE[:SCALE]"),
    "scale range": (["--control", "canny:3"], "canny:3: the value must be in [0, 2]"),
    "model without control": (["--control-model", "canny=x"], "add --control TYPE"),
    "model of another type": (["--control", "canny", "--control-model", "depth=x"], "there is no --control depth"),
    "start after end": (["--control", "canny", "--control-start", "0.8", "--control-end", "0.5"], "must be before"),
    "video for two": (["--control", "canny", "--control", "tile", "--control-video", "x.mp4"], "one --control"),
    "toy has canny only": (["--control", "depth", "--model", "toy"], "has a ControlNet for canny only"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_control_input_is_one_line_and_writes_nothing(tmp_path, clip, capsys, case):
    extra, expect = BAD[case]
    out = tmp_path / "o.mp4"
    argv = ["stylize", str(clip), "-o", str(out), "-p", "x", "--max-frames", "2", "-q"]
    if "--model" not in extra:
        argv += ["--model", "tiny"]
    assert cli.main(argv + extra) == 2
    # the toy at 64x48 is also told it renders far below its trained size: a note, not part of the error
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("lcm-video: note:")]
    assert len(err) == 1 and expect in err[0], err
    assert not out.exists()


def test_generate_needs_a_control_video_and_a_controlnet_folder_must_be_one(tmp_path, clip, capsys):
    out = tmp_path / "g.mp4"
    assert cli.main(["generate", "-p", "x", "-o", str(out), "--model", "tiny", "--control", "canny", "-q"]) == 2
    assert "give the control maps with --control-video" in capsys.readouterr().err
    unet_dir = tmp_path / "unet"
    unet_dir.mkdir()
    (unet_dir / "config.json").write_text(json.dumps({"_class_name": "UNet2DConditionModel"}))
    argv = ["stylize", str(clip), "-o", str(out), "-p", "x", "--model", "tiny", "--max-frames", "2", "-q"]
    assert cli.main([*argv, "--control", "canny", "--control-model", f"canny={unet_dir}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds a UNet2DConditionModel, not a ControlNetModel" in err[0], err
    assert not out.exists()


def test_an_annotator_from_a_missing_extra_names_the_extra(monkeypatch):
    import builtins

    from lcm_video.control.annotators import annotator

    real = builtins.__import__

    def no_aux(name, *a, **k):
        if name == "controlnet_aux":
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_aux)
    with pytest.raises(UserError, match=r'--control softedge needs controlnet_aux, .*pip install -e "\.\[control\]"'):
        annotator("softedge")


def test_depth_annotator_loads_a_depth_anything_folder_through_transformers(tmp_path):
    """The depth annotator's real path (transformers' depth-estimation pipeline) on a random Depth-Anything model
    saved to a folder: a grey map of the frame's size, the same in every channel."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTImageProcessor

    from lcm_video.control.annotators import Depth

    backbone = Dinov2Config(
        hidden_size=32, num_attention_heads=2, num_hidden_layers=4, intermediate_size=64, patch_size=14,
        image_size=56, out_features=["stage1", "stage2", "stage3", "stage4"], reshape_hidden_states=False,
    )  # fmt: skip
    cfg = DepthAnythingConfig(
        backbone_config=backbone, neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16, head_hidden_size=8,
        reassemble_hidden_size=32,
    )  # fmt: skip
    torch.manual_seed(0)
    DepthAnythingForDepthEstimation(cfg).save_pretrained(tmp_path)
    DPTImageProcessor(size={"height": 56, "width": 56}, keep_aspect_ratio=True, ensure_multiple_of=14).save_pretrained(
        tmp_path
    )
    out = Depth(str(tmp_path))(_frame(2)[0])
    assert out.shape == (64, 48, 3) and out.dtype == np.uint8
    assert np.array_equal(out[..., 0], out[..., 2]) and out.std() > 0
    with pytest.raises(UserError, match="--control depth: cannot load its annotator"):
        Depth(str(tmp_path / "missing"))


def test_a_resumed_batch_job_reads_its_annotated_maps_back_instead_of_annotating_again(
    tmp_path, clip, nets, monkeypatch
):
    """Maps of an annotator with a model are kept in the job's work folder, one file per source frame: a segment
    rendered again (after a crash) reads them back; the frames are the same."""
    from lcm_video.batch import run as batch
    from lcm_video.control import annotators

    calls = []

    class CountingDepth:  # stands in for Depth-Anything (no weights here): canny, counted
        def __init__(self, *a, **k):
            pass

        def __call__(self, frame):
            calls.append(1)
            return canny(frame)

    monkeypatch.setattr(annotators, "Depth", CountingDepth)
    opts = {
        "model": "tiny-lora", "device": "cpu", "crf": 0, "codec": "libx264rgb", "max_frames": 14,
        "control": ["depth"], "control_model": [f"depth={nets[0]}"], "blend": 0.0, "pixel_blend": 0.0,
    }  # fmt: skip
    job = {"name": "s", "mode": "stylize", "input": str(clip), "prompt": "x", "output": "s.mp4"}
    jobs = write_jobs(tmp_path, [job], opts)
    batch.run_batch(jobs, tmp_path / "out", segment_frames=7, quiet=True)
    first = read_frames(tmp_path / "out" / "s.mp4")
    cached = sorted((tmp_path / "out").rglob("control/depth/*.png"))
    assert len(calls) == len(cached) == 14  # no blending: no warm-up frames, each frame annotated once
    for stale in [*(tmp_path / "out").rglob("seg_*0007*"), *(tmp_path / "out").rglob("done.json")]:
        stale.unlink()  # both segments (0-7, 7-14) as if they had never finished: each renders again
    (tmp_path / "out" / "s.mp4").unlink()
    calls.clear()
    batch.run_batch(jobs, tmp_path / "out", segment_frames=7, quiet=True)
    assert calls == [] and np.array_equal(read_frames(tmp_path / "out" / "s.mp4"), first)
