"""Text-to-video: prompt (and keyframed prompts) → overlapping windows of a motion UNet → 4-step LCM → ffmpeg.

Clips longer than the motion module's context are rendered window after window; at every step the frames two windows
share are fused (flat / linear / pyramid weights), so memory grows with the window, never with the clip.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError
from ..events import OnProgress, Progress, default_progress
from ..metrics import write_metrics
from ..models.container import Models
from ..options import GENERATE
from ..record import make_record
from ..settings.configs import GenerateConfig
from ..settings.keyframes import parse_prompt_at
from ..settings.resolve import resolve
from ..video.lock import OutputLock, remove_stale_partials
from ..video.writer import VideoWriter
from .loader import models_for
from .prepare import prepare_generate
from .renderer import RenderResult, WindowRenderer, latent_shape, motion_context, render_range


class ClipGenerator(WindowRenderer):
    """Text-to-video state: ``__call__(indices, emit)`` samples output frames ``indices`` from their keyed noise
    through the motion UNet and returns uint8 (e, h, w, 3) frames of ``emit``."""

    def __init__(self, models: Models, cfg: GenerateConfig, size: tuple[int, int]):
        if not models.motion:
            raise UserError("generate needs a motion adapter; load the models with --motion-adapter")
        p = cfg.prompt
        prompts = parse_prompt_at(p.prompt_at, cfg.frames.frames, p.prompt)
        super().__init__(models, cfg, prompts=prompts, strength=1.0, batch=None)
        self.shape = latent_shape(models, size)

    def __call__(self, indices: range, emit: range) -> torch.Tensor:
        return self.render(None, indices, emit, self.shape)


def generate(
    prompt: str | None,
    output: str | os.PathLike,
    *,
    config: GenerateConfig | str | Path | None = None,
    models: Models | None = None,
    on_progress: OnProgress | None = None,
    **options: Any,
) -> RenderResult:
    """Render a clip of ``frames`` frames at ``fps`` from ``prompt`` into ``output``.

    ``config``: a :class:`GenerateConfig` or a YAML file; ``options`` are the names of ``lcm-video generate --help``
    with ``_`` for ``-``. ``models`` (from ``load_models(..., motion_adapter=...)``) reuses loaded weights.
    ``on_progress`` as for :func:`stylize`. Raises :class:`UserError` for bad input; nothing is left at ``output`` on
    error or cancel.
    """
    t_start = time.perf_counter()
    if prompt is not None:
        options = {"prompt": prompt, **options}
    loaded = models.name if models is not None else None
    cfg = resolve(GENERATE, config, options, "generate() arguments", loaded_model=loaded)
    o = cfg.output
    prep = prepare_generate(output, cfg)
    out, plan, size = prep.output, prep.plan, prep.size
    with OutputLock(out), default_progress(on_progress, GENERATE, o.quiet) as callback:
        remove_stale_partials(out)
        progress = Progress(callback, len(plan))
        progress.emit("load")
        models = models_for(cfg.model, models)
        context, overlap = motion_context(models, cfg.temporal.context, cfg.temporal.overlap)
        generator = ClipGenerator(models, cfg, size)
        record = make_record(GENERATE, cfg.flat(), ran=[models.ran])
        writer = VideoWriter(out, size, plan.fps, codec=o.codec, crf=o.crf, preset=o.preset, record=record)
        with writer:
            for done, frames in render_range(lambda w, e: generator(w.indices, e), 0, len(plan), context, overlap):
                writer.write(frames)
                progress.emit("render", len(done))
            writer.close()
        if o.metrics:
            write_metrics(out)
        progress.emit("done")
    return RenderResult(out, len(plan), plan.fps, size, time.perf_counter() - t_start, generator.denoiser.calls)
