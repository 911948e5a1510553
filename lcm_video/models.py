"""Model presets, tiny random-weight models built in code, and the one loading path for real weights.

Hub ids, local diffusers directories and single checkpoint files all end up in a diffusers
``StableDiffusionImg2ImgPipeline`` used as a container: its ``encode_prompt``, ``get_guidance_scale_embedding``
and LoRA loader are diffusers' own, so the text side of a render is exactly what diffusers does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from diffusers import (
    AnimateDiffPipeline,
    AutoencoderKL,
    AutoencoderTiny,
    LCMScheduler,
    MotionAdapter,
    StableDiffusionImg2ImgPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from .denoiser import PromptSchedule
from .errors import UserError


@dataclass(frozen=True)
class ModelPreset:
    """A named model recipe. ``base`` is a hub id, or ``builtin:*`` for models built in code."""

    name: str
    base: str
    about: str
    guidance: float
    lora: tuple[str, ...] = ()
    vae: str | None = None


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
        ),
        ModelPreset(
            "tiny-lora",
            "builtin:tiny-lora",
            "random weights built in code, no w-embedding: LCM-LoRA style, guidance > 1 runs CFG",
            guidance=1.5,
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
DEFAULT_MOTION = "animatelcm"


def motion_preset(name: str | None) -> MotionPreset | None:
    """The motion preset called ``name``, or whose adapter is the hub id ``name`` (so ``wangfuyun/AnimateLCM`` gets
    AnimateLCM's LoRA and scheduler settings too)."""
    if not name:
        return None
    return MOTION_PRESETS.get(name) or next((p for p in MOTION_PRESETS.values() if p.adapter == name), None)


TRAINED_CONTEXT = 16  # AnimateDiff-family motion modules are trained on 16-frame clips

VAE_ALIASES = {"taesd": "madebyollin/taesd"}

DEFAULT_MODEL = "lcm-dreamshaper-v7"
TINY_MODELS = tuple(name for name, p in PRESETS.items() if p.base.startswith("builtin:"))

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_WEIGHT_FILE = (".safetensors", ".ckpt", ".pt", ".bin")


def _check_exists_if_file(option: str, source: str) -> None:
    """A name ending in a weights extension is a file path, never a hub id: say so if it is missing."""
    if source.endswith(_WEIGHT_FILE) and not Path(source).exists():
        raise UserError(f"{option} file {source!r} does not exist; check the path")


# --------------------------------------------------------------------------------------------------------------------
# Tiny models: the shapes of SD1.5's parts (4 latent channels, 8x VAE, cross-attention on CLIP states), tiny widths.


def tiny_tokenizer() -> CLIPTokenizer:
    """A byte-level CLIP tokenizer with a 514-entry vocabulary and no merges: works offline, no files."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = [], 0
    for b in range(256):  # CLIP's byte → unicode table: printable bytes map to themselves, the rest above 255
        if b in printable:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    chars.sort(key=lambda c: ord(c))
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": 256 + i for i, c in enumerate(chars)})
    vocab.update({"<|startoftext|>": 512, "<|endoftext|>": 513})
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def tiny_components(seed: int = 0, guidance_embedding: bool = True) -> dict:
    """Random-weight UNet, VAE, text encoder, tokenizer and LCM scheduler; the same weights for the same seed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=8,
            in_channels=4,
            out_channels=4,
            block_out_channels=(32, 64),
            layers_per_block=1,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=32,
            attention_head_dim=8,
            norm_num_groups=8,
            time_cond_proj_dim=32 if guidance_embedding else None,
        )
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            block_out_channels=(8, 16, 16, 16),
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            latent_channels=4,
            layers_per_block=1,
            norm_num_groups=8,
            sample_size=64,
        )
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=514,
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                max_position_embeddings=77,
                bos_token_id=512,
                eos_token_id=513,
                pad_token_id=513,
                projection_dim=32,
            )
        )
    for m in (unet, vae, text_encoder):
        m.eval()
    return {
        "unet": unet,
        "vae": vae,
        "text_encoder": text_encoder,
        "tokenizer": tiny_tokenizer(),
        "scheduler": LCMScheduler(steps_offset=1),  # 1 is what SD pipelines expect; LCM timesteps ignore it
    }


def tiny_taesd(seed: int = 0) -> AutoencoderTiny:
    """A random-weight ``AutoencoderTiny`` with TAESD's 8x layout and tiny widths."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vae = AutoencoderTiny(
            encoder_block_out_channels=(8, 8, 8, 8),
            decoder_block_out_channels=(8, 8, 8, 8),
            num_encoder_blocks=(1, 1, 1, 1),
            num_decoder_blocks=(1, 1, 1, 1),
            latent_channels=4,
        )
    return vae.eval()


def tiny_motion_adapter(seed: int = 0) -> MotionAdapter:
    """A random-weight ``MotionAdapter`` that fits ``tiny_components``' UNet (32/64 channels, 1 layer per block)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        adapter = MotionAdapter(
            block_out_channels=(32, 64),
            motion_layers_per_block=1,
            motion_num_attention_heads=2,
            motion_norm_num_groups=8,
            motion_max_seq_length=32,
            use_motion_mid_block=False,
        )
    return adapter.eval()


# --------------------------------------------------------------------------------------------------------------------
# Device and dtype.


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` → CUDA, else MPS, else CPU. A device that is asked for but absent is a UserError."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: no CUDA GPU is visible to torch; use --device cpu or install CUDA torch")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"--device {name}: MPS is not available on this machine; use --device cpu")
    return dev


def pick_dtype(name: str, device: torch.device) -> torch.dtype:
    """``auto`` → float16 on CUDA/MPS, float32 on CPU."""
    if name == "auto":
        return torch.float16 if device.type in ("cuda", "mps") else torch.float32
    dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]
    if device.type == "cpu" and dtype == torch.float16:
        raise UserError("--dtype float16 is not supported on the CPU; use float32 or bfloat16")
    return dtype


# --------------------------------------------------------------------------------------------------------------------
# Loading.


@contextmanager
def _explain_load_errors(what: str, source: str):
    """Turn diffusers / hub exceptions into one line that says what to do."""
    try:
        yield
    except UserError:
        raise
    except (OSError, ValueError, KeyError) as exc:
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        local = Path(source).exists()
        if local:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise UserError(f"cannot load {what} from {source!r}: {first}") from None
        how = (
            "HF_HUB_OFFLINE is set, so only the local cache is used"
            if offline
            else "the hub could not be reached or has no such repository"
        )
        raise UserError(
            f"cannot load {what} {source!r}: not in the local cache and {how}; pass a local directory instead, "
            f"or download it once with `hf download {source}` (cache: $HF_HOME) and rerun"
        ) from None


def _is_pipeline_dir(path: Path) -> bool:
    return (path / "model_index.json").is_file()


def _load_base(source: str, dtype: torch.dtype) -> StableDiffusionImg2ImgPipeline:
    common = {"safety_checker": None, "requires_safety_checker": False, "feature_extractor": None}
    path = Path(source)
    _check_exists_if_file("--model", source)
    with _explain_load_errors("model", source):
        if path.is_file():
            if path.suffix not in _WEIGHT_FILE:
                raise UserError(f"--model {source!r} is a file but not a .safetensors/.ckpt checkpoint")
            return StableDiffusionImg2ImgPipeline.from_single_file(str(path), dtype=dtype, **common)
        if path.is_dir() and not _is_pipeline_dir(path):
            raise UserError(
                f"--model {source!r} is a directory without model_index.json; save it with `save_pretrained` "
                "or point at the diffusers folder"
            )
        if not path.exists() and not _HUB_ID.match(source):
            names = ", ".join(PRESETS)
            raise UserError(
                f"--model {source!r} is not a preset ({names}), an existing path, or a hub id like org/name"
            )
        return StableDiffusionImg2ImgPipeline.from_pretrained(source, dtype=dtype, **common)


def load_vae(source: str, dtype: torch.dtype) -> AutoencoderKL | AutoencoderTiny:
    """An ``AutoencoderKL`` or ``AutoencoderTiny`` (TAESD) from a hub id, a directory or a pipeline directory."""
    if source == "builtin:tiny-taesd":
        return tiny_taesd().to(dtype=dtype)
    source = VAE_ALIASES.get(source, source)
    path = Path(source)
    with _explain_load_errors("VAE", source):
        if path.is_file():
            raise UserError(f"--vae {source!r}: give a diffusers directory or hub id (single VAE files unsupported)")
        if not path.exists() and not _HUB_ID.match(source):
            raise UserError(f"--vae {source!r} is not an existing directory or a hub id like org/name")
        sub = "vae" if path.is_dir() and _is_pipeline_dir(path) else None
        cfg_file = (path / (sub or "") / "config.json") if path.is_dir() else None
        cls_name = json.loads(cfg_file.read_text()).get("_class_name") if cfg_file and cfg_file.is_file() else None
        if cls_name is None:
            from diffusers import AutoModel

            return AutoModel.from_pretrained(source, subfolder=sub, dtype=dtype).eval()
        cls = {"AutoencoderKL": AutoencoderKL, "AutoencoderTiny": AutoencoderTiny}.get(cls_name)
        if cls is None:
            raise UserError(f"--vae {source!r} holds a {cls_name}; expected AutoencoderKL or AutoencoderTiny")
        return cls.from_pretrained(source, subfolder=sub, dtype=dtype).eval()


def fast_vae(cfg) -> str | None:
    """The VAE a config asks for: ``--vae``, or TAESD for ``--fast`` (the tiny presets get a tiny random TAESD)."""
    if cfg.vae or not cfg.fast:
        return cfg.vae
    return "builtin:tiny-taesd" if cfg.model in TINY_MODELS else "taesd"


def models_for(cfg, models: Models | None = None, device: str | None = None) -> Models:
    """The models a stylize/generate config renders with: ``models`` if given, else loaded from the config's model,
    LoRAs, VAE (or TAESD for ``fast``), dtype, motion adapter and ``device`` (default the config's); compiled in place
    when the config asks for it."""
    if models is None:
        dev = cfg.device if device is None else device
        models = load_models(cfg.model, cfg.lora, fast_vae(cfg), dev, cfg.dtype, cfg.motion_adapter)
    if cfg.compile:
        models.compile()
    return models


def parse_lora(spec: str) -> tuple[str, float]:
    """``"path_or_id[:scale]"`` → (source, scale). The scale defaults to 1."""
    src, sep, tail = spec.rpartition(":")
    if sep and src and re.fullmatch(r"-?\d+(\.\d*)?|-?\.\d+", tail):
        return src, float(tail)
    return spec, 1.0


def load_motion_adapter(source: str, dtype: torch.dtype) -> MotionAdapter:
    """A ``MotionAdapter`` from a motion preset name, hub id, diffusers directory or single checkpoint file."""
    preset = motion_preset(source)
    if preset is not None and preset.adapter == "builtin:tiny":
        return tiny_motion_adapter().to(dtype=dtype)
    source = preset.adapter if preset else source
    path = Path(source)
    _check_exists_if_file("--motion-adapter", source)
    with _explain_load_errors("motion adapter", source):
        if path.is_file():
            return MotionAdapter.from_single_file(str(path), dtype=dtype).eval()
        if not path.exists() and not _HUB_ID.match(source):
            names = ", ".join(MOTION_PRESETS)
            raise UserError(
                f"--motion-adapter {source!r} is not a preset ({names}), an existing path, or a hub id like org/name"
            )
        return MotionAdapter.from_pretrained(source, dtype=dtype).eval()


_CXX = ("c++", "g++", "clang++")


@dataclass
class Models:
    """Loaded weights on one device, reused across renders.

    ``pipe`` is a diffusers pipeline used as a container (unet, vae, text_encoder, tokenizer, scheduler): a
    ``StableDiffusionImg2ImgPipeline``, or an ``AnimateDiffPipeline`` whose unet is a ``UNetMotionModel`` when a
    motion adapter is loaded (``max_context`` is then the adapter's longest clip).
    """

    pipe: StableDiffusionImg2ImgPipeline | AnimateDiffPipeline
    device: torch.device
    dtype: torch.dtype
    default_guidance: float
    name: str
    max_context: int | None = None
    compiled: bool = False
    _text_cache: dict = field(default_factory=dict, repr=False)

    @property
    def unet(self):
        return self.pipe.unet

    @property
    def vae(self):
        return self.pipe.vae

    @property
    def scheduler(self) -> LCMScheduler:
        return self.pipe.scheduler

    @property
    def motion(self) -> bool:
        return self.max_context is not None

    def compile(self) -> None:
        """``torch.compile`` the UNet and both halves of the VAE in place (once; later calls do nothing).

        Every call of a render has one fixed shape (the 2D batch is padded, VAE chunks are balanced), so each module
        compiles once per render and never recompiles window to window. Outputs move by float rounding only (fused
        kernels), no quality trade-off. The first call pays the compile (about 2 minutes for SD1.5 on 2 CPU cores);
        inductor caches it on disk for later processes.
        """
        if self.compiled:
            return
        if self.device.type == "mps":
            raise UserError("--compile is not supported on MPS; drop --compile")
        if self.device.type == "cpu" and not (os.environ.get("CXX") or any(map(shutil.which, _CXX))):
            raise UserError("--compile on CPU needs a C++ compiler (g++ or clang++); install one or drop --compile")
        self.unet.compile()
        self.vae.encoder.compile()
        self.vae.decoder.compile()
        self.compiled = True

    @property
    def uses_guidance_embedding(self) -> bool:
        return self.pipe.unet.config.get("time_cond_proj_dim") is not None

    def _encode(self, prompt: str, negative_prompt: str, cfg: bool):
        key = (prompt, negative_prompt, cfg)
        if key not in self._text_cache:
            with torch.inference_mode():
                cond, uncond = self.pipe.encode_prompt(
                    prompt, self.device, 1, cfg, negative_prompt=negative_prompt or None
                )
            self._text_cache[key] = (cond, uncond if cfg else None)
        return self._text_cache[key]

    def text_conditioning(self, prompts: str | dict[int, str], negative_prompt: str, guidance: float):
        """(cond, uncond | None, timestep_cond | None) for a prompt or keyframed prompts ``{frame: text}``.

        cond / uncond: ``PromptSchedule``s of (1, 77, D) states in the model dtype, each prompt encoded once and
        cached; uncond only where classifier-free guidance runs (a UNet without a w-embedding and guidance > 1).
        timestep_cond: (1, E) w-embedding of ``guidance - 1`` for LCM checkpoints.
        """
        keys = {0: prompts} if isinstance(prompts, str) else dict(prompts)
        cfg = guidance > 1.0 and not self.uses_guidance_embedding
        encoded = {f: self._encode(p, negative_prompt, cfg) for f, p in keys.items()}
        cond = PromptSchedule({f: e[0] for f, e in encoded.items()})
        uncond = PromptSchedule({f: e[1] for f, e in encoded.items()}) if cfg else None
        tcond = None
        if self.uses_guidance_embedding:
            dim = self.pipe.unet.config.time_cond_proj_dim
            # diffusers' own embedding function; it lives on the SD pipelines but uses nothing of the instance.
            emb = StableDiffusionImg2ImgPipeline.get_guidance_scale_embedding
            tcond = emb(self.pipe, torch.tensor([guidance - 1.0]), embedding_dim=dim).to(self.device, self.dtype)
        return cond, uncond, tcond


def load_models(
    model: str = DEFAULT_MODEL,
    lora: tuple[str, ...] | list[str] = (),
    vae: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    motion_adapter: str | None = None,
) -> Models:
    """Load (or build, for ``tiny*``) a model with its LoRAs, VAE override and motion adapter, on the device.

    ``model``: preset name, hub id, local diffusers directory, or single checkpoint file.
    ``lora``: ``"id_or_path[:scale]"`` entries (``org/repo/file.safetensors`` picks a file of a hub repo), fused.
    ``vae``: hub id or directory of an ``AutoencoderKL``/``AutoencoderTiny`` (``taesd`` is an alias).
    ``motion_adapter``: motion preset (``animatelcm``, ``animatediff-v1-5-2``, ``tiny``), hub id, directory or file;
    the UNet becomes a ``UNetMotionModel`` and the preset's LoRAs and scheduler settings apply.
    """
    dev = pick_device(device)
    dt = pick_dtype(dtype, dev)
    preset = PRESETS.get(model)
    mpreset = motion_preset(motion_adapter)
    loras = [*(preset.lora if preset else ()), *(mpreset.lora if mpreset else ()), *lora]
    vae = vae or (preset.vae if preset else None)
    if preset and preset.base.startswith("builtin:"):
        comps = tiny_components(guidance_embedding=preset.base == "builtin:tiny")
        pipe = StableDiffusionImg2ImgPipeline(
            **comps, safety_checker=None, feature_extractor=None, requires_safety_checker=False
        )
    else:
        pipe = _load_base(preset.base if preset else model, dt)
    sched_overrides = dict(mpreset.scheduler) if mpreset else {}
    pipe.scheduler = LCMScheduler.from_config(pipe.scheduler.config, **sched_overrides)
    max_context = None
    if motion_adapter:
        adapter = load_motion_adapter(motion_adapter, dt)
        pipe = _with_motion(pipe, adapter, model, motion_adapter)
        max_context = int(adapter.config.motion_max_seq_length)
    if loras:
        _apply_loras(pipe, loras)
    if vae is not None:
        pipe.vae = load_vae(vae, dt)
    pipe.to(dev, dt)
    pipe.set_progress_bar_config(disable=True)
    if preset:
        guidance = preset.guidance
    elif pipe.unet.config.get("time_cond_proj_dim"):
        guidance = 8.0  # LCM checkpoints' usual w
    else:
        guidance = mpreset.guidance if mpreset and mpreset.guidance else 1.0
    return Models(pipe, dev, dt, guidance, model, max_context)


def _with_motion(pipe, adapter: MotionAdapter, model: str, adapter_name: str) -> AnimateDiffPipeline:
    """Rebuild ``pipe`` as an ``AnimateDiffPipeline``: diffusers turns the 2D UNet into a ``UNetMotionModel``."""
    try:
        return AnimateDiffPipeline(
            vae=pipe.vae,
            text_encoder=pipe.text_encoder,
            tokenizer=pipe.tokenizer,
            unet=pipe.unet,
            motion_adapter=adapter,
            scheduler=pipe.scheduler,
        )
    except (ValueError, RuntimeError, KeyError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise UserError(
            f"motion adapter {adapter_name!r} does not fit model {model!r} ({first}); use an SD1.5-family model "
            "with an SD1.5 motion adapter (e.g. --motion-adapter animatelcm)"
        ) from None


_HUB_FILE = re.compile(r"^([A-Za-z0-9][\w.-]*/[\w.-]+)/(.+\.(?:safetensors|bin|ckpt|pt))$")


def _apply_loras(pipe, specs: list[str]) -> None:
    names, scales = [], []
    for i, spec in enumerate(specs):
        src, scale = parse_lora(spec)
        name = f"lora{i}"
        path = Path(src)
        hub_file = None if path.exists() else _HUB_FILE.match(src)
        if hub_file is None:
            _check_exists_if_file("--lora", src)
        with _explain_load_errors("LoRA", src):
            if hub_file is not None:
                pipe.load_lora_weights(hub_file.group(1), weight_name=hub_file.group(2), adapter_name=name)
            elif path.is_file():
                pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name=name)
            elif not path.exists() and not _HUB_ID.match(src):
                raise UserError(f"--lora {src!r} is not an existing file or directory, or a hub id like org/name")
            else:
                pipe.load_lora_weights(src, adapter_name=name)
        names.append(name)
        scales.append(scale)
    pipe.set_adapters(names, adapter_weights=scales)
    # Fused weights run at the base model's speed; the adapters are then dropped.
    pipe.fuse_lora(adapter_names=names)
    pipe.unload_lora_weights()
