"""Streaming frame reader over decord: only the frames a window needs are decoded, already resized."""

from __future__ import annotations

import hashlib
import math
import os
import re
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..files import cache_dir

MAX_DEFAULT_SIDE = 768


def _decord():
    import decord

    decord.logging.set_level(decord.logging.QUIET)  # libav's own messages would garble the progress bar
    return decord


@dataclass(frozen=True)
class VideoInfo:
    """What a source video is: decodable frame count, exact frame rate, and its size as displayed: ``width`` is the
    coded width times the sample aspect ratio (``sar``; 4:3 for 120 coded pixels shown 160 wide), so everything
    downstream works in square pixels and an anamorphic source keeps its display aspect."""

    path: Path
    frames: int
    fps: Fraction
    width: int
    height: int
    sar: Fraction = Fraction(1)
    images: tuple[Path, ...] = ()  # an image sequence (a folder of frames): its files in order
    fps_assumed: bool = False  # an image sequence's rate, when nothing gave it
    stamps: tuple[float, ...] | None = None
    """Variable frame rate: each frame's start time in seconds from the first frame's, and the end of the last frame
    as one more entry (``frames + 1`` values); None when the frames are evenly spaced at ``fps`` (within
    ``VFR_TOLERANCE``), the common case. ``fps`` is then the average rate."""
    decoded: Path | None = None
    """Where the frames are read from when decord cannot index ``path`` itself (a GIF): a lossless copy of its video
    stream (``indexable_copy``); ``path`` stays the source (its audio, the record)."""

    @property
    def variable(self) -> bool:
        return self.stamps is not None

    @property
    def duration(self) -> Fraction:
        return self.frames / self.fps


def exact_fps(fps: float) -> Fraction:
    """decord's average fps (a float of the stream's rational rate) → that rational: 29.97002997 → 30000/1001."""
    frac = Fraction(fps).limit_denominator(1001)
    return frac if abs(float(frac) - fps) < 1e-6 * fps else Fraction(fps).limit_denominator(100000)


def check_input(path: str | os.PathLike, folders: bool = False) -> Path:
    """``path`` if it is a non-empty file (or, with ``folders``, a folder: an image sequence); else a UserError."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"input {str(p)!r} does not exist; check the path")
    if p.is_dir():
        if folders:
            return p
        raise UserError(f"input {str(p)!r} is a directory; give a video file")
    if p.stat().st_size == 0:
        raise UserError(f"input {str(p)!r} is empty (0 bytes); give a video file")
    return p


@contextmanager
def _silence_stderr_fd():
    """decord's C++ logger writes to file descriptor 2 whatever its level; a user error must stay one line."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _open(path: Path, **kwargs):
    decord = _decord()
    try:
        with _silence_stderr_fd():
            return decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=0, **kwargs)
    except (RuntimeError, decord.DECORDError) as exc:
        msg = str(exc)
        if "cannot find video stream" in msg:
            raise UserError(f"input {str(path)!r} has no video stream (audio only?); give a video file") from None
        raise UserError(
            f"cannot decode {str(path)!r}: not a video, or truncated/corrupt; check it plays, or re-encode it "
            "with ffmpeg"
        ) from None


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
SEQUENCE_FPS = Fraction(24)


def _natural(path: Path) -> list:
    """Sort key: frame2.png before frame10.png."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def probe_images(folder: Path) -> VideoInfo:
    """An image sequence: the folder's PNG/JPEG/WebP/BMP/TIFF files in natural order, the first one's size, and
    ``SEQUENCE_FPS`` (``fps_assumed``) until the caller sets the rate (stylise: ``--fps``)."""
    from PIL import Image, UnidentifiedImageError

    files = tuple(sorted((f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES), key=_natural))
    if not files:
        raise UserError(
            f"input folder {str(folder)!r} has no images ({', '.join(IMAGE_SUFFIXES)}); give a video or a folder "
            "of frames"
        )
    try:
        with Image.open(files[0]) as img:
            w, h = img.size
    except (OSError, UnidentifiedImageError):
        raise UserError(f"cannot read {str(files[0])!r} as an image; remove it from the folder or re-save it") from None
    return VideoInfo(folder, len(files), SEQUENCE_FPS, w, h, images=files, fps_assumed=True)


def probe(path: str | os.PathLike) -> VideoInfo:
    """Frame count, exact fps and size of a video (or of an image sequence: a folder of frames); a UserError if it
    cannot be decoded."""
    p = check_input(path, folders=True)
    if p.is_dir():
        return probe_images(p)
    decoded = None
    try:
        vr = _open(p)
    except UserError as exc:  # decord cannot index every source ffmpeg decodes (a GIF: "broken metadata")
        if "no video stream" in str(exc) or (decoded := indexable_copy(p)) is None:
            raise
        vr = _open(decoded)
    if decoded is None and mirrored(p):  # decord turns a mirrored picture by the matrix's angle and ignores the flip
        decoded = indexable_copy(p)  # ffmpeg applies the whole display matrix while it copies
        vr = _open(decoded) if decoded is not None else vr
    n = len(vr)
    fps = vr.get_avg_fps()
    if n < 1 or not fps or not math.isfinite(fps) or fps <= 0:
        raise UserError(f"input {str(p)!r} has no decodable video frames; check it plays, or re-encode it")
    try:
        h, w = vr[0].shape[:2]
    except Exception:
        raise UserError(f"cannot decode the first frame of {str(p)!r}: the file is corrupt") from None
    sar = sample_aspect(p)
    rate = exact_fps(fps)
    stamps = frame_stamps(vr, rate)
    if stamps is not None:  # the container's average may be a guess (WebM has none): the frames' own
        rate = Fraction(n / stamps[-1]).limit_denominator(1001)
    return VideoInfo(p, n, rate, max(1, round(int(w) * sar)), int(h), sar, stamps=stamps, decoded=decoded)


def mirrored(path: Path) -> bool:
    """Whether the video's display matrix mirrors the picture (a negative determinant: ``ffmpeg -display_hflip``,
    alone or with a rotation), read from its first frame's side data."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return False
            frame = next(container.decode(video=0), None)
    except (av.error.FFmpegError, OSError):
        return False
    for side in frame.side_data if frame is not None else ():
        if side.type.name == "DISPLAYMATRIX":
            m = np.frombuffer(bytes(side), dtype="<i4")[:5].astype(np.float64)  # 3x3, row-major, 16.16 fixed point
            return m[0] * m[4] - m[1] * m[3] < 0  # the determinant of its 2x2 part
    return False


def indexable_copy(path: Path) -> Path | None:
    """A copy of ``path``'s video stream that decord can index, for a source it cannot (a GIF): every frame, lossless
    (FFV1 in Matroska), each with its own time (GIF frame delays vary), made once and cached by the source's path, size
    and modification time under ``$LCM_VIDEO_CACHE/sources``. None when ffmpeg cannot decode all of it cleanly either
    (a truncated or corrupt file stays refused)."""
    from .ffmpeg import ffmpeg_exe

    st = path.stat()
    key = hashlib.sha256(f"{path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()[:20]
    out = cache_dir() / "sources" / f"{key}.mkv"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.tmp.mkv")
    cmd = [ffmpeg_exe(), "-v", "error", "-y", "-nostdin", "-i", str(path), "-map", "0:v:0", "-an", "-sn"]
    cmd += ["-c:v", "ffv1", "-pix_fmt", "bgr0", "-fps_mode", "passthrough", str(tmp)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or proc.stderr.strip():  # an error on the way: a damaged file, refused as before
            return None
        os.replace(tmp, out)  # whole or not at all: two processes converting at once both end with a whole file
    finally:
        tmp.unlink(missing_ok=True)
    return out


VFR_TOLERANCE = 0.0005
"""Seconds a frame may sit off the even grid of its average rate before a source counts as variable-rate: half the
1 ms that output frame times are kept to, so rounding a near-even source onto the grid stays within it (a 29.97 fps
stream in a millisecond-clock container sits up to 0.5 ms off)."""


def frame_stamps(vr, fps: Fraction) -> tuple[float, ...] | None:
    """The frames' start times (seconds from the first frame's) and the last frame's end, from the demuxer's
    timestamps (decord: presentation order), when they are not evenly spaced at ``fps``; else None. The last frame
    lasts as long as the one before it (containers rarely say)."""
    n = len(vr)
    if n < 2:
        return None
    t = vr.get_frame_timestamp(range(n))[:, 0].astype(np.float64)
    t -= t[0]
    grid = np.arange(n) / float(fps)
    if np.abs(t - grid).max() <= VFR_TOLERANCE:
        return None
    if np.any(np.diff(t) <= 0):  # unordered or repeated timestamps: the grid is the best guess there is
        return None
    return (*t.tolist(), float(t[-1] + (t[-1] - t[-2])))


_SAR = re.compile(r"\[SAR (\d+):(\d+) DAR \d+:\d+\]")


def sample_aspect(path: Path) -> Fraction:
    """The first video stream's sample (pixel) aspect ratio, from ffmpeg's stream line; 1 when it states none.
    (decord decodes coded pixels and does not say.)"""
    import subprocess

    from .ffmpeg import ffmpeg_exe

    log = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    line = next((ln for ln in log.splitlines() if "Video:" in ln), "")
    m = _SAR.search(line)
    if not m or int(m.group(1)) == 0 or int(m.group(2)) == 0:
        return Fraction(1)
    return Fraction(int(m.group(1)), int(m.group(2)))


def output_size(info: VideoInfo, width: int | None, height: int | None) -> tuple[int, int]:
    """(width, height), multiples of 8: as given; one given → the other from the source aspect; none → the source
    size with the longer side capped at 768."""
    aspect = info.width / info.height
    if width and height:
        return width, height
    if width:
        return width, max(8, round(width / aspect / 8) * 8)
    if height:
        return max(8, round(height * aspect / 8) * 8), height
    scale = min(1.0, MAX_DEFAULT_SIDE / max(info.width, info.height))
    return max(8, int(info.width * scale) // 8 * 8), max(8, int(info.height * scale) // 8 * 8)


class FrameReader:
    """Reads source frames by index, scaled to cover ``size`` and centre-cropped to it.

    ``read(indices)`` → uint8 numpy (f, h, w, 3). decord scales while decoding, so a 4K source never sits in
    memory at 4K.
    """

    def __init__(self, info: VideoInfo, size: tuple[int, int]):
        self.info, self.size = info, size
        w, h = size
        scale = max(w / info.width, h / info.height)
        self._cover = (max(w, round(info.width * scale)), max(h, round(info.height * scale)))
        source = info.decoded or info.path
        self._vr = None if info.images else _open(source, width=self._cover[0], height=self._cover[1])

    def _read_images(self, indices: list[int] | range) -> np.ndarray:
        """Frames of an image sequence, each scaled to cover the size (Lanczos, as decord's scaler would)."""
        from PIL import Image, UnidentifiedImageError

        out = []
        for i in indices:
            path = self.info.images[i]
            try:
                with Image.open(path) as img:
                    out.append(np.asarray(img.convert("RGB").resize(self._cover, Image.Resampling.LANCZOS)))
            except (OSError, UnidentifiedImageError):
                raise UserError(f"cannot read frame {str(path)!r}: not an image, or truncated; re-save it") from None
        return np.stack(out)

    def read(self, indices: list[int] | range) -> np.ndarray:
        if self.info.images:
            return self._crop(self._read_images(indices))
        decord = _decord()
        try:
            with _silence_stderr_fd():
                batch = self._vr.get_batch(list(indices)).asnumpy()
        except (RuntimeError, decord.DECORDError):
            raise UserError(
                f"cannot decode frames {indices[0]}-{indices[-1]} of {str(self.info.path)!r}: the file is truncated "
                "or corrupt; re-encode it with ffmpeg or use --end to stop before the damage"
            ) from None
        return self._crop(batch)

    def _crop(self, batch: np.ndarray) -> np.ndarray:
        cw, ch = self._cover
        w, h = self.size
        x0, y0 = (cw - w) // 2, (ch - h) // 2
        return np.ascontiguousarray(batch[:, y0 : y0 + h, x0 : x0 + w])

    def close(self) -> None:
        self._vr = None
