"""Pixels ↔ latents through the pipeline's VAE (``AutoencoderKL``) or TAESD (``AutoencoderTiny``), in chunks."""

from __future__ import annotations

import numpy as np
import torch
from einops import rearrange

from .denoiser import pad_batch


def to_unit(frames: torch.Tensor) -> torch.Tensor:
    """uint8 (f, h, w, 3) → float32 (f, 3, h, w) in [-1, 1]."""
    # contiguous: a permuted view is channels_last in memory, and convolutions round differently per layout
    return rearrange(frames, "f h w c -> f c h w").float().div(127.5).sub(1.0).contiguous()


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float (f, 3, h, w) in [-1, 1] → uint8 (f, h, w, 3) on the CPU, rounded as diffusers' postprocess does."""
    x = (images.float() / 2 + 0.5).clamp(0, 1).mul(255).round().to(torch.uint8)
    return rearrange(x, "f c h w -> f h w c").cpu()


def latent_scaling(vae) -> tuple[float, float]:
    """(scale, shift) of ``vae``'s latents: the UNet sees ``(z - shift) · scale`` (SD's VAEs: scale 0.18215, no
    shift; TAESD: 1 and 0)."""
    return float(vae.config.scaling_factor), float(vae.config.get("shift_factor") or 0.0)


def _fresh(x: torch.Tensor, device, dtype, layout: torch.memory_format) -> torch.Tensor:
    """A copy made here, in inference mode, in the codec's one memory layout: a full chunk would otherwise be a view of
    a normal tensor and a padded one a new inference tensor, and a compiled VAE treats the two kinds as different
    inputs (recompiles); convolutions round differently per layout."""
    return x.to(device, dtype, memory_format=layout, copy=True)


class LatentCodec:
    """Encode frames to scaled latents and back, ``chunk`` frames per VAE call to bound activation memory.

    Encoding takes the posterior mean (no sampling noise), so a static source gives identical latents per frame.
    Every VAE call sees exactly ``chunk`` frames (a short tail is padded), for the reason given in ``UNetDenoiser``;
    ``decode_chunk`` (default ``chunk``) sets the decoder's own. ``channels_last``: the VAE's weights (a torch module:
    converted in place, once) and every input in channels-last layout, which oneDNN's CPU convolutions run faster
    (``vae_layout``).
    """

    def __init__(self, vae, chunk: int = 8, decode_chunk: int | None = None, channels_last: bool = False):
        self.vae, self.chunk = vae, max(1, chunk)
        self.decode_chunk = max(1, decode_chunk or chunk)
        self.layout = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last and isinstance(vae, torch.nn.Module):
            vae.to(memory_format=torch.channels_last)
        self.scale, self.shift = latent_scaling(vae)
        # Read once: diffusers' ``device``/``dtype`` walk the module's parameters on every access (~1 ms each for a
        # small VAE, a measurable share of a 128² live frame); a render never moves its VAE.
        self.device, self.dtype = vae.device, vae.dtype

    @torch.inference_mode()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """float (f, 3, h, w) in [-1, 1] → float32 latents (f, c, h/8, w/8), scaled for the UNet."""
        dev, dt = self.device, self.dtype
        out = []
        for part in images.split(self.chunk):
            enc = self.vae.encode(_fresh(pad_batch(part, self.chunk), dev, dt, self.layout))
            lat = enc.latent_dist.mode() if hasattr(enc, "latent_dist") else enc.latents
            out.append((lat[: len(part)].float() - self.shift) * self.scale)
        return torch.cat(out)

    def encode_frames(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 (f, h, w, 3) frames → float32 scaled latents (f, c, h/8, w/8): where frames become torch."""
        return self.encode(to_unit(torch.from_numpy(frames)))

    def decode_frames(self, latents: torch.Tensor) -> np.ndarray:
        """float32 scaled latents (f, c, h/8, w/8) → uint8 (f, h, w, 3) frames: where they stop being torch."""
        return to_uint8(self.decode(latents)).numpy()

    @torch.inference_mode()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """float32 scaled latents (f, c, h/8, w/8) → float32 images (f, 3, h, w) in about [-1, 1]."""
        dev, dt = self.device, self.dtype
        out = []
        for part in latents.split(self.decode_chunk):
            lat = pad_batch(part / self.scale + self.shift, self.decode_chunk)
            img = self.vae.decode(_fresh(lat, dev, dt, self.layout), return_dict=False)[0]
            out.append(img[: len(part)].float())
        return torch.cat(out)
