"""Offline batch rendering: a job file of many renders, cut into segments (units of work), resumable after a crash,
split across processes with accelerate, assembled and reported by one process.

Work folder layout, inside ``--out`` (``OUT/.lcm-video-work/NAME/``):

    job.json                      fingerprint of the job's settings and input; a mismatch discards the folder
    seg_000000_000120.mkv         a finished segment: lossless RGB frames [0, 120) (renamed into place when complete)
    seg_000000_000120.json        written after the .mkv: frames, seconds, process rank
    seg_000000_000120.failed      the unit failed: the one-line error
    done.json                     the output was assembled

A unit is done when its .json exists, so a run killed at any moment (even with kill -9) resumes by skipping those.
Frames do not depend on the process count or on resumption: a segment that starts cold re-renders a few frames
before its start (discarded) to rebuild the blending state, which it can because a frame's noise depends only on
the seed and its index.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from fractions import Fraction
from itertools import groupby
from pathlib import Path
from typing import Any

from .config import (
    GenerateConfig,
    StylizeConfig,
    load_yaml,
    make_config,
    validate,
)
from .errors import UserError

WORK = ".lcm-video-work"
MODES = ("stylize", "generate")
JOB_KEYS = ("name", "mode", "input", "output", "segment_frames")
DEFAULT_SEGMENT_FRAMES = 240
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


@dataclass(frozen=True)
class Job:
    """One validated job: its config, resolved input path, output path inside ``--out`` and segment length."""

    index: int
    name: str
    mode: str
    cfg: StylizeConfig | GenerateConfig
    input: Path | None
    output: Path
    segment_frames: int

    @property
    def model_key(self) -> tuple:
        c = self.cfg
        return (c.model or "", tuple(c.lora), c.vae or "", c.fast, c.motion_adapter or "", c.dtype, c.compile)


# --------------------------------------------------------------------------------------------------------------------
# The job file.


def _mode_fields(mode: str) -> set[str]:
    return {f.name for f in fields(StylizeConfig if mode == "stylize" else GenerateConfig)}


def load_jobs(path: str | os.PathLike, out: str | os.PathLike, segment_frames: int | None = None) -> list[Job]:
    """Read and check a whole job file before anything renders; every problem is listed with its job and key."""
    from .sampler import LCMSchedule
    from .text_to_video import resolve_generate_config

    data = load_yaml(path)
    base = Path(path).resolve().parent
    out_dir = Path(out).resolve()
    problems: list[str] = []
    unknown_top = set(data) - {"defaults", "jobs"}
    if unknown_top:
        problems.append(f"{path}: unknown top-level keys {sorted(unknown_top)}; use defaults: and jobs:")
    defaults = data.get("defaults") or {}
    entries = data.get("jobs")
    if not isinstance(defaults, dict):
        problems.append(f"{path}: defaults must be a mapping of option: value")
        defaults = {}
    defaults = {str(k).replace("-", "_"): v for k, v in defaults.items()}
    if not isinstance(entries, list) or not entries:
        raise UserError(f"{path}: needs a non-empty list under jobs:")
    all_fields = _mode_fields("stylize") | _mode_fields("generate") | set(JOB_KEYS) - {"name", "output", "input"}
    for key in defaults:
        if key not in all_fields:
            problems.append(f"defaults: unknown key {key!r}")

    jobs: list[Job] = []
    names: dict[str, int] = {}
    outputs: dict[Path, str] = {}
    for i, entry in enumerate(entries):
        label = f"job #{i + 1}"
        if not isinstance(entry, dict):
            problems.append(f"{label}: must be a mapping of key: value")
            continue
        entry = {str(k).replace("-", "_"): v for k, v in entry.items()}
        name = str(entry.get("name", ""))
        label = f"job #{i + 1} {name!r}" if name else label
        mode = str(entry.get("mode", "stylize"))
        if mode not in MODES:
            problems.append(f"{label}: mode must be stylize or generate, got {mode!r}")
            continue
        allowed = _mode_fields(mode)
        values = {k: v for k, v in defaults.items() if k in allowed}
        # a job's own key, else the command line's --segment-frames, else the file's defaults
        seg = entry.get(
            "segment_frames", segment_frames if segment_frames is not None else defaults.get("segment_frames")
        )
        for key, value in entry.items():
            if key in JOB_KEYS:
                continue
            if key not in allowed:
                problems.append(f"{label}: unknown key {key!r} for mode {mode}; valid: {', '.join(sorted(allowed))}")
                continue
            values[key] = value
        if not name:
            problems.append(f"{label}: needs a name")
        elif not _NAME.match(name) or ".." in name:
            problems.append(f"{label}: name must be letters, digits, '_', '-' or '.' (no '..', no '/')")
        elif name in names:
            problems.append(f"{label}: duplicate name (also job #{names[name] + 1})")
        names.setdefault(name, i)
        output = entry.get("output")
        out_path = None
        if not output:
            problems.append(f"{label}: needs an output file name")
        else:
            rel = Path(str(output))
            if rel.is_absolute() or ".." in rel.parts:
                problems.append(f"{label}: output {str(output)!r} must be a relative path inside --out, without '..'")
            else:
                out_path = (out_dir / rel).resolve()
                if out_path in outputs:
                    problems.append(f"{label}: output {str(output)!r} is also the output of job {outputs[out_path]!r}")
                outputs.setdefault(out_path, name)
        in_path = None
        if mode == "stylize":
            if not entry.get("input"):
                problems.append(f"{label}: stylize needs an input video")
            else:
                in_path = (base / str(entry["input"])).resolve()
                if not in_path.is_file():
                    problems.append(f"{label}: input {str(entry['input'])!r} not found (relative to the job file)")
        elif entry.get("input"):
            problems.append(f"{label}: generate takes no input")
        try:
            seg_n = int(seg) if seg is not None else DEFAULT_SEGMENT_FRAMES
            if seg_n < 1:
                raise ValueError
        except (TypeError, ValueError):
            problems.append(f"{label}: segment_frames must be a whole number >= 1, got {seg!r}")
            seg_n = DEFAULT_SEGMENT_FRAMES
        try:
            if mode == "stylize":
                if "prompt" not in values:
                    raise UserError("needs a prompt")
                cfg = validate(make_config(StylizeConfig, values, "the job"))
                LCMSchedule.from_scheduler(_default_scheduler(), cfg.steps, cfg.strength)
            else:
                if "prompt" not in values and "prompt_at" not in values:
                    raise UserError("needs a prompt")
                cfg = resolve_generate_config(None, None, values)
            if out_path is not None:
                _check_output_name(out_path, cfg.codec)
        except UserError as exc:
            problems.append(f"{label}: {exc}")
            continue
        if out_path is not None and name and not problems_for(problems, label):
            jobs.append(Job(i, name, mode, cfg, in_path, out_path, seg_n))
    if problems:
        raise UserError(f"{path}: {len(problems)} problem(s):\n  " + "\n  ".join(problems))
    return jobs


def problems_for(problems: list[str], label: str) -> bool:
    return any(p.startswith(label + ":") for p in problems)


def _default_scheduler():
    from diffusers import LCMScheduler

    return LCMScheduler()


def _check_output_name(path: Path, codec: str) -> None:
    from .writer import CONTAINERS, encoders

    if path.suffix.lower() not in CONTAINERS:
        raise UserError(f"output {path.name!r} needs a video extension: one of {', '.join(sorted(CONTAINERS))}")
    if codec not in encoders():
        raise UserError(f"codec {codec!r} is not an encoder of this ffmpeg; try libx264")


# --------------------------------------------------------------------------------------------------------------------
# Planning: every process computes the same plan, so they agree on the units without talking.


@dataclass(frozen=True)
class JobPlan:
    """A job with its frame plan, size, work folder and segments; ``error`` if it could not be planned."""

    job: Job
    work: Path
    frames: int = 0
    fps: Fraction = Fraction(1)
    size: tuple[int, int] = (0, 0)
    start: float = 0.0
    segments: tuple[tuple[int, int], ...] = ()
    fingerprint: str = ""
    error: str | None = None


def _fingerprint(job: Job) -> str:
    def plain(v):
        return str(v) if isinstance(v, Fraction) else v

    payload = {k: plain(v) for k, v in asdict(job.cfg).items() if k != "quiet"}
    payload |= {"mode": job.mode, "segment_frames": job.segment_frames, "output": str(job.output)}
    if job.input is not None:
        st = job.input.stat()
        payload |= {"input": str(job.input), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def plan_job(job: Job, out_dir: Path) -> JobPlan:
    from .plan import FramePlan
    from .reader import output_size, probe
    from .video_to_video import plan_video

    work = out_dir / WORK / job.name
    try:
        if job.mode == "stylize":
            info = probe(job.input)
            plan = plan_video(info, job.cfg)
            size = output_size(info, job.cfg.width, job.cfg.height)
            start = float(plan.start)
        else:
            plan = FramePlan.for_clip(job.cfg.frames, job.cfg.fps)
            size, start = (job.cfg.width, job.cfg.height), 0.0
    except UserError as exc:
        return JobPlan(job, work, error=str(exc))
    n, seg = len(plan), job.segment_frames
    segments = tuple((s, min(n, s + seg)) for s in range(0, n, seg))
    return JobPlan(job, work, n, plan.fps, size, start, segments, _fingerprint(job))


def _seg_name(seg: tuple[int, int]) -> str:
    return f"seg_{seg[0]:06d}_{seg[1]:06d}"


def _write_json(path: Path, data: dict) -> None:
    """Atomically: a reader sees the old file or the whole new one."""
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)


def prepare_work(plans: list[JobPlan]) -> None:
    """Main process, before the split: discard work folders of changed jobs, stale temporaries and old failures."""
    for p in plans:
        if p.error:
            continue
        meta = p.work / "job.json"
        if meta.exists():
            try:
                same = json.loads(meta.read_text()).get("fingerprint") == p.fingerprint
            except (OSError, ValueError):
                same = False
            if not same:
                shutil.rmtree(p.work)
        if (p.work / "done.json").exists() and not p.job.output.exists():
            (p.work / "done.json").unlink()
        p.work.mkdir(parents=True, exist_ok=True)
        for stale in [*p.work.glob("*.partial"), *p.work.glob("*.failed"), *p.work.glob("*.tmp")]:
            stale.unlink(missing_ok=True)
        _write_json(meta, {"name": p.job.name, "fingerprint": p.fingerprint})


def pending_units(plans: list[JobPlan]) -> list[tuple[int, int]]:
    """(plan index, segment index) of every unit still to render, grouped by model so each process loads each
    model once."""
    units = []
    for i, p in enumerate(plans):
        if p.error or (p.work / "done.json").exists():
            continue
        for k, seg in enumerate(p.segments):
            if not (p.work / f"{_seg_name(seg)}.json").exists():
                units.append((i, k))
    return sorted(units, key=lambda u: (plans[u[0]].job.model_key, u))


# --------------------------------------------------------------------------------------------------------------------
# Rendering one unit.


class ModelCache:
    """One loaded model at a time per process; units arrive grouped by model, so each loads once."""

    def __init__(self, device: str):
        self.device, self.key, self.models, self.loads = device, None, None, 0

    def get(self, job: Job):
        from .models import models_for

        if job.model_key != self.key:
            self.models = None  # free the previous model before loading the next
            c = job.cfg
            device = c.device if c.device != "auto" else self.device
            self.models = models_for(c, device=device)
            self.key = job.model_key
            self.loads += 1
        return self.models


def segment_frames(plan: JobPlan, models, seg: tuple[int, int]) -> Iterator[tuple[range, Any]]:
    """Render output frames ``seg`` of a job, warming up before a cold start; yields (frames, uint8 chunk)."""
    from .reader import probe
    from .render import render_range, warmup_frames, window_layout
    from .text_to_video import ClipGenerator
    from .video_to_video import SourceRender, plan_video

    job, cfg = plan.job, plan.job.cfg
    if job.mode == "generate":
        size_w, overlap = window_layout(models, cfg, plan.frames)
        warm = warmup_frames(cfg.blend, size_w, overlap)
        gen = ClipGenerator(models, cfg, plan.size)
        yield from render_range(lambda w, e: gen(w.indices, e), seg[0], seg[1], size_w, overlap, warm)
        return
    info = probe(job.input)
    source = SourceRender(models, cfg, info, plan_video(info, cfg), plan.size)
    try:
        yield from source.frames(seg[0], seg[1])
    finally:
        source.close()


def render_unit(plan: JobPlan, k: int, cache: ModelCache, rank: int, bar=None) -> None:
    """Render segment ``k`` of a job to its lossless file; on failure leave a ``.failed`` marker with the reason."""
    from .writer import VideoWriter

    seg = plan.segments[k]
    stem = plan.work / _seg_name(seg)
    t0 = time.perf_counter()
    try:
        models = cache.get(plan.job)
        writer = VideoWriter(stem.with_suffix(".mkv"), plan.size, plan.fps, lossless=True)
        with writer:
            for done, frames in segment_frames(plan, models, seg):
                writer.write(frames)
                if bar is not None:
                    bar.update(len(done))
            writer.close()
    except Exception as exc:  # isolate the job: record, report, carry on with the others
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if not isinstance(exc, UserError):
            msg = f"{type(exc).__name__}: {msg}"
            traceback.print_exc(file=sys.stderr)
        stem.with_suffix(".failed").write_text(msg)
        return
    _write_json(
        stem.with_suffix(".json"), {"frames": seg[1] - seg[0], "seconds": time.perf_counter() - t0, "rank": rank}
    )
    with open(plan.work / "renders.log", "a") as log:  # one line per render, to show each unit ran once
        log.write(f"{_seg_name(seg)} {rank}\n")


# --------------------------------------------------------------------------------------------------------------------
# Assembly and report (main process).


def finish_job(plan: JobPlan) -> dict:
    """Assemble a job whose segments are all done, or report why not. Returns its report row."""
    from .writer import assemble

    job = plan.job
    row = {"name": job.name, "mode": job.mode, "status": "failed", "output": str(job.output), "frames": 0}
    row |= {"seconds": 0.0, "error": None}
    if plan.error:
        row["error"] = plan.error
        return row
    done = plan.work / "done.json"
    if done.exists() and job.output.exists():
        prev = json.loads(done.read_text())
        return row | {"status": "done", "frames": plan.frames, "seconds": prev.get("seconds", 0.0)}
    failed = sorted(plan.work.glob("*.failed"))
    if failed:
        row["error"] = failed[0].read_text().strip()
        return row
    metas = [plan.work / f"{_seg_name(s)}.json" for s in plan.segments]
    if not all(m.exists() for m in metas):
        row["error"] = "not all segments were rendered; run the same command again to resume"
        return row
    t0 = time.perf_counter()
    cfg = job.cfg
    audio = job.mode == "stylize" and cfg.audio
    try:
        job.output.parent.mkdir(parents=True, exist_ok=True)
        assemble(
            [plan.work / f"{_seg_name(s)}.mkv" for s in plan.segments],
            job.output,
            plan.size,
            plan.fps,
            codec=cfg.codec,
            crf=cfg.crf,
            preset=cfg.preset,
            audio_from=job.input if audio else None,
            audio_start=plan.start,
            audio_duration=float(plan.frames / plan.fps),
        )
    except UserError as exc:
        row["error"] = str(exc)
        return row
    if cfg.metrics:
        from .metrics import write_metrics

        write_metrics(job.output, job.input)
    seconds = sum(json.loads(m.read_text())["seconds"] for m in metas) + time.perf_counter() - t0
    _write_json(done, {"seconds": seconds})
    for seg in plan.segments:  # the output is complete: segments are no longer needed
        (plan.work / f"{_seg_name(seg)}.mkv").unlink(missing_ok=True)
    return row | {"status": "done", "frames": plan.frames, "seconds": round(seconds, 3)}


# --------------------------------------------------------------------------------------------------------------------
# The command.


def run_batch(
    job_file: str | os.PathLike, out: str | os.PathLike, segment_frames: int | None = None, quiet: bool = False
) -> list[dict]:
    """Render every job of ``job_file`` under ``out``; returns the report rows (also in ``out/report.json``).

    Under ``accelerate launch`` / ``torchrun`` every process runs this; units are split with accelerate's
    ``PartialState.split_between_processes`` and the main process assembles and reports.
    """
    from accelerate import PartialState
    from tqdm.auto import tqdm

    out_dir = Path(out).resolve()
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {str(out)!r} is a file; give a folder")
    jobs = load_jobs(job_file, out_dir, segment_frames)
    cpu = all(j.cfg.device == "cpu" for j in jobs) or not _accelerator_available()
    state = PartialState(cpu=cpu)
    if state.is_main_process:
        out_dir.mkdir(parents=True, exist_ok=True)
    state.wait_for_everyone()
    plans = [plan_job(j, out_dir) for j in jobs]
    if state.is_main_process:
        prepare_work(plans)
    state.wait_for_everyone()
    units = pending_units(plans)
    cache = ModelCache(str(state.device))
    with state.split_between_processes(units) as mine:
        show = state.is_main_process and not quiet
        total = sum(plans[i].segments[k][1] - plans[i].segments[k][0] for i, k in mine)
        overall = tqdm(total=total, unit="frame", desc="all jobs", file=sys.stderr, disable=not show, position=0)
        with overall:
            for i, group in groupby(mine, key=lambda u: u[0]):  # a job's units are contiguous
                segs = [k for _, k in group]
                frames = sum(plans[i].segments[k][1] - plans[i].segments[k][0] for k in segs)
                job_bar = tqdm(
                    total=frames, unit="frame", desc=plans[i].job.name, file=sys.stderr, disable=not show, position=1
                )
                with job_bar:
                    for k in segs:
                        render_unit(plans[i], k, cache, state.process_index, _Both(overall, job_bar))
    state.wait_for_everyone()
    rows: list[dict] = []
    if state.is_main_process:
        rows = [finish_job(p) for p in plans]
        _write_json(out_dir / "report.json", {"jobs": rows})
        for r in rows:  # failures are reported even with --quiet
            if r["status"] != "done" or not quiet:
                what = f"{r['frames']} frames in {r['seconds']:.1f} s" if r["status"] == "done" else r["error"]
                print(f"{r['status']:6s} {r['name']}: {what}", file=sys.stderr)
    state.wait_for_everyone()
    if not state.is_main_process:
        rows = json.loads((out_dir / "report.json").read_text())["jobs"]
    return rows


class _Both:
    """Advance two progress bars at once."""

    def __init__(self, *bars):
        self.bars = bars

    def update(self, n: int) -> None:
        for b in self.bars:
            b.update(n)


def _accelerator_available() -> bool:
    import torch

    return torch.cuda.is_available()


__all__ = ["Job", "load_jobs", "run_batch"]
