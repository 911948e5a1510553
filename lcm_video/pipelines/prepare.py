"""What a render settles before anything heavy is imported or loaded: the output path, the source video and the
frames to render. No torch here, so the command line runs it first and a bad file, path or range is reported at once
(not after seconds of importing torch and loading models)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

from ..errors import UserError
from ..keyframes import Keyframes
from ..models.presets import native_side
from ..settings.configs import GenerateConfig, StylizeConfig
from ..settings.keyframes import keyframe_map
from ..video.plan import FramePlan
from ..video.reader import VideoInfo, output_size, probe
from ..video.writer import check_output


def plan_video(info: VideoInfo, cfg: StylizeConfig) -> FramePlan:
    """The output frames of a stylise render of ``info`` under ``cfg`` (range, target fps, frame cap)."""
    f = cfg.frames
    return FramePlan.for_video(
        info.frames,
        info.fps,
        start=f.start,
        end=f.end,
        target_fps=f.fps,
        max_frames=f.max_frames,
        stamps=None if info.images else info.stamps,
    )


@dataclass(frozen=True)
class Prepared:
    """A checked render, settled once before anything loads: its validated config, where it writes, its source
    (stylise; None to generate), its frames and (width, height), and its keyframes parsed against the frame count
    (``prompts``: the prompt, or ``{frame: text}``; ``strengths``: ``{frame: strength}`` keys, or None). The command
    line and the web UI hand it to ``stylize`` / ``generate``; a batch job keeps it for all its segments."""

    cfg: StylizeConfig | GenerateConfig
    output: Path
    info: VideoInfo | None
    plan: FramePlan
    size: tuple[int, int]
    prompts: str | dict[int, str]
    strengths: Keyframes | None = None
    notes: tuple[str, ...] = ()  # what was assumed, for the user (the CLI prints them; the library warns)
    control: VideoInfo | None = None  # ``--control-video``, probed and checked to last as long as the output


def prepare_stylize(
    input: str | os.PathLike, output: str | os.PathLike, cfg: StylizeConfig, model: str | None = None
) -> Prepared:
    """Check the output path and the source, and plan the frames; a UserError for anything wrong. ``model``: the
    name of the models that will render (default the config's), for the note on a size far from its own."""
    out = check_output(output, (input,), cfg.output.codec, cfg.output.preset)
    info, notes = probe_source(input, cfg)
    size = output_size(info, cfg.frames.width, cfg.frames.height)
    check_upscale(info, size)
    notes += size_note(model or cfg.model.model, size)
    plan = plan_video(info, cfg)
    p, s = cfg.prompt, cfg.sampling
    prompts = keyframe_map("--prompt-at", p.prompt_at, len(plan), p.prompt) if p.prompt_at else p.prompt
    strengths = None
    if s.strength_at:
        strengths = Keyframes(keyframe_map("--strength-at", s.strength_at, len(plan), s.strength))
    needs = Fraction(max(plan.sources) + 1) / info.fps  # the source's time the output reaches
    control, said = probe_control(cfg, size, needs, "the source range")
    return Prepared(cfg, out, info, plan, size, prompts, strengths, notes + said, control)


def probe_control(
    cfg: StylizeConfig | GenerateConfig, size: tuple[int, int], seconds: Fraction, what: str
) -> tuple[VideoInfo | None, tuple[str, ...]]:
    """``--control-video`` probed: it must last ``seconds`` (what the output reads of it); a note when its frames
    are scaled to the output's size."""
    path = cfg.control.control_video
    if not path:
        return None, ()
    info = probe(path)
    have = Fraction(info.frames) / info.fps
    if have + Fraction(1, 1000) < seconds:
        raise UserError(
            f"--control-video {str(path)!r} lasts {float(have):.2f} s ({info.frames} frames at {info.fps} fps); "
            f"{what} needs {float(seconds):.2f} s: give a longer one, or shorten the render"
        )
    if (info.width, info.height) != tuple(size):
        return info, (f"--control-video is {info.width}x{info.height}: its frames are scaled to {size[0]}x{size[1]}",)
    return info, ()


def probe_source(input: str | os.PathLike, cfg: StylizeConfig) -> tuple[VideoInfo, tuple[str, ...]]:
    """The source as ``cfg`` reads it, and what was assumed. An image sequence has no rate of its own: ``--fps``
    gives it (and so the output's), else 24 is assumed and said."""
    info = probe(input)
    if not info.images:
        return info, ()
    if cfg.frames.fps is not None:
        return replace(info, fps=cfg.frames.fps, fps_assumed=False), ()
    return info, (f"{info.frames} images read as a video at {info.fps} fps; give --fps to set their rate",)


NATIVE_AREA = (0.5, 2.0)
"""A render's area within these multiples of the model's trained area gets no note (``size_note``)."""


def size_note(model: str | None, size: tuple[int, int]) -> tuple[str, ...]:
    """A note when a ``(width, height)`` render is under half or over twice the area ``model`` was trained at: the
    toy, trained at 128 px, restyles a 64x64 red square into a yellow blob at strength 0.6 and into a blue square at
    128x128 (issue 31); SD1.5 models repeat objects far above theirs. Nothing when the size is unknown."""
    side = native_side(model)
    if side is None:
        return ()
    w, h = size
    ratio = w * h / side**2
    if NATIVE_AREA[0] <= ratio <= NATIVE_AREA[1]:
        return ()
    fit = max(8, round(side * (w / h) ** 0.5 / 8) * 8)  # the width of the trained area at this aspect
    how = "under half" if ratio < NATIVE_AREA[0] else "over twice"
    effect = "expect lost or garbled shapes" if ratio < 1 else "expect repeated or broken-up subjects"
    return (
        f"{w}x{h} is {how} the area {model!r} was trained at ({side}x{side}): {effect}; set --width {fit} (the "
        "height follows the aspect) to render near its size",
    )


MAX_UPSCALE = 4.0


def check_upscale(info: VideoInfo, size: tuple[int, int]) -> None:
    """Refuse a size over ``MAX_UPSCALE``× the source's on a side: a diffusion pass adds no real detail that far up
    and the render's cost grows with the square (a 25× request ran ten minutes on a 160x120 clip)."""
    factor = max(size[0] / info.width, size[1] / info.height)
    if factor > MAX_UPSCALE:
        raise UserError(
            f"{size[0]}x{size[1]} is {factor:.1f}x the {info.width}x{info.height} source; stylise at most "
            f"{MAX_UPSCALE:g}x ({int(info.width * MAX_UPSCALE)}x{int(info.height * MAX_UPSCALE)} here) and upscale "
            "the result with an upscaler"
        )


def prepare_generate(output: str | os.PathLike, cfg: GenerateConfig) -> Prepared:
    """Check the output path and plan the clip's frames (``cfg`` resolved: its size is known)."""
    out = check_output(output, (), cfg.output.codec, cfg.output.preset)
    f, p = cfg.frames, cfg.prompt
    prompts = keyframe_map("--prompt-at", p.prompt_at, f.frames, p.prompt)
    size = (f.width, f.height)
    control, notes = probe_control(cfg, size, Fraction(f.frames) / f.fps, f"{f.frames} frames at {f.fps} fps")
    return Prepared(cfg, out, None, FramePlan.for_clip(f.frames, f.fps), size, prompts, notes=notes, control=control)
