"""Motion-compensated blending (``--warp flow``): the flow and occlusions it finds on clips of known motion, the
latent warp, and how the blender uses them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lcm_video.metrics import evaluate
from lcm_video.temporal.blend import TemporalBlender
from lcm_video.temporal.flow import FlowEstimator, LatentMotion, latent_motion, warp_latent
from lcm_video.video.synthetic import frames_clip, motion_clip


@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_a_pan_moves_a_quarter_cell_and_a_cut_is_found(method):
    est = FlowEstimator(method)
    pan = motion_clip("pan", 128, 6)  # the camera moves 2 px right, 1 px down a frame: content 2 px left, 1 px up
    m = latent_motion(pan[2], pan[3], 8, est)
    assert not m.cut and m.valid.mean() > 0.6
    inner = m.flow[:, 2:-2, 2:-2]  # where each cell of frame 3 was in frame 2, in cells of 8 px: (+0.25, +0.125)
    if method == "dis":
        assert inner[0].mean().item() == pytest.approx(0.25, abs=0.04)
        assert inner[1].mean().item() == pytest.approx(0.125, abs=0.04)
    else:  # Farneback's windows see little texture on the smooth background: the right way, shorter
        assert 0.04 < inner[0].mean().item() <= 0.3 and 0.01 < inner[1].mean().item() <= 0.16
    cut = motion_clip("cut", 128, 8)
    assert [latent_motion(cut[i - 1], cut[i], 8, est).cut for i in range(1, 8)] == [False] * 3 + [True] + [False] * 3


def test_an_occluding_square_invalidates_the_cells_it_uncovers():
    clip = motion_clip("crossing", 128, 4)
    m = latent_motion(clip[1], clip[2], 8, FlowEstimator())
    assert 0.5 < m.valid.mean() < 0.98  # the square's trailing edge uncovers background the last frame did not show


def test_latent_warp_by_whole_cells_is_a_shift_and_zero_flow_is_the_identity():
    x = torch.randn(4, 6, 8)
    flow = torch.zeros(2, 6, 8)
    assert torch.equal(warp_latent(x, flow), x)
    flow[0] = 1.0  # each cell takes the value one cell to its right
    assert torch.allclose(warp_latent(x, flow)[:, :, :-1], x[:, :, 1:], atol=1e-6)


def test_the_blender_blends_only_valid_cells_and_never_across_a_cut():
    prev, cur = torch.zeros(2, 4, 3, 3), torch.ones(2, 4, 3, 3)
    valid = torch.ones(1, 3, 3)
    valid[0, 0, 0] = 0.0
    still = LatentMotion(torch.zeros(2, 3, 3), valid, cut=False)
    blender = TemporalBlender(beta=0.5)
    out = blender(torch.cat([prev[:1], cur[:1]]), 0, range(2), {1: still})
    assert out[1, :, 0, 0].eq(1).all()  # occluded: left alone
    assert out[1, :, 1, 1].eq(0.5).all()  # in place, half way
    blender = TemporalBlender(beta=0.5)
    out = blender(torch.cat([prev[:1], cur[:1]]), 0, range(2), {1: LatentMotion(still.flow, valid, cut=True)})
    assert out[1].eq(1).all()


@pytest.mark.slow
def test_eval_grades_with_either_flow_estimator(tmp_path):
    src = frames_clip(tmp_path / "pan.mp4", motion_clip("pan", 64, 6), fps=24)
    a, b = evaluate(src, src, flow="dis"), evaluate(src, src, flow="farneback")
    assert a.tof == pytest.approx(0, abs=1e-6) and b.tof == pytest.approx(0, abs=1e-6)
    assert a.warp_error != b.warp_error
    assert np.isfinite([a.warp_error, b.warp_error]).all()


def test_cross_frame_attention_over_identical_frames_is_self_attention(tiny_models):
    from lcm_video.temporal.attention import CrossFrameAttnProcessor, CrossFrameState

    attn = tiny_models.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1
    x = torch.randn(1, 16, attn.to_q.in_features).expand(3, -1, -1).contiguous()  # 3 frames, the same hidden states
    state = CrossFrameState("anchor+prev")
    state.start_window(range(3))
    state.begin_call(3, 3, 1)
    with torch.no_grad():
        plain = attn(x)
        cross = CrossFrameAttnProcessor(state, "l")(attn, x)
    assert torch.allclose(cross, plain, atol=1e-5)
    assert state.anchor[(0, "l")].shape == (1, 16, attn.to_q.in_features)


def test_cross_frame_renders_change_frames_and_leave_the_shared_models_as_they_were(tiny_models, tmp_path):
    from lcm_video import stylize

    src = frames_clip(tmp_path / "pan.mp4", motion_clip("pan", 64, 6), fps=24)
    before = {k: type(v) for k, v in tiny_models.unet.attn_processors.items()}
    off = stylize(src, tmp_path / "off.mp4", "x", models=tiny_models, quiet=True, crf=0, codec="libx264rgb")
    on = stylize(
        src, tmp_path / "on.mp4", "x", models=tiny_models, quiet=True, crf=0, codec="libx264rgb", cross_frame="anchor"
    )
    from .conftest import read_frames

    assert not np.array_equal(read_frames(off.output), read_frames(on.output))
    assert {k: type(v) for k, v in tiny_models.unet.attn_processors.items()} == before
