"""Where live frames go: a recording (the stylise writer: a temporary file moved into place at the end, with the
settings record), any URL ffmpeg writes (H.264 in MPEG-TS or FLV, through PyAV), a virtual camera (pyvirtualcam).
Each is opened before the first frame renders, so a sink that cannot open fails in one line."""

from __future__ import annotations

import contextlib
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..video.writer import VideoWriter, check_output

STREAM_FORMATS = {"udp": "mpegts", "srt": "mpegts", "tcp": "mpegts", "rtmp": "flv", "rtmps": "flv"}
"""The container a stream URL is written in, by protocol (what players and servers of each expect)."""
OPEN_TIMEOUT = 10.0


class Sink:
    """``write(frame, t)``: a uint8 (h, w, 3) frame captured at ``perf_counter`` time ``t``; ``close()`` finishes
    it (a recording is moved into place); ``abort()`` drops it (nothing is left at a recording's path)."""

    name: str = ""

    def write(self, frame: np.ndarray, t: float) -> None:
        raise NotImplementedError

    def close(self) -> str | None:
        """Finish; returns what was finished (a recording's path) or None."""
        return None

    def abort(self) -> None:
        self.close()


class Recording(Sink):
    """A video file, written as stylise writes one. ``timed`` (a live source): each frame at its capture time, from
    the first frame's (variable rate: the recording lasts as long as the run, dropped frames leaving their time to
    the frame before); else every output frame at the source's rate (a file played in order: stylise's frames)."""

    def __init__(self, path, size, fps: Fraction, record: dict, codec, crf: int, preset: str, timed: bool = False):
        self.name, self.fps = path, fps
        out = check_output(path, (), codec, preset)
        if out.suffix.lower() == ".gif" or out.suffix.lower() == ".png":
            raise UserError(f"live records to a video file (.mp4, .mkv, .mov, .webm), not {str(out)!r}")
        # The writer reads a frame's time and the next one's when it muxes it, so a frame waits for the next.
        self.times: list[Fraction] | None = [] if timed else None
        self.pending: np.ndarray | None = None
        self.start = 0.0
        self.writer = VideoWriter(out, size, fps, codec=codec, crf=crf, preset=preset, record=record, times=self.times)

    def write(self, frame: np.ndarray, t: float) -> None:
        if self.times is None:
            self.writer.write(frame[None])
            return
        if not self.times:
            self.start = t
        stamp = Fraction(round((t - self.start) * 1_000_000), 1_000_000)  # whole microseconds, as the writer keeps
        self.times.append(max(stamp, self.times[-1] + Fraction(1, 1000)) if self.times else stamp)
        if self.pending is not None:
            self.writer.write(self.pending[None])
        self.pending = frame

    def close(self) -> str | None:
        if self.pending is not None:  # the last frame lasts as long as the one before it (or one frame at the rate)
            last = self.times[-1] - self.times[-2] if len(self.times) > 1 else 1 / self.fps
            self.times.append(self.times[-1] + last)
            self.writer.write(self.pending[None])
            self.pending = None
        if self.writer.frames == 0:
            self.writer.abort()
            return None
        return str(self.writer.close())

    def abort(self) -> None:
        self.writer.abort()


class Stream(Sink):
    """H.264 (x264, ``ultrafast``/``zerolatency``) to a URL through PyAV, each frame stamped with its capture time
    (milliseconds from the first), so a player shows them at the pace they were captured."""

    def __init__(self, url: str, size: tuple[int, int], fps: Fraction):
        import av

        self.av, self.name = av, url
        fmt = STREAM_FORMATS.get(url.split("://")[0].lower())
        if fmt is None:
            raise UserError(f"cannot stream to {url!r}: write udp://, srt://, tcp:// (MPEG-TS) or rtmp:// (FLV)")
        self.container = None
        try:  # connected now (PyAV would connect at the first frame), so a refused address fails before any frame
            self.container = av.open(url, mode="w", format=fmt, timeout=OPEN_TIMEOUT)
            self.stream = self.container.add_stream("libx264", rate=fps)
            self.stream.width, self.stream.height = size
            self.stream.pix_fmt = "yuv420p"
            self.stream.options = {"preset": "ultrafast", "tune": "zerolatency", "g": str(max(1, round(fps)))}
            self.stream.codec_context.time_base = Fraction(1, 1000)
            self.container.start_encoding()
        except av.error.FFmpegError as exc:
            self.abort()
            reason = getattr(exc, "strerror", None) or str(exc)
            raise UserError(f"cannot open the stream {url!r}: {reason}; check the address and the server") from None
        self.start: float | None = None
        self.last = -1

    def write(self, frame: np.ndarray, t: float) -> None:
        av = self.av
        self.start = t if self.start is None else self.start
        out = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        pts = max(self.last + 1, round((t - self.start) * 1000))  # strictly increasing, in ms
        out.pts, out.time_base, self.last = pts, Fraction(1, 1000), pts
        self._mux(out)

    def _mux(self, frame) -> None:
        try:
            for packet in self.stream.encode(frame):
                self.container.mux(packet)
        except self.av.error.FFmpegError as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise UserError(f"the stream {self.name!r} failed: {reason}") from None

    def close(self) -> str | None:
        if self.container is None:
            return None
        try:
            self._mux(None)
        finally:
            self.container.close()
            self.container = None
        return None

    def abort(self) -> None:
        if self.container is not None:
            with contextlib.suppress(Exception):
                self.container.close()
            self.container = None


class VirtualCamera(Sink):
    """A virtual camera through pyvirtualcam (``vcam`` or ``vcam:DEVICE``): v4l2loopback on Linux, OBS's virtual
    camera on Windows and macOS."""

    def __init__(self, spec: str, size: tuple[int, int], fps: Fraction):
        try:
            import pyvirtualcam
        except ImportError:
            raise UserError('the vcam sink needs the live extra: pip install "lcm-video[live]"') from None
        self.name = spec
        device = spec.partition(":")[2] or None
        try:
            rgb = pyvirtualcam.PixelFormat.RGB
            self.cam = pyvirtualcam.Camera(size[0], size[1], float(fps), fmt=rgb, device=device)
        except (RuntimeError, ValueError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UserError(
                f"cannot open the virtual camera {spec!r}: {first} (on Linux: sudo modprobe v4l2loopback)"
            ) from None

    def write(self, frame: np.ndarray, t: float) -> None:
        self.cam.send(frame)

    def close(self) -> str | None:
        self.cam.close()
        return None


def open_sink(spec: str, size, fps: Fraction, record: dict, codec, crf: int, preset: str, timed: bool) -> Sink:
    """The sink ``spec`` names, opened: ``vcam[:DEVICE]``, a URL (``scheme://``), or a recording's path (``timed``:
    at the frames' capture times)."""
    if spec == "vcam" or spec.startswith("vcam:"):
        return VirtualCamera(spec, size, fps)
    if "://" in spec:
        return Stream(spec, size, fps)
    return Recording(spec, size, fps, record, codec, crf, preset, timed)


def open_sinks(specs, size, fps, record, codec, crf, preset, timed: bool = False) -> list[Sink]:
    """Every sink, opened in order; if one cannot be, those already open are dropped (nothing is left behind)."""
    sinks: list[Sink] = []
    paths = [Path(s).resolve() for s in specs if "://" not in s and not s.startswith("vcam")]
    if len(set(paths)) < len(paths):
        raise UserError("the same recording is given twice with -o; give each sink once")
    try:
        for spec in specs:
            sinks.append(open_sink(spec, size, fps, record, codec, crf, preset, timed))
    except BaseException:
        for sink in sinks:
            sink.abort()
        raise
    return sinks
