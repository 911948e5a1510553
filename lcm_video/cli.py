"""The ``lcm-video`` command: a thin layer that parses options into a config and calls the library."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from typing import Any

from .errors import UserError

PROG = "lcm-video"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not usage + message
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _model_options(p) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", help="preset (see `lcm-video models`), hub id, diffusers dir or .safetensors file")
    g.add_argument("--lora", action="append", metavar="ID_OR_PATH[:SCALE]", help="LoRA to fuse; repeatable")
    g.add_argument("--vae", help="VAE override: hub id or directory (AutoencoderKL, or taesd for speed)")
    g.add_argument("--fast", action="store_true", help="TAESD instead of the full VAE: ~2x faster, slightly softer")
    g.add_argument("--device", help="auto (CUDA > MPS > CPU), cpu, cuda, cuda:N, mps")
    g.add_argument("--dtype", help="auto (float16 on GPU, float32 on CPU), float32, float16, bfloat16")
    g.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the UNet and VAE: ~1.25x faster per frame on CPU after a one-off compile of minutes; "
        "for long renders",
    )
    return g


def _sampling_options(p, shared_default: str, blend_default: str):
    g = p.add_argument_group("sampling")
    g.add_argument("--steps", type=int, help="denoising steps per frame, run exactly (default 4)")
    g.add_argument("--guidance", type=float, help="guidance scale (default from the model preset)")
    g.add_argument("--negative-prompt", help="what to avoid (classifier-free guidance models at --guidance > 1)")
    g.add_argument("--seed", type=int, help="random seed (default 0)")
    g.add_argument("--shared-noise", type=float, help=f"0..1, share of noise common to all frames ({shared_default})")
    g.add_argument("--blend", type=float, help=f"0..1, latent blending toward the previous frame ({blend_default})")
    g.add_argument("--renoise", choices=["fresh", "initial"], help="re-noise with a new ε per step, or the first")
    return g


def _motion_options(g, required: bool) -> None:
    g.add_argument(
        "--motion-adapter",
        help="motion module: preset (animatelcm, animatediff-v1-5-2, tiny), hub id, directory or file"
        + ("" if required else "; enables motion-aware windows"),
    )
    g.add_argument("--context", type=int, help="frames per motion window (default 16, the training length)")
    g.add_argument("--overlap", type=int, help="frames shared by consecutive windows (default 4)")
    g.add_argument("--fuse", choices=["flat", "linear", "pyramid"], help="weights for shared frames (linear)")


def _output_options(p):
    g = p.add_argument_group("output")
    g.add_argument("--crf", type=int, help="quality, lower is better (default 18)")
    g.add_argument("--codec", help="ffmpeg video encoder (default libx264)")
    g.add_argument("--preset", help="x264/x265 speed preset (default medium)")
    g.add_argument("--metrics", action="store_true", help="also write OUTPUT_STEM.metrics.json (see `eval`)")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return g


def _add_stylize(sub) -> None:
    p = sub.add_parser(
        "stylize",
        help="restyle a video with a prompt (same length, fps and audio)",
        description="Restyle INPUT into OUTPUT with a 4-step LCM, shared noise and latent blending.",
        argument_default=argparse.SUPPRESS,
    )
    p.add_argument("input", help="source video file")
    p.add_argument("-o", "--output", required=True, help="output video (.mp4, .mkv, .mov, .webm)")
    p.add_argument("-p", "--prompt", help="what the video should look like")
    p.add_argument("--config", help="YAML file of options (keys as below with _ for -); flags given here win")
    _model_options(p)
    g = _sampling_options(p, "default 1", "default 0.2")
    g.add_argument("--strength", type=float, help="how far from the source, in (0, 1] (default 0.5)")
    g.add_argument("--window", type=int, help="frames per UNet batch (default 16); memory grows with it")
    g.add_argument(
        "--skip-similar",
        type=float,
        metavar="LEVELS",
        help="reuse the last output for source frames within LEVELS (mean abs. 8-bit difference) of the last "
        "rendered one: faster on still shots, may stutter (default 0 = off; 1-3 is typical)",
    )
    g.add_argument("--skip-max", type=int, help="at most this many reused frames in a row (default 10)")
    _motion_options(p.add_argument_group("motion (optional)"), required=False)
    g = p.add_argument_group("frames")
    g.add_argument("--width", type=int, help="output width, multiple of 8 (default: source, longer side <= 768)")
    g.add_argument("--height", type=int, help="output height, multiple of 8 (one alone keeps the aspect)")
    g.add_argument("--start", type=float, help="start time in seconds (default 0)")
    g.add_argument("--end", type=float, help="end time in seconds (default: end of video)")
    g.add_argument("--max-frames", type=int, help="render at most this many frames")
    g.add_argument("--fps", help="output frame rate, e.g. 12 or 30000/1001 (default: the source's, exact)")
    g = _output_options(p)
    g.add_argument("--no-audio", dest="audio", action="store_false", help="drop the source's audio")


def _add_generate(sub) -> None:
    p = sub.add_parser(
        "generate",
        help="generate a clip from a prompt through a motion module (AnimateLCM / AnimateDiff)",
        description="Render a clip from PROMPT with a motion module and a 4-step LCM; clips longer than the motion "
        "context are rendered in overlapping windows fused at every step.",
        argument_default=argparse.SUPPRESS,
    )
    p.add_argument("-p", "--prompt", help="what the clip shows")
    p.add_argument("-o", "--output", required=True, help="output video (.mp4, .mkv, .mov, .webm)")
    p.add_argument("--config", help="YAML file of options (keys as below with _ for -); flags given here win")
    g = _model_options(p)
    _motion_options(g, required=True)
    g = _sampling_options(p, "default 0", "default 0")
    g.add_argument(
        "--prompt-at",
        action="append",
        metavar="FRAME=TEXT",
        help="prompt from FRAME on, interpolated from the previous key; repeatable (prompt travel)",
    )
    g = p.add_argument_group("frames")
    g.add_argument("--frames", type=int, help="clip length in frames (default 16)")
    g.add_argument("--fps", help="frame rate (default 8)")
    g.add_argument("--width", type=int, help="width, multiple of 8 (default 512; 64 for tiny models)")
    g.add_argument("--height", type=int, help="height, multiple of 8 (default 512; 64 for tiny models)")
    _output_options(p)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Fast, flicker-free video synthesis with Latent Consistency Models.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_stylize(sub)
    _add_generate(sub)
    b = sub.add_parser(
        "batch",
        help="render a job file of many renders, resumable, across processes (accelerate launch / torchrun)",
        description="Render every job of JOBS.yaml under --out; rerun the same command to resume after a crash.",
    )
    b.add_argument("jobs", help="YAML job file: defaults: {...} and jobs: [{name, mode, input, output, ...}]")
    b.add_argument("--out", required=True, help="folder for outputs, work files and report.json")
    b.add_argument("--segment-frames", type=int, help="frames per unit of work (default 240)")
    b.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    e = sub.add_parser(
        "eval",
        help="temporal consistency and fidelity metrics of a video",
        description="warp_error (Lai et al. 2018, DIS flow, forward-backward occlusion mask), flicker, and with "
        "--source: tof (flow difference), psnr, ssim. Frames are paired with the source by index.",
    )
    e.add_argument("video", help="video to measure")
    e.add_argument("--source", help="the video it was made from")
    e.add_argument("--max-frames", type=int, help="measure only the first N frames")
    e.add_argument("--json", action="store_true", help="print JSON")
    sub.add_parser("models", help="list model and motion presets")
    return parser


def _quiet_libraries() -> None:
    """Library chatter (deprecation notes, optional-dependency hints) is not for the user of a CLI."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_VERBOSITY", "error")  # hub retries are reported once, as our own one-line error
    warnings.filterwarnings("ignore")
    for name in ("transformers", "diffusers", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _options(ns: argparse.Namespace, skip: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in vars(ns).items() if k not in skip}


def _config_from(ns: argparse.Namespace, cls: type, skip: tuple[str, ...]):
    from .config import load_yaml, merge

    layers, sources = [], []
    if "config" in ns:
        layers.append(load_yaml(ns.config))
        sources.append(ns.config)
    layers.append(_options(ns, ("command", "config", *skip)))
    sources.append("command-line options")
    cfg = merge(cls, *layers, sources=tuple(sources))
    if not any("prompt" in layer for layer in layers) and not getattr(cfg, "prompt_at", ()):
        raise UserError("no prompt: give -p/--prompt TEXT (or prompt: in the --config file)")
    from diffusers.utils import logging as dlog

    (dlog.disable_progress_bar if cfg.quiet else dlog.enable_progress_bar)()
    return cfg


def _report(res, quiet: bool) -> None:
    if quiet:
        return
    fps = f"{res.fps.numerator}/{res.fps.denominator}" if res.fps.denominator != 1 else str(res.fps.numerator)
    rate = res.frames / res.seconds if res.seconds > 0 else 0.0
    print(
        f"wrote {res.output} ({res.frames} frames, {res.size[0]}x{res.size[1]}, {fps} fps) "
        f"in {res.seconds:.1f} s, {rate:.2f} frames/s",
        file=sys.stderr,
    )


def _run_stylize(ns: argparse.Namespace) -> int:
    from .config import StylizeConfig
    from .video_to_video import stylize

    cfg = _config_from(ns, StylizeConfig, ("input", "output"))
    _report(stylize(ns.input, ns.output, config=cfg), cfg.quiet)
    return 0


def _run_generate(ns: argparse.Namespace) -> int:
    from .config import GenerateConfig
    from .text_to_video import generate

    cfg = _config_from(ns, GenerateConfig, ("output",))
    _report(generate(None, ns.output, config=cfg), cfg.quiet)
    return 0


def _run_batch(ns: argparse.Namespace) -> int:
    from .batch import run_batch

    if ns.segment_frames is not None and ns.segment_frames < 1:
        raise UserError(f"--segment-frames must be at least 1, got {ns.segment_frames}")
    rows = run_batch(ns.jobs, ns.out, ns.segment_frames, ns.quiet)
    return 0 if all(r["status"] == "done" for r in rows) else 1


def _run_eval(ns: argparse.Namespace) -> int:
    import json

    from .metrics import evaluate

    if ns.max_frames is not None and ns.max_frames < 2:
        raise UserError(f"--max-frames must be at least 2 for temporal metrics, got {ns.max_frames}")
    m = evaluate(ns.video, ns.source, ns.max_frames).to_dict()
    if ns.json:
        print(json.dumps(m))
        return 0
    for key, value in m.items():
        shown = "-" if value is None else (f"{value:.6g}" if isinstance(value, float) else str(value))
        print(f"{key:11s} {shown}")
    return 0


def _run_models() -> int:
    from .models import MOTION_PRESETS, PRESETS

    print("models (--model):")
    for p in PRESETS.values():
        print(f"  {p.name:20s} {p.base:45s} {p.about}")
    print("motion adapters (--motion-adapter):")
    for m in MOTION_PRESETS.values():
        print(f"  {m.name:20s} {m.adapter:45s} {m.about}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        ns = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed as one line
        return int(exc.code or 0)
    _quiet_libraries()
    try:
        if ns.command == "stylize":
            return _run_stylize(ns)
        if ns.command == "generate":
            return _run_generate(ns)
        if ns.command == "batch":
            return _run_batch(ns)
        if ns.command == "eval":
            return _run_eval(ns)
        if ns.command == "models":
            return _run_models()
    except UserError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; nothing was written", file=sys.stderr)
        return 130
    return 1
