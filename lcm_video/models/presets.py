"""Named model and motion-module recipes, in one table each. No torch: ``lcm-video models`` prints them at once."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

WEIGHTS = Path(__file__).resolve().parent.parent / "weights"  # small trained models shipped with the package


@dataclass(frozen=True)
class ModelPreset:
    """A named model recipe. ``base`` is a hub id, ``builtin:*`` for models built in code, or ``weights:*`` for
    weights shipped in the package (``lora`` entries too)."""

    name: str
    base: str
    about: str
    guidance: float
    lora: tuple[str, ...] = ()
    vae: str | None = None
    size: int = 512
    """The side in pixels it was trained (or built) for: generate's default width and height."""
    controls: tuple[tuple[str, str], ...] | None = None
    """Its ControlNet per ``--control`` type (``builtin:``/``weights:``/hub id); None: SD1.5's (``CONTROL_MODELS``)."""


CONTROL_MODELS: dict[str, str] = {
    "canny": "lllyasviel/control_v11p_sd15_canny",
    "tile": "lllyasviel/control_v11f1e_sd15_tile",
    "depth": "lllyasviel/control_v11f1p_sd15_depth",
    "softedge": "lllyasviel/control_v11p_sd15_softedge",
    "lineart": "lllyasviel/control_v11p_sd15_lineart",
    "openpose": "lllyasviel/control_v11p_sd15_openpose",
}
"""SD1.5's ControlNet v1.1 per ``--control`` type: what an SD1.5-family model (every hub preset) uses."""
TINY_CONTROLS = tuple((t, "builtin:tiny") for t in CONTROL_MODELS)  # random weights, one per type, for plumbing
TOY_CONTROLS = (("canny", "weights:toy-canny"),)  # trained here (benchmarks.train_control)

PRESETS: dict[str, ModelPreset] = {
    p.name: p
    for p in (
        ModelPreset(
            "lcm-dreamshaper-v7",
            "SimianLuo/LCM_Dreamshaper_v7",
            "LCM-distilled Dreamshaper v7 (SD1.5); guidance through a w-embedding, no negative prompt",
            guidance=8.0,
        ),
        ModelPreset(
            "sd15-lcm-lora",
            "stable-diffusion-v1-5/stable-diffusion-v1-5",
            "SD1.5 with LCM-LoRA; guidance 1-2 (above 1 runs classifier-free guidance)",
            guidance=1.0,
            lora=("latent-consistency/lcm-lora-sdv1-5",),
        ),
        ModelPreset(
            "tiny",
            "builtin:tiny",
            "random weights built in code (LCM w-embedding UNet); abstract output, runs anywhere in seconds",
            guidance=2.0,
            size=64,
            controls=TINY_CONTROLS,
        ),
        ModelPreset(
            "tiny-lora",
            "builtin:tiny-lora",
            "random weights built in code, no w-embedding: LCM-LoRA style, guidance > 1 runs CFG",
            guidance=1.5,
            size=64,
            controls=TINY_CONTROLS,
        ),
        ModelPreset(
            "toy-teacher",
            "weights:toy-teacher",
            "the toy world's latent diffusion model, trained here (shapes and textures; DDPM, 25-50 steps)",
            guidance=5.0,
            size=128,
            controls=TOY_CONTROLS,
        ),
        ModelPreset(
            "toy",
            "weights:toy-teacher",
            "toy-teacher distilled into an LCM-LoRA here (lcm-video distill): 1-4 steps, prompts like "
            "'a red circle on a blue background'",
            guidance=1.0,
            lora=("weights:toy/pytorch_lora_weights.safetensors",),
            size=128,
            controls=TOY_CONTROLS,
        ),
    )
}


@dataclass(frozen=True)
class MotionPreset:
    """A named motion module recipe: the adapter, the LoRAs it needs, scheduler overrides, and a base model that
    suits it when ``--model`` is not given."""

    name: str
    adapter: str
    about: str
    base: str
    lora: tuple[str, ...] = ()
    scheduler: tuple[tuple[str, object], ...] = ()
    guidance: float | None = None


MOTION_PRESETS: dict[str, MotionPreset] = {
    p.name: p
    for p in (
        MotionPreset(
            "animatelcm",
            "wangfuyun/AnimateLCM",
            "AnimateLCM motion module with its LCM LoRA (0.8); linear beta schedule",
            base="emilianJR/epiCRealism",
            lora=("wangfuyun/AnimateLCM/AnimateLCM_sd15_t2v_lora.safetensors:0.8",),
            scheduler=(("beta_schedule", "linear"),),
            guidance=1.5,
        ),
        MotionPreset(
            "animatediff-v1-5-2",
            "guoyww/animatediff-motion-adapter-v1-5-2",
            "AnimateDiff v1-5-2 motion adapter with LCM-LoRA",
            base="stable-diffusion-v1-5/stable-diffusion-v1-5",
            lora=("latent-consistency/lcm-lora-sdv1-5",),
            guidance=1.5,
        ),
        MotionPreset("tiny", "builtin:tiny", "random-weight motion adapter that fits the tiny models", base="tiny"),
    )
}


def motion_preset(name: str | None) -> MotionPreset | None:
    """The motion preset called ``name``, or whose adapter is the hub id ``name`` (so ``wangfuyun/AnimateLCM`` gets
    AnimateLCM's LoRA and scheduler settings too)."""
    if not name:
        return None
    return MOTION_PRESETS.get(name) or next((p for p in MOTION_PRESETS.values() if p.adapter == name), None)


VAE_ALIASES = {"taesd": "madebyollin/taesd"}

DEFAULT_MODEL = "lcm-dreamshaper-v7"
DEFAULT_MOTION = "animatelcm"
TINY_MODELS = tuple(name for name, p in PRESETS.items() if p.base.startswith("builtin:"))
SMALL_MODELS = TINY_MODELS + tuple(name for name, p in PRESETS.items() if p.base.startswith("weights:"))
"""Models built or trained here, small, which pair with the ``tiny`` motion adapter (built to fit them)."""


def default_motion(model: str | None) -> str:
    """The motion adapter generate pairs with ``model`` when none is given: ``tiny`` (built to fit them) for the
    models built or trained here, else AnimateLCM."""
    return "tiny" if (model or DEFAULT_MODEL) in SMALL_MODELS else DEFAULT_MOTION


def control_source(model: str | None, kind: str, overrides: dict[str, str]) -> str:
    """The ControlNet for ``--control KIND`` with ``--model MODEL``: ``--control-model KIND=ID`` if given, else the
    model preset's, else SD1.5's (a model that is not a preset is taken to be SD1.5-family)."""
    if kind in overrides:
        return overrides[kind]
    preset = PRESETS.get(model or DEFAULT_MODEL)
    if preset is None or preset.controls is None:
        return CONTROL_MODELS[kind]
    found = dict(preset.controls).get(kind)
    if found is None:
        have = ", ".join(dict(preset.controls))
        raise UserError(
            f"--control {kind}: model {model!r} has a ControlNet for {have} only; give --control-model {kind}=ID"
        )
    return found


def preset_path(source: str) -> str:
    """``weights:NAME`` → the path of weights shipped in the package; any other source unchanged."""
    return str(WEIGHTS / source.removeprefix("weights:")) if source.startswith("weights:") else source


def parse_lora(spec: str) -> tuple[str, float]:
    """``"path_or_id[:scale]"`` → (source, scale). The scale defaults to 1."""
    src, sep, tail = spec.rpartition(":")
    if sep and src and re.fullmatch(r"-?\d+(\.\d*)?|-?\.\d+", tail):
        return src, float(tail)
    return spec, 1.0
