"""Annotators: a video frame → the control map a ControlNet of that type was trained on.

Every annotator takes uint8 (h, w, 3) RGB frames and returns uint8 (h, w, 3) maps of the same size (what diffusers'
ControlNet pipelines take as ``image``/``control_image``, scaled to [0, 1] by their image processor). The ones without
a model (``canny``, ``tile``) are plain functions; the others load their model on first use.
"""

from __future__ import annotations

import numpy as np

from ..errors import UserError

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


def tile(frame: np.ndarray) -> np.ndarray:
    """The tile ControlNet's map is the frame itself (its job: keep the picture, let the prompt restyle detail)."""
    return frame


DEPTH_MODEL = "depth-anything/Depth-Anything-V2-Small-hf"
AUX_MODELS = "lllyasviel/Annotators"  # controlnet_aux's detectors' weights
EXTRA = 'pip install -e ".[control]"'


def _missing(kind: str, package: str) -> UserError:
    return UserError(f"--control {kind} needs {package}, which is not installed: {EXTRA}")


def _loading(kind: str, source: str, exc: Exception) -> UserError:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
    return UserError(
        f"--control {kind}: cannot load its annotator {source!r} ({first}); download it once with "
        f"`hf download {source}` (cache: $HF_HOME), or give the maps with --control-video"
    )


class Depth:
    """Depth-Anything-V2-Small through transformers' ``depth-estimation`` pipeline (``source``: hub id or folder):
    relative inverse depth, near bright, as the SD1.5 depth ControlNet was trained on (MiDaS-style)."""

    def __init__(self, source: str = DEPTH_MODEL, device: str = "cpu"):
        from transformers import pipeline

        from ..notices import library_notices_off

        try:
            with library_notices_off():
                self.pipe = pipeline("depth-estimation", model=source, device=device)
        except (OSError, ValueError) as exc:
            raise _loading("depth", source, exc) from None

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        from PIL import Image

        # The pipeline's "depth": the prediction resized to the frame and scaled to 0-255, what diffusers' depth
        # ControlNet documentation feeds the net.
        depth = np.asarray(self.pipe(Image.fromarray(frame))["depth"].convert("L"))
        return np.repeat(depth[..., None], 3, axis=2)


class Aux:
    """A controlnet_aux detector (``softedge``: PiDiNet, ``lineart``, ``openpose``) loaded once from ``source``,
    returning a map of the frame's size."""

    DETECTORS = {"softedge": "PidiNetDetector", "lineart": "LineartDetector", "openpose": "OpenposeDetector"}

    def __init__(self, kind: str, source: str = AUX_MODELS):
        try:
            import controlnet_aux
        except ImportError:
            raise _missing(kind, "controlnet_aux") from None
        self.kind = kind
        try:
            self.detector = getattr(controlnet_aux, self.DETECTORS[kind]).from_pretrained(source)
        except (OSError, ValueError) as exc:
            raise _loading(kind, source, exc) from None

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        from PIL import Image

        h, w = frame.shape[:2]
        out = self.detector(Image.fromarray(frame), detect_resolution=min(h, w), image_resolution=min(h, w))
        return np.asarray(out.convert("RGB").resize((w, h), Image.BICUBIC))


def annotator(kind: str, low: int = CANNY_LOW, high: int = CANNY_HIGH, device: str = "cpu"):
    """The annotator of ``--control KIND``: uint8 (h, w, 3) → uint8 (h, w, 3). Models load here, once."""
    if kind == "canny":
        return lambda frame: canny(frame, low, high)
    if kind == "tile":
        return tile
    if kind == "depth":
        return Depth(device=device)
    if kind in Aux.DETECTORS:
        return Aux(kind)
    raise UserError(f"--control {kind!r} has no annotator")
