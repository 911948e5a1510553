"""The style part of a render: a reference image through an IP-Adapter (``--style-image``). Its own module beside
``parts.py``, declared the same way (a field is the option's declaration). No torch."""

from __future__ import annotations

from dataclasses import dataclass

from ..choices import STYLE_MODES
from ..options import option


@dataclass(frozen=True)
class StyleConfig:
    """A reference image's style or subject through an IP-Adapter (``--style-image``)."""

    style_image: str | None = option(
        None,
        "reference image whose style (or, with --style-mode full, also subject) the frames take, through an IP-Adapter",
        metavar="FILE",
        upload="image",
        doc="a reference image (PNG, JPEG, ...) whose look the frames take, through an IP-Adapter loaded with the "
        "model (`--ip-adapter`); with or instead of the prompt. Its CLIP embedding is computed once per render; the "
        "output's recorded settings name the file and its SHA-256",
    )
    style_scale: float = option(
        1.0,
        "how strongly the style image acts, in [0, 2]",
        lo=0.0,
        hi=2.0,
        hint="; 0.5-1 is typical",
        metavar="S",
        doc="in [0, 2]: the IP-Adapter's weight in the blocks `--style-mode` turns on (0 off; 0.5–1 typical)",
    )
    style_mode: str = option(
        "style",
        "style: only InstantStyle's style block takes the image (its look, not its content); full: every block",
        choices=STYLE_MODES,
        metavar="|".join(STYLE_MODES),
        doc="`style`: InstantStyle's style-only injection, the image acts in one attention block only (the second "
        "transformer of the first up block with attention: SD1.5's `up_blocks.1.attentions.1`, SDXL's "
        "`up_blocks.0.attentions.1`), so colours, materials and strokes carry over but not its objects or layout; "
        "`full`: every block at `--style-scale` (the original IP-Adapter: content too)",
    )
    ip_adapter: str | None = option(
        None,
        "the IP-Adapter: sd15, sd15-plus, sd15-light, sdxl, sdxl-vit-h, sdxl-plus, tiny, a .safetensors file or a hub "
        "file",
        derived="the model preset's, else its family's (SD1.5: sd15; SDXL: sdxl)",
        metavar="NAME",
        doc="the IP-Adapter `--style-image` loads: `sd15` (`h94/IP-Adapter`, `models/ip-adapter_sd15.safetensors`), "
        "`sd15-plus` (`ip-adapter-plus_sd15`), `sd15-light`; for SDXL `sdxl` (`sdxl_models/ip-adapter_sdxl"
        ".safetensors`, its ViT-bigG encoder in `sdxl_models/image_encoder`), `sdxl-vit-h` "
        "(`ip-adapter_sdxl_vit-h`) and `sdxl-plus` (`ip-adapter-plus_sdxl_vit-h`), both on the ViT-H encoder in "
        "`models/image_encoder`; `tiny` (random, for the tiny models); or a file `DIR/NAME.safetensors` with its "
        "CLIP image encoder in `DIR/image_encoder`, or a hub file `org/repo/SUB/NAME.safetensors` (encoder in "
        "`SUB/image_encoder`; `h94/IP-Adapter`'s files, or a copy of that repository, pair as the names above do). "
        "Default: the model preset's, else its family's",
    )
