"""Training a ControlNet for the toy-teacher on the toy world's edge maps (issue 28), the way lllyasviel's were
trained for SD1.5: ``ControlNetModel.from_unet`` (a copy of the UNet's encoder, zero convolutions out), the UNet and
text encoder frozen, the teacher's own epsilon loss. Plain functions over tensors, seeded, resumable bit for bit.

One step:

    z    = (μ + σ·n) · scaling            a pre-encoded picture's latent, (b, 4, h, w)
    c    = annotator(picture) / 255       its control map, (b, 3, H, W) in [0, 1] (``control.annotators``)
    x_t  = √ᾱ_t·z + √(1−ᾱ_t)·ε
    loss = ‖ε_θ(x_t, t, text; ControlNet(x_t, t, text, c)) − ε‖²

Half the captions are dropped to "" (the ControlNet paper's share: the net must read the picture's layout from the
map alone, so it works for any prompt, and for a new prompt at strength 1). The exported weights are an EMA. The
ControlNet is trained on the teacher and used unchanged with the distilled ``toy`` (the teacher + its LCM-LoRA), as
lllyasviel's SD1.5 ControlNets are used with LCM-LoRA.
"""

from __future__ import annotations

import copy
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..control import annotators
from ..models.presets import WEIGHTS
from ..toy import world
from .clips import encode_text
from .loop import atomic_save, ema_decay, keep_last, step_generator

TEACHER = WEIGHTS / "toy-teacher"
CAPTION_DROP = 0.5
TEXTURES = 0.1  # the share of plain textures ("a texture"): edges of a picture with no shape


@dataclass
class ControlParts:
    """The frozen toy-teacher (``unet``, ``text_encoder``, ``tokenizer``, ``vae``, ``alphas_cumprod`` float (1000,))
    and the trainable ``controlnet``."""

    unet: Any
    controlnet: Any
    text_encoder: Any
    tokenizer: Any
    vae: Any
    alphas_cumprod: torch.Tensor


def load_control_parts(teacher: str | os.PathLike = TEACHER, seed: int = 0) -> ControlParts:
    """The toy-teacher (float32, frozen) and a ControlNet made from its UNet (``ControlNetModel.from_unet``: the
    encoder's weights copied, the zero convolutions and the conditioning embedding's last layer at zero, the rest of
    the conditioning embedding drawn from ``seed``), so step 0 is the teacher unchanged."""
    from diffusers import AutoencoderKL, ControlNetModel, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    teacher = Path(teacher)
    unet = UNet2DConditionModel.from_pretrained(teacher / "unet", dtype=torch.float32).eval().requires_grad_(False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        controlnet = ControlNetModel.from_unet(unet)
    controlnet.train()  # no dropout or batch statistics in it: train mode only states intent
    text = CLIPTextModel.from_pretrained(teacher / "text_encoder", dtype=torch.float32).eval().requires_grad_(False)
    tok = CLIPTokenizer.from_pretrained(teacher / "tokenizer")
    vae = AutoencoderKL.from_pretrained(teacher / "vae", dtype=torch.float32).eval().requires_grad_(False)
    acp = DDPMScheduler.from_pretrained(teacher / "scheduler").alphas_cumprod.float()
    return ControlParts(unet, controlnet, text, tok, vae, acp)


# --------------------------------------------------------------------------------------------------------------------
# Data: pictures drawn, annotated and encoded once.


@dataclass
class PicturePool:
    """Pre-encoded pictures: ``mean``/``std`` float (n, 4, h, w) (the VAE posterior, unscaled), ``maps`` uint8
    (n, H, W) (one channel of the control map: the annotator's three are equal), ``captions``."""

    mean: torch.Tensor
    std: torch.Tensor
    maps: torch.Tensor
    captions: list[str]

    def __len__(self) -> int:
        return len(self.captions)


@torch.no_grad()
def make_pool(vae, count: int, size: int, seed: int, log=None, chunk: int = 200) -> PicturePool:
    """``count`` toy-world pictures at ``size`` px (``TEXTURES`` of them plain textures) from ``seed``, their canny
    maps, encoded ``chunk`` at a time; the same pool for the same arguments."""
    rng = np.random.default_rng(seed)
    means, stds, maps, caps = [], [], [], []
    for start in range(0, count, chunk):
        pics = []
        for _ in range(min(chunk, count - start)):
            pixels, caption = world.random_picture(rng, size, TEXTURES)
            pics.append(pixels)
            maps.append(torch.from_numpy(annotators.canny(pixels)[..., 0].copy()))
            caps.append(caption)
        x = torch.from_numpy(np.stack(pics)).permute(0, 3, 1, 2).float() / 127.5 - 1
        post = vae.encode(x).latent_dist
        means.append(post.mean)
        stds.append(post.std)
        if log:
            log(f"pool: {start + len(pics)}/{count} pictures encoded")
    return PicturePool(torch.cat(means), torch.cat(stds), torch.stack(maps), caps)


def draw_batch(
    pool: PicturePool, batch: int, scaling: float, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """``batch`` pictures from ``pool``: latents float (b, 4, h, w) (a posterior sample times the VAE's scaling),
    control maps float (b, 3, H, W) in [0, 1], captions (``CAPTION_DROP`` of them "")."""
    picks = torch.randint(0, len(pool), (batch,), generator=gen)
    drop = torch.rand(batch, generator=gen) < CAPTION_DROP
    mean, std = pool.mean[picks], pool.std[picks]
    z = (mean + std * torch.randn(mean.shape, generator=gen)) * scaling
    cond = (pool.maps[picks].float() / 255).unsqueeze(1).expand(-1, 3, -1, -1)
    caps = ["" if d else pool.captions[i] for i, d in zip(picks.tolist(), drop.tolist(), strict=True)]
    return z, cond, caps


def control_loss(parts: ControlParts, z, cond, states, gen: torch.Generator) -> torch.Tensor:
    """The epsilon-prediction loss of latents z float (b, 4, h, w) under control maps ``cond`` float (b, 3, H, W) in
    [0, 1] and text states (b, 77, d): t ~ U{0 … 999} and ε ~ N(0, 1) from ``gen``."""
    acp = parts.alphas_cumprod
    t = torch.randint(0, len(acp), (z.shape[0],), generator=gen)
    eps = torch.randn(z.shape, generator=gen)
    a = acp[t].view(-1, 1, 1, 1)
    x_t = a.sqrt() * z + (1 - a).sqrt() * eps
    down, mid = parts.controlnet(x_t, t, encoder_hidden_states=states, controlnet_cond=cond, return_dict=False)
    pred = parts.unet(
        x_t, t, encoder_hidden_states=states, down_block_additional_residuals=down, mid_block_additional_residual=mid
    ).sample
    return F.mse_loss(pred, eps)


# --------------------------------------------------------------------------------------------------------------------
# The trainer.


@dataclass(frozen=True)
class ControlTrainConfig:
    """What a run trains with; all but ``steps``/``save_every`` must match to resume (the checkpoint's fingerprint)."""

    size: int = 128
    batch: int = 16
    pool: int = 8000
    lr: float = 1e-4
    warmup: int = 100
    weight_decay: float = 1e-2
    ema: float = 0.999
    seed: int = 0
    steps: int = 3000
    save_every: int = 100

    def fingerprint(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("steps", "save_every")}


class ControlTrainer:
    """The ControlNet's weights, AdamW, EMA (what is exported) and loss history; text states cached by caption (the
    toy world has a few hundred)."""

    def __init__(self, parts: ControlParts, cfg: ControlTrainConfig):
        self.parts, self.cfg = parts, cfg
        self.params = dict(parts.controlnet.named_parameters())
        self.optimizer = torch.optim.AdamW(list(self.params.values()), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.ema = {n: p.detach().clone() for n, p in self.params.items()}
        self.step = 0
        self.losses: list[float] = []
        self.scaling = float(parts.vae.config.scaling_factor)
        self._states: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def states(self, captions: list[str]) -> torch.Tensor:
        todo = sorted({c for c in captions if c not in self._states})
        if todo:
            for c, s in zip(todo, encode_text(self.parts.text_encoder, self.parts.tokenizer, todo), strict=True):
                self._states[c] = s
        return torch.stack([self._states[c] for c in captions])

    def train_step(self, pool: PicturePool) -> float:
        """One optimiser step on a batch drawn by ``step_generator(seed, step)``; returns the loss."""
        cfg = self.cfg
        gen = step_generator(cfg.seed, self.step)
        z, cond, caps = draw_batch(pool, cfg.batch, self.scaling, gen)
        loss = control_loss(self.parts, z, cond, self.states(caps), gen)
        for group in self.optimizer.param_groups:  # linear warm-up, then constant: a run can be extended
            group["lr"] = cfg.lr * min(1.0, (self.step + 1) / cfg.warmup)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(self.params.values()), 1.0)
        self.optimizer.step()
        self.step += 1
        decay = ema_decay(self.step, cfg.ema)
        with torch.no_grad():
            for n, p in self.params.items():
                self.ema[n].lerp_(p, 1 - decay)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"the loss became {value} at step {self.step}")
        self.losses.append(value)
        return value

    def state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "losses": list(self.losses),
            "config": self.cfg.fingerprint(),
            "weights": {n: p.detach().clone() for n, p in self.params.items()},
            "ema": {n: v.clone() for n, v in self.ema.items()},
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        if state["config"] != self.cfg.fingerprint():
            mine = self.cfg.fingerprint()
            changed = sorted(k for k in mine if state["config"].get(k) != mine[k])
            raise ValueError(f"the checkpoint was made with other settings ({', '.join(changed)})")
        with torch.no_grad():
            for n, p in self.params.items():
                p.copy_(state["weights"][n])
                self.ema[n].copy_(state["ema"][n])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.losses = int(state["step"]), list(state["losses"])

    def save_checkpoint(self, folder: Path, keep: int = 2) -> Path:
        """``folder/step_NNNNNN.pt``, written atomically; all but the last ``keep`` removed."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"step_{self.step:06d}.pt"
        atomic_save(self.state(), path)
        keep_last(folder, keep)
        return path

    def export(self, folder: Path, ema: bool = True) -> Path:
        """The (EMA) ControlNet as a diffusers ``ControlNetModel`` folder (``config.json`` +
        ``diffusion_pytorch_model.safetensors``), swapped in whole."""
        net = copy.deepcopy(self.parts.controlnet)
        if ema:
            net.load_state_dict(self.ema)
        folder = Path(folder)
        tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        net.save_pretrained(tmp)
        old = folder.with_name(f".{folder.name}.{os.getpid()}.old")
        if folder.exists():
            os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
        return folder
