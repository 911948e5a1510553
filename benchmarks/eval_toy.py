"""Quality of the toy models, measured in code (BENCHMARKS.md quotes its output):

    python scripts/eval_toy.py [--teacher DIR] [--lora FILE] [--samples 64] [--out FILE.json]
    python scripts/eval_toy.py --video-seeds 8 [--no-teacher] [--set shared_noise=0 ...]
    python scripts/eval_toy.py --autoencoder-iou

- autoencoder: PSNR of reconstructions of held-out toy images and of the frames of samples/clip.mp4 (ordinary video);
- 1 step: mean squared distance (decoded pixels in [0, 1]) between the student's one-step sample and the teacher's
  50-step DDIM sample from the same initial noise, against the teacher's own one-step x0 prediction from that noise;
- 2 and 4 steps: sliced Wasserstein distance (256 projections, pixels at 32x32) of the student's samples, and of the
  teacher's 2- and 4-step DDIM samples, to the teacher's 50-step samples (same prompts, other noises);
- prompt adherence: on "a COLOUR SHAPE on a BACKGROUND background" prompts, an image adheres when its main
  non-background colour (nearest palette colour) is the asked one and that colour's largest connected region
  overlaps the asked shape's template best (``classify``: 100% right on the drawn pictures themselves).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from lcm_video.toy import world as toy  # noqa: E402

GUIDANCE = 5.0  # the teacher's classifier-free guidance scale for its reference samples (w = 4)


def plain_prompts(n: int, seed: int) -> list[tuple[str, str, str]]:
    """(colour, shape, background) triples on plain backgrounds, cycling through every shape and colour."""
    rng = np.random.default_rng(seed)
    out = []
    colours = list(toy.COLOURS)
    for i in range(n):
        colour = colours[i % len(colours)]
        shape = toy.SHAPES[(i // len(colours)) % len(toy.SHAPES)]
        bgs = [c for c in colours if c != colour]
        out.append((colour, shape, bgs[rng.integers(len(bgs))]))
    return out


def caption(colour: str, shape: str, background: str) -> str:
    return toy.Scene(shape, colour, background, 0, 0, 0).caption


def shape_of(mask: np.ndarray) -> str:
    """The toy shape (upright triangle, axis-aligned square, circle) whose template of the same area and centroid
    overlaps bool (h, w) ``mask`` best (IoU): what a person would call a rounded triangle or a soft-cornered square."""

    ys, xs = np.nonzero(mask)
    area, cy, cx = len(ys), ys.mean(), xs.mean()
    best, name = -1.0, "circle"
    for shape in toy.SHAPES:
        # toy.draw's own shape, its radius from the mask's area: circles and squares of radius r cover πr², the
        # triangle inscribed in that circle 3√3/4·r².
        r = math.sqrt(4 * area / (3 * math.sqrt(3)) if shape == "triangle" else area / math.pi)
        t = toy.draw(toy.Scene(shape, "white", "black", float(cx), float(cy), r), mask.shape[0])[..., 0] > 127
        iou = (mask & t).sum() / max(1, (mask | t).sum())
        if iou > best:
            best, name = iou, shape
    return name


def classify(img: np.ndarray, background: str) -> tuple[str | None, str | None]:
    """(colour, shape) of the main non-background region of uint8 (h, w, 3): pixels take their nearest palette colour;
    the most common colour other than the background's is the shape's; its largest connected region (so a stray
    pixel of that colour elsewhere does not count) is matched against the three shapes' templates (``shape_of``).
    (None, None) when under 2% of the picture is not background."""
    import cv2

    palette = np.array(list(toy.COLOURS.values()), np.float32)
    names = list(toy.COLOURS)
    d = ((img[:, :, None, :].astype(np.float32) - palette[None, None]) ** 2).sum(-1)
    nearest = d.argmin(-1)
    bg = names.index(background)
    counts = np.bincount(nearest[nearest != bg].ravel(), minlength=len(names))
    if counts.sum() < 0.02 * img.shape[0] * img.shape[1]:
        return None, None
    colour = int(counts.argmax())
    _, labels, stats, _ = cv2.connectedComponentsWithStats((nearest == colour).astype(np.uint8), connectivity=4)
    largest = 1 + int(stats[1:, cv2.CC_STAT_AREA].argmax())
    return names[colour], shape_of(labels == largest)


def swd(a: np.ndarray, b: np.ndarray, projections: int = 256, seed: int = 0) -> float:
    """Sliced Wasserstein-1 distance between two sets of vectors (n, d) with equal n."""
    rng = np.random.default_rng(seed)
    dirs = rng.normal(size=(a.shape[1], projections))
    dirs /= np.linalg.norm(dirs, axis=0, keepdims=True)
    pa, pb = np.sort(a @ dirs, axis=0), np.sort(b @ dirs, axis=0)
    return float(np.abs(pa - pb).mean())


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return 100.0 if mse == 0 else 10 * math.log10(255.0**2 / mse)


@torch.no_grad()
def autoencoder_psnr(vae, n: int, seed: int) -> dict[str, float]:
    from lcm_video.core.codec import LatentCodec, to_uint8, to_unit
    from lcm_video.video.reader import FrameReader, probe

    codec = LatentCodec(vae, chunk=8)
    rng = np.random.default_rng(seed + 1000)
    x = torch.from_numpy(np.stack([toy.scene_picture(rng, 64)[0] for _ in range(n)]))
    rec = to_uint8(codec.decode(codec.encode(to_unit(x))))
    info = probe(ROOT / "samples" / "clip.mp4")
    frames = FrameReader(info, (160, 120)).read(range(0, info.frames, 4))
    rec_clip = to_uint8(codec.decode(codec.encode(to_unit(frames))))
    return {"toy_psnr": psnr(x.numpy(), rec.numpy()), "clip_psnr": psnr(frames.numpy(), rec_clip.numpy())}


def nearest_mask(frames: np.ndarray, colour: str) -> np.ndarray:
    """bool (f, h, w): pixels whose nearest palette colour is ``colour``."""
    palette = np.array(list(toy.COLOURS.values()), np.float32)
    d = ((frames[..., None, :].astype(np.float32) - palette) ** 2).sum(-1)
    return d.argmin(-1) == list(toy.COLOURS).index(colour)


def native_size(teacher: str = "toy-teacher") -> int:
    """The side in pixels ``teacher`` was trained at (its UNet's ``sample_size`` × 8): where it is measured."""
    from lcm_video.models.loading import load_models

    return int(load_models(teacher, device="cpu").pipe.unet.config.sample_size) * 8


def square_clip(frames: int = 24, size: int = 64) -> np.ndarray:
    """uint8 (frames, size, size, 3): a red square about half the side wide, moving right over white by 1/64 of the
    side a frame (1 px at 64 px)."""
    k = size / 64
    return toy.moving_clip(toy.Scene("square", "red", "white", 18.0 * k, 32.0 * k, 16.0 * k), frames, size, (k, 0.0))


def square_iou(src: np.ndarray, got: np.ndarray, colour: str = "blue") -> dict[str, float]:
    """Per-frame IoU of ``got``'s ``colour`` region with ``src``'s red square (both uint8 (f, h, w, 3))."""
    a, b = nearest_mask(src, "red"), nearest_mask(got, colour)
    ious = (a & b).sum((1, 2)) / np.maximum(1, (a | b).sum((1, 2)))
    return {"video_iou_min": float(ious.min()), "video_iou_mean": float(ious.mean())}


def video_iou(
    tmp: Path,
    model: str = "toy",
    lora: tuple[str, ...] = (),
    strength: float = 0.6,
    frames: int = 24,
    seed: int = 0,
    colour: str = "blue",
    size: int = 64,
    **settings,
) -> dict[str, float]:
    """Stylise a red square moving over white into "a COLOUR square on a white background": per-frame IoU of the
    output's COLOUR region with the source's red square. ``settings``: more of ``lcm_video.stylize``'s options."""
    import lcm_video
    from lcm_video.video.synthetic import frames_clip

    src = square_clip(frames, size)
    clip = frames_clip(tmp / "red_square.mp4", src, fps=24)
    out = tmp / "restyled_square.mp4"
    prompt = f"a {colour} square on a white background"
    common = dict(model=model, lora=lora, strength=strength, seed=seed, quiet=True)
    lcm_video.stylize(clip, out, prompt, **(common | settings))
    import decord

    vr = decord.VideoReader(str(out))
    return square_iou(src, vr.get_batch(list(range(len(vr)))).asnumpy(), colour)


def teacher_video_iou(
    seed: int, colour: str, strength: float = 0.6, steps: int = 50, size: int = 64, teacher: str = "toy-teacher"
) -> dict[str, float]:
    """The same clip restyled frame by frame by the teacher itself through diffusers'
    ``StableDiffusionImg2ImgPipeline`` (DDIM, trailing spacing, guidance 5, the same seed for every frame): how well
    the teacher keeps a layout at this strength, which bounds what its distilled student can do."""
    from diffusers import DDIMScheduler, StableDiffusionImg2ImgPipeline

    from lcm_video.models.loading import load_models

    base = load_models(teacher, device="cpu").pipe
    parts = {k: getattr(base, k) for k in ("vae", "text_encoder", "tokenizer", "unet")}
    ddim = DDIMScheduler.from_config(base.scheduler.config, timestep_spacing="trailing", set_alpha_to_one=False)
    common = {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}
    pipe = StableDiffusionImg2ImgPipeline(**parts, scheduler=ddim, **common)
    pipe.set_progress_bar_config(disable=True)
    src = square_clip(size=size)
    images = torch.from_numpy(src).permute(0, 3, 1, 2).float() / 255
    out = []
    for img in images:
        res = pipe(
            f"a {colour} square on a white background",
            image=img[None],
            strength=strength,
            num_inference_steps=steps,
            guidance_scale=GUIDANCE,
            generator=torch.Generator().manual_seed(seed),
            output_type="np",
        ).images[0]
        out.append((np.clip(res, 0, 1) * 255).round().astype(np.uint8))
    return square_iou(src, np.stack(out), colour)


def autoencoder_square_iou(teacher: str = "toy-teacher") -> None:
    """Per-frame IoU of the moving red square after a round trip through the teacher's autoencoder alone (no
    diffusion), at 64 and 128 px: the most any restyle of the video check can keep of the square."""
    from lcm_video.core.codec import LatentCodec, to_uint8, to_unit
    from lcm_video.models.loading import load_models

    codec = LatentCodec(load_models(teacher, device="cpu").pipe.vae, chunk=8)
    for size in (64, 128):
        src = square_clip(24, size)
        rec = to_uint8(codec.decode(codec.encode(to_unit(torch.from_numpy(src))))).numpy()
        got = square_iou(src, rec, "red")
        print(f"{size} px: autoencoder round trip, IoU per frame min {got['video_iou_min']:.2f} "
              f"mean {got['video_iou_mean']:.2f}")  # fmt: skip


def video_seeds(n: int, size: int, settings: dict, teacher: bool = True) -> None:
    """Per seed, the student's (``--model toy``, with ``settings``) and the teacher's (50-step DDIM) per-frame IoU at
    strength 0.6, for the blue prompt and for the source's own colour (red: nothing to restyle, only the layout to
    keep)."""
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(n):
            for colour in ("blue", "red"):
                row = {"seed": seed, "colour": colour}
                got = video_iou(Path(tmp), seed=seed, colour=colour, size=size, **settings)
                row |= {f"toy_{k}": v for k, v in got.items()}
                if teacher:
                    row |= {f"teacher_{k}": v for k, v in teacher_video_iou(seed, colour, size=size).items()}
                rows.append(row)
                print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    for who in ("toy", "teacher") if teacher else ("toy",):
        for colour in ("blue", "red"):
            mins = [r[f"{who}_video_iou_min"] for r in rows if r["colour"] == colour]
            means = [r[f"{who}_video_iou_mean"] for r in rows if r["colour"] == colour]
            print(
                f"{who} {colour}: per-frame minimum {min(mins):.2f}-{max(mins):.2f} over {n} seeds "
                f"(mean {np.mean(mins):.2f}); per-frame mean {np.mean(means):.2f}"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", default="toy-teacher")
    ap.add_argument("--lora", default=None, help="the distilled LCM-LoRA (default: the toy preset's)")
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path)
    ap.add_argument(
        "--video-seeds", type=int, help="only the moving-square IoU, per seed, for the student and the teacher"
    )
    ap.add_argument("--size", type=int, help="picture side in pixels (default: the teacher's own, its UNet's)")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="--video-seeds: a stylise setting for the student, e.g. shared_noise=0 (repeatable)",
    )
    ap.add_argument("--no-teacher", action="store_true", help="--video-seeds: the student only")
    ap.add_argument("--autoencoder-iou", action="store_true", help="only the square's IoU through the autoencoder")
    args = ap.parse_args()
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)  # build/ is not in a fresh clone
    if args.autoencoder_iou:
        return autoencoder_square_iou(args.teacher)
    size = args.size or native_size(args.teacher)
    if args.video_seeds:
        settings = {k: yaml.safe_load(v) for k, _, v in (s.partition("=") for s in args.set)}
        video_seeds(args.video_seeds, size, settings, teacher=not args.no_teacher)
        return
    from diffusers import DDIMScheduler, LCMScheduler, StableDiffusionPipeline

    from lcm_video.models.loading import load_models
    from lcm_video.models.presets import PRESETS, preset_path

    lora = args.lora or preset_path(PRESETS["toy"].lora[0])
    base = load_models(args.teacher, device="cpu").pipe
    parts = {k: getattr(base, k) for k in ("vae", "text_encoder", "tokenizer", "unet")}
    common = {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}
    ddim = DDIMScheduler.from_config(base.scheduler.config, timestep_spacing="trailing", set_alpha_to_one=False)
    teacher = StableDiffusionPipeline(**parts, scheduler=ddim, **common)
    student_models = load_models(args.teacher, lora=[str(lora)], device="cpu").pipe
    sparts = {k: getattr(student_models, k) for k in ("vae", "text_encoder", "tokenizer", "unet")}
    student = StableDiffusionPipeline(**sparts, scheduler=LCMScheduler.from_config(base.scheduler.config), **common)
    for p in (teacher, student):
        p.set_progress_bar_config(disable=True)
    n = args.samples
    triples = plain_prompts(n, args.seed)
    prompts = [caption(*t) for t in triples]
    g = torch.Generator().manual_seed(args.seed)
    noise = torch.randn(n, 4, size // 8, size // 8, generator=g)
    noise_b = torch.randn(n, 4, size // 8, size // 8, generator=g)

    def run(pipe, steps, lat, guidance, batch=16):
        out = []
        for i in range(0, n, batch):
            res = pipe(
                prompts[i : i + batch],
                height=size,
                width=size,
                num_inference_steps=steps,
                guidance_scale=guidance,
                latents=lat[i : i + batch].clone(),
                generator=torch.Generator().manual_seed(args.seed + i),
                output_type="np",
            ).images
            out.append(np.clip(res, 0, 1))
        return np.concatenate(out)

    report: dict[str, float] = autoencoder_psnr(base.vae, n, args.seed)
    ref = run(teacher, 50, noise, GUIDANCE)
    one = run(student, 1, noise, 1.0)
    # The teacher's own one-step x0 prediction: DDIM with one step from t = 999 is exactly that.
    teacher_one = run(teacher, 1, noise, GUIDANCE)
    report["mse_1step_student"] = float(((one - ref) ** 2).mean())
    report["mse_1step_teacher_x0"] = float(((teacher_one - ref) ** 2).mean())
    ref_b = run(teacher, 50, noise_b, GUIDANCE)

    def flat(x):
        t = torch.from_numpy(x).permute(0, 3, 1, 2)
        return torch.nn.functional.avg_pool2d(t, size // 32).reshape(len(x), -1).numpy()

    for steps in (2, 4):
        report[f"swd_{steps}step_student"] = swd(flat(run(student, steps, noise, 1.0)), flat(ref_b))
        report[f"swd_{steps}step_teacher_ddim"] = swd(flat(run(teacher, steps, noise, GUIDANCE)), flat(ref_b))
    report["swd_50step_teacher_other_noise"] = swd(flat(ref), flat(ref_b))

    def adherence(images) -> float:
        hits = 0
        for img, (colour, shape, bg) in zip(images, triples, strict=True):
            got = classify((img * 255).round().astype(np.uint8), bg)
            hits += got == (colour, shape)
        return hits / len(images)

    report["adherence_teacher_50step"] = adherence(ref)
    report["adherence_student_4step"] = adherence(run(student, 4, noise, 1.0))
    report["adherence_student_1step"] = adherence(one)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        toy_preset = args.teacher == "toy-teacher" and args.lora is None
        for strength in (0.6, 0.8):  # the strength, and one that lets the colour change through
            model = ("toy", ()) if toy_preset else (args.teacher, (str(lora),))
            got = video_iou(Path(tmp), *model, strength=strength, size=size)
            report |= {f"{k}_s{strength:g}": v for k, v in got.items()}
    text = json.dumps({k: round(v, 5) for k, v in report.items()}, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
