"""What stylise and generate share: the window layout of a render, and one window of output frames' latents through
the few-step sampler with keyed noise, overlap fusion, blending and cross-frame attention (``WindowSampler``)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import torch
from diffusers import AutoencoderTiny

from ..choices import DEFAULT_CONTEXT, DEFAULT_WINDOW, default_overlap
from ..core.codec import LatentCodec
from ..core.denoiser import UNetDenoiser
from ..core.noise import FrameNoise
from ..core.sampler import Residual, sample
from ..core.schedule import FrameSchedules, make_schedule
from ..errors import UserError
from ..keyframes import Keyframes
from ..models.container import Models
from ..models.ip_presets import ip_adapter_source
from ..models.presets import sampling_for
from ..options import STYLIZE
from ..settings.configs import RenderConfig
from ..settings.resolve import check_sampling
from ..temporal.attention import CrossFrameState, processors
from ..temporal.blend import TemporalBlender
from ..video.plan import balanced_window, warmup_frames


@dataclass(frozen=True)
class RenderResult:
    """What a render produced: the output file, its frame count, exact fps (the average, when ``variable_rate``: the
    frames kept a variable-rate source's times), (width, height), wall time, UNet calls, and how many of the frames
    repeat an earlier render (``--skip-similar``) instead of being rendered."""

    output: Path
    frames: int
    fps: Fraction
    size: tuple[int, int]
    seconds: float
    unet_calls: int
    reused: int = 0
    variable_rate: bool = False


def check_guidance(models: Models, negative_prompt: str, guidance: float) -> None:
    """Refuse a negative prompt where it would silently do nothing."""
    if not negative_prompt:
        return
    if models.uses_guidance_embedding:
        raise UserError(
            "--negative-prompt needs classifier-free guidance, but this model takes guidance as an LCM "
            "w-embedding; drop --negative-prompt or use an SD1.5 + LCM-LoRA model with --guidance > 1"
        )
    if guidance <= 1.0:
        raise UserError(f"--negative-prompt has no effect at --guidance {guidance:g}; raise --guidance to 1.5-2")


def motion_context(models: Models, context: int | None, overlap: int | None) -> tuple[int, int]:
    """(context, overlap) for a motion UNet: by default the training length (16) and ``default_overlap``; checked
    against the adapter."""
    if models.max_context is None:
        raise UserError("these models have no motion adapter; load them with motion_adapter= (--motion-adapter)")
    ctx = context if context is not None else min(DEFAULT_CONTEXT, models.max_context)
    if ctx > models.max_context:
        raise UserError(
            f"--context {ctx} is more than this motion adapter supports ({models.max_context} frames); "
            f"use --context {DEFAULT_CONTEXT}"
        )
    ov = overlap if overlap is not None else default_overlap(ctx)
    if ov >= ctx:
        raise UserError(f"--overlap ({ov}) must be smaller than --context ({ctx})")
    return ctx, ov


@dataclass(frozen=True)
class Layout:
    """How a render's frames are cut: windows of ``size`` sharing ``overlap`` frames, and ``warm`` frames re-rendered
    (and dropped) before a cold start."""

    size: int
    overlap: int
    warm: int


def window_layout(models: Models, cfg: RenderConfig, frames: int) -> Layout:
    """The layout of a render of ``frames`` output frames: the motion context and overlap for a motion UNet, else
    balanced 2D UNet windows of at most ``--window`` (default 16) with no overlap; the warm-up that the larger of the
    two blends (and, for motion windows, their overlap fusion) needs."""
    t = cfg.temporal
    if models.motion:
        size, overlap = motion_context(models, t.context, t.overlap)
    else:
        size, overlap = balanced_window(frames, t.window or DEFAULT_WINDOW), 0
    blend = max(t.blend, t.pixel_blend if cfg.command == STYLIZE else 0.0)  # generate has no pixel blend
    return Layout(size, overlap, warmup_frames(blend, size if models.motion else 0, overlap))


VAE_CHUNK = 8
# On a CPU, batching the VAE does not pay: per frame, SD1.5's VAE at 256² encodes in 1.04 / 1.22 / 1.20 s at batch
# 1 / 2 / 6 and decodes in 2.13 / 2.04 / 2.03 s; a half-width VAE encodes in 0.34 / 0.41 / 0.49 s and decodes in
# 0.71 / 0.55 / 0.75 s; at 512², 4.8 / 4.7 / 5.0 s (batch 1 / 2 / 4) and 10.3 / 7.7 / 8.0 s (BENCHMARKS.md).
CPU_VAE_CHUNKS = (1, 2)  # (encode, decode)


def vae_chunks(device, batch: int | None) -> tuple[int, int]:
    """(encode, decode) frames per VAE call: on a CPU the measured best (never more than a ``batch`` of 1 holds: a
    live run, or ``--window 1``, would decode a pad frame every call), elsewhere balanced batches of up to 8 (GPUs
    gain from batching; not measured here)."""
    if device.type == "cpu":
        return CPU_VAE_CHUNKS if batch is None else (min(CPU_VAE_CHUNKS[0], batch), min(CPU_VAE_CHUNKS[1], batch))
    chunk = balanced_window(batch or VAE_CHUNK, VAE_CHUNK)
    return chunk, chunk


def vae_layout(models: Models) -> bool:
    """Whether the codec runs the VAE channels-last: on a CPU, for a torch VAE. Measured per call, fp32, batch 1
    (``python -m benchmarks.backends --layout``): encode 1.04-1.40x and decode 1.01-1.36x faster than contiguous over
    three VAE shapes at 256² and 512², outputs within 1e-4; the UNet gains nothing (0.94-1.13x) and stays
    contiguous. GPUs keep the default layout (not measured)."""
    return models.device.type == "cpu" and isinstance(models.vae, torch.nn.Module)


def vae_factor(models: Models) -> int:
    """How many pixels one latent cell spans, per side (8 for SD's VAEs and TAESD)."""
    vae = models.pipe.vae
    return 8 if isinstance(vae, AutoencoderTiny) else 2 ** (len(vae.config.block_out_channels) - 1)


def latent_shape(models: Models, size: tuple[int, int]) -> tuple[int, int, int]:
    """(c, h, w) of the latents of a (width, height) frame."""
    factor = vae_factor(models)
    return (models.unet.config.in_channels, size[1] // factor, size[0] // factor)


class WindowSampler:
    """A render's sampling state, fed one window of output frames at a time: the few-step method's schedule (LCM's
    one per frame with strength keys), the denoiser with the render's prompts, keyed noise, the temporal blender and
    cross-frame attention, and the style image's IP-Adapter embedding (``--style-image``, computed once per render).
    ``sample`` returns x0 latents; the caller encodes and decodes.

    Carried between windows: only the blender's x0 of the previous window at each step (and cross-frame attention's
    anchor and previous frame); noise is keyed on output frame numbers. ``batch`` is the fixed 2D UNet batch (see
    ``UNetDenoiser``).
    """

    def __init__(
        self,
        models: Models,
        cfg: RenderConfig,
        *,
        prompts: str | dict[int, str],
        strength: float,
        strengths: Keyframes | None = None,
        batch: int | None,
    ):
        """``prompts``: one prompt or keyframes ``{frame: text}``; ``strength``: 1 starts from pure noise;
        ``strengths``: per-frame strength keys (``--strength-at``)."""
        s, t, negative = cfg.sampling, cfg.temporal, cfg.prompt.negative_prompt
        guidance = models.default_guidance if s.guidance is None else s.guidance
        check_guidance(models, negative, guidance)
        self.models = models
        # How the loaded models sample (their preset's method, steps, eta) under the render's options.
        self.sampling = sampling_for(models.sampling, s.scheduler, s.steps, s.eta)
        check_sampling(self.sampling, cfg)
        if strengths is not None:  # LCM only (check_sampling)
            self.schedule = FrameSchedules(models.scheduler, self.sampling.steps, strengths)
        else:
            self.set_strength(strength)
        cond, uncond, tcond = models.text_conditioning(prompts, negative, guidance)
        self.denoiser = UNetDenoiser(models.unet, cond, uncond, guidance, tcond, batch=batch)
        self.cfg_type = s.cfg_type
        st = cfg.style  # the IP-Adapter loaded (or unloaded) and the reference embedded once, before cross-frame
        adapter = ip_adapter_source(models.name, st.ip_adapter, models.family) if st.style_image else None
        embeds = models.style_conditioning(st.style_image, adapter, st.style_scale, st.style_mode, uncond is not None)
        self.denoiser.image_embeds = embeds
        self._text = (prompts, negative, guidance)  # SDXL's added conditioning, made once the size is known
        self._added = None  # that conditioning (``begin``), or None until then and for other families
        self._size: tuple[int, int] | None = None
        self.blender = TemporalBlender(t.blend, t.fuse)
        self.seed, self.shared_noise, self.renoise = s.seed, t.shared_noise, t.renoise
        self.noise: FrameNoise | None = None
        self.cross = None
        if t.cross_frame != "off":
            self.cross = CrossFrameState(t.cross_frame)
            self.denoiser.cross_frame = (self.cross, processors(models.unet, self.cross))

    def begin(self, shape: tuple[int, int, int]) -> None:
        """Make what depends on the latents' (c, h, w) at the render's first frames (and after a change): the keyed
        noise, and SDXL's added conditioning (pooled text and time ids for the frame size), once each. Every path
        that samples calls it: ``sample``, and the live stream batch."""
        if self.noise is None:
            self.noise = FrameNoise(self.seed, shape, self.shared_noise, self.renoise)
        factor = vae_factor(self.models)
        size = (shape[2] * factor, shape[1] * factor)
        if self._size != size:
            if self._added is not None:
                self.denoiser.added.remove(self._added)
            self._added = self.models.added_conditioning(*self._text, size)
            if self._added is not None:
                self.denoiser.added.append(self._added)
            self._size = size

    def set_prompt(self, prompts: str | dict[int, str]) -> None:
        """Sample the next frames under ``prompts`` (the live mode's prompt change): the text states, and SDXL's
        pooled text with them (remade at the next ``begin``)."""
        _, negative, guidance = self._text
        self._text = (prompts, negative, guidance)
        d = self.denoiser
        d.cond, d.uncond, d.tcond = self.models.text_conditioning(prompts, negative, guidance)
        self._size = None

    def set_strength(self, strength: float) -> None:
        """Sample the next windows at ``strength`` (one for every frame): the method's schedule rebuilt with the
        render's steps and eta (a live strength change goes through here; ``check_strength`` first)."""
        sp = self.sampling
        self.schedule = make_schedule(sp.scheduler, self.models.scheduler, sp.steps, strength, sp.eta, dict(sp.config))

    def residual(self, clean: torch.Tensor | None) -> Residual | None:
        """A fresh residual-CFG state for one batch of frames with source latents ``clean`` (f, c, h, w) or None
        (text-to-video) (``--cfg-type self|initialize``), or None: full CFG, or no classifier-free guidance at all
        (guidance ≤ 1, a w-embedding), where it changes nothing."""
        if self.cfg_type == "full" or self.denoiser.uncond is None:
            return None
        return Residual(self.cfg_type, denoiser=self.denoiser, ref=clean if self.cfg_type == "self" else None)

    def reset(self) -> None:
        """Forget the temporal state carried between windows (a cold start); cross-frame attention keeps its anchor,
        which belongs to the render wherever a segment starts."""
        self.blender.reset()
        if self.cross is not None:
            self.cross.reset()

    def needs_anchor(self, start: int) -> bool:
        """Whether a cold start at output frame ``start`` must first render the first window once more to give
        cross-frame attention its anchor (frame 0's states at every step and layer): only with cross-frame
        attention, without the anchor held, and when the render does not start at frame 0 (which makes it)."""
        return self.cross is not None and not self.cross.anchor and start > 0

    def sample(
        self,
        clean: torch.Tensor | None,
        indices: range,
        emit: range,
        shape: tuple[int, int, int],
        noise_keys: list[int] | None = None,
        motion: dict | None = None,
        control: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Sample output frames ``indices``; returns float32 x0 latents (e, c, h, w) of those in ``emit``.

        clean: (f, c, h, w) float32 source latents (video-to-video: noised to the first timestep), or None
        (text-to-video: the start is pure noise, as diffusers' LCM text pipelines do). ``noise_keys``: the frame
        numbers the noise is keyed on, when ``indices`` are positions among rendered frames rather than output frames.
        ``motion``: {index: LatentMotion from the previous frame} for motion-compensated blending (``--warp flow``).
        ``control``: per ControlNet, the maps of ``indices``, float (f, 3, H, W) in [0, 1] (``--control``).
        """
        self.begin(shape)
        frames = indices if noise_keys is None else noise_keys  # output frame numbers: prompt/strength keys, noise
        eps = self.noise.window(frames, self.models.device)
        schedule = self.schedule.window(frames) if isinstance(self.schedule, FrameSchedules) else self.schedule
        x = schedule.start(eps[0]) if clean is None else schedule.add_noise(clean, eps[0])
        cross = self.cross
        if cross is not None:
            cross.start_window(indices, carry=emit.stop - 1)  # emit ends where the next window starts
        steps = iter(range(len(schedule)))  # the sampler calls the model once per step, in order
        x0 = sample(
            lambda x, t, negative=None: self.denoiser(x, t, frames, next(steps), len(schedule), control, negative),
            x,
            schedule,
            eps,
            blend=lambda x0, i: self.blender(x0, i, indices, motion),
            residual=self.residual(clean),
        )
        self.blender.end_window()
        if cross is not None:
            cross.end_window()
        return x0[emit.start - indices.start : emit.stop - indices.start]


def make_codec(models: Models, batch: int | None) -> LatentCodec:
    """The render's VAE codec: at most 8 frames per VAE call, balanced (the VAE's activations at full resolution
    dwarf the UNet's), in the measured best layout for the device."""
    return LatentCodec(models.vae, *vae_chunks(models.device, batch), channels_last=vae_layout(models))
