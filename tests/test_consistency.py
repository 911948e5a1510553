"""Temporal properties of the stylise path, checked on the tiny model with in-memory frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lcm_video.pipelines.video_to_video import Stylizer
from lcm_video.settings.configs import StylizeConfig
from lcm_video.video.plan import FramePlan
from lcm_video.video.reader import FrameReader, probe

from .conftest import STYLE, with_style


def render(models, frames: torch.Tensor, window: int, **opts) -> torch.Tensor:
    """uint8 (n, h, w, 3) source → uint8 (n, h, w, 3) output, cut into windows of ``window`` frames."""
    cfg = StylizeConfig.make(prompt="stained glass", window=window, **opts)
    stylizer = Stylizer(models, cfg)
    plan = FramePlan.for_clip(frames.shape[0], 30)
    out = [stylizer.window(frames[w.start : w.stop].numpy(), w.indices) for w in plan.windows(window)]
    return torch.from_numpy(np.concatenate(out))


def mean_step(frames: torch.Tensor) -> float:
    """Mean absolute difference between consecutive frames, in 0-255 units."""
    f = frames.float()
    return (f[1:] - f[:-1]).abs().mean().item()


@pytest.fixture(scope="module")
def moving_frames():
    """12 frames of a smooth random texture panning 3 px per frame: uint8 (12, 48, 64, 3)."""
    g = torch.Generator().manual_seed(0)
    base = torch.nn.functional.interpolate(torch.rand(1, 3, 12, 40, generator=g), size=(48, 160), mode="bicubic")
    base = (base.clamp(0, 1) * 255).round().to(torch.uint8)[0].permute(1, 2, 0)
    return torch.stack([base[:, 3 * i : 3 * i + 64] for i in range(12)])


@pytest.fixture(scope="module")
def static_frames(videos):
    info = probe(videos["static"])
    frames = torch.from_numpy(FrameReader(info, (64, 48)).read(range(6)))
    assert all(torch.equal(frames[0], f) for f in frames)  # the source really is static
    return frames


def test_static_source_with_fully_shared_noise_gives_identical_frames(tiny_models, static_frames):
    out = render(tiny_models, static_frames, window=4, shared_noise=1.0, blend=0.0)
    assert all(torch.equal(out[0], f) for f in out)


def test_static_source_with_independent_noise_flickers(tiny_models, static_frames):
    out = render(tiny_models, static_frames, window=4, shared_noise=0.0, blend=0.0, pixel_blend=0.0)
    assert mean_step(out) > 1.0


def test_blending_lowers_frame_to_frame_difference_on_a_moving_source(tiny_models, moving_frames):
    assert mean_step(moving_frames) > 1.0  # the source moves
    plain = render(tiny_models, moving_frames, window=4, shared_noise=0.5, blend=0.0, pixel_blend=0.0)
    blended = render(tiny_models, moving_frames, window=4, shared_noise=0.5, blend=0.5, pixel_blend=0.0)
    assert mean_step(blended) < 0.9 * mean_step(plain)


# Every few-step method: TCD and DDIM re-noise with keyed noise (eta > 0), Euler does not.
SCHEDULERS = [
    {"scheduler": "tcd", "eta": 0.5, "strength": 0.75},
    {"scheduler": "ddim-trailing", "eta": 0.5, "strength": 0.75},
    {"scheduler": "euler-trailing", "strength": 0.75},
]


@pytest.mark.parametrize(
    "blend,shared,extra",
    [(0.5, 0.5, {}), (0.0, 0.0, {}), (0.5, 0.5, {"warp": "flow"}), (0.5, 0.5, {"cross_frame": "anchor+prev"})]
    + [(0.5, 0.5, sched) for sched in SCHEDULERS]
    # an IP-Adapter's reference (style block only, every block with cross-frame attention over its processors)
    + [
        pytest.param(0.5, 0.5, {"style_image": STYLE}, id="style"),
        pytest.param(
            0.5,
            0.5,
            {"style_image": STYLE, "style_mode": "full", "cross_frame": "anchor+prev"},
            id="style-full-cross",
            marks=pytest.mark.slow,
        ),
    ],
)
def test_window_size_does_not_change_any_frame(tiny_models, moving_frames, style_image, blend, shared, extra):
    extra = with_style(extra, style_image)
    a = render(tiny_models, moving_frames, window=3, blend=blend, shared_noise=shared, **extra)
    b = render(tiny_models, moving_frames, window=16, blend=blend, shared_noise=shared, **extra)
    diff = (a.int() - b.int()).abs()
    # Windows of 3 vs 16 (the whole 12 frames in one): the UNet sees batches of 3 vs 12; BLAS may round the
    # last float bit differently, nothing more.
    assert diff.max().item() <= 1
    assert (diff == 0).float().mean().item() > 0.999


@pytest.fixture(scope="module")
def tiny_sdxl():
    from lcm_video.models.loading import load_models

    return load_models("tiny-sdxl", device="cpu", dtype="float32")


@pytest.mark.parametrize(
    "extra",
    [{"negative_prompt": "blurry"}, {"cross_frame": "anchor+prev"}, SCHEDULERS[0], {"prompt_at": ["6=a forest"]}]
    # residual CFG: each frame's negative from its own latents, whatever window it falls in
    + [{"cfg_type": "self"}, {"cfg_type": "initialize", **SCHEDULERS[0]}],
)
def test_window_size_does_not_change_any_frame_of_an_sdxl_model(tiny_sdxl, moving_frames, extra):
    """SDXL's pooled text and time ids (CFG on: tiny-sdxl's guidance is 1.5) keep windows 3 and 16 identical."""
    a = render(tiny_sdxl, moving_frames, window=3, blend=0.5, shared_noise=0.5, **extra)
    b = render(tiny_sdxl, moving_frames, window=16, blend=0.5, shared_noise=0.5, **extra)
    diff = (a.int() - b.int()).abs()
    assert diff.max().item() <= 1
    assert (diff == 0).float().mean().item() > 0.999


@pytest.mark.slow  # bfloat16 on a CPU without it in hardware is emulated: minutes; float32 (tiny) stays quick
def test_window_size_does_not_change_any_frame_of_the_trained_toy_in_bfloat16(moving_frames):
    from lcm_video.models.loading import load_models

    toy = load_models("toy", device="cpu", dtype="bfloat16")
    frames = torch.nn.functional.interpolate(moving_frames.permute(0, 3, 1, 2).float(), size=(96, 128))
    frames = frames.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    for extra in ({}, {"cross_frame": "anchor+prev"}):
        a, b = render(toy, frames, window=3, **extra), render(toy, frames, window=8, **extra)
        assert (a.int() - b.int()).abs().max().item() <= 1


def test_steps_are_steps_at_any_strength(tiny_models, static_frames):
    for strength, steps in [(0.1, 4), (0.5, 4), (1.0, 4), (0.5, 2), (0.9, 7)]:
        cfg = StylizeConfig.make(prompt="x", strength=strength, steps=steps, window=6)
        stylizer = Stylizer(tiny_models, cfg)
        stylizer.window(static_frames.numpy(), range(6))
        assert stylizer.sampler.denoiser.calls == steps
        assert len(set(stylizer.sampler.schedule.timesteps)) == steps


def test_a_window_goes_through_the_unet_as_one_batch(tiny_models, moving_frames):
    sizes = []
    hook = tiny_models.unet.register_forward_pre_hook(
        lambda m, args, kw: sizes.append(args[0].shape[0]), with_kwargs=True
    )
    try:
        render(tiny_models, moving_frames[:10], window=4, steps=2)
    finally:
        hook.remove()
    assert sizes == [4] * 6  # 3 windows x 2 steps; the 2-frame tail is padded to the same shape
