"""Video-to-video: source frames → plan → windows → encode → 4-step LCM with shared noise and blending → decode →
ffmpeg. ``stylize`` reads top to bottom: settle the render once, load, then the window loop in ``stylized_frames``."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..choices import DEFAULT_WINDOW
from ..errors import Note, UserError
from ..events import OnProgress
from ..keyframes import Keyframes
from ..metrics import write_metrics
from ..models.container import Models
from ..options import STYLIZE
from ..record import make_record
from ..settings.configs import StylizeConfig
from ..settings.resolve import resolve
from ..temporal.flow import FlowEstimator
from ..temporal.motion import PixelBlender, SourceMotion
from ..video import similarity
from ..video.plan import FrameMap, window_schedule
from ..video.reader import FrameReader, VideoInfo
from ..video.writer import VideoWriter
from .control import ControlMaps
from .loader import models_for
from .prepare import Prepared, prepare_stylize
from .quantize import quantize_unet
from .shell import render_shell, write_frames
from .window import Layout, RenderResult, WindowSampler, make_codec, vae_factor, window_layout

if TYPE_CHECKING:
    import torch

__all__ = ["RenderResult", "Stylizer", "stylize", "stylized_frames"]


class Stylizer:
    """Video-to-video state, fed one window of source frames at a time: the window sampler, the VAE codec, the
    source's motion (``--warp flow``) and the pixel blender (``--pixel-blend``), composed.

    ``window(frames, indices, emit)``: uint8 (f, h, w, 3) source frames that are output frames ``indices``
    (following the previous window) → uint8 (e, h, w, 3) stylised frames of ``emit`` (default all of ``indices``);
    ``latents``: the frames' float32 latents (f, c, h/8, w/8) when the caller has them.
    ``batch`` (default ``--window``) is the fixed 2D UNet/VAE batch: frames come out the same whatever the windows.
    ``prompts`` / ``strengths``: keyframes parsed against the output's frame count (``Prepared``); default the
    config's one prompt and strength.
    """

    def __init__(
        self,
        models: Models,
        cfg: StylizeConfig,
        batch: int | None = None,
        prompts: str | dict[int, str] | None = None,
        strengths: Keyframes | None = None,
        size: tuple[int, int] | None = None,
        control_video: VideoInfo | None = None,
        control_cache: Path | None = None,
    ):
        t = cfg.temporal
        batch = batch or t.window or DEFAULT_WINDOW
        prompts = cfg.prompt.prompt if prompts is None else prompts
        self.sampler = WindowSampler(
            models, cfg, prompts=prompts, strength=cfg.sampling.strength, strengths=strengths, batch=batch
        )
        self.codec = make_codec(models, batch)
        flow = t.warp == "flow" and (t.blend > 0 or t.pixel_blend > 0)
        self.motion = SourceMotion(FlowEstimator("dis"), vae_factor(models)) if flow else None
        self.pixels = PixelBlender(t.pixel_blend) if t.pixel_blend > 0 else None
        self.control = None
        if cfg.control.control:  # maps annotated from each window's frames, or read from ``control_video``
            if size is None:
                raise ValueError("--control needs the output size: Stylizer(..., size=(w, h))")
            self.control = ControlMaps(models, cfg, size, control_video, control_cache)
            self.sampler.denoiser.control = self.control.guide
        self._next = 0  # the position ``stream`` renders next

    def reset(self) -> None:
        """Forget the temporal state (blending, cross-frame's previous frame, the last output frame, the source
        frames the next flow would start from): a cold start."""
        self.sampler.reset()
        for part in (self.motion, self.pixels):
            if part is not None:
                part.reset()

    def window(
        self,
        frames: np.ndarray,
        indices: range,
        emit: range | None = None,
        noise_keys: list[int] | None = None,
        at: list[float] | None = None,
        latents: torch.Tensor | None = None,
    ) -> np.ndarray:
        emit = indices if emit is None else emit
        # 0. the ControlNets' maps: annotated from the frames, or the control video's at times ``at`` (seconds)
        maps = self.control.maps(frames, at or []) if self.control is not None else None
        # 1. the flows first, so the pool computes them while the VAE encodes and the first UNet call runs
        motion = self.motion.window(frames, indices) if self.motion is not None else None
        # 2. encode: uint8 frames become float32 latents (f, c, h/8, w/8), unless the caller has them (the preview's
        # still frame, encoded once for all its renders: the posterior mean, so the same latents)
        latents = self.codec.encode_frames(frames) if latents is None else latents
        # 3. sample: noise to the first timestep, the LCM steps with blending; x0 of the emitted frames
        x0 = self.sampler.sample(latents, indices, emit, tuple(latents.shape[1:]), noise_keys, motion, maps)
        # 4. decode to uint8, then pull each frame toward the previous output frame
        out = self.codec.decode_frames(x0)
        return self.pixels(out, emit, motion) if self.pixels is not None else out

    def stream(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Stylise uint8 (h, w, 3) frames one at a time as they come (a camera, a pipe, any iterator), continuing
        where the last call stopped: the same frames as a render of the whole source with the 2D UNet (the fixed
        batch makes a window of 1 compute what a window of 16 does)."""
        for frame in frames:
            i = self._next
            yield self.window(frame[None], range(i, i + 1))[0]
            self._next = i + 1


def source_map(cfg: StylizeConfig, prep: Prepared) -> FrameMap:
    """Which output frames are rendered and which repeat an earlier render (``--skip-similar``; else all rendered)."""
    t = cfg.temporal
    if t.skip_similar > 0:
        return similarity.scan(prep.info, prep.plan.sources, prep.size, t.skip_similar, t.skip_max)
    return FrameMap.identity(len(prep.plan))


def stylized_frames(
    stylizer: Stylizer,
    reader: FrameReader,
    prep: Prepared,
    fmap: FrameMap,
    layout: Layout,
    start: int = 0,
    stop: int | None = None,
) -> Iterator[tuple[range, np.ndarray]]:
    """Yield (output frames, uint8 (n, h, w, 3)) covering output frames ``[start, stop)`` in order: the window loop.

    With the similarity filter on, only the frames it keeps are rendered, as a video of their own: windows and
    blending run over their *positions* (0, 1, 2, … among rendered frames), noise stays keyed on output frame
    numbers, and the other output frames repeat the render they show. A range that starts after frame 0 (a segment
    of a longer render) starts cold: ``layout.warm`` frames before it are rendered first and dropped.
    """
    stop = len(prep.plan) if stop is None else stop
    positions = fmap.positions(start, stop)
    frame_of = fmap.first_frames  # the output frame each position stands for: the first that shows it
    keyed = fmap.rendered < len(fmap.shows)  # noise keyed on output frames, not positions

    def read(at: range) -> tuple[np.ndarray, list[int] | None, list[float]]:
        sources = [prep.plan.sources[frame_of[p]] for p in at]
        frames = reader.read(sources)  # uint8 (f, h, w, 3)
        seconds = [float(i / prep.info.fps) for i in sources]  # where --control-video is read
        return frames, [frame_of[p] for p in at] if keyed else None, seconds

    warm = layout.warm if positions.start > 0 else 0
    if stylizer.sampler.needs_anchor(positions.start - warm):
        first = range(0, min(layout.size if stylizer.sampler.models.motion else 1, fmap.rendered))
        frames, keys, seconds = read(first)
        stylizer.window(frames, first, range(0, 1), keys, seconds)
        stylizer.reset()
    for step in window_schedule(positions.start, positions.stop, layout.size, layout.overlap, warm, fmap.rendered):
        frames, keys, seconds = read(step.frames)
        out = stylizer.window(frames, step.frames, step.emit, keys, seconds)
        if len(step.keep):
            done, offsets = fmap.expand(step.keep, start, stop)
            kept = out[step.keep.start - step.emit.start : step.keep.stop - step.emit.start]
            if len(done):
                yield done, kept[offsets]


def calibration(
    models: Models, cfg: StylizeConfig, prep: Prepared, batch: int | None = None, control_cache: Path | None = None
):
    """``--quantize int8``'s pass for a stylise render (``pipelines/quantize.py``): its first window of ``batch``
    source frames (default the render's UNet batch) through a fresh stylizer, the output dropped."""

    def run(batch=batch) -> None:
        if batch is None:
            rendered = source_map(cfg, prep).rendered
            batch = min(window_layout(models, cfg, rendered).size, rendered)
        n = min(batch, len(prep.plan))
        reader = FrameReader(prep.info, prep.size)
        try:
            frames = reader.read(list(prep.plan.sources[:n]))
        finally:
            reader.close()
        st = Stylizer(models, cfg, batch, prep.prompts, prep.strengths, prep.size, prep.control, control_cache)
        st.window(frames, range(n))

    return run


def stylize(
    input: str | os.PathLike,
    output: str | os.PathLike,
    prompt: str | None = None,
    *,
    config: StylizeConfig | str | Path | None = None,
    models: Models | None = None,
    on_progress: OnProgress | None = None,
    prepared: Prepared | None = None,
    **options: Any,
) -> RenderResult:
    """Restyle ``input`` into ``output`` with the same frame count, exact fps and audio.

    ``config``: a :class:`StylizeConfig` or a YAML file of options; ``options`` (``steps=4, strength=0.5, blend=0.5,
    ...``, the names of ``lcm-video stylize --help`` with ``_`` for ``-``) win over it. Pass ``models`` from
    :func:`load_models` to reuse loaded weights across calls. With ``motion_adapter`` the frames go through a motion
    UNet in overlapping windows of ``context`` frames. ``prepared``: the render as ``prepare_stylize`` settled it
    (the command line and the web UI pass theirs, so nothing is resolved or probed twice); it replaces ``config``
    and ``options``.

    ``on_progress`` receives a :class:`ProgressEvent` after loading, after every window and at the end (default: a
    progress bar on stderr unless ``quiet``); raising :class:`Cancelled` from it stops the render within the window.
    Raises :class:`UserError` for bad input; on any error or cancel nothing is left at ``output``, and the input is
    never written to.
    """
    t_start = time.perf_counter()
    # 1. Settle the render: settings resolved and validated, output checked, source probed, frames planned (no torch).
    if prepared is None:
        options = {"prompt": prompt, **options} if prompt is not None else options
        loaded = models.name if models is not None else None  # their preset says how they sample
        cfg = resolve(STYLIZE, config, options, "stylize() arguments", loaded_model=loaded)
        prepared = prepare_stylize(input, output, cfg, loaded)
        for note in prepared.notes:
            warnings.warn(note, Note, stacklevel=2)
    prep, cfg, o = prepared, prepared.cfg, prepared.cfg.output
    with render_shell(prep.output, STYLIZE, len(prep.plan), o.quiet, on_progress) as progress:
        # 2. Load the models (or take the caller's).
        models = models_for(cfg.model, models)
        if cfg.model.motion_adapter and not models.motion:
            raise UserError("--motion-adapter was given but the loaded models have none; load them with it")
        # 3. The render's state: which frames are rendered, the window layout, the stylizer.
        fmap = source_map(cfg, prep)
        layout = window_layout(models, cfg, fmap.rendered)
        batch = min(layout.size, fmap.rendered)
        quantize_unet(models, cfg, calibration(models, cfg, prep, batch))  # --quantize int8's pass
        stylizer = Stylizer(models, cfg, batch, prep.prompts, prep.strengths, prep.size, prep.control)
        reader = FrameReader(prep.info, prep.size)
        writer = VideoWriter(
            prep.output,
            prep.size,
            prep.plan.fps,
            codec=o.codec,
            crf=o.crf,
            preset=o.preset,
            audio_from=prep.info.path if o.audio and not prep.info.images else None,
            audio_start=float(prep.plan.start),
            audio_duration=float(prep.plan.duration),
            record=make_record(STYLIZE, cfg.flat(), input, [models.runtime]),
            times=prep.plan.pts,
        )
        # 4. The window loop, each window's frames written as they come.
        try:
            write_frames(writer, stylized_frames(stylizer, reader, prep, fmap, layout), progress)
        finally:
            reader.close()
        if o.metrics:
            write_metrics(prep.output, input)
    calls, reused = stylizer.sampler.denoiser.calls, len(prep.plan) - fmap.rendered
    seconds, n = time.perf_counter() - t_start, len(prep.plan)
    return RenderResult(prep.output, n, prep.plan.fps, prep.size, seconds, calls, reused, prep.plan.pts is not None)
