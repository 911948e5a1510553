"""``--quantize int8``: the calibration pass. The render's first window (stylise: of the source, generate: of the
clip; live: toy-world frames, a live source's frames being the render's own) runs once on the float OpenVINO UNet,
its outputs dropped, while the UNet records its inputs; NNCF quantises on them (``models/openvino.py``), cached
under their digest. The pass runs in every render: the recorded inputs are the calibration's identity, so the int8
model a render uses depends on its settings alone, never on what the cache held before."""

from __future__ import annotations

import weakref
from collections.abc import Callable

import numpy as np

from ..errors import UserError
from ..models.container import Models
from ..settings.configs import RenderConfig

LIVE_FRAMES = 8  # toy-world frames a live run calibrates on, one UNet call per frame and step
_done: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # UNet runner → the calibration key it ran for


def quantize_unet(models: Models, cfg: RenderConfig, calibrate: Callable[[], None], key: object = None) -> None:
    """Set the UNet to what ``--quantize`` asks: ``none`` the float UNet; ``int8`` quantised on the UNet calls
    ``calibrate()`` makes (a pass whose outputs are dropped). ``key``: what the pass depends on, where a caller
    quantises for many renders of one thing (a batch job's segments): the same key skips the pass."""
    unet = models.unet
    if cfg.model.quantize == "none":
        if models.backend == "openvino":
            unet.use_float()
            _done.pop(unet, None)
        return
    if models.backend != "openvino":
        raise UserError(f"--quantize {cfg.model.quantize} quantises the OpenVINO UNet; load the models with "
                        "--backend openvino")  # fmt: skip
    from ..models.openvino import require_nncf

    require_nncf()
    if key is not None and _done.get(unet) == key:
        return
    with unet.recording() as calls:
        calibrate()
    unet.quantize(calls)
    _done[unet] = key


def toy_frames(size: tuple[int, int], n: int = LIVE_FRAMES) -> np.ndarray:
    """uint8 (n, h, w, 3): a seeded toy-world clip (``toy/video.py``) drawn to cover ``size`` (w, h), centre-cropped:
    what a calibration pass renders where the source's frames are the render's own (a live stream)."""
    from ..toy.video import random_clip

    w, h = size
    clip, _ = random_clip(np.random.default_rng(0), size=max(w, h), frames=n)
    top, left = (clip.shape[1] - h) // 2, (clip.shape[2] - w) // 2
    return np.ascontiguousarray(clip[:, top : top + h, left : left + w])
