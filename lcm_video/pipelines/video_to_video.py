"""Video-to-video: source frames → plan → windows → encode → 4-step LCM with shared noise and blending → decode →
ffmpeg. Readable top to bottom; each stage is a small object or function of its own module."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..choices import DEFAULT_WINDOW
from ..core.codec import to_unit
from ..core.schedule import FrameSchedules, LCMSchedule
from ..errors import Note, UserError
from ..events import OnProgress, Progress, default_progress
from ..metrics import write_metrics
from ..models.container import Models
from ..options import STYLIZE
from ..record import make_record
from ..settings.configs import StylizeConfig
from ..settings.keyframes import parse_prompt_at, parse_strength_at
from ..settings.resolve import resolve
from ..temporal.flow import FlowEstimator, LatentMotion, fuse_frame, latent_motion
from ..video import similarity
from ..video.lock import OutputLock, remove_stale_partials
from ..video.plan import FramePlan, Reuse
from ..video.reader import FrameReader, VideoInfo
from ..video.writer import VideoWriter
from .loader import models_for
from .prepare import prepare_stylize
from .renderer import RenderResult, WindowRenderer, render_range, vae_factor, warmup_frames, window_layout

__all__ = ["RenderResult", "SourceRender", "Stylizer", "stylize"]


class Keyframes:
    """``{frame: value}`` keys → the value at any frame: linear between keys, held before the first and after the
    last (as ``PromptSchedule`` does for text)."""

    def __init__(self, keys: dict[int, float]):
        self.frames, self.values = sorted(keys), [keys[k] for k in sorted(keys)]

    def __call__(self, frame: int) -> float:
        return float(np.interp(frame, self.frames, self.values))


class Stylizer(WindowRenderer):
    """Video-to-video state, fed one window of source frames at a time.

    ``__call__(frames, indices, emit)``: uint8 (f, h, w, 3) source frames that are output frames ``indices``
    (following the previous window) → uint8 stylised frames of ``emit`` (default all of ``indices``). ``batch``
    (default ``cfg.window``) is the fixed 2D UNet/VAE batch; pass the clip length when it is shorter. ``frames``:
    the output's frame count, which ``--prompt-at`` keys are checked against.
    """

    def __init__(self, models: Models, cfg: StylizeConfig, batch: int | None = None, frames: int | None = None):
        batch = batch or cfg.temporal.window or DEFAULT_WINDOW
        p, sampling = cfg.prompt, cfg.sampling
        prompts = parse_prompt_at(p.prompt_at, frames, p.prompt) if p.prompt_at else p.prompt
        super().__init__(models, cfg, prompts=prompts, strength=sampling.strength, batch=batch)
        if sampling.strength_at:
            keys = parse_strength_at(sampling.strength_at, frames, sampling.strength)
            self.schedule = FrameSchedules(models.scheduler, sampling.steps, Keyframes(keys))
        t = cfg.temporal
        self.flow = FlowEstimator("dis") if t.warp == "flow" and (t.blend > 0 or t.pixel_blend > 0) else None
        self.pixel_blend = t.pixel_blend
        self._sources: dict[int, np.ndarray] = {}  # index → uint8 source frame, the last window's (flow to the next)
        self._motion: dict[int, Future] = {}  # index → motion from its previous frame, the last window's
        self._last: tuple[int, np.ndarray] | None = None  # (index, float32 frame): the last one emitted, unrounded

    def reset(self) -> None:
        """Forget the temporal state (blending, cross-frame's previous frame, the last output frame, and the source
        frames the next flow would start from): a cold start."""
        super().reset()
        self._sources, self._motion, self._last = {}, {}, None

    def motion(self, frames: torch.Tensor, indices: range, factor: int) -> PendingMotion:
        """{index: motion from the previous source frame} for every frame of the window whose previous frame is
        known (this window's, or the last one's): the flow of a pair is computed once, however windows overlap.

        The pairs are computed by a pool of threads (OpenCV's flow leaves Python's lock) while the window is encoded
        and its first UNet call runs; reading a frame's motion waits for it."""
        current = {i: frames[j].numpy() for j, i in enumerate(indices)}
        known = {**self._sources, **current}
        out = {}
        for i in indices:
            if i in self._motion:
                out[i] = self._motion[i]
            elif i - 1 in known:
                out[i] = _flow_pool().submit(latent_motion, known[i - 1], known[i], factor, self.flow)
        self._sources, self._motion = current, out
        return PendingMotion(out)

    def __call__(
        self, frames: torch.Tensor, indices: range, emit: range | None = None, noise_keys: list[int] | None = None
    ) -> torch.Tensor:
        motion = None
        if self.flow is not None:  # first, so the flows are computed while the VAE encodes
            motion = self.motion(frames, indices, vae_factor(self.models))
        latents = self.codec.encode(to_unit(frames))  # (f, 4, h/8, w/8) float32
        emit = indices if emit is None else emit
        out = self.render(latents, indices, emit, tuple(latents.shape[1:]), noise_keys, motion)
        return self.fuse(out, emit, motion) if self.pixel_blend > 0 else out

    def fuse(self, frames: torch.Tensor, emit: range, motion: PendingMotion | None) -> torch.Tensor:
        """``--pixel-blend``: each of the uint8 (e, h, w, 3) decoded frames ``emit``, in order, pulled toward the
        previous output frame (moved along ``motion``'s flow when given, else in place); the first frame after a
        cold start has nothing to follow."""
        out = frames.numpy().copy()
        for j, i in enumerate(emit):
            if self._last is not None and self._last[0] == i - 1:
                follows = None if motion is None else motion[i]
                fused = fuse_frame(out[j], self._last[1], self.pixel_blend, follows)
                out[j] = np.rint(fused).clip(0, 255).astype(np.uint8)
            else:
                fused = out[j].astype(np.float32)
            self._last = (i, fused)
        return torch.from_numpy(out)


_POOL: ThreadPoolExecutor | None = None


def _flow_pool() -> ThreadPoolExecutor:
    """The threads that compute optical flow ahead of the render (one per core, at most 8), made once."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1), thread_name_prefix="lcm-video-flow")
    return _POOL


class PendingMotion(Mapping):
    """{index: LatentMotion}, each computed in the background; ``[index]`` waits for that one."""

    def __init__(self, futures: dict[int, Future]):
        self._futures = futures

    def __getitem__(self, index: int) -> LatentMotion:
        return self._futures[index].result()

    def __iter__(self):
        return iter(self._futures)

    def __len__(self) -> int:
        return len(self._futures)


class SourceRender:
    """The stylised output frames of a planned source video, any range of them, window by window: what ``stylize``
    and batch segments share.

    With the similarity filter on, only the frames it keeps are rendered, as a video of their own: windows and
    blending run over their *positions* (0, 1, 2, … among rendered frames), noise stays keyed on output frame
    numbers, and the other output frames repeat the render they show.
    """

    def __init__(self, models: Models, cfg: StylizeConfig, info: VideoInfo, plan: FramePlan, size: tuple[int, int]):
        self.plan, self.reuse = plan, Reuse.none(len(plan))
        t = cfg.temporal
        if t.skip_similar > 0:
            self.reuse = similarity.scan(info, plan.sources, size, t.skip_similar, t.skip_max)
        rendered = self.reuse.rendered
        self.window, self.overlap = window_layout(models, cfg, rendered)
        self.warm = warmup_frames(max(t.blend, t.pixel_blend), self.window if models.motion else 0, self.overlap)
        self.stylizer = Stylizer(models, cfg, batch=min(self.window, rendered), frames=len(plan))
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

        def render(at: range, emit: range):
            frames = self.reader.read([self.plan.sources[self._frame_of[p]] for p in at])  # uint8 (f, h, w, 3)
            keys = [self._frame_of[p] for p in at] if self._filtered else None
            return self.stylizer(frames, at, emit, keys)

        total = len(self._frame_of)  # rendered positions: motion windows follow the whole render's layout
        warm = 0
        if positions.start != self._resume_at:
            self.stylizer.reset()
            warm = self.warm
            self.stylizer.prime_anchor(
                positions.start - warm, self.window, total, lambda first: render(first, range(0, 1))
            )

        for done, frames in render_range(
            lambda win, emit: render(win.indices, emit),
            positions.start,
            positions.stop,
            self.window,
            self.overlap,
            warm,
            total,
        ):
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
    config: StylizeConfig | str | Path | None = None,
    models: Models | None = None,
    on_progress: OnProgress | None = None,
    **options: Any,
) -> RenderResult:
    """Restyle ``input`` into ``output`` with the same frame count, exact fps and audio.

    ``config``: a :class:`StylizeConfig` or a YAML file of options; ``options`` (``steps=4, strength=0.5, blend=0.5,
    ...``, the names of ``lcm-video stylize --help`` with ``_`` for ``-``) win over it. Pass ``models`` from
    :func:`load_models` to reuse loaded weights across calls. With ``motion_adapter`` the frames go through a motion
    UNet in overlapping windows of ``context`` frames.

    ``on_progress`` receives a :class:`ProgressEvent` after loading, after every window and at the end (default: a
    progress bar on stderr unless ``quiet``); raising :class:`Cancelled` from it stops the render within the window.
    Raises :class:`UserError` for bad input; on any error or cancel nothing is left at ``output``, and the input is
    never written to.
    """
    t_start = time.perf_counter()
    if prompt is not None:
        options = {"prompt": prompt, **options}
    cfg = resolve(STYLIZE, config, options, "stylize() arguments")
    prep = prepare_stylize(input, output, cfg)
    out, info, plan, size = prep.output, prep.info, prep.plan, prep.size
    for note in prep.notes:
        warnings.warn(note, Note, stacklevel=2)
    for strength in parse_strength_at(cfg.sampling.strength_at, len(plan), cfg.sampling.strength).values():
        LCMSchedule.check(cfg.sampling.steps, strength)  # before loading anything
    with OutputLock(out), default_progress(on_progress, STYLIZE, cfg.output.quiet) as callback:
        remove_stale_partials(out)
        progress = Progress(callback, len(plan))
        progress.emit("load")
        models = models_for(cfg.model, models)
        if cfg.model.motion_adapter and not models.motion:
            raise UserError("--motion-adapter was given but the loaded models have none; load them with it")
        source = SourceRender(models, cfg, info, plan, size)
        o = cfg.output
        writer = VideoWriter(
            out,
            size,
            plan.fps,
            codec=o.codec,
            crf=o.crf,
            preset=o.preset,
            audio_from=info.path if o.audio and not info.images else None,
            audio_start=float(plan.start),
            audio_duration=float(plan.duration),
            record=make_record(STYLIZE, cfg.flat(), input, [models.ran]),
            times=plan.pts,
        )
        try:
            with writer:
                for done, frames in source.frames():
                    writer.write(frames)
                    progress.emit("render", len(done))
                writer.close()
        finally:
            source.close()
        if o.metrics:
            write_metrics(out, input)
        progress.emit("done")
    calls = source.stylizer.denoiser.calls
    reused = len(plan) - source.reuse.rendered
    seconds = time.perf_counter() - t_start
    return RenderResult(out, len(plan), plan.fps, size, seconds, calls, reused, variable_rate=plan.pts is not None)
