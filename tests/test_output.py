"""Output files: the encoder follows the container unless asked, and an encoder that cannot run here is refused up
front with ffmpeg's own reason (not after the render, with "Nothing was written into output file")."""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from lcm_video.errors import UserError
from lcm_video.video.ffmpeg import check_container, encoder_error, encoders
from lcm_video.video.writer import VideoWriter

from .conftest import FFMPEG


def _video_codec(path: Path) -> str:
    log = subprocess.run([FFMPEG, "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    return next(line for line in log.splitlines() if "Video:" in line).split("Video:")[1].split()[0]


@pytest.mark.parametrize(("name", "codec"), [("a.webm", "vp9"), ("a.mp4", "h264"), ("a.mkv", "h264")])
def test_the_container_picks_the_encoder_when_none_is_asked(tmp_path, name, codec):
    frames = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    with VideoWriter(tmp_path / name, (32, 32), Fraction(8)) as w:
        w.write(frames)
        out = w.close()
    assert _video_codec(out) == codec


def test_an_encoder_compiled_in_but_unusable_here_is_refused_with_ffmpegs_reason():
    broken = [c for c in ("h264_nvenc", "hevc_nvenc", "h264_qsv") if c in encoders() and encoder_error(c, "medium")]
    if not broken:
        pytest.skip("every hardware encoder of this ffmpeg works here (or none is compiled in)")
    with pytest.raises(UserError, match=f"--codec {broken[0]} cannot encode here: ") as err:
        check_container(Path("out.mp4"), broken[0])
    assert "Nothing was written" not in str(err.value)


def test_a_gif_output_streams_a_palette_per_frame(tmp_path):
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (1, 8, 8, 3)).repeat(4, 1).repeat(4, 2)  # flat 4x4 blocks: palette-friendly
    frames = np.concatenate([np.roll(base, k, axis=2) for k in range(5)]).astype(np.uint8)
    with VideoWriter(tmp_path / "a.gif", (32, 32), Fraction(10), audio_from=None) as w:
        w.write(frames)
        out = w.close()
    raw = subprocess.run(
        [FFMPEG, "-loglevel", "error", "-i", str(out), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        check=True,
    ).stdout
    back = np.frombuffer(raw, np.uint8).reshape(-1, 32, 32, 3)
    assert back.shape[0] == 5
    assert np.abs(back.astype(int) - frames.astype(int)).mean() < 2  # 16 colours a frame fit any palette
    with pytest.raises(UserError, match="do not go together"):
        check_container(tmp_path / "b.gif", "libx264")


def test_a_png_sequence_output_appears_whole_and_replaces_a_longer_one(tmp_path):
    from lcm_video.video.writer import check_output

    rng = np.random.default_rng(2)
    frames = rng.integers(0, 256, (4, 16, 24, 3), dtype=np.uint8)
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "00007.png").write_bytes(b"an older render's frame 7")
    (folder / "keep.txt").write_text("not a frame")
    pattern = check_output(str(folder) + "/")
    assert pattern == folder / "%05d.png"
    with VideoWriter(pattern, (24, 16), Fraction(8)) as w:
        w.write(frames[:2])
        shown = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
        assert shown == ["00007.png", "keep.txt"]  # nothing until complete
        w.write(frames[2:])
        w.close()
    assert sorted(p.name for p in folder.iterdir()) == ["00000.png", "00001.png", "00002.png", "00003.png", "keep.txt"]
    from PIL import Image

    assert all(np.array_equal(np.asarray(Image.open(folder / f"{i:05d}.png")), frames[i]) for i in range(4))  # lossless
    with pytest.raises(UserError, match="frame number pattern"):
        check_output(tmp_path / "still.png")
    with pytest.raises(UserError, match="into the input folder"):
        check_output(folder / "%05d.png", (folder,))


def test_avi_output_is_refused_in_one_line_and_nothing_is_written(tmp_path, capsys):
    """Issue 32: an .avi came out with its video 2 frames after the audio; it is refused before anything runs."""
    from lcm_video import cli

    src = tmp_path / "in.mp4"
    src.write_bytes(b"not read: the output is checked first")
    assert cli.main(["stylize", str(src), "-o", str(tmp_path / "o.avi"), "-p", "x", "--model", "tiny"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and ".avi is not supported" in err[0] and "write .mkv (any codec) or .mp4" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_every_audio_track_is_kept_with_its_language(tiny_models, tmp_path):
    """Issue 32: an MKV with English and French audio came out with English only."""
    import re
    import subprocess

    import imageio_ffmpeg

    from lcm_video import stylize

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    src = tmp_path / "two.mkv"
    cmd = [ffmpeg, "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10", "-f", "lavfi", "-i"]
    cmd += ["sine=frequency=440", "-f", "lavfi", "-i", "sine=frequency=660", "-t", "1", "-map", "0:v", "-map", "1:a"]
    cmd += ["-map", "2:a", "-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=fra", "-shortest", str(src)]
    subprocess.run(cmd, check=True)
    for suffix in (".mp4", ".mkv"):
        out = tmp_path / f"o{suffix}"
        stylize(src, out, "x", models=tiny_models, quiet=True)
        log = subprocess.run([ffmpeg, "-hide_banner", "-i", str(out)], capture_output=True, text=True).stderr
        assert re.findall(r"Stream #0:\d+(?:\[\w+\])?\((\w+)\): Audio", log) == ["eng", "fra"], log


def test_a_ctrl_c_during_a_timed_write_reaches_the_caller_and_the_frame_is_whole(tmp_path, monkeypatch):
    """Frames with their own times go to ffmpeg through PyAV, which drops any non-Exception raised in its write
    callback: a Ctrl-C landing in a blocked pipe write was printed and forgotten (a live run then ignored it). The
    write is finished, the KeyboardInterrupt raised after, and the file still holds every frame written."""
    import os

    import av

    from lcm_video.video import writer as mod

    real, calls = os.write, []

    def cut(fd, data):
        calls.append(len(data))
        if len(calls) == 2:
            raise KeyboardInterrupt  # as the signal handler raises it when the write is interrupted (PEP 475)
        return real(fd, data)

    out = tmp_path / "t.mkv"
    frames = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    w = VideoWriter(out, (32, 32), Fraction(10), times=tuple(Fraction(i, 10) for i in range(7)))
    monkeypatch.setattr(mod.os, "write", cut)
    raised = []
    for i in range(6):
        try:
            w.write(frames[i : i + 1])
        except KeyboardInterrupt:
            raised.append(i)
    monkeypatch.undo()
    w.close()
    assert len(raised) == 1 and len(calls) > 2
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 6
