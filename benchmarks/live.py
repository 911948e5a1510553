"""Live mode (issue 29): `lcm_video.run_live` against StreamDiffusion's own pipeline class, on the same modules.

    python -m benchmarks.live [--models toy,sd15] [--sizes 256,512] [--backends torch,openvino]
                              [--dtypes float32,bfloat16] [--stream-batch off,on] [--warp flow,none]
                              [--modes throughput,latency,bare] [--frames 48] [--sd-frames 4]
                              [--latency-seconds 4] [--repeat 1] [--threads N] [--no-streamdiffusion]
                              [--out FILE.json]
    python -m benchmarks.live --minutes N [--out FILE.json]

Models: ``toy`` (the trained toy LCM shipped in the package, ``load_models("toy")``) at 128², and ``toy-fast``
(the same with its TAESD, as ``--fast``); ``sd15``
(SD1.5-shaped random weights, ``sd15_components``: the 860M UNet with an LCM w-embedding, a CLIP-L-sized text encoder,
decoded and encoded by TAESD, as ``--fast``) at each of ``--sizes``. 4 LCM steps at strength 0.5, guidance 1, one
prompt; the source a ``testsrc2`` clip at the model's size and 30 fps (``benchmarks.common.make_clip``).

lcm_video (``run_live`` from a file source, the models passed in prebuilt), per backend (torch, openvino), precision
(float32, bfloat16), stream batch (off, on) and ``--warp`` (the temporal defaults: flow; or none), in modes:
  throughput  ``realtime=False`` (every frame, in order, as fast as it goes) into a recording sink (mp4): fps_out
              from the run's stats (its seconds include the stream batch filling and its flush), and the steady
              fps (one over the median time between output frames);
  bare        the same with no sink (``on_frame`` takes the frames): the like-for-like figure against StreamDiffusion,
              which writes nothing (the file is still decoded on the reader thread);
  latency     ``realtime=True`` from the 30 fps clip (the newest frame wins, the others dropped) into a recording:
              p50/p95 of capture → sink write from the run's stats, and the frames dropped.
Each case's models are warmed up by a 2-frame run first (OpenVINO converts and compiles there, cached on disk).

StreamDiffusion: its published package (``pip install --no-deps streamdiffusion==0.1.1``; its module imports with
diffusers 0.42 and transformers 5), its ``StreamDiffusion`` class as its README's img2img example runs it: a
``StableDiffusionPipeline`` over the very same UNet, VAE, text encoder and tokenizer; ``t_index_list`` the indices of
our 4 LCM timesteps at strength 0.5 in its 50-point LCM schedule; ``cfg_type="none"`` (guidance 1),
``frame_buffer_size=1``, ``use_denoising_batch`` as the stream batch; ``stream.vae`` the TAESD when ours uses it;
``prepare(prompt)``; warm-up calls (as many as the steps), then the per-frame loop timed alone: PIL image in (as the
README passes it), uint8 frame out (diffusers' ``postprocess``: the README's ``postprocess_image`` imports
torchvision), over frames decoded beforehand, nothing written. One change: its ``__call__`` times itself with
``torch.cuda.Event`` and ``torch.cuda.synchronize()`` (CUDA only), so the benchmark calls the same steps it runs
(``preprocess`` → ``encode_image`` → ``predict_x0_batch`` → ``decode_image``) without the CUDA timing. Its latency is
measured in that loop: from the start of the call a frame goes in to the end of the call its output comes out of
(with the denoising batch, ``steps`` calls later). Both sides run on the same torch thread count (lcm_video's: 1 for
the toy, torch's default for SD1.5's shapes, or ``--threads``: one thread on a busy machine, where two collapse),
noted in each row.

--minutes N: memory over an N-minute realtime run of the toy (torch, float32, the temporal defaults, a recording):
the process's RSS sampled every second; a row per minute (per half of a run under 2 minutes: median and max) and
a summary: flat when the last minute's max is within 5 % of the first minute's.

Rows print as JSON lines as they come, then a markdown table; ``--out`` writes them with the machine and versions.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.common import Rows, make_clip

PROMPT = "a red circle on a blue background"  # the toy's vocabulary; any text for the random weights
STRENGTH, STEPS, RATE = 0.5, 4, "30"
TOY_SIZE = 128
FLAT = 0.05  # the last minute's RSS within 5 % of the first's


def _csv(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


class Outputs:
    """An ``on_frame`` callback: when each output frame came out (the steady rate, without the first frame's wait)."""

    def __init__(self):
        self.times: list[float] = []

    def __call__(self, frame, n) -> None:
        self.times.append(time.perf_counter())

    @property
    def steady_fps(self) -> float | None:
        """One over the median time between outputs (None when under 3, or when most came at once: a stream batch's
        flush hands its frames over together at the source's end, so give it more frames than steps)."""
        gaps = sorted(b - a for a, b in zip(self.times, self.times[1:], strict=False))
        gap = gaps[len(gaps) // 2] if len(gaps) >= 2 else 0.0
        return 1 / gap if gap > 1e-3 else None


def _r(value, digits=3):
    return None if value is None else round(value, digits)


# ---------------------------------------------------------------------------------------------------------- models


class Case:
    """One model at one size: its modules (shared by both sides), the clips, and how to make a ``Models`` per
    backend and precision."""

    def __init__(self, name: str, size: int, tmp: Path, args):
        import torch

        self.name, self.size, self.tmp = name, size, tmp
        self.frames = args.frames if name.startswith("toy") else args.sd_frames
        side = f"{size}x{size}"
        self.clip = make_clip(tmp / f"{name}{size}.mp4", seconds=self.frames / 30, size=side, rate=RATE)
        self.rt_clip = make_clip(tmp / f"{name}{size}rt.mp4", seconds=args.latency_seconds, size=side, rate=RATE)
        self.warm_clip = make_clip(tmp / f"{name}{size}warm.mp4", seconds=0.2, size=side, rate=RATE)
        t0 = time.perf_counter()
        if name == "sd15":
            from lcm_video.models.tiny import sd15_components

            self.comps = sd15_components()
            self.fast = True  # TAESD decodes and encodes, as --fast
        else:  # the toy, and toy-fast: the toy with its own TAESD (--fast)
            self.comps = None
            self.fast = name == "toy-fast"
        self.dtype = torch.float32  # the shared modules' precision now
        print(f"{name}: modules ready in {time.perf_counter() - t0:.0f} s", file=sys.stderr)

    def models(self, backend: str, dtype: str):
        """A ``Models`` for ``backend`` computing in ``dtype``. torch: over the shared modules (converted in place);
        OpenVINO: over copies of the float32 UNet and VAE (it moves the weights it converted to the meta device)."""
        import torch

        from lcm_video import load_models
        from lcm_video.models.container import models_from_components

        dt = getattr(torch, dtype)
        if self.comps is None:  # the toy: loaded as lcm_video loads it (toy-fast: with --fast's autoencoder)
            from lcm_video.models.presets import PRESETS

            vae = PRESETS["toy"].fast_vae if self.fast else None
            return load_models("toy", vae=vae, device="cpu", dtype=dtype, backend=backend)
        parts = self.comps | {"vae": self.comps["taesd"]}
        if backend == "openvino":
            assert self.dtype == torch.float32, "OpenVINO converts float32 weights: run its cases first"
            parts = parts | {"unet": copy.deepcopy(parts["unet"]), "vae": copy.deepcopy(parts["vae"])}
            models = models_from_components(parts, "cpu", torch.float32, 1.0, "sd15-shapes")
            models.use_openvino(dt)
            return models
        self.to(dt)
        return models_from_components(parts, "cpu", dt, 1.0, "sd15-shapes")

    def to(self, dtype) -> None:
        if self.comps is not None and dtype != self.dtype:
            for key in ("unet", "vae", "text_encoder", "taesd"):
                self.comps[key].to(dtype=dtype)
            self.dtype = dtype


# --------------------------------------------------------------------------------------------------------- ours


def run_ours(case: Case, models, mode: str, stream_batch: bool, warp: str, rows: Rows, meta: dict) -> None:
    import torch

    from lcm_video import run_live

    clip = case.rt_clip if mode == "latency" else case.clip
    outputs = [] if mode == "bare" else [str(case.tmp / "rec.mp4")]
    kw = {"models": models, "strength": STRENGTH, "steps": STEPS, "guidance": 1.0, "warp": warp, "quiet": True}
    kw["stream_batch"] = stream_batch
    run_live(str(case.warm_clip), [], PROMPT, on_frame=Outputs(), max_frames=2, **kw)  # warm-up
    seen = Outputs()
    res = run_live(str(clip), outputs, PROMPT, realtime=mode == "latency", on_frame=seen, **kw)
    s = res.stats
    rows.add(
        meta
        | {
            "side": "lcm_video run_live",
            "backend": models.backend,
            "dtype": models.runtime["dtype"],
            "stream_batch": stream_batch,
            "warp": warp,
            "mode": mode,
            "sink": "none (on_frame)" if mode == "bare" else "recording (mp4)",
            "frames_in": s["frames_in"],
            "frames": s["frames_out"],
            "seconds": s["seconds"],
            "fps": s["fps_out"],
            "fps_steady": _r(seen.steady_fps),
            "latency_p50_ms": s["latency_ms"]["p50"],
            "latency_p95_ms": s["latency_ms"]["p95"],
            "dropped": s["dropped"],
            "unet_calls": s["unet_calls"],
            "threads": torch.get_num_threads(),
        }
    )


# ---------------------------------------------------------------------------------------------- StreamDiffusion


def streamdiffusion_class():
    """StreamDiffusion's class (the published package) with its ``__call__``'s steps run without its CUDA timing."""
    import torch
    from streamdiffusion import StreamDiffusion

    class CPUStreamDiffusion(StreamDiffusion):
        """``StreamDiffusion.__call__`` for an image, less ``torch.cuda.Event`` / ``synchronize`` (its own timing,
        CUDA only) and the similar-image filter (off here): the same steps in the same order."""

        @torch.no_grad()
        def __call__(self, x):
            x = self.image_processor.preprocess(x, self.height, self.width).to(device=self.device, dtype=self.dtype)
            x_t_latent = self.encode_image(x)
            x_0_pred_out = self.predict_x0_batch(x_t_latent)
            x_output = self.decode_image(x_0_pred_out).detach().clone()
            self.prev_image_result = x_output
            return x_output

    return CPUStreamDiffusion


def t_index_list(scheduler, steps: int = STEPS, strength: float = STRENGTH) -> list[int]:
    """The indices in StreamDiffusion's 50-point LCM schedule of the timesteps lcm_video runs at ``strength``."""
    from diffusers import LCMScheduler

    from lcm_video.core.schedule import LCMSchedule

    ours = LCMSchedule.from_scheduler(scheduler, steps, strength).timesteps
    probe = LCMScheduler.from_config(scheduler.config)
    probe.set_timesteps(50)  # StreamDiffusion.prepare's default num_inference_steps
    theirs = [int(t) for t in probe.timesteps]
    missing = [t for t in ours if t not in theirs]
    assert not missing, f"timesteps {missing} are not in StreamDiffusion's schedule {theirs}"
    return [theirs.index(t) for t in ours]


def decoded_frames(clip: Path, size: int):
    """The clip's frames as lcm_video's reader gives them (uint8 (h, w, 3) at the size)."""
    from lcm_video.video.reader import FrameReader, probe

    info = probe(str(clip))
    reader = FrameReader(info, (size, size))
    try:
        return [reader.read([i])[0] for i in range(info.frames)]
    finally:
        reader.close()


def run_streamdiffusion(case: Case, models, batch: bool, rows: Rows, meta: dict) -> None:
    """StreamDiffusion's per-frame loop on ``models``' own modules (torch), after ``steps`` warm-up calls."""
    import numpy as np
    import torch
    from diffusers import StableDiffusionPipeline
    from PIL import Image

    p = models.pipe
    parts = {k: getattr(p, k) for k in ("unet", "vae", "text_encoder", "tokenizer", "scheduler")}
    vae = parts["vae"]
    if case.fast:  # the pipeline with its SD VAE, then TAESD put in, as the README does
        if case.comps is not None:
            parts["vae"] = case.comps["vae"]
        else:
            from lcm_video import load_models

            parts["vae"] = load_models("toy", device="cpu", dtype="float32").pipe.vae.to(models.dtype)
    pipe = StableDiffusionPipeline(**parts, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    stream = streamdiffusion_class()(
        pipe,
        t_index_list=t_index_list(p.scheduler),
        torch_dtype=models.dtype,
        width=case.size,
        height=case.size,
        use_denoising_batch=batch,
        frame_buffer_size=1,
        cfg_type="none",
    )
    stream.vae = vae
    stream.prepare(PROMPT)
    frames = decoded_frames(case.clip, case.size)

    def one(frame):
        out = stream(Image.fromarray(frame))
        return (stream.image_processor.postprocess(out, output_type="np")[0] * 255).round().astype(np.uint8)

    for i in range(STEPS):  # warm-up: the README's "Warmup >= len(t_index_list) x frame_buffer_size"
        one(frames[i % len(frames)])
    starts, ends = [], []
    t0 = time.perf_counter()
    for i in range(case.frames):
        starts.append(time.perf_counter())
        out = one(frames[i % len(frames)])
        ends.append(time.perf_counter())
    took = time.perf_counter() - t0
    assert out.shape == (case.size, case.size, 3), out.shape
    lag = STEPS - 1 if batch else 0  # the call a frame's output comes out of
    lat = sorted((ends[i + lag] - starts[i]) * 1000 for i in range(len(starts) - lag))
    rows.add(
        meta
        | {
            "side": "StreamDiffusion 0.1.1",
            "backend": "torch",
            "dtype": str(models.dtype).removeprefix("torch."),
            "stream_batch": batch,
            "warp": "-",
            "mode": "throughput",
            "sink": "none (frames in memory)",
            "frames_in": case.frames,
            "frames": case.frames,
            "seconds": round(took, 3),
            "fps": round(case.frames / took, 3),
            "fps_steady": round(case.frames / took, 3),
            "latency_p50_ms": int(lat[len(lat) // 2]) if lat else None,
            "latency_p95_ms": int(lat[min(len(lat) - 1, int(0.95 * len(lat)))]) if lat else None,
            "dropped": 0,
            "unet_calls": case.frames * (1 if batch else STEPS),
            "threads": torch.get_num_threads(),
        }
    )


# ----------------------------------------------------------------------------------------------------- the runs


def bench(args, rows: Rows) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="lcm-live-bench-"))
    batches = [{"off": False, "on": True}[x] for x in _csv(args.stream_batch)]
    warps, modes, dtypes = _csv(args.warp), _csv(args.modes), _csv(args.dtypes)
    backends = _csv(args.backends)
    # OpenVINO first: it converts the float32 weights, and torch's cases convert the shared modules in place
    backends = sorted(backends, key=lambda b: b != "openvino")
    import torch

    threads = args.threads or torch.get_num_threads()  # torch's default; the toy's runs set 1 for the process
    for name in _csv(args.models):
        for size in [TOY_SIZE] if name.startswith("toy") else [int(s) for s in _csv(args.sizes)]:
            torch.set_num_threads(threads)
            case = Case(name, size, tmp, args)
            meta = {"model": name, "size": size}
            for backend in backends:
                for dtype in dtypes:
                    models = case.models(backend, dtype)
                    for run, batch in [(r, b) for b in batches for r in range(args.repeat)]:
                        for warp in warps:
                            for mode in modes:
                                run_ours(case, models, mode, batch, warp, rows, meta | {"run": run})
                        if backend == "torch" and args.streamdiffusion:
                            run_streamdiffusion(case, models, batch, rows, meta | {"run": run})
                    del models
            del case


def bench_memory(args, rows: Rows) -> None:
    """RSS over an N-minute realtime run of the toy into a recording, sampled every second."""
    import psutil

    from lcm_video import load_models, run_live

    tmp = Path(tempfile.mkdtemp(prefix="lcm-live-mem-"))
    seconds = args.minutes * 60
    clip = make_clip(tmp / "long.mp4", seconds=seconds, size=f"{TOY_SIZE}x{TOY_SIZE}", rate=RATE)
    models = load_models("toy", device="cpu", dtype="float32")
    proc, samples, stop = psutil.Process(), [], threading.Event()

    def sample():
        t0 = time.perf_counter()
        while not stop.is_set():
            samples.append((time.perf_counter() - t0, proc.memory_info().rss / 2**20))
            stop.wait(1.0)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        kw = {"models": models, "strength": STRENGTH, "steps": STEPS, "guidance": 1.0, "quiet": True}
        res = run_live(str(clip), [str(tmp / "rec.mp4")], PROMPT, realtime=True, **kw)
    finally:
        stop.set()
        sampler.join()
    window = 60.0 if seconds >= 120 else seconds / 2  # a minute, or half of a shorter run
    windows: dict[int, list[float]] = {}
    for t, rss in samples:
        windows.setdefault(min(int(t // window), round(seconds / window) - 1), []).append(rss)
    for w, values in sorted(windows.items()):
        span = {"from_s": round(w * window), "to_s": round((w + 1) * window)}
        rows.add(span | {"rss_mib_median": round(statistics.median(values), 1), "rss_mib_max": round(max(values), 1)})
    first, last = max(windows[min(windows)]), max(windows[max(windows)])
    s = res.stats
    rows.add(
        {
            "minutes": args.minutes,
            "frames_in": s["frames_in"],
            "frames": s["frames_out"],
            "dropped": s["dropped"],
            "fps": s["fps_out"],
            "latency_p50_ms": s["latency_ms"]["p50"],
            "latency_p95_ms": s["latency_ms"]["p95"],
            "rss_mib_first_window_max": round(first, 1),
            "rss_mib_last_window_max": round(last, 1),
            "rss_mib_peak": round(max(r for _, r in samples), 1),
            "growth": round(last / first - 1, 4),
            "flat": last <= first * (1 + FLAT),
        }
    )


def bench_calibration(args, rows: Rows) -> None:
    """``--calibrate toy`` against ``--calibrate source``: for each clip, the toy's live frames in OpenVINO int8
    (each calibration) against float32, PSNR per frame (worst, mean), every frame in order (no --realtime), the
    int8 models quantised afresh in a cache of this run's own."""
    import os

    import numpy as np

    from lcm_video import load_models, run_live
    from lcm_video.metrics import psnr

    tmp = Path(tempfile.mkdtemp(prefix="lcm-live-cal-"))
    os.environ["LCM_VIDEO_CACHE"] = str(tmp / "cache")
    for clip in args.calibration.split(","):
        got = {}
        for name, kw in (("float32", {}), ("toy", {"quantize": "int8"}), ("source", {"quantize": "int8"})):
            models = load_models("toy", device="cpu", dtype="float32", backend="openvino")
            frames: list = []
            run_live(clip, [], PROMPT, models=models, calibrate=name if name != "float32" else "toy", quiet=True,
                     backend="openvino", dtype="float32", max_frames=args.frames,
                     on_frame=lambda f, n, out=frames: out.append(f.copy()), **kw)  # fmt: skip
            got[name] = np.stack(frames).astype(np.float64) / 255
        for name in ("toy", "source"):
            db = [psnr(a, b) for a, b in zip(got[name], got["float32"], strict=True)]
            rows.add({"clip": clip, "calibrate": name, "frames": len(db), "psnr_min_db": round(min(db), 2),
                      "psnr_mean_db": round(float(np.mean(db)), 2)})  # fmt: skip


# ------------------------------------------------------------------------------------------------------ output

COLUMNS = (
    ("model", "model"), ("size", "size"), ("side", "side"), ("backend", "backend"), ("dtype", "dtype"),
    ("stream_batch", "stream batch"), ("run", "run"), ("warp", "warp"), ("mode", "mode"), ("sink", "sink"),
    ("frames", "frames"), ("fps", "fps"), ("fps_steady", "steady fps"), ("vs_sd", "vs SD"),
    ("latency_p50_ms", "p50 ms"), ("latency_p95_ms", "p95 ms"), ("dropped", "dropped"), ("threads", "threads"),
)  # fmt: skip


def with_ratios(rows: list[dict]) -> list[dict]:
    """Each lcm_video row's steady fps over StreamDiffusion's at the same model, size, precision and stream batch, in
    the same run of ``--repeat`` (neighbours in time: a shared machine drifts)."""
    sd = {
        (r["model"], r["size"], r["dtype"], r["stream_batch"], r.get("run")): r["fps"]
        for r in rows
        if r.get("side", "").startswith("StreamDiffusion")
    }
    out = []
    for r in rows:
        key = (r.get("model"), r.get("size"), r.get("dtype"), r.get("stream_batch"), r.get("run"))
        ratio = None
        if r.get("side", "").startswith("lcm_video") and key in sd and r["mode"] != "latency" and r["fps_steady"]:
            ratio = round(r["fps_steady"] / sd[key], 2)
        out.append(r | {"vs_sd": ratio})
    return out


def table(rows: list[dict]) -> str:
    if rows and "calibrate" in rows[0]:
        lines = ["| clip | --calibrate | frames | PSNR to float32, worst frame | mean |", "|---|---|---|---|---|"]
        return "\n".join(lines + [f"| {r['clip']} | {r['calibrate']} | {r['frames']} | {r['psnr_min_db']} dB | "
                                   f"{r['psnr_mean_db']} dB |" for r in rows])  # fmt: skip
    if rows and "from_s" in rows[0]:  # the memory mode: a row per window, then the summary
        lines = ["| seconds | RSS median MiB | RSS max MiB |", "|---|---|---|"]
        lines += [f"| {r['from_s']}-{r['to_s']} | {r['rss_mib_median']} | {r['rss_mib_max']} |" for r in rows[:-1]]
        return "\n".join(lines + [""] + [f"- {k}: {v}" for k, v in rows[-1].items()])
    rows = with_ratios(rows)
    lines = ["| " + " | ".join(h for _, h in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = []
        for key, _ in COLUMNS:
            v = r.get(key)
            cells.append("" if v is None else ("on" if v is True else "off" if v is False else str(v)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.live", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="write the rows, machine and versions as JSON here")
    ap.add_argument(
        "--models",
        default="toy,toy-fast,sd15",
        help="comma-separated: toy, toy-fast (--fast) at 128², sd15 (at --sizes)",
    )
    ap.add_argument("--sizes", default="256,512", help="sd15's sizes (square)")
    ap.add_argument("--backends", default="torch,openvino")
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--stream-batch", default="off,on")
    ap.add_argument("--warp", default="flow,none", help="flow: the temporal defaults; none: blending in place")
    ap.add_argument("--modes", default="throughput,latency,bare", help="comma-separated subset of the three")
    ap.add_argument("--frames", type=int, default=48, help="the toy's throughput frames")
    ap.add_argument("--sd-frames", type=int, default=4, help="sd15's throughput frames (seconds a frame on a CPU)")
    ap.add_argument("--latency-seconds", type=float, default=4.0, help="the realtime clip's length")
    ap.add_argument(
        "--threads", type=int, help="torch threads for sd15's cases, both sides (default torch's: lcm_video's for them)"
    )
    ap.add_argument("--repeat", type=int, default=1, help="runs of each stream batch setting, both sides interleaved")
    ap.add_argument("--no-streamdiffusion", dest="streamdiffusion", action="store_false", help="lcm_video only")
    ap.add_argument("--minutes", type=float, help="the memory mode: RSS over an N-minute realtime run of the toy")
    ap.add_argument(
        "--calibration",
        metavar="CLIPS",
        help="the int8 calibration mode: comma-separated clips, the toy's int8 frames (--calibrate toy and source) "
        "against float32 (PSNR), --frames of each",
    )
    return ap


def main(argv: list[str] | None = None) -> Rows:
    args = parser().parse_args(argv)
    rows = Rows(args.out, "live calibration" if args.calibration else "live memory" if args.minutes else "live")
    if args.calibration:
        bench_calibration(args, rows)
    elif args.minutes:
        bench_memory(args, rows)
    else:
        bench(args, rows)
    print(table(rows))
    return rows


if __name__ == "__main__":
    main()
