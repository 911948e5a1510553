"""``lcm-video ui``: a Gradio Blocks app over the library's own calls (``stylize``, ``generate``, ``run_live``,
``run_batch``, ``evaluate``), with every input made from the options' declarations (``widgets.py``).

Tabs: Stylise, Generate, Live, Batch, Evaluate. Renders go one at a time through Gradio's queue, each with live
progress, cancellable (it stops within one window and leaves no file), ending with the video, its metrics, and the
command and YAML config that reproduce it. Models stay loaded between renders (:class:`ModelCache`). The API is the
page's: ``Client(url).predict(video=handle_file(p), prompt="...", api_name="/stylize")``, inputs named as options.
"""

from __future__ import annotations

import os
import random
import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import yaml

from .. import __version__
from ..errors import UserError
from ..events import Cancelled
from ..models.presets import MOTION_PRESETS, PRESETS, default_motion
from ..options import EVAL, GENERATE, STYLIZE
from ..pipelines.loader import ModelCache
from ..settings.flags import COMMAND_FLAGS
from ..settings.resolve import resolve
from . import widgets
from .handlers import session_of as _session
from .handlers import user_errors as _user_errors
from .live import LiveRuns, live_tab
from .preview import KINDS, MAX_VARIANTS, MIN_VARIANTS, Previews, preview_events
from .session import Renders, check_weights, describe, output_name, plain_name
from .views import control_map, metric_views

PREVIEW_FRAMES = 8  # "Preview" renders this many frames: one window, seconds on a CPU with the small models
SEED_MAX = 2**31 - 1
RENDER_QUEUE = "render"  # stylize, generate and batch share one worker: one render at a time

_EXTRA = {o.name: o for o in COMMAND_FLAGS}


class App:
    """The server side of the page: where renders go, which local weights may be named, the model cache."""

    def __init__(self, out: str | Path, model: str | None = None, cache_size: int = 2):
        self.out = Path(out).resolve()
        self.out.mkdir(parents=True, exist_ok=True)
        self.model = model
        # A local path given at launch (--model) is the one path the page may name.
        self.allowed = {model} if model else set()
        self.cache = ModelCache(cache_size)
        self._loading = threading.Lock()  # renders, previews and live runs load from their own threads
        self.renders = Renders()
        self.previews = Previews(self)
        self.live = LiveRuns(self)

    def models(self, m):
        """The models of a ``ModelConfig``, from the cache (loaded once, whichever thread asks first)."""
        with self._loading:
            return self.cache.get(m)

    # ----------------------------------------------------------------------------------------------------------------
    # Rendering

    def config(self, command: str, values: dict[str, Any], preview: bool):
        """The page's values → a validated config (the CLI's resolve path and messages), quiet, ``preview`` cut."""
        options = widgets.to_options(command, values)
        options["quiet"] = True
        check_weights(options, self.allowed)
        cfg = resolve(command, None, options, "the page's settings", loaded_model=None)
        if preview and command == STYLIZE:
            cfg = cfg.replace(max_frames=min(cfg.frames.max_frames or PREVIEW_FRAMES, PREVIEW_FRAMES))
        elif preview:
            cfg = cfg.replace(frames=min(cfg.frames.frames, PREVIEW_FRAMES))
        return cfg

    def render(self, command: str, session: str, values: dict[str, Any], preview: bool) -> Iterator[tuple]:
        """Yields the outputs' updates: progress while rendering, then (video, status, metrics, command, yaml,
        yaml file). A bad input raises ``gr.Error`` with the CLI's one-line message."""
        skip = gr.skip()
        source = values.pop("video", None) if command == STYLIZE else None
        with _user_errors():
            if command == STYLIZE and not source:
                raise UserError("no source video: upload one first")
            cfg = self.config(command, values, preview)
            out = output_name(self.out, "preview" if preview else command, cfg.sampling.seed)
            from ..pipelines.prepare import prepare_generate, prepare_stylize

            # a bad file fails here, before any model loads; the render takes what was prepared
            prep = prepare_stylize(source, out, cfg) if command == STYLIZE else prepare_generate(out, cfg)
        work = self._work(command, prep, source)
        progress = lambda line: (skip, line, skip, skip, skip, skip, skip, skip)  # noqa: E731
        cancelled = (None, "cancelled: nothing was written", None, None, "", "", None, None)
        result = yield from self._follow(session, work, progress, cancelled)
        if result is not None:
            yield (*self._finished(command, cfg, source, result), control_map(prep))

    def _follow(self, session: str, work: Callable, progress: Callable, cancelled: tuple):
        """Run ``work`` as ``session``'s render: yield ``progress(status line)`` per event, or ``cancelled`` once if
        it was cancelled; return its result (None when cancelled). Its error becomes the page's one-line error."""
        for status in self.renders.run(session, work):
            if not status.finished:
                yield progress(describe(status.event))
            elif isinstance(status.error, Cancelled):
                yield cancelled
                return None
            elif status.error is not None:
                with _user_errors():
                    raise status.error
            else:
                return status.result

    def _work(self, command: str, prep, source) -> Callable:
        def work(on_progress):
            models = self.models(prep.cfg.model)
            if command == STYLIZE:
                from ..pipelines.video_to_video import stylize

                return stylize(source, prep.output, models=models, on_progress=on_progress, prepared=prep)
            from ..pipelines.text_to_video import generate

            return generate(None, prep.output, models=models, on_progress=on_progress, prepared=prep)

        return work

    def _finished(self, command: str, cfg, source, res) -> tuple:
        from ..metrics import evaluate

        out = Path(res.output)
        table, plot = [["frames", str(res.frames)]], None
        if res.frames >= 2:
            table, plot = metric_views(evaluate(out, source))
        table.append(["seconds", f"{res.seconds:.1f}"])
        shown_source = Path(source).name if source else None
        cmd = widgets.command_line(cfg, shown_source, out.name)
        text = widgets.config_yaml(cfg)
        yaml_path = out.with_suffix(".yaml")
        yaml_path.write_text(text, encoding="utf-8")
        rate = res.frames / res.seconds if res.seconds > 0 else 0.0
        size = f"{res.size[0]}x{res.size[1]}"
        status = f"done: {out.name}, {res.frames} frames, {size}, {res.seconds:.1f} s ({rate:.2f} frames/s)"
        return (str(out), status, table, plot, cmd, text, str(yaml_path))

    def cancel(self, session: str) -> str:
        return "cancelling…" if self.renders.cancel(session) else "nothing is rendering"

    # ----------------------------------------------------------------------------------------------------------------
    # Batch

    def batch_from(self, values: dict[str, Any]) -> tuple[str, list[str] | None]:
        """A one-job file from the Stylise tab's settings, and the source video to go with it."""
        source = values.pop("video", None)
        with _user_errors():
            if not source:
                raise UserError("no source video on the Stylise tab: upload one first")
            cfg = resolve(STYLIZE, None, widgets.to_options(STYLIZE, values), "the Stylise tab's settings")
        name = Path(source).name
        jobs = {"defaults": widgets.changed(cfg), "jobs": [{"name": Path(name).stem, "mode": STYLIZE, "input": name,
                                                             "output": f"{Path(name).stem}-stylized.mp4"}]}  # fmt: skip
        return yaml.safe_dump(jobs, sort_keys=False, allow_unicode=True), [source]

    def batch(self, session: str, jobs_text: str, videos: list[str] | None) -> Iterator[tuple]:
        """Run a job file (text) over uploaded videos in a fresh folder under the output folder; yields (status,
        report rows, output files)."""
        from ..batch.run import run_batch

        skip = gr.skip()
        with _user_errors():
            folder = self._batch_folder(jobs_text, videos or [])
            try:
                from ..batch.jobs import load_jobs

                load_jobs(folder / "jobs.yaml", folder / "renders")  # the whole file checked before anything renders
            except UserError:
                shutil.rmtree(folder)  # nothing to keep
                raise
        work = lambda on_progress: run_batch(folder / "jobs.yaml", folder / "renders", None, True, on_progress)  # noqa: E731
        cancelled = ("cancelled: finished segments are kept in " + folder.name, None, None)
        rows = yield from self._follow(session, work, lambda line: (line, skip, skip), cancelled)
        if rows is None:
            return
        files = [str(p) for r in rows for p in [folder / "renders" / str(r.get("output", ""))] if p.is_file()]
        table = [[r.get("name"), r.get("status"), r.get("output"), r.get("frames"), r.get("seconds")] for r in rows]
        done = sum(r.get("status") == "done" for r in rows)
        yield (f"batch {folder.name}: {done}/{len(rows)} jobs done", table, files)

    def _batch_folder(self, jobs_text: str, videos: list[str]) -> Path:
        """Check a job file against what the page may do (inputs are uploaded files by name; weights as for a
        render) and lay it out with its videos in a folder of its own."""
        if not jobs_text or not jobs_text.strip():
            raise UserError("no job file: upload one or build one from the Stylise tab")
        try:
            data = yaml.safe_load(jobs_text)
        except yaml.YAMLError as exc:
            raise UserError(f"the job file is not plain YAML: {getattr(exc, 'problem', exc)}") from None
        if not isinstance(data, dict) or not isinstance(data.get("jobs"), list):
            raise UserError("the job file must hold jobs: [...] (and optionally defaults: {...})")
        uploads = {Path(v).name: Path(v) for v in videos}
        check_weights(data.get("defaults") or {}, self.allowed)
        for job in data["jobs"]:
            if not isinstance(job, dict):
                continue
            check_weights(job, self.allowed)
            if job.get("input") is not None:
                name = plain_name(str(job["input"]), "input")
                if name not in uploads:
                    raise UserError(f"input {name!r} is not among the uploaded videos; upload it with the job file")
        folder = output_name(self.out, "batch", 0, suffix="")
        folder.mkdir(parents=True)
        for name, path in uploads.items():
            shutil.copyfile(path, folder / name)
        (folder / "jobs.yaml").write_text(jobs_text, encoding="utf-8")
        return folder

    # ----------------------------------------------------------------------------------------------------------------
    # Evaluate

    def results(self) -> list[str]:
        """The videos in the output folder, newest first (what Evaluate can pick without an upload)."""
        from ..video.ffmpeg import CONTAINERS

        found = [p for p in self.out.rglob("*") if p.is_file() and p.suffix.lower() in CONTAINERS]
        return [str(p.relative_to(self.out)) for p in sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)]

    def evaluate(self, video: str | None, result: str | None, source: str | None, flow: str, max_frames):
        """Metrics of an uploaded video (or a result from the output folder) and its per-pair warp error and
        flicker as rows for the line plot."""

        from ..metrics import evaluate

        with _user_errors():
            if not video and result:
                path = (self.out / result).resolve()
                if not path.is_relative_to(self.out) or not path.is_file():
                    raise UserError(f"{result!r} is not a result in the output folder")
                video = str(path)
            if not video:
                raise UserError("no video: upload one or pick a result")
            opt = _EXTRA["eval_frames"]
            n = opt.coerce(int(max_frames) if max_frames else None)
            opt.check(n)
            _EXTRA["flow"].check(flow)
            m = evaluate(video, source or None, n, flow)
        return metric_views(m)


# --------------------------------------------------------------------------------------------------------------------
# The page


TEXT_FIRST = ("prompt", "negative_prompt", "prompt_at")  # full width, above the buttons


def _inputs(command: str, app: App, buttons: Callable[[], None]) -> dict[str, Any]:
    """The command's option components: the prompts, then ``buttons()``, the other main options two to a row, and
    every remaining option in an "Advanced" accordion; returns {name: component} (and the seed's dice button)."""
    models = list(PRESETS) + sorted(app.allowed - set(PRESETS))
    choices = {"model": models, "motion_adapter": list(MOTION_PRESETS)}
    values = {"model": app.model} if app.model else {}
    if command == GENERATE:  # the adapter generate derives for the page's first model, shown rather than left blank
        values["motion_adapter"] = default_motion(app.model)
    opts = widgets.shown(command)
    made: dict[str, Any] = {}

    def make(opt):
        made[opt.name] = widgets.component(opt, command, values.get(opt.name), choices.get(opt.name))

    main = [o for name in widgets.MAIN[command] for o in opts if o.name == name]
    for opt in main:
        if opt.name in TEXT_FIRST:
            make(opt)
    buttons()
    rest = [o for o in main if o.name not in TEXT_FIRST]
    for pair in (rest[i : i + 2] for i in range(0, len(rest), 2)):
        with gr.Row(equal_height=True):
            for opt in pair:
                make(opt)
                if opt.name == "seed":
                    made["_dice"] = gr.Button("New seed", scale=0, min_width=90, elem_id=f"{command}-dice")
    with gr.Accordion("Advanced", open=False):
        for opt in opts:
            if opt not in main:
                make(opt)
    return made


def _busy(running: bool) -> Callable[[], Any]:
    """The Cancel button's state while a render runs (clickable) and after (inert)."""
    return lambda: gr.Button(interactive=running)


def _dice() -> int:
    return random.randint(0, SEED_MAX)


def _render_tab(command: str, app: App) -> dict[str, Any]:
    made: dict[str, Any] = {}

    def buttons() -> None:
        with gr.Row():
            made["preview"] = gr.Button(f"Preview ({PREVIEW_FRAMES} frames)", elem_id=f"{command}-preview")
            verb = "Stylise" if command == STYLIZE else "Generate"
            made["run"] = gr.Button(verb, variant="primary", elem_id=f"{command}-run")
            # Grey and inert until a render runs (``_busy``): a bright Cancel with nothing to cancel invites a click.
            made["cancel"] = gr.Button("Cancel", variant="stop", elem_id=f"{command}-cancel", interactive=False)

    with gr.Row():
        with gr.Column(scale=1):
            video = gr.Video(label="source video", sources=["upload"], height=240) if command == STYLIZE else None
            inputs = _inputs(command, app, buttons)
        with gr.Column(scale=1):
            made["frame"] = gr.Image(label="preview frame (renders again as the settings change)", interactive=False,
                                     height=200, elem_id=f"{command}-frame")  # fmt: skip
            with gr.Row(equal_height=True):
                kinds = list(KINDS) if command == STYLIZE else [k for k in KINDS if k != "strengths"]
                made["kind"] = gr.Dropdown(kinds, value="seeds", label="variations of", elem_id=f"{command}-kind")
                made["count"] = gr.Slider(MIN_VARIANTS, MAX_VARIANTS, value=MIN_VARIANTS * 2, step=1, label="how many",
                                          elem_id=f"{command}-count")  # fmt: skip
                made["variations"] = gr.Button("Variations", scale=0, elem_id=f"{command}-variations")
            made["prompts"] = gr.Textbox(label="prompts to vary over (one per line)", lines=2, visible=True,
                                         elem_id=f"{command}-prompts")  # fmt: skip
            made["grid"] = gr.Gallery(label="variations: pick one to take its settings", columns=4, height=260,
                                      allow_preview=False, elem_id=f"{command}-grid")  # fmt: skip
            made["picks"] = gr.State([])
            status = gr.Markdown("", label="status", elem_id=f"{command}-status")
            result = gr.Video(label="result", interactive=False, elem_id=f"{command}-result", height=320)
            cmap = gr.Image(label="control map (first frame)", interactive=False, height=160,
                            elem_id=f"{command}-control-map")  # fmt: skip
            metrics = gr.Dataframe(headers=["metric", "value"], label="metrics", interactive=False)
            plot = gr.LinePlot(x="pair", y="value", color="metric", label="per frame pair", height=220)
            cmd = gr.Code(label="command", language="shell", interactive=False)
            text = gr.Code(label="config (YAML)", language="yaml", interactive=False)
            yaml_file = gr.File(label="config file", interactive=False)
    preview, run, cancel = made["preview"], made["run"], made["cancel"]
    dice = inputs.pop("_dice")
    if command == GENERATE:  # a new model gets the adapter that suits it (tiny with the toy models, else AnimateLCM)
        inputs["model"].change(default_motion, inputs=inputs["model"], outputs=inputs["motion_adapter"], queue=False,
                               api_visibility="private")  # fmt: skip
    dice.click(_dice, outputs=inputs["seed"], queue=False, api_visibility="private")
    kwargs = dict(inputs, **({"video": video} if video is not None else {}))
    outputs = [result, status, metrics, plot, cmd, text, yaml_file, cmap]

    def go(request: gr.Request, **values):
        yield from app.render(command, _session(request), values, preview=False)

    def quick(request: gr.Request, **values):
        yield from app.render(command, _session(request), values, preview=True)

    go, quick = widgets.optional_uploads(go, command), widgets.optional_uploads(quick, command)

    for button in (run, preview):
        button.click(_busy(True), outputs=cancel, queue=False, api_visibility="private")
    run.click(go, inputs_kwargs=kwargs, outputs=outputs, api_name=command, concurrency_id=RENDER_QUEUE,
              concurrency_limit=1, show_progress="minimal").then(
                  _busy(False), outputs=cancel, queue=False, api_visibility="private")  # fmt: skip
    preview.click(quick, inputs_kwargs=kwargs, outputs=outputs, api_name=f"{command}_preview",
                  concurrency_id=RENDER_QUEUE, concurrency_limit=1, show_progress="minimal").then(
                      _busy(False), outputs=cancel, queue=False, api_visibility="private")  # fmt: skip

    def stop(request: gr.Request) -> str:
        return app.cancel(_session(request))

    cancel.click(stop, outputs=status, queue=False, api_name=f"{command}_cancel")
    preview_events(command, app, made, inputs, kwargs)
    return kwargs


def _batch_tab(app: App, stylize_inputs: dict[str, Any]) -> None:
    with gr.Row():
        with gr.Column():
            upload = gr.File(label="job file (YAML)", file_types=[".yaml", ".yml"], type="filepath")
            jobs = gr.Code(label="jobs", language="yaml", interactive=True, value="")
            videos = gr.File(label="videos the jobs name", file_count="multiple", type="filepath")
            with gr.Row():
                build = gr.Button("Build from the Stylise tab")
                run = gr.Button("Run batch", variant="primary", elem_id="batch-run")
                cancel = gr.Button("Cancel", variant="stop")
        with gr.Column():
            status = gr.Markdown("", label="status")
            report = gr.Dataframe(headers=["job", "status", "output", "frames", "seconds"], label="report")
            files = gr.File(label="outputs", file_count="multiple", interactive=False)

    def read(path):
        return Path(path).read_text(encoding="utf-8") if path else ""

    upload.change(read, inputs=upload, outputs=jobs, api_visibility="private")
    build.click(lambda **v: app.batch_from(v), inputs_kwargs=stylize_inputs, outputs=[jobs, videos],
                api_visibility="private")  # fmt: skip

    def go(jobs_text: str, videos_in: list[str] | None, request: gr.Request):
        yield from app.batch(_session(request), jobs_text, videos_in)

    run.click(go, inputs=[jobs, videos], outputs=[status, report, files], api_name="batch",
              concurrency_id=RENDER_QUEUE, concurrency_limit=1, show_progress="minimal")  # fmt: skip

    def stop(request: gr.Request) -> str:
        return app.cancel(_session(request))

    cancel.click(stop, outputs=status, queue=False, api_name="batch_cancel")


def _eval_tab(app: App) -> None:
    with gr.Row():
        with gr.Column():
            video = gr.Video(label="video to measure", sources=["upload"])
            picks = ["", *app.results()]
            result = gr.Dropdown(
                label="or a result from the output folder", choices=picks, value="", allow_custom_value=True
            )
            refresh = gr.Button("Refresh results")
            source = gr.Video(label="source it was made from (optional)", sources=["upload"])
            flow = widgets.component(_EXTRA["flow"], EVAL)
            frames = widgets.component(_EXTRA["eval_frames"], EVAL)
            run = gr.Button("Measure", variant="primary")
        with gr.Column():
            averages = gr.Dataframe(headers=["metric", "value"], label="metrics", interactive=False)
            plot = gr.LinePlot(x="pair", y="value", color="metric", label="per frame pair", height=300)
    refresh.click(
        lambda: gr.Dropdown(choices=["", *app.results()]), outputs=result, queue=False, api_visibility="private"
    )

    def measure(video, result, source, flow, max_frames):
        return app.evaluate(video, result, source, flow, max_frames)

    run.click(measure, inputs=[video, result, source, flow, frames], outputs=[averages, plot], api_name="evaluate",
              concurrency_id="evaluate", concurrency_limit=2)  # fmt: skip


def _shown_path(path: Path) -> str:
    """``path`` as the person who started the server reads it: relative to where they ran it, else ``~/…``, else
    absolute."""
    for base, name in ((Path.cwd(), "./"), (Path.home(), "~/")):
        if path.is_relative_to(base):
            return name + str(path.relative_to(base))
    return str(path)


def build_app(out: str | Path = "lcm-video-ui", model: str | None = None, cache_size: int = 2) -> gr.Blocks:
    """The Blocks app (not launched). ``out``: where renders go (the only folder it serves); ``model``: the model
    selected at first (a local path given here may be named in the page; no other may)."""
    app = App(out, model, cache_size)
    with gr.Blocks(title="lcm-video") as demo:
        gr.Markdown(f"## lcm-video {__version__}\nFast, flicker-free video synthesis with Latent Consistency Models. "
                    f"Renders go to `{_shown_path(app.out)}`.")  # fmt: skip
        with gr.Tabs():
            with gr.Tab("Stylise", id=STYLIZE):
                stylize_inputs = _render_tab(STYLIZE, app)
            with gr.Tab("Generate", id=GENERATE):
                _render_tab(GENERATE, app)
            with gr.Tab("Live", id="live"):
                live_tab(app)
            with gr.Tab("Batch", id="batch"):
                _batch_tab(app, stylize_inputs)
            with gr.Tab("Evaluate", id=EVAL):
                _eval_tab(app)

        def closed(request: gr.Request) -> None:  # a page closed or reloaded: its live run ends, its recording kept
            app.live.stop(_session(request))

        demo.unload(closed)
    demo.lcm_app = app  # for tests and embedding: the cache and output folder
    return demo


def launch(host: str, port: int, model: str | None, out: str, max_upload_mb: int, share: bool) -> None:
    """Build and serve the app until interrupted; one render at a time, others queued."""
    os.environ.setdefault("GRADIO_HEARTBEAT_INTERVAL", "2")  # a closed page's live run ends in 2 s, not 15
    demo = build_app(out, model)
    demo.queue(default_concurrency_limit=1)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"lcm-video: warning: serving on {host}: other machines can reach this page (it has no login)",
              file=sys.stderr)  # fmt: skip
    try:
        demo.launch(
            server_name=host,
            server_port=port,
            share=share,
            allowed_paths=[str(demo.lcm_app.out)],
            max_file_size=f"{max_upload_mb}mb",
            show_error=True,
            inbrowser=False,
            quiet=True,  # Gradio's own lines name launch(share=True); a command-line user needs --share
            prevent_thread_lock=True,
        )
    except OSError as exc:
        raise UserError(f"cannot serve on {host}:{port} ({exc.strerror or exc}); pick another with --port N") from None
    public = f"; public link: {demo.share_url}" if demo.share_url else " (--share for a public link)"
    print(f"lcm-video: serving on {demo.local_url}{public}; Ctrl+C stops", file=sys.stderr)
    try:
        demo.block_thread()
    finally:
        demo.close()


__all__ = ["App", "build_app", "launch"]
