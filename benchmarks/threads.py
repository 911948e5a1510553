"""Threads on a small CPU: torch's intra-op threads (1 vs 2) and the optical-flow thread pool of ``--warp flow`` (on
vs off), for a whole stylise of the ``tiny`` model, the trained ``toy`` model and SD1.5-shaped random weights.

Each configuration renders the same clip ``--repeats`` times, round-robin (a shared machine drifts over minutes;
neighbouring runs stay comparable), and reports the minimum and the median wall-clock seconds. Every row also says
how busy the machine's other processes were while it ran (``others_cpus``: CPUs' worth of work not ours, from
/proc/stat), so a figure taken beside another job is told from a quiet one.

Self-contained (standard library, numpy, torch and lcm_video's public names; torch is imported only when a
measurement runs, so ``--help`` is instant)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from concurrent.futures import Future
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # benchmarks never download

MODELS = ("tiny", "toy", "sd15")
SIZES = {"tiny": (64, 48), "toy": (128, 96), "sd15": (64, 64)}  # each model's small size: width, height
FRAMES = {"tiny": 29, "toy": 12, "sd15": 4}
PROMPTS = {"tiny": "x", "toy": "a red circle on a white background", "sd15": "an oil painting of a harbour"}


def _cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine since boot (Linux's /proc/stat; zeros elsewhere)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return 0, 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


class Busy:
    """CPUs' worth of work done by other processes over a span: the machine's busy time minus this process's (and its
    finished children's, such as ffmpeg), over the span's wall time."""

    def __enter__(self) -> Busy:
        self.t0, self.cpu0, self.ticks0 = time.perf_counter(), self._own(), _cpu_ticks()
        return self

    @staticmethod
    def _own() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def __exit__(self, *exc) -> None:
        wall = time.perf_counter() - self.t0
        busy = (_cpu_ticks()[0] - self.ticks0[0]) / os.sysconf("SC_CLK_TCK")
        self.ours = (self._own() - self.cpu0) / wall
        self.others = max(0.0, busy / wall - self.ours) if busy else float("nan")


class InlineExecutor:
    """The flow pool turned off: ``submit`` runs the job at once on the calling thread."""

    def submit(self, fn, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as err:  # noqa: BLE001  (handed to whoever reads the future, as a pool would)
            future.set_exception(err)
        return future


def flow_pool_switch():
    """(module, attribute name, the pool factory) of the flow pool: ``lcm_video.temporal.motion.flow_pool``, which
    ``SourceMotion`` calls for every pair; the benchmark swaps it for an inline runner to measure without the pool."""
    from lcm_video.temporal import motion

    return motion, "flow_pool", motion.flow_pool


def load(name: str, dtype: str):
    """Loaded models for ``name`` (tiny, toy, sd15: SD1.5's shapes, random weights) on the CPU."""
    import torch

    import lcm_video

    if name != "sd15":
        return lcm_video.load_models(name, device="cpu", dtype=dtype)
    from diffusers import StableDiffusionImg2ImgPipeline

    from lcm_video.models.tiny import sd15_components

    comps = sd15_components()
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    if torch_dtype != torch.float32:  # built in float32
        for key in ("unet", "vae", "text_encoder"):
            comps[key].to(torch_dtype)
    parts = {k: comps[k] for k in ("unet", "vae", "text_encoder", "tokenizer", "scheduler")}
    pipe = StableDiffusionImg2ImgPipeline(**parts, safety_checker=None, feature_extractor=None,
                                          requires_safety_checker=False)  # fmt: skip
    return lcm_video.Models(pipe, torch.device("cpu"), torch_dtype, 8.0, "sd15-shapes")


def measure(args) -> list[dict]:
    import torch

    import lcm_video
    from lcm_video.video.synthetic import lavfi_clip

    module, attr, pool = flow_pool_switch()
    inline = InlineExecutor()
    tmp = Path(tempfile.mkdtemp(prefix="threads-"))
    rows = []
    for name in args.models.split(","):
        w, h = SIZES[name]
        frames = args.frames or FRAMES[name]
        clip = lavfi_clip(tmp / f"{name}.mp4", size=f"{w}x{h}", rate="30", seconds=(frames + 0.5) / 30, audio=False)
        t0 = time.perf_counter()
        models = load(name, args.dtype)
        print(f"{name}: loaded in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
        warps = args.warps.split(",")
        configs = [(t, "none", "-") for t in (1, 2) if "none" in warps]
        configs += [(t, "flow", p) for t in (1, 2) for p in ("on", "off") if "flow" in warps]
        times: dict[tuple, list[float]] = {c: [] for c in configs}
        others: dict[tuple, list[float]] = {c: [] for c in configs}
        calls = {}

        def render(threads: int, warp: str, flow_pool: str, job=(clip, name, models, frames)):
            source, model, loaded, n = job
            torch.set_num_threads(threads)
            setattr(module, attr, (lambda: inline) if flow_pool == "off" else pool)
            try:
                return lcm_video.stylize(source, tmp / "out.mp4", PROMPTS[model], models=loaded, warp=warp,
                                         max_frames=n, window=args.window, quiet=True)  # fmt: skip
            finally:
                setattr(module, attr, pool)

        render(1, configs[0][1], "on")  # warm-up: first-call allocations, the flow estimator, ffmpeg's page cache
        for _ in range(args.repeats):
            for c in configs:
                with Busy() as busy:
                    t0 = time.perf_counter()
                    res = render(*c)
                    times[c].append(time.perf_counter() - t0)
                others[c].append(busy.others)
                calls[c] = res.unet_calls
        for c in configs:
            row = {
                "model": name,
                "size": f"{w}x{h}",
                "frames": frames,
                "torch_threads": c[0],
                "warp": c[1],
                "flow_pool": c[2],
                "seconds_min": round(min(times[c]), 3),
                "seconds_median": round(statistics.median(times[c]), 3),
                "seconds": [round(s, 3) for s in times[c]],
                "unet_calls": calls[c],
                "others_cpus": round(statistics.median(others[c]), 2),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
        models = render = None  # free this model before the next loads
    torch.set_num_threads(args.restore_threads)
    return rows


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.threads", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="JSON document of every row, with the machine")
    p.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
    p.add_argument("--frames", type=int, default=0, help="frames a render (default per model: tiny 29, toy 12, sd15 4)")
    p.add_argument("--window", type=int, default=8, help="frames a window (--window)")
    p.add_argument("--repeats", type=int, default=3, help="runs of each configuration, round-robin")
    p.add_argument("--warps", default="none,flow", help="none (torch threads alone), flow (and the flow pool), or both")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse(argv)
    import torch

    args.restore_threads = torch.get_num_threads()
    load_before = os.getloadavg()
    rows = measure(args)
    doc = {
        "benchmark": "threads",
        "argv": sys.argv[1:] if argv is None else argv,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": "cpu",
        "cpus": os.cpu_count(),
        "torch_threads_default": args.restore_threads,
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "peak_rss_mib_process": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    return rows


if __name__ == "__main__":
    main()
