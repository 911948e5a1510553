"""Measure the batch engines (issue 30): the Ray engine's overhead against one process, and dynamic scheduling
against a static split on a simulated heterogeneous cluster.

    OMP_NUM_THREADS=1 python -m benchmarks.engines --frames 480 --out build/engines.json

One stylise job of the trained toy (``--model toy``, 128², 4 steps, float32: the frames do not depend on the engine)
on a ``--frames`` long synthetic pan, rendered:

- ``overhead``: by one process (``--engine local``) and by one Ray actor (``--engine ray --workers 1``), once with
  many short segments (``--short`` frames each) and once with few long ones (``--long``); the ratio is Ray's wall
  time over one process's. ``--ray here`` (default): Ray started by the run itself, as a user without a cluster
  gets it (its start and stop, ~7 s, are in the figure); ``--ray cluster``: a head started beforehand with
  ``ray start --head`` (what a Ray user has) and the run joining it with ``--address``.
- ``heterogeneous``: two Ray actors, the second slowed by ``--delay`` seconds a frame (a slower GPU or a busier node),
  given either a fixed contiguous half of the segments up front (what torchrun's static split does) or the next free
  segment (the engine's default); the ratio is static over dynamic wall time.

Every output is checked against the one-process render of the same segments (identical frames) before its time is
reported. Each overhead row also gives the CPU seconds every process on the machine spent during the run, grouped
(``cpu_s``: this process, Ray's own daemons, the segment actor, Ray's idle workers, anything else), which is where an
overhead shows when the wall time alone cannot say.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import Rows


def _job_file(folder: Path, clip: Path, segment: int) -> Path:
    job = {"name": "pan", "mode": "stylize", "input": str(clip), "prompt": "a blue square on a textured background"}
    defaults = {"model": "toy", "device": "cpu", "dtype": "float32", "threads": 1, "segment_frames": segment}
    path = folder / f"jobs_{segment}.yaml"
    path.write_text(json.dumps({"defaults": defaults, "jobs": [{**job, "output": "pan.mp4", "strength": 0.6}]}))
    return path


@contextlib.contextmanager
def _head(start: bool):
    """The address of a one-node Ray head started here (``ray start --head``, 2 CPUs, no dashboard), stopped after;
    None when not ``start``."""
    if not start:
        yield None
        return
    ray_cli = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [ray_cli, "start", "--head", "--port", str(port), "--include-dashboard", "false", "--disable-usage-stats"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([ray_cli, "stop", "--force"], capture_output=True, timeout=120)


def _group(proc) -> str:
    import os

    if proc.pid == os.getpid():
        return "driver (this process)"
    line = " ".join(proc.info["cmdline"] or []) or proc.info["name"] or ""
    if "SegmentWorker" in line:
        return "ray: segment actor"
    if "ProgressSink" in line:
        return "ray: progress actor"
    if "ray::IDLE" in line or "default_worker.py" in line:
        return "ray: idle workers"
    if any(k in line for k in ("raylet", "gcs_server", "ray/_private", "ray/dashboard", "ray/autoscaler")):
        return "ray: daemons"
    return "others"


class CpuByProcess:
    """CPU seconds (user + system) each group of processes (``_group``) spent inside the ``with`` block, polled every
    0.5 s so processes that start and end inside it count (up to their last poll)."""

    def __init__(self):
        import threading

        self.seen: dict[int, tuple[str, float]] = {}
        self.base: dict[int, float] = {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def _cpu(self):
        import psutil

        for proc in psutil.process_iter(["name", "cmdline", "cpu_times"]):
            t = proc.info["cpu_times"]
            if t is not None:
                yield proc, t.user + t.system

    def __enter__(self):
        self.base = {p.pid: c for p, c in self._cpu()}
        self.thread.start()
        return self

    def _poll(self):
        while not self.done.wait(0.5):
            for proc, c in self._cpu():
                self.seen[proc.pid] = (_group(proc), c)

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()
        for proc, c in self._cpu():
            self.seen[proc.pid] = (_group(proc), c)

    def totals(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for pid, (group, c) in self.seen.items():
            out[group] = round(out.get(group, 0.0) + c - self.base.get(pid, 0.0), 1)
        return dict(sorted(out.items()))


def _frames(path: Path):
    import decord

    vr = decord.VideoReader(str(path))
    return vr.get_batch(list(range(len(vr)))).asnumpy()


def _static_or_dynamic(job_file: Path, out: Path, delay: float, static: bool) -> tuple[float, dict]:
    """Wall seconds (and the engine's stats) of two Ray actors, the second ``delay`` s/frame slower."""
    from lcm_video.batch.jobs import load_jobs
    from lcm_video.batch.ray_engine import preflight, render_on_ray
    from lcm_video.batch.run import report
    from lcm_video.batch.work import pending_units, plan_job, prepare_work
    from lcm_video.events import Progress

    preflight(None)
    t0 = time.perf_counter()
    plans = [plan_job(j, out) for j in load_jobs(job_file, out)]
    prepare_work(plans)
    units = pending_units(plans)
    stats = render_on_ray(plans, units, out, Progress(None, 0), None, 2, 1, delays=(0.0, delay), static=static)
    report(plans, out, Progress(None, 0), quiet=True)
    return time.perf_counter() - t0, stats


def main(argv: list[str] | None = None) -> Rows:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.engines", description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=480, help="frames of the job")
    ap.add_argument("--short", type=int, default=48, help="frames a segment: the many-short case, and heterogeneous")
    ap.add_argument("--long", type=int, default=240, help="frames a segment, the few-long case")
    ap.add_argument("--overhead", default="short,long", help="which overhead cases: short, long or both")
    ap.add_argument("--delay", type=float, default=0.4, help="seconds a frame added to the slow actor")
    ap.add_argument("--cases", default="overhead,heterogeneous")
    ap.add_argument("--ray", choices=("here", "cluster"), default="here", help="Ray started by the run, or a head")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    import numpy as np

    from lcm_video.batch.run import run_batch
    from lcm_video.video.synthetic import frames_clip, motion_clip

    rows = Rows(args.out, "engines")
    cases = args.cases.split(",")
    with tempfile.TemporaryDirectory() as tmp, _head(args.ray == "cluster") as address:
        tmp = Path(tmp)
        clip = frames_clip(tmp / "pan.mp4", motion_clip("pan", 128, args.frames), fps=24)
        reference = {}  # per segment length: the same segments give the same frames, whoever renders them
        if "overhead" in cases:
            for segment in [{"short": args.short, "long": args.long}[c] for c in args.overhead.split(",")]:
                job_file = _job_file(tmp, clip, segment)
                times, cpu = {}, {}
                ray_extra = {"workers": 1, **({"address": address} if address else {})}
                for engine, extra in (("local", {}), ("ray", ray_extra)):
                    out = tmp / f"{engine}_{segment}"
                    with CpuByProcess() as used:
                        t0 = time.perf_counter()
                        run_batch(job_file, out, quiet=True, engine=engine, **extra)
                        times[engine] = time.perf_counter() - t0
                    cpu[engine] = used.totals()
                    got = _frames(out / "pan.mp4")
                    reference.setdefault(segment, got)
                    assert np.array_equal(got, reference[segment]), f"{engine} at {segment} frames a segment differs"
                rows.add({
                    "case": "overhead", "frames": args.frames, "segment_frames": segment,
                    "segments": -(-args.frames // segment), "local_s": round(times["local"], 2),
                    "ray": args.ray, "ray_1_worker_s": round(times["ray"], 2),
                    "ray_over_local": round(times["ray"] / times["local"], 3),
                    "cpu_s_local": cpu["local"], "cpu_s_ray": cpu["ray"],
                })  # fmt: skip
        if "heterogeneous" in cases:
            job_file = _job_file(tmp, clip, args.short)
            times = {}
            for static in (True, False):
                out = tmp / f"het_{static}"
                seconds, stats = _static_or_dynamic(job_file, out, args.delay, static)
                times[static] = seconds
                got = _frames(out / "pan.mp4")
                reference.setdefault(args.short, got)
                assert np.array_equal(got, reference[args.short]), "the heterogeneous run's frames differ"
                rows.add({
                    "case": "heterogeneous", "split": "static" if static else "dynamic", "seconds": round(seconds, 2),
                    "segments_per_worker": sorted(stats["per_worker"].values()), "delay_s_per_frame": args.delay,
                })  # fmt: skip
            rows.add({"case": "heterogeneous", "static_over_dynamic": round(times[True] / times[False], 3)})
    return rows


if __name__ == "__main__":
    main()
