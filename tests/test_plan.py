from fractions import Fraction

import pytest

from lcm_video.errors import UserError
from lcm_video.video.plan import FramePlan

NTSC = Fraction(30000, 1001)


def test_default_plan_keeps_every_source_frame_at_the_exact_rate():
    plan = FramePlan.for_video(89, NTSC)
    assert plan.sources == tuple(range(89))
    assert plan.fps == NTSC and plan.start == 0
    assert plan.duration == Fraction(89 * 1001, 30000)


def test_start_end_select_frames_whose_timestamp_is_in_range():
    plan = FramePlan.for_video(90, Fraction(30), start=1.0, end=2.0)
    assert plan.sources == tuple(range(30, 60))
    assert plan.start == 1


def test_target_fps_picks_the_frame_on_screen_at_each_output_time():
    plan = FramePlan.for_video(60, Fraction(30), target_fps=Fraction(10))
    assert plan.sources == tuple(range(0, 60, 3))
    up = FramePlan.for_video(10, Fraction(10), target_fps=Fraction(20))
    assert up.sources == tuple(i // 2 for i in range(20))
    assert up.duration == Fraction(1)


def test_max_frames_caps_and_errors_name_the_option():
    assert len(FramePlan.for_video(100, Fraction(25), max_frames=7)) == 7
    with pytest.raises(UserError, match="--start"):
        FramePlan.for_video(30, Fraction(30), start=5)
    with pytest.raises(UserError, match="no frames"):
        FramePlan.for_video(30, Fraction(30), start=0.99, end=0.995)


@pytest.mark.parametrize("n,size", [(1, 8), (8, 8), (9, 8), (23, 4), (100, 16)])
def test_windows_without_overlap_partition_the_frames(n, size):
    plan = FramePlan.for_clip(n, Fraction(8))
    covered = [i for w in plan.windows(size) for i in w.indices]
    assert covered == list(range(n))
    assert all(len(w) <= size for w in plan.windows(size))


@pytest.mark.parametrize("n,size,overlap", [(40, 16, 4), (16, 16, 4), (17, 16, 4), (10, 16, 4), (50, 8, 2)])
def test_overlapping_windows_cover_everything_at_full_size(n, size, overlap):
    wins = list(FramePlan.for_clip(n, Fraction(8)).windows(size, overlap))
    assert wins[0].start == 0 and wins[-1].stop == n
    for prev, cur in zip(wins, wins[1:], strict=False):
        assert cur.start < prev.stop  # overlapping
        assert prev.stop - cur.start >= overlap
        assert cur.overlap == prev.stop - cur.start
        assert len(cur) == min(size, n)


@pytest.mark.parametrize("n,window,expect", [(12, 8, 6), (16, 8, 8), (17, 8, 6), (5, 8, 5), (300, 8, 8), (13, 8, 7)])
def test_balanced_window_needs_the_fewest_windows_and_least_padding(n, window, expect):
    import math

    from lcm_video.video.plan import balanced_window

    b = balanced_window(n, window)
    assert b == expect and b <= window
    assert math.ceil(n / b) == math.ceil(n / window)  # no extra windows
