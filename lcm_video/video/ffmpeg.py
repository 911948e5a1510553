"""The ffmpeg binary imageio-ffmpeg ships: where it is, which containers and encoders it can write here, its error
lines, and the comment tag that carries a render's settings (written as JSON, read back as a dict). No torch."""

from __future__ import annotations

import json
import os
import re
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

import imageio_ffmpeg

from ..errors import UserError

MUXERS = {".mp4": "mp4", ".mkv": "matroska", ".mov": "mov", ".webm": "webm", ".gif": "gif"}
# .avi is refused: its muxer put the video 2 frames after the audio (a 1.00 s clip came out 1.17 s long).
REFUSED = {".avi": "its muxer starts the video frames after the audio; write .mkv (any codec) or .mp4 instead"}
# A palette per frame (no whole-video palette pass, so a GIF streams like any output), dithered.
GIF_FILTER = "split[a][b];[a]palettegen=stats_mode=single:reserve_transparent=0[p];[b][p]paletteuse=new=1"
CONTAINERS = set(MUXERS)


def ffmpeg_exe() -> str:
    return imageio_ffmpeg.get_ffmpeg_exe()


@lru_cache(maxsize=1)
def encoders() -> frozenset[str]:
    """Names of the video and audio encoders this ffmpeg build has."""
    out = subprocess.run([ffmpeg_exe(), "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and len(parts[0]) == 6 and parts[0][0] in "VAS":
            names.add(parts[1])
    return frozenset(names)


SEQUENCE_PATTERN = re.compile(r"%0?(\d*)d")


def is_sequence(path: str | os.PathLike) -> bool:
    """A numbered PNG pattern such as ``frames/%05d.png``: the output is one PNG per frame, numbered from 0."""
    return Path(path).suffix.lower() == ".png" and SEQUENCE_PATTERN.search(Path(path).name) is not None


def encoder_for(path: str | os.PathLike, codec: str | None) -> str:
    """The video encoder of an output: ``codec`` when given, else VP9 for ``.webm`` and H.264 for the rest."""
    if codec:
        return codec
    return {".webm": "libvpx-vp9", ".gif": "gif", ".png": "png"}.get(Path(path).suffix.lower(), "libx264")


X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


def check_container(path: Path, codec: str | None, preset: str = "medium") -> None:
    """Refuse an output name ffmpeg cannot write here: an unknown container, an encoder this ffmpeg lacks or cannot
    open on this machine (a GPU encoder without its GPU), a preset the encoder rejects, or a codec the container
    cannot hold."""
    if path.suffix.lower() == ".png":
        if not is_sequence(path):
            raise UserError(f"output {str(path)!r}: a PNG sequence needs a frame number pattern, e.g. frames/%05d.png")
        if codec not in (None, "png"):
            raise UserError(f"--codec {codec} does not write PNG frames; a PNG sequence takes no --codec")
        return
    if path.suffix.lower() in REFUSED:
        raise UserError(f"output {str(path)!r}: {path.suffix} is not supported, {REFUSED[path.suffix.lower()]}")
    if path.suffix.lower() not in CONTAINERS:
        raise UserError(
            f"output {str(path)!r} needs a video extension: one of {', '.join(sorted(CONTAINERS))} (or a folder, "
            "or frames/%05d.png, for PNG frames)"
        )
    codec = encoder_for(path, codec)
    if codec not in encoders():
        raise UserError(f"--codec {codec!r} is not an encoder of this ffmpeg; try libx264, libx265 or libvpx-vp9")
    if path.suffix.lower() == ".webm" and codec not in ("libvpx-vp9", "libvpx", "libaom-av1", "libsvtav1"):
        raise UserError(f"--codec {codec} cannot go in .webm; use --codec libvpx-vp9 or an .mp4 output")
    if (path.suffix.lower() == ".gif") != (codec == "gif"):
        raise UserError(f"--codec {codec} and {path.suffix} do not go together; a .gif output takes no --codec")
    if codec in ("libx264", "libx264rgb", "libx265") and preset not in (*X264_PRESETS, "placebo"):
        raise UserError(f"--preset {preset!r} is not an x264/x265 preset; use one of {', '.join(X264_PRESETS)}")
    if codec not in ("libx264", "libx264rgb"):
        err = encoder_error(codec, preset)
        if err:
            raise UserError(f"--codec {codec} cannot encode here: {err}")


@lru_cache(maxsize=16)
def encoder_error(codec: str, preset: str) -> str | None:
    """ffmpeg's first error line when ``codec`` fails to encode one small frame here with ``preset`` (an encoder
    that is compiled in but cannot open: no GPU, no driver), else None. About 0.1 s, once per process."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-f", "lavfi", "-i", "color=s=256x256"]
    cmd += ["-frames:v", "1", "-pix_fmt", "yuv420p", "-c:v", codec]
    if codec in ("libx265",) or "nvenc" in codec or "qsv" in codec:
        cmd += ["-preset", preset]
    proc = subprocess.run([*cmd, "-f", "null", "-"], capture_output=True, text=True)
    return first_error(proc.stderr) if proc.returncode else None


def first_error(log: str) -> str:
    """The line of an ffmpeg error log that names the cause: the first (the last is a generic "Nothing was written
    into output file" or "Conversion failed!"), without its ``[libx264 @ 0x...]`` prefix."""
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    if not lines:
        return "ffmpeg exited with an error"
    line = lines[0]
    return line.split("] ", 1)[1] if line.startswith("[") and "] " in line else line


def comment_args(data: dict[str, Any]) -> list[str]:
    """ffmpeg arguments that write ``data`` as compact JSON into the output's comment tag."""
    return ["-metadata", "comment=" + json.dumps(data, separators=(",", ":"), ensure_ascii=True)]


def _unescape(value: str) -> str:
    """ffmetadata escapes ``=;#\\`` and newlines with a backslash."""
    out, i = [], 0
    while i < len(value):
        if value[i] == "\\" and i + 1 < len(value):
            i += 1
        out.append(value[i])
        i += 1
    return "".join(out)


def read_comment(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``'s comment tag (as ``comment_args`` wrote it), or None when it holds none. A file
    ffmpeg cannot read is a UserError."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-i", str(path), "-f", "ffmetadata", "-"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise UserError(f"cannot read {str(path)!r}: not a video, or truncated/corrupt")
    for line in proc.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.lower() == "comment":
            try:
                data = json.loads(_unescape(value))
            except ValueError:
                return None
            return data if isinstance(data, dict) else None
    return None
