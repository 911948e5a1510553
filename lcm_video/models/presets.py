"""Named model and motion-module recipes, in one table each. No torch: ``lcm-video models`` prints them at once."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

WEIGHTS = Path(__file__).resolve().parent.parent / "weights"  # small trained models shipped with the package


@dataclass(frozen=True)
class Sampling:
    """How a model samples: its few-step method (``--scheduler``: ``lcm``, ``tcd``, ``ddim-trailing``,
    ``euler-trailing``), settings of that method's diffusers scheduler beyond the method's own (``config``, e.g. PCM's
    ``clip_sample=False``), the steps it was distilled for (``--steps``' default) and TCD's γ / DDIM's η (``--eta``'s
    default; None: the method's own, 0.3 for TCD, 0 for DDIM)."""

    scheduler: str = "lcm"
    steps: int = 4
    eta: float | None = None
    config: tuple[tuple[str, object], ...] = ()

    def describe(self) -> str:
        """``tcd, 4 steps, eta 0.3``: how ``lcm-video models`` and the README say it."""
        steps = f"{self.steps} step{'s' if self.steps != 1 else ''}"
        eta = f", eta {self.eta:g}" if self.eta is not None else ""
        extra = "".join(f", {k}={v}" for k, v in self.config)
        return f"{self.scheduler}, {steps}{eta}{extra}"


LCM = Sampling()
SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"
SD15_LICENCE = "creativeml-openrail-m"
UNSTATED = "not stated on the model card"
UNCHECKED = "see the model card"  # not looked up here
NON_COMMERCIAL = ("-nc", "non-commercial", "noncommercial")


def non_commercial(licence: str) -> bool:
    """Whether a licence forbids commercial use (``cc-by-nc-4.0``, DMD2's, or one that says so)."""
    return any(mark in licence.lower() for mark in NON_COMMERCIAL)


@dataclass(frozen=True)
class ModelPreset:
    """A named model recipe: the weights (``base``: a hub id, ``builtin:*`` for models built in code, or
    ``weights:*`` for weights shipped in the package; ``lora`` entries likewise, ``org/repo/file.safetensors`` for
    one file of a hub repo), how it samples (``sampling``), its guidance, the side it was trained at and its
    licence."""

    name: str
    base: str
    about: str
    guidance: float
    lora: tuple[str, ...] = ()
    vae: str | None = None
    size: int = 512
    """The side in pixels it was trained (or built) for: generate's default width and height, and where stylise says
    that a render size is far from it."""
    controls: tuple[tuple[str, str], ...] | None = None
    """Its ControlNet per ``--control`` type (``builtin:``/``weights:``/hub id); None: SD1.5's (``CONTROL_MODELS``)."""
    sampling: Sampling = LCM
    licence: str = UNCHECKED
    """The weights' licence as their model cards state it (the LoRA's and the base model's where they differ)."""
    family: str = "sd15"
    """The architecture (``FAMILIES``): which pipeline loads it, its text conditioning, its tiny autoencoder and the
    ControlNets and motion adapters that fit it."""
    unet: str | None = None
    """A UNet that replaces the base's: a hub id of a UNet repo (its config and weights at the root, as
    ``latent-consistency/lcm-sdxl``), or ``org/repo/file.safetensors``, a state dict for the base's UNet config
    (SDXL-Lightning's ``*_unet.safetensors``)."""
    fast_vae: str | None = None
    """The tiny autoencoder ``--fast`` takes (``weights:``/hub id/``VAE_ALIASES`` name); None: its family's
    (``TAESD_FOR``)."""
    ip_adapter: str | None = None
    """Its IP-Adapter for ``--style-image``: a name of ``ip_presets.IP_ADAPTERS``; None: its family's
    (``FAMILY_IP_ADAPTER``); ``""``: none fits it."""


FAMILIES = {
    "sd15": "SD1.5-shaped: one CLIP-L text encoder (768-d), 512 px",
    "sd21": "SD2.1-shaped: one OpenCLIP-H text encoder (1024-d), epsilon or v-prediction as its scheduler says",
    "sdxl": "SDXL-shaped: two text encoders (2048-d states) + pooled text and size/crop time ids, 1024 px",
}
"""Model families: ``sd15`` and ``sd21`` load as ``StableDiffusionImg2ImgPipeline``, ``sdxl`` as
``StableDiffusionXLImg2ImgPipeline`` (its conditioning in ``Models.added_conditioning``)."""

SDXL = "stabilityai/stable-diffusion-xl-base-1.0"
SDXL_LICENCE = "openrail++"
SAI_NC = "sai-nc-community (non-commercial; commercial use needs a Stability AI licence)"
TAESD_FOR = {"sd15": "taesd", "sd21": "taesd", "sdxl": "taesdxl"}
"""The tiny autoencoder ``--fast`` takes per family (``VAE_ALIASES``)."""


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
TOY_TAESD = "weights:toy-taesd"  # the toy's TAESD, distilled here from its autoencoder (benchmarks.train_toy taesd)
HERE = "Apache-2.0 (made here, lcm_video's own)"

PRESETS: dict[str, ModelPreset] = {
    p.name: p
    for p in (
        ModelPreset(
            "lcm-dreamshaper-v7",
            "SimianLuo/LCM_Dreamshaper_v7",
            "LCM-distilled Dreamshaper v7 (SD1.5); guidance through a w-embedding, no negative prompt",
            guidance=8.0,
            licence="mit",
        ),
        ModelPreset(
            "sd15-lcm-lora",
            SD15,
            "SD1.5 with LCM-LoRA; guidance 1-2 (above 1 runs classifier-free guidance)",
            guidance=1.0,
            lora=("latent-consistency/lcm-lora-sdv1-5",),
            licence=f"LoRA openrail++; SD1.5 {SD15_LICENCE}",
        ),
        ModelPreset(
            "tcd-sd15",
            SD15,
            "SD1.5 with the TCD LoRA (Trajectory Consistency Distillation): 4-8 steps, --eta (gamma) 0.3, higher "
            "with more steps; no classifier-free guidance",
            guidance=0.0,
            lora=("h1t/TCD-SD15-LoRA",),
            sampling=Sampling("tcd", 4, 0.3),
            licence=f"LoRA mit; SD1.5 {SD15_LICENCE}",
        ),
        ModelPreset(
            "hyper-sd15-1step",
            SD15,
            "SD1.5 with Hyper-SD's 1-step unified LoRA, run with TCD: 1 step, or more (raise --steps, lower --eta for "
            "detail); stylise runs int(steps x strength) of them, so give --strength 1 or --steps 2 and up",
            guidance=0.0,
            lora=("ByteDance/Hyper-SD/Hyper-SD15-1step-lora.safetensors",),
            sampling=Sampling("tcd", 1, 1.0),
            licence=f"LoRA openrail++; SD1.5 {SD15_LICENCE}",
        ),
        *(
            ModelPreset(
                f"hyper-sd15-{n}step",
                SD15,
                f"SD1.5 with Hyper-SD's {n}-step LoRA (trajectory-segmented consistency), DDIM with trailing timesteps",
                guidance=0.0,
                lora=(f"ByteDance/Hyper-SD/Hyper-SD15-{n}steps-lora.safetensors",),
                sampling=Sampling("ddim-trailing", n),
                licence=f"LoRA openrail++; SD1.5 {SD15_LICENCE}",
            )
            for n in (2, 4, 8)
        ),
        *(
            ModelPreset(
                f"pcm-sd15-{n}step",
                SD15,
                f"SD1.5 with PCM's {n}-step LoRA (phased consistency, small-CFG variant), DDIM with trailing timesteps "
                "and no clipping (not the LCM scheduler)",
                guidance=1.0,
                lora=(f"wangfuyun/PCM_Weights/sd15/pcm_sd15_smallcfg_{n}step_converted.safetensors",),
                sampling=Sampling("ddim-trailing", n, config=(("clip_sample", False),)),
                licence=f"LoRA {UNSTATED}; SD1.5 {SD15_LICENCE}",
            )
            for n in (2, 4, 8)
        ),
        ModelPreset(
            "lcm-lora-sdxl",
            SDXL,
            "SDXL base with LCM-LoRA-SDXL; guidance 1-2 (above 1 runs classifier-free guidance); 1024 px",
            guidance=1.0,
            lora=("latent-consistency/lcm-lora-sdxl",),
            size=1024,
            controls=(),
            licence=SDXL_LICENCE,
            family="sdxl",
        ),
        ModelPreset(
            "lcm-sdxl",
            SDXL,
            "SDXL base with the LCM-distilled SDXL UNet (latent-consistency/lcm-sdxl); guidance through a "
            "w-embedding; 1024 px",
            guidance=8.0,
            unet="latent-consistency/lcm-sdxl",
            size=1024,
            controls=(),
            licence=SDXL_LICENCE,
            family="sdxl",
        ),
        ModelPreset(
            "sdxl-turbo",
            "stabilityai/sdxl-turbo",
            "SDXL-Turbo (adversarial diffusion distillation): 1 step, no guidance, 512 px; stylise runs "
            "int(steps x strength) steps, so give --steps 2 at --strength 0.5",
            guidance=0.0,
            size=512,
            controls=(),
            sampling=Sampling("euler-trailing", 1),
            licence=SAI_NC,
            family="sdxl",
        ),
        ModelPreset(
            "sdxl-lightning-1step",
            SDXL,
            "SDXL-Lightning's 1-step UNet (x0 prediction, experimental per its card), Euler with trailing "
            "timesteps; 1024 px",
            guidance=0.0,
            unet="ByteDance/SDXL-Lightning/sdxl_lightning_1step_unet_x0.safetensors",
            size=1024,
            controls=(),
            sampling=Sampling("euler-trailing", 1, config=(("prediction_type", "sample"),)),
            licence=SDXL_LICENCE,
            family="sdxl",
        ),
        *(
            ModelPreset(
                f"sdxl-lightning-{n}step",
                SDXL,
                f"SDXL base with SDXL-Lightning's {n}-step LoRA (progressive adversarial distillation), Euler with "
                "trailing timesteps; 1024 px",
                guidance=0.0,
                lora=(f"ByteDance/SDXL-Lightning/sdxl_lightning_{n}step_lora.safetensors",),
                size=1024,
                controls=(),
                sampling=Sampling("euler-trailing", n),
                licence=SDXL_LICENCE,
                family="sdxl",
            )
            for n in (2, 4, 8)
        ),
        ModelPreset(
            "sd-turbo",
            "stabilityai/sd-turbo",
            "SD-Turbo (SD2.1-shaped, adversarial diffusion distillation): 1 step, no guidance, 512 px; stylise "
            "runs int(steps x strength) steps, so give --steps 2 at --strength 0.5",
            guidance=0.0,
            controls=(),
            sampling=Sampling("euler-trailing", 1),
            licence=SAI_NC,
            family="sd21",
        ),
        ModelPreset(
            "tiny",
            "builtin:tiny",
            "random weights built in code (LCM w-embedding UNet); abstract output, runs anywhere in seconds",
            guidance=2.0,
            size=64,
            controls=TINY_CONTROLS,
            licence=HERE,
            ip_adapter="tiny",
        ),
        ModelPreset(
            "tiny-lora",
            "builtin:tiny-lora",
            "random weights built in code, no w-embedding: LCM-LoRA style, guidance > 1 runs CFG",
            guidance=1.5,
            size=64,
            controls=TINY_CONTROLS,
            licence=HERE,
            ip_adapter="tiny",
        ),
        ModelPreset(
            "tiny-sdxl",
            "builtin:tiny-sdxl",
            "random weights built in code with SDXL's shapes (two text encoders, pooled text, size/crop time ids), "
            "no w-embedding: guidance > 1 runs CFG",
            guidance=1.5,
            size=64,
            controls=(),
            licence=HERE,
            family="sdxl",
            ip_adapter="tiny",
        ),
        ModelPreset(
            "toy-teacher",
            "weights:toy-teacher",
            "the toy world's latent diffusion model, trained here (shapes and textures; DDPM, 25-50 steps)",
            guidance=5.0,
            size=128,
            controls=TOY_CONTROLS,
            licence=HERE,
            fast_vae=TOY_TAESD,
            ip_adapter="",
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
            licence=HERE,
            fast_vae=TOY_TAESD,
            ip_adapter="",
        ),
    )
}


@dataclass(frozen=True)
class MotionPreset:
    """A named motion module recipe: the adapter (a hub id, or ``org/repo/file.safetensors`` for a single-file state
    dict), the LoRAs it needs, scheduler overrides (its beta schedule), a base model that suits it when ``--model`` is
    not given, how it samples (None: as the model does) and its licence."""

    name: str
    adapter: str
    about: str
    base: str
    lora: tuple[str, ...] = ()
    scheduler: tuple[tuple[str, object], ...] = ()
    guidance: float | None = None
    sampling: Sampling | None = None
    licence: str = UNCHECKED


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
        *(
            MotionPreset(
                f"animatediff-lightning-{n}step",
                f"ByteDance/AnimateDiff-Lightning/animatediff_lightning_{n}step_diffusers.safetensors",
                f"AnimateDiff-Lightning {n}-step motion adapter (cross-model distillation), Euler with trailing "
                "timesteps, linear betas",
                base="emilianJR/epiCRealism",
                scheduler=(("beta_schedule", "linear"),),
                guidance=1.0,
                sampling=Sampling("euler-trailing", n),
                licence="creativeml-openrail-m",
            )
            for n in (1, 2, 4, 8)
        ),
        MotionPreset(
            "animatediff-sdxl-beta",
            "guoyww/animatediff-motion-adapter-sdxl-beta",
            "AnimateDiff's SDXL motion adapter (beta), on SDXL with LCM-LoRA-SDXL; linear beta schedule; 1024 px",
            base="lcm-lora-sdxl",
            scheduler=(("beta_schedule", "linear"),),
            guidance=1.0,
            licence="apache-2.0",
        ),
        MotionPreset(
            "tiny", "builtin:tiny", "random-weight motion adapter that fits the tiny models", base="tiny", licence=HERE
        ),
        *(
            MotionPreset(f"toy-motion{end}", f"weights:toy-motion{end}", about, base=base, licence=HERE)
            for end, base, about in (
                (
                    "-teacher",
                    "toy-teacher",
                    "toy motion module trained here (64 px clips; its words and LoRA beside it)",
                ),
                ("", "toy", "toy-motion-teacher distilled here to 4 steps for the toy (distill --motion-adapter)"),
            )
        ),
    )
}


def motion_preset(name: str | None) -> MotionPreset | None:
    """The motion preset called ``name``, or whose adapter is the hub id ``name`` (so ``wangfuyun/AnimateLCM`` gets
    AnimateLCM's LoRA and scheduler settings too)."""
    if not name:
        return None
    return MOTION_PRESETS.get(name) or next((p for p in MOTION_PRESETS.values() if p.adapter == name), None)


def preset_sampling(model: str | None, motion: str | None = None) -> Sampling:
    """How ``model`` with the motion adapter ``motion`` samples by default: the motion preset's method where it names
    one (a distilled motion module, e.g. AnimateDiff-Lightning, is run as it was distilled), else the model preset's,
    else LCM at 4 steps (a model that is not a preset is taken to be an LCM)."""
    mpreset = motion_preset(motion)
    if mpreset is not None and mpreset.sampling is not None:
        return mpreset.sampling
    preset = PRESETS.get(model or DEFAULT_MODEL)
    return preset.sampling if preset is not None else LCM


def sampling_for(base: Sampling, scheduler: str | None, steps: int | None, eta: float | None) -> Sampling:
    """``base`` (a preset's) with the render's ``--scheduler``, ``--steps`` and ``--eta`` over it. Another method than
    the preset's keeps the preset's steps and settings but not its eta."""
    method = scheduler or base.scheduler
    kept_eta = base.eta if method == base.scheduler else None
    return Sampling(method, steps or base.steps, eta if eta is not None else kept_eta, base.config)


def native_side(model: str | None) -> int | None:
    """The side in pixels ``model`` was trained at: a preset's ``size``; for a local diffusers folder its UNet's
    ``sample_size`` × 8 (the VAE's factor for every SD-family model); None when unknown (a hub id that is not a
    preset, a single file) or meaningless (the random ``builtin:`` presets)."""
    import json

    preset = PRESETS.get(model or DEFAULT_MODEL)
    if preset is not None:  # random weights built in code draw nothing better at one size than another
        return None if preset.base.startswith("builtin:") else preset.size
    config = Path(model) / "unet" / "config.json"
    try:
        sample_size = json.loads(config.read_text()).get("sample_size")
    except (OSError, ValueError):
        return None
    return int(sample_size) * 8 if isinstance(sample_size, int) else None


VAE_ALIASES = {
    "taesd": "madebyollin/taesd",
    "taesdxl": "madebyollin/taesdxl",
    "sdxl-vae-fp16-fix": "madebyollin/sdxl-vae-fp16-fix",
}


def model_family(model: str | None) -> str | None:
    """A preset's family; None for anything else (known once loaded: ``Models.family``)."""
    preset = PRESETS.get(model or DEFAULT_MODEL)
    return preset.family if preset is not None else None


DEFAULT_MODEL = "lcm-dreamshaper-v7"
DEFAULT_MOTION = "animatelcm"
DEFAULT_SDXL_MOTION = "animatediff-sdxl-beta"
TINY_MODELS = tuple(name for name, p in PRESETS.items() if p.base.startswith("builtin:"))
SMALL_MODELS = TINY_MODELS + tuple(name for name, p in PRESETS.items() if p.base.startswith("weights:"))
"""Models built or trained here, small: the tiny ones pair with the ``tiny`` motion adapter (built to fit them), the
toy ones with their trained motion modules (``TOY_MOTION``)."""
TOY_MOTION = {"toy": "toy-motion", "toy-teacher": "toy-motion-teacher"}  # trained here, shipped in weights/


def default_motion(model: str | None) -> str:
    """The motion adapter generate pairs with ``model`` when none is given: the toy models' own trained modules,
    ``tiny`` (built to fit them) for the other models built here, AnimateDiff's SDXL adapter for an SDXL preset, else
    AnimateLCM."""
    name = model or DEFAULT_MODEL
    if name in TOY_MOTION:
        return TOY_MOTION[name]
    if name in SMALL_MODELS:
        return "tiny"
    return DEFAULT_SDXL_MOTION if model_family(model) == "sdxl" else DEFAULT_MOTION


def control_source(model: str | None, kind: str, overrides: dict[str, str]) -> str:
    """The ControlNet for ``--control KIND`` with ``--model MODEL``: ``--control-model KIND=ID`` if given, else the
    model preset's, else SD1.5's (a model that is not a preset is taken to be SD1.5-family)."""
    if kind in overrides:
        return overrides[kind]
    preset = PRESETS.get(model or DEFAULT_MODEL)
    if preset is None or preset.controls is None:
        return CONTROL_MODELS[kind]
    found = dict(preset.controls).get(kind)
    if found is None and not preset.controls:
        raise UserError(
            f"--control {kind}: model {model!r} ({preset.family}) has no ControlNet preset (SD1.5's do not fit it); "
            f"give --control-model {kind}=ID with a ControlNet made for it"
        )
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
