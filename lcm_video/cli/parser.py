"""The ``lcm-video`` argument parser, built from the options' declarations (``config.py``): flags, types, help
and defaults are never restated here."""

from __future__ import annotations

import argparse

from ..options import BATCH, DISTILL, EVAL, GENERATE, INFO, LIVE, RERUN, STYLIZE, UI, Option, did_you_mean
from ..settings.flags import options_for

PROG = "lcm-video"

COMMANDS = {
    STYLIZE: (
        "restyle a video with a prompt (same length, fps and audio)",
        "Restyle INPUT into OUTPUT with a 4-step LCM, shared noise and latent blending.",
    ),
    GENERATE: (
        "generate a clip from a prompt through a motion module (AnimateLCM / AnimateDiff)",
        "Render a clip from PROMPT with a motion module and a 4-step LCM; clips longer than the motion context are "
        "rendered in overlapping windows fused at every step.",
    ),
    LIVE: (
        "stylise a camera, screen, stream, stdin or file live into recordings, streams and virtual cameras",
        "Stylise SOURCE frame by frame as it comes (the newest frame wins while one renders) into every -o SINK at "
        "once. While it runs, lines on stdin change it: 'prompt: TEXT', 'strength: S', 'seed: N'. Ctrl-C stops it "
        "and finishes the recordings.",
    ),
    BATCH: (
        "render a job file of many renders, resumable, across processes (accelerate launch / torchrun)",
        "Render every job of JOBS.yaml under --out; rerun the same command to resume after a crash.",
    ),
    DISTILL: (
        "distil a model into a few-step latent consistency model (LCM-LoRA or full)",
        "Latent consistency distillation of --teacher on captioned --data into --out: an LCM-LoRA (--lora OUT/"
        "pytorch_lora_weights.safetensors) or a full LCM (--model OUT).",
    ),
    EVAL: (
        "temporal consistency and fidelity metrics of a video",
        "warp_error (Lai et al. 2018, DIS or Farneback flow, forward-backward occlusion mask), flicker, and with "
        "--source: tof "
        "(flow difference), psnr, ssim, edge_f1 (Canny edges against the source's). Frames are paired with the source "
        "by index.",
    ),
    INFO: (
        "print how a video was made (the settings recorded in it), as a YAML --config",
        "Print the settings lcm-video recorded in MADE: a YAML mapping usable as --config, under comments naming the "
        "command, version, source and weight hashes.",
    ),
    UI: (
        "serve the web UI (Gradio): stylise, generate, batch and evaluate in a browser",
        "Serve a web page for stylise, generate, batch and evaluate on --host:--port, writing renders to --out. "
        'Needs the ui extra: pip install "lcm-video[ui]".',
    ),
    RERUN: (
        "render a video again from the settings recorded in it",
        "Render MADE again into --output: the same command and settings, from the recorded source (or --source).",
    ),
}


class _Parser(argparse.ArgumentParser):
    """One-line usage errors, with a suggestion for a mistyped flag among the chosen command's."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def parse_args(self, args=None, namespace=None):
        ns, extras = self.parse_known_args(args, namespace)
        if extras:
            chosen = self._commands.get(getattr(ns, "command", None), self) if hasattr(self, "_commands") else self
            flags = [s for a in chosen._actions for s in a.option_strings]
            unknown = next((e for e in extras if e.startswith("-")), extras[0])
            chosen.error(f"unrecognized arguments: {' '.join(extras)}{did_you_mean(unknown.split('=')[0], flags)}")
        return ns


def _add(group, opt: Option, command: str) -> None:
    help_text = opt.help_text(command).replace("%", "%%")
    if opt.positional:
        group.add_argument(opt.name, help=help_text)
        return
    names = [opt.short, opt.cli] if opt.short else [opt.cli]
    kw: dict = {"dest": opt.name, "help": help_text}
    if opt.kind == "bool":
        kw["action"] = "store_false" if opt.default is True else "store_true"
    else:
        kw["metavar"] = opt.metavar or opt.name.upper()
        if opt.repeatable:
            kw["action"] = "append"
        if opt.required:
            kw["required"] = True
    group.add_argument(*names, **kw)


def build_parser() -> argparse.ArgumentParser:
    """``lcm-video {stylize,generate,batch,eval,models}``. Only options given on the command line appear in the
    parsed namespace (``argument_default=SUPPRESS``), so they can be laid over a config file's."""
    parser = _Parser(
        prog=PROG, description="Fast, flicker-free video synthesis with Latent Consistency Models.", allow_abbrev=False
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for command, (short_help, description) in COMMANDS.items():
        p = sub.add_parser(
            command,
            help=short_help,
            description=description,
            argument_default=argparse.SUPPRESS,
            allow_abbrev=False,
        )
        groups: dict[str | None, argparse._ArgumentGroup] = {}
        for opt in options_for(command):
            if opt.part not in groups:
                groups[opt.part] = p.add_argument_group(opt.part) if opt.part else p
            _add(groups[opt.part], opt, command)
    sub.add_parser("models", help="list model and motion presets")
    parser._commands = sub.choices
    return parser
