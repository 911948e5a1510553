"""Text-to-video: prompt (and keyframed prompts) → overlapping windows of a motion UNet → 4-step LCM → ffmpeg.

Clips longer than the motion module's context are rendered window after window; at every step the frames two windows
share are fused (flat / linear / pyramid weights), so memory grows with the window, never with the clip.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import torch
from tqdm.auto import tqdm

from .config import GenerateConfig, config_from, parse_prompt_at, validate_generate
from .errors import UserError
from .metrics import write_metrics
from .models import PRESETS, TINY_MODELS, Models, models_for, motion_preset
from .plan import FramePlan
from .render import RenderResult, WindowRenderer, latent_shape, motion_context, render_range
from .writer import VideoWriter, check_output


def resolve_generate_config(
    config: GenerateConfig | None, prompt: str | None, options: dict[str, Any], models: Models | None = None
) -> GenerateConfig:
    """Merge config, prompt and options, then fill the derived defaults (model, adapter, size) from the options, or
    from ``models`` when they are already loaded."""
    cfg = validate_generate(config_from(GenerateConfig, config, prompt, options, "generate() arguments"))
    model = cfg.model or (models.name if models is not None else None)
    adapter = cfg.motion_adapter or ("tiny" if model in TINY_MODELS else "animatelcm")
    mpreset = motion_preset(adapter)
    model = model or (mpreset.base if mpreset else PRESETS["sd15-lcm-lora"].base)
    side = 64 if model in TINY_MODELS else 512
    return cfg.replace(motion_adapter=adapter, model=model, width=cfg.width or side, height=cfg.height or side)


class ClipGenerator(WindowRenderer):
    """Text-to-video state: ``__call__(indices, emit)`` samples output frames ``indices`` from their keyed noise
    through the motion UNet and returns uint8 (e, h, w, 3) frames of ``emit``."""

    def __init__(self, models: Models, cfg: GenerateConfig, size: tuple[int, int]):
        if not models.motion:
            raise UserError("generate needs a motion adapter; load the models with --motion-adapter")
        super().__init__(
            models,
            prompts=parse_prompt_at(cfg.prompt_at, cfg.frames, cfg.prompt),
            negative_prompt=cfg.negative_prompt,
            guidance=cfg.guidance,
            steps=cfg.steps,
            strength=1.0,
            seed=cfg.seed,
            shared_noise=cfg.shared_noise,
            renoise=cfg.renoise,
            blend=cfg.blend,
            fuse=cfg.fuse,
            batch=None,
        )
        self.shape = latent_shape(models, size)

    def __call__(self, indices: range, emit: range) -> torch.Tensor:
        return self.render(None, indices, emit, self.shape)


def generate(
    prompt: str | None,
    output: str | os.PathLike,
    *,
    config: GenerateConfig | None = None,
    models: Models | None = None,
    **options: Any,
) -> RenderResult:
    """Render a clip of ``frames`` frames at ``fps`` from ``prompt`` into ``output``.

    Options are the fields of :class:`GenerateConfig`. ``models`` (from ``load_models(..., motion_adapter=...)``)
    reuses loaded weights. Raises :class:`UserError` for bad input; nothing is left at ``output`` on error.
    """
    t_start = time.perf_counter()
    cfg = resolve_generate_config(config, prompt, options, models)
    out = check_output(output, (), cfg.codec)
    size = (cfg.width, cfg.height)
    plan = FramePlan.for_clip(cfg.frames, cfg.fps)
    models = models_for(cfg, models)
    context, overlap = motion_context(models, cfg.context, cfg.overlap)
    generator = ClipGenerator(models, cfg, size)
    writer = VideoWriter(out, size, plan.fps, codec=cfg.codec, crf=cfg.crf, preset=cfg.preset)
    bar = tqdm(total=len(plan), unit="frame", desc="generate", file=sys.stderr, disable=cfg.quiet, dynamic_ncols=True)
    with writer, bar:
        for done, frames in render_range(lambda w, e: generator(w.indices, e), 0, len(plan), context, overlap):
            writer.write(frames)
            bar.update(len(done))
        writer.close()
    if cfg.metrics:
        write_metrics(out)
    return RenderResult(out, len(plan), plan.fps, size, time.perf_counter() - t_start, generator.denoiser.calls)
