"""``run_live``: a source stylised frame by frame into sinks as it comes, reading top to bottom: settle the settings,
open the source, load, open the sinks, then the loop (take the newest frame → apply typed changes → stylise →
write to every sink → count). Memory stays flat: one frame in, one out, and the stylizer's carried state."""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..errors import Note, UserError
from ..files import write_json
from ..options import LIVE
from ..record import make_record
from ..settings.configs import StylizeConfig
from ..video import similarity
from .config import check_change, check_sinks, check_stream_batch, live_config, live_settings
from .feed import Controls, FrameFeed, Stats
from .sinks import Recording, Sink, open_sinks
from .sources import Source, open_source, parse_size, primed

LINE_EVERY = 0.5  # seconds between refreshes of the live line


@dataclass(frozen=True)
class LiveResult:
    """What a live run did: the recordings it finished, why it stopped (``end``: the source ended; ``interrupted``:
    Ctrl-C or a signal; ``max_frames``), and its figures (``stats``, as ``--stats`` writes them)."""

    recordings: list[Path]
    stopped: str
    stats: dict = field(default_factory=dict)

    @property
    def frames(self) -> int:
        return self.stats.get("frames_out", 0)


def run_live(
    input: str | Source,
    outputs: str | list[str] = (),
    prompt: str | None = None,
    *,
    config: StylizeConfig | str | os.PathLike | None = None,
    models=None,
    realtime: bool = False,
    stream_batch: bool = False,
    calibrate: str = "toy",
    input_size: str | tuple[int, int] | None = None,
    input_fps=None,
    stats: str | os.PathLike | None = None,
    controls: Iterable[str] | None = None,
    stdin: BinaryIO | None = None,
    on_frame: Callable[[np.ndarray, int], None] | None = None,
    **options: Any,
) -> LiveResult:
    """Stylise ``input`` live into ``outputs`` (one sink or a list; ``lcm-video live --help`` says what each can be).
    ``options`` are stylise's (``strength=0.4, model="toy"``, ...) less those a stream cannot use.

    ``controls``: lines such as ``prompt: a blue circle``, ``strength: 0.4``, ``seed: 3`` (a text stream, a list,
    any iterable; read on a thread), each applied before the next frame renders. ``stdin``: where ``-i -`` reads raw
    frames (default the process's). ``on_frame(frame, n)`` sees each output frame after the sinks, with the number of
    the source frame it stylised (a file's frame index; else counted from the source's first frame). ``stats``: a JSON
    file of the figures, written at the end. ``calibrate``: what ``--quantize int8`` calibrates on, ``toy`` frames or
    the ``source``'s first frames (``lcm-video live --help``). Ctrl-C (KeyboardInterrupt) stops cleanly: recordings
    are finished.
    Raises UserError for bad input (nothing is left at a recording's path); a sink failing mid-run stops the run
    with a UserError after the other recordings are finished.

    ``input`` may also be an opened :class:`~lcm_video.live.sources.Source` (the web UI's browser webcam), and
    ``outputs`` empty when ``on_frame`` takes the frames (the web UI shows them).
    """
    # 1. Settle the settings and the sinks (no torch), then open the source: it fixes the size.
    options = {"prompt": prompt, **options} if prompt is not None else options
    cfg = live_config(config, options, "run_live() arguments")
    specs = [outputs] if isinstance(outputs, (str, os.PathLike)) else list(outputs)
    specs = [str(s) for s in specs]
    if specs or on_frame is None:
        check_sinks(specs, cfg)
    if stream_batch:
        check_stream_batch(cfg)
    size = parse_size(input_size) if isinstance(input_size, str) or input_size is None else tuple(input_size)
    fps = None if input_fps is None else _fps(input_fps)
    f = cfg.frames
    if isinstance(input, Source):
        source = input
    else:
        source = open_source(str(input), f.width, f.height, realtime=realtime, frame_size=size, fps=fps, stdin=stdin)
    try:
        # 2. Load the models and make the stylizer: the stylise path with a UNet batch of 1.
        from ..pipelines.loader import models_for
        from ..pipelines.prepare import size_note
        from ..pipelines.quantize import LIVE_FRAMES, quantize_unet, toy_frames
        from ..pipelines.video_to_video import Stylizer

        for note in size_note(models.name if models is not None else cfg.model.model, source.size):
            warnings.warn(note, Note, stacklevel=2)  # as stylise says it: once, before the models load
        models = models_for(cfg.model, models)
        # --quantize int8's pass, one frame at a time as the run renders: toy-world frames or the source's first
        if cfg.model.quantize != "none" and calibrate == "source":
            source, frames = primed(source, LIVE_FRAMES)
        else:
            frames = toy_frames(source.size)
        quantize_unet(models, cfg, lambda: list(Stylizer(models, cfg, batch=1, size=source.size).stream(frames)))
        _warm_up(models, cfg, source.size, stream_batch)
        stylizer = Stylizer(models, cfg, batch=1, size=source.size)
        # 3. The sinks, each a recording with the settings record, a stream or a virtual camera.
        record = make_record(LIVE, live_settings(cfg), source.path, [models.runtime])
        record["live"] = {"input": source.name or str(input), "realtime": realtime}
        o = cfg.output
        sinks = open_sinks(specs, source.size, source.fps, record, o.codec, o.crf, o.preset, timed=source.live)
    except BaseException:
        source.close()
        raise
    changes = Controls(controls, check_change(stylizer.sampler.sampling)) if controls is not None else None
    batch = None
    if stream_batch:
        from .stream_batch import StreamBatch

        batch = StreamBatch(stylizer)
    engine = _Engine(stylizer, models, cfg, source, sinks, changes, on_frame, batch)
    result = engine.run()
    if stats is not None:
        write_json(Path(stats), result.stats)
    return result


def _warm_up(models, cfg, size: tuple[int, int], stream_batch: bool) -> None:
    """One throwaway toy-world frame at ``size`` (w, h) through the path the run takes (the stream batch's UNet batch
    too), before the source plays: OpenVINO converts and compiles at a shape's first call (the toy's at a new size:
    seconds; SD1.5's: minutes, then cached) and oneDNN builds its kernels at torch's, which done on the first source
    frame stall the stream (a realtime file's clock starts with its first frame). Its stylizer, and so its state, is
    thrown away: the run's frames are what they would be without it."""
    from ..pipelines.quantize import toy_frames
    from ..pipelines.video_to_video import Stylizer

    frames = toy_frames(size, 2)[:1]  # a clip of one frame has no motion to draw
    warm = Stylizer(models, cfg, batch=1, size=size)
    if stream_batch:
        from .stream_batch import StreamBatch

        batch = StreamBatch(warm)
        batch.push(frames[0], 0, 0, None)
        batch.flush()
    else:
        warm.window(frames, range(0, 1))


def _fps(value):
    from ..options import parse_fps

    return parse_fps(value)


class _Engine:
    """The loop of one run, and its state: what it has written, what changed when."""

    def __init__(self, stylizer, models, cfg, source: Source, sinks: list[Sink], controls, on_frame, batch=None):
        self.stylizer, self.models, self.cfg, self.batch = stylizer, models, cfg, batch
        self.source, self.sinks, self.controls, self.on_frame = source, sinks, controls, on_frame
        self.quiet = cfg.output.quiet
        self.stats = Stats()
        t = cfg.temporal  # the similarity filter: a frame close to the last rendered one repeats its output
        self.similar = similarity.Rule(t.skip_similar, t.skip_max) if t.skip_similar > 0 else None
        self.rendered = 0  # positions among rendered frames (blending's order); noise stays keyed on output frames
        self.last: np.ndarray | None = None  # the last output frame, which a similar frame repeats

    def run(self) -> LiveResult:
        feed = FrameFeed(self.source)
        limit, stopped, shown = self.cfg.frames.max_frames, "end", 0.0
        try:
            while True:
                self._apply_changes()
                got = feed.get()
                if got is None:
                    break
                for out, tag in self._render(*got):
                    self._emit(out, *tag)
                if not self.quiet and time.perf_counter() - shown > LINE_EVERY:
                    shown = time.perf_counter()
                    print("\r" + self.stats.line(feed), end="", file=sys.stderr, flush=True)
                if limit is not None and self.stats.out >= limit:
                    stopped = "max_frames"
                    break
            for out, tag in self.batch.flush() if self.batch is not None and stopped == "end" else ():
                self._emit(out, *tag)  # the frames still in flight when the source ended
        except KeyboardInterrupt:
            stopped = "interrupted"
        except _SinkFailed as failed:
            feed.stop()
            done = self._finish(skip=failed.sink)
            kept = f"; finished {', '.join(map(str, done))}" if done else ""
            raise UserError(f"{failed.message} after {self.stats.out} frames; stopped{kept}") from None
        except BaseException:
            feed.stop()
            for sink in self.sinks:
                sink.abort()
            raise
        finally:
            feed.stop()
            if shown:  # the live line ends (an error then gets a line of its own)
                print("\r" + self.stats.line(feed), file=sys.stderr, flush=True)
        recordings = self._finish()
        calls = self.stylizer.sampler.denoiser.calls
        summary = self.stats.summary(feed, stopped=stopped, size=list(self.source.size), unet_calls=calls)
        return LiveResult(recordings, stopped, summary)

    def _emit(self, out: np.ndarray, captured: float, n: int) -> None:
        """An output frame to every sink, counted, then shown to ``on_frame``."""
        self._write(out, captured)
        self.stats.wrote(captured)
        if self.on_frame is not None:
            self.on_frame(out, n)

    def _render(self, frame: np.ndarray, captured: float, n: int) -> list[tuple[np.ndarray, tuple[float, int]]]:
        """The output frames this input frame gives: its stylise (or, in a stream batch, the frame that finishes
        now, if any), or the last output again when the similarity filter finds it close to the last rendered one."""
        i = self.stats.out + (len(self.batch.inflight) if self.batch is not None else 0)  # its output frame number
        if self.similar is not None and self.similar.repeats(similarity.thumbnail(frame)):  # (no stream batch)
            self.stats.reused += 1
            return [(self.last, (captured, n))]
        p, key = self.rendered, i if self.similar is not None else self.rendered
        self.rendered += 1
        if self.batch is not None:
            done = self.batch.push(frame, p, key, (captured, n))
        else:
            keys = [key] if self.similar is not None else None
            done = [(self.stylizer.window(frame[None], range(p, p + 1), noise_keys=keys)[0], (captured, n))]
        if done:
            self.last = done[-1][0]
        return done

    def _write(self, out: np.ndarray, captured: float) -> None:
        for sink in self.sinks:
            try:
                sink.write(out, captured)
            except KeyboardInterrupt:
                raise
            except UserError as exc:  # the sink's own line
                raise _SinkFailed(sink, str(exc)) from None
            except Exception as exc:  # an OSError under it
                raise _SinkFailed(sink, f"sink {sink.name!r} failed: {exc}") from None

    def _finish(self, skip: Sink | None = None) -> list[Path]:
        """Finish every sink (recordings moved into place); a failed one is dropped."""
        done = []
        for sink in self.sinks:
            if sink is skip:
                sink.abort()
                continue
            path = sink.close()
            if path is not None and isinstance(sink, Recording):
                done.append(Path(path))
        self.sinks = []
        return done

    def _apply_changes(self) -> None:
        """Typed changes take effect from the next frame: a prompt's text states, a strength's schedule, a seed's
        noise. A new prompt or seed is a cut: the temporal state is dropped, else blending toward the frames made
        before it would fade the change in over many frames (at the default blends the toy's circle took 10+)."""
        if self.controls is None:
            return
        while not self.controls.notes.empty():
            print(f"\nlcm-video: {self.controls.notes.get()}", file=sys.stderr)
        for key, value in self.controls.pending():
            if apply_change(self.stylizer.sampler, key, value):
                self.stylizer.reset()
            if self.similar is not None:  # the next frame renders, however still the scene
                self.similar.reset()
            self.stats.changes.append({"frame": self.stats.out, key: value})


def apply_change(sampler, key: str, value) -> bool:
    """A live change to a loaded window sampler: ``prompt`` (its text states), ``strength`` (its schedule) or
    ``seed`` (its noise). True when it is a cut (a new prompt or seed: the caller drops the temporal state)."""
    if key == "prompt":
        sampler.set_prompt(value)  # the text states (and SDXL's pooled text)
        return True
    if key == "strength":
        sampler.set_strength(value)
        return False
    if key == "seed":
        sampler.seed, sampler.noise = value, None
        return True
    raise ValueError(f"not a live change: {key!r}")


class _SinkFailed(Exception):
    def __init__(self, sink: Sink, message: str):
        super().__init__(message)
        self.sink, self.message = sink, message
