"""``--control``: a render's ControlNets (loaded once per model set) and their maps, window by window: annotated from
the source's frames as the window reads them, or read from ``--control-video`` aligned by time with the output."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..control.annotators import annotator
from ..core.control import ControlGuide
from ..errors import UserError
from ..files import atomic_write
from ..models.container import Models
from ..models.presets import control_source
from ..notices import library_notices_off
from ..settings.configs import RenderConfig
from ..video.reader import FrameReader, VideoInfo
from .window import vae_factor

CACHED = ("depth", "softedge", "lineart", "openpose")


def controlnets_for(models: Models, cfg: RenderConfig) -> list:
    """The ControlNets ``cfg.control`` asks for, in ``--control`` order, loaded onto the models' device and dtype (or
    taken from ``models.controlnets``, where every net loaded for these models is kept)."""
    from ..models.loading import load_controlnet

    if models.backend != "torch":
        raise UserError("--control runs on the torch backend; drop --backend openvino (or --control)")
    overrides = dict(cfg.control.control_model)
    nets = []
    for kind, _ in cfg.control.control:
        source = control_source(models.name, kind, overrides)
        if source not in models.controlnets:
            with library_notices_off():
                net = load_controlnet(source, models.dtype, models.pipe.unet, vae_factor(models))
                models.controlnets[source] = net.to(models.device, models.dtype)
        nets.append(models.controlnets[source])
    return nets


class ControlMaps:
    """A render's ControlNets (``guide``) and the maps of each window.

    ``maps(frames, at)``: per net, float (f, 3, H, W) in [0, 1] at the output size; ``frames`` uint8 (f, H, W, 3) are
    the window's source frames (stylise; annotated here) or None (generate); ``at`` are the frames' times in seconds
    on the output's clock (where ``--control-video`` is read)."""

    def __init__(
        self,
        models: Models,
        cfg: RenderConfig,
        size: tuple[int, int],
        video: VideoInfo | None = None,
        cache: Path | None = None,
    ):
        c = cfg.control
        if models.family == "sdxl":
            raise UserError(
                "--control runs SD1.5/SD2.1-shaped ControlNets only so far (an SDXL ControlNet also takes the pooled "
                "text and time ids); drop --control or use an SD1.5 model"
            )
        self.guide = ControlGuide(
            controlnets_for(models, cfg), [s for _, s in c.control], c.control_start, c.control_end
        )
        self.size = size
        self.video = video
        self.reader = FrameReader(video, size) if video is not None else None
        kinds = [k for k, _ in c.control]
        device = "cuda" if models.device.type == "cuda" else "cpu"
        # --control-video stands in for the annotator of the one --control it is given with (validate checks one).
        self.annotators = [
            None if video is not None else annotator(k, c.canny_low, c.canny_high, device) for k in kinds
        ]
        self.kinds = kinds
        self.cache = cache  # a batch job's work folder: maps of the annotators with a model, kept across a resume
        self.annotated = 0  # frames an annotator ran on

    def index(self, seconds: float) -> int:
        """The control video's frame shown at ``seconds``."""
        assert self.video is not None
        return min(self.video.frames - 1, math.floor(seconds * self.video.fps + 1e-6))

    def maps(self, frames: np.ndarray | None, at: list[float]) -> list[torch.Tensor]:
        out = []
        for kind, annotate in zip(self.kinds, self.annotators, strict=True):
            if annotate is None:
                pics = self.reader.read([self.index(s) for s in at])
            else:
                if frames is None:
                    raise UserError("--control needs a source to annotate; give the maps with --control-video")
                times = at or [None] * len(frames)  # no times (a caller's own frames): nothing to key a cache on
                pics = np.stack([self._annotate(kind, annotate, f, s) for f, s in zip(frames, times, strict=True)])
            out.append(torch.from_numpy(pics).permute(0, 3, 1, 2).float() / 255)
        return out

    def _annotate(self, kind: str, annotate, frame: np.ndarray, seconds: float | None) -> np.ndarray:
        """``annotate(frame)``, or its map from the cache (keyed by the frame's time, to the microsecond) where the
        annotator has a model (OpenCV's canny costs less than reading a file; tile is the frame)."""
        path = None
        if self.cache is not None and kind in CACHED and seconds is not None:
            path = self.cache / kind / f"{round(seconds * 1e6):013d}.png"
            if path.is_file():
                return np.asarray(Image.open(path).convert("RGB"))
        self.annotated += 1
        got = annotate(frame)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda tmp: Image.fromarray(got).save(tmp, format="PNG"))
        return got

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
