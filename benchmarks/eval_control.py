"""Measure structure guidance on the trained toy (issue 28's figures): how well a restyle keeps the source's layout
with ``--control canny`` against the same render without it.

    OMP_NUM_THREADS=1 python -m benchmarks.eval_control [--controlnet DIR] [--seeds 8] [--out FILE.json]

Clips (128 px, 24 frames): ``square`` (a red square moving right over white 2 px a frame, ``toy.judge.square_clip``;
the tests use it at 64 px, never this one) and ``crossing`` (``video.synthetic.motion_clip``: the red square crossing
a smooth texture 3 px a frame), restyled into "a blue square on a white/textured background" by ``--model toy`` at
strength 0.6 and 1.0, per seed, with and without ``--control canny`` (``--controlnet``: a folder to use instead of
the shipped toy ControlNet). Per render:

- ``iou_min`` / ``iou_mean``: per-frame IoU of the output's object (on white: what is not the background, whatever its
  colour; on the texture: its blue region) with the source's red square; ``colour_iou_*``: of its blue region alone;
- ``adherence``: the share of frames whose main object is a blue square (``toy.judge.classify``; the square clip,
  on its white background);
- ``lag``: the mean over frames of the source square's centroid x minus the output object's (px; positive:
  the restyle trails the motion);
- ``edge_f1`` (``lcm-video eval``) and, on the crossing, warp error under DIS and Farneback (``lcm_video.metrics``),
  with the same clip's ``--warp none`` render without control as the reference ratio.

``--generate``: instead, ``lcm-video generate --model toy`` of "a yellow square on a blue background", 24 frames,
driven by ``--control canny --control-video`` of the square clip's canny maps (the motion comes from the maps: the toy
has no learnt motion module yet), per seed: the yellow region's IoU with the maps' square, and its lag.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import Rows
from lcm_video.toy.judge import classify, mask_iou, nearest_mask, object_mask, palette_index, square_clip

COLOUR = "blue"


def clips(size: int = 128, frames: int = 24) -> dict[str, tuple[np.ndarray, str]]:
    from lcm_video.video.synthetic import motion_clip

    return {
        "square": (square_clip(frames, size), "white"),
        "crossing": (motion_clip("crossing", size, frames), "textured"),
    }


def centroid_x(mask: np.ndarray) -> float:
    ys, xs = np.nonzero(mask)
    return float(xs.mean()) if len(xs) else float("nan")


def measure(src: np.ndarray, got: np.ndarray, background: str) -> dict[str, float]:
    """On a plain background the restyled object is what is not the background (``object_mask``, whatever its
    colour: a square drawn teal-blue is still where the source's was); ``colour_iou_*`` take the asked colour's region
    alone. On a texture only the colour's region can be told from the background."""
    a, colour = nearest_mask(src, "red"), nearest_mask(got, COLOUR)
    b = colour if background == "textured" else object_mask(palette_index(got))
    ious, cious = mask_iou(a, b), mask_iou(a, colour)
    lags = [centroid_x(x) - centroid_x(y) for x, y in zip(a, b, strict=True)]
    row = {
        "iou_min": float(ious.min()),
        "iou_mean": float(ious.mean()),
        "colour_iou_min": float(cious.min()),
        "colour_iou_mean": float(cious.mean()),
        "lag": float(np.nanmean(lags)),
    }
    if background != "textured":
        row["adherence"] = float(np.mean([classify(f, background) == (COLOUR, "square") for f in got]))
    return row


def render(tmp: Path, src: np.ndarray, prompt: str, name: str, **options) -> tuple[Path, np.ndarray]:
    import decord

    import lcm_video
    from lcm_video.video.synthetic import frames_clip

    clip = frames_clip(tmp / "src.mp4", src, fps=24)
    out = tmp / f"{name}.mp4"
    lcm_video.stylize(clip, out, prompt, model="toy", quiet=True, crf=0, **options)
    vr = decord.VideoReader(str(out))
    return out, vr.get_batch(list(range(len(vr)))).asnumpy()


def main(argv: list[str] | None = None) -> Rows:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.eval_control", description=__doc__.splitlines()[0])
    ap.add_argument("--controlnet", help="a ControlNet folder instead of the shipped toy one")
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--strengths", default="0.6,1.0")
    ap.add_argument("--clips", default="square,crossing")
    ap.add_argument("--generate", action="store_true", help="measure generate driven by a control video instead")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    if args.generate:
        return generate_rows(args)
    from lcm_video.metrics import evaluate

    control = {"control": ("canny",)}
    if args.controlnet:
        control["control_model"] = (f"canny={args.controlnet}",)
    rows = Rows(args.out, "eval_control")
    for name in args.clips.split(","):
        src, background = clips()[name]
        prompt = f"a {COLOUR} square on a{'' if background == 'textured' else ' white'} {background} background"
        prompt = prompt.replace("a white white", "a white")
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            source = render(tmp, src, prompt, "probe", max_frames=1)[0].with_name("src.mp4")
            for strength in (float(s) for s in args.strengths.split(",")):
                for seed in range(args.seeds):
                    for guided in (False, True):
                        t0 = time.perf_counter()
                        opts = dict(strength=strength, seed=seed, **(control if guided else {}))
                        out, got = render(tmp, src, prompt, "out", **opts)
                        row = {"clip": name, "strength": strength, "seed": seed, "control": guided}
                        row |= measure(src, got, background) | {"seconds": round(time.perf_counter() - t0, 2)}
                        row["edge_f1"] = evaluate(out, source).edge_f1
                        if name == "crossing":
                            for flow in ("dis", "farneback"):
                                row[f"warp_{flow}"] = evaluate(out, source, flow=flow).warp_error
                        rows.add(row)
            if name == "crossing":
                for seed in range(args.seeds):  # the reference: today's --warp none, no control, strength 0.6
                    out, _ = render(tmp, src, prompt, "ref", strength=0.6, seed=seed, warp="none")
                    ref = {"clip": name, "strength": 0.6, "seed": seed, "control": False, "warp": "none"}
                    for flow in ("dis", "farneback"):
                        ref[f"warp_{flow}"] = evaluate(out, source, flow=flow).warp_error
                    rows.add(ref)
    for row in summary(rows):
        rows.add(row)
    return rows


def generate_rows(args) -> Rows:
    import decord

    import lcm_video
    from lcm_video.control.annotators import canny
    from lcm_video.video.synthetic import frames_clip

    rows = Rows(args.out, "eval_control generate")
    src = square_clip(24, 128)
    extra = {"control_model": (f"canny={args.controlnet}",)} if args.controlnet else {}
    with tempfile.TemporaryDirectory() as tmp:
        maps = frames_clip(Path(tmp) / "maps.mp4", np.stack([canny(f) for f in src]), fps=8)
        for seed in range(args.seeds):
            for guided in (False, True):
                out = Path(tmp) / "gen.mp4"
                opts = {"control": ("canny",), "control_video": str(maps), **extra} if guided else {}
                t0 = time.perf_counter()
                lcm_video.generate("a yellow square on a blue background", out, model="toy", frames=24, fps=8,
                                   seed=seed, quiet=True, crf=0, **opts)  # fmt: skip
                vr = decord.VideoReader(str(out))
                got = vr.get_batch(list(range(len(vr)))).asnumpy()
                a, b = nearest_mask(src, "red"), nearest_mask(got, "yellow")
                ious = mask_iou(a, b)
                lag = float(np.nanmean([centroid_x(x) - centroid_x(y) for x, y in zip(a, b, strict=True)]))
                rows.add({"case": "generate", "seed": seed, "control": guided, "iou_min": float(ious.min()),
                          "iou_mean": float(ious.mean()), "lag": lag,
                          "adherence": float(np.mean([classify(f, "blue") == ("yellow", "square") for f in got])),
                          "seconds": round(time.perf_counter() - t0, 2)})  # fmt: skip
    for guided in (False, True):
        part = [r for r in rows if r.get("control") == guided]
        rows.add({"summary": "generate", "control": guided, "n": len(part),
                  "iou_min": round(min(r["iou_min"] for r in part), 4),
                  "iou_mean": round(float(np.mean([r["iou_mean"] for r in part])), 4),
                  "lag": round(float(np.mean([r["lag"] for r in part])), 3),
                  "adherence": round(float(np.mean([r["adherence"] for r in part])), 4)})  # fmt: skip
    return rows


def summary(rows) -> list[dict]:
    """Per clip, strength and control: the means over seeds (and the worst IoU)."""
    keys = sorted({(r["clip"], r["strength"], r["control"], r.get("warp", "")) for r in rows})
    out_rows = []
    for clip, strength, guided, warp in keys:
        part = [
            r
            for r in rows
            if (r["clip"], r["strength"], r["control"], r.get("warp", "")) == (clip, strength, guided, warp)
        ]
        out = {"summary": clip, "strength": strength, "control": guided, "warp": warp or "default", "n": len(part)}
        keys = ("iou_min", "iou_mean", "colour_iou_min", "colour_iou_mean", "adherence", "lag", "edge_f1")
        for k in (*keys, "warp_dis", "warp_farneback"):
            vals = [r[k] for r in part if k in r and r[k] is not None]
            if vals:
                out[k] = round(float(min(vals) if k.endswith("iou_min") else np.mean(vals)), 4)
        out_rows.append(out)
    return out_rows


if __name__ == "__main__":
    main()
