"""Captioned training data: a folder of images or videos with same-name ``.txt`` captions, or a CSV / JSONL file of
``path`` and ``caption``. Everything is checked when the data set is opened, so a missing caption or an unreadable
file is one error line before any training starts."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError

IMAGES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
VIDEOS = (".mp4", ".mkv", ".mov", ".webm", ".avi", ".gif")
FRAMES_PER_VIDEO = 16  # evenly spaced frames taken from each training video


@dataclass(frozen=True)
class Sample:
    """One training image: a file (an image, or frame ``frame`` of a video) and its caption."""

    path: Path
    caption: str
    frame: int | None = None


def _rows(table: Path) -> list[tuple[str, str]]:
    text = table.read_text(encoding="utf-8")
    try:
        if table.suffix.lower() == ".jsonl":
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            rows = list(csv.DictReader(text.splitlines()))
    except (ValueError, csv.Error) as exc:
        raise UserError(f"--data {str(table)!r} cannot be parsed: {exc}") from None
    out = []
    for i, row in enumerate(rows, 1):
        if not isinstance(row, dict) or not row.get("path") or not str(row.get("caption") or "").strip():
            raise UserError(f"--data {str(table)!r} row {i} needs a path and a caption")
        out.append((str(row["path"]), str(row["caption"]).strip()))
    return out


def _pairs(data: Path) -> list[tuple[Path, str]]:
    if data.is_file():
        if data.suffix.lower() not in (".csv", ".jsonl"):
            raise UserError(
                f"--data {str(data)!r}: give a folder of images/videos with .txt captions, or a .csv/.jsonl"
            )
        return [((data.parent / p), caption) for p, caption in _rows(data)]
    media = sorted(p for p in data.rglob("*") if p.suffix.lower() in IMAGES + VIDEOS)
    missing = [p for p in media if not p.with_suffix(".txt").is_file()]
    if missing:
        raise UserError(
            f"--data: {len(missing)} of {len(media)} files have no caption (e.g. {str(missing[0])!r}); put the caption "
            f"in {missing[0].with_suffix('.txt').name} beside it"
        )
    pairs = []
    for p in media:
        caption = p.with_suffix(".txt").read_text(encoding="utf-8").strip()
        if not caption:
            raise UserError(f"--data: the caption file {str(p.with_suffix('.txt'))!r} is empty")
        pairs.append((p, caption))
    return pairs


def open_dataset(data: str | Path) -> list[Sample]:
    """The samples of ``data``, every file checked to decode; a UserError naming the first problem."""
    from PIL import Image

    from ..video.reader import probe

    root = Path(data)
    if not root.exists():
        raise UserError(f"--data {str(root)!r} does not exist; give a folder or a .csv/.jsonl file")
    samples: list[Sample] = []
    for path, caption in _pairs(root):
        if not path.is_file():
            raise UserError(f"--data: {str(path)!r} does not exist")
        if path.suffix.lower() in VIDEOS:
            n = probe(path).frames
            picks = sorted({round(i * (n - 1) / max(1, FRAMES_PER_VIDEO - 1)) for i in range(min(n, FRAMES_PER_VIDEO))})
            samples += [Sample(path, caption, f) for f in picks]
            continue
        try:
            with Image.open(path) as im:
                im.verify()
        except Exception:
            raise UserError(f"--data: cannot read the image {str(path)!r}; re-save it as PNG or JPEG") from None
        samples.append(Sample(path, caption))
    if not samples:
        raise UserError(f"--data {str(root)!r} holds no images or videos ({', '.join(IMAGES + VIDEOS)})")
    return samples


def load_pixels(sample: Sample, resolution: int) -> np.ndarray:
    """uint8 (resolution, resolution, 3): the sample scaled so its shorter side is ``resolution``, centre-cropped."""
    from PIL import Image

    if sample.frame is not None:
        from ..video.reader import FrameReader, probe

        reader = FrameReader(probe(sample.path), (resolution, resolution))
        try:
            return reader.read([sample.frame])[0]
        finally:
            reader.close()
    with Image.open(sample.path) as im:
        im = im.convert("RGB")
        scale = resolution / min(im.size)
        w, h = max(resolution, round(im.width * scale)), max(resolution, round(im.height * scale))
        im = im.resize((w, h), Image.Resampling.BICUBIC)
        x, y = (w - resolution) // 2, (h - resolution) // 2
        return np.asarray(im.crop((x, y, x + resolution, y + resolution)), dtype=np.uint8)


@dataclass(frozen=True)
class ClipSample:
    """One training video for video distillation: its file, caption and frame count."""

    path: Path
    caption: str
    frames: int


def open_clips(data: str | Path, frames: int) -> list[ClipSample]:
    """The videos of ``data`` (a folder with same-name ``.txt`` captions, or a .csv/.jsonl), each checked to decode
    and to hold at least ``frames`` frames; a UserError naming the first problem (an image, a short video)."""
    from ..video.reader import probe

    root = Path(data)
    if not root.exists():
        raise UserError(f"--data {str(root)!r} does not exist; give a folder of videos or a .csv/.jsonl file")
    clips: list[ClipSample] = []
    for path, caption in _pairs(root):
        if not path.is_file():
            raise UserError(f"--data: {str(path)!r} does not exist")
        if path.suffix.lower() not in VIDEOS:
            raise UserError(
                f"--data: {str(path)!r} is not a video; video distillation (--motion-adapter) trains on clips of "
                f"{frames} frames: give videos ({', '.join(VIDEOS)})"
            )
        n = probe(path).frames
        if n < frames:
            raise UserError(
                f"--data: {str(path)!r} has {n} frames, fewer than --frames {frames}; lower --frames or drop the video"
            )
        clips.append(ClipSample(path, caption, n))
    if not clips:
        raise UserError(f"--data {str(root)!r} holds no videos ({', '.join(VIDEOS)})")
    return clips


def load_clip(sample: ClipSample, start: int, frames: int, resolution: int) -> np.ndarray:
    """uint8 (frames, resolution, resolution, 3): frames ``start`` … ``start + frames − 1`` of the video, scaled to
    cover the square and centre-cropped (as ``load_pixels`` reads a video's frame)."""
    from ..video.reader import FrameReader, probe

    reader = FrameReader(probe(sample.path), (resolution, resolution))
    try:
        return reader.read(range(start, start + frames))
    finally:
        reader.close()
