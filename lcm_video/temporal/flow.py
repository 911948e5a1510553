"""Optical flow between source frames, its occlusion mask, and both brought to the latent grid: what motion-compensated
blending (``--warp flow``) and the metrics share.

Flow comes from OpenCV (DIS or Farneback: classical estimators, no weights to download). Conventions: ``flow(a, b)``
is (h, w, 2) float32 pixels with ``b(x + f(x)) ≈ a(x)``, so sampling ``b`` at ``x + f(x)`` (``warp_image``) brings it
onto ``a``.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

from ..choices import FLOW as FLOW_METHODS
from ..errors import UserError

CUT_VALID = 0.4
"""A frame whose share of pixels the previous frame explains (``latent_motion``'s checks) is below this is taken for
a hard cut: the temporal state is not carried across it."""
COLOUR_TOLERANCE = 24.0
"""Largest mean absolute RGB difference (8-bit levels) between a pixel and the previous frame's pixel the flow brings
onto it for the pair to count as the same surface: smooth textures give flows that agree forwards and backwards
across a cut, the colours do not."""


def cv2():
    try:
        import cv2 as _cv2
    except ImportError:  # pragma: no cover - opencv-python-headless is a dependency
        raise UserError("optical flow needs OpenCV: pip install opencv-python-headless") from None
    return _cv2


FLOW_SIDE = 256
"""DIS runs its finest level at the largest power-of-two reduction of the frame whose shorter side is at most this:
full resolution up to 256 px (OpenCV's medium preset stops at half resolution, which on a 128-px frame left 0.26 px
of end-point error on a 2.2-px pan, 0.01 px at full resolution: ``python -m benchmarks.temporal flows``), and a
bounded cost on large frames (about 20 ms a flow at 512² and 720p on one core)."""


def dis_finest_scale(height: int, width: int) -> int:
    """DIS's finest pyramid level for a (height, width) frame: ``FLOW_SIDE``'s rule."""
    return max(0, math.ceil(math.log2(max(1, min(height, width)) / FLOW_SIDE)))


class FlowEstimator:
    """``estimator(a, b)``: flow a → b of two RGB uint8 (h, w, 3) frames, by ``method`` (``dis``: OpenCV's DIS, its
    medium preset with the finest level by ``FLOW_SIDE`` and 20 variational refinement iterations instead of 5;
    ``farneback``: Farneback's polynomial expansion, a different estimator to cross-check DIS)."""

    def __init__(self, method: str = "dis"):
        if method not in FLOW_METHODS:
            raise UserError(f"flow method {method!r} is not one of {', '.join(FLOW_METHODS)}")
        self.method = method
        cv2()
        self._local = threading.local()  # a DIS object keeps state between calls: one per thread

    def _dis(self):
        dis = getattr(self._local, "dis", None)
        if dis is None:
            cv = cv2()
            dis = self._local.dis = cv.DISOpticalFlow_create(cv.DISOPTICAL_FLOW_PRESET_MEDIUM)
            dis.setVariationalRefinementIterations(20)
        return dis

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        cv = cv2()
        ga = a if a.ndim == 2 else cv.cvtColor(a, cv.COLOR_RGB2GRAY)
        gb = b if b.ndim == 2 else cv.cvtColor(b, cv.COLOR_RGB2GRAY)
        if self.method == "dis":
            dis = self._dis()
            dis.setFinestScale(dis_finest_scale(*ga.shape[:2]))
            return dis.calc(ga, gb, None)
        return cv.calcOpticalFlowFarneback(ga, gb, None, 0.5, 4, 15, 3, 5, 1.2, 0)


def warp_image(img: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Sample ``img`` (h, w[, c]) at x + flow(x) (bilinear, edges replicated)."""
    cv = cv2()
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv.remap(img, gx + flow[..., 0], gy + flow[..., 1], cv.INTER_LINEAR, borderMode=cv.BORDER_REPLICATE)


def consistent_mask(fw: np.ndarray, bw: np.ndarray) -> np.ndarray:
    """(h, w) float32: 1 where flow ``fw`` (a → b) and ``bw`` (b → a) agree (Sundaram et al. 2010) and x + fw(x)
    lies inside the frame, 0 where the pixel of ``a`` is occluded in ``b``."""
    h, w = fw.shape[:2]
    bw_at = warp_image(bw, fw)
    err = ((fw + bw_at) ** 2).sum(-1)
    ok = err <= 0.01 * ((fw**2).sum(-1) + (bw_at**2).sum(-1)) + 0.5
    gx, gy = np.meshgrid(np.arange(w), np.arange(h))
    tx, ty = gx + fw[..., 0], gy + fw[..., 1]
    ok &= (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
    return ok.astype(np.float32)


def explained(a: np.ndarray, b: np.ndarray, ab: np.ndarray, ba: np.ndarray) -> np.ndarray:
    """(h, w) float32: 1 where the pixel of RGB uint8 frame ``a`` is seen in ``b``: flows ``ab`` (a → b) and ``ba``
    agree and the colour ``ab`` brings from ``b`` matches (``COLOUR_TOLERANCE``). Its mean under ``CUT_VALID`` is a
    hard cut."""
    moved = warp_image(b, ab).astype(np.float32)
    same = np.abs(moved - a.astype(np.float32)).mean(-1) <= COLOUR_TOLERANCE
    return consistent_mask(ab, ba) * same


@dataclass(frozen=True)
class LatentMotion:
    """Where each latent cell of a frame was in the previous frame: ``flow`` (2, h, w) float32 in latent cells (x, y),
    ``valid`` (1, h, w) float32 in [0, 1], the share of the cell's pixels that passed the consistency checks (the rest
    are occluded or disoccluded), and ``cut``: the previous frame explains under ``CUT_VALID`` of this one.

    The same at pixel resolution, for fusing decoded frames (``fuse_frame``): ``pixel_flow`` (H, W, 2) float32 pixels,
    where each pixel was in the previous frame, and ``pixel_valid`` (H, W) bool, the pixels that passed the checks."""

    flow: object  # torch.Tensor
    valid: object  # torch.Tensor
    cut: bool
    pixel_flow: np.ndarray | None = None
    pixel_valid: np.ndarray | None = None


def latent_motion(prev: np.ndarray, cur: np.ndarray, factor: int, estimator: FlowEstimator) -> LatentMotion:
    """The motion from RGB uint8 (h, w, 3) source frame ``prev`` to ``cur`` on a latent grid ``factor`` times
    coarser: flow averaged over each cell and divided by ``factor``; a pixel is valid where the flows agree forwards
    and backwards and the colour it is brought from matches (``COLOUR_TOLERANCE``), a cell by its share of valid
    pixels. The pixel-level flow and validity are kept too (``LatentMotion.pixel_flow``)."""
    import torch

    bw = estimator(cur, prev)  # cur(x) ≈ prev(x + bw(x)): where each pixel of cur was
    valid = explained(cur, prev, bw, estimator(prev, cur))
    h, w = cur.shape[0] // factor, cur.shape[1] // factor
    cells = bw[: h * factor, : w * factor].reshape(h, factor, w, factor, 2).mean((1, 3)) / factor
    share = valid[: h * factor, : w * factor].reshape(h, factor, w, factor).mean((1, 3), dtype=np.float32)
    flow = torch.from_numpy(np.ascontiguousarray(cells.transpose(2, 0, 1)))
    cut = float(valid.mean()) < CUT_VALID
    return LatentMotion(flow, torch.from_numpy(np.ascontiguousarray(share))[None], cut, bw, valid > 0)


def fuse_frame(cur: np.ndarray, prev: np.ndarray, beta: float, motion: LatentMotion | None = None) -> np.ndarray:
    """Output frame ``cur`` (uint8 (H, W, 3)) pulled toward the previous fused frame ``prev`` (float32 (H, W, 3) in
    0..255) with weight ``beta``: ``prev`` moved along ``motion``'s pixel flow, only where its pixels are valid
    (elsewhere ``cur`` is kept), and not at all across a cut; in place without ``motion``. Returns float32 (H, W, 3)
    in 0..255, not rounded: carrying rounded frames would keep a 1-level difference alive forever (a half-level tie
    rounds the same way every frame), so a batch segment's warm-up could not converge to the continuous render.

    Zero flow is exactly in place (no interpolation), so identical frames stay identical."""
    now = cur.astype(np.float32)
    if motion is None:
        return now + np.float32(beta) * (prev - now)
    if motion.cut:
        return now
    flow = motion.pixel_flow
    target = prev if not flow.any() else warp_image(prev, flow)
    return now + (np.float32(beta) * motion.pixel_valid)[..., None] * (target - now)


def warp_latent(x, flow):
    """Sample latents ``x`` (c, h, w) at cell + flow(cell), ``flow`` (2, h, w) in cells: bilinear, edges replicated
    (as ``warp_image``). Returns (c, h, w) in ``x``'s dtype."""
    import torch
    import torch.nn.functional as F

    if not flow.any():  # a still shot: exactly in place (interpolating at the grid points would round)
        return x
    c, h, w = x.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    gx = (xs + flow[0].float()) / max(1, w - 1) * 2 - 1
    gy = (ys + flow[1].float()) / max(1, h - 1) * 2 - 1
    grid = torch.stack([gx, gy], -1)[None].to(x.device)
    out = F.grid_sample(x[None].float(), grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out[0].to(x.dtype)
