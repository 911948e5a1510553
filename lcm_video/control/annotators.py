"""Annotators: a video frame → the control map a ControlNet of that type was trained on.

Every annotator takes uint8 (h, w, 3) RGB frames and returns uint8 (h, w, 3) maps of the same size (what diffusers'
ControlNet pipelines take as ``image``/``control_image``, scaled to [0, 1] by their image processor). The ones without
a model (``canny``, ``tile``) are plain functions; the others load their model on first use.
"""

from __future__ import annotations

import numpy as np

CANNY_LOW = 100
CANNY_HIGH = 200
"""OpenCV Canny's hysteresis thresholds, as in diffusers' ControlNet documentation and controlnet_aux's
``CannyDetector`` (what the lllyasviel canny ControlNet was shown at inference)."""


def canny(frame: np.ndarray, low: int = CANNY_LOW, high: int = CANNY_HIGH) -> np.ndarray:
    """uint8 (h, w, 3) RGB → uint8 (h, w, 3) edges, 255 on an edge and 0 elsewhere, the same in every channel.

    OpenCV's Canny on the colour image (the largest gradient over the channels), as diffusers documents it: an edge
    between two colours of equal brightness is still found."""
    import cv2

    edges = cv2.Canny(np.ascontiguousarray(frame), low, high)
    return np.repeat(edges[..., None], 3, axis=2)
