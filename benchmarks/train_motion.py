"""Train the toy motion module (issue 27): an AnimateDiff ``MotionAdapter`` on the toy video world, the toy-teacher's
spatial weights frozen, the motion words' embeddings learnt with it (``lcm_video.train.motion``).

    OMP_NUM_THREADS=1 nice -n 10 python -m benchmarks.train_motion --out build/motion --size 64 --batch 4 \
        --pool 1500 --steps 6000 --save-every 100 --threads 1
    ... the same command with --resume                  # continues from the last checkpoint, bit for bit

Writes ``OUT/pool.pt`` (the clips drawn and encoded once; reused by a resume), ``OUT/checkpoints/step_*.pt`` (the last
two), ``OUT/adapter`` (the EMA motion module + ``motion_words.safetensors``, refreshed at every checkpoint: what
``lcm_video.load_models("toy-teacher", motion_adapter=OUT/adapter)`` loads) and ``OUT/times.json``. Trained at 64 px:
a step costs a quarter of a 128 px one (measured, see ``--measure``), and the motion is drawn in shares of the side per
frame, so the module sees 4x the clips in the same time; AnimateDiff too trains its motion module below the image
model's native size (256 vs 512).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def measure(sizes=(128, 64), batches=(1, 2, 4), repeats: int = 3) -> list[dict]:
    """Seconds per training step (forward, backward, AdamW) of the toy UNetMotionModel on 16-frame clips, per size and
    batch of clips (the best of ``repeats`` after one warm-up)."""
    # torch and the trainer load only when a mode runs: --help stays instant
    import torch

    from lcm_video.train import motion as tm

    parts = tm.load_toy_parts(tm.toy_motion_adapter())
    params = [*parts.motion_params().values(), parts.words]
    opt = torch.optim.AdamW(params, lr=1e-6)
    rows = []
    for size in sizes:
        for b in batches:
            s = size // 8
            z = torch.randn(b, 16, 4, s, s)
            times = []
            for _ in range(repeats + 1):
                t0 = time.perf_counter()
                states = tm.encode_text(parts.text_encoder, parts.tokenizer, ["a red circle moving left"] * b)
                loss = tm.motion_loss(parts.unet, z, states, torch.Generator().manual_seed(0), parts.alphas_cumprod)
                opt.zero_grad()
                loss.backward()
                opt.step()
                times.append(time.perf_counter() - t0)
            best = min(times[1:])
            rows.append({"size": size, "clips": b, "s_per_step": round(best, 3), "s_per_clip": round(best / b, 3)})
            log(f"measure: {rows[-1]}")
    return rows


def probe(checkpoint: Path, weights: str = "ema", clips: int = 12, ts=(1000, 950, 850, 700, 500, 300)) -> list[dict]:
    """Does the run read the motion words? The loss of ``clips`` moving clips (seeded, at the run's size) at each t
    in ``ts`` under their caption, under the caption played the other way (the other direction), and under "", with
    the same noise; and in how many clips the caption fits better than its reverse. ``weights``: the checkpoint's
    ``ema`` or ``live`` weights. Also in how many clips the predicted x₀'s object (``latent_track``) goes the clip's
    way under its caption and under the reversed one: a run whose words steer has the first high and the second low
    at high t. t = 1000 (one past the schedule) is pure noise at the last step, no clip in it: the losses there
    mean nothing, the x₀ counts everything."""
    import numpy as np
    import torch

    from lcm_video.toy import video as tv
    from lcm_video.train import motion as tm

    state = torch.load(checkpoint, weights_only=False)
    cfg = state["config"]
    parts = tm.load_toy_parts(
        tm.toy_motion_adapter(seed=cfg["seed"], heads=cfg["heads"]),
        seed=cfg["seed"],
        lora_rank=cfg["spatial_lora"],
        text_lora_rank=cfg.get("text_lora", 0),
    )
    table = state["ema" if weights == "ema" else "motion"]
    with torch.no_grad():
        for n, p in parts.motion_params().items():
            p.copy_(table[n])
        parts.words.copy_(state["ema_words" if weights == "ema" else "words"])
    rng = np.random.default_rng(123)
    drawn, caps, opposite = [], [], []
    while len(drawn) < clips:
        spec = tv.random_clip_spec(rng, cfg["size"], spread=cfg.get("spread", 1.0))
        if spec.kind == "move":
            drawn.append(tv.draw_clip(spec, rng))
            caps.append(spec.caption)
            opposite.append(tv.reversed_spec(spec).caption)
    mean, _ = tm.encode_clips(parts.vae, np.stack(drawn))
    z = mean * parts.vae.config.scaling_factor
    true_way = tm.latent_track(z)[:, -1]  # (clips, 2): where each clip's object ends, from where it starts
    rows = []
    with torch.no_grad():
        for t in ts:
            eps = torch.randn(z.shape, generator=torch.Generator().manual_seed(t))
            pure = t == len(parts.alphas_cumprod)  # pure noise at the last step: where every sampler starts
            t = min(t, len(parts.alphas_cumprod) - 1)
            tt = torch.full((len(z),), t)
            x_t = eps if pure else tm.add_noise(z, eps, tt, parts.alphas_cumprod)
            loss, along = {}, {}
            a = parts.alphas_cumprod[t]
            for name, c in (("caption", caps), ("reversed", opposite), ("empty", [""] * len(caps))):
                states = tm.encode_text(parts.text_encoder, parts.tokenizer, c)
                eps_hat = tm.predict_eps(parts.unet, x_t, tt, states)
                loss[name] = (eps_hat - eps).pow(2).mean(dim=(1, 2, 3, 4))
                # which way the predicted x0's object goes, against the clip's own way (latent cells, last frame)
                x0 = (x_t - (1 - a).sqrt() * eps_hat) / a.sqrt()
                along[name] = (tm.latent_track(x0)[:, -1] * true_way).sum(-1)
            better = int((loss["caption"] < loss["reversed"]).sum())
            rows.append(
                {
                    "t": f"{t} (pure noise)" if pure else t,
                    **{k: round(float(v.mean()), 5) for k, v in loss.items()},
                    "caption_better": better,
                    # the predicted x0 moves the clip's way under its caption / under the reversed caption
                    "x0_along_caption": int((along["caption"] > 0).sum()),
                    "x0_along_reversed": int((along["reversed"] > 0).sum()),
                }
            )
            log(f"probe: {rows[-1]} (of {len(z)} clips)")
    return rows


def pack(adapter: Path, name: str) -> Path:
    """A motion adapter folder (``OUT/adapter`` of a run, or ``lcm-video distill --motion-adapter``'s output) as
    float16 into the package as ``weights/NAME`` (``MotionAdapter`` config and weights, its motion words and spatial
    LoRA beside them), where the toy presets load it (``toy-motion-teacher``, ``toy-motion``)."""
    import shutil

    import torch
    from diffusers import MotionAdapter
    from safetensors.torch import load_file, save_file

    from lcm_video.models.loading import MOTION_LORA_FILE, MOTION_WORDS_FILE
    from lcm_video.models.presets import WEIGHTS

    dest = WEIGHTS / name
    tmp = dest.with_name(f".{name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    MotionAdapter.from_pretrained(adapter).to(torch.float16).save_pretrained(tmp)
    if (adapter / MOTION_WORDS_FILE).is_file():  # 10 x 64 numbers: kept in float32
        shutil.copyfile(adapter / MOTION_WORDS_FILE, tmp / MOTION_WORDS_FILE)
    if (adapter / MOTION_LORA_FILE).is_file():  # float16 as the toy's own LoRA: all toy weights stay under 25 MB
        lora = {k: v.to(torch.float16) for k, v in load_file(adapter / MOTION_LORA_FILE).items()}
        save_file(lora, tmp / MOTION_LORA_FILE)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    size = sum(p.stat().st_size for p in WEIGHTS.rglob("*") if p.is_file())
    log(f"pack: {adapter} into {dest}; {size / 2**20:.1f} MiB in {WEIGHTS}")
    return dest


def write_clips(folder: Path, count: int, size: int, seed: int) -> list[Path]:
    """``count`` training clips of the toy video world (no held-out caption) as lossless videos (FFV1 in .mkv, 8 fps)
    with same-name ``.txt`` captions: the ``--data`` of ``lcm-video distill --motion-adapter``. The same files for
    the same arguments."""
    import imageio.v3 as iio
    import numpy as np

    from lcm_video.toy import video as tv

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        pixels, spec = tv.training_clip(rng, size)
        path = folder / f"clip_{i:05d}.mkv"
        iio.imwrite(path, pixels, fps=8, codec="ffv1", pixelformat="bgr0")
        path.with_suffix(".txt").write_text(spec.caption + "\n")
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> None:

    ap = argparse.ArgumentParser(prog="python -m benchmarks.train_motion", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("build/motion"))
    ap.add_argument("--size", type=int, default=64, help="clip side in pixels (a multiple of 8)")
    ap.add_argument("--batch", type=int, default=4, help="clips per step (16 frames each)")
    ap.add_argument("--pool", type=int, default=1500, help="training clips drawn and encoded once")
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--lr", type=float, default=5e-4, help="the motion module's peak AdamW rate")
    ap.add_argument("--words-lr", type=float, default=5e-3, help="the motion words' embeddings' rate")
    ap.add_argument(
        "--spatial-lora",
        type=int,
        default=0,
        metavar="RANK",
        help="also train a LoRA of this rank on the spatial cross-attention",
    )
    ap.add_argument(
        "--text-lora", type=int, default=0, metavar="RANK", help="also train a LoRA of this rank on the text encoder"
    )
    ap.add_argument(
        "--contrast",
        type=float,
        default=0.0,
        metavar="W",
        help="weight of the caption-contrast hinge (a clip fits its caption better than its reverse; at high t)",
    )
    ap.add_argument(
        "--track",
        type=float,
        default=0.0,
        metavar="W",
        help="weight of the track loss (the object's path in the x0 predicted from pure noise against the clip's)",
    )
    ap.add_argument(
        "--separate",
        type=float,
        default=0.0,
        metavar="M",
        help="with --text-lora: push the end-of-text states of a caption and its reverse M apart, image captions kept",
    )
    ap.add_argument(
        "--still",
        type=float,
        default=0.0,
        metavar="P",
        help="hold a moving clip's first frame in its noisy input at high t with this probability (the target moves)",
    )
    ap.add_argument(
        "--snr-cap",
        type=float,
        default=0.0,
        metavar="W",
        help="weight each clip's loss by min(1 + 1/SNR(t), W) (the v-loss weight, truncated); 0: the plain ε loss",
    )
    ap.add_argument(
        "--init", type=Path, metavar="CKPT", help="start from another run's checkpoint (its EMA weights): a 2nd stage"
    )
    ap.add_argument(
        "--spread",
        type=float,
        default=1.0,
        help="share of a moving shape's free start range its clips start in, around its middle (toy.video)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save-every", type=int, default=100)
    ap.add_argument(
        "--threads", type=int, default=1, help="torch threads (a resume must use the same for bit-identity)"
    )
    ap.add_argument("--resume", action="store_true", help="continue from the last checkpoint in OUT/checkpoints")
    ap.add_argument("--measure", action="store_true", help="only time a step at 128 and 64 px and exit")
    ap.add_argument(
        "--pack",
        nargs=2,
        metavar=("ADAPTER", "NAME"),
        help="only copy the motion adapter folder ADAPTER as float16 into the package's weights/NAME",
    )
    ap.add_argument(
        "--write-clips",
        type=int,
        metavar="N",
        help="only write N toy clips (FFV1 .mkv + .txt captions, --size px, --seed) into OUT: distill's --data",
    )
    ap.add_argument(
        "--curve", type=int, metavar="N", help="only print the mean loss of every N steps of the last checkpoint"
    )
    ap.add_argument(
        "--probe",
        choices=("ema", "live"),
        help="only say whether the last checkpoint's (EMA or live) weights read the motion words: the loss of moving "
        "clips under their caption, its reverse and none",
    )
    args = ap.parse_args(argv)
    if args.pack:
        pack(Path(args.pack[0]), args.pack[1])
        return
    if args.write_clips:
        paths = write_clips(args.out, args.write_clips, args.size, args.seed)
        log(f"wrote {len(paths)} clips of {args.size} px into {args.out}")
        return
    # torch and the trainer load only when a mode runs: --help stays instant
    import torch

    from lcm_video.train import motion as tm
    from lcm_video.train.loop import latest_checkpoint

    if args.curve:
        found = latest_checkpoint(args.out / "checkpoints")
        losses = torch.load(found, weights_only=False)["losses"] if found else []
        for i in range(0, len(losses), args.curve):
            part = losses[i : i + args.curve]
            print(f"steps {i + 1}-{i + len(part)}: mean loss {sum(part) / len(part):.4f}")
        return
    torch.set_num_threads(args.threads)
    if args.probe:
        found = latest_checkpoint(args.out / "checkpoints")
        if found is None:
            sys.exit(f"--probe: no checkpoint in {args.out / 'checkpoints'}")
        print(json.dumps({"checkpoint": str(found), "weights": args.probe, "rows": probe(found, args.probe)}))
        return
    if args.measure:
        rows = measure()
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "cost.json").write_text(json.dumps(rows, indent=1) + "\n")
        return
    cfg = tm.MotionTrainConfig(
        size=args.size,
        batch=args.batch,
        pool=args.pool,
        lr=args.lr,
        words_lr=args.words_lr,
        seed=args.seed,
        spatial_lora=args.spatial_lora,
        text_lora=args.text_lora,
        contrast=args.contrast,
        track=args.track,
        separate=args.separate,
        still=args.still,
        snr_cap=args.snr_cap,
        init=str(args.init or ""),
        spread=args.spread,
        steps=args.steps,
        save_every=args.save_every,
    )
    t0 = time.perf_counter()
    parts = tm.load_toy_parts(
        tm.toy_motion_adapter(seed=cfg.seed, heads=cfg.heads),
        seed=cfg.seed,
        lora_rank=cfg.spatial_lora,
        text_lora_rank=cfg.text_lora,
    )
    trainer = tm.MotionTrainer(parts, cfg)
    ckpts = args.out / "checkpoints"
    if args.resume:
        found = latest_checkpoint(ckpts)
        if found is None:
            sys.exit(f"--resume: no checkpoint in {ckpts}; drop --resume to start afresh")
        trainer.load_state(torch.load(found, weights_only=False))
        log(f"resumed from {found.name} (step {trainer.step})")
    elif latest_checkpoint(ckpts) is not None:
        sys.exit(f"{ckpts} has checkpoints: add --resume to continue, or use a new --out")
    elif args.init:
        if not args.init.is_file():
            sys.exit(f"--init: no checkpoint at {args.init}")
        trainer.start_from(torch.load(args.init, weights_only=False))
        log(f"started from {args.init}")
    pool_file = args.out / "pool.pt"
    key = {
        "size": cfg.size,
        "pool": cfg.pool,
        "seed": cfg.seed,
        "captions": 2,  # the motion said after the image caption (toy.video, 2026-12-03)
        **({"spread": cfg.spread} if cfg.spread != 1 else {}),
    }
    pool = None
    if pool_file.is_file():
        saved = torch.load(pool_file, weights_only=False)
        if saved["key"] == key:
            pool = saved["pool"]
    if pool is None:
        pool = tm.make_pool(parts.vae, cfg.pool, cfg.size, cfg.seed, log=log, spread=cfg.spread)
        args.out.mkdir(parents=True, exist_ok=True)
        tm.atomic_save({"key": key, "pool": pool}, pool_file)
    log(f"pool: {len(pool)} clips at {cfg.size} px; set-up {time.perf_counter() - t0:.0f} s")
    t1, first = time.perf_counter(), trainer.step
    while trainer.step < cfg.steps:
        loss = trainer.train_step(pool)
        if trainer.step % 10 == 0:
            recent = trainer.losses[-50:]
            rate = (time.perf_counter() - t1) / (trainer.step - first)
            log(
                f"step {trainer.step}/{cfg.steps} loss {loss:.4f} (mean of last {len(recent)} "
                f"{sum(recent) / len(recent):.4f}) {rate:.2f} s/step"
            )
        if trainer.step % cfg.save_every == 0 or trainer.step == cfg.steps:
            path = trainer.save_checkpoint(ckpts)
            trainer.export(args.out / "adapter")
            log(f"saved {path.name} and {args.out / 'adapter'}")
    with open(args.out / "times.json", "a") as f:
        f.write(json.dumps({"seconds": round(time.perf_counter() - t0, 1), **vars(args)}, default=str) + "\n")


if __name__ == "__main__":
    main()
