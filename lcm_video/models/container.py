"""``Models``: the loaded modules of one model on one device, reused across renders, with their text conditioning
cached and an optional ``torch.compile``."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field

import torch
from diffusers import AnimateDiffPipeline, LCMScheduler, StableDiffusionImg2ImgPipeline

from ..core.denoiser import PromptSchedule
from ..errors import UserError
from .device import dtype_name
from .presets import LCM, Sampling

_CXX = ("c++", "g++", "clang++")
STYLE_CACHE = 8  # reference embeddings kept per model set (``Models.style_conditioning``)


@dataclass
class Models:
    """Loaded weights on one device, reused across renders.

    ``pipe`` is a diffusers pipeline used as a container (unet, vae, text_encoder, tokenizer, scheduler): a
    ``StableDiffusionImg2ImgPipeline``, or an ``AnimateDiffPipeline`` whose unet is a ``UNetMotionModel`` when a
    motion adapter is loaded (``max_context`` is then the adapter's longest clip). ``sampling``: how its preset
    samples (method, steps, eta), the render's default; the pipeline's scheduler holds the betas and prediction type
    every method's constants are computed from.
    """

    pipe: StableDiffusionImg2ImgPipeline | AnimateDiffPipeline
    device: torch.device
    dtype: torch.dtype
    default_guidance: float
    name: str
    max_context: int | None = None
    sampling: Sampling = LCM
    compiled: bool = False
    _text_cache: dict = field(default_factory=dict, repr=False)
    controlnets: dict = field(default_factory=dict, repr=False)  # ControlNets loaded for it, by source
    ip_adapter: str | None = None  # the IP-Adapter loaded into the UNet (``--style-image``), by source
    _style_cache: dict = field(default_factory=dict, repr=False)
    _openvino: tuple | None = field(default=None, repr=False)
    _openvino_dtype: torch.dtype | None = field(default=None, repr=False)

    @property
    def unet(self):
        """What the denoiser calls: the pipeline's UNet, or its OpenVINO runner (same call signature)."""
        return self._openvino[0] if self._openvino else self.pipe.unet

    @property
    def vae(self):
        """What the codec calls: the pipeline's VAE (or TAESD), or its OpenVINO runner."""
        return self._openvino[1] if self._openvino else self.pipe.vae

    @property
    def backend(self) -> str:
        return "openvino" if self._openvino else "torch"

    @property
    def runtime(self) -> dict[str, str]:
        """Where and in what the models compute, as a render's record keeps it: ``{"device", "dtype", "backend"}``
        (``--dtype auto`` resolves by device and, on a CPU, by whether it has bfloat16 in hardware). The device's type
        only: the ranks of a multi-GPU batch run on cuda:0, cuda:1, ... alike."""
        dtype = self._openvino_dtype if self._openvino else self.dtype
        return {"device": self.device.type, "dtype": dtype_name(dtype), "backend": self.backend}

    def use_openvino(self, dtype: torch.dtype) -> None:
        """Run the UNet and VAE through OpenVINO from now on, computing in ``dtype`` (float32 or bfloat16); each
        converts on its first call with a new shape (cached on disk). The text encoder stays torch's: converted, its
        compiled blob took 1.1-2.6 s to load in every process against 0.3-0.4 s for torch to encode a prompt pair."""
        from . import openvino

        self._openvino, self._openvino_dtype = openvino.convert(self.pipe, dtype), dtype

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
        if self._openvino:
            raise UserError("--compile is torch's compiler; these models run on OpenVINO (drop one)")
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

    def style_conditioning(
        self, image: str | None, adapter: str | None, scale: float, mode: str, guidance: bool
    ) -> list[torch.Tensor] | None:
        """The IP-Adapter image embeddings of a render's ``--style-image`` (``UNetDenoiser.image_embeds``), or None
        without one.

        Loads the IP-Adapter ``adapter`` and its image encoder into the pipeline when another (or none) is loaded, and
        unloads it for a render without a style image (the UNet then runs as loaded); sets the per-block scales of
        ``mode`` (``style``: InstantStyle's style block only; ``full``: every block) at ``scale``. The embedding is
        computed once per image file's content, adapter and guidance, and cached: every window of a render, and
        later renders of the same models, reuse it. ``guidance``: whether classifier-free guidance runs (then the
        negative embedding comes first)."""
        from . import ip_adapter as ipa

        if image is None:
            if self.ip_adapter is not None:
                ipa.unload_ip_adapter(self.pipe)
                self.ip_adapter = None
            return None
        if self._openvino:
            raise UserError("--style-image adds IP-Adapter attention to the torch UNet; use it with --backend torch")
        style = ipa.read_style_image(image)
        if self.ip_adapter != adapter:
            if self.ip_adapter is not None:
                ipa.unload_ip_adapter(self.pipe)
                self.ip_adapter = None
            ipa.load_ip_adapter(self.pipe, adapter)
            self.ip_adapter = adapter
        self.pipe.set_ip_adapter_scale(ipa.style_scales(self.pipe.unet, scale, mode))
        key = (style.sha256, adapter, guidance)
        if key not in self._style_cache:
            while len(self._style_cache) >= STYLE_CACHE:  # the oldest first (a UI serves many uploads)
                self._style_cache.pop(next(iter(self._style_cache)))
            self._style_cache[key] = ipa.image_embeds(self.pipe, style, guidance)
        return self._style_cache[key]


def models_from_components(
    components: dict,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    guidance: float = 8.0,
    name: str = "components",
    adapter=None,
    sampling: Sampling = LCM,
) -> Models:
    """``Models`` over already built diffusers modules (``components``: unet, vae, text_encoder, tokenizer,
    scheduler; other keys are ignored), the very objects, not copies, so diffusers' own pipelines built on them run
    on the same weights; ``sampling``: how they sample by default (LCM at 4 steps). With ``adapter`` (a
    ``MotionAdapter``) an ``AnimateDiffPipeline``: a 2D unet is turned into a new ``UNetMotionModel``, a
    ``UNetMotionModel`` is used as it is. Nothing is moved: put the modules on ``device`` in ``dtype`` first."""
    parts = {k: components[k] for k in ("unet", "vae", "text_encoder", "tokenizer", "scheduler")}
    if adapter is None:
        pipe = StableDiffusionImg2ImgPipeline(
            **parts, safety_checker=None, feature_extractor=None, requires_safety_checker=False
        )
        return Models(pipe, torch.device(device), dtype, guidance, name, sampling=sampling)
    pipe = AnimateDiffPipeline(**parts, motion_adapter=adapter)
    context = int(adapter.config.motion_max_seq_length)
    return Models(pipe, torch.device(device), dtype, guidance, name, context, sampling=sampling)
