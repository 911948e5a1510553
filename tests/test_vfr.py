"""Variable-frame-rate sources: every output frame keeps its source frame's time (within 1 ms) unless --fps asks for
a constant rate; through a direct render, a range, and batch segments."""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from lcm_video.batch import run as batch
from lcm_video.pipelines.video_to_video import stylize
from lcm_video.video.plan import FramePlan
from lcm_video.video.reader import probe

from .conftest import FFMPEG, stream_info
from .test_batch import write_jobs

# 10 frames at 10 fps, then 20 at 30 fps: 1.667 s, of which ffmpeg's average rate makes 18 fps.
SOURCE_TIMES = [i / 10 for i in range(10)] + [1 + i / 30 for i in range(20)]


@pytest.fixture(scope="module")
def vfr(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("vfr") / "vfr.mp4"
    cmd = [FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=30"]
    cmd += ["-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-frames:v", "30"]
    cmd += ["-vf", "setpts='if(lt(N,10),N/10,1+(N-10)/30)/TB'", "-fps_mode", "passthrough"]
    cmd += ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "0", "-c:a", "aac", str(out)]
    subprocess.run(cmd, check=True)
    return out


def frame_times(path: Path) -> np.ndarray:
    """Each frame's presentation time in seconds, as the demuxer reads it (decord)."""
    import decord

    vr = decord.VideoReader(str(path))
    return vr.get_frame_timestamp(range(len(vr)))[:, 0].astype(np.float64)


def test_a_variable_rate_plan_keeps_source_times_and_ranges_cut_by_time():
    stamps = (*SOURCE_TIMES, 1 + 20 / 30)
    plan = FramePlan.for_video(30, Fraction(18), stamps=stamps)
    assert plan.sources == tuple(range(30))
    np.testing.assert_allclose([float(t) for t in plan.times], SOURCE_TIMES, atol=1e-6)
    assert float(plan.duration) == pytest.approx(5 / 3, abs=1e-6)
    cut = FramePlan.for_video(30, Fraction(18), stamps=stamps, start=0.35, end=1.05)
    assert cut.sources == tuple(range(4, 12))  # 0.4 ... 1.0333: timestamps in [0.35, 1.05)
    assert cut.start == Fraction(2, 5)
    np.testing.assert_allclose(
        [float(t) for t in cut.pts], [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.63333, 0.66667], atol=1e-5
    )
    even = FramePlan.for_video(30, Fraction(18), stamps=stamps, target_fps=Fraction(10))
    assert even.pts is None and even.fps == 10
    # The frame on screen at 0.0, 0.1, ... 1.6 s: one per 10 fps frame, then every third of the 30 fps ones.
    assert even.sources == (*range(11), 13, 16, 19, 22, 25, 28)


def test_probe_tells_a_variable_rate_source_from_an_even_one(vfr, videos):
    info = probe(vfr)
    assert info.variable and info.frames == 30
    np.testing.assert_allclose(info.stamps[:-1], SOURCE_TIMES, atol=1e-4)
    assert not probe(videos["ntsc"]).variable  # 29.97 fps: evenly spaced, kept on its exact rate


def test_stylising_a_variable_rate_source_keeps_every_frame_time(tmp_path, vfr, tiny_models):
    out = stylize(vfr, tmp_path / "out.mp4", "a cat", models=tiny_models, quiet=True).output
    got = frame_times(out)
    assert len(got) == 30
    assert np.abs(got - frame_times(vfr)).max() <= 1e-3
    audio = stream_info(out)["audio_seconds"]
    assert audio == pytest.approx(5 / 3, abs=0.05)  # the audio of the rendered span, not frames / average rate

    cut = stylize(vfr, tmp_path / "cut.mkv", "a cat", models=tiny_models, quiet=True, start=0.35, end=1.05).output
    np.testing.assert_allclose(frame_times(cut), frame_times(vfr)[4:12] - frame_times(vfr)[4], atol=1e-3)


def test_fps_turns_a_variable_rate_source_into_an_even_one(tmp_path, vfr, tiny_models):
    out = stylize(vfr, tmp_path / "even.mp4", "a cat", models=tiny_models, quiet=True, fps=10).output
    got = frame_times(out)
    np.testing.assert_allclose(got, np.arange(17) / 10, atol=1e-3)


@pytest.mark.slow
def test_batch_segments_of_a_variable_rate_source_keep_its_frame_times(tmp_path, vfr):
    jobs = [{"name": "v", "mode": "stylize", "input": str(vfr), "prompt": "x", "output": "v.mp4"}]
    rows = batch.run_batch(write_jobs(tmp_path, jobs), tmp_path / "out", segment_frames=7, quiet=True)
    assert rows[0]["status"] == "done", rows
    assert np.abs(frame_times(tmp_path / "out" / "v.mp4") - frame_times(vfr)).max() <= 1e-3


@pytest.mark.slow  # 4 s: over the quick loop's budget (README), in the full suite
def test_a_gif_source_is_read_with_its_frame_times_and_a_gif_output_evaluates(tiny_models, tmp_path, monkeypatch):
    """Issue 32: decord cannot index a GIF ("broken metadata"); it is read through a cached lossless copy with the
    GIF's own frame times (here 10 frames at 10 fps), and lcm-video's own GIF outputs evaluate too."""
    import imageio.v3 as iio

    from lcm_video import evaluate
    from lcm_video.video.reader import FrameReader

    monkeypatch.setenv("LCM_VIDEO_CACHE", str(tmp_path / "cache"))
    gif = tmp_path / "anim.gif"
    cmd = [FFMPEG, "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=10", "-t", "1", str(gif)]
    subprocess.run(cmd, check=True)
    info = probe(gif)
    assert (info.frames, info.fps, info.width, info.height) == (10, 10, 160, 90) and info.path == gif
    assert info.decoded is not None and info.decoded.suffix == ".mkv"
    # Lossless: the frames read are the GIF's own (as imageio decodes them).
    assert np.array_equal(FrameReader(info, (160, 88)).read([3])[0], iio.imread(gif, index=3)[1:89, :, :3])
    res = stylize(gif, tmp_path / "o.gif", "a red circle on a white background", models=tiny_models, quiet=True)
    assert res.frames == 10 and res.fps == 10
    m = evaluate(tmp_path / "o.gif", gif)
    assert m.frames == 10 and m.psnr is not None and m.psnr > 0


@pytest.mark.parametrize(
    "flags", [["-display_hflip"], ["-display_vflip"], ["-display_rotation", "90", "-display_hflip"]]
)
def test_a_mirrored_source_comes_out_as_ffmpeg_shows_it(tmp_path, monkeypatch, flags):
    """Issue 32: a source with a mirroring display matrix came out flipped (decord turns it by the matrix's angle and
    ignores the flip). The frames read must be ffmpeg's own display of the file."""
    from lcm_video.video.reader import FrameReader

    monkeypatch.setenv("LCM_VIDEO_CACHE", str(tmp_path / "cache"))
    plain, shown = tmp_path / "plain.mp4", tmp_path / "shown.mp4"
    box = "color=white:s=64x56:r=10,drawbox=x=44:y=4:w=16:h=12:color=red:t=fill"  # a red square top-right
    subprocess.run([FFMPEG, "-v", "error", "-f", "lavfi", "-i", box, "-t", "0.5", "-pix_fmt", "yuv420p", str(plain)])
    subprocess.run([FFMPEG, "-v", "error", *flags, "-i", str(plain), "-c", "copy", str(shown)], check=True)
    info = probe(shown)
    w, h = info.width, info.height
    cmd = [FFMPEG, "-v", "error", "-i", str(shown), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    expect = np.frombuffer(subprocess.run(cmd, capture_output=True, check=True).stdout, np.uint8).reshape(h, w, 3)
    got = FrameReader(info, (w, h)).read([0])[0]

    def red(img):
        ys, xs = np.nonzero((img[..., 0] > 150) & (img[..., 1] < 100))
        return round(xs.mean()), round(ys.mean())

    assert red(got) == red(expect)
