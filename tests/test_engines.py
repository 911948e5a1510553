"""Batch beyond one process: the Ray engine on a real two-node local cluster (a worker killed mid-segment, the
driver killed and resumed) and the segment manifest of array jobs (``--plan``, ``--segment-index``,
``--assemble``), each against a one-process run; and their bad input."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lcm_video import cli
from lcm_video.batch.manifest import parse_indices
from lcm_video.errors import UserError
from lcm_video.record import read_record
from lcm_video.video.synthetic import lavfi_clip

from .conftest import ROOT, read_frames
from .test_batch import ENV, kill_after_segments, write_jobs

OUTPUTS = ("styl.mp4", "gen/fox.mp4")


@pytest.fixture(scope="module")
def job_file(tmp_path_factory) -> Path:
    """A long stylise (11 segments), a generate (2) and a job that fails when it loads (its ControlNet is missing)."""
    folder = tmp_path_factory.mktemp("jobs")
    clip = lavfi_clip(folder / "clip.mp4", seconds=3.5)
    bad = {"control": ["canny"], "control_model": [f"canny={folder / 'no-such-controlnet'}"]}
    jobs = [
        {"name": "styl", "mode": "stylize", "input": str(clip), "prompt": "oil painting", "output": "styl.mp4"},
        {"name": "gen", "mode": "generate", "prompt": "a fox", "frames": 20, "fps": 8, "output": "gen/fox.mp4"},
        {"name": "bad", "mode": "stylize", "input": str(clip), "prompt": "x", "output": "bad.mp4", **bad},
    ]
    defaults = {"model": "tiny", "device": "cpu", "dtype": "float32", "segment_frames": 10}  # as every process
    return write_jobs(folder, jobs, defaults)


@pytest.fixture(scope="module")
def reference(job_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "out"
    assert cli.main(["batch", str(job_file), "--out", str(out), "--engine", "local", "-q"]) == 1  # "bad" fails
    return out


def _batch(job_file: Path, out: Path, *extra: str, env=None, **kw) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "lcm_video", "batch", str(job_file), "--out", str(out), "-q", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, env=env or ENV, cwd=ROOT, **kw)


def _same_outputs(out: Path, ref: Path) -> None:
    for name in OUTPUTS:
        assert np.array_equal(read_frames(out / name), read_frames(ref / name)), name
    report = {r["name"]: r for r in json.loads((out / "report.json").read_text())["jobs"]}
    assert [report[n]["status"] for n in ("styl", "gen", "bad")] == ["done", "done", "failed"]
    assert "no-such-controlnet" in report["bad"]["error"]


# --------------------------------------------------------------------------------------------------------------------
# The manifest.


def test_segment_index_specs():
    assert parse_indices("5", 10) == [5]
    assert parse_indices("0-9:4", 10) == [0, 4, 8]
    assert parse_indices("3-100", 10) == list(range(3, 10))  # an array larger than the plan: the tail is empty
    for bad in ("10", "x", "5-3", "1-4:0", "-1"):
        with pytest.raises(UserError):
            parse_indices(bad, 10)


@pytest.mark.slow
def test_every_segment_index_then_assemble_gives_the_one_process_files(job_file, reference, tmp_path, capsys):
    out = tmp_path / "array"
    args = ["batch", str(job_file), "--out", str(out)]
    assert cli.main([*args, "--segment-index", "0"]) == 2
    assert "no plan" in capsys.readouterr().err and not (out / "styl.mp4").exists()
    assert cli.main([*args, "--plan"]) == 0
    rows = json.loads((out / "plan.json").read_text())["segments"]
    count, styl = len(rows), sum(r["job"] == "styl" for r in rows)
    assert styl >= 8 and count == styl + 2 + styl  # "bad" plans like "styl": it fails only when it loads
    assert f"{count} segments" in capsys.readouterr().out
    assert cli.main([*args, "--segment-index", str(count)]) == 2
    assert f"has {count} segments" in capsys.readouterr().err
    assert cli.main([*args, "--segment-index", "0-5:2", "-q"]) == 0  # a task with a stride: 0, 2, 4
    assert cli.main([*args, "--assemble"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{count - 3} of {count} segments are not rendered yet" in err[0] and "1,3,5-" in err[0]
    for i in range(count):  # one array task per index; 0, 2, 4 are found done and skipped
        assert cli.main([*args, "--segment-index", str(i), "-q"]) in (0, 1)  # 1: a segment of "bad" failed
    assert cli.main([*args, "--assemble", "-q"]) == 1
    _same_outputs(out, reference)
    assert read_record(out / "styl.mp4")["rendered"] == {"engine": "array", "workers": 1}
    log = (out / ".lcm-video-work" / "styl" / "renders.log").read_text().split()[0::2]
    assert len(log) == len(set(log)) == styl  # each segment rendered once


def test_array_steps_and_engines_do_not_mix(job_file, tmp_path, capsys):
    args = ["batch", str(job_file), "--out", str(tmp_path / "o")]
    assert cli.main([*args, "--plan", "--assemble"]) == 2
    assert "one at a time" in capsys.readouterr().err
    assert cli.main([*args, "--plan", "--engine", "ray"]) == 2
    assert "drop --engine" in capsys.readouterr().err
    assert cli.main([*args, "--workers", "2"]) == 2
    assert "for --engine ray" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------------------------------------------------
# Ray: bad input.


def test_ray_missing_is_one_line(job_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray → ImportError
    assert cli.main(["batch", str(job_file), "--out", str(tmp_path / "o"), "--engine", "ray"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'pip install -e ".[ray]"' in err[0]
    assert not (tmp_path / "o").exists()


def test_a_worker_that_cannot_see_out_says_so_in_one_line(tmp_path):
    from lcm_video.batch.ray_engine import out_problem

    probe = tmp_path / "out" / ".lcm-video-work" / ".probe-1"
    probe.parent.mkdir(parents=True)
    probe.write_text("abc")
    assert out_problem(str(probe), "abc") is None
    assert out_problem(str(probe), "another run's") is not None  # a different folder of the same name
    problem = out_problem(str(tmp_path / "elsewhere" / ".lcm-video-work" / ".probe-1"), "abc")
    assert "cannot see --out" in problem and "elsewhere" in problem and "\n" not in problem


def test_unreachable_ray_address_is_one_line(job_file, tmp_path, capsys):
    pytest.importorskip("ray")
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ["batch", str(job_file), "--out", str(tmp_path / "o"), "--engine", "ray"]
    assert cli.main([*args, "--address", f"127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nothing answers there" in err[0]
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------------------------------------------------
# Ray: a real cluster of two nodes on this machine.


@pytest.fixture(scope="module")
def cluster():
    """A Ray head and a second node joined to it (``ray start --address``), one CPU each; authentication off for the
    test cluster (Ray 2.60 otherwise needs its token set up on every node)."""
    pytest.importorskip("ray")
    ray_cli = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))
    env = {**ENV, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    head = [ray_cli, "start", "--head", "--port", str(port), "--num-cpus", "1", "--include-dashboard", "false"]
    subprocess.run([*head, "--disable-usage-stats"], env=env, check=True, capture_output=True, timeout=120)
    address = f"127.0.0.1:{port}"
    try:
        node = [ray_cli, "start", "--address", address, "--num-cpus", "1"]
        subprocess.run(node, env=env, check=True, capture_output=True, timeout=120)
        yield address, env
    finally:
        subprocess.run([ray_cli, "stop", "--force"], env=env, capture_output=True, timeout=120)


def _busy_worker(work: Path) -> int | None:
    """The pid of a Ray actor rendering a segment of ``work`` right now (its ``seg_….PID.busy`` marker)."""
    for marker in work.glob("seg_*.busy"):
        return int(marker.suffixes[-2].lstrip("."))
    return None


@pytest.mark.slow
def test_ray_cluster_survives_a_killed_worker_and_a_killed_driver(cluster, job_file, reference, tmp_path):
    address, env = cluster
    out = tmp_path / "ray"
    cmd = [sys.executable, "-m", "lcm_video", "batch", str(job_file), "--out", str(out), "-q"]
    cmd += ["--engine", "ray", "--address", address, "--workers", "2"]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline, killed = time.time() + 180, None
    while killed is None and time.time() < deadline and proc.poll() is None:
        work = out / ".lcm-video-work" / "styl"
        if (work / "renders.log").exists() and (pid := _busy_worker(work)):
            os.kill(pid, signal.SIGKILL)  # mid-segment: it is rendering one
            killed = pid
        time.sleep(0.02)
    _, err = proc.communicate(timeout=300)
    assert killed, "no worker was caught mid-segment"
    assert proc.returncode == 1, err[-3000:]  # "bad" fails; the others complete
    assert "a Ray worker died during" in err and "running it again" in err
    stats = json.loads((out / "ray.json").read_text())
    assert stats["retried"] >= 1 and stats["workers"] >= 3  # two, and one started in the dead one's place
    _same_outputs(out, reference)
    assert read_record(out / "styl.mp4")["rendered"]["engine"] == "ray"
    workers = {line.split()[1] for line in (out / ".lcm-video-work" / "styl" / "renders.log").read_text().splitlines()}
    assert len(workers) >= 2  # both nodes' actors rendered

    # The driver killed (kill -9) part-way, then the same command again: finished segments kept, same frames.
    out2 = tmp_path / "ray2"
    cmd2 = [*cmd[:6], str(out2), *cmd[7:]]
    proc = subprocess.Popen(cmd2, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    work = out2 / ".lcm-video-work" / "styl"
    finished = kill_after_segments(proc, work, 3, timeout=180)
    assert 3 <= len(finished) < 11 and not (out2 / "styl.mp4").exists()
    res = subprocess.run(cmd2, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 1, res.stderr[-3000:]
    _same_outputs(out2, reference)
    renders = (work / "renders.log").read_text().split()[0::2]
    assert all(renders.count(s) == 1 for s in finished)  # kept, not re-rendered


@pytest.mark.slow
def test_ray_progress_reaches_the_caller(cluster, tmp_path):
    """Through the library (in a process of its own, as a driver is): every frame the actors render is counted once
    on the driver's ``on_progress``, in order, ending in ``done``."""
    address, env = cluster
    jobs = [{"name": "gen", "mode": "generate", "prompt": "a fox", "frames": 12, "fps": 8, "output": "fox.mp4"}]
    job_file = write_jobs(tmp_path, jobs, {"model": "tiny", "device": "cpu", "dtype": "float32", "segment_frames": 4})
    script = (
        "import json, sys\n"
        "from lcm_video.batch.run import run_batch\n"
        "events = []\n"
        "rows = run_batch(sys.argv[1], sys.argv[2], quiet=True, on_progress=events.append, engine='ray', "
        "address=sys.argv[3])\n"
        "print(json.dumps({'rows': rows, 'events': [[e.stage, e.done, e.total, e.job] for e in events]}, default=str))"
    )
    cmd = [sys.executable, "-c", script, str(job_file), str(tmp_path / "out"), address]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert [r["status"] for r in got["rows"]] == ["done"]
    stages = [e[0] for e in got["events"]]
    assert stages[0] == "load" and stages[-1] == "done" and "assemble" in stages
    renders = [e for e in got["events"] if e[0] == "render"]
    assert renders and renders[-1][1] == renders[-1][2] == 12 and all(e[3] == "gen" for e in renders)
    assert [e[1] for e in renders] == sorted(e[1] for e in renders)
