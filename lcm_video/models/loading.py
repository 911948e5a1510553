"""The one loading path for real weights: hub ids, local diffusers directories, single checkpoint files, LoRAs, VAEs
(TAESD included) and motion adapters, all ending in a diffusers pipeline used as a container.

A ``StableDiffusionImg2ImgPipeline`` (or an ``AnimateDiffPipeline`` with a motion adapter) holds the modules: its
``encode_prompt``, ``get_guidance_scale_embedding`` and LoRA loader are diffusers' own, so the text side of a render is
exactly what diffusers does. The tiny presets go through the same path with modules built in code.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from diffusers import (
    AnimateDiffPipeline,
    AnimateDiffSDXLPipeline,
    AutoencoderKL,
    AutoencoderTiny,
    LCMScheduler,
    MotionAdapter,
    StableDiffusionImg2ImgPipeline,
    StableDiffusionXLImg2ImgPipeline,
)

from ..errors import UserError
from ..notices import library_notices_off
from .container import SDXL_EXTRA, SDXL_PARTS, Models, fit_time_ids, sdxl_pipeline
from .device import pick_device, pick_dtype
from .hub import explain_load_errors as _explain_load_errors
from .presets import (
    DEFAULT_MODEL,
    MOTION_PRESETS,
    PRESETS,
    VAE_ALIASES,
    motion_preset,
    parse_lora,
    preset_path,
    preset_sampling,
)
from .tiny import tiny_components, tiny_motion_adapter, tiny_sdxl_components, tiny_taesd

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_WEIGHT_FILE = (".safetensors", ".ckpt", ".pt", ".bin")


def _check_exists_if_file(option: str, source: str) -> None:
    """A name ending in a weights extension is a file path, never a hub id: say so if it is missing."""
    if source.endswith(_WEIGHT_FILE) and not Path(source).exists():
        raise UserError(f"{option} file {source!r} does not exist; check the path")


def _is_pipeline_dir(path: Path) -> bool:
    return (path / "model_index.json").is_file()


def _is_sdxl_source(source: str, path: Path) -> bool:
    """Whether a folder, hub id or single file holds an SDXL-shaped pipeline: a second text encoder in its
    ``model_index.json``, or SDXL's second embedder in a checkpoint's keys."""
    if path.is_file():
        if path.suffix != ".safetensors":
            return False
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            return any(k.startswith("conditioner.embedders.1.") for k in f.keys())  # noqa: SIM118 (safe_open is not iterable)
    try:
        from diffusers import DiffusionPipeline

        index = DiffusionPipeline.load_config(source)
    except (OSError, ValueError):
        return False  # from_pretrained below says what is wrong
    return "text_encoder_2" in index


def _load_base(source: str, dtype: torch.dtype, family: str | None = None):
    """The pipeline container of a model: ``StableDiffusionXLImg2ImgPipeline`` for the ``sdxl`` family (from its
    preset, or read from the folder, hub repo or checkpoint), else ``StableDiffusionImg2ImgPipeline``."""
    common = {"safety_checker": None, "requires_safety_checker": False, "feature_extractor": None}
    path = Path(source)
    _check_exists_if_file("--model", source)
    with _explain_load_errors("model", source):
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
        if path.is_file() and path.suffix not in _WEIGHT_FILE:
            raise UserError(f"--model {source!r} is a file but not a .safetensors/.ckpt checkpoint")
        sdxl = family == "sdxl" if family is not None else _is_sdxl_source(source, path)
        if sdxl:
            extra = {k: v for k, v in SDXL_EXTRA.items() if k != "requires_aesthetics_score"}
            load = StableDiffusionXLImg2ImgPipeline.from_single_file if path.is_file() else None
            pipe = (load or StableDiffusionXLImg2ImgPipeline.from_pretrained)(source, dtype=dtype, **extra)
            fit_time_ids(pipe)
            return pipe
        if path.is_file():
            return StableDiffusionImg2ImgPipeline.from_single_file(str(path), dtype=dtype, **common)
        return StableDiffusionImg2ImgPipeline.from_pretrained(source, dtype=dtype, **common)


def _replace_unet(pipe, source: str, dtype: torch.dtype) -> None:
    """Put a preset's own UNet into ``pipe``: a UNet repo or folder (config and weights at its root, as
    ``latent-consistency/lcm-sdxl``), or ``org/repo/file.safetensors``, a state dict for the base's UNet config
    (SDXL-Lightning's ``*_unet.safetensors``, loaded as its card does)."""
    from diffusers import UNet2DConditionModel
    from safetensors.torch import load_file

    path = Path(source)
    hub_file = None if path.exists() else _HUB_FILE.match(source)
    with _explain_load_errors("UNet", source):
        if hub_file is not None or path.is_file():
            if hub_file is not None:
                from huggingface_hub import hf_hub_download

                path = Path(hf_hub_download(hub_file.group(1), hub_file.group(2)))
            pipe.unet.load_state_dict(load_file(str(path)), strict=True)
            pipe.unet.to(dtype=dtype)
        else:
            unet = UNet2DConditionModel.from_pretrained(source, dtype=dtype)
            pipe.register_modules(unet=unet.eval())


def load_vae(source: str, dtype: torch.dtype) -> AutoencoderKL | AutoencoderTiny:
    """An ``AutoencoderKL`` or ``AutoencoderTiny`` (TAESD) from a hub id, a directory or a pipeline directory."""
    if source == "builtin:tiny-taesd":
        return tiny_taesd().to(dtype=dtype)
    source = preset_path(VAE_ALIASES.get(source, source))
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


def load_motion_adapter(source: str, dtype: torch.dtype, unet=None) -> MotionAdapter:
    """A ``MotionAdapter`` from a motion preset name, hub id, diffusers directory or single checkpoint file; the
    ``tiny`` preset is built to fit ``unet``'s channels (random weights)."""
    preset = motion_preset(source)
    if preset is not None and preset.adapter == "builtin:tiny":
        channels = tuple(unet.config.block_out_channels) if unet is not None else (32, 64)
        return tiny_motion_adapter(block_out_channels=channels).to(dtype=dtype)
    source = preset_path(preset.adapter) if preset else source
    path = Path(source)
    hub_file = None if path.exists() else _HUB_FILE.match(source)
    if hub_file is None:
        _check_exists_if_file("--motion-adapter", source)
    with _explain_load_errors("motion adapter", source):
        if hub_file is not None:  # one file of a hub repo (AnimateDiff-Lightning's), fetched or read from the cache
            from huggingface_hub import hf_hub_download

            path = Path(hf_hub_download(hub_file.group(1), hub_file.group(2)))
        if path.is_file():
            return _adapter_from_file(path, dtype).eval()
        if not path.exists() and not _HUB_ID.match(source):
            names = ", ".join(MOTION_PRESETS)
            raise UserError(
                f"--motion-adapter {source!r} is not a preset ({names}), an existing path, or a hub id like org/name"
            )
        return MotionAdapter.from_pretrained(source, dtype=dtype).eval()


def _adapter_from_file(path: Path, dtype: torch.dtype) -> MotionAdapter:
    """A ``MotionAdapter`` from one file: a diffusers-keyed state dict (AnimateDiff-Lightning's
    ``*_diffusers.safetensors``) is loaded as its model card loads it, into a ``MotionAdapter`` of the default config
    whose shapes (channels, layers, context) are read from the weights; anything else (original AnimateDiff
    checkpoints) goes through diffusers' single-file loader."""
    from safetensors.torch import load_file

    state = load_file(str(path)) if path.suffix == ".safetensors" else {}
    if not any(k.startswith("down_blocks.0.motion_modules.0.transformer_blocks.") for k in state):
        return MotionAdapter.from_single_file(str(path), dtype=dtype)
    with torch.device("meta"):  # no random initialisation of weights about to be replaced
        adapter = MotionAdapter.from_config(motion_config_of(state))
    adapter.load_state_dict(state, strict=True, assign=True)
    return adapter.to(dtype=dtype)


def motion_config_of(state: dict[str, torch.Tensor]) -> dict:
    """``MotionAdapter`` settings read from a diffusers-keyed state dict: the channels of each block, motion layers
    per block, transformer layers per motion layer, the longest clip, the mid block. What shapes do not show
    (attention heads, norm groups) keeps the default config's, as the Lightning card's ``MotionAdapter()`` does."""

    def count(prefix: str) -> int:
        return len({k[len(prefix) :].split(".")[0] for k in state if k.startswith(prefix)})

    blocks = count("down_blocks.")
    config = {
        "block_out_channels": tuple(
            int(state[f"down_blocks.{i}.motion_modules.0.proj_in.weight"].shape[0]) for i in range(blocks)
        ),
        "motion_layers_per_block": count("down_blocks.0.motion_modules."),
        "motion_transformer_layers_per_block": count("down_blocks.0.motion_modules.0.transformer_blocks."),
        "motion_max_seq_length": int(next(v.shape[1] for k, v in state.items() if k.endswith("pos_embed.pe"))),
        "use_motion_mid_block": any(k.startswith("mid_block.") for k in state),
    }
    if config["use_motion_mid_block"]:
        config["motion_mid_block_layers_per_block"] = count("mid_block.motion_modules.")
        config["motion_transformer_layers_per_mid_block"] = count("mid_block.motion_modules.0.transformer_blocks.")
    if "conv_in.weight" in state:
        config["conv_in_channels"] = int(state["conv_in.weight"].shape[1])
    return config


def load_controlnet(source: str, dtype: torch.dtype, unet=None, vae_factor: int = 8):
    """A ``ControlNetModel`` from a hub id, a diffusers directory or a single checkpoint file (``weights:`` names a
    folder shipped in the package); ``builtin:tiny`` is built to fit ``unet`` (random weights). Anything that is not
    a ControlNet is refused in one line."""
    from diffusers import ControlNetModel

    from .tiny import tiny_controlnet

    if source == "builtin:tiny":
        return tiny_controlnet(unet, vae_factor).to(dtype=dtype)
    source = preset_path(source)
    path = Path(source)
    _check_exists_if_file("--control-model", source)
    with _explain_load_errors("ControlNet", source):
        if path.is_file():
            if path.suffix not in _WEIGHT_FILE:
                raise UserError(f"--control-model {source!r} is a file but not a .safetensors/.ckpt checkpoint")
            return ControlNetModel.from_single_file(str(path), dtype=dtype).eval()
        if path.is_dir():
            cfg_file = path / "config.json"
            if not cfg_file.is_file():
                raise UserError(f"--control-model {source!r} is a directory without config.json; not a ControlNet")
            cls_name = json.loads(cfg_file.read_text()).get("_class_name")
            if cls_name != "ControlNetModel":
                raise UserError(f"--control-model {source!r} holds a {cls_name}, not a ControlNetModel")
        elif not _HUB_ID.match(source):
            raise UserError(f"--control-model {source!r} is not an existing path or a hub id like org/name")
        return ControlNetModel.from_pretrained(source, dtype=dtype).eval()


def load_models(
    model: str = DEFAULT_MODEL,
    lora: tuple[str, ...] | list[str] = (),
    vae: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    motion_adapter: str | None = None,
    backend: str = "torch",
) -> Models:
    """Load (or build, for ``tiny*``) a model with its LoRAs, VAE override and motion adapter, on the device.

    ``model``: preset name, hub id, local diffusers directory, or single checkpoint file.
    ``lora``: ``"id_or_path[:scale]"`` entries (``org/repo/file.safetensors`` picks a file of a hub repo), fused.
    ``vae``: hub id or directory of an ``AutoencoderKL``/``AutoencoderTiny`` (``taesd`` is an alias).
    ``motion_adapter``: motion preset (``animatelcm``, ``animatediff-v1-5-2``, ``tiny``), hub id, directory or file;
    the UNet becomes a ``UNetMotionModel`` and the preset's LoRAs and scheduler settings apply.
    ``backend``: ``torch``, ``openvino`` (the UNet and VAE run by OpenVINO on the CPU, computing in ``dtype``; their
    float32 torch weights leave memory once compiled, ``pipe.unet`` and ``pipe.vae`` then on the ``meta`` device; the
    text encoder stays torch's) or ``auto`` (openvino on a CPU where installed).
    """
    with library_notices_off():
        return _load_models(model, lora, vae, device, dtype, motion_adapter, backend)


def pick_backend(backend: str, device: torch.device) -> str:
    """``auto`` → openvino on a CPU where OpenVINO is installed, else torch."""
    from . import openvino

    if backend == "auto":
        return "openvino" if device.type == "cpu" and openvino.available() else "torch"
    if backend == "openvino" and device.type != "cpu":
        raise UserError(f"--backend openvino runs on the CPU, not {device}; use --backend torch there")
    return backend


def _load_models(model, lora, vae, device, dtype, motion_adapter, backend="torch") -> Models:
    dev = pick_device(device)
    backend = pick_backend(backend, dev)
    compute = pick_dtype(dtype, dev)
    dt = torch.float32 if backend == "openvino" else compute  # OpenVINO converts float32 weights
    preset = PRESETS.get(model)
    mpreset = motion_preset(motion_adapter)
    loras = [preset_path(s) for s in (*(preset.lora if preset else ()), *(mpreset.lora if mpreset else ()), *lora)]
    vae = vae or (preset.vae if preset else None)
    if preset and preset.base == "builtin:tiny-sdxl":
        pipe = sdxl_pipeline(tiny_sdxl_components())
    elif preset and preset.base.startswith("builtin:"):
        comps = tiny_components(guidance_embedding=preset.base == "builtin:tiny")
        pipe = StableDiffusionImg2ImgPipeline(
            **comps, safety_checker=None, feature_extractor=None, requires_safety_checker=False
        )
    else:
        pipe = _load_base(preset_path(preset.base) if preset else model, dt, preset.family if preset else None)
    if preset and preset.unet:
        _replace_unet(pipe, preset_path(preset.unet), dt)
    sched_overrides = dict(mpreset.scheduler) if mpreset else {}
    pipe.scheduler = LCMScheduler.from_config(pipe.scheduler.config, **sched_overrides)
    max_context = None
    if motion_adapter:
        adapter = load_motion_adapter(motion_adapter, dt, pipe.unet)
        pipe = _with_motion(pipe, adapter, model, motion_adapter)
        adapter_dir = Path(preset_path(mpreset.adapter) if mpreset else motion_adapter)
        load_motion_words(pipe, str(adapter_dir))
        if (adapter_dir / MOTION_LORA_FILE).is_file():
            loras.append(str(adapter_dir / MOTION_LORA_FILE))
        max_context = int(adapter.config.motion_max_seq_length)
    if loras:
        _apply_loras(pipe, loras)
    if vae is not None:
        pipe.vae = load_vae(vae, dt)
    pipe.to(dev, dt)
    upcast_vae(pipe.vae, dt)
    pipe.set_progress_bar_config(disable=True)
    if preset:
        guidance = preset.guidance
    elif pipe.unet.config.get("time_cond_proj_dim"):
        guidance = 8.0  # LCM checkpoints' usual w
    else:
        guidance = mpreset.guidance if mpreset and mpreset.guidance else 1.0
    models = Models(pipe, dev, dt, guidance, model, max_context, preset_sampling(model, motion_adapter))
    if backend == "openvino":
        models.use_openvino(compute)
    return models


MOTION_WORDS_FILE = "motion_words.safetensors"
"""Word embeddings trained with a motion module (textual-inversion style), saved beside its adapter files:
``{word: float32 (hidden,)}``, the words' order (their token ids) in the metadata's ``words``."""


LORA_FILE = "pytorch_lora_weights.safetensors"  # diffusers' LoRA weight name (save_lora_weights writes it)
MOTION_LORA_FILE = LORA_FILE
"""A LoRA of the spatial UNet trained with a motion module, beside its adapter files (diffusers' LoRA format); fused
with the model's other LoRAs whenever the adapter is loaded."""


def load_motion_words(pipe, adapter_source: str) -> list[str]:
    """Load the words of ``adapter_source/MOTION_WORDS_FILE`` (when the adapter is a folder holding one) into
    ``pipe``'s tokenizer and text encoder with diffusers' ``load_textual_inversion``, in the order training appended
    them (so they get the same ids); returns the words, [] when there is no such file."""
    from safetensors import safe_open

    path = Path(adapter_source) / MOTION_WORDS_FILE
    if not path.is_file():
        return []
    with safe_open(str(path), "pt") as f:
        words = (f.metadata() or {}).get("words", "").split() or sorted(f.keys())
        table = {w: f.get_tensor(w) for w in words}
    with _explain_load_errors("motion words", str(path)):
        pipe.load_textual_inversion([{w: table[w]} for w in words], token=words)
    return words


def upcast_vae(vae, dtype: torch.dtype) -> None:
    """Keep an ``AutoencoderKL`` that says ``force_upcast`` (SDXL's own VAE, which overflows in float16) in float32
    under a float16 model, as diffusers' SDXL pipelines upcast it around every encode and decode; the codec feeds it
    in its own dtype. ``madebyollin/sdxl-vae-fp16-fix`` (``--vae sdxl-vae-fp16-fix``) says no and stays float16."""
    if dtype == torch.float16 and isinstance(vae, AutoencoderKL) and vae.config.get("force_upcast"):
        vae.to(dtype=torch.float32)


def _with_motion(pipe, adapter: MotionAdapter, model: str, adapter_name: str):
    """Rebuild ``pipe`` as an ``AnimateDiffPipeline`` (``AnimateDiffSDXLPipeline`` for SDXL): diffusers turns the 2D
    UNet into a ``UNetMotionModel``."""
    try:
        if isinstance(pipe, StableDiffusionXLImg2ImgPipeline):
            motion = AnimateDiffSDXLPipeline(
                **{k: getattr(pipe, k) for k in SDXL_PARTS}, motion_adapter=adapter, force_zeros_for_empty_prompt=True
            )
            # UNetMotionModel.from_unet2d leaves SDXL's added embedding (pooled text + time ids) at random weights
            # (noted in diffusers' PR #6721 review, not fixed in 0.42.1): copy the 2D UNet's.
            motion.unet.add_embedding.load_state_dict(pipe.unet.add_embedding.state_dict())
            return motion
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


def _cached_lora_name(src: str, path: Path) -> dict:
    """For a hub repo whose ``pytorch_lora_weights.safetensors`` is in the local cache, that weight name: diffusers
    otherwise asks the hub which file to take, which fails offline even with the repo downloaded."""
    if path.exists():
        return {}
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(src, LORA_FILE)
    return {"weight_name": LORA_FILE} if isinstance(cached, str) else {}


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
                pipe.load_lora_weights(src, adapter_name=name, **_cached_lora_name(src, path))
        names.append(name)
        scales.append(scale)
    pipe.set_adapters(names, adapter_weights=scales)
    # Fused weights run at the base model's speed; the adapters are then dropped.
    pipe.fuse_lora(adapter_names=names)
    pipe.unload_lora_weights()
