"""Quality of the toy models, measured in code (BENCHMARKS.md quotes its output):

    python -m benchmarks.eval_toy [--teacher DIR] [--lora FILE] [--samples 64] [--out FILE.json]
    python -m benchmarks.eval_toy --video-seeds 8 [--no-teacher] [--set shared_noise=0 ...] [--out FILE.json]
    python -m benchmarks.eval_toy --autoencoder-iou [--sizes 64,128] [--out FILE.json]
    python -m benchmarks.eval_toy --fast-vae [--video-seeds 4] [--png FILE] [--out FILE.json]

- ``--fast-vae``: the toy's TAESD (``--fast``) against its autoencoder: round-trip PSNR of held-out 128 px toy
  pictures through each, PSNR of the TAESD decoder's pictures from the autoencoder's latents against the autoencoder's
  own, and the moving square restyled (strength 0.6, blue) with and without ``--fast``: per-frame IoU and the PSNR
  between the two restyles;
- autoencoder: PSNR of reconstructions of held-out toy images and of the frames of samples/clip.mp4 (ordinary video);
- 1 step: mean squared distance (decoded pixels in [0, 1]) between the student's one-step sample and the teacher's
  50-step DDIM sample from the same initial noise, against the teacher's own one-step x0 prediction from that noise;
- 2 and 4 steps: sliced Wasserstein distance (256 projections, pixels at 32x32) of the student's samples, and of the
  teacher's 2- and 4-step DDIM samples, to the teacher's 50-step samples (same prompts, other noises);
- prompt adherence: on "a COLOUR SHAPE on a BACKGROUND background" prompts, an image adheres when its main
  non-background colour (nearest palette colour) is the asked one and that colour's largest connected region
  overlaps the asked shape's template best (``lcm_video.toy.judge.classify``: 100% right on the drawn pictures
  themselves).

Every mode prints JSON rows and, with ``--out``, writes them with the machine and versions (``benchmarks.common``).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import yaml

from benchmarks.common import ROOT, Rows
from lcm_video.toy import world as toy
from lcm_video.toy.judge import classify, plain_prompts, square_clip, square_iou, video_iou

GUIDANCE = 5.0  # the teacher's classifier-free guidance scale for its reference samples (w = 4)


def caption(colour: str, shape: str, background: str) -> str:
    return toy.Scene(shape, colour, background, 0, 0, 0).caption


def swd(a: np.ndarray, b: np.ndarray, projections: int = 256, seed: int = 0) -> float:
    """Sliced Wasserstein-1 distance between two sets of vectors (n, d) with equal n."""
    rng = np.random.default_rng(seed)
    dirs = rng.normal(size=(a.shape[1], projections))
    dirs /= np.linalg.norm(dirs, axis=0, keepdims=True)
    pa, pb = np.sort(a @ dirs, axis=0), np.sort(b @ dirs, axis=0)
    return float(np.abs(pa - pb).mean())


def round_trip(vae, frames):
    """uint8 (n, h, w, 3) torch ``frames`` through ``vae``'s encoder and decoder (lcm_video's codec), as uint8."""
    import torch

    from lcm_video.core.codec import LatentCodec, to_uint8, to_unit

    codec = LatentCodec(vae, chunk=8)
    with torch.no_grad():
        return to_uint8(codec.decode(codec.encode(to_unit(frames))))


def psnr_levels(a, b) -> float:
    """``lcm_video.metrics.psnr`` of two uint8 arrays or tensors (levels of 255; 100 dB when identical)."""
    from lcm_video.metrics import psnr

    return psnr(np.asarray(a, np.float64) / 255, np.asarray(b, np.float64) / 255)


def autoencoder_psnr(vae, n: int, seed: int) -> dict[str, float]:
    import torch

    from lcm_video.video.reader import FrameReader, probe

    rng = np.random.default_rng(seed + 1000)
    x = torch.from_numpy(np.stack([toy.scene_picture(rng, 64)[0] for _ in range(n)]))
    info = probe(ROOT / "samples" / "clip.mp4")
    frames = torch.from_numpy(FrameReader(info, (160, 120)).read(range(0, info.frames, 4)))
    return {
        "toy_psnr": psnr_levels(x.numpy(), round_trip(vae, x).numpy()),
        "clip_psnr": psnr_levels(frames.numpy(), round_trip(vae, frames).numpy()),
    }


def restyler(
    tmp: Path, model: str = "toy", lora: tuple[str, ...] = (), strength: float = 0.6, seed: int = 0, **settings
):
    """``judge.video_iou``'s ``restyle``: uint8 frames written as a clip, ``lcm_video.stylize``d (``settings``: more of
    its options), read back."""

    def restyle(src: np.ndarray, prompt: str) -> np.ndarray:
        import decord

        import lcm_video
        from lcm_video.video.synthetic import frames_clip

        clip = frames_clip(tmp / "red_square.mp4", src, fps=24)
        out = tmp / "restyled_square.mp4"
        common = dict(model=model, lora=lora, strength=strength, seed=seed, quiet=True)
        lcm_video.stylize(clip, out, prompt, **(common | settings))
        vr = decord.VideoReader(str(out))
        return vr.get_batch(list(range(len(vr)))).asnumpy()

    return restyle


def native_size(teacher: str = "toy-teacher") -> int:
    """The side in pixels ``teacher`` was trained at (its UNet's ``sample_size`` × 8): where it is measured."""
    from lcm_video import load_models

    return int(load_models(teacher, device="cpu").pipe.unet.config.sample_size) * 8


def teacher_video_iou(
    seed: int, colour: str, strength: float = 0.6, steps: int = 50, size: int = 64, teacher: str = "toy-teacher"
) -> dict[str, float]:
    """The same clip restyled frame by frame by the teacher itself through diffusers'
    ``StableDiffusionImg2ImgPipeline`` (DDIM, trailing spacing, guidance 5, the same seed for every frame): how well
    the teacher keeps a layout at this strength, which bounds what its distilled student can do."""
    import torch
    from diffusers import DDIMScheduler, StableDiffusionImg2ImgPipeline

    from lcm_video import load_models

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


def autoencoder_square_iou(rows: Rows, teacher: str = "toy-teacher", sizes: tuple[int, ...] = (64, 128)) -> None:
    """Per-frame IoU of the moving red square after a round trip through the teacher's autoencoder alone (no
    diffusion), at each size: the most any restyle of the video check can keep of the square."""
    import torch

    from lcm_video import load_models

    vae = load_models(teacher, device="cpu").pipe.vae
    for size in sizes:
        src = square_clip(24, size)
        got = square_iou(src, round_trip(vae, torch.from_numpy(src)).numpy(), "red")
        rows.add({"size": size, "what": "autoencoder round trip"} | got)


def fast_vae(rows: Rows, seeds: int, png: Path | None = None) -> None:
    """The toy's TAESD against its autoencoder (the module's docstring)."""
    import torch

    from lcm_video import load_models
    from lcm_video.core.codec import LatentCodec, to_uint8, to_unit
    from lcm_video.models.loading import load_vae
    from lcm_video.models.presets import PRESETS

    vae = load_models("toy", device="cpu", dtype="float32").pipe.vae
    tae = load_vae(PRESETS["toy"].fast_vae, torch.float32)
    rng = np.random.default_rng(1000)
    x = torch.from_numpy(np.stack([toy.random_picture(rng, 128)[0] for _ in range(64)]))
    full, fast = LatentCodec(vae), LatentCodec(tae)
    with torch.no_grad():
        lat = full.encode(to_unit(x))
        rows.add(
            {
                "what": "autoencoder round trip, 64 toy pictures at 128 px (PSNR, dB)",
                "autoencoder": round(psnr_levels(x.numpy(), to_uint8(full.decode(lat)).numpy()), 2),
                "taesd": round(psnr_levels(x.numpy(), round_trip(tae, x).numpy()), 2),
                "taesd_decoder_vs_autoencoder_decoder": round(
                    psnr_levels(to_uint8(full.decode(lat)).numpy(), to_uint8(fast.decode(lat)).numpy()), 2
                ),
                "taesd_encoder_latent_rmse": round(float((fast.encode(to_unit(x)) - lat).pow(2).mean().sqrt()), 4),
            }
        )
    strips = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(seeds):
            got = {}
            for name, extra in (("full", {}), ("fast", {"fast": True})):
                frames = restyler(Path(tmp), seed=seed, **extra)(
                    square_clip(24, 128), "a blue square on a white background"
                )
                got[name] = frames
                rows.add(
                    {"seed": seed, "vae": name}
                    | {k: round(v, 3) for k, v in square_iou(square_clip(24, 128), frames).items()}
                )
            rows.add(
                {
                    "seed": seed,
                    "what": "fast vs full restyle (PSNR, dB)",
                    "psnr": round(psnr_levels(got["full"], got["fast"]), 2),
                }
            )
            strips.append(np.concatenate([np.concatenate(list(got[k][::8]), 1) for k in ("full", "fast")], 0))
    if png is not None and strips:
        from PIL import Image

        Image.fromarray(np.concatenate(strips, 0)).save(png)


def video_seeds(rows: Rows, n: int, size: int, settings: dict, teacher: bool = True) -> None:
    """Per seed, the student's (``--model toy``, with ``settings``) and the teacher's (50-step DDIM) per-frame IoU at
    strength 0.6, for the blue prompt and for the source's own colour (red: nothing to restyle, only the layout to
    keep)."""
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(n):
            for colour in ("blue", "red"):
                row = {"seed": seed, "colour": colour}
                got = video_iou(restyler(Path(tmp), seed=seed, **settings), colour=colour, size=size)
                row |= {f"toy_{k}": v for k, v in got.items()}
                if teacher:
                    row |= {f"teacher_{k}": v for k, v in teacher_video_iou(seed, colour, size=size).items()}
                rows.add({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()})
    for who in ("toy", "teacher") if teacher else ("toy",):
        for colour in ("blue", "red"):
            mins = [r[f"{who}_video_iou_min"] for r in rows if r["colour"] == colour]
            means = [r[f"{who}_video_iou_mean"] for r in rows if r["colour"] == colour]
            print(
                f"{who} {colour}: per-frame minimum {min(mins):.2f}-{max(mins):.2f} over {n} seeds "
                f"(mean {np.mean(mins):.2f}); per-frame mean {np.mean(means):.2f}"
            )


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.eval_toy", description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", default="toy-teacher")
    ap.add_argument("--lora", default=None, help="the distilled LCM-LoRA (default: the toy preset's)")
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="write the rows, machine and versions as JSON here")
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
    ap.add_argument("--sizes", default="64,128", help="--autoencoder-iou: picture sides in pixels")
    ap.add_argument("--fast-vae", action="store_true", help="the toy's TAESD (--fast) against its autoencoder")
    ap.add_argument("--png", type=Path, help="--fast-vae: frames 0, 8, 16 of each restyle, full over fast, per seed")
    return ap


def main(argv: list[str] | None = None) -> Rows:
    args = parser().parse_args(argv)
    what = "autoencoder-iou" if args.autoencoder_iou else "video-seeds" if args.video_seeds else "quality"
    what = "fast-vae" if args.fast_vae else what
    rows = Rows(args.out, f"eval_toy {what}")
    if args.fast_vae:
        fast_vae(rows, args.video_seeds or 2, args.png)
        return rows
    if args.autoencoder_iou:
        autoencoder_square_iou(rows, args.teacher, tuple(int(x) for x in args.sizes.split(",")))
        return rows
    size = args.size or native_size(args.teacher)
    if args.video_seeds:
        settings = {k: yaml.safe_load(v) for k, _, v in (s.partition("=") for s in args.set)}
        video_seeds(rows, args.video_seeds, size, settings, teacher=not args.no_teacher)
        return rows
    quality(args, size, rows)
    return rows


def quality(args, size: int, rows: Rows) -> None:
    """The toy models' quality report (the module's docstring), as one row."""
    import torch
    from diffusers import DDIMScheduler, LCMScheduler, StableDiffusionPipeline

    from lcm_video import load_models
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
    with tempfile.TemporaryDirectory() as tmp:
        toy_preset = args.teacher == "toy-teacher" and args.lora is None
        for strength in (0.6, 0.8):  # the strength, and one that lets the colour change through
            model = ("toy", ()) if toy_preset else (args.teacher, (str(lora),))
            got = video_iou(restyler(Path(tmp), *model, strength=strength), size=size)
            report |= {f"{k}_s{strength:g}": v for k, v in got.items()}
    rows.add({k: round(v, 5) for k, v in report.items()})


if __name__ == "__main__":
    main()
