"""Temporal-consistency and fidelity metrics of a video, streamed two frames at a time.

- ``warp_error`` (Lai et al. 2018, "Learning Blind Video Temporal Consistency"): optical flow between consecutive
  frames of the *source* (or of the video itself without one), OpenCV's DIS flow (or Farneback's: ``flow=``);
  pixels failing the forward-backward consistency check (Sundaram et al. 2010) are masked as occluded; the error is
  the masked mean squared difference of each frame and the next frame warped back onto it. RGB in [0, 1], so the
  unit is [0, 1]². A pair across a hard cut (under ``CUT_VALID`` of the frame explained by the other, as
  ``--warp flow`` decides it) is left out of it and of tOF, with a note: no motion relates the two frames.
- ``flicker``: mean absolute difference of consecutive frames, RGB in [0, 1].
- ``tof``: mean end-point difference (pixels) between the video's flow and the source's flow (needs a source).
- ``psnr`` (dB, capped at 100) and ``ssim`` (Gaussian window σ = 1.5, RGB mean) against the source (needs a source).
- ``edge_f1``: structure fidelity against the source, no model needed: the F1 of the video's Canny edges against the
  source's (the ``--control canny`` annotator's thresholds), an edge pixel matching within ``EDGE_TOLERANCE`` px (the
  usual tolerance of edge benchmarks such as BSDS), per frame and averaged; 1 where neither frame has an edge.

Frames are paired with the source by index; the source is resized to the video's size. When the two differ in frame
rate, frame count or aspect (a ``--fps``, ``--start/--end`` or cropped render), pairing by index compares different
moments or framings: ``Metrics.notes`` says so, and the command line prints each note as a warning.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .errors import UserError
from .temporal.flow import CUT_VALID, FlowEstimator, consistent_mask, explained, warp_image
from .video.reader import FrameReader, probe

PSNR_CAP = 100.0
EDGE_TOLERANCE = 2  # px: an edge shifted by up to this much still matches


@dataclass(frozen=True)
class Metrics:
    """Averages over the video's frame pairs (``frames`` frames); source-based ones are None without a source."""

    frames: int
    warp_error: float
    flicker: float
    tof: float | None = None
    psnr: float | None = None
    ssim: float | None = None
    edge_f1: float | None = None
    notes: tuple[str, ...] = ()
    warp_errors: tuple[float, ...] = field(default=(), repr=False)  # per frame pair, in order, NaN across a cut
    flickers: tuple[float, ...] = field(default=(), repr=False)
    edge_f1s: tuple[float, ...] = field(default=(), repr=False)  # per frame, with a source

    def to_dict(self) -> dict:
        """The averages and notes (what ``lcm-video eval --json`` prints), without the per-pair values."""
        d = asdict(self)
        d["notes"] = list(self.notes)
        del d["warp_errors"], d["flickers"], d["edge_f1s"]
        return d


def source_note(video: str | os.PathLike, source: str | os.PathLike) -> tuple[str, ...]:
    """A note when ``video`` records (``record.py``) that it was made from another file than ``source``."""
    from .record import read_record

    rec = read_record(video)
    made_from = (rec or {}).get("source", {}).get("path")
    if made_from and Path(made_from) != Path(source).resolve():
        return (
            f"the video was made from {made_from!r}, not {str(source)!r}: the source metrics compare other footage",
        )
    return ()


def pairing_notes(info, sinfo) -> tuple[str, ...]:
    """Why pairing ``info``'s frames with ``sinfo``'s by index may compare unrelated frames (VideoInfo of the output
    and of the source); empty when rate, count and aspect agree."""
    notes = []
    if abs(float(info.fps) - float(sinfo.fps)) > 1e-3 * float(sinfo.fps):
        notes.append(
            f"the video runs at {float(info.fps):.4g} fps and the source at {float(sinfo.fps):.4g}: frames are paired "
            "by index, not time, so the source metrics compare different moments"
        )
    if info.frames != sinfo.frames:
        notes.append(
            f"the video has {info.frames} frames and the source {sinfo.frames}: only the first "
            f"{min(info.frames, sinfo.frames)} are paired (for a --start/--end render, cut the source the same way)"
        )
    a, b = info.width / info.height, sinfo.width / sinfo.height
    if abs(a - b) > 0.02 * b:
        notes.append(
            f"the video is {info.width}x{info.height} and the source {sinfo.width}x{sinfo.height}: the source is "
            "centre-cropped to the video's aspect before comparing"
        )
    return tuple(notes)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Structural similarity of two float RGB images in [0, 1] (Wang et al. 2004), averaged over channels."""
    from .temporal.flow import cv2

    cv = cv2()
    c1, c2 = 0.01**2, 0.03**2

    def blur(x):
        return cv.GaussianBlur(x, (11, 11), 1.5)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(s.mean())


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a - b) ** 2).mean())
    return PSNR_CAP if mse <= 10 ** (-PSNR_CAP / 10) else min(PSNR_CAP, 10 * math.log10(1.0 / mse))


def edge_f1(a: np.ndarray, b: np.ndarray, tolerance: int = EDGE_TOLERANCE) -> float:
    """F1 of uint8 RGB (h, w, 3) frame ``a``'s Canny edges against ``b``'s: precision, the share of ``a``'s edge
    pixels within ``tolerance`` px of one of ``b``'s; recall, the converse. 1 when neither has an edge."""
    from .control.annotators import canny
    from .temporal.flow import cv2

    cv = cv2()
    ea, eb = canny(a)[..., 0] > 0, canny(b)[..., 0] > 0
    if not ea.any() and not eb.any():
        return 1.0
    if not ea.any() or not eb.any():
        return 0.0
    disk = cv.getStructuringElement(cv.MORPH_ELLIPSE, (2 * tolerance + 1, 2 * tolerance + 1))
    near_a = cv.dilate(ea.astype(np.uint8), disk) > 0
    near_b = cv.dilate(eb.astype(np.uint8), disk) > 0
    precision, recall = float((ea & near_b).sum() / ea.sum()), float((eb & near_a).sum() / eb.sum())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def warp_error(a: np.ndarray, b: np.ndarray, flow: np.ndarray, mask: np.ndarray) -> float:
    """Warp error of one frame pair: float RGB (h, w, 3) frames in [0, 1], ``b`` warped back onto ``a`` along the
    forward ``flow`` (h, w, 2), the mean squared difference over the pixels of float (h, w) ``mask`` (1: graded)."""
    sq = ((a - warp_image(b, flow)) ** 2).mean(-1)
    return float((sq * mask).sum() / max(mask.sum(), 1.0))


def evaluate(
    video: str | os.PathLike,
    source: str | os.PathLike | None = None,
    max_frames: int | None = None,
    flow: str = "dis",
) -> Metrics:
    """Metrics of ``video`` (and against ``source``), reading two frames at a time; ``flow``: the optical flow
    estimator of warp error and tOF (``FLOW_METHODS``), so a method is not graded only by the flow it used."""
    estimate = FlowEstimator(flow)
    info = probe(video)
    n = info.frames if max_frames is None else min(info.frames, max_frames)
    size = (info.width, info.height)
    reader = FrameReader(info, size)
    src, notes = None, ()
    if source is not None:
        sinfo = probe(source)
        notes = pairing_notes(info, sinfo) + source_note(video, source)
        n = min(n, sinfo.frames)
        src = FrameReader(sinfo, size)
    if n < 2:
        raise UserError(f"{str(video)!r} has {n} frame(s); temporal metrics need at least 2")
    warp, flick, tof, ps, ss, edges, cuts = [], [], [], [], [], [], 0
    prev = reader.read([0])[0]
    prev_s = src.read([0])[0] if src else None
    for i in range(n):
        if src is not None:
            a, b = prev.astype(np.float32) / 255, prev_s.astype(np.float32) / 255
            ps.append(psnr(a, b))
            ss.append(ssim(a, b))
            edges.append(edge_f1(prev, prev_s))
        if i == n - 1:
            break
        cur = reader.read([i + 1])[0]
        cur_s = src.read([i + 1])[0] if src else None
        ga, gb = (prev_s, cur_s) if src is not None else (prev, cur)
        fw, bw = estimate(ga, gb), estimate(gb, ga)
        o_t, o_t1 = prev.astype(np.float32) / 255, cur.astype(np.float32) / 255
        flick.append(float(np.abs(o_t1 - o_t).mean()))
        if float(explained(ga, gb, fw, bw).mean()) < CUT_VALID:
            cuts += 1  # no motion relates the two frames: nothing to grade
            warp.append(math.nan)
        else:
            warp.append(warp_error(o_t, o_t1, fw, consistent_mask(fw, bw)))
            if src is not None:
                fo = estimate(prev, cur)
                tof.append(float(np.sqrt(((fo - fw) ** 2).sum(-1)).mean()))
        prev, prev_s = cur, cur_s
    reader.close()

    def mean(xs):
        xs = [x for x in xs if not math.isnan(x)]
        return float(np.mean(xs)) if xs else None

    if cuts:
        notes += (
            f"{cuts} of {n - 1} frame pairs are across a cut (the {'source' if src else 'video'} changes shot): "
            "left out of warp error and tOF",
        )
    return Metrics(
        n,
        mean(warp),
        mean(flick),
        mean(tof),
        mean(ps),
        mean(ss),
        mean(edges),
        notes,
        tuple(warp),
        tuple(flick),
        tuple(edges),
    )


def plot_png(m: Metrics, path: str | os.PathLike, width: int = 900) -> Path:
    """Draw ``m``'s warp error and flicker per frame pair as two stacked line charts (each with its own scale,
    labelled, pairs across a cut left as gaps) into a PNG at ``path``, atomically. PIL only: no plotting library."""
    from PIL import Image, ImageDraw

    from .files import atomic_write

    panels = [("warp error", m.warp_errors, (200, 60, 40)), ("flicker", m.flickers, (40, 90, 200))]
    ph, left, top, gap = 180, 70, 24, 36
    img = Image.new("RGB", (width, top + len(panels) * (ph + gap)), "white")
    pen = ImageDraw.Draw(img)
    n = max(len(m.flickers), 1)
    x_of = lambda i: left + (width - left - 20) * (i / max(n - 1, 1))  # noqa: E731
    for k, (name, values, colour) in enumerate(panels):
        y0 = top + k * (ph + gap)
        finite = [v for v in values if not math.isnan(v)]
        hi = max(finite) if finite else 1.0
        hi = hi if hi > 0 else 1.0
        y_of = lambda v: y0 + ph - ph * (v / hi)  # noqa: E731, B023
        pen.rectangle((left, y0, width - 20, y0 + ph), outline=(180, 180, 180))
        pen.text(
            (left, y0 - 16), f"{name} per frame pair (mean {np.nanmean(values) if finite else 0:.4g})", fill=colour
        )
        pen.text((4, y0 - 4), f"{hi:.3g}", fill=(90, 90, 90))
        pen.text((4, y0 + ph - 10), "0", fill=(90, 90, 90))
        run: list[tuple[float, float]] = []
        for i, v in enumerate(values):
            if math.isnan(v):  # across a cut: a gap in the line
                if len(run) > 1:
                    pen.line(run, fill=colour, width=2)
                run = []
                continue
            run.append((x_of(i), y_of(v)))
        if len(run) > 1:
            pen.line(run, fill=colour, width=2)
        elif run:
            pen.ellipse((run[0][0] - 2, run[0][1] - 2, run[0][0] + 2, run[0][1] + 2), fill=colour)
        pen.text((left, y0 + ph + 4), "0", fill=(90, 90, 90))
        pen.text((width - 60, y0 + ph + 4), f"pair {n - 1}", fill=(90, 90, 90))
    out = Path(path)
    return atomic_write(out, lambda tmp: img.save(tmp, format="PNG"))


def write_metrics(video: str | os.PathLike, source: str | os.PathLike | None = None) -> Path:
    """Evaluate ``video`` and write ``VIDEO_STEM.metrics.json`` beside it; returns that path."""
    path = Path(video)
    out = path.with_name(path.stem + ".metrics.json")
    out.write_text(json.dumps(evaluate(video, source).to_dict(), indent=2))
    return out
