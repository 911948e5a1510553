"""The toy video clips a motion or control trainer learns from: drawn once, encoded once by the VAE, sampled into
batches by a seeded generator; and the text states of their captions. Plain functions over tensors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..toy import video as toy_video

CAPTION_DROP = 0.1  # the share of captions dropped to "": the teacher's classifier-free guidance share


@torch.no_grad()
def encode_clips(vae, clips: np.ndarray, chunk: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (n, f, h, w, 3) clips → the VAE posterior's mean and std, float (n, f, 4, h/8, w/8), unscaled."""
    n, f = clips.shape[:2]
    x = torch.from_numpy(clips.reshape(n * f, *clips.shape[2:])).permute(0, 3, 1, 2).float() / 127.5 - 1
    means, stds = [], []
    for part in x.split(chunk):
        post = vae.encode(part).latent_dist
        means.append(post.mean)
        stds.append(post.std)
    mean, std = torch.cat(means), torch.cat(stds)
    return mean.reshape(n, f, *mean.shape[1:]), std.reshape(n, f, *std.shape[1:])


@dataclass
class ClipPool:
    """Pre-encoded training clips: ``mean``/``std`` float (n, f, 4, h, w) (unscaled posterior), ``captions`` and
    ``reversed_captions`` (what the clip says played forwards and backwards)."""

    mean: torch.Tensor
    std: torch.Tensor
    captions: list[str]
    reversed_captions: list[str]

    def __len__(self) -> int:
        return len(self.captions)


def make_pool(
    vae, count: int, size: int, seed: int, frames: int = toy_video.FRAMES, log=None, spread: float = 1.0
) -> ClipPool:
    """``count`` training clips of the toy video world (none with a held-out caption) at ``size`` px, drawn from
    ``seed`` and encoded 50 at a time; the same pool for the same arguments (``spread``: ``toy.video``'s)."""
    rng = np.random.default_rng(seed)
    means, stds, caps, rcaps = [], [], [], []
    for start in range(0, count, 50):
        clips = []
        for _ in range(min(50, count - start)):
            pixels, spec = toy_video.training_clip(rng, size, frames, spread)
            clips.append(pixels)
            caps.append(spec.caption)
            rcaps.append(toy_video.reversed_spec(spec).caption)
        m, s = encode_clips(vae, np.stack(clips))
        means.append(m)
        stds.append(s)
        if log:
            log(f"pool: {start + len(clips)}/{count} clips encoded")
    return ClipPool(torch.cat(means), torch.cat(stds), caps, rcaps)


def draw_batch(
    pool: ClipPool, batch: int, scaling: float, gen: torch.Generator, with_opposite: bool = False
) -> tuple[torch.Tensor, list[str]] | tuple[torch.Tensor, list[str], list[str]]:
    """``batch`` clips from ``pool``: latents float (b, f, 4, h, w) (a posterior sample, times the VAE's scaling:
    about unit variance), half of them played backwards with their reversed caption, 10 % of captions dropped to
    "" (for classifier-free guidance). ``with_opposite``: also each clip's caption played the other way (the
    reversed one; "" where the caption was dropped), what ``--contrast`` scores against."""
    picks = torch.randint(0, len(pool), (batch,), generator=gen)
    back = torch.rand(batch, generator=gen) < 0.5
    drop = torch.rand(batch, generator=gen) < CAPTION_DROP
    mean, std = pool.mean[picks], pool.std[picks]
    z = (mean + std * torch.randn(mean.shape, generator=gen)) * scaling
    z = torch.where(back.view(-1, 1, 1, 1, 1), z.flip(1), z)
    caps = [
        "" if d else (pool.reversed_captions[i] if b else pool.captions[i])
        for i, b, d in zip(picks.tolist(), back.tolist(), drop.tolist(), strict=True)
    ]
    if not with_opposite:
        return z, caps
    opposite = [
        "" if d else (pool.captions[i] if b else pool.reversed_captions[i])
        for i, b, d in zip(picks.tolist(), back.tolist(), drop.tolist(), strict=True)
    ]
    return z, caps, opposite


def encode_text(text_encoder, tokenizer, captions: list[str]) -> torch.Tensor:
    """float (b, 77, d): the text encoder's last hidden states for ``captions`` (what the pipelines feed the UNet)."""
    ids = tokenizer(captions, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    return text_encoder(ids.to(text_encoder.device))[0]
