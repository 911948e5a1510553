"""The live engine's two helper threads and its figures: ``FrameFeed`` (a reader thread over a source; the newest
frame wins, or with a file in order every frame waits its turn), ``Controls`` (``key: value`` lines changing the
prompt, strength or seed while it runs), ``Stats`` (fps in and out, capture-to-sink latency, drops; flat memory)."""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Iterable

import numpy as np

from ..errors import UserError
from .sources import Captured, Source

POLL = 0.1  # seconds between checks of a stop (Ctrl-C reaches the main thread between waits)
STOP_WAIT = 10.0  # seconds ``stop`` waits for the reader thread to end


class FrameFeed:
    """The source read on a thread of its own into a one-frame slot. ``live`` sources overwrite the slot (the newest
    frame wins; a frame overwritten before it was taken is counted in ``dropped``); otherwise the reader waits until
    the slot is taken, so every frame is rendered in order. ``get()`` → the next frame, or None at the source's end;
    an error of the reader (a frame size that changes) is raised there."""

    def __init__(self, source: Source):
        self.source, self.live = source, source.live
        self.captured = self.dropped = 0
        self._slot: Captured | None = None
        self._done = False
        self._error: BaseException | None = None
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, name="lcm-video-live-reader", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for item in self.source.frames():
                with self._cond:
                    while not self.live and self._slot is not None and not self.source.closed:
                        self._cond.wait(POLL)
                    if self.source.closed:
                        break
                    self.dropped += self._slot is not None
                    self._slot = item
                    self.captured += 1
                    self._cond.notify_all()
        except BaseException as exc:  # handed to the main thread by get()
            self._error = exc
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def get(self) -> Captured | None:
        with self._cond:
            while self._slot is None and not self._done:
                self._cond.wait(POLL)
            if self._error is not None:
                raise self._error
            item, self._slot = self._slot, None
            self._cond.notify_all()
            return item

    def stop(self) -> None:
        """Stop the reader and wait for it (it ends at its next frame, or a stalled stream at its time-out: a
        second; a busy machine can take longer), so no read is under way when the run and the process end."""
        self.source.close()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=STOP_WAIT)


CONTROL_KEYS = ("prompt", "strength", "seed")


class Controls:
    """``key: value`` lines from a text stream (stdin), read on a thread: ``prompt: a blue circle``, ``strength:
    0.4``, ``seed: 3``; ``pending()`` → the changes read since the last call, values checked by their options'
    declarations. A bad line is reported through ``notes`` and skipped (the stream goes on)."""

    def __init__(self, lines: Iterable[str], check):
        self.check = check  # (key, text) → value, or a UserError
        self.notes: queue.Queue[str] = queue.Queue()
        self._changes: queue.Queue[tuple[str, object]] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(lines,), name="lcm-video-live-controls", daemon=True)
        self._thread.start()

    def _read(self, lines: Iterable[str]) -> None:
        for line in lines:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            key, sep, value = line.partition(":")
            key = key.strip().lower()
            if not sep or key not in CONTROL_KEYS:
                self.notes.put(f"ignored {line!r}: write {', '.join(k + ': ...' for k in CONTROL_KEYS)}")
                continue
            try:
                self._changes.put((key, self.check(key, value.strip())))
            except UserError as exc:
                self.notes.put(f"ignored {line!r}: {exc}")

    def pending(self) -> list[tuple[str, object]]:
        out = []
        while True:
            try:
                out.append(self._changes.get_nowait())
            except queue.Empty:
                return out


LATENCY_BINS_MS = 60_000  # a histogram of 1 ms bins up to a minute: percentiles of any run, in flat memory


class Stats:
    """The run's figures: frames in (captured), out (written to every sink), dropped; end-to-end latency (capture →
    the last sink's write) p50/p95 over the whole run (a 1 ms histogram) and over the last ``window`` frames for the
    live line; fps in and out over the run and the last seconds."""

    def __init__(self, window: int = 60):
        self.start = time.perf_counter()
        self.hist = np.zeros(LATENCY_BINS_MS + 1, np.int64)
        self.recent: deque[tuple[float, float]] = deque(maxlen=window)  # (written at, latency s)
        self.out = 0
        self.reused = 0  # frames the similarity filter answered with the last output
        self.changes: list[dict] = []

    def wrote(self, captured_at: float) -> None:
        now = time.perf_counter()
        latency = now - captured_at
        self.hist[min(LATENCY_BINS_MS, int(latency * 1000))] += 1
        self.recent.append((now, latency))
        self.out += 1

    def percentile(self, q: float) -> float | None:
        """The latency (ms) below which ``q`` of the frames came out, to the millisecond; None before any."""
        total = int(self.hist.sum())
        if total == 0:
            return None
        return float(np.searchsorted(np.cumsum(self.hist), q * total, side="left"))

    def line(self, feed: FrameFeed) -> str:
        """The live line: recent fps in and out, recent latency p50/p95, drops so far."""
        elapsed = max(1e-9, time.perf_counter() - self.start)
        recent = list(self.recent)
        fps_out = (len(recent) - 1) / (recent[-1][0] - recent[0][0]) if len(recent) > 1 else 0.0
        lat = sorted(x[1] * 1000 for x in recent) or [0.0]
        p50, p95 = lat[len(lat) // 2], lat[min(len(lat) - 1, int(0.95 * len(lat)))]
        return (
            f"live: in {feed.captured / elapsed:.1f} fps, out {fps_out:.1f} fps, latency p50 {p50:.0f} ms "
            f"p95 {p95:.0f} ms, dropped {feed.dropped}, {self.out} frames"
        )

    def summary(self, feed: FrameFeed, **extra) -> dict:
        elapsed = time.perf_counter() - self.start
        return {
            "seconds": round(elapsed, 3),
            "frames_in": feed.captured,
            "frames_out": self.out,
            "dropped": feed.dropped,
            "reused": self.reused,
            "fps_in": round(feed.captured / elapsed, 3) if elapsed > 0 else 0.0,
            "fps_out": round(self.out / elapsed, 3) if elapsed > 0 else 0.0,
            "latency_ms": {"p50": _int(self.percentile(0.5)), "p95": _int(self.percentile(0.95))},
            "changes": self.changes,
            **extra,
        }


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)
