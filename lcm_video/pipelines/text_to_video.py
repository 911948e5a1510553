"""Text-to-video: prompt (and keyframed prompts) → overlapping windows of a motion UNet → 4-step LCM → ffmpeg.

Clips longer than the motion module's context are rendered window after window; at every step the frames two windows
share are fused (flat / linear / pyramid weights), so memory grows with the window, never with the clip.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..events import OnProgress
from ..metrics import write_metrics
from ..models.container import Models
from ..options import GENERATE
from ..record import make_record
from ..settings.configs import GenerateConfig
from ..settings.resolve import resolve
from ..video.plan import window_schedule
from ..video.reader import VideoInfo
from ..video.writer import VideoWriter
from .control import ControlMaps
from .loader import models_for
from .prepare import Prepared, prepare_generate
from .quantize import quantize_unet
from .shell import render_shell, write_frames
from .window import Layout, RenderResult, WindowSampler, latent_shape, make_codec, window_layout


class ClipGenerator:
    """Text-to-video state: ``window(indices, emit)`` samples output frames ``indices`` from their keyed noise
    through the motion UNet and returns uint8 (e, h, w, 3) frames of ``emit``. ``prompts``: the prompt, or keyframes
    ``{frame: text}`` (``Prepared.prompts``)."""

    def __init__(
        self,
        models: Models,
        cfg: GenerateConfig,
        size: tuple[int, int],
        prompts: str | dict[int, str] | None = None,
        control_video: VideoInfo | None = None,
    ):
        if not models.motion:
            raise UserError("generate needs a motion adapter; load the models with --motion-adapter")
        prompts = cfg.prompt.prompt if prompts is None else prompts
        self.sampler = WindowSampler(models, cfg, prompts=prompts, strength=1.0, batch=None)
        self.codec = make_codec(models, None)
        self.shape = latent_shape(models, size)
        self.fps = cfg.frames.fps
        self.control = None
        if cfg.control.control:  # ``control_video``: the maps (``Prepared.control``), read by time
            self.control = ControlMaps(models, cfg, size, control_video)
            self.sampler.denoiser.control = self.control.guide

    def window(self, indices: range, emit: range) -> np.ndarray:
        maps = self.control.maps(None, [float(k / self.fps) for k in indices]) if self.control else None
        return self.codec.decode_frames(self.sampler.sample(None, indices, emit, self.shape, control=maps))


def generated_frames(
    generator: ClipGenerator, layout: Layout, total: int, start: int = 0, stop: int | None = None
) -> Iterator[tuple[range, np.ndarray]]:
    """Yield (output frames, uint8 (n, h, w, 3)) covering frames ``[start, stop)`` of a ``total``-frame clip: the
    window loop. A range after frame 0 (a batch segment) starts cold and warms up over ``layout.warm`` frames, in
    the whole clip's window layout."""
    stop = total if stop is None else stop
    warm = layout.warm if start > 0 else 0
    if generator.sampler.needs_anchor(start - warm):
        generator.window(range(0, min(layout.size, total)), range(0, 1))
        generator.sampler.reset()
    for step in window_schedule(start, stop, layout.size, layout.overlap, warm, total):
        out = generator.window(step.frames, step.emit)
        if len(step.keep):
            yield step.keep, out[step.keep.start - step.emit.start : step.keep.stop - step.emit.start]


def calibration(models: Models, cfg: GenerateConfig, prep: Prepared, frames: int):
    """``--quantize int8``'s pass for a generate render (``pipelines/quantize.py``): its first window of ``frames``
    through a fresh generator, the output dropped."""
    return lambda: ClipGenerator(models, cfg, prep.size, prep.prompts, prep.control).window(
        range(frames), range(frames)
    )


def generate(
    prompt: str | None,
    output: str | os.PathLike,
    *,
    config: GenerateConfig | str | Path | None = None,
    models: Models | None = None,
    on_progress: OnProgress | None = None,
    prepared: Prepared | None = None,
    **options: Any,
) -> RenderResult:
    """Render a clip of ``frames`` frames at ``fps`` from ``prompt`` into ``output``.

    ``config``: a :class:`GenerateConfig` or a YAML file; ``options`` are the names of ``lcm-video generate --help``
    with ``_`` for ``-``. ``models`` (from ``load_models(..., motion_adapter=...)``) reuses loaded weights.
    ``prepared``: the render as ``prepare_generate`` settled it (replaces ``config`` and ``options``).
    ``on_progress`` as for :func:`stylize`. Raises :class:`UserError` for bad input; nothing is left at ``output`` on
    error or cancel.
    """
    t_start = time.perf_counter()
    # 1. Settle the render: settings resolved (generate's model, adapter and size derived), output checked, frames.
    if prepared is None:
        options = {"prompt": prompt, **options} if prompt is not None else options
        loaded = models.name if models is not None else None
        cfg = resolve(GENERATE, config, options, "generate() arguments", loaded_model=loaded)
        prepared = prepare_generate(output, cfg)
    prep, cfg, o = prepared, prepared.cfg, prepared.cfg.output
    total = len(prep.plan)
    with render_shell(prep.output, GENERATE, total, o.quiet, on_progress) as progress:
        # 2. Load the models (or take the caller's).
        models = models_for(cfg.model, models)
        # 3. The render's state: the window layout (the motion context) and the generator.
        layout = window_layout(models, cfg, total)
        quantize_unet(models, cfg, calibration(models, cfg, prep, min(layout.size, total)))  # --quantize int8
        generator = ClipGenerator(models, cfg, prep.size, prep.prompts, prep.control)
        record = make_record(GENERATE, cfg.flat(), ran=[models.runtime])
        writer = VideoWriter(
            prep.output, prep.size, prep.plan.fps, codec=o.codec, crf=o.crf, preset=o.preset, record=record
        )
        # 4. The window loop, each window's frames written as they come.
        write_frames(writer, generated_frames(generator, layout, total), progress)
        if o.metrics:
            write_metrics(prep.output)
    seconds = time.perf_counter() - t_start
    return RenderResult(prep.output, total, prep.plan.fps, prep.size, seconds, generator.sampler.denoiser.calls)
