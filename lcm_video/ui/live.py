"""The Live tab's server side: the browser's webcam frames (Gradio's streaming image) fed to the live engine
(:func:`lcm_video.live.run.run_live`, on a thread of its own per page) through :class:`BrowserSource`; the newest
stylised frame is handed back on each streamed frame. Prompt, strength and seed changes go in as the engine's
control lines (``prompt: ...``), so they take effect as ``lcm-video live``'s do: from the next frame, a prompt or
seed change a cut."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from ..errors import UserError
from ..live.sources import DEFAULT_RATE, Captured, Source, cover_of, scaled
from ..models.presets import PRESETS
from ..options import STYLIZE
from ..settings.parts import SETTINGS
from ..video.reader import VideoInfo, output_size
from . import widgets
from .handlers import session_of, user_errors

CHANGES = ("prompt", "strength", "seed")  # what the page changes while it runs (the engine's control keys)


class BrowserSource(Source):
    """Frames the page streams in (``put``), uint8 (h, w, 3) of the first frame's size, each scaled to cover the
    output size and centre-cropped as a webcam's are; live: a frame put while the engine is busy replaces the one
    waiting (the engine's feed counts it as dropped). A frame of another size ends the run with one line."""

    def __init__(self, first: np.ndarray, width: int | None, height: int | None):
        h, w = first.shape[:2]
        self.frame_size = (w, h)
        self.size = output_size(VideoInfo(None, 0, DEFAULT_RATE, w, h), width, height)
        self.cover = cover_of(w, h, self.size)
        self.fps: Fraction = DEFAULT_RATE
        self.live, self.name = True, "browser webcam"
        self._slot: np.ndarray | None = first
        self._at = time.perf_counter()
        self._cond = threading.Condition()
        self.times: dict[int, float] = {}  # capture time of each frame handed to the engine, until it is shown

    def put(self, frame: np.ndarray) -> None:
        with self._cond:
            self._slot, self._at = frame, time.perf_counter()
            self._cond.notify_all()

    def close(self) -> None:
        super().close()
        with self._cond:
            self._cond.notify_all()

    def frames(self) -> Iterator[Captured]:
        n = 0
        while True:
            with self._cond:
                while self._slot is None and not self.closed:
                    self._cond.wait(0.1)
                if self.closed:
                    return
                frame, at, self._slot = self._slot, self._at, None
                self.times[n] = at
            if frame.shape[1::-1] != self.frame_size:
                w, h = self.frame_size
                raise UserError(f"the webcam's frames changed size mid-stream ({w}x{h} → "
                                f"{frame.shape[1]}x{frame.shape[0]}); press Start again")  # fmt: skip
            yield scaled(np.ascontiguousarray(frame[..., :3]), self.cover, self.size), at, n
            n += 1


@dataclass
class LiveRun:
    """One page's live run: its source, its control lines, the newest output frame, its figures."""

    source: BrowserSource
    lines: queue.Queue = field(default_factory=queue.Queue)
    values: dict[str, Any] = field(default_factory=dict)
    latest: np.ndarray | None = None
    outputs: int = 0
    started: float = field(default_factory=time.perf_counter)
    recent: list[tuple[float, float]] = field(default_factory=list)  # (written at, latency s) of the last frames
    result: Any = None
    error: BaseException | None = None
    thread: threading.Thread | None = None

    def controls(self) -> Iterator[str]:
        while (line := self.lines.get()) is not None:
            yield line

    def shown(self, frame: np.ndarray, n: int) -> None:  # the engine's on_frame
        now = time.perf_counter()
        self.latest, self.outputs = frame, self.outputs + 1
        times = self.source.times
        self.recent = [*self.recent[-29:], (now, now - times.get(n, now))]
        for k in [k for k in list(times) if k <= n]:  # this one and any the feed dropped
            times.pop(k, None)

    def line(self) -> str:
        if self.error is not None:
            return f"stopped: {self.error}"
        r = self.recent
        fps = (len(r) - 1) / (r[-1][0] - r[0][0]) if len(r) > 1 and r[-1][0] > r[0][0] else 0.0
        lat = sorted(x[1] * 1000 for x in r) or [0.0]
        return (f"live: {fps:.1f} fps, latency p50 {lat[len(lat) // 2]:.0f} ms, {self.outputs} frames "
                f"({self.source.size[0]}x{self.source.size[1]})")  # fmt: skip


class LiveRuns:
    """The live runs of the pages, by session: ``frame`` (a streamed webcam frame → the newest stylised one and the
    figures line; starts the run on the first frame after Start), ``stop`` (ends it, the recording finished)."""

    def __init__(self, app):
        self.app = app
        self.armed: dict[str, dict[str, Any]] = {}  # session → the settings Start was pressed with
        self.runs: dict[str, LiveRun] = {}
        self._lock = threading.Lock()

    def start(self, session: str, values: dict[str, Any], record: bool) -> str:
        from ..live.config import live_config

        self.stop(session)
        cfg = live_config(None, _options(values), "the Live tab's settings")  # a bad value: its line, now
        self.armed[session] = {"values": values, "record": record, "cfg": cfg}
        return "started: waiting for the webcam's frames (press the webcam's record button to stream)"

    def frame(self, session: str, frame: np.ndarray | None, values: dict[str, Any]) -> tuple[Any, str]:
        if frame is None:
            return gr.skip(), gr.skip()
        with self._lock:
            run = self.runs.get(session)
            if run is None:
                armed = self.armed.get(session)
                if armed is None:  # not started (or stopped: its line stays)
                    return gr.skip(), gr.skip()
                run = self._open(session, armed, frame)
                return None, "loading the model…"
        if run.thread is not None and not run.thread.is_alive() and run.error is not None:
            self.runs.pop(session, None)
            self.armed.pop(session, None)
            return run.latest, f"stopped: {run.error}"
        run.source.put(np.asarray(frame))
        for key in CHANGES:
            value = values.get(key)
            if value is not None and value != "" and value != run.values.get(key):
                run.values[key] = value
                run.lines.put(f"{key}: {int(value) if key == 'seed' else value}")
        return run.latest, run.line()

    def _open(self, session: str, armed: dict, frame: np.ndarray) -> LiveRun:
        from ..live.run import run_live
        from .session import output_name

        cfg = armed["cfg"]
        width, height = cfg.frames.width, cfg.frames.height
        if width is None and height is None:  # a webcam's 640x480 is far above a small model's size: render near it
            width = _native_width(cfg.model.model, np.asarray(frame).shape)
        source = BrowserSource(np.asarray(frame), width, height)
        run = LiveRun(source, values={k: armed["values"].get(k) for k in CHANGES})
        outputs = [str(output_name(self.app.out, "live", cfg.sampling.seed))] if armed["record"] else []

        def go() -> None:
            try:
                models = self.app.models(cfg.model)
                run.result = run_live(source, outputs, config=cfg, models=models, controls=run.controls(),
                                      on_frame=run.shown)  # fmt: skip
            except BaseException as exc:  # shown on the page's next frame
                run.error = exc if isinstance(exc, UserError) else UserError(f"{type(exc).__name__}: {exc}")
            finally:
                run.lines.put(None)

        run.thread = threading.Thread(target=go, name=f"live-{session[:8]}", daemon=True)
        self.runs[session] = run
        run.thread.start()
        return run

    def stop(self, session: str) -> tuple[str, str | None]:
        """End the session's run: the source closes, the engine finishes its frame and the recording."""
        self.armed.pop(session, None)
        with self._lock:
            run = self.runs.pop(session, None)
        if run is None:
            return "stopped", None
        run.source.close()
        if run.thread is not None:
            run.thread.join(timeout=30)
        if run.error is not None:
            return f"stopped: {run.error}", None
        res = run.result
        if res is None:
            return "stopped", None
        kept = [str(p) for p in res.recordings]
        s = res.stats
        lat = s["latency_ms"]
        line = (f"stopped: {s.get('frames_out', 0)} frames, {s.get('fps_out', 0):.1f} fps, latency p50 "
                f"{lat['p50']} ms p95 {lat['p95']} ms, dropped {s.get('dropped', 0)}")  # fmt: skip
        if kept:
            line += f"; recorded {Path(kept[0]).name}"
        return line, kept[0] if kept else None


LIVE_MAIN = ("prompt", "negative_prompt", "model", "strength", "steps", "seed", "blend", "width", "height")
LIVE_STREAM_EVERY = 0.1  # seconds between the webcam frames the page sends (the engine drops what it cannot take)


def live_tab(app) -> None:
    """The browser's webcam in, the live engine's stylised frames out; prompt, strength and seed change while it
    runs; Start arms it (the webcam's own button streams), Stop ends it and finishes the recording."""
    models = list(PRESETS) + sorted(app.allowed - set(PRESETS))
    values = {"model": app.model} if app.model else {}
    inputs: dict[str, Any] = {}
    with gr.Row():
        with gr.Column(scale=1):
            camera = gr.Image(label="webcam", sources=["webcam"], streaming=True, type="numpy", height=240,
                              elem_id="live-camera")  # fmt: skip
            for name in LIVE_MAIN:
                opt = SETTINGS[name]
                choices = models if name == "model" else None
                inputs[name] = widgets.component(opt, STYLIZE, values.get(name), choices, tab="live")
            record = gr.Checkbox(label="record to a file in the output folder (finished on Stop)", value=False,
                                 elem_id="live-record")  # fmt: skip
            with gr.Row():
                start = gr.Button("Start", variant="primary", elem_id="live-start")
                stop = gr.Button("Stop", variant="stop", elem_id="live-stop")
        with gr.Column(scale=1):
            shown = gr.Image(label="stylised", interactive=False, height=320, elem_id="live-output")
            status = gr.Markdown("press Start, then the webcam's record button", elem_id="live-status")
            recording = gr.File(label="recording", interactive=False, elem_id="live-recording")

    def go(request: gr.Request, record_on: bool = False, **values):
        with user_errors():
            return app.live.start(session_of(request), values, bool(record_on))

    start.click(go, inputs_kwargs=dict(inputs, record_on=record), outputs=status, queue=False, api_name="live_start")

    def frame(request: gr.Request, image=None, **values):
        return app.live.frame(session_of(request), image, values)

    changes = {n: inputs[n] for n in ("prompt", "strength", "seed")}
    camera.stream(frame, inputs_kwargs=dict(changes, image=camera), outputs=[shown, status],
                  stream_every=LIVE_STREAM_EVERY, time_limit=None, concurrency_id="live", concurrency_limit=None,
                  show_progress="hidden", api_visibility="private")  # fmt: skip

    def end(request: gr.Request):
        return app.live.stop(session_of(request))

    stop.click(end, outputs=[status, recording], api_name="live_stop", concurrency_id="live-stop")


def _native_width(model: str | None, shape: tuple[int, ...]) -> int | None:
    """The width at which a frame of ``shape`` (h, w, c) covers the area ``model`` was trained at (None: unknown)."""
    from ..models.presets import native_side

    side = native_side(model)
    if side is None:
        return None
    h, w = shape[:2]
    return min(w, max(8, round(side * (w / h) ** 0.5 / 8) * 8))


def _options(values: dict[str, Any]) -> dict[str, Any]:
    options = widgets.to_options(STYLIZE, values)
    options["quiet"] = True
    return options
