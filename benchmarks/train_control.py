"""Train the toy ControlNet (issue 28): ``ControlNetModel.from_unet`` on the toy-teacher, conditioned on the canny
edges of toy-world pictures, the teacher frozen (``lcm_video.train.control``).

    OMP_NUM_THREADS=1 nice -n 10 python -m benchmarks.train_control --out build/control --size 128 --batch 16 \
        --pool 8000 --steps 3000 --save-every 100 --threads 1
    ... the same command with --resume                  # continues from the last checkpoint, bit for bit

Writes ``OUT/pool.pt`` (pictures drawn, annotated and encoded once; reused by a resume), ``OUT/checkpoints/step_*.pt``
(the last two), ``OUT/controlnet`` (the EMA ControlNet as a diffusers folder, refreshed at every checkpoint) and
``OUT/times.json``. Trained at the toy's native 128 px: the edges are one pixel wide, and a restyle must keep the
object's place to the pixel.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def measure(sizes=(128,), batches=(8, 16, 32), repeats: int = 2) -> list[dict]:
    """Seconds per training step (forward, backward, AdamW) per size and batch (best of ``repeats`` after a warm-up)."""
    # torch and the trainer load only when a mode runs: --help stays instant
    import torch

    from lcm_video.train import control as tc

    parts = tc.load_control_parts()
    opt = torch.optim.AdamW(parts.controlnet.parameters(), lr=1e-6)
    states = tc.encode_text(parts.text_encoder, parts.tokenizer, ["a red circle on a blue background"])
    rows = []
    for size in sizes:
        for b in batches:
            z, cond = torch.randn(b, 4, size // 8, size // 8), torch.rand(b, 3, size, size)
            times = []
            for _ in range(repeats + 1):
                t0 = time.perf_counter()
                loss = tc.control_loss(parts, z, cond, states.expand(b, -1, -1), torch.Generator().manual_seed(0))
                opt.zero_grad()
                loss.backward()
                opt.step()
                times.append(time.perf_counter() - t0)
            best = min(times[1:])
            rows.append(
                {"size": size, "batch": b, "s_per_step": round(best, 3), "ms_per_picture": round(best / b * 1e3)}
            )
            log(f"measure: {rows[-1]}")
    return rows


def pack(checkpoints: Path, ema: bool) -> Path:
    """The last checkpoint's ControlNet (EMA or live weights) as float16 into the package, where the ``toy`` and
    ``toy-teacher`` presets' ``--control canny`` loads it (as the render's dtype)."""
    # torch and the trainer load only when a mode runs: --help stays instant
    import torch

    from lcm_video.models.presets import WEIGHTS
    from lcm_video.train import control as tc
    from lcm_video.train.loop import latest_checkpoint

    found = latest_checkpoint(checkpoints)
    if found is None:
        sys.exit(f"--pack: no checkpoint in {checkpoints}")
    state = torch.load(found, weights_only=False)
    parts = tc.load_control_parts()
    parts.controlnet.load_state_dict(state["ema" if ema else "weights"])
    dest = WEIGHTS / "toy-canny"
    parts.controlnet.to(torch.float16).save_pretrained(dest)
    size = sum(p.stat().st_size for p in WEIGHTS.rglob("*") if p.is_file())
    which = "EMA" if ema else "live"
    log(f"pack: step {state['step']} ({which} weights) into {dest}; {size / 2**20:.1f} MiB in {WEIGHTS}")
    return dest


def main(argv: list[str] | None = None) -> None:

    ap = argparse.ArgumentParser(prog="python -m benchmarks.train_control", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("build/control"))
    ap.add_argument("--size", type=int, default=128, help="picture side in pixels (a multiple of 8)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--pool", type=int, default=8000, help="training pictures drawn and encoded once")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--lr", type=float, default=1e-4, help="AdamW's peak rate")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save-every", type=int, default=100)
    ap.add_argument(
        "--threads", type=int, default=1, help="torch threads (a resume must use the same for bit-identity)"
    )
    ap.add_argument("--resume", action="store_true", help="continue from the last checkpoint in OUT/checkpoints")
    ap.add_argument("--measure", action="store_true", help="only time a step per batch size and exit")
    ap.add_argument(
        "--pack",
        choices=["ema", "live"],
        help="only write a float16 copy of the last checkpoint's EMA or live weights into lcm_video/weights/toy-canny",
    )
    args = ap.parse_args(argv)
    # torch and the trainer load only when a mode runs: --help stays instant
    import torch

    from lcm_video.train import control as tc
    from lcm_video.train.loop import atomic_save, latest_checkpoint

    torch.set_num_threads(args.threads)
    if args.pack:
        pack(args.out / "checkpoints", ema=args.pack == "ema")
        return
    if args.measure:
        rows = measure()
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "cost.json").write_text(json.dumps(rows, indent=1) + "\n")
        return
    cfg = tc.ControlTrainConfig(
        size=args.size,
        batch=args.batch,
        pool=args.pool,
        lr=args.lr,
        seed=args.seed,
        steps=args.steps,
        save_every=args.save_every,
    )
    t0 = time.perf_counter()
    parts = tc.load_control_parts(seed=cfg.seed)
    trainer = tc.ControlTrainer(parts, cfg)
    ckpts = args.out / "checkpoints"
    if args.resume:
        found = latest_checkpoint(ckpts)
        if found is None:
            sys.exit(f"--resume: no checkpoint in {ckpts}; drop --resume to start afresh")
        trainer.load_state(torch.load(found, weights_only=False))
        log(f"resumed from {found.name} (step {trainer.step})")
    elif latest_checkpoint(ckpts) is not None:
        sys.exit(f"{ckpts} has checkpoints: add --resume to continue, or use a new --out")
    pool_file = args.out / "pool.pt"
    key = {"size": cfg.size, "pool": cfg.pool, "seed": cfg.seed}
    pool = None
    if pool_file.is_file():
        saved = torch.load(pool_file, weights_only=False)
        if saved["key"] == key:
            pool = saved["pool"]
    if pool is None:
        pool = tc.make_pool(parts.vae, cfg.pool, cfg.size, cfg.seed, log=log)
        args.out.mkdir(parents=True, exist_ok=True)
        atomic_save({"key": key, "pool": pool}, pool_file)
    log(f"pool: {len(pool)} pictures at {cfg.size} px; set-up {time.perf_counter() - t0:.0f} s")
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
            trainer.export(args.out / "controlnet")
            log(f"saved {path.name} and {args.out / 'controlnet'}")
    with open(args.out / "times.json", "a") as f:
        f.write(json.dumps({"seconds": round(time.perf_counter() - t0, 1), **vars(args)}, default=str) + "\n")


if __name__ == "__main__":
    main()
