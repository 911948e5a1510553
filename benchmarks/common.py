"""What every benchmark shares: wall-clock timing (repeats, min and median), peak memory (RSS of the whole process, or
CUDA's allocator), child processes timed with their peak RSS, the test clip, and JSON rows (one line each on stdout
as they come, all of them in ``--out`` with the machine and versions).

Only the standard library, numpy, psutil and torch-free parts of lcm_video at import, so ``--help`` is instant."""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the repository: samples/, build/
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # benchmarks never download


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds of repeated runs of one thing, in the order they ran."""

    runs: tuple[float, ...]

    @property
    def min(self) -> float:
        return min(self.runs)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)


def clock(fn: Callable, *args, **kwargs) -> tuple[object, float]:
    """(``fn(*args, **kwargs)``, its wall-clock seconds)."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def repeat(fn: Callable[[], object], runs: int = 2, warmup: int = 1) -> Timing:
    """Seconds of ``runs`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    return Timing(tuple(clock(fn)[1] for _ in range(runs)))


def interleaved(calls: dict[str, Callable[[], object]], runs: int) -> dict[str, Timing]:
    """Each of ``calls`` timed ``runs`` times, round-robin (a shared machine drifts over minutes; interleaving keeps
    neighbouring runs comparable)."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(runs):
        for name, fn in calls.items():
            times[name].append(clock(fn)[1])
    return {name: Timing(tuple(ts)) for name, ts in times.items()}


@contextmanager
def one_thread() -> Iterator[None]:
    """torch and OpenCV on one thread inside (CPU time of one core), as they were after."""
    import cv2
    import torch

    before = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before[0])
        cv2.setNumThreads(before[1])


class Peak:
    """Peak memory above the level at entry, in bytes (``mib`` in MiB): the RSS of this whole process sampled every
    10 ms (psutil), or on a CUDA device the allocator's peak."""

    def __init__(self, device: str | object = "cpu"):
        self.cuda = str(device).startswith("cuda")
        self.peak = 0

    def __enter__(self) -> Peak:
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
            return self
        import psutil

        proc = psutil.Process()
        self.base = proc.memory_info().rss
        self._stop = threading.Event()

        def sample():
            while not self._stop.is_set():
                self.peak = max(self.peak, proc.memory_info().rss - self.base)
                time.sleep(0.01)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self.base
        else:
            self._stop.set()
            self._thread.join()

    @property
    def mib(self) -> float:
        return self.peak / 2**20


def peak_rss_mib() -> float:
    """The peak RSS of this process so far, in MiB (``getrusage``)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(argv: list[str], env: dict | None = None, cwd: Path = ROOT) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of a child process run to its end, in the repository (so ``python -m lcm_video``
    is this checkout's); raises with its stderr if it fails."""
    # stderr to a file, not a pipe: a child that writes more than a pipe holds would block while we wait for it
    with tempfile.TemporaryFile() as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log, env=env, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        took = time.perf_counter() - t0
        log.seek(0)
        err = log.read().decode(errors="replace")
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{' '.join(argv[:3])}... failed ({code}):\n{err[-2000:]}")
    return took, usage.ru_maxrss / 1024


LCM_VIDEO = [sys.executable, "-m", "lcm_video"]  # the command line, as a child process of this Python


def make_clip(out: Path, seconds: float = 3.0, size: str = "160x120", rate: str = "30000/1001") -> Path:
    """A moving test pattern with a tone (``samples/clip.mp4``'s recipe); deterministic for the same arguments and
    ffmpeg build."""
    from lcm_video.video.synthetic import lavfi_clip

    encode = ("-preset", "veryslow", "-g", "30")
    return lavfi_clip(out, "testsrc2", size, rate, seconds, crf=28, encode=encode, audio_bitrate="48k")


def machine() -> dict:
    """The versions and the device a benchmark ran on (the GPU's name where torch is loaded and sees one)."""
    info = {"python": platform.python_version(), "cpus": os.cpu_count()}
    for package in ("torch", "diffusers", "openvino"):
        try:
            info[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            info[package] = None
    torch = sys.modules.get("torch")
    cuda = torch is not None and torch.cuda.is_available()
    info["device"] = torch.cuda.get_device_name() if cuda else f"CPU x{os.cpu_count()}"
    return info


class Rows(list):
    """A benchmark's result rows. ``add`` prints each as one JSON line (stdout) as it comes and, with ``out``, rewrites
    ``out`` (its folder made first) as one JSON document: the command, the machine, the process's peak RSS and every
    row so far, so an interrupted run keeps what it measured."""

    def __init__(self, out: Path | None, what: str):
        super().__init__()
        self.out, self.what = out, what
        if out is not None:
            Path(out).parent.mkdir(parents=True, exist_ok=True)  # build/ is not in a fresh clone

    def add(self, row: dict) -> dict:
        self.append(row)
        print(json.dumps(row), flush=True)
        self.save()
        return row

    def document(self) -> dict:
        return {
            "benchmark": self.what,
            "argv": sys.argv,
            **machine(),
            "peak_rss_mib_process": round(peak_rss_mib(), 1),
            "rows": list(self),
        }

    def save(self) -> None:
        if self.out is not None:
            Path(self.out).write_text(json.dumps(self.document(), indent=1) + "\n")
