"""Progress events: what a long render tells its caller, and how the caller stops it.

``stylize``, ``generate`` and ``run_batch`` take ``on_progress``, a callable that receives a :class:`ProgressEvent`
when the models are loaded, after every window of frames and when the output is complete. The command line's
progress bar (:class:`ProgressBar`), the benchmarks and any UI are such callbacks.

To cancel, raise :class:`Cancelled` from the callback: the render stops at once (so within one window of frames),
the temporary output file is removed, nothing is left at the output path, and the call raises ``Cancelled``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

STAGES = ("load", "render", "assemble", "train", "done")


class Cancelled(Exception):  # noqa: N818 - the name says what happened, as KeyboardInterrupt does
    """Raised by an ``on_progress`` callback to stop a render; re-raised by the render once it has cleaned up."""


@dataclass(frozen=True)
class ProgressEvent:
    """Where a render stands.

    stage: ``load`` (models loading; nothing rendered yet), ``render`` (after a window), ``assemble`` (batch: a job's
    segments being joined), ``train`` (distill: after a training step) or ``done`` (the output is in place).
    done / total: output frames finished / planned (batch: over this process's share of all jobs; distill: training
    steps). elapsed: seconds since the call began. job: the batch job the event is about (None outside batch).
    loss: the training step's loss (distill only).
    """

    stage: str
    done: int
    total: int
    elapsed: float
    job: str | None = None
    loss: float | None = None

    @property
    def eta(self) -> float | None:
        """Seconds left at the rate so far; None before the first frame."""
        if self.done <= 0 or self.done >= self.total:
            return None if self.done <= 0 else 0.0
        return self.elapsed / self.done * (self.total - self.done)


OnProgress = Callable[[ProgressEvent], None]


class Progress:
    """The sending side: one per call, stamping elapsed time and counting frames for ``on_progress``."""

    def __init__(self, on_progress: OnProgress | None, total: int, job: str | None = None):
        self.callback, self.total, self.job = on_progress, total, job
        self.done = 0
        self.t0 = time.perf_counter()

    def emit(self, stage: str, frames: int = 0, job: str | None = None, loss: float | None = None) -> None:
        """Count ``frames`` (or steps) more as done and tell the callback (which may raise :class:`Cancelled`)."""
        self.done += frames
        if self.callback is not None:
            elapsed = time.perf_counter() - self.t0
            job = job if job is not None else self.job
            self.callback(ProgressEvent(stage, self.done, self.total, elapsed, job, loss))


class ProgressBar:
    """An ``on_progress`` callback drawing a tqdm bar on stderr from the first rendered window on:
    ``desc: n/N [elapsed<eta, rate frame/s]``.

    With batch events (``job`` set) a second bar shows the current job. Close it (or use ``with``) when done.
    """

    def __init__(self, desc: str):
        self.desc = desc
        self.bar = None
        self.job_bar = None
        self._job: str | None = None
        self._job_start = 0

    def __call__(self, event: ProgressEvent) -> None:
        from tqdm.auto import tqdm

        if self.bar is None:
            if event.stage == "load":  # no bar until frames come: a loading error stays one line
                return
            train = event.stage == "train"
            self.bar = tqdm(
                total=event.total,
                initial=event.done - 1 if train else 0,  # a resumed training run starts part-way
                unit="step" if train else "frame",
                desc=self.desc,
                file=sys.stderr,
                dynamic_ncols=True,
            )
        if event.job is not None and event.job != self._job and event.stage == "render":
            if self.job_bar is not None:
                self.job_bar.close()
            self._job, self._job_start = event.job, self.bar.n
            self.job_bar = tqdm(unit="frame", desc=event.job, file=sys.stderr, position=1, leave=False)
        if event.loss is not None:
            self.bar.set_postfix(loss=f"{event.loss:.4g}", refresh=False)
        step = event.done - self.bar.n
        if step > 0:
            self.bar.update(step)
            if self.job_bar is not None:
                self.job_bar.update(step)

    def close(self) -> None:
        for bar in (self.job_bar, self.bar):
            if bar is not None:
                bar.close()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextmanager
def default_progress(on_progress: OnProgress | None, desc: str, quiet: bool) -> Iterator[OnProgress | None]:
    """``on_progress`` as given; without one, a :class:`ProgressBar` named ``desc`` unless ``quiet``."""
    if on_progress is not None or quiet:
        yield on_progress
        return
    with ProgressBar(desc) as bar:
        yield bar
