"""Where live frames come from: a video file (in order, or at its own rate), any URL ffmpeg reads, a webcam, the X11
screen, raw RGB frames on stdin. Each is opened (and its first frame read) before the models load, so a bad source
fails in a line, and yields uint8 (h, w, 3) frames at the output size with their capture time."""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from fractions import Fraction
from typing import BinaryIO

import numpy as np

from ..errors import UserError
from ..video.ffmpeg import ffmpeg_exe, first_error
from ..video.reader import FrameReader, VideoInfo, output_size, probe

OPEN_TIMEOUT = 10.0
"""Seconds a URL may take to connect and send its first frame."""
STALL_TIMEOUT = 1.0
"""Seconds without a frame after which a network stream (or a device) counts as ended: UDP has no end of stream."""
DEFAULT_RATE = Fraction(30)

Captured = tuple[np.ndarray, float, int]
"""A source frame: uint8 (h, w, 3) at the output size, ``time.perf_counter()`` when it was captured, and its number
in the source (a file's frame index; else counted from 0)."""


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``"640x480"`` → (640, 480); a UserError naming ``--input-size`` otherwise."""
    if text is None:
        return None
    w, sep, h = str(text).lower().partition("x")
    if not (sep and w.isdigit() and h.isdigit() and int(w) > 0 and int(h) > 0):
        raise UserError(f"--input-size expects WIDTHxHEIGHT such as 640x480, got {text!r}")
    return int(w), int(h)


def cover_crop(frame: np.ndarray, cover: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """The centre ``size`` (w, h) of a frame already scaled to ``cover`` (as ``FrameReader`` crops)."""
    (cw, ch), (w, h) = cover, size
    x0, y0 = (cw - w) // 2, (ch - h) // 2
    return np.ascontiguousarray(frame[y0 : y0 + h, x0 : x0 + w])


def cover_of(width: int, height: int, size: tuple[int, int]) -> tuple[int, int]:
    """The size a (width, height) picture is scaled to so that it covers ``size`` (aspect kept)."""
    scale = max(size[0] / width, size[1] / height)
    return max(size[0], round(width * scale)), max(size[1], round(height * scale))


class Source:
    """A live source: ``size`` (w, h) of the frames it yields, ``fps`` (its nominal rate: a recording's rate),
    ``live`` (frames come whether or not they are taken: the newest wins; a file without ``--realtime`` is not),
    ``frames()`` the captured frames until it ends, ``close()``."""

    size: tuple[int, int]
    fps: Fraction
    live: bool = True
    name: str = ""
    path: str | None = None  # a local file, for the record

    def frames(self) -> Iterator[Captured]:
        raise NotImplementedError

    def close(self) -> None:
        """Stop: ``frames()`` ends at its next frame (or, blocked on a read, at its time-out)."""
        self._closed = True

    @property
    def closed(self) -> bool:
        return getattr(self, "_closed", False)


class FileSource(Source):
    """A video file (or frame folder) read by the stylise reader, so its frames are stylise's own: every frame in
    order, or with ``realtime`` each at its time on the wall clock (from the first frame's capture)."""

    def __init__(self, path: str, width: int | None, height: int | None, realtime: bool):
        self.info: VideoInfo = probe(path)
        self.size = output_size(self.info, width, height)
        self.fps, self.live, self.name, self.path = self.info.fps, realtime, path, path
        self.reader = FrameReader(self.info, self.size)

    def frames(self) -> Iterator[Captured]:
        start = time.perf_counter()
        for i in range(self.info.frames):
            if self.closed:
                break
            if self.live:
                due = start + float(i / self.fps)
                time.sleep(max(0.0, due - time.perf_counter()))
            t = time.perf_counter()
            yield self.reader.read([i])[0], t, i
        self.reader.close()


class StdinSource(Source):
    """Raw RGB24 frames of ``frame_size`` back to back on a binary stream (stdin): each scaled to cover the output
    size and centre-cropped; the stream's end is the source's."""

    def __init__(self, stream: BinaryIO, frame_size: tuple[int, int] | None, fps: Fraction | None, width, height):
        if frame_size is None:
            raise UserError("-i - reads raw RGB24 frames from stdin: give their size with --input-size WIDTHxHEIGHT")
        self.stream, self.frame_size = stream, frame_size
        w, h = frame_size
        self.size = output_size(VideoInfo(None, 0, DEFAULT_RATE, w, h), width, height)
        self.cover = cover_of(w, h, self.size)
        self.fps, self.name = fps or DEFAULT_RATE, "stdin"

    def frames(self) -> Iterator[Captured]:
        w, h = self.frame_size
        need, n = w * h * 3, 0
        while not self.closed:
            data = _read_exactly(self.stream, need)
            if len(data) < need:  # the end (a partial last frame is dropped)
                return
            t = time.perf_counter()
            yield scaled(np.frombuffer(data, np.uint8).reshape(h, w, 3), self.cover, self.size), t, n
            n += 1


def _read_exactly(stream: BinaryIO, n: int) -> bytes:
    parts, got = [], 0
    while got < n:
        chunk = stream.read(n - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def scaled(rgb: np.ndarray, cover: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """uint8 (h, w, 3) scaled to ``cover`` (ffmpeg's bicubic, through PyAV) and centre-cropped to ``size``."""
    if rgb.shape[1::-1] == tuple(size):
        return rgb
    import av

    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    return cover_crop(frame.to_ndarray(format="rgb24", width=cover[0], height=cover[1]), cover, size)


class StreamSource(Source):
    """Frames decoded by PyAV: a URL ffmpeg reads, the X11 screen (x11grab), or a webcam through the ffmpeg binary's
    v4l2 input (PyAV's own build has none) piped to PyAV as NUT. The first frame is decoded when opened."""

    def __init__(self, spec: str, width, height, frame_size, fps):
        import av

        self.av, self.name, self.child = av, spec, None
        if spec.startswith("/dev/video"):
            self.container = self._open_webcam(spec, frame_size, fps)
        elif spec == "screen" or spec.startswith("screen:"):
            self.container = self._open_screen(spec, frame_size, fps)
        else:
            self.container = self._open_url(spec)
        stream = self.container.streams.video[0]
        stream.thread_type = "AUTO"
        self._decoded = self._decode()
        first = next(self._decoded, None)
        if first is None:
            self.close()
            raise UserError(f"{spec!r} sent no video frames; check that the stream is running")
        self.first = first
        self.coded = (first.width, first.height)
        sar = getattr(stream, "sample_aspect_ratio", None) or Fraction(1)
        shown = max(1, round(first.width * sar)), first.height
        self.size = output_size(VideoInfo(None, 0, DEFAULT_RATE, *shown), width, height)
        self.cover = cover_of(*shown, self.size)
        rate = stream.average_rate or stream.guessed_rate or fps or DEFAULT_RATE
        self.fps = Fraction(rate).limit_denominator(1001)

    def _open_url(self, url: str):
        if "://" not in url:
            raise UserError(f"input {url!r} does not exist; give a video file, a URL, /dev/videoN, screen or -")
        try:
            return self.av.open(url, timeout=(OPEN_TIMEOUT, STALL_TIMEOUT), options={"fflags": "nobuffer"})
        except self.av.error.ExitError:  # the time-out's interrupt
            raise UserError(
                f"cannot open {url!r}: nothing arrived in {OPEN_TIMEOUT:g} s; check the address and that it is sending"
            ) from None
        except self.av.error.FFmpegError as exc:
            raise UserError(f"cannot open {url!r}: {_reason(exc)}; check the address and that it is sending") from None

    def _open_screen(self, spec: str, frame_size, fps):
        display = spec.partition(":")[2] or os.environ.get("DISPLAY", "")
        if not display:
            raise UserError("no X display to grab: DISPLAY is not set; run inside an X session or give -i screen::0.0")
        opts = {"framerate": str(fps or DEFAULT_RATE), "draw_mouse": "0"}
        if frame_size:
            opts["video_size"] = f"{frame_size[0]}x{frame_size[1]}"
        try:
            return self.av.open(display, format="x11grab", options=opts, timeout=(OPEN_TIMEOUT, STALL_TIMEOUT))
        except self.av.error.FFmpegError as exc:
            why = _reason(exc)
            raise UserError(f"cannot grab the X11 screen {display!r}: {why}; check DISPLAY and xhost") from None

    def _open_webcam(self, device: str, frame_size, fps):
        if not os.path.exists(device):
            raise UserError(f"webcam {device} does not exist; `ls /dev/video*` lists the cameras there are")
        if not os.access(device, os.R_OK):
            raise UserError(f"no permission to read webcam {device}; add yourself to the video group")
        try:  # busy: another program streams from it (the kernel says EBUSY when we ask for its buffers)
            fd = os.open(device, os.O_RDWR | os.O_NONBLOCK)
            os.close(fd)
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                raise UserError(f"webcam {device} is busy: another program is using it; close that one") from None
            raise UserError(f"cannot open webcam {device}: {exc.strerror}") from None
        cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-f", "v4l2"]
        if frame_size:
            cmd += ["-video_size", f"{frame_size[0]}x{frame_size[1]}"]
        if fps:
            cmd += ["-framerate", str(fps)]
        cmd += ["-i", device, "-map", "0:v:0", "-c:v", "rawvideo", "-pix_fmt", "rgb24", "-f", "nut", "pipe:1"]
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - ffmpeg's stderr (a pipe could fill and stall it)
        self.child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log)
        try:
            return self.av.open(self.child.stdout, format="nut", timeout=(OPEN_TIMEOUT, STALL_TIMEOUT))
        except self.av.error.FFmpegError:
            err = self._child_error()
            if "busy" in err.lower():
                raise UserError(f"webcam {device} is busy: another program is using it; close that one") from None
            raise UserError(f"cannot read webcam {device}: {err or 'ffmpeg sent nothing'}") from None

    def _child_error(self) -> str:
        if self.child is None:
            return ""
        if self.child.poll() is None:
            self.child.kill()
        self.child.wait()
        self.log.seek(0)
        return first_error(self.log.read().decode(errors="replace"))

    def _decode(self):
        try:
            for packet in self.container.demux(video=0):
                try:
                    decoded = packet.decode()
                except self.av.error.InvalidDataError:  # a damaged or partial packet (UDP loses some): skipped
                    continue
                yield from decoded
                if self.closed:
                    return
        except self.av.error.ExitError:  # the read timed out: the sender stopped
            return
        except self.av.error.EOFError:
            return
        except self.av.error.FFmpegError as exc:
            if self.closed:
                return
            raise UserError(f"reading {self.name!r} failed: {_reason(exc)}") from None

    def frames(self) -> Iterator[Captured]:
        self._reading = True
        try:
            frame, t, n = self.first, time.perf_counter(), 0
            while frame is not None and not self.closed:
                if (frame.width, frame.height) != self.coded:
                    raise UserError(
                        f"{self.name!r} changed its frame size mid-stream ({self.coded[0]}x{self.coded[1]} to "
                        f"{frame.width}x{frame.height}); restart live with the new size"
                    )
                rgb = frame.to_ndarray(format="rgb24", width=self.cover[0], height=self.cover[1])
                yield cover_crop(rgb, self.cover, self.size), t, n
                frame = next(self._decoded, None)
                t, n = time.perf_counter(), n + 1
        finally:
            self._release()

    def _release(self) -> None:
        """Close the container, from the thread that reads it once its reading has ended. Why: left to garbage
        collection at exit, it was closed while the reader thread (a daemon) could still be inside a read of it, and
        a live run stopped by Ctrl-C under load then sometimes never exited."""
        with contextlib.suppress(self.av.error.FFmpegError, OSError):
            self.container.close()

    def close(self) -> None:
        super().close()
        if not getattr(self, "_reading", False):  # nothing reads it: close it here
            self._release()
        if self.child is not None and self.child.poll() is None:
            self.child.kill()
            self.child.wait()


class Primed(Source):
    """``source`` with its first frames already taken (for ``--calibrate source``): a live source's (a camera,
    stream, stdin) are dropped, stale once the calibration has run; a source that waits for its reader (``live``
    False) yields them first, so none of its frames is lost."""

    def __init__(self, source: Source, held: list[Captured], rest: Iterator[Captured]):
        self.source, self._held, self._rest = source, held, rest
        self.size, self.fps, self.live = source.size, source.fps, source.live
        self.name, self.path = source.name, source.path

    def frames(self) -> Iterator[Captured]:
        if not self.live:
            yield from self._held
        self._held = []
        yield from self._rest

    def close(self) -> None:
        self.source.close()
        super().close()


def primed(source: Source, n: int) -> tuple[Source, np.ndarray]:
    """The source to run and uint8 (k, h, w, 3), its first k ≤ ``n`` frames (``--calibrate source``). A file's are read
    beside the run (by index; the source is untouched); any other source's are taken from its stream (``Primed``).
    A UserError if the source gives none."""
    if isinstance(source, FileSource):
        return source, source.reader.read(range(min(n, source.info.frames)))
    rest = source.frames()
    held = list(itertools.islice(rest, n))
    if not held:
        source.close()
        raise UserError(f"--calibrate source: {source.name or 'the source'} gave no frames to calibrate on; check "
                        "that it plays, or use --calibrate toy")  # fmt: skip
    return Primed(source, held, rest), np.stack([frame for frame, _, _ in held])


def _reason(exc: Exception) -> str:
    """ffmpeg's reason for an error, without PyAV's wrapping (errno, the URL repeated)."""
    return getattr(exc, "strerror", None) or str(exc).split(":")[0]


def open_source(
    spec: str,
    width: int | None = None,
    height: int | None = None,
    *,
    realtime: bool = False,
    frame_size: tuple[int, int] | None = None,
    fps: Fraction | None = None,
    stdin: BinaryIO | None = None,
) -> Source:
    """The source ``spec`` names, opened (a UserError in one line when it cannot be): ``-`` (raw RGB24 frames of
    ``frame_size`` on ``stdin``, default the process's), ``/dev/videoN``, ``screen[:DISPLAY]``, a URL, or a file.
    ``width``/``height``: the output size (as stylise's: default the source's, longer side at most 768)."""
    if spec == "-":
        return StdinSource(stdin or sys.stdin.buffer, frame_size, fps, width, height)
    device = spec.startswith("/dev/video") or spec == "screen" or spec.startswith("screen:")
    for flag, given in (("--input-size", frame_size), ("--input-fps", fps)):
        if given and not device:  # a file or a stream has its own size and rate
            raise UserError(f"{flag} is for -i -, a webcam or the screen; {spec!r} has its own (drop {flag})")
    if realtime and (device or "://" in spec):
        raise UserError("--realtime plays a file at its own rate; a camera, screen or stream is live already")
    if device or "://" in spec:
        return StreamSource(spec, width, height, frame_size, fps)
    if not os.path.exists(spec):
        raise UserError(f"input {spec!r} does not exist; give a video file, a URL, /dev/videoN, screen or -")
    return FileSource(spec, width, height, realtime)
