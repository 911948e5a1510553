"""The command flags that are not render settings: input and output paths, ``--config``, and the batch, eval, info,
rerun, ui and live commands' own options; and ``options_for(command)``, every option a command takes, in ``--help``
order (live takes stylise's settings, less ``LIVE_SKIPS``)."""

from __future__ import annotations

import dataclasses

from ..choices import ENGINES, FLOW
from ..options import BATCH, DISTILL, EVAL, INFO, LIVE, RENDER, RERUN, STYLIZE, UI, Option
from .distill import DISTILL_SETTINGS
from .parts import SETTINGS

COMMAND_FLAGS: tuple[Option, ...] = (
    Option(
        "input",
        "path",
        "source video file, or a folder of frames (PNG/JPEG..., natural order)",
        commands=(STYLIZE,),
        positional=True,
    ),
    Option(
        "output",
        "path",
        "output video (.mp4, .mkv, .mov, .webm, .gif), or PNG frames (frames/%05d.png, or a folder); missing "
        "folders are created",
        commands=(*RENDER, RERUN),
        short="-o",
        required=True,
        metavar="FILE",
    ),
    Option(
        "config",
        "path",
        "YAML file of options (keys as the flags, with _ for -); flags given here win",
        commands=(*RENDER, LIVE),
        metavar="FILE.yaml",
        doc="any options below as `key: value` (`configs/*.yaml` document them); flags on the command line win; an "
        "unknown key is an error",
    ),
    Option(
        "jobs",
        "path",
        "YAML job file: defaults: {...} and jobs: [{name, mode, input, output, ...}]",
        commands=(BATCH,),
        positional=True,
    ),
    Option(
        "out",
        "path",
        "folder for outputs, work files and report.json",
        commands=(BATCH,),
        required=True,
        metavar="DIR",
    ),
    Option(
        "segment_frames",
        "int",
        "frames per unit of work (also a job-file default or job key)",
        default=240,
        commands=(BATCH,),
        lo=1,
        metavar="N",
    ),
    Option(
        "engine",
        "str",
        "how segments are spread: local (this process), torchrun (the processes of a torchrun/accelerate launch), "
        "ray (actors on a Ray cluster; --out on a filesystem every node sees)",
        default=None,
        commands=(BATCH,),
        choices=ENGINES,
        derived="torchrun under a launcher, local otherwise",
        metavar="|".join(ENGINES),
        doc="how segments are spread: `local` (this process), `torchrun` (the processes of a `torchrun` / `accelerate "
        "launch`, a static split), `ray` (Ray actors that load each model once and take segments as they free up; "
        "a segment whose worker dies runs again elsewhere; `--out` must be a folder every node sees; "
        '`pip install -e ".[ray]"`)',
    ),
    Option(
        "address",
        "str",
        "Ray cluster to join (host:port, ray://host:port or auto); default: RAY_ADDRESS, else a Ray started here",
        commands=(BATCH,),
        metavar="ADDR",
    ),
    Option(
        "workers",
        "int",
        "Ray actors (one GPU each on a GPU cluster)",
        default=None,
        commands=(BATCH,),
        derived="the cluster's GPUs, else its CPUs / --threads",
        lo=1,
        metavar="N",
    ),
    Option(
        "plan",
        "bool",
        "write the segment manifest OUT/plan.json for array jobs (Slurm --array, Kubernetes Indexed Jobs) and exit",
        False,
        commands=(BATCH,),
    ),
    Option(
        "segment_index",
        "str",
        "render only these segments of OUT/plan.json: N, A-B, or A-B:STEP (every STEP-th); done ones are skipped",
        commands=(BATCH,),
        metavar="N|A-B[:STEP]",
    ),
    Option(
        "assemble",
        "bool",
        "join the finished segments of OUT/plan.json into the outputs and write report.json (lists any missing)",
        False,
        commands=(BATCH,),
    ),
    Option(
        "live_input",
        "str",
        "what to stylise: a video file, a URL ffmpeg reads (udp://, rtsp://, rtmp://, srt://, http://), a webcam "
        "(/dev/videoN), the X11 screen (screen, or screen:DISPLAY), or - for raw RGB frames on stdin",
        commands=(LIVE,),
        flag="--input",
        short="-i",
        required=True,
        metavar="SOURCE",
        doc="what to stylise: a video file (played in order, or at its own rate with `--realtime`), a URL ffmpeg "
        "reads (`udp://`, `rtsp://`, `rtmp://`, `srt://`, `http://`), a webcam (`/dev/videoN`), the X11 screen "
        "(`screen`: `$DISPLAY`; `screen::0.0+100,200`: that display from that corner), or `-`: raw RGB24 frames "
        "of `--input-size` on stdin",
    ),
    Option(
        "sinks",
        "strs",
        "where the stylised frames go, repeatable: a recording (.mp4, .mkv, ...), a URL ffmpeg writes "
        "(udp://, srt://, rtmp://), or vcam[:DEVICE] (a virtual camera)",
        commands=(LIVE,),
        flag="--output",
        short="-o",
        required=True,
        metavar="SINK",
        doc="where the stylised frames go, repeatable (all at once): a recording (`.mp4`, `.mkv`, `.mov`, `.webm`; "
        "moved into place when the run ends, with the settings recorded in it), a URL ffmpeg writes (`udp://` and "
        "`srt://` as MPEG-TS, `rtmp://` as FLV; H.264, tuned for latency), or `vcam` / `vcam:/dev/videoN` (a "
        "virtual camera through pyvirtualcam: v4l2loopback on Linux, OBS's on Windows and macOS; `pip install "
        '-e ".[live]"`)',
    ),
    Option(
        "realtime",
        "bool",
        "play a file source at its own frame rate, dropping the frames that arrive while a frame renders",
        False,
        commands=(LIVE,),
        doc="play a file source at its own frame rate (as a camera would deliver it): frames that arrive while "
        "one renders are dropped and counted. Without it a file's every frame is stylised, in order (the frames "
        "`lcm-video stylize --window 1` makes). Cameras, screens, streams and stdin are always live",
    ),
    Option(
        "stream_batch",
        "bool",
        "StreamDiffusion's stream batch: the frames in flight at their different steps share one UNet call; "
        "output lags input by steps - 1 frames more",
        False,
        commands=(LIVE,),
        doc="StreamDiffusion's stream batch: `--steps` frames are in flight, each at its own step, and one UNet call "
        "per input frame denoises them all (a batch of N instead of N calls of one): more throughput where a bigger "
        "batch costs less per frame (GPUs), for `--steps` - 1 frames more latency. The frames are the per-frame "
        "path's, up to the batch's float rounding. Not with `--cross-frame`, `--control` or `--skip-similar`",
    ),
    Option(
        "calibrate",
        "str",
        "what --quantize int8 calibrates on: toy (toy-world frames; cached, so only a first run quantises) or "
        "source (the source's first 8 frames: fitted to it, quantised anew for new frames)",
        "toy",
        commands=(LIVE,),
        choices=("toy", "source"),
        metavar="toy|source",
        doc="what `--quantize int8` calibrates on: `toy`, 8 toy-world frames (the same every run, so the int8 UNet "
        "is cached after the first run's quantisation), or `source`, the source's own first 8 frames (a file's, "
        "read beside the run; a camera's, stream's or stdin's first 8 captured frames, which are then not "
        "stylised): fitted to what is stylised, quantised anew whenever those frames change (a camera: every run)",
    ),
    Option(
        "input_size",
        "str",
        "WIDTHxHEIGHT of raw stdin frames (-i -); for a webcam or the screen, the capture size to ask for",
        commands=(LIVE,),
        metavar="WxH",
    ),
    Option(
        "input_fps",
        "fps",
        "frame rate of raw stdin frames (-i -, default 30); for a webcam or the screen, the rate to ask for",
        commands=(LIVE,),
        metavar="R",
    ),
    Option(
        "stats",
        "path",
        "write the run's figures (fps in and out, latency p50/p95, dropped frames) to FILE.json at the end",
        commands=(LIVE,),
        metavar="FILE.json",
    ),
    Option("video", "path", "video to measure", commands=(EVAL,), positional=True),
    Option(
        "source",
        "path",
        "the video it was made from (rerun: default, the recorded source)",
        commands=(EVAL, RERUN),
        metavar="FILE",
    ),
    Option(
        "eval_frames",
        "int",
        "measure only the first N frames",
        commands=(EVAL,),
        flag="--max-frames",
        lo=2,
        hint=" (temporal metrics need two frames)",
        metavar="N",
    ),
    Option(
        "flow",
        "str",
        "optical flow of warp_error and tof: dis or farneback (grade a method by a flow it did not use)",
        default="dis",
        commands=(EVAL,),
        choices=FLOW,
        metavar="|".join(FLOW),
    ),
    Option(
        "made",
        "path",
        "a video lcm-video made (its settings are recorded in it)",
        commands=(INFO, RERUN),
        positional=True,
    ),
    Option("json", "bool", "print JSON", False, commands=(EVAL, INFO)),
    Option(
        "plot",
        "path",
        "also draw warp error and flicker per frame pair into FILE.png (a seam or flickering stretch is a spike)",
        commands=(EVAL,),
        metavar="FILE.png",
    ),
    Option(
        "host",
        "str",
        "address to serve on; anything but 127.0.0.1 lets other machines in",
        default="127.0.0.1",
        commands=(UI,),
        metavar="ADDR",
        doc="address to serve on; the default lets in this machine only. `0.0.0.0` serves the whole network (the UI "
        "has no login: do that on a trusted network only)",
    ),
    Option("port", "int", "port to serve on", default=7860, commands=(UI,), lo=1, hi=65535, metavar="N"),
    Option(
        "ui_model",
        "str",
        "model selected when the page opens; a local path given here is offered in the page too",
        default=None,
        commands=(UI,),
        derived="the stylize default",
        flag="--model",
        metavar="NAME",
        doc="model selected when the page opens (preset, hub id, directory or file). The page itself loads presets "
        "and hub ids only: a local path is offered in it only when given here",
    ),
    Option(
        "ui_out",
        "path",
        "folder the renders are written to (and the only one the page serves)",
        default="lcm-video-ui",
        commands=(UI,),
        flag="--out",
        metavar="DIR",
    ),
    Option(
        "max_upload_mb",
        "int",
        "largest upload accepted, in MB",
        default=500,
        commands=(UI,),
        lo=1,
        metavar="MB",
    ),
    Option(
        "share",
        "bool",
        "also serve through a public gradio.live link (needs internet; anyone with the link can render)",
        False,
        commands=(UI,),
    ),
)


LIVE_SKIPS: dict[str, str] = {
    "prompt_at": "a stream has no frame numbers to key on; change the prompt while it runs (a `prompt:` line)",
    "strength_at": "a stream has no frame numbers to key on; change the strength while it runs (a `strength:` line)",
    "motion_adapter": "motion windows hold frames back; live renders a frame at a time",
    "context": "motion windows hold frames back; live renders a frame at a time",
    "overlap": "motion windows hold frames back; live renders a frame at a time",
    "fuse": "motion windows hold frames back; live renders a frame at a time",
    "window": "live renders a frame at a time (a UNet batch of 1)",
    "start": "a stream has no start and end times",
    "end": "a stream has no start and end times",
    "fps": "frames go out as they are rendered",
    "audio": "live carries no audio",
    "metrics": "measure a recording with `lcm-video eval`",
    "control_video": "control maps are annotated from each live frame",
}
"""Stylise settings that do not apply to a live stream, and why (the error a YAML key or keyword gets)."""


def _as_live(opt: Option) -> Option:
    """A stylise setting as live's: stylise's defaults and derived defaults, live added to its commands."""
    defaults, derived = dict(opt.defaults), opt.derived
    if STYLIZE in defaults:
        defaults[LIVE] = defaults[STYLIZE]
    if isinstance(derived, tuple):
        derived = (*derived, (LIVE, dict(derived).get(STYLIZE, "")))
    return dataclasses.replace(opt, commands=(*opt.commands, LIVE), defaults=tuple(defaults.items()), derived=derived)


def options_for(command: str) -> list[Option]:
    """The options ``command`` takes, paths and positionals first, then the parts' settings in declaration order."""
    extra = [o for o in COMMAND_FLAGS if command in o.commands]
    if command == LIVE:
        live = (_as_live(o) for o in SETTINGS.values() if STYLIZE in o.commands and o.name not in LIVE_SKIPS)
        return [*extra, *live]
    settings = DISTILL_SETTINGS if command == DISTILL else SETTINGS
    return [*extra, *(o for o in settings.values() if command in o.commands)]
