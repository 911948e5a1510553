"""Concurrent runs on one output (or one batch --out) refuse each other in one line; a dead run's lock and
temporary files never block or linger (issue 11, bug 5)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from lcm_video import cli
from lcm_video.video.lock import OutputLock

from .conftest import ROOT


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_a_second_render_to_the_same_output_is_refused(videos, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    with OutputLock(out):
        code = cli.main(["stylize", str(videos["moving"]), "-o", str(out), "-p", "x", "--model", "tiny", "-q"])
        assert code == 2
        assert "another lcm-video run (pid " in _one_line(capsys)
        assert not out.exists()
    assert not (tmp_path / ".out.mp4.lock").exists()  # released and removed
    assert cli.main(["generate", "-p", "x", "-o", str(out), "--model", "tiny", "--frames", "8", "-q"]) == 0


@pytest.mark.slow  # a batch run; the quick loop stays under 90 s
def test_a_second_batch_on_the_same_out_is_refused(tmp_path, capsys):
    jobs = tmp_path / "jobs.yaml"
    job = {"name": "g", "mode": "generate", "prompt": "x", "frames": 8, "output": "g.mp4"}
    jobs.write_text(json.dumps({"defaults": {"model": "tiny", "device": "cpu"}, "jobs": [job]}))
    with OutputLock(tmp_path / "out", "folder"):
        assert cli.main(["batch", str(jobs), "--out", str(tmp_path / "out"), "-q"]) == 2
        assert "is writing the folder" in _one_line(capsys)
    assert cli.main(["batch", str(jobs), "--out", str(tmp_path / "out"), "-q"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".lcm-video-work", "g.mp4", "report.json"]


@pytest.mark.slow  # a second interpreter
def test_a_killed_runs_lock_and_temporary_files_do_not_linger(tmp_path):
    out = tmp_path / "out.mp4"
    holder = (
        "import sys, time\n"
        "from lcm_video.video.lock import OutputLock\n"
        "lock = OutputLock(sys.argv[1]).__enter__(); print('held', flush=True); time.sleep(60)\n"
    )
    # run in the checkout, so `python -c` imports its lcm_video first
    proc = subprocess.Popen([sys.executable, "-c", holder, str(out)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout.readline().strip() == "held"
    stale = tmp_path / ".out.mp4.k2j3h4g5.partial"
    stale.write_bytes(b"half a video")
    with pytest.raises(Exception, match="is writing the output"):
        OutputLock(out).__enter__()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(0.1)
    assert cli.main(["generate", "-p", "x", "-o", str(out), "--model", "tiny", "--frames", "8", "-q"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]  # the dead run's lock and partial are gone


@pytest.mark.slow  # a fresh interpreter
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_clean_up_like_ctrl_c(tmp_path, sig):
    out = tmp_path / "out.mp4"
    cmd = [sys.executable, "-m", "lcm_video", "generate", "-p", "x", "-o", str(out), "--model", "tiny"]
    cmd += ["--frames", "400", "-q"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".out.mp4.*.partial")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # inside the render
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig
    assert err.strip() == "lcm-video: interrupted; nothing was written"
    assert list(tmp_path.iterdir()) == []  # no output, no partial, no lock
