"""Motion-compensated blending (``--warp flow``): the flow and occlusions it finds on clips of known motion, the
latent warp, how the blender uses them, and the fusion of decoded frames (``--pixel-blend``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lcm_video.metrics import evaluate
from lcm_video.temporal.blend import TemporalBlender
from lcm_video.temporal.flow import FlowEstimator, LatentMotion, fuse_frame, latent_motion, warp_latent
from lcm_video.video.synthetic import frames_clip, motion_clip


@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_a_pan_moves_a_quarter_cell_and_a_cut_is_found(method):
    est = FlowEstimator(method)
    pan = motion_clip("pan", 128, 6)  # the camera moves 2 px right, 1 px down a frame: content 2 px left, 1 px up
    m = latent_motion(pan[2], pan[3], 8, est)
    assert not m.cut and m.valid.mean() > 0.6
    inner = m.flow[:, 2:-2, 2:-2]  # where each cell of frame 3 was in frame 2, in cells of 8 px: (+0.25, +0.125)
    if method == "dis":
        assert inner[0].mean().item() == pytest.approx(0.25, abs=0.01)
        assert inner[1].mean().item() == pytest.approx(0.125, abs=0.01)
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


def test_the_blender_warps_valid_cells_blends_occluded_ones_in_place_and_never_across_a_cut():
    prev = torch.arange(9.0).reshape(1, 1, 3, 3).expand(1, 4, 3, 3)
    cur = torch.full((1, 4, 3, 3), 100.0)
    valid = torch.ones(1, 3, 3)
    valid[0, 0, 0] = 0.0  # occluded: the previous frame does not show it
    valid[0, 1, 0] = 0.5  # half of the cell's pixels occluded
    moving = LatentMotion(torch.tensor([1.0, 0.0]).view(2, 1, 1).expand(2, 3, 3), valid, cut=False)
    out = TemporalBlender(beta=0.5)(torch.cat([prev, cur]), 0, range(2), {1: moving})[1, 0]
    assert out[0, 0].item() == pytest.approx(0.5 * 100 + 0.5 * 0)  # in place, as without flow
    assert out[0, 1].item() == pytest.approx(0.5 * 100 + 0.5 * 2)  # the cell to its right, moved onto it
    assert out[1, 0].item() == pytest.approx(0.5 * 100 + 0.5 * (0.5 * 3 + 0.5 * 4))
    cut = TemporalBlender(beta=0.5)(torch.cat([prev, cur]), 0, range(2), {1: LatentMotion(moving.flow, valid, True)})
    assert cut[1].eq(100).all()


def test_pixel_fusion_moves_the_previous_frame_keeps_occluded_pixels_and_never_crosses_a_cut():
    rng = np.random.default_rng(0)
    cur = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    prev = rng.uniform(0, 255, (6, 8, 3)).astype(np.float32)
    flow = np.zeros((6, 8, 2), np.float32)
    flow[..., 0] = 1.0  # each pixel was one pixel to its right in the previous frame
    valid = np.ones((6, 8), bool)
    valid[2, 3] = False  # occluded: the previous frame does not show it
    m = LatentMotion(None, None, False, flow, valid)
    out = fuse_frame(cur, prev, 0.5, m)
    assert out.dtype == np.float32
    want = 0.5 * cur[:, :-1] + 0.5 * prev[:, 1:]
    want[2, 3] = cur[2, 3]
    assert np.allclose(out[:, :-1], want, atol=1e-4)
    assert np.array_equal(fuse_frame(cur, prev, 0.5, LatentMotion(None, None, True, flow, valid)), cur)
    # In place (--warp none), and zero flow exactly in place: a still frame fused with itself stays itself.
    assert np.allclose(fuse_frame(cur, prev, 0.25), 0.75 * cur + 0.25 * prev, atol=1e-4)
    still = LatentMotion(None, None, False, np.zeros_like(flow), valid)
    assert np.array_equal(fuse_frame(cur, cur.astype(np.float32), 0.5, still), cur)


def test_dis_finds_the_known_motion_of_the_synthetic_clips():
    from lcm_video.video.synthetic import motion_flow

    est = FlowEstimator("dis")
    for kind, bound in (("pan", 0.05), ("zoom", 0.25), ("crossing", 0.5)):
        clip = motion_clip(kind, 128, 8)
        for k in (2, 5):
            fw, valid = motion_flow(kind, clip, k)
            err = np.sqrt(((est(clip[k], clip[k + 1]) - fw) ** 2).sum(-1))
            assert (err * valid).sum() / valid.sum() < bound, (kind, k)
            bw, bvalid = motion_flow(kind, clip, k + 1, backward=True)  # where frame k+1's pixels were in frame k
            err = np.sqrt(((est(clip[k + 1], clip[k]) - bw) ** 2).sum(-1))
            assert (err * bvalid).sum() / bvalid.sum() < bound, (kind, k, "backward")


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


def test_eval_leaves_the_pair_across_a_cut_out_of_warp_error_and_says_so(tmp_path):
    clip = frames_clip(tmp_path / "cut.mp4", motion_clip("cut", 64, 8), fps=24)
    for flow in ("dis", "farneback"):
        m = evaluate(clip, clip, flow=flow)
        assert [math.isnan(e) for e in m.warp_errors] == [False] * 3 + [True] + [False] * 3, flow
        assert m.warp_error == pytest.approx(np.mean([e for e in m.warp_errors if not math.isnan(e)]))
        assert any("1 of 7 frame pairs are across a cut" in n for n in m.notes)
