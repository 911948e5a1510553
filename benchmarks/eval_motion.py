"""Measure a toy motion module (issue 27's figures) on clips generated from held-out toy video prompts:

    OMP_NUM_THREADS=1 nice -n 10 python -m benchmarks.eval_motion --adapter build/motion/adapter --size 64 \
        --sampler ddim --steps 25 --seeds 1 [--long 2] [--out build/motion/eval.json]

For each prompt (plain backgrounds, every kind: the 8 directions, still, growing, shrinking; captions that
``toy.video.held_out`` keeps out of training), 16-frame clips are generated from ``lcm_video.load_models("toy-teacher",
motion_adapter=ADAPTER)``, by diffusers' ``AnimateDiffPipeline`` on those very modules with a DDIM scheduler (trailing
spacing; ``--sampler ddim``, the issue's teacher reference) or by the project's ``lcm_video.generate`` (``--sampler
generate``: its LCM-form sampler, PNG frames, no compression). Per clip:

- adherence: the share of frames whose main object has the asked colour and shape (``lcm_video.toy.judge.classify``)
  on a border of the asked background colour;
- motion: the object's centroid (the largest connected region not of the background's colour as drawn, whatever
  its own colour, so a shape drawn between two palette colours is one region) per frame; its mean displacement a
  frame, in px at the generated size and scaled to 128 px; "right direction" when the displacement is within 45° of
  the captioned one and at least 1 px a frame at 128 px; still clips: under 0.5 px a frame at 128 px;
- the object stays itself: the share of frames with exactly one such region larger than 0.5 % of the frame,
  and whether every frame's area is within ±15 % of the clip's median (not for growing / shrinking);
- temporal consistency as ``lcm-video eval`` grades a video without a source: warp error (DIS flow between the
  clip's own frames, occlusions masked) and flicker (mean absolute change between consecutive frames), RGB in [0, 1];
- ``--long N``: N 48-frame clips through ``lcm_video.generate`` (windows of 16, overlap 4): the largest centroid step
  over the median step (seams: ≤ 2 wanted).

``--adapter zero`` measures the untrained module (output projections at zero: each frame the image model's own);
``--words off`` the trained module without its learnt motion words (they fall back to the byte tokens the text encoder
never learnt): how much of the motion reaches the module through the words.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lcm_video.toy import video as tv
from lcm_video.toy import world
from lcm_video.toy.judge import classify, drawn_background, object_mask, palette_index

KINDS = [*tv.DIRECTIONS, "still", "grow", "shrink"]


def eval_prompts(n_kinds: int = len(KINDS), seed: int = 0) -> list[tuple[str, tv.ClipSpec]]:
    """One held-out prompt per kind (plain backgrounds), colours and shapes varying: (caption, a spec that says it)."""
    rng = np.random.default_rng(seed)
    out = []
    for kind in KINDS[:n_kinds]:
        while True:
            spec = tv.random_clip_spec(rng, 128)
            want = "move" if kind in tv.DIRECTIONS else kind
            if spec.kind != want or spec.scene.background == "textured":
                continue
            if want == "move" and spec.direction != kind:
                continue
            if tv.held_out(spec.caption):
                out.append((spec.caption, spec))
                break
    return out


def measure_clip(frames: np.ndarray, spec: tv.ClipSpec, classify) -> dict:
    """Figures of one generated clip: uint8 (f, h, w, 3) against what ``spec`` asked."""
    import cv2

    f, h, w = frames.shape[:3]
    names = list(world.COLOURS)
    s = spec.scene
    nearest = palette_index(frames)
    drawn_ok = drawn_background(nearest) == names.index(s.background)
    objects = object_mask(nearest)  # what is not the background as drawn, whatever its colour
    adhere, centres, areas, single = [], [], [], []
    for k in range(f):
        got = classify(frames[k], s.background)
        adhere.append(got == (s.colour, s.shape) and bool(drawn_ok[k]))
        n, labels, stats, cents = cv2.connectedComponentsWithStats(objects[k].astype(np.uint8), 4)
        big = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= 0.005 * h * w]
        single.append(len(big) == 1)
        if big:
            i = max(big, key=lambda i: stats[i, cv2.CC_STAT_AREA])
            centres.append(cents[i])
            areas.append(stats[i, cv2.CC_STAT_AREA])
        else:
            centres.append((np.nan, np.nan))
            areas.append(0)
    centres, areas = np.array(centres, float), np.array(areas, float)
    scale = 128 / w
    ok = ~np.isnan(centres[:, 0])
    row = {
        "caption": spec.caption,
        "kind": spec.kind,
        "adherence": float(np.mean(adhere)),
        "one_object": float(np.mean(single)),
    }
    if ok.sum() >= 2:
        idx = np.nonzero(ok)[0]
        disp = (centres[idx[-1]] - centres[idx[0]]) / (idx[-1] - idx[0])  # px a frame at the generated size
        speed128 = float(np.hypot(*disp) * scale)
        row |= {"dx": float(disp[0] * scale), "dy": float(disp[1] * scale), "speed_128": speed128}
        if spec.kind == "move":
            want = np.array(tv.DIRECTIONS[spec.direction], float)
            cos = float(disp @ want / (np.linalg.norm(want) * max(1e-9, np.linalg.norm(disp))))
            row["cos"] = cos
            row["motion_ok"] = bool(cos >= math.cos(math.pi / 4) and speed128 >= 1.0)
        elif spec.kind == "still":
            row["motion_ok"] = speed128 < 0.5
        else:  # growing / shrinking: the area's trend
            a = areas[idx]
            ratio = float(a[-1] / max(1.0, a[0]))
            row["area_ratio"] = ratio
            row["motion_ok"] = ratio > 1.2 if spec.kind == "grow" else ratio < 1 / 1.2
        if spec.kind in ("move", "still"):
            med = np.median(areas[idx])
            row["area_stable"] = bool(np.all(np.abs(areas[idx] - med) <= 0.15 * med))
        steps = np.hypot(*np.diff(centres[idx], axis=0).T) * scale
        row["step_max_over_median"] = float(steps.max() / max(1e-6, np.median(steps)))
    else:
        row["motion_ok"] = False
    return row


def temporal(frames: np.ndarray) -> dict:
    """``lcm-video eval``'s figures of a clip without a source, computed as it does (``lcm_video.metrics``): warp
    error (DIS flow between the clip's own consecutive frames, occlusions masked) and flicker (mean absolute
    difference of consecutive frames), RGB in [0, 1]; pairs across a cut left out of the warp error."""
    from lcm_video.metrics import warp_error
    from lcm_video.temporal.flow import CUT_VALID, FlowEstimator, consistent_mask, explained

    estimate = FlowEstimator("dis")
    warp, flick = [], []
    for a, b in zip(frames[:-1], frames[1:], strict=True):
        fw, bw = estimate(a, b), estimate(b, a)
        fa, fb = a.astype(np.float32) / 255, b.astype(np.float32) / 255
        flick.append(float(np.abs(fb - fa).mean()))
        if float(explained(a, b, fw, bw).mean()) >= CUT_VALID:
            warp.append(warp_error(fa, fb, fw, consistent_mask(fw, bw)))
    return {"warp_error": float(np.mean(warp)) if warp else float("nan"), "flicker": float(np.mean(flick))}


def load(adapter: str, words: bool = True, model: str = "toy-teacher"):
    """``model`` (the toy-teacher, or the distilled ``toy``) with ``adapter`` (a folder, or ``zero``: an untrained,
    zero-initialised module), with the folder's motion words or (``words=False``) without them."""
    import shutil

    import lcm_video
    from lcm_video.train.motion import WORDS_FILE, toy_motion_adapter

    if adapter == "zero":
        tmp = Path(tempfile.mkdtemp()) / "zero"
        toy_motion_adapter().save_pretrained(tmp)
        adapter = str(tmp)
    elif not words:
        tmp = Path(tempfile.mkdtemp()) / "no-words"
        shutil.copytree(adapter, tmp, ignore=shutil.ignore_patterns(WORDS_FILE))
        adapter = str(tmp)
    return lcm_video.load_models(model, motion_adapter=adapter, device="cpu", dtype="float32")


def ddim_clip(models, prompt: str, size: int, frames: int, steps: int, guidance: float, seed: int) -> np.ndarray:
    """uint8 (frames, size, size, 3) from diffusers' AnimateDiffPipeline on ``models``' modules, DDIM (trailing)."""
    import torch
    from diffusers import DDIMScheduler

    pipe = models.pipe
    lcm = pipe.scheduler
    pipe.scheduler = DDIMScheduler.from_config(lcm.config, timestep_spacing="trailing", set_alpha_to_one=False)
    try:
        out = pipe(
            prompt,
            num_frames=frames,
            height=size,
            width=size,
            num_inference_steps=steps,
            guidance_scale=guidance,
            generator=torch.Generator().manual_seed(seed),
            output_type="np",
        ).frames[0]
    finally:
        pipe.scheduler = lcm
    return (np.clip(np.asarray(out), 0, 1) * 255).round().astype(np.uint8)


def generate_clip(models, prompt: str, size: int, frames: int, steps: int, guidance: float, seed: int) -> np.ndarray:
    """uint8 (frames, size, size, 3) from ``lcm_video.generate`` (PNG frames: no codec in the way)."""
    from PIL import Image

    import lcm_video

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "frames"
        lcm_video.generate(
            prompt,
            str(out / "%05d.png"),
            models=models,
            frames=frames,
            width=size,
            height=size,
            steps=steps,
            guidance=guidance,
            seed=seed,
            quiet=True,
        )
        return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in sorted(out.glob("*.png"))])


def spec_of(caption: str) -> tv.ClipSpec:
    """A spec whose caption is ``caption`` (a plain-background toy video caption): what the figures compare to."""
    words = caption.split()
    colour, shape = words[1], words[2]
    background = words[words.index("background") - 1] if "background" in words else ""
    kind, direction, speed = "still", "", ""
    if "moving" in words:
        rest = words[words.index("moving") + 1 :]
        speed = rest[-1] if rest[-1] in tv.SPEEDS else ""
        kind, direction = "move", " ".join(w for w in rest if w not in tv.SPEEDS)
    elif "growing" in words or "shrinking" in words:
        kind = "grow" if "growing" in words else "shrink"
    spec = tv.ClipSpec(world.Scene(shape, colour, background, 0, 0, 0), kind, direction, speed)
    if spec.caption != caption:
        raise SystemExit(f"--prompt {caption!r} is not of the toy video world's form (e.g. {spec.caption!r})")
    return spec


def save_strip(frames: np.ndarray, path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(list(frames[::3]), 1)).save(path)


def summarise(rows: list[dict]) -> dict:
    def mean(key, pick=lambda r: True):
        # NaN: a clip with no pair of frames to grade (every pair a cut, e.g. an object redrawn each frame)
        vals = [float(r[key]) for r in rows if key in r and pick(r) and not math.isnan(float(r[key]))]
        return round(float(np.mean(vals)), 5 if key == "warp_error" else 3) if vals else None

    moving = lambda r: r["kind"] == "move"  # noqa: E731
    return {
        "clips": len(rows),
        "adherence": mean("adherence"),
        "direction_ok": mean("motion_ok", moving),
        "speed_128_moving": mean("speed_128", moving),
        "still_ok": mean("motion_ok", lambda r: r["kind"] == "still"),
        "speed_128_still": mean("speed_128", lambda r: r["kind"] == "still"),
        "grow_shrink_ok": mean("motion_ok", lambda r: r["kind"] in ("grow", "shrink")),
        "one_object": mean("one_object"),
        "area_stable": mean("area_stable"),
        "warp_error": mean("warp_error"),
        "warp_graded": sum(1 for r in rows if not math.isnan(float(r.get("warp_error", float("nan"))))),
        "flicker": mean("flicker"),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.eval_motion", description=__doc__.splitlines()[0])
    ap.add_argument("--adapter", default="build/motion/adapter", help="MotionAdapter folder, or 'zero'")
    ap.add_argument("--model", default="toy-teacher", help="toy-teacher, or toy (with --sampler generate --steps 4)")
    ap.add_argument("--words", choices=["on", "off"], default="on", help="load the adapter's motion words")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--sampler", choices=["ddim", "generate"], default="ddim")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--guidance", type=float, default=5.0)
    ap.add_argument("--seeds", type=int, default=1, help="seeds per prompt")
    ap.add_argument("--kinds", type=int, default=len(KINDS), help="how many of the 11 kinds")
    ap.add_argument("--long", type=int, default=0, help="48-frame clips (moving prompts) through generate")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--save", type=Path, help="folder for a PNG strip of every clip (every 3rd frame)")
    ap.add_argument("--prompt", help="measure this one prompt (a caption of the toy video world's form) only")
    args = ap.parse_args(argv)
    import torch  # here, not at the top: --help stays instant

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    models = load(args.adapter, args.words == "on", args.model)
    make = ddim_clip if args.sampler == "ddim" else generate_clip
    rows = []
    prompts = eval_prompts(args.kinds) if not args.prompt else [(args.prompt, spec_of(args.prompt))]
    for n, (caption, spec) in enumerate(prompts):
        for seed in range(args.seeds):
            frames = make(models, caption, args.size, 16, args.steps, args.guidance, seed)
            if args.save:
                save_strip(frames, args.save / f"{n:02d}_{seed}_{caption.replace(' ', '_')}.png")
            row = {"seed": seed, **measure_clip(frames, spec, classify), **temporal(frames)}
            rows.append(row)
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    long_rows = []
    for caption, spec in [p for p in eval_prompts() if p[1].kind == "move"][: args.long]:
        frames = generate_clip(models, caption, args.size, 48, args.steps, args.guidance, 0)
        row = measure_clip(frames, spec, classify) | temporal(frames)
        long_rows.append(row)
        print(json.dumps({"frames": 48, **{k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}}))
    summary = {
        "adapter": args.adapter,
        "model": args.model,
        "words": args.words,
        "size": args.size,
        "sampler": args.sampler,
        "steps": args.steps,
        **summarise(rows),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    if long_rows:
        seams = [round(r.get("step_max_over_median", float("nan")), 2) for r in long_rows]
        summary["long_step_max_over_median"] = seams
        summary["long"] = summarise(long_rows)
    print(json.dumps(summary))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "a") as f:
            f.write(json.dumps({"summary": summary, "rows": rows, "long": long_rows}) + "\n")


if __name__ == "__main__":
    sys.exit(main())
