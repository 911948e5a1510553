"""Synthetic test clips, made with the ffmpeg that imageio-ffmpeg ships: the one set of clip builders that the tests,
the benchmarks and ``python -m benchmarks.make_sample`` use. Deterministic for the same arguments and ffmpeg build."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import imageio_ffmpeg
import numpy as np


def _ffmpeg() -> list[str]:
    return [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y"]


def lavfi_clip(
    out: str | Path,
    source: str = "testsrc2",
    size: str = "64x48",
    rate: str = "30000/1001",
    seconds: float = 1.0,
    *,
    audio: bool = True,
    crf: int = 0,
    encode: Sequence[str] = (),
    audio_bitrate: str = "64k",
) -> Path:
    """An ffmpeg test-source clip (``testsrc2``, ``smptebars``, ...) with a beeping 440 Hz tone unless ``audio`` is
    off; H.264 yuv420p, lossless at ``crf`` 0 (decoded frames equal what was encoded). ``encode``: extra encoder
    arguments."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [*_ffmpeg(), "-f", "lavfi", "-i", f"{source}=size={size}:rate={rate}:duration={seconds}"]
    if audio:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency=440:beep_factor=4:duration={seconds}"]
        cmd += ["-c:a", "aac", "-b:a", audio_bitrate, "-shortest"]
    cmd += ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", str(crf), *encode]
    if out.suffix.lower() in (".mp4", ".mov"):
        cmd += ["-movflags", "+faststart"]
    subprocess.run([*cmd, str(out)], check=True)
    return out


def still_then_moving(out: str | Path, size: int, seconds: float = 2.0) -> Path:
    """A locked-off shot (colour bars with per-frame sensor-like noise) for ``seconds``, then as long a moving test
    pattern; ``size``², 24 fps, no audio."""
    src = f"size={size}x{size}:rate=24:duration={seconds}"
    cmd = [*_ffmpeg(), "-f", "lavfi", "-i", f"smptebars={src},noise=alls=6:allf=t+u", "-f", "lavfi", "-i"]
    cmd += [f"testsrc2={src}", "-filter_complex", "[0:v][1:v]concat=n=2:v=1[v]", "-map", "[v]"]
    cmd += ["-c:v", "libx264", "-crf", "18", str(out)]
    subprocess.run(cmd, check=True)
    return Path(out)


def texture(height: int, width: int, seed: int = 0, smooth: int = 4) -> np.ndarray:
    """A smooth random colour texture, uint8 (height, width, 3): noise at 1/``smooth`` resolution, bicubic-upscaled
    (``smooth`` 1: per-pixel noise)."""
    import cv2

    rng = np.random.default_rng(seed)
    if smooth <= 1:
        return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    small = rng.random((max(2, height // smooth), max(2, width // smooth), 3)).astype(np.float32)
    big = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    return (np.clip(big, 0, 1) * 255).round().astype(np.uint8)


def pan(tex: np.ndarray, frames: int, width: int, step: int, still: int = 0) -> np.ndarray:
    """uint8 (still + frames, h, width, 3): ``still`` copies of the left edge of ``tex``, then a window moving right by
    ``step`` pixels a frame."""
    views = [tex[:, :width]] * still + [tex[:, step * k : step * k + width] for k in range(1, frames + 1)]
    return np.stack(views)


def frames_clip(out: str | Path, frames: np.ndarray, fps: int = 30) -> Path:
    """Write uint8 (f, h, w, 3) frames as lossless H.264 (yuv444p, qp 0)."""
    f, h, w, _ = frames.shape
    writer = imageio_ffmpeg.write_frames(
        str(out), (w, h), fps=fps, codec="libx264", pix_fmt_out="yuv444p", quality=None, output_params=["-qp", "0"]
    )
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()
    return Path(out)


MOTION_CLIPS = ("pan", "zoom", "crossing", "cut", "still")
MOTION_PROMPT = "a red square on a textured background"
"""What every ``motion_clip`` shows, in the toy world's words: the prompt that restyles it faithfully."""


def motion_clip(kind: str, size: int = 128, frames: int = 24, seed: int = 0) -> np.ndarray:
    """uint8 (frames, size, size, 3): a toy-world scene (``MOTION_PROMPT``: ``toy.world``'s red square on one of its
    smooth textures, so a model trained on that world sees familiar content) with one kind of motion, for
    temporal-consistency benchmarks:

    - ``pan``: a camera moving 2 px right and 1 px down a frame;
    - ``zoom``: zooming in 1.5 % a frame;
    - ``crossing``: the square crossing a still background 3 px a frame (occlusion, disocclusion);
    - ``cut``: half the frames panning one scene, then a hard cut to another (other texture, other place);
    - ``still``: a locked-off shot, every frame the same.
    """
    from PIL import Image

    from ..toy import world as toy

    rng = np.random.default_rng(seed)
    r = 0.22 * size

    def world(side: int, cx: float, cy: float) -> np.ndarray:
        return toy.draw(toy.Scene("square", "red", "textured", cx, cy, r), side, toy.smooth_texture(side, rng))

    if kind in ("pan", "cut"):
        side = size + 3 * frames
        scenes = [world(side, size * 0.45 + frames, size * 0.5 + frames / 2)]
        if kind == "cut":
            scenes.append(world(side, size * 0.75 + frames, size * 0.35 + frames / 2))
        views = []
        for k in range(frames):
            tex = scenes[1] if kind == "cut" and k >= frames // 2 else scenes[0]
            views.append(tex[k : k + size, 2 * k : 2 * k + size])
        return np.stack(views)
    if kind == "zoom":
        tex = Image.fromarray(world(2 * size, size * 0.9, size * 1.05))
        views = []
        for k in range(frames):
            half = size * 0.6 * 0.985**k  # the crop's half side in the 2x world: zooming in
            box = (size - half, size - half, size + half, size + half)
            views.append(np.asarray(tex.resize((size, size), Image.Resampling.LANCZOS, box=box)))
        return np.stack(views)
    if kind == "crossing":
        tex = toy.smooth_texture(size, rng)
        scene = [toy.Scene("square", "red", "textured", r + 3 * k, size / 2, r) for k in range(frames)]
        return np.stack([toy.draw(s, size, tex) for s in scene])
    if kind == "still":
        return np.stack([world(size, size * 0.45, size * 0.55)] * frames)
    raise ValueError(f"kind must be one of {MOTION_CLIPS}")


def motion_flow(kind: str, clip: np.ndarray, k: int, backward: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The true motion between frames ``k`` and ``k + 1`` of ``motion_clip(kind, ...)`` = ``clip`` (uint8 (n, s, s,
    3)), in ``FlowEstimator``'s convention: flow (s, s, 2) float32 pixels with ``clip[k+1](x + f(x)) = clip[k](x)``,
    and valid (s, s) float32, 0 where the pixel of frame k is hidden in frame k + 1 or leaves it. ``backward``: from
    frame k to k - 1 instead (where each pixel of frame k was: ``latent_motion``'s convention). So a benchmark can
    grade, or blend, with no estimator at all, and check the estimators. Not defined across the cut of ``cut``."""
    other, sign = (k - 1, -1.0) if backward else (k + 1, 1.0)
    size = clip.shape[1]
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    fw = np.zeros((size, size, 2), np.float32)
    valid = np.ones((size, size), bool)
    if kind in ("pan", "cut"):
        if kind == "cut" and max(k, other) == len(clip) // 2:
            raise ValueError("no motion across the cut")
        fw[..., 0], fw[..., 1] = -2.0 * sign, -1.0 * sign  # the camera moves 2 px right and 1 down a frame
    elif kind == "zoom":
        # Each frame shows 1.5 % less of the world, at the same size.
        centre, scale = (size - 1) / 2, (1 / 0.985 if not backward else 0.985) - 1
        fw[..., 0], fw[..., 1] = (xs - centre) * scale, (ys - centre) * scale
    elif kind == "crossing":
        from ..toy import world as toy

        red = np.array(toy.COLOURS["red"])
        here, there = (clip[k] == red).all(-1), (clip[other] == red).all(-1)
        fw[here, 0] = 3.0 * sign  # the square moves 3 px right a frame over a still background
        valid &= ~(there & ~here)  # background the square covers in the other frame
    elif kind != "still":
        raise ValueError(f"kind must be one of {MOTION_CLIPS}")
    tx, ty = xs + fw[..., 0], ys + fw[..., 1]
    valid &= (tx >= 0) & (tx <= size - 1) & (ty >= 0) & (ty <= size - 1)
    return fw, valid.astype(np.float32)
