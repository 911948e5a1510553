"""How the web UI runs a render: the guard on what a page may name (no local paths but the ones given at launch),
and a render run in a worker thread whose progress events the page polls and which a Cancel request stops within one
window. No Gradio here.
"""

from __future__ import annotations

import gc
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..events import Cancelled, ProgressEvent
from ..models.ip_presets import IP_ADAPTERS
from ..models.presets import MOTION_PRESETS, PRESETS, parse_lora

# Settings that name weights: the page may give presets and hub ids; a local path only if it was given at launch.
WEIGHT_SETTINGS = ("model", "lora", "vae", "motion_adapter", "ip_adapter")


def check_weights(options: dict[str, Any], allowed: set[str]) -> None:
    """Refuse a weight setting that names an existing local path not offered at launch (``allowed``): the page must
    not make the server open files of its choosing. Presets and hub ids pass; ``resolve`` checks the rest."""
    for name in WEIGHT_SETTINGS:
        value = options.get(name)
        for spec in value if isinstance(value, (list, tuple)) else [value]:
            if not isinstance(spec, str) or not spec or spec in allowed:
                continue
            path = parse_lora(spec)[0] if name == "lora" else spec
            if path in PRESETS or path in MOTION_PRESETS or path in IP_ADAPTERS or path in allowed:
                continue
            if Path(path).is_absolute() or ".." in Path(path).parts or Path(path).exists() or path.startswith("~"):
                raise UserError(
                    f"--{name.replace('_', '-')} {spec!r}: the web UI loads presets and hub ids only; to offer a local "
                    f"file, start it with `lcm-video ui --model PATH`"
                )


@dataclass
class Status:
    """What the page shows while a render runs: a finished event, or the latest progress."""

    event: ProgressEvent | None = None
    result: Any = None
    error: BaseException | None = None
    finished: bool = False


def describe(event: ProgressEvent | None, what: str = "frames") -> str:
    """``render: 24/89 frames, 3.1 s, about 8 s left`` (or the loading line before the first window)."""
    if event is None or event.stage == "load":
        return "loading the model…"
    left = event.eta
    eta = f", about {left:.0f} s left" if left else ""
    job = f" ({event.job})" if event.job else ""
    return f"{event.stage}{job}: {event.done}/{event.total} {what}, {event.elapsed:.1f} s{eta}"


@dataclass
class Renders:
    """One render at a time per session; ``cancel(session)`` stops that session's render at its next window."""

    _cancel: dict[str, threading.Event] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def cancel(self, session: str) -> bool:
        with self._lock:
            flag = self._cancel.get(session)
        if flag is None:
            return False
        flag.set()
        return True

    def run(self, session: str, work: Callable[[Callable[[ProgressEvent], None]], Any], poll: float = 0.25):
        """Run ``work(on_progress)`` in a thread; yield a :class:`Status` on every progress event (at most every
        ``poll`` seconds) and a last one with the result or the error (:class:`Cancelled` when cancelled). Closing
        the generator (the page went away) cancels the render and waits for it to clean up."""
        flag = threading.Event()
        with self._lock:
            self._cancel[session] = flag
        events: queue.Queue = queue.Queue()
        status = Status()

        def on_progress(event: ProgressEvent) -> None:
            if flag.is_set():
                raise Cancelled
            events.put(event)

        def target() -> None:
            try:
                status.result = work(on_progress)
            except BaseException as exc:  # handed to the page's thread, which reports it
                status.error = exc
            finally:
                status.finished = True
                events.put(None)

        thread = threading.Thread(target=target, name=f"render-{session[:8]}", daemon=True)
        thread.start()
        try:
            yield from _statuses(events, status, poll)
        finally:
            flag.set()  # a page that went away stops its render
            thread.join()
            with self._lock:
                if self._cancel.get(session) is flag:
                    del self._cancel[session]
            gc.collect()


def _statuses(events: queue.Queue, status: Status, poll: float) -> Iterator[Status]:
    last = 0.0
    while True:
        item = events.get()
        if item is None:
            yield status
            return
        status.event = item
        now = time.monotonic()
        if now - last >= poll or item.done >= item.total:
            last = now
            yield status


def output_name(out: Path, kind: str, seed: int, suffix: str = ".mp4") -> Path:
    """A fresh file name in ``out``: ``stylize-20261201-121314-seed0.mp4`` (``-2``, ``-3``... if taken)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = f"{kind}-{stamp}-seed{seed}"
    path = out / f"{base}{suffix}"
    n = 2
    while path.exists():
        path = out / f"{base}-{n}{suffix}"
        n += 1
    return path


_SAFE_NAME = re.compile(r"^[\w.\- ]+$")


def plain_name(name: str, what: str) -> str:
    """A bare file name (no folder, no ``..``), as job files built in the page must use."""
    if not _SAFE_NAME.match(name) or name in (".", ".."):
        raise UserError(f"{what} {name!r} must be a plain file name (no folders); upload the file and use its name")
    return name
