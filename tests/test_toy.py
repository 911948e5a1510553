"""The toy models trained here (``toy-teacher``, and ``toy``: its LCM-LoRA by ``lcm-video distill``) load from the
package through the project's loading code, follow their prompts and their input video."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lcm_video
from lcm_video import cli
from lcm_video.models.presets import PRESETS, WEIGHTS, preset_path
from lcm_video.toy.judge import classify, plain_prompts, video_iou
from lcm_video.toy.world import Scene
from lcm_video.video.synthetic import frames_clip

from .conftest import read_frames

SIZE = PRESETS["toy"].size  # the side the toy models were trained at


def test_the_weights_ship_with_the_package_and_stay_small():
    size = sum(p.stat().st_size for p in WEIGHTS.rglob("*") if p.is_file())
    assert size <= 25 * 10**6, size  # issue 27's budget for all the toy weights (15.8 MiB with the ControlNet)
    assert (WEIGHTS / "toy-teacher" / "model_index.json").is_file()
    assert (WEIGHTS / "toy-canny" / "config.json").is_file()
    assert (WEIGHTS / "toy-taesd" / "config.json").is_file()
    assert all(preset_path(s) != s for s in PRESETS["toy"].lora)


def test_fast_takes_the_toys_own_tiny_autoencoder_which_keeps_its_pictures():
    """--fast with the toy presets loads the TAESD distilled here from the toy's autoencoder (``train_toy taesd``):
    its round trip of toy pictures at 128 px is as faithful as the autoencoder's (measured on 64: 25.8 dB against
    23.7), in its latent space (the UNet's: its decoder on the autoencoder's latents, 24.5 dB)."""
    from diffusers import AutoencoderTiny

    from lcm_video.core.codec import LatentCodec, to_uint8, to_unit
    from lcm_video.metrics import psnr
    from lcm_video.toy.world import random_picture

    full = lcm_video.load_models("toy", device="cpu", dtype="float32").pipe.vae
    tiny = lcm_video.load_models("toy", vae=PRESETS["toy"].fast_vae, device="cpu", dtype="float32").pipe.vae
    assert isinstance(tiny, AutoencoderTiny)
    rng = np.random.default_rng(7)
    x = to_unit(torch.from_numpy(np.stack([random_picture(rng, SIZE)[0] for _ in range(16)])))
    ref, fast = LatentCodec(full), LatentCodec(tiny)
    ok = (x + 1) / 2
    assert psnr(ok.numpy(), (to_uint8(fast.decode(fast.encode(x))).permute(0, 3, 1, 2).float() / 255).numpy()) > 24
    assert psnr(ok.numpy(), (to_uint8(fast.decode(ref.encode(x))).permute(0, 3, 1, 2).float() / 255).numpy()) > 23


@pytest.fixture(scope="module")
def toy():
    return lcm_video.load_models("toy", device="cpu")


def test_toy_draws_the_asked_colour_and_shape(toy):
    """Unlike random weights, the toy LCM draws what it is asked, in four steps: the colour and the shape (judged by
    ``lcm_video.toy.judge.classify``) for 12 prompts covering every colour and shape. Measured 12 of 12
    (BENCHMARKS.md has the adherence over 64 prompts: 96.9%); random weights: 0-1."""
    from diffusers import LCMScheduler, StableDiffusionPipeline

    pipe = toy.pipe
    view = StableDiffusionPipeline(
        vae=pipe.vae,
        text_encoder=pipe.text_encoder,
        tokenizer=pipe.tokenizer,
        unet=pipe.unet,
        scheduler=LCMScheduler.from_config(pipe.scheduler.config),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    view.set_progress_bar_config(disable=True)
    triples = plain_prompts(12, seed=1)
    images = view(
        [Scene(shape, colour, bg, 0, 0, 0).caption for colour, shape, bg in triples],
        height=SIZE,
        width=SIZE,
        num_inference_steps=4,
        guidance_scale=1.0,
        output_type="np",
        generator=torch.Generator().manual_seed(0),
    ).images
    pixels = (np.clip(images, 0, 1) * 255).round().astype(np.uint8)
    got = [classify(img, bg) for img, (_, _, bg) in zip(pixels, triples, strict=True)]
    hits = sum(g == (colour, shape) for g, (colour, shape, _) in zip(got, triples, strict=True))
    assert hits >= 10, list(zip(got, triples, strict=True))


@pytest.mark.slow  # 11 s: over the quick loop's budget (README), in the full suite
@pytest.mark.parametrize("fast", [False, True])
def test_toy_restyles_a_moving_square_where_it_is(tmp_path, fast):
    """The issue's video check at its strength, 0.6: a red square moving over white, restyled to "a blue square on a
    white background", is blue where the source's square is: IoU ≥ 0.7 on every frame (measured at this seed: min
    0.72, mean 0.77; with --fast, the toy's own TAESD: 0.74, 0.78; other seeds in BENCHMARKS.md)."""

    def restyle(src, prompt):
        clip = frames_clip(tmp_path / "red_square.mp4", src, fps=24)
        opts = dict(model="toy", strength=0.6, seed=0, quiet=True, fast=fast)
        lcm_video.stylize(clip, tmp_path / "out.mp4", prompt, **opts)
        return read_frames(tmp_path / "out.mp4")

    got = video_iou(restyle, size=SIZE)
    assert got["video_iou_min"] >= 0.7, got


def test_the_object_mask_is_what_is_not_the_drawn_background_whatever_its_colour():
    """A square drawn half yellow, half orange (as the toy student draws its golden yellow) on a background drawn
    off-white: the object is the whole square, where the yellow region is half of it."""
    from lcm_video.toy.judge import nearest_mask, object_mask, palette_index
    from lcm_video.toy.world import COLOURS

    frame = np.full((1, 32, 32, 3), (235, 225, 240), np.uint8)  # a pale lavender: nearest to white
    frame[0, 8:24, 8:16] = COLOURS["yellow"]
    frame[0, 8:24, 16:24] = COLOURS["orange"]
    square = np.zeros((1, 32, 32), bool)
    square[0, 8:24, 8:24] = True
    assert np.array_equal(object_mask(palette_index(frame)), square)
    assert nearest_mask(frame, "yellow").sum() == square.sum() // 2


def _object_track(frames: np.ndarray, background: str) -> tuple[np.ndarray, list[int]]:
    """The centroid (x, y) of the non-background pixels of each uint8 (f, h, w, 3) frame, float (f, 2), and each
    frame's count of connected regions of them larger than 0.5 % of the frame."""
    import cv2

    from lcm_video.toy.judge import nearest_mask

    mask = ~nearest_mask(frames, background)
    ys, xs = np.indices(mask.shape[1:])
    area = mask.sum((1, 2))
    track = np.stack([(mask * xs).sum((1, 2)) / area, (mask * ys).sum((1, 2)) / area], 1)
    regions = []
    for m in mask:
        _, _, stats, _ = cv2.connectedComponentsWithStats(m.astype(np.uint8), connectivity=4)
        regions.append(int((stats[1:, cv2.CC_STAT_AREA] > 0.005 * m.size).sum()))
    return track, regions


@pytest.mark.slow  # 10 s: over the quick loop's budget (README), in the full suite
def test_generate_with_toy_pairs_its_trained_motion_module_which_keeps_one_object(tmp_path):
    """The README's generate quick start: ``--model toy`` pairs the toy with ``toy-motion`` (its motion module,
    trained and distilled here). Every frame shows one object on the asked blue background, in the yellow-orange
    range (the distilled module shifts the toy's yellow: mean (230, 173, 34) at this seed, the palette's yellow is
    (240, 220, 40), orange (245, 140, 30); README says so), and the object moves as one: its centroid's largest step
    between frames is a fraction of a pixel to a few, where with the identity ``tiny`` module the toy redraws it
    elsewhere each frame (seed 0, 8 frames: largest steps 0.9 px against 37.9 px when measured)."""
    from lcm_video.toy.judge import nearest_mask

    steps = {}
    for motion in ("toy-motion", "tiny"):
        out = tmp_path / f"{motion}.mp4"
        args = ["generate", "-p", "a yellow square on a blue background", "-o", str(out), "--model", "toy"]
        extra = [] if motion == "toy-motion" else ["--motion-adapter", "tiny"]
        assert cli.main([*args, *extra, "--frames", "8", "-q"]) == 0
        frames = read_frames(out)
        assert frames.shape == (8, SIZE, SIZE, 3)  # the preset's own size by default
        track, regions = _object_track(frames, "blue")
        steps[motion] = np.linalg.norm(np.diff(track, axis=0), axis=1)
        if motion == "toy-motion":
            assert regions == [1] * 8, regions
            warm = nearest_mask(frames, "yellow") | nearest_mask(frames, "orange")
            assert (warm.sum((1, 2)) > 0.85 * (~nearest_mask(frames, "blue")).sum((1, 2))).all()  # edges: 9-11 %
    print({k: v.round(1).tolist() for k, v in steps.items()})
    assert steps["toy-motion"].max() <= 3.0
    assert steps["toy-motion"].max() < steps["tiny"].max() / 2


@pytest.mark.slow
def test_the_training_script_reproduces_its_weights_bit_for_bit(tmp_path):
    """Two runs of the same stages with the same seeds give identical tensors (the recipe's reproducibility on one
    machine; short runs, small pools)."""
    from safetensors.torch import load_file

    from benchmarks.train_toy import train_ae, train_teacher

    for run in ("a", "b"):
        train_ae(tmp_path / run, steps=3, batch=4, seed=0, pool=32)
        train_teacher(tmp_path / run, steps=3, batch=8, seed=0, pool=64)
    for part in (
        "vae/diffusion_pytorch_model",
        "toy-teacher/unet/diffusion_pytorch_model",
        "toy-teacher/text_encoder/model",
    ):
        a, b = (load_file(tmp_path / run / f"{part}.safetensors") for run in "ab")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), part


@pytest.mark.slow  # 6 s: over the quick loop's budget (README), in the full suite
def test_the_shipped_toy_controlnet_keeps_the_layout_at_strength_one(tmp_path):
    """--model toy --control canny (the ControlNet trained here, shipped): at strength 1 a restyle without control
    puts the square anywhere (per-frame IoU with the source's 0.17-0.6 at 128 px); with it the square stays where the
    source's edges are (measured 0.90-0.92 over seeds 0-1, 24 frames; asked here: ≥ 0.8 on 8 frames)."""
    from lcm_video.toy.judge import mask_iou, nearest_mask, square_clip
    from lcm_video.video.synthetic import frames_clip

    src = square_clip(8, 128)
    clip = frames_clip(tmp_path / "sq.mp4", src, fps=24)
    out = tmp_path / "o.mp4"
    args = ["stylize", str(clip), "-o", str(out), "-p", "a blue square on a white background", "--model", "toy"]
    assert cli.main([*args, "--strength", "1", "--control", "canny", "--crf", "0", "-q"]) == 0
    ious = mask_iou(nearest_mask(src, "red"), nearest_mask(read_frames(out), "blue"))
    assert ious.min() >= 0.8, ious
