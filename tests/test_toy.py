"""The toy models trained here (``toy-teacher``, and ``toy``: its LCM-LoRA by ``lcm-video distill``) load from the
package through the project's loading code, follow their prompts and their input video."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

import lcm_video
from lcm_video import cli
from lcm_video.models.presets import PRESETS, WEIGHTS, preset_path
from lcm_video.train.toy import Scene

from .conftest import ROOT, read_frames

sys.path.insert(0, str(ROOT / "scripts"))
from eval_toy import classify, nearest_mask, plain_prompts  # noqa: E402


def test_the_weights_ship_with_the_package_and_stay_small():
    size = sum(p.stat().st_size for p in WEIGHTS.rglob("*") if p.is_file())
    assert size <= 15 * 2**20, size
    assert (WEIGHTS / "toy-teacher" / "model_index.json").is_file()
    assert all(preset_path(s) != s for s in PRESETS["toy"].lora)


@pytest.fixture(scope="module")
def toy():
    return lcm_video.load_models("toy", device="cpu")


def test_toy_draws_the_asked_colour_and_shape(toy):
    """Unlike random weights, the toy LCM draws what it is asked, in four steps: the colour and the shape (judged by
    the evaluation script's classifier) of each of 12 prompts covering every colour and shape."""
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
        height=64,
        width=64,
        num_inference_steps=4,
        guidance_scale=1.0,
        output_type="np",
        generator=torch.Generator().manual_seed(0),
    ).images
    pixels = (np.clip(images, 0, 1) * 255).round().astype(np.uint8)
    got = [classify(img, bg) for img, (_, _, bg) in zip(pixels, triples, strict=True)]
    hits = sum(g == (colour, shape) for g, (colour, shape, _) in zip(got, triples, strict=True))
    assert hits >= 10, list(zip(got, triples, strict=True))  # random weights: ~0


def test_generate_with_toy_and_the_tiny_motion_adapter_runs(tmp_path):
    out = tmp_path / "toy.mp4"
    assert (
        cli.main(
            [
                "generate",
                "-p",
                "a red circle on a white background",
                "-o",
                str(out),
                "--model",
                "toy",
                "--frames",
                "8",
                "-q",
            ]
        )
        == 0
    )
    frames = read_frames(out)
    assert frames.shape == (8, 64, 64, 3)
    assert nearest_mask(frames, "white").mean() > 0.2  # not noise: a good part of the frame is the asked background
