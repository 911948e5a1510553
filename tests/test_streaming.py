"""Long videos stream: memory depends on the window, never on the length."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lcm_video.pipelines.video_to_video import stylize
from lcm_video.video.reader import FrameReader
from lcm_video.video.synthetic import lavfi_clip
from lcm_video.video.writer import VideoWriter

from .conftest import ROOT

PEAK_RSS = """
import resource, sys
import lcm_video
lcm_video.stylize(sys.argv[1], sys.argv[2], "x", model="tiny", device="cpu", window=8, quiet=True)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _peak_rss_kib(src, out) -> int:
    res = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, str(src), str(out)], capture_output=True, text=True, cwd=ROOT, check=True
    )
    return int(res.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_peak_memory_of_300_frames_is_within_125_percent_of_30(tmp_path):
    short = lavfi_clip(tmp_path / "short.mp4", size="128x96", rate="30", seconds=1.0, crf=23)
    long = lavfi_clip(tmp_path / "long.mp4", size="128x96", rate="30", seconds=10.0, crf=23)
    rss_short = _peak_rss_kib(short, tmp_path / "a.mp4")
    rss_long = _peak_rss_kib(long, tmp_path / "b.mp4")
    assert rss_long <= 1.25 * rss_short, (rss_short, rss_long)


def test_only_one_window_of_frames_is_read_or_held_at_a_time(tiny_models, tmp_path, monkeypatch):
    src = lavfi_clip(tmp_path / "in.mp4", seconds=2.0, audio=False)
    reads, writes = [], []
    read, write = FrameReader.read, VideoWriter.write
    monkeypatch.setattr(FrameReader, "read", lambda self, idx: reads.append(len(idx)) or read(self, idx))
    monkeypatch.setattr(VideoWriter, "write", lambda self, f: writes.append(len(f)) or write(self, f))
    res = stylize(src, tmp_path / "o.mp4", "x", models=tiny_models, window=5, quiet=True)
    assert max(reads) == max(writes) == 5
    assert sum(reads) == sum(writes) == res.frames == 60
