"""Train the toy world's models here, on a CPU, from nothing: an autoencoder, then a text-conditioned latent diffusion
teacher (``toy-teacher``), then its LCM by ``lcm-video distill`` (``toy``). Seeded; see BENCHMARKS.md for the times.

The recipe of the shipped weights (times on 2 cores in BENCHMARKS.md):

    python -m benchmarks.train_toy ae      --out build/toy --steps 4000
    python -m benchmarks.train_toy teacher --out build/toy --steps 3000 --batch 64 --lr 1e-3
    python -m benchmarks.train_toy teacher --out build/toy --init build/toy/toy-teacher --steps 5000 --batch 64 \
        --seed 1 --lr 3e-4                                 # continued: a fresh pool of pictures, a lower peak rate
    python -m benchmarks.train_toy teacher --out build/toy --init build/toy/toy-teacher --size 128 --steps 2500 \
        --batch 32 --pool 10000 --seed 3 --lr 3e-4        # continued at 128 px
    python -m benchmarks.train_toy data    --out build/toy --images 4000 --seed 2 --size 128
    lcm-video distill --teacher build/toy/toy-teacher --data build/toy/data --out build/toy/toy-lcm --resolution 128 \
        --steps 800 --batch-size 16 --lora-rank 16 --lr 1e-3 --w-min 4 --w-max 4 --save-every 200
    python -m benchmarks.train_toy pack    --out build/toy        # fp16 copies into lcm_video/weights/
    python -m benchmarks.train_toy taesd   --out build/toy --steps 5000   # --fast's tiny autoencoder, from the ae
    python -m benchmarks.train_toy pack-taesd --out build/toy

The shipped 128 px teacher was continued from the fp16 copy of the 64 px one (its float32 folder was not kept), so
the recipe run whole starts that stage from weights that differ by fp16's rounding; each stage on its own gives
bit-identical tensors when run twice.

The shapes are SD1.5's, small: an ``AutoencoderKL`` with 8x downsampling and 4 latent channels, a
``UNet2DConditionModel`` (epsilon prediction, SD1.5's scaled-linear DDPM schedule over 1000 steps), a CLIP text encoder
on the project's offline byte-level tokenizer with one token per caption word (``toy_tokenizer()``). The
autoencoder learns on 32 px crops; the teacher learns at 64 px, then continues at 128 px (on an 8x8 latent a square
of the toy world is about 4x4 cells, and a restyle could not keep its place to the pixel); the LCM is distilled at
128 px. Classifier-free guidance is learnt by dropping 10% of the captions. The teacher's weights are an EMA (0.999)
of the trained ones.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from benchmarks.common import ROOT, clock
from lcm_video.toy import world as toy

if TYPE_CHECKING:
    import torch  # imported where it is used, so that --help is instant

SIZE = 64
CROP = 32


def toy_autoencoder():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(32, 64, 96, 96),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=SIZE,
        mid_block_add_attention=False,  # all convolutions: trained on crops, used on whole frames of any size
    )


def toy_taesd():
    """The toy's tiny autoencoder (``--fast``): TAESD's architecture (``AutoencoderTiny``) at 32 channels with two
    blocks a level instead of 64 and three: at 128² OpenVINO bfloat16 encodes and decodes a frame in ~5 + ~6 ms, where
    the toy's ``AutoencoderKL`` takes ~4x longer and is most of a live frame's time (BENCHMARKS.md)."""
    from diffusers import AutoencoderTiny

    return AutoencoderTiny(
        encoder_block_out_channels=(32,) * 4,
        decoder_block_out_channels=(32,) * 4,
        num_encoder_blocks=(1, 2, 2, 2),
        num_decoder_blocks=(2, 2, 2, 1),
        latent_channels=4,
    )


def toy_unet():
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=SIZE // 8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64, 128),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=64,
        attention_head_dim=8,
        norm_num_groups=16,
    )


def toy_text_encoder():
    from lcm_video.models.tiny import byte_text_encoder, toy_tokenizer

    return byte_text_encoder(64, 128, layers=2, heads=4, vocab=len(toy_tokenizer()), projection=64)


def toy_scheduler():
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type="epsilon",
        clip_sample=False,
        steps_offset=1,
    )


def clutter(rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """uint8 (size, size, 3): 2-8 shapes of random colours and sizes, some overlapping, on a smooth texture, with thin
    lines: sharper and busier than the toy scenes, so the autoencoder also learns edges, small detail and any colour."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(toy.smooth_texture(size, rng))
    pen = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(2, 9))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x, y = rng.random(2) * size
        r = 2 + rng.random() * size / 4
        kind = rng.integers(4)
        if kind == 0:
            pen.ellipse((x - r, y - r, x + r, y + r), fill=colour)
        elif kind == 1:
            pen.rectangle((x - r, y - r / 2, x + r, y + r / 2), fill=colour)
        elif kind == 2:
            pen.polygon([(x, y - r), (x - r, y + r), (x + r, y + r / 3)], fill=colour)
        else:
            pen.line((x, y, *(rng.random(2) * size)), fill=colour, width=int(rng.integers(1, 3)))
    return np.asarray(img)


AE_RADIUS = (0.15, 0.15)  # the shipped autoencoder was trained on the first version's shape sizes


def toy_batch(
    rng: np.random.Generator, n: int, busy: float = 0.0, radius: tuple[float, float] = toy.RADIUS, size: int = SIZE
) -> tuple[torch.Tensor, list[str]]:
    """(n, 3, size, size) float in [-1, 1] and captions: toy scenes, a fifth plain textures; with ``busy`` > 0 that
    share of cluttered pictures too (for the autoencoder, at 64 px; their caption is "clutter", never used)."""
    import torch

    pics, caps = [], []
    for _ in range(n):
        if rng.random() < busy:
            pics.append(clutter(rng, size))
            caps.append("clutter")
            continue
        pixels, caption = toy.random_picture(rng, size, radius=radius)
        pics.append(pixels)
        caps.append(caption)
    x = torch.from_numpy(np.stack(pics)).permute(0, 3, 1, 2).float() / 127.5 - 1
    return x, caps


def _log(stage: str, step: int, steps: int, loss: float, t0: float) -> None:
    rate = (time.perf_counter() - t0) / max(1, step)
    print(
        f"{stage} {step}/{steps} loss {loss:.5f} ({rate:.2f} s/step, eta {rate * (steps - step) / 60:.1f} min)",
        file=sys.stderr,
        flush=True,
    )


def train_ae(
    out: Path, steps: int, batch: int, seed: int, init: Path | None = None, lr: float = 1e-3, pool: int = 6000
) -> None:
    """L1 reconstruction plus L1 on the horizontal and vertical pixel differences (edges stay sharp: a plain L1
    decoder rounds the shapes' corners off) and a 1e-6 KL term (SD's weight), on random 32x32 crops of a pool of
    pictures drawn once (the autoencoder is all convolutions), flipped at random; Adam with a cosine decay. The
    latents' std then sets ``scaling_factor`` so the diffusion model sees unit-variance latents (SD's 0.18215)."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    from diffusers import AutoencoderKL

    vae = (AutoencoderKL.from_pretrained(init) if init else toy_autoencoder()).train()
    opt = torch.optim.Adam(vae.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))))
    t0 = time.perf_counter()
    pictures, _ = toy_batch(rng, pool, busy=0.15, radius=AE_RADIUS)
    print(f"ae: {pool} pictures drawn in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)

    def edges(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x[..., 1:, :] - x[..., :-1, :], x[..., :, 1:] - x[..., :, :-1]

    for step in range(1, steps + 1):
        x = pictures[torch.from_numpy(rng.integers(0, pool, batch))]
        i, j = rng.integers(0, SIZE - CROP + 1, 2) // 8 * 8  # on the latent grid
        x = x[:, :, i : i + CROP, j : j + CROP]
        if rng.random() < 0.5:
            x = x.flip(-1)
        post = vae.encode(x).latent_dist
        rec = vae.decode(post.sample()).sample
        edge = sum((a - b).abs().mean() for a, b in zip(edges(rec), edges(x), strict=True))
        loss = (rec - x).abs().mean() + 0.5 * edge + 1e-6 * post.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == steps:
            _log("ae", step, steps, float(loss), t0)
    vae.eval()
    with torch.no_grad():
        x, _ = toy_batch(np.random.default_rng(seed + 1), 256, radius=AE_RADIUS)
        std = float(torch.cat([vae.encode(c).latent_dist.mode() for c in x.split(32)]).std())
    vae.register_to_config(scaling_factor=1.0 / std)
    vae.save_pretrained(out / "vae")
    print(
        f"ae: latent std {std:.4f} -> scaling_factor {1 / std:.5f}; {time.perf_counter() - t0:.0f} s", file=sys.stderr
    )


def train_taesd(
    out: Path, steps: int, batch: int, seed: int, lr: float = 1e-3, pool: int = 3000, teacher: Path | None = None
) -> None:
    """The toy's TAESD, distilled from the toy's autoencoder as TAESD is from SD's: the encoder learns the teacher's
    scaled latents (its posterior mean times ``scaling_factor``, MSE), the decoder the pictures from those latents (L1
    plus L1 on pixel differences, as ``train_ae``), on random 64x64 crops of 128 px pictures (toy scenes, textures and
    15% clutter) on the latent grid, flipped at random; Adam with a cosine decay. Saved as ``OUT/toy-taesd``, an
    ``AutoencoderTiny`` folder whose latents are the UNet's (``scaling_factor`` 1)."""
    import torch
    from diffusers import AutoencoderKL

    from lcm_video.models.presets import WEIGHTS

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    vae = AutoencoderKL.from_pretrained(teacher or WEIGHTS / "toy-teacher" / "vae").float().eval().requires_grad_(False)
    scale = float(vae.config.scaling_factor)
    tae = toy_taesd().train()
    opt = torch.optim.Adam(tae.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))))
    t0 = time.perf_counter()
    pictures, _ = toy_batch(rng, pool, busy=0.15, size=128)
    print(f"taesd: {pool} pictures drawn in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    crop = 64

    def edges(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x[..., 1:, :] - x[..., :-1, :], x[..., :, 1:] - x[..., :, :-1]

    dest = out / "toy-taesd"
    for step in range(1, steps + 1):
        x = pictures[torch.from_numpy(rng.integers(0, pool, batch))]
        i, j = rng.integers(0, 128 - crop + 1, 2) // 8 * 8
        x = x[:, :, i : i + crop, j : j + crop]
        if rng.random() < 0.5:
            x = x.flip(-1)
        with torch.no_grad():
            z = vae.encode(x).latent_dist.mode() * scale
        enc = tae.encoder(x)
        rec = tae.decoder(z)
        edge = sum((a - b).abs().mean() for a, b in zip(edges(rec), edges(x), strict=True))
        enc_loss = torch.nn.functional.mse_loss(enc, z)
        loss = enc_loss + (rec - x).abs().mean() + 0.5 * edge
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == steps:
            _log(f"taesd (encoder mse {float(enc_loss):.4f})", step, steps, float(loss), t0)
        if step % 1000 == 0 or step == steps:
            tae.save_pretrained(dest)  # a checkpoint to look at while it trains
    print(f"taesd: {time.perf_counter() - t0:.0f} s", file=sys.stderr)


def train_teacher(
    out: Path,
    steps: int,
    batch: int,
    seed: int,
    pool: int = 20000,
    init: Path | None = None,
    lr: float = 5e-4,
    size: int = SIZE,
) -> None:
    """Epsilon-prediction DDPM loss on the frozen autoencoder's latents of ``size`` px pictures; the text encoder
    learns with the UNet; 10% empty captions for classifier-free guidance; AdamW 5e-4 (100 warm-up steps, cosine); EMA
    0.999 after a warm-up ((1 + step) / (10 + step)). The UNet is all convolutions and attention, so a teacher trained
    at 64 px continues at 128 (``--init``, ``--size 128``)."""
    import copy

    import torch
    import torch.nn.functional as F
    from diffusers import AutoencoderKL, StableDiffusionPipeline

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    vae = AutoencoderKL.from_pretrained(out / "vae").eval().requires_grad_(False)
    from lcm_video.models.tiny import toy_tokenizer

    unet, text, tok, noise_sched = toy_unet().train(), toy_text_encoder().train(), toy_tokenizer(), toy_scheduler()
    if init is not None:  # continue from a saved teacher (its EMA weights; a fresh optimiser, warm-up and decay)
        from diffusers import UNet2DConditionModel
        from transformers import CLIPTextModel

        unet = UNet2DConditionModel.from_pretrained(init / "unet").train()
        text = CLIPTextModel.from_pretrained(init / "text_encoder").train()
    ema_unet, ema_text = copy.deepcopy(unet).eval(), copy.deepcopy(text).eval()
    params = [*unet.parameters(), *text.parameters()]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-2)
    warm = 100

    def lr(s: int) -> float:
        return min(1.0, s / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr)
    acp = noise_sched.alphas_cumprod
    scale = vae.config.scaling_factor
    t0 = time.perf_counter()
    # The training set, drawn and encoded once, a thousand pictures at a time (20 000 at 128 px would be 3.9 GB of
    # pixels): posterior means and stds. The same draws in the same order as one call for the whole pool.
    means, stds, pool_caps = [], [], []
    for start in range(0, pool, 1000):
        pool_x, caps = toy_batch(rng, min(1000, pool - start), size=size)
        pool_caps += caps
        with torch.no_grad():
            posts = [vae.encode(c).latent_dist for c in pool_x.split(64)]
        means += [p.mean for p in posts]
        stds += [p.std for p in posts]
    mean, std = torch.cat(means), torch.cat(stds)
    del pool_x, means, stds
    for model in (unet, ema_unet):
        model.register_to_config(sample_size=size // 8)  # the pipeline's default height and width
    print(f"teacher: {pool} images encoded in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)

    def save(step: int) -> None:
        """The EMA teacher as a diffusers folder (written at every 1000 steps too, to look at it early)."""
        pipe = StableDiffusionPipeline(
            vae=vae,
            text_encoder=ema_text,
            tokenizer=tok,
            unet=ema_unet,
            scheduler=noise_sched,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
        pipe.save_pretrained(out / "toy-teacher")
        print(f"teacher: saved at step {step}", file=sys.stderr, flush=True)

    for step in range(1, steps + 1):
        pick = torch.from_numpy(rng.integers(0, pool, batch))
        caps = ["" if rng.random() < 0.1 else pool_caps[i] for i in pick.tolist()]
        z = (mean[pick] + std[pick] * torch.randn(mean[pick].shape)) * scale
        ids = tok(caps, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
        states = text(ids)[0]
        t = torch.randint(0, 1000, (batch,))
        eps = torch.randn_like(z)
        a = acp[t].view(-1, 1, 1, 1)
        x_t = a.sqrt() * z + (1 - a).sqrt() * eps
        loss = F.mse_loss(unet(x_t, t, encoder_hidden_states=states).sample, eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        decay = min(0.999, (1 + step) / (10 + step))  # warm-up, so the random initial weights fade out early
        with torch.no_grad():
            for ema, live in ((ema_unet, unet), (ema_text, text)):
                for pe, pl in zip(ema.parameters(), live.parameters(), strict=True):
                    pe.lerp_(pl, 1 - decay)
        if step % 50 == 0 or step == steps:
            _log("teacher", step, steps, float(loss), t0)
        if step % 1000 == 0 and step < steps:
            save(step)
    save(steps)
    print(f"teacher: {time.perf_counter() - t0:.0f} s", file=sys.stderr)


def pack(out: Path, lora: Path) -> None:
    """Half-precision copies of the teacher and of the distilled LoRA into the package (``lcm_video/weights/``), where
    the ``toy-teacher`` and ``toy`` presets load them (as float32)."""
    import shutil

    import torch
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import load_file, save_file

    from lcm_video.models.presets import WEIGHTS

    pipe = StableDiffusionPipeline.from_pretrained(out / "toy-teacher", safety_checker=None, feature_extractor=None)
    pipe.to(torch.float16)
    dest = WEIGHTS / "toy-teacher"
    shutil.rmtree(dest, ignore_errors=True)
    pipe.save_pretrained(dest)
    (WEIGHTS / "toy").mkdir(parents=True, exist_ok=True)
    weights = {k: v.to(torch.float16) for k, v in load_file(lora).items()}
    save_file(weights, WEIGHTS / "toy" / lora.name, metadata={"format": "pt"})
    size = sum(p.stat().st_size for p in WEIGHTS.rglob("*") if p.is_file())
    print(f"pack: {size / 2**20:.1f} MiB in {WEIGHTS}", file=sys.stderr)


def pack_taesd(out: Path) -> None:
    """A half-precision copy of the toy's TAESD (``OUT/toy-taesd``) into the package, where ``--fast`` with the toy
    presets loads it (as float32)."""
    import shutil

    import torch
    from diffusers import AutoencoderTiny

    from lcm_video.models.presets import WEIGHTS

    dest = WEIGHTS / "toy-taesd"
    shutil.rmtree(dest, ignore_errors=True)
    AutoencoderTiny.from_pretrained(out / "toy-taesd").to(torch.float16).save_pretrained(dest)
    size = sum(p.stat().st_size for p in WEIGHTS.rglob("*") if p.is_file())
    print(f"pack-taesd: {size / 2**20:.1f} MiB in {WEIGHTS}", file=sys.stderr)


def make_data(out: Path, images: int, seed: int, size: int = SIZE) -> None:
    toy.make_toy_dataset(out / "data", images, size, seed=seed)
    print(f"data: {images} captioned images in {out / 'data'}", file=sys.stderr)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.train_toy", description=__doc__.splitlines()[0])
    ap.add_argument("stage", choices=["ae", "teacher", "taesd", "data", "pack", "pack-taesd"])
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "toy")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--batch", type=int)
    ap.add_argument("--images", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--init", type=Path, help="ae/teacher: continue from this autoencoder / teacher folder")
    ap.add_argument("--lr", type=float, help="peak learning rate (ae: 1e-3, teacher: 5e-4)")
    ap.add_argument("--size", type=int, default=SIZE, help="teacher, data: picture side in pixels (the ae: 64)")
    ap.add_argument("--pool", type=int, default=20000, help="teacher: pictures drawn and encoded once to train on")
    return ap


def main(argv: list[str] | None = None) -> dict:
    """Run one stage; its wall time and arguments are appended to ``OUT/times.json`` (one JSON line per stage run)."""
    args = parser().parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    stages = {
        "ae": lambda: train_ae(args.out, args.steps or 1500, args.batch or 16, args.seed, args.init, args.lr or 1e-3),
        "teacher": lambda: train_teacher(
            args.out,
            args.steps or 4000,
            args.batch or 64,
            args.seed,
            pool=args.pool,
            init=args.init,
            lr=args.lr or 5e-4,
            size=args.size,
        ),
        "taesd": lambda: train_taesd(args.out, args.steps or 3000, args.batch or 16, args.seed, args.lr or 1e-3),
        "pack": lambda: pack(args.out, args.out / "toy-lcm" / "pytorch_lora_weights.safetensors"),
        "pack-taesd": lambda: pack_taesd(args.out),
        "data": lambda: make_data(args.out, args.images, args.seed, args.size),
    }
    _, seconds = clock(stages[args.stage])
    row = {"stage": args.stage, "seconds": round(seconds, 1), **vars(args)}
    with open(args.out / "times.json", "a") as f:
        f.write(json.dumps(row, default=str) + "\n")
    return row


if __name__ == "__main__":
    main()
