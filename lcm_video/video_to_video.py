"""Video-to-video: source frames → plan → windows → encode → 4-step LCM with shared noise and blending → decode →
ffmpeg. Readable top to bottom; each stage is a small object or function of its own module."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from typing import Any

import torch
from diffusers import LCMScheduler
from torch import Tensor
from tqdm.auto import tqdm

from . import similarity
from .config import DEFAULT_WINDOW, StylizeConfig, config_from, validate
from .errors import UserError
from .metrics import write_metrics
from .models import Models, models_for
from .plan import FramePlan, Reuse
from .reader import FrameReader, VideoInfo, output_size, probe
from .render import (
    RenderResult,
    WindowRenderer,
    render_range,
    warmup_frames,
    window_layout,
)
from .sampler import LCMSchedule
from .vae import to_unit
from .writer import VideoWriter, check_output

__all__ = ["RenderResult", "Stylizer", "stylize"]


def resolve_config(config: StylizeConfig | None, prompt: str | None, options: dict[str, Any]) -> StylizeConfig:
    """Merge a config object, a prompt and keyword options (later wins) into one validated config."""
    return validate(config_from(StylizeConfig, config, prompt, options, "stylize() arguments"))


class Stylizer(WindowRenderer):
    """Video-to-video state, fed one window of source frames at a time.

    ``__call__(frames, indices, emit)``: uint8 (f, h, w, 3) source frames that are output frames ``indices``
    (following the previous window) → uint8 stylised frames of ``emit`` (default all of ``indices``). ``batch``
    (default ``cfg.window``) is the fixed 2D UNet/VAE batch; pass the clip length when it is shorter.
    """

    def __init__(self, models: Models, cfg: StylizeConfig, batch: int | None = None):
        super().__init__(
            models,
            prompts=cfg.prompt,
            negative_prompt=cfg.negative_prompt,
            guidance=cfg.guidance,
            steps=cfg.steps,
            strength=cfg.strength,
            seed=cfg.seed,
            shared_noise=cfg.shared_noise,
            renoise=cfg.renoise,
            blend=cfg.blend,
            fuse=cfg.fuse,
            batch=batch or cfg.window or DEFAULT_WINDOW,
        )

    def __call__(
        self, frames: torch.Tensor, indices: range, emit: range | None = None, noise_keys: list[int] | None = None
    ) -> torch.Tensor:
        latents = self.codec.encode(to_unit(frames))  # (f, 4, h/8, w/8) float32
        emit = indices if emit is None else emit
        return self.render(latents, indices, emit, tuple(latents.shape[1:]), noise_keys)


def plan_video(info: VideoInfo, cfg: StylizeConfig) -> FramePlan:
    """The output frames of a stylise render of ``info`` under ``cfg`` (range, target fps, frame cap)."""
    return FramePlan.for_video(
        info.frames, info.fps, start=cfg.start, end=cfg.end, target_fps=cfg.fps, max_frames=cfg.max_frames
    )


class SourceRender:
    """The stylised output frames of a planned source video, any range of them, window by window: what ``stylize``
    and batch segments share.

    With the similarity filter on, only the frames it keeps are rendered, as a video of their own: windows and
    blending run over their *positions* (0, 1, 2, … among rendered frames), noise stays keyed on output frame
    numbers, and the other output frames repeat the render they show.
    """

    def __init__(self, models: Models, cfg: StylizeConfig, info: VideoInfo, plan: FramePlan, size: tuple[int, int]):
        self.plan, self.reuse = plan, Reuse.none(len(plan))
        if cfg.skip_similar > 0:
            self.reuse = similarity.scan(info, plan.sources, size, cfg.skip_similar, cfg.skip_max)
        rendered = self.reuse.rendered
        self.window, self.overlap = window_layout(models, cfg, rendered)
        self.warm = warmup_frames(cfg.blend, self.window if models.motion else 0, self.overlap)
        self.stylizer = Stylizer(models, cfg, batch=min(self.window, rendered))
        self.reader = FrameReader(info, size)
        shows = self.reuse.shows
        # The output frame each position stands for: the first that shows it.
        self._frame_of = [i for i in range(len(shows)) if i == 0 or shows[i] != shows[i - 1]]
        self._filtered = rendered < len(shows)
        self._resume_at = 0  # the position after the last one rendered: where the temporal state is valid

    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[range, Tensor]]:
        """Yield (output frames, uint8 (n, h, w, 3)) covering output frames ``[start, stop)`` in order.

        A range that does not continue the previous call (a segment of a longer render) starts cold: the temporal
        state is dropped and rebuilt by re-rendering a few frames before ``start`` (see ``warmup_frames``).
        """
        stop = len(self.plan) if stop is None else stop
        positions = self.reuse.positions(start, stop)
        warm = 0
        if positions.start != self._resume_at:
            self.stylizer.blender.reset()
            warm = self.warm

        def window_fn(win, emit):
            frames = self.reader.read([self.plan.sources[self._frame_of[p]] for p in win.indices])  # uint8 (f,h,w,3)
            keys = [self._frame_of[p] for p in win.indices] if self._filtered else None
            return self.stylizer(frames, win.indices, emit, keys)

        for done, frames in render_range(window_fn, positions.start, positions.stop, self.window, self.overlap, warm):
            self._resume_at = done.stop
            out, offsets = self.reuse.expand(done, start, stop)
            if len(out):
                yield out, frames[offsets]

    def close(self) -> None:
        self.reader.close()


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
    from :func:`load_models` to reuse loaded weights across calls. With ``motion_adapter`` the frames go through a
    motion UNet in overlapping windows of ``context`` frames. Raises :class:`UserError` for bad input; on any error
    nothing is left at ``output`` and the input is never written to.
    """
    t_start = time.perf_counter()
    cfg = resolve_config(config, prompt, options)
    LCMSchedule.from_scheduler(LCMScheduler(), cfg.steps, cfg.strength)  # fail on steps/strength before loading
    out = check_output(output, (input,), cfg.codec)
    info = probe(input)
    plan = plan_video(info, cfg)
    size = output_size(info, cfg.width, cfg.height)
    models = models_for(cfg, models)
    if cfg.motion_adapter and not models.motion:
        raise UserError("--motion-adapter was given but the loaded models have none; load them with it")
    source = SourceRender(models, cfg, info, plan, size)
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
        for done, frames in source.frames():
            writer.write(frames)
            bar.update(len(done))
        writer.close()
    source.close()
    if cfg.metrics:
        write_metrics(out, input)
    calls = source.stylizer.denoiser.calls
    return RenderResult(out, len(plan), plan.fps, size, time.perf_counter() - t_start, calls)
