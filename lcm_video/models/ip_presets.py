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

    @property
    def fits(self) -> str:
        """The models it is for, as ``lcm-video models`` and the README say it."""
        return self.family or "any (built for the UNet)"


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
            "sdxl",
            H94,
            "sdxl_models",
            "ip-adapter_sdxl.safetensors",
            "sdxl_models/image_encoder",
            "sdxl",
            "IP-Adapter for SDXL: the reference's pooled OpenCLIP ViT-bigG embedding as 4 tokens (InstantStyle's)",
            licence="apache-2.0",
        ),
        IPAdapterPreset(
            "sdxl-vit-h",
            H94,
            "sdxl_models",
            "ip-adapter_sdxl_vit-h.safetensors",
            "models/image_encoder",
            "sdxl",
            "IP-Adapter for SDXL on SD1.5's ViT-H image encoder (0.6B parameters against ViT-bigG's 1.8B)",
            licence="apache-2.0",
        ),
        IPAdapterPreset(
            "sdxl-plus",
            H94,
            "sdxl_models",
            "ip-adapter-plus_sdxl_vit-h.safetensors",
            "models/image_encoder",
            "sdxl",
            "IP-Adapter Plus for SDXL: 16 tokens resampled from ViT-H's patch features, closer to the reference",
            licence="apache-2.0",
        ),
        IPAdapterPreset(
            "tiny",
            "builtin:tiny",
            "",
            "",
            "",
            "",
            "random weights built in code for the UNet it joins (tiny, tiny-lora, tiny-sdxl: plumbing and tests)",
            licence=HERE,
        ),
        IPAdapterPreset(
            "tiny-plus",
            "builtin:tiny-plus",
            "",
            "",
            "",
            "",
            "random IP-Adapter Plus built in code for the UNet it joins",
            licence=HERE,
        ),
    )
}
"""IP-Adapters by name. ``family``: the model family the weights were trained for (``""``: built for any UNet)."""

FAMILY_IP_ADAPTER: dict[str, str] = {"sd15": "sd15", "sdxl": "sdxl"}
"""The IP-Adapter a model of each family takes when neither its preset nor ``--ip-adapter`` names one: SDXL's is
``ip-adapter_sdxl`` (ViT-bigG), the one InstantStyle's style transfer uses."""


def ip_adapter_source(model: str | None, ip_adapter: str | None, family: str | None = None) -> str:
    """The IP-Adapter ``--style-image`` loads with ``model``: ``--ip-adapter`` if given, else the model preset's, else
    its family's; a UserError when none fits, or when ``--ip-adapter`` names one of ``IP_ADAPTERS`` made for another
    family. ``family``: the loaded model's (``Models.family``); before loading, the preset's, and a model that is not
    a preset is taken to be SD1.5-family for its default (and its ``--ip-adapter`` checked once loaded)."""
    preset = PRESETS.get(model or DEFAULT_MODEL)
    family = family or (preset.family if preset is not None else None)
    if ip_adapter:
        _check_family(ip_adapter, family)
        return ip_adapter
    name = preset.ip_adapter if preset is not None and preset.ip_adapter is not None else None
    if name is None:
        name = FAMILY_IP_ADAPTER.get(family or "sd15")
    if not name:
        what = f"model {model!r}" if preset is not None and preset.ip_adapter == "" else f"the {family} family"
        raise UserError(
            f"--style-image: {what} has no IP-Adapter; use a model that has one (e.g. --model sd15-lcm-lora) or give "
            "--ip-adapter FILE"
        )
    return name


def _check_family(source: str, family: str | None) -> None:
    """An adapter of ``IP_ADAPTERS`` made for another family than the model's (None: not known yet): one line, before
    it loads (loaded, its projections would not fit the UNet's attention)."""
    spec = IP_ADAPTERS.get(source)
    if spec is None or not spec.family or family is None or spec.family == family:
        return
    fits = ", ".join(a.name for a in IP_ADAPTERS.values() if a.family in (family, ""))
    raise UserError(f"--ip-adapter {source} is for {spec.family} models, this model is {family}; use one of: {fits}")


_IP_HUB_FILE = re.compile(r"^([A-Za-z0-9][\w.-]*/[\w.-]+)/(.+\.(?:safetensors|bin))$")


def ip_adapter_spec(source: str) -> IPAdapterPreset:
    """Where ``--ip-adapter SOURCE`` is: a name of ``IP_ADAPTERS``; a weights file ``DIR/NAME.safetensors`` (its
    image encoder in ``DIR/image_encoder``, as in ``h94/IP-Adapter/models``); or one file of a hub repository,
    ``org/repo/SUB/NAME.safetensors`` (its encoder in ``SUB/image_encoder``). A file named as one of
    ``IP_ADAPTERS``' in a folder named as its subfolder (a hub file of ``h94/IP-Adapter``, or a local copy of that
    repository) takes that adapter's encoder, from the folder above: ``sdxl_models/ip-adapter_sdxl_vit-h.safetensors``
    pairs with ``models/image_encoder``, as on the hub."""
    if source in IP_ADAPTERS:
        return IP_ADAPTERS[source]
    path = Path(source)
    if path.is_file():
        known = _known_file(path.parent.name, path.name)
        if known is not None:
            return IPAdapterPreset(source, str(path.parent.parent), path.parent.name, path.name, known, "", "")
        return IPAdapterPreset(source, str(path.parent), "", path.name, "image_encoder", "", "")
    hub = _IP_HUB_FILE.match(source)
    if hub is None or path.exists():
        names = ", ".join(IP_ADAPTERS)
        raise UserError(
            f"--ip-adapter {source!r} is not an IP-Adapter name ({names}), a .safetensors/.bin file, or a hub file "
            "like h94/IP-Adapter/models/ip-adapter_sd15.safetensors"
        )
    sub, _, name = hub.group(2).rpartition("/")
    encoder = _known_file(sub, name) or f"{sub}/image_encoder".lstrip("/")
    return IPAdapterPreset(source, hub.group(1), sub, name, encoder, "", "")


def _known_file(subfolder: str, weight_name: str) -> str | None:
    """The image encoder folder of the ``IP_ADAPTERS`` entry stored as ``subfolder/weight_name``, if one is."""
    for a in IP_ADAPTERS.values():
        if (a.subfolder, a.weight_name) == (subfolder, weight_name):
            return a.image_encoder
    return None


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
