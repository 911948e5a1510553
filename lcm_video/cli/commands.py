"""The ``lcm-video`` command: parse flags (built from the options' declarations), resolve them with a ``--config``
file into one validated config, call the library. A ``UserError`` becomes one line on stderr and exit status 2."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import warnings

from ..errors import UserError
from ..options import BATCH, DISTILL, EVAL, GENERATE, INFO, LIVE, RERUN, STYLIZE, UI
from ..pipelines.prepare import prepare_generate, prepare_stylize
from ..settings.flags import COMMAND_FLAGS
from ..settings.parts import SETTINGS
from ..settings.resolve import resolve
from .parser import PROG, build_parser

_EXTRA = {o.name: o for o in COMMAND_FLAGS}


def _quiet_libraries() -> None:
    """Library chatter (deprecation notes, optional-dependency hints) is not for the user of a CLI."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_VERBOSITY", "error")  # hub retries are reported once, as our own one-line error
    warnings.filterwarnings("ignore")
    for name in ("transformers", "diffusers", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _extra(ns: argparse.Namespace, name: str, fill_default: bool = True):
    """A non-setting option's value from the command line, coerced and checked by its declaration; when it was not
    given, its default (or None with ``fill_default=False``, where a lower layer supplies the default)."""
    opt = _EXTRA[name]
    value = opt.coerce(getattr(ns, name, None))
    opt.check(value)
    return value if value is not None or not fill_default else opt.default


def _render_config(ns: argparse.Namespace, command: str):
    """The flags given on the command line over the ``--config`` file over the defaults, validated."""
    flags = {k: v for k, v in vars(ns).items() if k in SETTINGS}
    cfg = resolve(command, getattr(ns, "config", None), flags, "command-line options")
    if cfg.output.quiet:
        _quiet_loading()
    return cfg


def _quiet_loading() -> None:
    """diffusers' and transformers' own bars off for the whole run with ``-q`` (loading silences them anyway:
    ``notices.library_notices_off``; this covers distillation's validation pipelines too)."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()


def _rate(fps) -> str:
    """An exact frame rate as typed on the command line: ``24`` or ``30000/1001``."""
    return f"{fps.numerator}/{fps.denominator}" if fps.denominator != 1 else str(fps.numerator)


def _rate_phrase(fps, variable: bool) -> str:
    """How a video's rate reads in a message: ``30000/1001 fps``, or ``variable rate, 18 fps on average``."""
    return f"variable rate, {float(fps):.3g} fps on average" if variable else f"{_rate(fps)} fps"


def _report(res, quiet: bool) -> None:
    if quiet:
        return
    fps = _rate_phrase(res.fps, res.variable_rate)
    rate = res.frames / res.seconds if res.seconds > 0 else 0.0
    reused = f", {res.reused} reused by --skip-similar" if res.reused else ""
    print(
        f"wrote {res.output} ({res.frames} frames{reused}, {res.size[0]}x{res.size[1]}, {fps}) "
        f"in {res.seconds:.1f} s, {rate:.2f} frames/s",
        file=sys.stderr,
    )


def _stylize(source, output, cfg) -> int:
    prep = prepare_stylize(source, output, cfg)  # bad paths and files fail here, before torch is imported
    for note in prep.notes:
        print(f"{PROG}: note: {note}", file=sys.stderr)
    from ..pipelines.video_to_video import stylize

    _report(stylize(source, output, prepared=prep), cfg.output.quiet)
    return 0


def _generate(output, cfg) -> int:
    prep = prepare_generate(output, cfg)
    from ..pipelines.text_to_video import generate

    _report(generate(None, output, prepared=prep), cfg.output.quiet)
    return 0


def _run_stylize(ns: argparse.Namespace) -> int:
    return _stylize(ns.input, ns.output, _render_config(ns, STYLIZE))


def _run_generate(ns: argparse.Namespace) -> int:
    return _generate(ns.output, _render_config(ns, GENERATE))


def _run_live(ns: argparse.Namespace) -> int:
    from ..live.config import check_sinks, live_config

    flags = {k: v for k, v in vars(ns).items() if k in SETTINGS}
    cfg = live_config(getattr(ns, "config", None), flags, "command-line options")
    check_sinks(ns.sinks, cfg)  # bad paths and sinks fail here, before torch is imported
    source = ns.live_input
    controls = None
    if source == "-":
        if not cfg.output.quiet and _extra(ns, "input_size"):  # without it the source's error says what is missing
            note = "stdin carries the frames, so no control lines (prompt: ...) can be read"
            print(f"{PROG}: note: {note}", file=sys.stderr)
    else:
        controls = sys.stdin
    if cfg.output.quiet:
        _quiet_loading()
    from ..live.run import run_live

    res = run_live(
        source,
        ns.sinks,
        config=cfg,
        realtime=_extra(ns, "realtime"),
        stream_batch=_extra(ns, "stream_batch"),
        calibrate=_extra(ns, "calibrate"),
        input_size=_extra(ns, "input_size"),
        input_fps=_extra(ns, "input_fps"),
        stats=_extra(ns, "stats"),
        controls=controls,
    )
    if not cfg.output.quiet:
        s = res.stats
        why = {"end": "the source ended", "interrupted": "stopped", "max_frames": "--max-frames reached"}[res.stopped]
        wrote = f"; wrote {', '.join(map(str, res.recordings))}" if res.recordings else ""
        print(
            f"live: {why} after {s['frames_out']} frames ({s['dropped']} dropped), out {s['fps_out']:.1f} fps, "
            f"latency p50 {s['latency_ms']['p50']} ms p95 {s['latency_ms']['p95']} ms{wrote}",
            file=sys.stderr,
        )
    return 0


def _run_batch(ns: argparse.Namespace) -> int:
    from ..batch.run import run_batch

    seg = _extra(ns, "segment_frames", fill_default=False)  # None: the job file's own default applies
    quiet = getattr(ns, "quiet", False)
    engine, address, workers = _extra(ns, "engine"), _extra(ns, "address"), _extra(ns, "workers")
    index, plan, assemble = _extra(ns, "segment_index"), _extra(ns, "plan"), _extra(ns, "assemble")
    steps = [flag for flag, on in (("--plan", plan), ("--segment-index", index), ("--assemble", assemble)) if on]
    if len(steps) > 1:
        raise UserError(f"{' and '.join(steps)} are separate steps of an array job: give one at a time")
    if steps and (engine or address or workers):
        raise UserError(f"{steps[0]} renders in this process: drop --engine, --address and --workers")
    if steps:
        from ..batch import manifest

        if plan:
            manifest.write_plan(ns.jobs, ns.out, seg, quiet)
            return 0
        if index is not None:
            done = manifest.render_indices(ns.jobs, ns.out, index, seg, quiet)
            return 1 if done["failed"] else 0
        rows = manifest.assemble_plan(ns.jobs, ns.out, seg, quiet)
    else:
        rows = run_batch(ns.jobs, ns.out, seg, quiet, engine=engine, address=address, workers=workers)
    return 0 if all(r["status"] == "done" for r in rows) else 1


def _run_distill(ns: argparse.Namespace) -> int:
    from ..settings.distill import DISTILL_SETTINGS, resolve_distill

    cfg = resolve_distill(None, {k: v for k, v in vars(ns).items() if k in DISTILL_SETTINGS}, "command-line options")
    from ..train.data import open_clips, open_dataset

    # a bad data set fails before torch is imported
    open_clips(cfg.data, cfg.frames) if cfg.motion_adapter else open_dataset(cfg.data)
    from ..train.distill import distill

    if cfg.quiet:
        _quiet_loading()
    res = distill(config=cfg)
    if not cfg.quiet:
        print(f"wrote {res.output} after {len(res.losses)} steps (loss {res.losses[-1]:.4g})", file=sys.stderr)
    return 0


def _run_eval(ns: argparse.Namespace) -> int:
    from ..metrics import evaluate, plot_png

    plot = getattr(ns, "plot", None)
    if plot and not str(plot).lower().endswith(".png"):
        raise UserError(f"--plot {plot!r} must name a .png file")
    metrics = evaluate(ns.video, getattr(ns, "source", None), _extra(ns, "eval_frames"), _extra(ns, "flow"))
    if plot:
        plot_png(metrics, plot)
    m = metrics.to_dict()
    for note in m["notes"]:
        print(f"{PROG}: warning: {note}", file=sys.stderr)
    if getattr(ns, "json", False):
        print(json.dumps(m))
        return 0
    for key, value in m.items():
        if key == "notes":
            continue
        shown = "-" if value is None else (f"{value:.6g}" if isinstance(value, float) else str(value))
        print(f"{key:11s} {shown}")
    return 0


def _run_info(ns: argparse.Namespace) -> int:
    import yaml

    from ..record import read_record
    from ..video.reader import probe

    rec = read_record(ns.made)
    if rec is None:
        raise UserError(
            f"{ns.made!r} has no lcm-video settings in it (made by another tool, re-encoded, or a GIF: GIFs keep none)"
        )
    info = probe(ns.made)
    if getattr(ns, "json", False):
        print(json.dumps(rec))
        return 0
    print(f"# {ns.made}: {info.frames} frames, {info.width}x{info.height}, {_rate_phrase(info.fps, info.variable)}")
    print(f"# made by lcm-video {rec.get('version')} {rec.get('command')}", end="")
    print(f" from {rec['source']['path']}" if rec.get("source") else "")
    for spec, digest in rec.get("sha256", {}).items():
        print(f"# sha256 {digest}  {spec}")
    if rec.get("style_image"):
        print(f"# style image sha256 {rec['style_image']['sha256']}  {rec['style_image']['path']}")
    for ran in rec.get("ran", []):
        print(f"# ran on {ran.get('device')} in {ran.get('dtype')} ({ran.get('backend')} backend)")
    print(yaml.safe_dump(rec["settings"], sort_keys=False, allow_unicode=True), end="")
    return 0


def _run_rerun(ns: argparse.Namespace) -> int:
    from ..record import read_record

    rec = read_record(ns.made)
    if rec is not None and rec.get("command") == LIVE:
        raise UserError(
            f"{ns.made!r} was recorded live; a stream cannot be replayed, but its settings can: "
            f"lcm-video live -i SOURCE -o SINK --config {ns.made}"
        )
    if rec is None or rec.get("command") not in (STYLIZE, GENERATE):
        raise UserError(f"{ns.made!r} has no lcm-video render settings in it; nothing to rerun")
    command, settings = rec["command"], dict(rec["settings"])
    if hasattr(ns, "quiet"):
        settings["quiet"] = True
    cfg = resolve(command, None, settings, f"the settings recorded in {ns.made!r}")
    _warn_if_auto_resolves_otherwise(cfg, rec.get("ran", []), ns.made)
    _warn_if_style_image_changed(rec)
    if command == GENERATE:
        return _generate(ns.output, cfg)
    source = getattr(ns, "source", None)
    if source is None:  # the recorded one (a given --source is checked as any input is)
        source = rec["source"]["path"]
        if not os.path.exists(source):
            raise UserError(f"the recorded source {source!r} is gone; give it with --source FILE")
        if os.path.getsize(source) != rec["source"].get("bytes"):
            print(f"{PROG}: warning: {source!r} changed since the render (its size differs)", file=sys.stderr)
    return _stylize(source, ns.output, cfg)


def _warn_if_auto_resolves_otherwise(cfg, ran: list[dict], made: str) -> None:
    """A recorded `--dtype auto` render made where auto meant another precision than it does here (bfloat16 on a CPU
    with it in hardware, float32 on one without) renders other frames: say so, and how to match it."""
    if cfg.model.dtype != "auto" or len(ran) != 1:
        return
    from ..models.device import dtype_name, pick_device, pick_dtype

    device = pick_device(cfg.model.device)
    then = ran[0]
    now = dtype_name(pick_dtype("auto", device))
    if then.get("device") == device.type and then.get("dtype") not in (None, now):
        print(
            f"{PROG}: warning: the video was rendered in {then['dtype']} (--dtype auto there) and auto means {now} "
            f"here, so the frames will differ; to match them: lcm-video {cfg.command} ... --config {made} --dtype "
            f"{then['dtype']}",
            file=sys.stderr,
        )


def _warn_if_style_image_changed(rec: dict) -> None:
    """A recorded ``--style-image`` whose file now holds other content (its SHA-256 differs) gives other frames."""
    from ..record import make_record

    was = rec.get("style_image")
    if not was:
        return
    now = make_record(rec["command"], {"style_image": was["path"]}).get("style_image")
    if now is not None and now["sha256"] != was["sha256"]:
        print(
            f"{PROG}: warning: the style image {was['path']!r} has changed since the video was made (its SHA-256 "
            "differs), so the frames will differ",
            file=sys.stderr,
        )


def _run_ui(ns: argparse.Namespace) -> int:
    from ..ui import launch

    _quiet_loading()  # the server's log is for requests and errors, not loading bars
    opts = {name: _extra(ns, name) for name in ("host", "port", "ui_model", "ui_out", "max_upload_mb")}
    launch(opts["host"], opts["port"], opts["ui_model"], opts["ui_out"], opts["max_upload_mb"], _extra(ns, "share"))
    return 0


def preset_lines(presets) -> list[str]:
    """``lcm-video models``' lines for model or motion presets: name, weights, trained size, how it samples, guidance
    and licence (a non-commercial one says so in capitals), then what it is, indented."""
    from ..models.presets import non_commercial

    lines = []
    for p in presets:
        weights = getattr(p, "base", "") if hasattr(p, "size") else p.adapter
        if getattr(p, "unet", None):
            weights += f" + UNet {p.unet}"
        size = f"{p.size}²" if hasattr(p, "size") else ""
        how = p.sampling.describe() if p.sampling is not None else "the model's method"
        guidance = f", guidance {p.guidance:g}" if p.guidance is not None else ""
        nc = " NON-COMMERCIAL" if non_commercial(p.licence) else ""
        lines.append(f"  {p.name:20s} {weights:45s} {size:6s} {how}{guidance}; licence: {p.licence}{nc}")
        lines.append(f"  {'':20s} {p.about}")
    return lines


def _run_models(ns: argparse.Namespace) -> int:
    from ..models.presets import MOTION_PRESETS, PRESETS

    print("models (--model; the size each was made for, generate's default; how it samples; licence):")
    print("\n".join(preset_lines(PRESETS.values())))
    print("motion adapters (--motion-adapter; a method named here wins over the model's):")
    print("\n".join(preset_lines(MOTION_PRESETS.values())))
    from ..models.ip_presets import IP_ADAPTERS

    print("IP-Adapters (--ip-adapter, for --style-image; the default is the model's):")
    for a in IP_ADAPTERS.values():
        weights = f"{a.repo}/{a.subfolder}/{a.weight_name}" if a.weight_name else a.repo
        print(f"  {a.name:20s} {weights:66s} {a.fits}; licence: {a.licence}")
        print(f"  {'':20s} {a.about}")
    return 0


RUN = {
    STYLIZE: _run_stylize,
    GENERATE: _run_generate,
    LIVE: _run_live,
    BATCH: _run_batch,
    DISTILL: _run_distill,
    EVAL: _run_eval,
    INFO: _run_info,
    RERUN: _run_rerun,
    UI: _run_ui,
    "models": _run_models,
}


def _stop_on_signals(caught: list[int]) -> dict:
    """SIGTERM and SIGHUP (a closed terminal, a job scheduler's stop) unwind like Ctrl-C, so the writer removes its
    temporary file and a batch keeps its finished segments; exit status 128 + the signal's number."""

    def stop(signum, frame):
        caught.append(signum)
        raise KeyboardInterrupt

    previous = {}
    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            try:
                previous[sig] = signal.signal(sig, stop)
            except ValueError:  # not the main thread (main() called from a worker thread): leave them alone
                break
    return previous


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        ns = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed as one line
        return int(exc.code or 0)
    _quiet_libraries()
    caught: list[int] = []
    previous = _stop_on_signals(caught)
    try:
        return RUN[ns.command](ns)
    except UserError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"{PROG}: {getattr(exc, 'message', 'interrupted; nothing was written')}", file=sys.stderr)
        return 128 + (caught[0] if caught else signal.SIGINT)
    except BrokenPipeError:  # `lcm-video models | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
