"""The render-to-file shell every render runs in: the output's lock, stale partial files from a crashed run removed,
progress from ``load`` to ``done``, and frames written as they come (stylise, generate and batch segments alike)."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..events import OnProgress, Progress, default_progress
from ..video.lock import OutputLock, remove_stale_partials
from ..video.writer import VideoWriter


@contextmanager
def render_shell(output: Path, command: str, frames: int, quiet: bool, on_progress: OnProgress | None):
    """Hold ``output``'s lock and yield the render's :class:`Progress` (``frames`` in all), after its ``load`` event;
    ``done`` is sent when the body finishes. An error or a ``Cancelled`` leaves nothing at ``output``."""
    with OutputLock(output), default_progress(on_progress, command, quiet) as callback:
        remove_stale_partials(output)
        progress = Progress(callback, frames)
        progress.emit("load")
        yield progress
        progress.emit("done")


def write_frames(
    writer: VideoWriter, frames: Iterable[tuple[range, np.ndarray]], progress: Progress, job: str | None = None
) -> Path:
    """Write (output frames, uint8 (n, h, w, 3)) chunks in order, a ``render`` event after each; the file is moved
    into place when all are written (the writer's temporary file is removed on any error)."""
    with writer:
        for done, chunk in frames:
            writer.write(chunk)
            progress.emit("render", len(done), job)
        return writer.close()
