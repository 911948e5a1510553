"""Judging the toy models' pictures and videos in code (numpy and OpenCV, no torch): which colour and shape a picture
shows, and how well a restyled video keeps a moving square where the source had it. Used by the tests and by
``python -m benchmarks.eval_toy``.

- ``classify``: an image shows (colour, shape) when its main non-background colour (nearest palette colour) is that
  colour and that colour's largest connected region overlaps that shape's template best (100% right on the toy
  world's own drawn pictures).
- ``video_iou``: a red square moving over white, restyled by a caller's function into "a COLOUR square on a white
  background": per-frame IoU of the output's COLOUR region with the source's square.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from . import world


def plain_prompts(n: int, seed: int) -> list[tuple[str, str, str]]:
    """(colour, shape, background) triples on plain backgrounds, cycling through every shape and colour."""
    rng = np.random.default_rng(seed)
    out = []
    colours = list(world.COLOURS)
    for i in range(n):
        colour = colours[i % len(colours)]
        shape = world.SHAPES[(i // len(colours)) % len(world.SHAPES)]
        bgs = [c for c in colours if c != colour]
        out.append((colour, shape, bgs[rng.integers(len(bgs))]))
    return out


def shape_of(mask: np.ndarray) -> str:
    """The toy shape (upright triangle, axis-aligned square, circle) whose template of the same area and centroid
    overlaps bool (h, w) ``mask`` best (IoU): what a person would call a rounded triangle or a soft-cornered square."""
    ys, xs = np.nonzero(mask)
    area, cy, cx = len(ys), ys.mean(), xs.mean()
    best, name = -1.0, "circle"
    for shape in world.SHAPES:
        # world.draw's own shape, its radius from the mask's area: circles and squares of radius r cover πr², the
        # triangle inscribed in that circle 3√3/4·r².
        r = math.sqrt(4 * area / (3 * math.sqrt(3)) if shape == "triangle" else area / math.pi)
        t = world.draw(world.Scene(shape, "white", "black", float(cx), float(cy), r), mask.shape[0])[..., 0] > 127
        iou = (mask & t).sum() / max(1, (mask | t).sum())
        if iou > best:
            best, name = iou, shape
    return name


def classify(img: np.ndarray, background: str) -> tuple[str | None, str | None]:
    """(colour, shape) of the main non-background region of uint8 (h, w, 3): pixels take their nearest palette colour;
    the most common colour other than the background's is the shape's; its largest connected region (so a stray
    pixel of that colour elsewhere does not count) is matched against the three shapes' templates (``shape_of``).
    (None, None) when under 2% of the picture is not background."""
    import cv2

    names = list(world.COLOURS)
    nearest = palette_index(img)
    bg = names.index(background)
    counts = np.bincount(nearest[nearest != bg].ravel(), minlength=len(names))
    if counts.sum() < 0.02 * img.shape[0] * img.shape[1]:
        return None, None
    colour = int(counts.argmax())
    _, labels, stats, _ = cv2.connectedComponentsWithStats((nearest == colour).astype(np.uint8), connectivity=4)
    largest = 1 + int(stats[1:, cv2.CC_STAT_AREA].argmax())
    return names[colour], shape_of(labels == largest)


def palette_index(pixels: np.ndarray) -> np.ndarray:
    """int (...): the index into ``world.COLOURS`` of each uint8 (..., 3) pixel's nearest palette colour."""
    palette = np.array(list(world.COLOURS.values()), np.float32)
    return ((pixels[..., None, :].astype(np.float32) - palette) ** 2).sum(-1).argmin(-1)


def nearest_mask(frames: np.ndarray, colour: str) -> np.ndarray:
    """bool (f, h, w) of uint8 (f, h, w, 3) ``frames``: pixels whose nearest palette colour is ``colour``."""
    return palette_index(frames) == list(world.COLOURS).index(colour)


def drawn_background(nearest: np.ndarray) -> np.ndarray:
    """int (f,): each frame's background as drawn, the most common palette colour on its border, of palette indices
    int (f, h, w) (``palette_index``)."""
    border = np.concatenate([nearest[:, 0], nearest[:, -1], nearest[:, :, 0], nearest[:, :, -1]], axis=1)  # (f, n)
    return np.array([np.bincount(b, minlength=len(world.COLOURS)).argmax() for b in border])


def object_mask(nearest: np.ndarray) -> np.ndarray:
    """bool (f, h, w) of palette indices int (f, h, w) (``palette_index`` of frames on plain backgrounds): the pixels
    not of the background's colour as drawn (``drawn_background``), whatever the object's own colour. Why: a model
    draws an object between two palette colours (the toy student's golden yellow, a restyle's teal blue) and one
    colour's region then splits and wanders while the object, looked at, holds its place."""
    return nearest != drawn_background(nearest)[:, None, None]


def mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """float (f,): per-frame IoU of bool (f, h, w) masks (0 where both are empty)."""
    return (a & b).sum((1, 2)) / np.maximum(1, (a | b).sum((1, 2)))


def square_clip(frames: int = 24, size: int = 64) -> np.ndarray:
    """uint8 (frames, size, size, 3): a red square about half the side wide, moving right over white by 1/64 of the
    side a frame (1 px at 64 px)."""
    k = size / 64
    square = world.Scene("square", "red", "white", 18.0 * k, 32.0 * k, 16.0 * k)
    return world.moving_clip(square, frames, size, (k, 0.0))


def square_iou(src: np.ndarray, got: np.ndarray, colour: str = "blue") -> dict[str, float]:
    """Per-frame IoU of ``got``'s ``colour`` region with ``src``'s red square (both uint8 (f, h, w, 3)): its minimum
    and mean over the frames."""
    ious = mask_iou(nearest_mask(src, "red"), nearest_mask(got, colour))
    return {"video_iou_min": float(ious.min()), "video_iou_mean": float(ious.mean())}


def video_iou(
    restyle: Callable[[np.ndarray, str], np.ndarray], frames: int = 24, colour: str = "blue", size: int = 64
) -> dict[str, float]:
    """The moving red square (``square_clip``) restyled by ``restyle(src, prompt)`` into "a COLOUR square on a white
    background" (uint8 (f, h, w, 3) in and out; the caller renders, e.g. ``lcm_video.stylize`` through a file): the
    per-frame IoU of the output's COLOUR region with the source's square (``square_iou``)."""
    src = square_clip(frames, size)
    got = restyle(src, f"a {colour} square on a white background")
    assert got.shape == src.shape and got.dtype == np.uint8, (got.shape, got.dtype)
    return square_iou(src, got, colour)
