"""Which frames to render, at what times, in which windows. Pure Python: no torch, no I/O.

The same plan drives video-to-video, text-to-video and resume: every later stage keys its work (noise, blending
state, output order) on the *output* frame index that the plan assigns.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

from ..errors import UserError


@dataclass(frozen=True)
class Window:
    """Output frames ``[start, stop)`` rendered together; the first ``overlap`` are shared with the previous window."""

    start: int
    stop: int
    overlap: int = 0

    def __len__(self) -> int:
        return self.stop - self.start

    @property
    def indices(self) -> range:
        return range(self.start, self.stop)


@dataclass(frozen=True)
class FramePlan:
    """The output frames: ``sources[i]`` is the source frame shown at output frame ``i``, at ``times[i]`` seconds.

    ``fps`` is the exact output rate and ``start`` the source time (seconds) of output frame 0, so the rendered
    range of the source (for audio) is ``[start, start + duration)``. A variable-rate plan (a variable-rate source
    rendered without ``--fps``) has ``pts``: each output frame's time from output frame 0, and the end of the last
    frame as one more entry; its ``fps`` is then the average rate.
    """

    sources: tuple[int, ...]
    fps: Fraction
    start: Fraction
    pts: tuple[Fraction, ...] | None = None

    def __len__(self) -> int:
        return len(self.sources)

    @property
    def duration(self) -> Fraction:
        return self.pts[-1] if self.pts is not None else len(self.sources) / self.fps

    @property
    def times(self) -> tuple[Fraction, ...]:
        if self.pts is not None:
            return tuple(self.start + t for t in self.pts[:-1])
        return tuple(self.start + Fraction(i) / self.fps for i in range(len(self)))

    @classmethod
    def for_video(
        cls,
        n_frames: int,
        fps: Fraction,
        *,
        start: float = 0.0,
        end: float | None = None,
        target_fps: Fraction | None = None,
        max_frames: int | None = None,
        stamps: tuple[float, ...] | None = None,
    ) -> FramePlan:
        """Plan the frames of a source of ``n_frames`` at exact rate ``fps``, or, given ``stamps`` (a variable-rate
        source: each frame's start time and the last one's end, ``n_frames + 1`` seconds), at those times.

        Without ``target_fps`` every source frame whose timestamp lies in ``[start, end)`` is kept, at its own time.
        With it, output frame ``j`` shows the source frame on screen at ``start + j / target_fps`` (drop or repeat,
        no blending): a constant-rate output.
        """
        if n_frames < 1:
            raise UserError("the video has no frames; check the file plays in a video player")
        if stamps is not None and len(stamps) != n_frames + 1:
            raise ValueError("stamps: one start time per frame and the last frame's end")
        # Source times as exact rationals (microseconds: finer than any container's clock that matters here).
        at = None if stamps is None else [Fraction(round(t * 1_000_000), 1_000_000) for t in stamps]
        duration = Fraction(n_frames) / fps if at is None else at[-1]
        t0 = Fraction(start).limit_denominator(1_000_000)
        t1 = duration if end is None else min(Fraction(end).limit_denominator(1_000_000), duration)
        if t0 >= duration:
            raise UserError(f"--start {float(t0):g} s is past the end of the video ({float(duration):.3f} s)")
        pts = None
        if target_fps is None and at is None:
            first = math.ceil(t0 * fps)
            last = math.ceil(t1 * fps)  # exclusive: frames whose timestamp is before t1
            sources = list(range(first, min(last, n_frames)))
            out_fps, out_start = fps, Fraction(first) / fps
        elif target_fps is None:
            first, last = bisect.bisect_left(at, t0, hi=n_frames), bisect.bisect_left(at, t1, hi=n_frames)
            sources = list(range(first, last))
            out_start = at[first] if first < n_frames else t0
        else:
            count = math.ceil((t1 - t0) * target_fps)
            times = [t0 + Fraction(j) / target_fps for j in range(count)]
            # The frame on screen at each output time; exact rational arithmetic keeps this stable.
            if at is None:
                sources = [min(n_frames - 1, math.floor(t * fps)) for t in times]
            else:
                sources = [max(0, min(n_frames - 1, bisect.bisect_right(at, t) - 1)) for t in times]
            out_fps, out_start = target_fps, t0
        if max_frames is not None:
            sources = sources[:max_frames]
        if not sources:
            raise UserError(
                f"no frames fall between --start {float(t0):g} s and --end {float(t1):g} s; widen the range"
            )
        if target_fps is None and at is not None:
            ends = at[sources[-1] + 1]
            pts = tuple(at[i] - out_start for i in sources) + (ends - out_start,)
            out_fps = (len(sources) / pts[-1]).limit_denominator(1001)
        return cls(tuple(sources), out_fps, out_start, pts)

    @classmethod
    def for_clip(cls, n_frames: int, fps: Fraction) -> FramePlan:
        """Plan for text-to-video: ``n_frames`` new frames, no source."""
        if n_frames < 1:
            raise UserError(f"--frames must be at least 1, got {n_frames}")
        return cls(tuple(range(n_frames)), fps, Fraction(0))

    def windows(self, size: int, overlap: int = 0) -> Iterator[Window]:
        """Windows over all output frames; see :func:`windows`."""
        return windows(0, len(self), size, overlap)


def windows(start: int, stop: int, size: int, overlap: int = 0) -> Iterator[Window]:
    """Cut output frames ``[start, stop)`` into windows of at most ``size``, each sharing ``overlap`` with the last.

    The last window is shifted back (sharing more) rather than left short, so every window but a range shorter than
    ``size`` has exactly ``size`` frames: motion modules behave best at their trained length.
    """
    if size < 1:
        raise ValueError("window size must be >= 1")
    if not 0 <= overlap < size:
        raise ValueError("overlap must be in [0, size)")
    if overlap == 0:
        for s in range(start, stop, size):
            yield Window(s, min(stop, s + size), 0)
        return
    s, prev_stop = start, None
    while True:
        end = min(stop, s + size)
        first = max(start, end - size)
        yield Window(first, end, 0 if prev_stop is None else prev_stop - first)
        if end == stop:
            return
        prev_stop = end
        s = end - overlap


def balanced_window(frames: int, window: int) -> int:
    """The batch size that covers ``frames`` in the fewest windows of at most ``window`` with the least padding:
    12 frames at window 8 → 2 windows of 6 (padding the tail to 8 would run 16 frames of UNet work for 12)."""
    count = math.ceil(frames / max(1, window))
    return math.ceil(frames / max(1, count))


def warmup_frames(blend: float, context: int = 0, overlap: int = 0) -> int:
    """Frames to re-render (and discard) before a segment that starts cold, so its first frames match a continuous
    render: enough for blending's memory to fade (β^n < 1e-5; at 1e-3 a β of 0.6 still moved pixels by 4/255; ``blend``
    is the larger of ``--blend`` and ``--pixel-blend``) and, for motion windows, one window of overlap fusion."""
    if blend <= 0:
        blend_warm = 0
    else:  # at most 128: a blend of 1 never forgets
        blend_warm = 128 if blend >= 1 else min(128, math.ceil(math.log(1e-5) / math.log(blend)))
    return max(blend_warm, context - overlap if context else 0)


@dataclass(frozen=True)
class WindowStep:
    """One window of a render: the frames it samples together (``window``), those it emits (up to where the next
    window starts; the next one fuses and emits the frames they share) and, of those, the ones kept (warm-up frames
    before a cold start are rendered and dropped)."""

    window: Window
    emit: range
    keep: range

    @property
    def frames(self) -> range:
        return self.window.indices


MOTION_WARM_WINDOWS = 3
"""Extra windows a cold start of overlapping (motion) windows renders first. Each window is fused with the one before
at every step, so a window remembers its predecessors, fading: measured with the trained ``toy-motion`` (160 frames,
windows of 16 sharing 4, a segment from frame 96), one window back left 16 frames up to 6/255 off a continuous
render, two windows 4 frames up to 5/255, three bit-identical (the tiny identity module needs one)."""


def window_schedule(
    start: int, stop: int, size: int, overlap: int = 0, warm: int = 0, total: int | None = None
) -> list[WindowStep]:
    """The windows that render frames ``[start, stop)``, in order; pure (no state, no torch).

    Rendering begins ``warm`` frames before ``start`` to rebuild the temporal state (those frames are emitted and not
    kept). Overlapping (motion) windows, given the render's ``total`` frames, are those of the whole render's layout,
    from ``MOTION_WARM_WINDOWS`` windows before the one holding ``start - warm``: the fused overlaps then come out as
    in one continuous render.
    """

    def emitting(lo: int, hi: int) -> list[tuple[Window, range]]:
        wins = list(windows(lo, hi, size, overlap))
        return [(w, range(w.start, wins[k + 1].start if k + 1 < len(wins) else w.stop)) for k, w in enumerate(wins)]

    if overlap and total is not None:
        layout = emitting(0, total)
        first = max(0, start - warm)
        i0 = max(0, next(k for k, (_, e) in enumerate(layout) if first < e.stop) - MOTION_WARM_WINDOWS)
        chosen = [(w, e) for w, e in layout[i0:] if w.start < stop]
    else:
        chosen = emitting(max(0, start - warm), stop)
    return [
        WindowStep(w, e, range(max(e.start, start), max(max(e.start, start), min(e.stop, stop)))) for w, e in chosen
    ]


@dataclass(frozen=True)
class FrameMap:
    """Which output frames are rendered and which repeat an earlier render (the similarity filter's decision).

    Output frame ``i`` shows rendered frame ``shows[i]``: a *position* in the sequence of rendered frames, which is
    non-decreasing and starts at 0. The renderer works on positions as if they were a video of their own, so windows,
    noise keys and blending do not know about repeated frames; without the filter, positions are output frames.
    """

    shows: tuple[int, ...]

    @classmethod
    def identity(cls, frames: int) -> FrameMap:
        """Every frame rendered: the identity."""
        return cls(tuple(range(frames)))

    @property
    def first_frames(self) -> list[int]:
        """The output frame each position stands for: the first that shows it."""
        shows = self.shows
        return [i for i in range(len(shows)) if i == 0 or shows[i] != shows[i - 1]]

    @property
    def rendered(self) -> int:
        """How many frames go through the model."""
        return self.shows[-1] + 1 if self.shows else 0

    def positions(self, start: int, stop: int) -> range:
        """The positions to render for output frames ``[start, stop)``."""
        return range(self.shows[start], self.shows[stop - 1] + 1)

    def expand(self, positions: range, start: int, stop: int) -> tuple[range, list[int]]:
        """The output frames in ``[start, stop)`` that show one of ``positions``, and for each the offset of its
        render in ``positions``: ``frames[offsets]`` turns a window's renders into output frames."""
        lo = max(start, bisect.bisect_left(self.shows, positions.start))
        hi = min(stop, bisect.bisect_left(self.shows, positions.stop))
        return range(lo, max(lo, hi)), [self.shows[i] - positions.start for i in range(lo, hi)]
