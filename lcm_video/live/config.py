"""A live run's settings, settled before anything heavy loads (no torch): stylise's settings less those a stream
cannot use (``settings.flags.LIVE_SKIPS``), from a YAML file, a live recording or a config object under keywords
or flags; the sinks checked; what the stream batch refuses; and the checks of a change typed while it runs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..options import LIVE, STYLIZE
from ..settings.configs import StylizeConfig
from ..settings.flags import LIVE_SKIPS
from ..settings.parts import SETTINGS
from ..settings.resolve import check_strength, resolve
from ..video.ffmpeg import CONTAINERS
from ..video.writer import check_output
from .sinks import STREAM_FORMATS


def live_config(config: StylizeConfig | str | os.PathLike | None, options: dict[str, Any], source: str):
    """The validated settings of a live run: ``config`` (a ``StylizeConfig``, a YAML file, or a recording a live run
    made) under ``options``; a stylise setting that does not apply live is refused with the reason."""
    if isinstance(config, (str, os.PathLike)) and Path(config).suffix.lower() in CONTAINERS:
        from ..record import recorded_settings

        options = {**recorded_settings(config, LIVE), **options}
        config = None
    for key in options:
        name = str(key).replace("-", "_")
        if name in LIVE_SKIPS:
            raise UserError(f"{SETTINGS[name].label} does not apply to live ({source}): {LIVE_SKIPS[name]}")
    cfg = resolve(STYLIZE, config, options, source)
    default = StylizeConfig().flat()
    for name, value in cfg.flat().items():
        if name in LIVE_SKIPS and value != default[name]:
            raise UserError(f"{SETTINGS[name].label} does not apply to live: {LIVE_SKIPS[name]}")
    return cfg


def live_settings(cfg: StylizeConfig) -> dict[str, Any]:
    """The settings a live run uses (its record's), as ``{name: value}``."""
    return {k: v for k, v in cfg.flat().items() if k not in LIVE_SKIPS}


def check_sinks(specs: list[str], cfg: StylizeConfig) -> None:
    """Refuse sinks that cannot work before anything loads: a recording path ffmpeg cannot write, a stream URL of
    an unknown protocol, the virtual camera without its extra, the same recording twice."""
    if not specs:
        raise UserError("no sink: give at least one -o (a recording, a stream URL, or vcam)")
    o = cfg.output
    seen = set()
    for spec in specs:
        if spec == "vcam" or spec.startswith("vcam:"):
            try:
                import pyvirtualcam  # noqa: F401
            except ImportError:
                raise UserError('the vcam sink needs the live extra: pip install "lcm-video[live]"') from None
        elif "://" in spec:
            if spec.split("://")[0].lower() not in STREAM_FORMATS:
                raise UserError(f"cannot stream to {spec!r}: write udp://, srt://, tcp:// (MPEG-TS) or rtmp:// (FLV)")
        else:
            out = check_output(spec, (), o.codec, o.preset)
            if out.suffix.lower() in (".gif", ".png") or str(out).endswith("%05d.png"):
                raise UserError(f"live records to a video file (.mp4, .mkv, .mov, .webm), not {spec!r}")
            if out.resolve() in seen:
                raise UserError(f"-o {spec} is given twice; give each sink once")
            seen.add(out.resolve())


def check_change(sampling):
    """``(key, text) → value`` for a change typed while the run goes: a prompt, or a strength or seed checked by
    its declaration (and the strength against the loaded models' ``sampling``: method and steps)."""

    def check(key: str, text: str) -> Any:
        if key == "prompt":
            if not text:
                raise UserError("an empty prompt")
            return text
        opt = SETTINGS[key]
        value = opt.coerce(text)
        opt.check(value)
        if key == "strength":
            check_strength(sampling, value)
        return value

    return check


def check_stream_batch(cfg) -> None:
    """Refuse what a stream batch cannot mix: per-call attention state, ControlNets at one step per call, and the
    similarity filter (its repeats would overtake the frames in flight); residual CFG's ``initialize`` (one negative
    pass for one frame of the batch)."""
    if cfg.temporal.cross_frame != "off":
        raise UserError("--stream-batch mixes steps in one UNet call; --cross-frame needs one step a call (drop one)")
    if cfg.control.control:
        raise UserError("--stream-batch mixes steps in one UNet call; --control acts by step (drop one)")
    if cfg.temporal.skip_similar > 0:
        raise UserError("--skip-similar is not built for --stream-batch yet (drop one)")
    if cfg.sampling.cfg_type == "initialize":
        raise UserError(
            "--cfg-type initialize runs a negative pass for the newest frame alone; with --stream-batch use "
            "--cfg-type self (StreamDiffusion's default) or full"
        )
