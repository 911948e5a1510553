"""Frames out through the ffmpeg binary that imageio-ffmpeg ships: a raw RGB pipe, exact fps, audio muxed back,
written under a temporary name in the output's folder and renamed into place only when complete."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import UserError
from .ffmpeg import (
    GIF_FILTER,
    MUXERS,
    SEQUENCE_PATTERN,
    check_container,
    comment_args,
    encoder_for,
    ffmpeg_exe,
    first_error,
    is_sequence,
)


def sequence_files(pattern: Path) -> list[Path]:
    """The files in ``pattern``'s folder that the pattern names (any frame number)."""
    name = pattern.name
    m = SEQUENCE_PATTERN.search(name)
    rx = re.compile(re.escape(name[: m.start()]) + r"\d+" + re.escape(name[m.end() :]) + "$")
    folder = pattern.parent
    return sorted(f for f in folder.iterdir() if rx.match(f.name)) if folder.is_dir() else []


def partial_prefix(path: Path) -> str:
    """How the temporary file (or, for a PNG sequence, folder) of output ``path`` is named: ``.NAME.`` + random +
    ``.partial``, without ``%`` (ffmpeg would read it as a frame number in a folder name)."""
    return "." + path.name.replace("%", "") + "."


def check_output(
    output: str | os.PathLike,
    inputs: tuple[str | os.PathLike, ...] = (),
    codec: str | None = None,
    preset: str = "medium",
):
    """The output path, checked: refused when it would overwrite an input, sits under a file, or has a container
    ffmpeg cannot write here. A folder (existing, or ending in ``/``) means its PNG frames, ``FOLDER/%05d.png``.
    Missing folders are fine: the writer creates them."""
    out = Path(output)
    if out.is_dir() or str(output).endswith(("/", os.sep)):
        out = out / "%05d.png"  # a folder: its PNG frames
    check_container(out, codec, preset)
    parent = out.resolve().parent
    blocker = next((p for p in (parent, *parent.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise UserError(f"output folder {str(parent)!r} cannot be made: {str(blocker)!r} is a file")
    for src in inputs:
        if Path(src).resolve() == out.resolve() or (out.exists() and Path(src).exists() and os.path.samefile(src, out)):
            raise UserError(f"output {str(out)!r} is the input; choose another output path")
        if is_sequence(out) and Path(src).resolve() in (out.resolve().parent, *out.resolve().parent.parents):
            raise UserError(f"output frames {str(out)!r} would go into the input folder; choose another folder")
    return out


class VideoWriter:
    """Streams uint8 (f, h, w, 3) RGB frames to ffmpeg.

    ``record``: how the video was made (``record.make_record``), written into its comment tag. ``times``: each
    frame's presentation time in seconds from the first, and the last frame's end (frames + 1 values), for a
    variable-rate output (``FramePlan.pts``); without it frames are evenly spaced at ``fps``. ``audio_from``: a
    file whose audio streams (every track, language tags kept), from ``audio_start`` seconds for ``audio_duration``
    seconds (the video's duration), are muxed in; a file without audio gives a silent video. Use as a context manager
    and call ``close()`` at the end: that renames the temporary file to ``path``; an exception removes it instead and
    leaves ``path`` untouched.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        size: tuple[int, int],
        fps: Fraction,
        *,
        codec: str | None = None,
        crf: int = 18,
        preset: str = "medium",
        audio_from: str | os.PathLike | None = None,
        audio_start: float = 0.0,
        audio_duration: float | None = None,
        lossless: bool = False,
        video_input: list[str] | None = None,
        record: dict | None = None,
        times: tuple[Fraction, ...] | None = None,
    ):
        self.path = Path(path)
        codec = encoder_for(self.path, codec)
        self.size, self.fps = size, Fraction(fps)
        self.frames = 0
        self.sequence = is_sequence(self.path)
        # Frames at their own times go in as NUT (rawvideo with a timestamp each); the rest as a bare raw pipe.
        self.times = None if self.sequence or lossless or video_input is not None else times
        self._nut = None
        folder = self.path.resolve().parent
        folder.mkdir(parents=True, exist_ok=True)
        umask = os.umask(0)
        os.umask(umask)
        if self.sequence:  # frames go to a hidden folder beside them, moved into place when complete
            self.tmp = Path(tempfile.mkdtemp(dir=folder, prefix=partial_prefix(self.path), suffix=".partial"))
            os.chmod(self.tmp, 0o777 & ~umask)
            audio_from = None
        else:
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=partial_prefix(self.path), suffix=".partial")
            os.close(fd)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would leak into the final file
            self.tmp = Path(tmp)
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - ffmpeg's stderr, closed in close()/abort()
        w, h = size
        rate = f"{self.fps.numerator}/{self.fps.denominator}"
        cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-nostdin"]
        if self.times is not None:
            cmd += ["-f", "nut", "-i", "pipe:0"]
        elif video_input is None:
            cmd += ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-framerate", rate, "-i", "pipe:0"]
        else:
            cmd += video_input
        if self.path.suffix.lower() == ".gif":
            audio_from = None  # GIF has no audio
        if audio_from is not None:
            cmd += ["-ss", f"{audio_start:.6f}"]
            if audio_duration is not None:
                cmd += ["-t", f"{audio_duration:.6f}"]
            cmd += ["-i", str(audio_from), "-map", "0:v:0", "-map", "1:a?"]  # every audio track, tags kept
            cmd += ["-c:a", "libopus" if self.path.suffix.lower() == ".webm" else "aac", "-b:a", "160k"]
        # Evenly spaced frames at the exact rate; or each at its own time, on the input's clock (not one a rate implies)
        rate_args = ["-r", rate] if self.times is None else ["-fps_mode", "passthrough", "-enc_time_base", "demux"]
        if lossless:  # RGB in, RGB out, bit-exact: for intermediate segments
            cmd += ["-c:v", "libx264rgb", "-qp", "0", "-preset", "ultrafast", "-pix_fmt", "rgb24", *rate_args]
        elif codec == "gif":
            cmd += ["-vf", GIF_FILTER, "-c:v", "gif", *rate_args]
        elif self.sequence:
            cmd += ["-c:v", "png", "-pix_fmt", "rgb24", "-start_number", "0"]
        else:
            cmd += ["-c:v", codec, "-pix_fmt", "rgb24" if codec == "libx264rgb" else "yuv420p", *rate_args]
            if codec in ("libx264", "libx264rgb", "libx265"):
                cmd += ["-crf", str(crf), "-preset", preset]
            elif codec.startswith("libvpx"):
                cmd += ["-crf", str(crf), "-b:v", "0"]
        if self.path.suffix.lower() in (".mp4", ".mov"):
            cmd += ["-movflags", "+faststart"]
        if record is not None and not self.sequence:
            cmd += comment_args(record)
        self._cmd = cmd
        self._proc: subprocess.Popen | None = None

    def _start(self) -> None:
        if self.sequence:
            cmd = [*self._cmd, "-f", "image2", str(self.tmp / self.path.name)]
        else:
            cmd = [*self._cmd, "-f", MUXERS[self.path.suffix.lower()], str(self.tmp)]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._log)
        if self.times is not None:
            self._nut = _NutMuxer(_WholeWrites(self._proc.stdin.fileno()), self.size, self.times)

    def finish_from_input(self) -> Path:
        """Run ffmpeg on ``video_input`` (no frames are piped) and move the result into place."""
        self._start()
        return self.close()

    def _ffmpeg_error(self) -> str:
        self._log.seek(0)
        return first_error(self._log.read().decode(errors="replace"))

    def write(self, frames) -> None:
        """Append uint8 (f, h, w, 3) RGB frames: a numpy array or a CPU torch tensor."""
        arr = frames if isinstance(frames, np.ndarray) else frames.numpy()  # a CPU torch tensor
        w, h = self.size
        if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[1:] != (h, w, 3):
            raise ValueError(f"expected uint8 (f, {h}, {w}, 3) frames, got {arr.dtype} {arr.shape}")
        if self._proc is None:
            self._start()
        if self.times is not None and self.frames + arr.shape[0] > len(self.times) - 1:
            raise ValueError(f"{self.frames + arr.shape[0]} frames written but only {len(self.times) - 1} times given")
        try:
            if self._nut is not None:
                self._nut.write(arr)
            else:
                self._proc.stdin.write(np.ascontiguousarray(arr).tobytes())
        except (BrokenPipeError, OSError):
            self._proc.wait()
            raise UserError(f"ffmpeg stopped while writing {str(self.path)!r}: {self._ffmpeg_error()}") from None
        self.frames += arr.shape[0]

    def close(self) -> Path:
        """Finish the file and move it into place; returns the output path."""
        if self._proc is None:
            self.abort()
            raise UserError("no frames were rendered, so no video was written")
        try:
            if self._nut is not None:
                self._nut.close()
            self._proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass  # ffmpeg stopped early: its exit status and log below say why
        code = self._proc.wait()
        if code != 0:
            err = self._ffmpeg_error()
            self.abort()
            raise UserError(f"ffmpeg could not write {str(self.path)!r}: {err}")
        if self.sequence:
            self._place_frames()
        else:
            os.replace(self.tmp, self.path)
        self._log.close()
        return self.path

    def _place_frames(self) -> None:
        """Move the finished frames over the folder's (an older, longer render's extra frames are removed first)."""
        new = {f.name for f in self.tmp.iterdir()}
        for old in sequence_files(self.path):
            if old.name not in new:
                old.unlink()
        for name in sorted(new):
            os.replace(self.tmp / name, self.path.parent / name)
        self.tmp.rmdir()

    def abort(self) -> None:
        """Stop ffmpeg and delete the temporary file; the output path is never touched."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        if self._proc is not None and self._proc.stdin and not self._proc.stdin.closed:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
        if self.sequence:
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            self.tmp.unlink(missing_ok=True)
        self._log.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()


class _WholeWrites:
    """A pipe's file descriptor as the file object PyAV writes through, which a Ctrl-C cannot cut short.

    Why: PyAV calls ``write`` from C and drops any exception that is not an ``Exception``; a KeyboardInterrupt raised
    by the signal handler inside it (a pipe write blocks while ffmpeg encodes: where a Ctrl-C most often lands) was
    printed and forgotten, and the run went on. Here every byte is written (a write cut by the signal wrote nothing,
    PEP 475; it is retried) and the interrupt is remembered for the caller to raise once PyAV returns."""

    def __init__(self, fd: int):
        self.fd, self.interrupted = fd, False

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        while view:
            try:
                view = view[os.write(self.fd, view) :]
            except KeyboardInterrupt:
                self.interrupted = True
        return len(data)


class _NutMuxer:
    """Raw RGB frames with a timestamp each, muxed as NUT into ffmpeg's stdin by PyAV: the one way to hand the
    ffmpeg binary frames at arbitrary times through a pipe (a raw pipe only has a rate)."""

    TIME_BASE = Fraction(1, 1_000_000)  # the plan's times are whole microseconds

    def __init__(self, pipe: _WholeWrites, size: tuple[int, int], times: tuple[Fraction, ...]):
        import av

        self._av, self.pipe, self.times, self.count = av, pipe, times, 0
        self.container = av.open(pipe, mode="w", format="nut")
        self.stream = self.container.add_stream("rawvideo")
        self.stream.width, self.stream.height = size
        self.stream.pix_fmt = "rgb24"
        self.stream.time_base = self.stream.codec_context.time_base = self.TIME_BASE

    def write(self, frames: np.ndarray) -> None:
        for rgb in frames:
            frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            t, t_next = self.times[self.count], self.times[self.count + 1]
            frame.pts, frame.time_base = round(t / self.TIME_BASE), self.TIME_BASE
            frame.duration = round((t_next - t) / self.TIME_BASE)
            self._mux(frame)
            self.count += 1

    def _mux(self, frame) -> None:
        try:
            for packet in self.stream.encode(frame):
                self.container.mux(packet)
        except self._av.error.FFmpegError as exc:  # the pipe closed under it: ffmpeg has stopped
            raise BrokenPipeError(str(exc)) from None
        finally:
            if self.pipe.interrupted:  # a Ctrl-C during a write (``_WholeWrites``), raised now that PyAV is out
                self.pipe.interrupted = False
                raise KeyboardInterrupt

    def close(self) -> None:
        self._mux(None)
        self.container.close()


def assemble(
    segments: list[Path],
    output: str | os.PathLike,
    size: tuple[int, int],
    fps: Fraction,
    times: tuple[Fraction, ...] | None = None,
    **options,
) -> Path:
    """Concatenate lossless segment files into ``output``: one encode with the final codec, audio muxed, atomic.

    ``options`` are ``VideoWriter``'s (codec, crf, preset, audio_from, audio_start, audio_duration, record). With
    ``times`` (a variable-rate output) the segments are decoded and written again at those times.
    """
    out = Path(output)
    out.resolve().parent.mkdir(parents=True, exist_ok=True)
    fd, listing = tempfile.mkstemp(dir=out.resolve().parent, prefix=f".{out.stem}.", suffix=".concat.txt")
    try:
        with os.fdopen(fd, "w") as f:
            for seg in segments:  # paths are ours (the work folder); quote them for the concat demuxer anyway
                f.write("file '" + str(Path(seg).resolve()).replace("'", "'\\''") + "'\n")
        video_input = ["-f", "concat", "-safe", "0", "-i", listing]
        if times is None:
            return VideoWriter(out, size, fps, video_input=video_input, **options).finish_from_input()
        return _retime(video_input, out, size, fps, times, **options)
    finally:
        os.unlink(listing)


def _retime(video_input: list[str], out: Path, size: tuple[int, int], fps: Fraction, times, **options) -> Path:
    """Decode ``video_input`` to raw frames and write them to ``out`` at ``times``, a few frames at a time."""
    w, h = size
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", *video_input]
    cmd += ["-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
    frame_bytes, chunk = w * h * 3, 16
    with tempfile.TemporaryFile() as log:
        dec = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log)
        try:
            with VideoWriter(out, size, fps, times=times, **options) as writer:
                while data := dec.stdout.read(frame_bytes * chunk):
                    arr = np.frombuffer(data, np.uint8)
                    writer.write(arr[: len(arr) // frame_bytes * frame_bytes].reshape(-1, h, w, 3))
                if dec.wait() != 0:
                    log.seek(0)
                    raise UserError(f"cannot read the rendered segments back: {first_error(log.read().decode())}")
                return writer.close()
        finally:
            if dec.poll() is None:
                dec.kill()
            dec.wait()
