"""Every user mistake: exit 2, one clear line, no traceback, nothing at the output path, the input untouched."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lcm_video import cli

from .conftest import FFMPEG


def _digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, videos) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    good = videos["ntsc"].read_bytes()
    (d / "empty.mp4").write_bytes(b"")
    (d / "text.mp4").write_text("this is not a video\n")
    (d / "truncated.mp4").write_bytes(good[: len(good) // 3])
    (d / "random.mp4").write_bytes(os.urandom(20000))
    subprocess.run(
        [FFMPEG, "-loglevel", "error", "-f", "lavfi", "-i", "sine=duration=1", str(d / "audio.m4a")], check=True
    )
    (d / "evil.yaml").write_text("steps: !!python/object/apply:os.system ['echo pwned']\n")
    (d / "typo.yaml").write_text("strenght: 0.5\n")
    (d / "good.mp4").write_bytes(good)
    return {p.stem: p for p in d.iterdir()}


CASES = {
    "missing file": (["{dir}/nope.mp4"], "does not exist"),
    "empty file": (["{empty}"], "empty"),
    "text named .mp4": (["{text}"], "cannot decode"),
    "truncated video": (["{truncated}"], "truncated"),
    "random bytes": (["{random}"], "cannot decode"),
    "audio only": (["{audio}"], "no video stream"),
    "steps < 1": (["{good}", "--steps", "0"], "--steps"),
    "strength 0": (["{good}", "--strength", "0"], "--strength"),
    "strength > 1": (["{good}", "--strength", "1.5"], "--strength"),
    "negative fps": (["{good}", "--fps", "-5"], "--fps"),
    "blend > 1": (["{good}", "--blend", "1.5"], "--blend"),
    "shared noise < 0": (["{good}", "--shared-noise", "-0.1"], "--shared-noise"),
    "skip-similar < 0": (["{good}", "--skip-similar", "-1"], "--skip-similar"),
    "skip-max 0": (["{good}", "--skip-similar", "2", "--skip-max", "0"], "--skip-max"),
    "width not multiple of 8": (["{good}", "--width", "100"], "multiple of 8"),
    "unknown config key": (["{good}", "--config", "{typo}"], "unknown key 'strenght'"),
    "python tag in yaml": (["{good}", "--config", "{evil}"], "not plain YAML"),
    "non-number steps": (["{good}", "--steps", "four"], "--steps"),
    "unknown codec": (["{good}", "--codec", "nonsense264"], "--codec"),
    "unknown x264 preset": (["{good}", "--preset", "fastt"], "--preset 'fastt' is not an x264/x265 preset"),
    "x264 codec in webm": (["{good}", "--codec", "libx264", "-o", "{dir}/out.webm"], "cannot go in .webm"),
    "25x upscale": (["{good}", "--width", "4096"], "upscale the result"),
    "unknown model": (["{good}", "--model", "not a model"], "not a preset"),
    "start past end": (["{good}", "--start", "99"], "past the end"),
    "too many steps for strength": (["{good}", "--steps", "8", "--strength", "0.1"], "raise --strength"),
    "negative prompt on w-embedding model": (["{good}", "--negative-prompt", "ugly"], "--negative-prompt"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_clear_line(case, bad_files, tmp_path, capsys):
    args, expect = CASES[case]
    names = {k: str(v) for k, v in bad_files.items()} | {"dir": str(tmp_path)}
    args = [a.format(**names) for a in args]
    out = tmp_path / "out.mp4"
    before = {p: _digest(p) for p in bad_files.values()}
    code = cli.main(["stylize", *args[:1], "-o", str(out), "-p", "x", "--model", "tiny", "-q", *args[1:]])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lcm-video"), err
    assert expect in lines[0]
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # no output, no temporary file
    assert {p: _digest(p) for p in bad_files.values()} == before  # inputs untouched


def test_output_equal_to_input_is_refused_and_input_kept(bad_files, capsys):
    src = bad_files["good"]
    before = _digest(src)
    assert cli.main(["stylize", str(src), "-o", str(src), "-p", "x", "--model", "tiny", "-q"]) == 2
    assert "is the input" in capsys.readouterr().err
    assert _digest(src) == before


def test_missing_output_folders_are_created_and_a_file_in_the_way_is_refused(bad_files, tmp_path, capsys):
    out = tmp_path / "new" / "dir" / "o.mp4"
    argv = ["-p", "x", "--model", "tiny", "--max-frames", "2", "-q"]
    assert cli.main(["stylize", str(bad_files["good"]), "-o", str(out), *argv]) == 0
    assert out.is_file() and sorted(p.name for p in out.parent.iterdir()) == ["o.mp4"]
    (tmp_path / "afile").write_text("x")
    code = cli.main(["stylize", str(bad_files["good"]), "-o", str(tmp_path / "afile" / "o.mp4"), *argv])
    assert code == 2 and "is a file" in capsys.readouterr().err


@pytest.mark.parametrize(
    "name,extra,expect", [("good", ["--strength", "2"], "--strength"), ("truncated", [], "truncated")]
)
def test_the_installed_command_exits_nonzero_with_one_line(bad_files, tmp_path, name, extra, expect):
    """The real entry point in a fresh process, stderr read at the file-descriptor level as a shell user sees it
    (decord's C++ logger writes there directly)."""
    res = subprocess.run(
        [sys.executable, "-m", "lcm_video", "stylize", str(bad_files[name]), "-o", str(tmp_path / "o.mp4")]
        + ["-p", "x", "--model", "tiny", *extra],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and expect in res.stderr, res.stderr
    assert list(tmp_path.iterdir()) == []
