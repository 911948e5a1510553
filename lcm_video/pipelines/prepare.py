"""What a render settles before anything heavy is imported or loaded: the output path, the source video and the
frames to render. No torch here, so the command line runs it first and a bad file, path or range is reported at once
(not after seconds of importing torch and loading models)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..config import GenerateConfig, StylizeConfig
from ..video.plan import FramePlan
from ..video.reader import VideoInfo, output_size, probe
from ..video.writer import check_output


def plan_video(info: VideoInfo, cfg: StylizeConfig) -> FramePlan:
    """The output frames of a stylise render of ``info`` under ``cfg`` (range, target fps, frame cap)."""
    f = cfg.frames
    return FramePlan.for_video(
        info.frames, info.fps, start=f.start, end=f.end, target_fps=f.fps, max_frames=f.max_frames
    )


@dataclass(frozen=True)
class Prepared:
    """A checked render: where it writes, its source (stylise; None to generate), its frames and (width, height)."""

    output: Path
    info: VideoInfo | None
    plan: FramePlan
    size: tuple[int, int]


def prepare_stylize(input: str | os.PathLike, output: str | os.PathLike, cfg: StylizeConfig) -> Prepared:
    """Check the output path and the source, and plan the frames; a UserError for anything wrong."""
    out = check_output(output, (input,), cfg.output.codec)
    info = probe(input)
    return Prepared(out, info, plan_video(info, cfg), output_size(info, cfg.frames.width, cfg.frames.height))


def prepare_generate(output: str | os.PathLike, cfg: GenerateConfig) -> Prepared:
    """Check the output path and plan the clip's frames (``cfg`` resolved: its size is known)."""
    out = check_output(output, (), cfg.output.codec)
    f = cfg.frames
    return Prepared(out, None, FramePlan.for_clip(f.frames, f.fps), (f.width, f.height))
