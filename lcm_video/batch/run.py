"""Running a batch: each process renders its share of the pending units (loading each model once), the main process
assembles finished jobs and writes the report.

Frames do not depend on the process count or on resumption: a segment that starts cold re-renders a few frames
before its start (discarded) to rebuild the blending state, which it can because a frame's noise depends only on
the seed and its index.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..events import Cancelled, OnProgress, Progress, default_progress
from ..files import write_json
from ..options import GENERATE, STYLIZE
from ..pipelines.loader import ModelCache
from ..record import make_record
from ..video.lock import OutputLock
from .jobs import Job, load_jobs
from .work import JobPlan, pending_units, plan_job, prepare_work, seg_name


def segment_frames(plan: JobPlan, models, seg: tuple[int, int]) -> Iterator[tuple[range, Any]]:
    """Render output frames ``seg`` of a job, warming up before a cold start; yields (frames, uint8 chunk)."""
    from ..pipelines.text_to_video import ClipGenerator, generated_frames
    from ..pipelines.video_to_video import Stylizer, source_map, stylized_frames
    from ..pipelines.window import window_layout
    from ..video.reader import FrameReader

    prep, cfg = plan.prep, plan.job.cfg
    if plan.job.mode == GENERATE:
        gen = ClipGenerator(models, cfg, prep.size, prep.prompts, prep.control)
        yield from generated_frames(gen, window_layout(models, cfg, plan.frames), plan.frames, *seg)
        return
    fmap = source_map(cfg, prep)
    layout = window_layout(models, cfg, fmap.rendered)
    stylizer = Stylizer(
        models, cfg, min(layout.size, fmap.rendered), prep.prompts, prep.strengths, prep.size, prep.control,
        control_cache=plan.work / "control",
    )  # fmt: skip
    reader = FrameReader(prep.info, prep.size)
    try:
        yield from stylized_frames(stylizer, reader, prep, fmap, layout, *seg)
    finally:
        reader.close()


def write_segment(plan: JobPlan, k: int, cache: ModelCache, rank: int, progress: Progress) -> None:
    """Render segment ``k`` of a job to its lossless file; on failure leave a ``.failed`` marker with the reason.
    A :class:`Cancelled` from the progress callback is not a failure: the segment is dropped and it propagates."""
    from ..pipelines.shell import write_frames
    from ..video.writer import VideoWriter

    seg = plan.segments[k]
    stem = plan.work / seg_name(seg)
    t0 = time.perf_counter()
    try:
        models = cache.get(plan.job.cfg.model)
        writer = VideoWriter(stem.with_suffix(".mkv"), plan.size, plan.fps, lossless=True)
        write_frames(writer, segment_frames(plan, models, seg), progress, plan.job.name)
    except Cancelled:
        raise
    except Exception as exc:  # isolate the job: record, report, carry on with the others
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if not isinstance(exc, UserError):
            msg = f"{type(exc).__name__}: {msg}"
            traceback.print_exc(file=sys.stderr)
        stem.with_suffix(".failed").write_text(msg)
        return
    meta = {"frames": seg[1] - seg[0], "seconds": time.perf_counter() - t0, "rank": rank, "ran": models.runtime}
    write_json(stem.with_suffix(".json"), meta)
    with open(plan.work / "renders.log", "a") as log:  # one line per render, to show each unit ran once
        log.write(f"{seg_name(seg)} {rank}\n")


# --------------------------------------------------------------------------------------------------------------------
# Assembly and report (main process).


def finish_job(plan: JobPlan) -> dict:
    """Assemble a job whose segments are all done, or report why not. Returns its report row."""
    from ..video.writer import assemble

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
    metas = [plan.work / f"{seg_name(s)}.json" for s in plan.segments]
    if not all(m.exists() for m in metas):
        row["error"] = "not all segments were rendered; run the same command again to resume"
        return row
    t0 = time.perf_counter()
    o = job.cfg.output
    audio = job.mode == STYLIZE and o.audio and job.input.is_file()  # an image sequence has none
    ran = []  # what each segment computed on, once each: several machines may differ (say, in --dtype auto)
    for meta in metas:
        seg_ran = json.loads(meta.read_text()).get("ran")
        if seg_ran and seg_ran not in ran:
            ran.append(seg_ran)
    if len(ran) > 1:
        kinds = "; ".join(f"{r['device']} {r['dtype']} ({r['backend']})" for r in ran)
        print(
            f"lcm-video: warning: {job.name}: its segments ran on {kinds}: frames may differ at their seams; "
            "pass --device, --dtype and --backend to pin them",
            file=sys.stderr,
        )
    record = make_record(job.mode, job.cfg.flat(), job.input, ran)
    try:
        assemble(
            [plan.work / f"{seg_name(s)}.mkv" for s in plan.segments],
            job.output,
            plan.size,
            plan.fps,
            codec=o.codec,
            crf=o.crf,
            preset=o.preset,
            audio_from=job.input if audio else None,
            audio_start=plan.start,
            audio_duration=float(plan.duration),
            record=record,
            times=plan.pts,
        )
    except UserError as exc:
        row["error"] = str(exc)
        return row
    if o.metrics:
        from ..metrics import write_metrics

        write_metrics(job.output, job.input)
    seconds = sum(json.loads(m.read_text())["seconds"] for m in metas) + time.perf_counter() - t0
    write_json(done, {"seconds": seconds})
    for seg in plan.segments:  # the output is complete: segments are no longer needed
        (plan.work / f"{seg_name(seg)}.mkv").unlink(missing_ok=True)
    return row | {"status": "done", "frames": plan.frames, "seconds": round(seconds, 3), "record": record}


# --------------------------------------------------------------------------------------------------------------------
# The command.


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C during a batch: finished segments stay on disk; ``message`` says how many, for the command line."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def run_batch(
    job_file: str | os.PathLike,
    out: str | os.PathLike,
    segment_frames: int | None = None,
    quiet: bool = False,
    on_progress: OnProgress | None = None,
) -> list[dict]:
    """Render every job of ``job_file`` under ``out``; returns the report rows (also in ``out/report.json``).

    Under ``accelerate launch`` / ``torchrun`` every process runs this; units are split with accelerate's
    ``PartialState.split_between_processes`` and the main process assembles and reports. ``on_progress`` gets
    :class:`ProgressEvent`s with ``job`` set, counting this process's frames (default: progress bars on the main
    process unless ``quiet``); raising :class:`Cancelled` from it stops this process within one window, keeping
    finished segments for a later resume.
    """
    from accelerate import PartialState

    out_dir = Path(out).resolve()
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {str(out)!r} is a file; give a folder")
    jobs = load_jobs(job_file, out_dir, segment_frames)
    cpu = all(j.cfg.model.device == "cpu" for j in jobs) or not _accelerator_available()
    state = PartialState(cpu=cpu)
    # One batch per --out: the main process holds the folder's lock for the run (if it refuses, torchrun/accelerate
    # stop the other processes), so a second run cannot delete this one's temporary files as stale.
    lock = OutputLock(out_dir, "folder") if state.is_main_process else contextlib.nullcontext()
    with lock:
        return _run_batch(state, jobs, out_dir, quiet, on_progress)


def _run_batch(state, jobs: list[Job], out_dir: Path, quiet: bool, on_progress: OnProgress | None) -> list[dict]:
    state.wait_for_everyone()
    plans = [plan_job(j, out_dir) for j in jobs]
    if state.is_main_process:
        prepare_work(plans)
    state.wait_for_everyone()
    units = pending_units(plans)
    cache = ModelCache(device=str(state.device))
    rows: list[dict] = []
    with state.split_between_processes(units) as mine:
        total = sum(plans[i].segments[k][1] - plans[i].segments[k][0] for i, k in mine)
    no_bar = quiet or not state.is_main_process
    with default_progress(on_progress, "all jobs", no_bar) as callback:
        progress = Progress(callback, total)
        progress.emit("load")
        try:
            for i, k in mine:
                write_segment(plans[i], k, cache, state.process_index, progress)
        except KeyboardInterrupt:
            kept = sum(len(p.segments) for p in plans if not p.error) - len(pending_units(plans))
            raise BatchInterrupted(
                f"interrupted; {kept} finished segment(s) kept in {str(out_dir)!r}: run the same command to resume"
            ) from None
        state.wait_for_everyone()
        if state.is_main_process:
            for p in plans:
                progress.emit("assemble", job=p.job.name)
                rows.append(finish_job(p))
            write_json(out_dir / "report.json", {"jobs": rows})
            progress.emit("done")
    if state.is_main_process:
        for r in rows:  # failures are reported even with --quiet
            if r["status"] != "done" or not quiet:
                what = f"{r['frames']} frames in {r['seconds']:.1f} s" if r["status"] == "done" else r["error"]
                print(f"{r['status']:6s} {r['name']}: {what}", file=sys.stderr)
    state.wait_for_everyone()
    if not state.is_main_process:
        rows = json.loads((out_dir / "report.json").read_text())["jobs"]
    return rows


def _accelerator_available() -> bool:
    import torch

    return torch.cuda.is_available()


__all__ = ["Job", "load_jobs", "run_batch"]
