"""The IP-Adapters ``--style-image`` can load, in one table, which one a model takes (by its preset, else its
family), and the style image's own check. No torch: the settings check them before anything loads."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from .presets import DEFAULT_MODEL, HERE, PRESETS, UNCHECKED


@dataclass(frozen=True)
class IPAdapterPreset:
    """An IP-Adapter (a reference image's CLIP embedding as extra cross-attention tokens, ``--style-image``) as
    diffusers' ``load_ip_adapter`` takes it: the repository (``builtin:tiny``: random weights built in code), the
    folder and file of the adapter's weights, and the folder of its CLIP image encoder, relative to the repository."""

    name: str
    repo: str
    subfolder: str
    weight_name: str
    image_encoder: str
    family: str
    about: str
    licence: str = UNCHECKED


H94 = "h94/IP-Adapter"
IP_ADAPTERS: dict[str, IPAdapterPreset] = {
    p.name: p
    for p in (
        IPAdapterPreset(
            "sd15",
            H94,
            "models",
            "ip-adapter_sd15.safetensors",
            "models/image_encoder",
            "sd15",
            "IP-Adapter for SD1.5: the reference's pooled CLIP ViT-H embedding as 4 tokens",
            licence="apache-2.0",
        ),
        IPAdapterPreset(
            "sd15-plus",
            H94,
            "models",
            "ip-adapter-plus_sd15.safetensors",
            "models/image_encoder",
            "sd15",
            "IP-Adapter Plus for SD1.5: 16 tokens resampled from the CLIP patch features, closer to the reference",
            licence="apache-2.0",
        ),
        IPAdapterPreset(
            "sd15-light",
            H94,
            "models",
            "ip-adapter_sd15_light.safetensors",
            "models/image_encoder",
            "sd15",
            "IP-Adapter Light for SD1.5: weaker, the prompt keeps more say",
            licence="apache-2.0",
        ),
        IPAdapterPreset(
            "tiny",
            "builtin:tiny",
            "",
            "",
            "",
            "sd15",
            "random weights built in code, fitting the tiny models (plumbing and tests)",
            licence=HERE,
        ),
        IPAdapterPreset(
            "tiny-plus",
            "builtin:tiny-plus",
            "",
            "",
            "",
            "sd15",
            "random IP-Adapter Plus built in code, fitting the tiny models",
            licence=HERE,
        ),
    )
}
"""IP-Adapters by name. An SDXL family adds its own (``h94/IP-Adapter``, ``sdxl_models``,
``ip-adapter_sdxl.safetensors``, its encoder ``sdxl_models/image_encoder``) and names it in ``FAMILY_IP_ADAPTER``."""

FAMILY_IP_ADAPTER: dict[str, str] = {"sd15": "sd15"}
"""The IP-Adapter a model of each family takes when neither its preset nor ``--ip-adapter`` names one."""


def ip_adapter_source(model: str | None, ip_adapter: str | None) -> str:
    """The IP-Adapter ``--style-image`` loads with ``model``: ``--ip-adapter`` if given, else the model preset's, else
    its family's (a model that is not a preset is taken to be SD1.5-family); a UserError when none fits."""
    if ip_adapter:
        return ip_adapter
    preset = PRESETS.get(model or DEFAULT_MODEL)
    family = preset.family if preset is not None else "sd15"
    name = preset.ip_adapter if preset is not None and preset.ip_adapter is not None else FAMILY_IP_ADAPTER.get(family)
    if not name:
        what = f"model {model!r}" if preset is not None and preset.ip_adapter == "" else f"the {family} family"
        raise UserError(
            f"--style-image: {what} has no IP-Adapter; use a model that has one (e.g. --model sd15-lcm-lora) or give "
            "--ip-adapter FILE"
        )
    return name


_IP_HUB_FILE = re.compile(r"^([A-Za-z0-9][\w.-]*/[\w.-]+)/(.+\.(?:safetensors|bin))$")


def ip_adapter_spec(source: str) -> IPAdapterPreset:
    """Where ``--ip-adapter SOURCE`` is: a name of ``IP_ADAPTERS``; a weights file ``DIR/NAME.safetensors`` (its
    image encoder in ``DIR/image_encoder``, as in ``h94/IP-Adapter/models``); or one file of a hub repository,
    ``org/repo/SUB/NAME.safetensors`` (its encoder in ``SUB/image_encoder``)."""
    if source in IP_ADAPTERS:
        return IP_ADAPTERS[source]
    path = Path(source)
    if path.is_file():
        return IPAdapterPreset(source, str(path.parent), "", path.name, "image_encoder", "", "")
    hub = _IP_HUB_FILE.match(source)
    if hub is None or path.exists():
        names = ", ".join(IP_ADAPTERS)
        raise UserError(
            f"--ip-adapter {source!r} is not an IP-Adapter name ({names}), a .safetensors/.bin file, or a hub file "
            "like h94/IP-Adapter/models/ip-adapter_sd15.safetensors"
        )
    sub, _, name = hub.group(2).rpartition("/")
    return IPAdapterPreset(source, hub.group(1), sub, name, f"{sub}/image_encoder".lstrip("/"), "", "")


def check_style_image(path: str) -> None:
    """A ``--style-image`` that is missing or not an image: a one-line UserError, before anything is loaded or
    written (PIL reads the header only)."""
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise UserError(f"--style-image {path!r} not found; check the path (an image file: PNG, JPEG, WebP, ...)")
    try:
        with Image.open(p) as im:
            im.verify()
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        raise UserError(
            f"--style-image {path!r} is not a readable image ({type(exc).__name__}); give a PNG or JPEG"
        ) from None
