"""The similarity filter (``--skip-similar``; off by default, a quality trade-off): a source frame that barely differs
from the last rendered one repeats that frame's output instead of going through the model.

StreamDiffusion's filter skips at random with a probability that rises with the cosine similarity to the last
processed frame. Ours decides by a fixed rule on integer sums instead, so every process, segment and rerun makes the
same decision (the determinism invariant), and it decides for the whole plan before rendering starts: a segment in
the middle of a video must know which frames before it were rendered. The scan decodes the plan's frames once at
thumbnail size, a chunk at a time (memory does not grow with the video).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .plan import FrameMap
from .reader import FrameReader, VideoInfo

THUMB_SIDE = 64
SCAN_CHUNK = 64


def thumb_size(size: tuple[int, int]) -> tuple[int, int]:
    """The (width, height) the filter compares at: the output's aspect, longer side at most 64 pixels."""
    w, h = size
    scale = min(1.0, THUMB_SIDE / max(w, h))
    return max(2, round(w * scale)), max(2, round(h * scale))


class Rule:
    """The filter's rule, one thumbnail at a time: ``repeats(thumb)`` says whether the frame repeats the last rendered
    frame ``ref``: while ``mean |thumb - thumb_ref| <= threshold`` (8-bit levels) and fewer than ``max_skip`` frames
    in a row have; the first frame (and the first after ``reset()``) is always rendered. Comparing against the last
    *rendered* frame, not the previous one, bounds the drift of a slow pan to ``threshold``."""

    def __init__(self, threshold: float, max_skip: int):
        self.threshold, self.max_skip = threshold, max_skip
        self.reset()

    def reset(self) -> None:
        self.ref: np.ndarray | None = None
        self.run = 0

    def repeats(self, thumb) -> bool:
        t = np.asarray(thumb, np.int32)
        # Integer sum against threshold·count: the same decision on every machine, no float rounding at the edge.
        if (
            self.ref is not None
            and self.run < self.max_skip
            and int(np.abs(t - self.ref).sum()) <= self.threshold * t.size
        ):
            self.run += 1
            return True
        self.ref, self.run = t, 0
        return False


def decide(thumbs, threshold: float, max_skip: int) -> FrameMap:
    """The filter's rule (``Rule``) over uint8 (h, w, 3) thumbnails in output order (any iterable, consumed once)."""
    rule, shows, pos = Rule(threshold, max_skip), [], -1
    for thumb in thumbs:
        pos += not rule.repeats(thumb)
        shows.append(pos)
    return FrameMap(tuple(shows))


def thumbnail(frame: np.ndarray) -> np.ndarray:
    """A uint8 (h, w, 3) frame at ``thumb_size`` (box filter): what the filter compares one live frame by."""
    from PIL import Image

    h, w = frame.shape[:2]
    return np.asarray(Image.fromarray(frame).resize(thumb_size((w, h)), Image.Resampling.BOX))


@lru_cache(maxsize=8)  # a batch process renders several segments of one job; scan it once
def scan(info: VideoInfo, sources: tuple[int, ...], size: tuple[int, int], threshold: float, max_skip: int) -> FrameMap:
    """Which output frames of a stylise plan reuse an earlier render. ``sources``: the plan's source frame of each
    output frame; ``size``: the output (width, height), whose crop the thumbnails follow."""
    reader = FrameReader(info, thumb_size(size))

    def thumbs():
        for a in range(0, len(sources), SCAN_CHUNK):
            yield from reader.read(sources[a : a + SCAN_CHUNK])

    try:
        return decide(thumbs(), threshold, max_skip)
    finally:
        reader.close()
