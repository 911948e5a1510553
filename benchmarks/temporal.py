"""Motion-compensated temporal consistency, measured: ``--warp`` (and the other temporal options) on toy-world clips
with each kind of motion, stylised by the trained ``toy`` model, graded under two optical flow estimators.

    python -m benchmarks.temporal [--out FILE.json] quality [--size 128] [--frames 24] [--strengths 0.4,0.6]
                                  [--blends 0.2,0.5] [--pixel-blends 0,0.5] [--settings none,flow,...]
                                  [--motion-adapter ADAPTER]
    python -m benchmarks.temporal [--out FILE.json] cost [--size 512] [--frames 8] [--repeat 2]
    python -m benchmarks.temporal [--out FILE.json] flows [--size 128] [--frames 24]
    python -m benchmarks.temporal [--out FILE.json] parts [--sizes 256,512,1024] [--frames 12]

quality: the clips of ``lcm_video.video.synthetic.motion_clip`` (pan, zoom, crossing, cut, still; lossless H.264),
each stylised with ``--model toy`` for every strength x blend x pixel blend x setting, then ``lcm-video eval``
against the source with DIS and with Farneback flow: warp error (both), tOF, flicker, PSNR and SSIM; warp error under
the clip's true motion (``motion_flow``: no estimator at all); and, per clip and setting, the ratio of each warp error
to ``--warp none`` at the same strength, blend and pixel blend. A still clip also reports whether all frames came out
identical.

flows: each estimator's mean end-point error (pixels, where the true motion is defined) against the clips' true
motion, how much of the true motion it sees (its flow projected on the true motion's direction, over the true motion's
length, where that is over 0.3 px: 1 when it sees all of it), and its time per flow: how far each grader and
``--warp flow``'s own flow can be trusted on these clips.

parts: the CPU time per frame of what ``--warp flow`` adds, alone, on one thread: ``latent_motion`` (DIS both ways,
the checks, the latent grid) and ``fuse_frame`` (``--pixel-blend``: the previous frame moved along the flow and
blended), on a panning clip at each size.

cost: stylise with random weights of SD1.5's shapes (``models.tiny.sd15_components``) on a panning clip, every
setting against ``none``, same process, interleaved ``--repeat`` times (the fastest run counts); seconds per frame
and the ratio.

Every mode prints its rows as JSON lines and, with ``--out``, writes them with the machine and versions. The variants
measured and not kept (BENCHMARKS.md: an oracle flow, bicubic resampling, noise moved with the content, StreamV2V's
feature fusion, ...) were run by an ``experiments`` mode that patched private functions of ``lcm_video.temporal`` in
this process; it was removed after commit df3a05c (its figures stay in BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import Rows, clock, interleaved, one_thread
from lcm_video.metrics import evaluate, warp_error
from lcm_video.video.synthetic import MOTION_CLIPS, MOTION_PROMPT, frames_clip, motion_clip, motion_flow

SETTINGS = {
    "none": {"warp": "none"},
    "flow": {"warp": "flow"},
    "cross": {"warp": "none", "cross_frame": "anchor+prev"},  # alone: flow is the default
    "flow+cross": {"warp": "flow", "cross_frame": "anchor+prev"},
    "flow+own-noise": {"warp": "flow", "shared_noise": 0.0},  # every frame's noise its own
}


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",")]


def _pairs(kind: str, frames: int):
    """Frame pairs (k, k + 1) whose true motion is defined (all but the one across ``cut``'s cut)."""
    return [k for k in range(frames - 1) if not (kind == "cut" and k + 1 == frames // 2)]


def true_warp_error(video: np.ndarray, kind: str, clip: np.ndarray) -> float:
    """``metrics.evaluate``'s warp error of uint8 (n, h, w, 3) ``video`` under ``clip``'s true motion."""
    errs = []
    for k in _pairs(kind, len(clip)):
        fw, valid = motion_flow(kind, clip, k)
        a, b = video[k].astype(np.float32) / 255, video[k + 1].astype(np.float32) / 255
        errs.append(warp_error(a, b, fw, valid))
    return float(np.mean(errs))


def flows(args, rows: Rows) -> None:
    from lcm_video.temporal.flow import FlowEstimator

    for kind in MOTION_CLIPS:
        clip = motion_clip(kind, args.size, args.frames)
        for method in ("dis", "farneback"):
            est, errs, seen, seconds = FlowEstimator(method), [], [], 0.0
            for k in _pairs(kind, len(clip)):
                fw, valid = motion_flow(kind, clip, k)
                t0 = time.perf_counter()
                got = est(clip[k], clip[k + 1])
                seconds += time.perf_counter() - t0
                err = np.sqrt(((got - fw) ** 2).sum(-1))
                errs.append(float((err * valid).sum() / max(valid.sum(), 1.0)))
                # How much of the true motion the estimate has, along its direction (1: all of it).
                norm2 = (fw**2).sum(-1)
                moving = (valid > 0) & (norm2 > 0.3**2)
                if moving.any():
                    seen.append(float(((got * fw).sum(-1)[moving] / norm2[moving]).mean()))
            ms = seconds / len(errs) * 1000
            row = {"clip": kind, "flow": method, "size": args.size, "epe_px": float(np.mean(errs)), "ms": ms}
            row["motion_seen"] = float(np.mean(seen)) if seen else None
            rows.add(row)


def quality(args, rows: Rows) -> None:
    from lcm_video import load_models, stylize
    from lcm_video.video.reader import FrameReader, probe

    models = load_models("toy", device="cpu", motion_adapter=args.motion_adapter)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clips = {}
        for kind in MOTION_CLIPS:
            clips[kind] = motion_clip(kind, args.size, args.frames)
            src = frames_clip(tmp / f"{kind}.mp4", clips[kind], fps=24)
            for strength in _floats(args.strengths):
                for blend, pixel in itertools.product(_floats(args.blends), _floats(args.pixel_blends)):
                    base = None
                    for name, setting in SETTINGS.items():
                        if args.settings and name not in args.settings.split(","):
                            continue
                        out = tmp / f"{kind}_{strength}_{blend}_{pixel}_{name}.mp4"
                        kw = {"strength": strength, "blend": blend, "pixel_blend": pixel, **setting}
                        _, seconds = clock(
                            stylize, src, out, MOTION_PROMPT, models=models, quiet=True, codec="libx264rgb", crf=0, **kw
                        )
                        dis, farn = evaluate(out, src, flow="dis"), evaluate(out, src, flow="farneback")
                        row = {"clip": kind, "strength": strength, "blend": blend, "pixel_blend": pixel}
                        row["motion_adapter"] = args.motion_adapter
                        row["setting"] = name
                        row |= {"warp_dis": dis.warp_error, "warp_farneback": farn.warp_error, "tof": dis.tof}
                        row |= {"flicker": dis.flicker, "psnr": dis.psnr, "ssim": dis.ssim, "seconds": seconds}
                        info = probe(out)
                        frames = FrameReader(info, (info.width, info.height)).read(range(info.frames))
                        row["warp_true"] = true_warp_error(frames, kind, clips[kind])
                        if kind == "still":
                            row["identical_frames"] = bool((frames == frames[:1]).all())
                        if name == "none":
                            base = row
                        for key in ("warp_dis", "warp_farneback", "warp_true", "tof"):
                            row[f"{key}_vs_none"] = row[key] / base[key] if base and base[key] else None
                        rows.add(row)


def cost(args, rows: Rows) -> None:
    from functools import partial

    import torch

    from lcm_video import stylize
    from lcm_video.models.container import models_from_components
    from lcm_video.models.tiny import sd15_components

    models = models_from_components(sd15_components(), torch.device("cpu"), torch.float32, 8.0, "sd15-shapes")
    with tempfile.TemporaryDirectory() as tmp:
        src = frames_clip(Path(tmp) / "pan.mp4", motion_clip("pan", args.size, args.frames), fps=24)
        calls = {
            name: partial(stylize, src, Path(tmp) / f"{name}.mp4", "a fox", models=models, quiet=True, **setting)
            for name, setting in SETTINGS.items()
        }
        times = interleaved(calls, args.repeat)
    for name, timing in times.items():
        row = {"setting": name, "size": args.size, "frames": args.frames, "seconds": timing.min}
        row["s_per_frame"] = timing.min / args.frames
        row["vs_none"] = timing.min / times["none"].min
        rows.add(row)


def parts(args, rows: Rows) -> None:
    from lcm_video.temporal.flow import FlowEstimator, fuse_frame, latent_motion

    with one_thread():
        for size in (int(x) for x in args.sizes.split(",")):
            clip = motion_clip("pan", size, args.frames)
            est = FlowEstimator("dis")
            t0 = time.perf_counter()
            motions = [latent_motion(clip[k], clip[k + 1], 8, est) for k in range(len(clip) - 1)]
            flow_ms = (time.perf_counter() - t0) / len(motions) * 1000
            fused = clip[0].astype(np.float32)
            t0 = time.perf_counter()
            for k, m in enumerate(motions):
                fused = fuse_frame(clip[k + 1], fused, 0.5, m)
                np.rint(fused).clip(0, 255).astype(np.uint8)
            fuse_ms = (time.perf_counter() - t0) / len(motions) * 1000
            rows.add({"size": size, "latent_motion_ms": flow_ms, "fuse_frame_ms": fuse_ms})


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.temporal", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="write the rows, machine and versions as JSON here")
    sub = ap.add_subparsers(dest="case", required=True)
    q = sub.add_parser("quality")
    q.add_argument("--size", type=int, default=128)
    q.add_argument("--frames", type=int, default=24)
    q.add_argument("--strengths", default="0.4,0.6")
    q.add_argument("--blends", default="0.2,0.5")
    q.add_argument("--pixel-blends", default="0.5")
    q.add_argument("--settings", default="", help=f"comma-separated, of {','.join(SETTINGS)}; all when empty")
    q.add_argument("--motion-adapter", help="stylise through this motion module (motion-aware stylise)")
    c = sub.add_parser("cost")
    c.add_argument("--size", type=int, default=512)
    c.add_argument("--frames", type=int, default=8)
    c.add_argument("--repeat", type=int, default=2)
    t = sub.add_parser("parts")
    t.add_argument("--sizes", default="256,512,1024")
    t.add_argument("--frames", type=int, default=12)
    f = sub.add_parser("flows")
    f.add_argument("--size", type=int, default=128)
    f.add_argument("--frames", type=int, default=24)
    return ap


def main(argv: list[str] | None = None) -> Rows:
    args = parser().parse_args(argv)
    rows = Rows(args.out, f"temporal {args.case}")
    cases = {"quality": quality, "cost": cost, "flows": flows, "parts": parts}
    cases[args.case](args, rows)
    if args.case == "quality":
        summary: dict = {}
        for r in rows:
            if r["setting"] != "none" and r["clip"] != "still" and r["warp_dis_vs_none"] is not None:
                name = f"{r['setting']} (blend {r['blend']:g}, pixel blend {r['pixel_blend']:g})"
                summary.setdefault(name, []).append(
                    (r["warp_dis_vs_none"], r["warp_farneback_vs_none"], r["warp_true_vs_none"])
                )
        for name, pairs in summary.items():
            a = np.array(pairs, dtype=float)
            print(
                f"{name}: warp error vs none, moving clips: DIS mean {a[:, 0].mean():.3f} max {a[:, 0].max():.3f}; "
                f"Farneback mean {a[:, 1].mean():.3f} max {a[:, 1].max():.3f}; "
                f"true motion mean {a[:, 2].mean():.3f} max {a[:, 2].max():.3f}"
            )
    return rows


if __name__ == "__main__":
    main()
