"""Progress events from stylize, generate and batch, and cancelling a render from the callback."""

from __future__ import annotations

import json
import time

import pytest

import lcm_video
from lcm_video import Cancelled, ProgressEvent

from .conftest import read_frames


def _check_stream(events: list[ProgressEvent], total: int, wall: float) -> None:
    """``wall``: the seconds the call took, timed by the test around it."""
    assert events[0].stage == "load" and events[0].done == 0 and events[0].eta is None  # no rate before a frame
    assert events[-1].stage == "done" and events[-1].done == total
    assert all(e.total == total for e in events)
    done = [e.done for e in events]
    assert done == sorted(done)
    elapsed = [e.elapsed for e in events]
    assert elapsed == sorted(elapsed) and elapsed[-1] > elapsed[0]  # seconds since the call began, in seconds
    assert elapsed[-1] <= wall
    renders = [e for e in events if e.stage == "render"]
    assert renders and renders[-1].eta == 0.0
    for e in renders[:-1]:  # the frames left at the rate so far
        assert 0 < e.eta == pytest.approx(e.elapsed * (total - e.done) / e.done)


def test_eta_is_the_frames_left_at_the_rate_so_far():
    assert ProgressEvent("render", 8, 29, 2.0).eta == pytest.approx(2.0 / 8 * 21)
    assert ProgressEvent("load", 0, 29, 0.5).eta is None
    assert ProgressEvent("render", 29, 29, 7.0).eta == 0.0


def _timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def test_stylize_reports_every_window(tiny_models, videos, tmp_path):
    events: list[ProgressEvent] = []
    opts = {"models": tiny_models, "window": 8, "on_progress": events.append}
    res, wall = _timed(lcm_video.stylize, videos["moving"], tmp_path / "o.mp4", "x", **opts)
    _check_stream(events, res.frames, wall)
    assert [e.done for e in events if e.stage == "render"] == [8, 16, 24, 29]  # 29 frames in windows of 8


def test_generate_reports_every_window(tmp_path):
    models = lcm_video.load_models("tiny", device="cpu", motion_adapter="tiny")
    events: list[ProgressEvent] = []
    opts = {"models": models, "frames": 20, "context": 8, "overlap": 2, "on_progress": events.append}
    res, wall = _timed(lcm_video.generate, "a fox", tmp_path / "g.mp4", **opts)
    _check_stream(events, 20, wall)
    assert res.frames == 20 and len([e for e in events if e.stage == "render"]) == 3


def _cancel_after(n: int, seen: list):
    def callback(event: ProgressEvent) -> None:
        seen.append(event)
        if event.stage == "render" and sum(e.stage == "render" for e in seen) >= n:
            raise Cancelled

    return callback


def test_cancel_stops_within_one_window_and_leaves_nothing(tiny_models, videos, tmp_path):
    out = tmp_path / "sub" / "o.mp4"
    seen: list[ProgressEvent] = []
    calls = []
    tiny_models.unet.register_forward_hook(lambda *a: calls.append(1))
    with pytest.raises(Cancelled):
        lcm_video.stylize(videos["moving"], out, "x", models=tiny_models, window=8, on_progress=_cancel_after(1, seen))
    assert len(calls) == 4  # one window's 4 steps, then it stopped
    assert [e.done for e in seen if e.stage == "render"] == [8]
    assert not out.exists() and not any(p.is_file() for p in tmp_path.rglob("*"))  # no partial file anywhere


@pytest.mark.slow  # 5 s: over the quick loop's budget (README), in the full suite
def test_batch_reports_jobs_and_a_cancelled_batch_resumes(tmp_path, videos):
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(
        json.dumps(
            {
                "defaults": {"model": "tiny", "device": "cpu", "segment_frames": 10},
                "jobs": [
                    {"name": "a", "mode": "stylize", "input": str(videos["moving"]), "prompt": "x", "output": "a.mp4"}
                ],
            }
        )
    )
    out = tmp_path / "out"
    seen: list[ProgressEvent] = []
    with pytest.raises(Cancelled):
        lcm_video.run_batch(jobs, out, on_progress=_cancel_after(2, seen))
    assert {e.job for e in seen if e.stage == "render"} == {"a"}
    work = out / ".lcm-video-work" / "a"
    assert len(list(work.glob("seg_*.json"))) == 1  # the first segment finished, the second was cancelled
    assert not list(out.rglob("*.partial")) and not (out / "a.mp4").exists()
    events: list[ProgressEvent] = []
    rows = lcm_video.run_batch(jobs, out, on_progress=events.append)
    assert rows[0]["status"] == "done" and len(read_frames(out / "a.mp4")) == 29
    assert events[-1].stage == "done" and events[-1].done == events[-1].total == 19  # the 19 frames left
    assert [e.job for e in events if e.stage == "assemble"] == ["a"]
