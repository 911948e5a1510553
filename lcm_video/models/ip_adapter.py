"""IP-Adapter for ``--style-image``: loading an adapter and its CLIP image encoder into a pipeline (diffusers'
``load_ip_adapter``, the same files a real download holds), its per-block scales (InstantStyle's style-only mode or
every block), and a reference image's embedding, computed once by diffusers' own ``prepare_ip_adapter_image_embeds``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import UserError
from .hub import explain_load_errors
from .ip_presets import check_style_image, ip_adapter_spec


def load_ip_adapter(pipe, source: str) -> None:
    """Load the IP-Adapter ``source`` (see ``ip_adapter_spec``) and its image encoder into ``pipe`` (an SD img2img or
    AnimateDiff pipeline) on its device and dtype, through diffusers' ``load_ip_adapter``. A file that is not an
    IP-Adapter, or one that does not fit the UNet, is a one-line UserError."""
    from .tiny import tiny_image_encoder, tiny_ip_adapter

    spec = ip_adapter_spec(source)
    unet = pipe.unet
    device, dtype = unet.device, unet.dtype
    with explain_load_errors("IP-Adapter", spec.repo if spec.repo.startswith("builtin:") else source):
        if spec.repo.startswith("builtin:"):
            encoder = tiny_image_encoder().to(device, dtype)
            pipe.register_modules(image_encoder=encoder)
            state = tiny_ip_adapter(unet, encoder, plus=spec.repo == "builtin:tiny-plus")
            pipe.load_ip_adapter(state, subfolder="", weight_name="", image_encoder_folder=None)
        else:
            pipe.load_ip_adapter(
                spec.repo,
                subfolder=spec.subfolder,
                weight_name=spec.weight_name,
                image_encoder_folder=spec.image_encoder,
            )
    _check_fits(pipe, source)
    pipe.image_encoder.to(device, dtype)
    pipe.unet.encoder_hid_proj.to(device, dtype)
    for proc in pipe.unet.attn_processors.values():
        if hasattr(proc, "to_k_ip"):
            proc.to(device, dtype)


def _check_fits(pipe, source: str) -> None:
    """The image encoder's embedding width against what the adapter's projection takes (a mismatch otherwise shows
    only at the first UNet call, as a matrix-shape error)."""
    proj = pipe.unet.encoder_hid_proj.image_projection_layers[0]
    wanted = proj.image_embeds.in_features if hasattr(proj, "image_embeds") else proj.proj_in.in_features
    enc = pipe.image_encoder.config
    given = enc.projection_dim if hasattr(proj, "image_embeds") else enc.hidden_size
    if wanted != given:
        unload_ip_adapter(pipe)
        raise UserError(
            f"--ip-adapter {source!r} takes {wanted}-wide image embeddings but its image encoder gives {given}; "
            "use the encoder it was trained with (image_encoder beside the weights)"
        )


def unload_ip_adapter(pipe) -> None:
    """Remove a loaded IP-Adapter (the UNet's plain attention back, the image encoder dropped)."""
    pipe.unload_ip_adapter()


def style_scales(unet, scale: float, mode: str) -> float | dict:
    """The IP-Adapter scale ``set_ip_adapter_scale`` takes for ``--style-mode``.

    ``full``: ``scale`` in every attention block (the original IP-Adapter). ``style``: InstantStyle's style-only
    injection: only the second transformer of the first up block that has attention, every other block 0. On SDXL that
    is ``{"up": {"block_0": [0.0, S, 0.0]}}`` (InstantStyle's ``up_blocks.0.attentions.1``); SD1.5's first up block has
    no attention, so there it is ``{"up": {"block_1": [0.0, S, 0.0]}}`` (``up_blocks.1.attentions.1``, the same place
    at the lowest resolution with attention). Derived from the UNet's blocks, so every family follows."""
    if mode == "full":
        return float(scale)
    block = next(i for i, b in enumerate(unet.up_blocks) if hasattr(b, "attentions"))
    layers = len(unet.up_blocks[block].attentions)
    scales = [0.0] * layers
    scales[min(1, layers - 1)] = float(scale)
    return {"up": {f"block_{block}": scales}}


@dataclass(frozen=True)
class StyleImage:
    """A reference image read once: ``pixels`` (h, w, 3) uint8, its path and the SHA-256 of the file's bytes (the
    settings record names both)."""

    path: str
    sha256: str
    pixels: object  # numpy (h, w, 3) uint8


def read_style_image(path: str) -> StyleImage:
    """The image of ``--style-image`` as RGB; a missing or unreadable file is a one-line UserError."""
    import numpy as np
    from PIL import Image

    check_style_image(path)  # the one-line errors of a missing or unreadable file
    p = Path(path)
    data = p.read_bytes()
    try:
        with Image.open(p) as im:
            pixels = np.asarray(im.convert("RGB"))
    except OSError as exc:  # a header that reads but pixels that do not (a truncated file)
        raise UserError(f"--style-image {path!r} cannot be decoded ({exc}); give a PNG or JPEG") from None
    return StyleImage(str(p), hashlib.sha256(data).hexdigest(), pixels)


def image_embeds(pipe, image: StyleImage, guidance: bool) -> list[torch.Tensor]:
    """The reference's embedding per loaded IP-Adapter, by diffusers' ``prepare_ip_adapter_image_embeds``: (1, 1, D)
    (pooled; IP-Adapter Plus: (1, 1, 257, H) patch features), or with ``guidance`` (classifier-free guidance) (2, ...)
    with the negative first (zeros; Plus: the features of a black image), as diffusers' pipelines pass them."""
    from PIL import Image

    with torch.inference_mode():
        return pipe.prepare_ip_adapter_image_embeds(Image.fromarray(image.pixels), None, pipe.unet.device, 1, guidance)
