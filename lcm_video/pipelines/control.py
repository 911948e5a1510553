"""``--control``: a render's ControlNets (loaded once per model set) and their maps, window by window: annotated from
the source's frames as the window reads them, or read from ``--control-video`` aligned by time with the output."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..control.annotators import annotator
from ..core.control import ControlGuide
from ..errors import UserError
from ..models.container import Models
from ..models.presets import control_source
from ..notices import library_notices_off
from ..settings.configs import RenderConfig
from ..video.reader import FrameReader, VideoInfo
from .window import vae_factor


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

    def __init__(self, models: Models, cfg: RenderConfig, size: tuple[int, int], video: VideoInfo | None = None):
        c = cfg.control
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

    def index(self, seconds: float) -> int:
        """The control video's frame shown at ``seconds``."""
        assert self.video is not None
        return min(self.video.frames - 1, math.floor(seconds * self.video.fps + 1e-6))

    def maps(self, frames: np.ndarray | None, at: list[float]) -> list[torch.Tensor]:
        out = []
        for annotate in self.annotators:
            if annotate is None:
                pics = self.reader.read([self.index(s) for s in at])
            else:
                if frames is None:
                    raise UserError("--control needs a source to annotate; give the maps with --control-video")
                pics = np.stack([annotate(f) for f in frames])
            out.append(torch.from_numpy(pics).permute(0, 3, 1, 2).float() / 255)
        return out

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
