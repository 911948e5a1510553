"""Video-to-video: source frames → plan → windows → encode → 4-step LCM with shared noise and blending → decode →
ffmpeg. Readable top to bottom; each stage is a small object or function of its own module."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, fields
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch
from diffusers import LCMScheduler
from tqdm.auto import tqdm

from .blend import TemporalBlender
from .config import StylizeConfig, make_config, validate
from .denoiser import UNetDenoiser
from .errors import UserError
from .models import Models, load_models
from .noise import FrameNoise
from .plan import FramePlan
from .reader import FrameReader, output_size, probe
from .sampler import LCMSchedule, sample
from .vae import LatentCodec, to_uint8, to_unit
from .writer import VideoWriter, check_output


@dataclass(frozen=True)
class RenderResult:
    """What a render produced: the output file, its frame count, exact fps, (width, height) and wall time."""

    output: Path
    frames: int
    fps: Fraction
    size: tuple[int, int]
    seconds: float
    unet_calls: int


def resolve_config(config: StylizeConfig | None, prompt: str | None, options: dict[str, Any]) -> StylizeConfig:
    """Merge a config object, a prompt and keyword options (later wins) into one validated config."""
    values = {} if config is None else {f.name: getattr(config, f.name) for f in fields(config)}
    if prompt is not None:
        values["prompt"] = prompt
    values.update(options)
    return validate(make_config(StylizeConfig, values, "stylize() arguments"))


def check_guidance(models: Models, cfg: StylizeConfig, guidance: float) -> None:
    """Refuse a negative prompt where it would silently do nothing."""
    if not cfg.negative_prompt:
        return
    if models.uses_guidance_embedding:
        raise UserError(
            "--negative-prompt needs classifier-free guidance, but this model takes guidance as an LCM "
            "w-embedding; drop --negative-prompt or use an SD1.5 + LCM-LoRA model with --guidance > 1"
        )
    if guidance <= 1.0:
        raise UserError(f"--negative-prompt has no effect at --guidance {guidance:g}; raise --guidance to 1.5-2")


class Stylizer:
    """The per-render state of video-to-video, fed one window of source frames at a time.

    ``__call__(frames, indices)``: uint8 (f, h, w, 3) source frames that are output frames ``indices`` (consecutive,
    following the previous call) → uint8 (f, h, w, 3) stylised frames. The only state carried between calls is the
    blending state (the last frame's x0 at each step); noise is keyed on the output index. ``batch`` (default
    ``cfg.window``) is the fixed UNet/VAE batch shape; pass the clip length when it is shorter than a window.
    """

    def __init__(self, models: Models, cfg: StylizeConfig, batch: int | None = None):
        guidance = models.default_guidance if cfg.guidance is None else cfg.guidance
        check_guidance(models, cfg, guidance)
        self.cfg = cfg
        self.schedule = LCMSchedule.from_scheduler(models.scheduler, cfg.steps, cfg.strength)
        cond, uncond, tcond = models.text_conditioning(cfg.prompt, cfg.negative_prompt, guidance)
        batch = batch or cfg.window
        self.denoiser = UNetDenoiser(models.unet, cond, uncond, guidance, tcond, batch=batch)
        self.codec = LatentCodec(models.vae, chunk=batch)
        self.blender = TemporalBlender(cfg.blend, cfg.fuse)
        self.noise: FrameNoise | None = None

    def __call__(self, frames: torch.Tensor, indices: range, emit: range | None = None) -> torch.Tensor:
        """frames: uint8 (f, h, w, 3) for output frames ``indices``; returns uint8 frames of ``emit`` (default all).

        With overlapping windows, the frames a later window shares are emitted by that window (after fusion).
        """
        latents = self.codec.encode(to_unit(frames))  # (f, 4, h/8, w/8) float32
        if self.noise is None:
            self.noise = FrameNoise(self.cfg.seed, tuple(latents.shape[1:]), self.cfg.shared_noise, self.cfg.renoise)
        eps = self.noise.window(indices, latents.device)
        x = self.schedule.add_noise(latents, eps[0])
        x0 = sample(
            lambda x, t: self.denoiser(x, t, indices),
            x,
            self.schedule,
            eps,
            blend=lambda x0, i: self.blender(x0, i, indices),
        )
        self.blender.end_window()
        emit = indices if emit is None else emit
        keep = slice(emit.start - indices.start, emit.stop - indices.start)
        return to_uint8(self.codec.decode(x0[keep]))


def stylize(
    input: str | os.PathLike,
    output: str | os.PathLike,
    prompt: str | None = None,
    *,
    config: StylizeConfig | None = None,
    models: Models | None = None,
    **options: Any,
) -> RenderResult:
    """Restyle ``input`` into ``output`` with the same frame count, exact fps and audio.

    Options are the fields of :class:`StylizeConfig` (``steps=4, strength=0.5, blend=0.2, ...``). Pass ``models``
    from :func:`load_models` to reuse loaded weights across calls. Raises :class:`UserError` for bad input; on any
    error nothing is left at ``output`` and the input is never written to.
    """
    t_start = time.perf_counter()
    cfg = resolve_config(config, prompt, options)
    LCMSchedule.from_scheduler(LCMScheduler(), cfg.steps, cfg.strength)  # fail on steps/strength before loading
    out = check_output(output, (input,), cfg.codec)
    info = probe(input)
    plan = FramePlan.for_video(
        info.frames, info.fps, start=cfg.start, end=cfg.end, target_fps=cfg.fps, max_frames=cfg.max_frames
    )
    size = output_size(info, cfg.width, cfg.height)
    if models is None:
        models = load_models(cfg.model, cfg.lora, cfg.vae, cfg.device, cfg.dtype)
    stylizer = Stylizer(models, cfg, batch=min(cfg.window, len(plan)))
    reader = FrameReader(info, size)
    writer = VideoWriter(
        out,
        size,
        plan.fps,
        codec=cfg.codec,
        crf=cfg.crf,
        preset=cfg.preset,
        audio_from=info.path if cfg.audio else None,
        audio_start=float(plan.start),
        audio_duration=float(plan.duration),
    )
    bar = tqdm(total=len(plan), unit="frame", desc="stylize", file=sys.stderr, disable=cfg.quiet, dynamic_ncols=True)
    with writer, bar:
        for win in plan.windows(cfg.window):
            frames = reader.read([plan.sources[i] for i in win.indices])  # uint8 (f, h, w, 3)
            writer.write(stylizer(frames, win.indices))
            bar.update(len(win))
        writer.close()
    reader.close()
    calls = stylizer.denoiser.calls
    return RenderResult(out, len(plan), plan.fps, size, time.perf_counter() - t_start, calls)
