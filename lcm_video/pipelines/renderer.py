"""What stylise and generate share: one window of output frames through the LCM sampler, with keyed noise, overlap
fusion and blending, decoded to uint8; and the order in which windows emit their frames."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import torch
from diffusers import AutoencoderTiny

from ..choices import DEFAULT_CONTEXT, DEFAULT_WINDOW, default_overlap
from ..core.codec import LatentCodec, to_uint8
from ..core.denoiser import UNetDenoiser
from ..core.noise import FrameNoise
from ..core.sampler import sample
from ..core.schedule import FrameSchedules, LCMSchedule
from ..errors import UserError
from ..models.container import Models
from ..settings.configs import RenderConfig
from ..temporal.attention import CrossFrameState, processors
from ..temporal.blend import TemporalBlender
from ..video.plan import Window, windows


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


def window_layout(models: Models, cfg: RenderConfig, frames: int) -> tuple[int, int]:
    """(window size, overlap) of a render of ``frames`` output frames: the motion context and overlap for a motion
    UNet, else balanced 2D UNet windows of at most ``--window`` (default 16) with no overlap."""
    t = cfg.temporal
    if models.motion:
        return motion_context(models, t.context, t.overlap)
    return balanced_window(frames, t.window or DEFAULT_WINDOW), 0


def emitting_windows(start: int, stop: int, size: int, overlap: int) -> list[tuple[Window, range]]:
    """Windows over output frames ``[start, stop)``, each with the frames it emits: up to where the next window starts
    (the next one fuses and emits the frames they share), all of its frames for the last."""
    wins = list(windows(start, stop, size, overlap))
    return [(w, range(w.start, wins[k + 1].start if k + 1 < len(wins) else w.stop)) for k, w in enumerate(wins)]


VAE_CHUNK = 8
# On a CPU, batching the VAE does not pay: per frame, SD1.5's VAE at 256² encodes in 1.04 / 1.22 / 1.20 s at batch
# 1 / 2 / 6 and decodes in 2.13 / 2.04 / 2.03 s; a half-width VAE encodes in 0.34 / 0.41 / 0.49 s and decodes in
# 0.71 / 0.55 / 0.75 s; at 512², 4.8 / 4.7 / 5.0 s (batch 1 / 2 / 4) and 10.3 / 7.7 / 8.0 s (BENCHMARKS.md).
CPU_VAE_CHUNKS = (1, 2)  # (encode, decode)


def vae_chunks(device, batch: int | None) -> tuple[int, int]:
    """(encode, decode) frames per VAE call: on a CPU the measured best, elsewhere balanced batches of up to 8 (GPUs
    gain from batching; not measured here)."""
    if device.type == "cpu":
        return CPU_VAE_CHUNKS
    chunk = balanced_window(batch or VAE_CHUNK, VAE_CHUNK)
    return chunk, chunk


def vae_layout(models: Models) -> bool:
    """Whether the codec runs the VAE channels-last: on a CPU, for a torch VAE. Measured per call, fp32, batch 1
    (``scripts/bench_backends.py --layout``): encode 1.04-1.40x and decode 1.01-1.36x faster than contiguous over three
    VAE shapes at 256² and 512², outputs within 1e-4; the UNet gains nothing (0.94-1.13x) and stays contiguous. GPUs
    keep the default layout (not measured)."""
    return models.device.type == "cpu" and isinstance(models.vae, torch.nn.Module)


def balanced_window(frames: int, window: int) -> int:
    """The batch size that covers ``frames`` in the fewest windows of at most ``window`` with the least padding:
    12 frames at window 8 → 2 windows of 6 (padding the tail to 8 would run 16 frames of UNet work for 12)."""
    count = math.ceil(frames / max(1, window))
    return math.ceil(frames / max(1, count))


def warmup_frames(blend: float, context: int = 0, overlap: int = 0) -> int:
    """Frames to re-render (and discard) before a segment that starts cold, so its first frames match a continuous
    render: enough for blending's memory to fade (β^n < 1e-5; at 1e-3 a β of 0.6 still moved pixels by 4/255; ``blend``
    is the larger of ``--blend`` and ``--pixel-blend``) and, for motion windows, one window of overlap fusion."""
    if blend <= 0:
        blend_warm = 0
    else:  # at most 128: a blend of 1 never forgets
        blend_warm = 128 if blend >= 1 else min(128, math.ceil(math.log(1e-5) / math.log(blend)))
    return max(blend_warm, context - overlap if context else 0)


def render_range(
    window_fn: Callable[[Window, range], torch.Tensor],
    start: int,
    stop: int,
    size: int,
    overlap: int,
    warm: int = 0,
    total: int | None = None,
) -> Iterator[tuple[range, torch.Tensor]]:
    """Yield (frames, uint8 (n, h, w, 3)) for output frames ``[start, stop)``, window by window.

    ``window_fn(window, emit)`` renders one window and returns its ``emit`` frames. Rendering begins ``warm`` frames
    before ``start`` to rebuild the temporal state; those frames are discarded. Overlapping (motion) windows given
    the render's ``total`` frames are those of the whole render's layout, from one window before the one holding
    ``start - warm``: the fused overlaps then come out as in one continuous render (measured: bit-identical on the
    tiny motion model; one window less left 1/255).
    """
    if overlap and total is not None:
        layout = emitting_windows(0, total, size, overlap)
        first = max(0, start - warm)
        i0 = max(0, next(k for k, (_, e) in enumerate(layout) if first < e.stop) - 1)
        chosen = [(w, e) for w, e in layout[i0:] if w.start < stop]
    else:
        chosen = emitting_windows(max(0, start - warm), stop, size, overlap)
    for win, emit in chosen:
        keep = range(max(emit.start, start), min(emit.stop, stop))
        frames = window_fn(win, emit)
        if len(keep):
            yield keep, frames[keep.start - emit.start : keep.stop - emit.start]


def vae_factor(models: Models) -> int:
    """How many pixels one latent cell spans, per side (8 for SD's VAEs and TAESD)."""
    vae = models.pipe.vae
    return 8 if isinstance(vae, AutoencoderTiny) else 2 ** (len(vae.config.block_out_channels) - 1)


def latent_shape(models: Models, size: tuple[int, int]) -> tuple[int, int, int]:
    """(c, h, w) of the latents of a (width, height) frame."""
    factor = vae_factor(models)
    return (models.unet.config.in_channels, size[1] // factor, size[0] // factor)


class WindowRenderer:
    """Per-render state shared by video-to-video and text-to-video, fed one window of output frames at a time.

    Carried between windows: only the temporal blender's x0 of the previous window at each step; noise is keyed on
    output frame indices. ``batch`` is the fixed 2D UNet/VAE batch (see ``UNetDenoiser``).
    """

    def __init__(
        self,
        models: Models,
        cfg: RenderConfig,
        *,
        prompts: str | dict[int, str],
        strength: float,
        batch: int | None,
    ):
        """``prompts``: one prompt or keyframes ``{frame: text}``; ``strength``: 1 starts from pure noise."""
        s, t, negative = cfg.sampling, cfg.temporal, cfg.prompt.negative_prompt
        guidance = models.default_guidance if s.guidance is None else s.guidance
        check_guidance(models, negative, guidance)
        self.models = models
        self.schedule = LCMSchedule.from_scheduler(models.scheduler, s.steps, strength)
        cond, uncond, tcond = models.text_conditioning(prompts, negative, guidance)
        self.denoiser = UNetDenoiser(models.unet, cond, uncond, guidance, tcond, batch=batch)
        # The VAE's activations at full resolution dwarf the UNet's: at most 8 frames per VAE call, balanced.
        self.codec = LatentCodec(models.vae, *vae_chunks(models.device, batch), channels_last=vae_layout(models))
        self.blender = TemporalBlender(t.blend, t.fuse)
        self.seed, self.shared_noise, self.renoise = s.seed, t.shared_noise, t.renoise
        self.noise: FrameNoise | None = None
        self.cross = None
        if t.cross_frame != "off":
            self.cross = CrossFrameState(t.cross_frame)
            self.denoiser.cross_frame = (self.cross, processors(models.unet, self.cross))

    def reset(self) -> None:
        """Forget the temporal state carried between windows (a cold start); cross-frame attention keeps its anchor,
        which belongs to the render wherever a segment starts."""
        self.blender.reset()
        if self.cross is not None:
            self.cross.reset()

    def prime_anchor(self, start: int, size: int, total: int, render: Callable[[range], object]) -> None:
        """Before a cold start at output frame ``start``: give cross-frame attention its anchor states (frame 0's at
        every step and layer) by ``render(frames)``-ing the first window once more (one frame for a 2D UNet; a whole
        motion window, whose temporal attention shapes frame 0 too; at most ``total`` frames), then forget the rest
        of that render's state. Nothing to do without cross-frame attention, with the anchor already held, or when
        the render starts at frame 0 and so makes the anchor itself."""
        if self.cross is None or self.cross.anchor or start <= 0:
            return
        render(range(0, min(size if self.models.motion else 1, total)))
        self.reset()

    def render(
        self,
        clean: torch.Tensor | None,
        indices: range,
        emit: range,
        shape: tuple[int, int, int],
        noise_keys: list[int] | None = None,
        motion: dict | None = None,
    ):
        """Sample output frames ``indices`` and decode those in ``emit`` to uint8 (e, h, w, 3).

        clean: (f, c, h, w) float32 source latents (video-to-video: noised to the first timestep), or None
        (text-to-video: the start is pure noise, as diffusers' LCM text pipelines do). ``noise_keys``: the frame
        numbers the noise is keyed on, when ``indices`` are positions among rendered frames rather than output frames.
        ``motion``: {index: LatentMotion from the previous frame} for motion-compensated blending (``--warp flow``).
        """
        if self.noise is None:
            self.noise = FrameNoise(self.seed, shape, self.shared_noise, self.renoise)
        frames = indices if noise_keys is None else noise_keys  # output frame numbers: prompt/strength keys, noise
        eps = self.noise.window(frames, self.models.device)
        schedule = self.schedule.window(frames) if isinstance(self.schedule, FrameSchedules) else self.schedule
        x = eps[0] if clean is None else schedule.add_noise(clean, eps[0])
        cross = self.denoiser.cross_frame[0] if self.denoiser.cross_frame else None
        if cross is not None:
            cross.start_window(indices, carry=emit.stop - 1)  # emit ends where the next window starts
        x0 = sample(
            lambda x, t: self.denoiser(x, t, frames),
            x,
            schedule,
            eps,
            blend=lambda x0, i: self.blender(x0, i, indices, motion),
        )
        self.blender.end_window()
        if cross is not None:
            cross.end_window()
        keep = slice(emit.start - indices.start, emit.stop - indices.start)
        return to_uint8(self.codec.decode(x0[keep]))
