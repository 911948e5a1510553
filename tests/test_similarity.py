"""The similarity filter (--skip-similar): which frames it reuses, that reused frames are exact repeats, that it
saves model calls, and that segments and whole renders agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lcm_video import stylize
from lcm_video.video.plan import FrameMap
from lcm_video.video.reader import probe
from lcm_video.video.similarity import decide, scan
from lcm_video.video.synthetic import frames_clip, pan, texture

from .conftest import read_frames, stream_info

STILL = 12  # frames 0-11 hold still, 12-23 pan by 3 pixels a frame


@pytest.fixture(scope="module")
def still_then_pan(tmp_path_factory) -> Path:
    frames = pan(texture(48, 200, seed=0, smooth=1), 12, 64, 3, still=STILL)
    return frames_clip(tmp_path_factory.mktemp("sim") / "still_then_pan.mp4", frames, fps=30)


def _thumbs(levels: list[float]) -> list[torch.Tensor]:
    return [torch.full((4, 4, 3), v, dtype=torch.uint8) for v in levels]


def test_rule_reuses_up_to_threshold_inclusive():
    assert decide(_thumbs([100, 100, 102, 103, 104]), 2.0, 10).shows == (0, 0, 0, 1, 1)


def test_rule_compares_with_last_rendered_frame_so_slow_drift_is_bounded():
    # +1 level a frame: each frame is within 1 of the previous one, but only within 2 of the last rendered frame.
    assert decide(_thumbs(range(100, 108)), 2.0, 10).shows == (0, 0, 0, 1, 1, 1, 2, 2)


def test_rule_renders_after_max_skip_repeats():
    assert decide(_thumbs([50] * 7), 1.0, 2).shows == (0, 0, 0, 1, 1, 1, 2)


def test_reuse_positions_and_expand():
    r = FrameMap((0, 0, 1, 1, 1, 2, 3, 3))
    assert r.rendered == 4
    assert r.positions(2, 6) == range(1, 3)
    assert r.expand(range(1, 3), 2, 6) == (range(2, 6), [0, 0, 0, 1])
    # A window of positions 0-1, for a segment starting at output frame 3: only 3 and 4 are its business.
    assert r.expand(range(0, 2), 3, 8) == (range(3, 5), [1, 1])
    assert r.expand(range(3, 4), 0, 8) == (range(6, 8), [0, 0])
    assert FrameMap.identity(5).positions(1, 4) == range(1, 4)


def test_scan_finds_the_still_shot(still_then_pan):
    info = probe(still_then_pan)
    reuse = scan(info, tuple(range(info.frames)), (64, 48), 1.0, 100)
    assert reuse.shows[:STILL] == (0,) * STILL
    assert reuse.shows[STILL:] == tuple(range(1, 13))  # a 3-pixel pan of random texture is far above 1 level
    assert scan(info, tuple(range(info.frames)), (64, 48), 1.0, 5).shows[:STILL] == (0,) * 6 + (1,) * 6


def test_skip_similar_repeats_renders_and_saves_unet_calls(tmp_path, tiny_models, still_then_pan):
    common = dict(models=tiny_models, quiet=True, window=4, shared_noise=0.0, blend=0.0, pixel_blend=0.0, audio=False)
    off = stylize(still_then_pan, tmp_path / "off.mp4", "x", codec="libx264rgb", crf=0, **common)
    on = stylize(still_then_pan, tmp_path / "on.mp4", "x", codec="libx264rgb", crf=0, skip_similar=1.0, **common)
    assert on.frames == off.frames == 24
    assert stream_info(tmp_path / "on.mp4")["fps"] == stream_info(still_then_pan)["fps"]
    # --skip-max 10: frames 1-10 repeat frame 0, 11 is rendered (the 11th still frame), then the pan: 14 renders,
    # 4 windows of 4 (the last padded) → 16 UNet calls against 6 windows (24 calls) without the filter.
    assert (off.unet_calls, on.unet_calls) == (24, 16)
    assert (off.reused, on.reused) == (0, 10)  # what the command line reports ("10 reused by --skip-similar")
    a, b = read_frames(tmp_path / "off.mp4").astype(int), read_frames(tmp_path / "on.mp4").astype(int)
    assert all(np.array_equal(b[i], b[0]) for i in range(1, 11))
    # No blending and noise keyed on output frames: a rendered frame is what it is without the filter (to 1/255: a
    # window's frames differ), and a skipped frame repeats the render it shows.
    shows = [0] * 11 + list(range(11, 24))
    assert np.abs(b - a[shows]).max() <= 1
    assert not np.array_equal(a[1], a[0])  # the control: each frame's own noise makes unfiltered still frames differ


def test_skip_similar_segments_match_a_whole_render(tiny_models, still_then_pan):
    from lcm_video.pipelines.prepare import prepare_stylize
    from lcm_video.pipelines.video_to_video import Stylizer, source_map, stylized_frames
    from lcm_video.pipelines.window import window_layout
    from lcm_video.settings.configs import StylizeConfig
    from lcm_video.settings.resolve import validate
    from lcm_video.video.reader import FrameReader

    cfg = validate(StylizeConfig.make(prompt="x", window=4, blend=0.4, shared_noise=0.5, skip_similar=1.0, skip_max=5))
    prep = prepare_stylize(still_then_pan, still_then_pan.parent / "unused.mp4", cfg)
    fmap = source_map(cfg, prep)
    layout = window_layout(tiny_models, cfg, fmap.rendered)

    def render(ranges):
        out = []
        for start, stop in ranges:  # each range a cold segment, as a batch renders it
            stylizer = Stylizer(tiny_models, cfg, min(layout.size, fmap.rendered))
            got = list(stylized_frames(stylizer, FrameReader(prep.info, prep.size), prep, fmap, layout, start, stop))
            assert [i for r, _ in got for i in r] == list(range(start, stop))
            out += [f for _, f in got]
        return np.concatenate(out).astype(int)

    whole = render([(0, 24)])
    parts = render([(0, 7), (7, 15), (15, 24)])
    assert np.abs(whole - parts).max() <= 2  # the seam tolerance of cold segments (see test_batch)
    assert np.array_equal(whole[1], whole[0])  # reused
