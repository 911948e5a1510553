"""Running a batch: the pending units (segments) are rendered by this process (``local``), by each process of a
torchrun/accelerate launch its static share (``torchrun``), or by Ray actors as they free up (``ray``,
``ray_engine.py``); the main process (the driver) assembles finished jobs and writes the report. Array jobs render
the segments of a written plan instead (``manifest.py``).

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
from pathlib import Path

from ..choices import ENGINES
from ..errors import UserError
from ..events import OnProgress, Progress, default_progress
from ..files import write_json
from ..options import STYLIZE
from ..pipelines.loader import ModelCache
from ..record import make_record
from ..video.lock import OutputLock
from .jobs import Job, load_jobs
from .segment import write_segment
from .work import JobPlan, out_folder, pending_units, plan_job, prepare_work, seg_name

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
    seg_metas = [json.loads(m.read_text()) for m in metas]
    for meta in seg_metas:
        if meta.get("ran") and meta["ran"] not in ran:
            ran.append(meta["ran"])
    rendered = {
        "engine": "+".join(sorted({m.get("engine", "local") for m in seg_metas})),
        "workers": len({m.get("worker") for m in seg_metas}),
    }
    if len(ran) > 1:
        kinds = "; ".join(f"{r['device']} {r['dtype']} ({r['backend']})" for r in ran)
        print(
            f"lcm-video: warning: {job.name}: its segments ran on {kinds}: frames may differ at their seams; "
            "pass --device, --dtype and --backend to pin them",
            file=sys.stderr,
        )
    record = make_record(job.mode, job.cfg.flat(), job.input, ran, rendered)
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
    seconds = sum(m["seconds"] for m in seg_metas) + time.perf_counter() - t0
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
    engine: str | None = None,
    address: str | None = None,
    workers: int | None = None,
) -> list[dict]:
    """Render every job of ``job_file`` under ``out``; returns the report rows (also in ``out/report.json``).

    ``engine`` (default: ``torchrun`` under a launcher, else ``local``): ``local`` renders in this process;
    ``torchrun``: every process of an ``accelerate launch`` / ``torchrun`` runs this, units are split with
    accelerate's ``PartialState.split_between_processes`` and the main process assembles and reports; ``ray``:
    ``workers`` Ray actors on the cluster at ``address`` take units as they free up (``ray_engine.py``).
    ``on_progress`` gets :class:`ProgressEvent`s with ``job`` set, counting this process's frames (default: progress
    bars on the main process unless ``quiet``); raising :class:`Cancelled` from it stops this process within one
    window, keeping finished segments for a later resume.
    """
    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1
    engine = engine or ("torchrun" if launched else "local")
    if engine not in ENGINES:
        raise UserError(f"--engine {engine!r} is not one of {', '.join(ENGINES)}")
    if launched and engine != "torchrun":
        raise UserError(f"--engine {engine} under torchrun/accelerate launch: run it without the launcher")
    if engine != "ray" and (address or workers):
        raise UserError("--address and --workers are for --engine ray")
    if engine == "ray":
        from .ray_engine import preflight

        preflight(address)  # before anything is written: a missing extra or a dead address is one line
    out_dir = out_folder(out)
    jobs = load_jobs(job_file, out_dir, segment_frames)
    if engine == "ray":
        with OutputLock(out_dir, "folder"):
            return _run_ray(jobs, out_dir, quiet, on_progress, address, workers)
    state = None
    if engine == "torchrun":
        from accelerate import PartialState

        state = PartialState(cpu=all(j.cfg.model.device == "cpu" for j in jobs) or not _accelerator_available())
    # One batch per --out: the main process holds the folder's lock for the run (if it refuses, torchrun/accelerate
    # stop the other processes), so a second run cannot delete this one's temporary files as stale.
    main = state is None or state.is_main_process
    lock = OutputLock(out_dir, "folder") if main else contextlib.nullcontext()
    with lock:
        return _run_batch(state, jobs, out_dir, quiet, on_progress)


def _interrupted(plans: list[JobPlan], out_dir: Path) -> BatchInterrupted:
    kept = sum(len(p.segments) for p in plans if not p.error) - len(pending_units(plans))
    return BatchInterrupted(
        f"interrupted; {kept} finished segment(s) kept in {str(out_dir)!r}: run the same command to resume"
    )


def report(plans: list[JobPlan], out_dir: Path, progress: Progress, quiet: bool) -> list[dict]:
    """Assemble every job whose segments are done, write ``out_dir/report.json`` and print a line per job (failures
    even when ``quiet``); returns the rows."""
    rows = []
    for p in plans:
        progress.emit("assemble", job=p.job.name)
        rows.append(finish_job(p))
    write_json(out_dir / "report.json", {"jobs": rows})
    progress.emit("done")
    for r in rows:
        if r["status"] != "done" or not quiet:
            what = f"{r['frames']} frames in {r['seconds']:.1f} s" if r["status"] == "done" else r["error"]
            print(f"{r['status']:6s} {r['name']}: {what}", file=sys.stderr)
    return rows


def _units_frames(plans: list[JobPlan], units: list[tuple[int, int]]) -> int:
    return sum(plans[i].segments[k][1] - plans[i].segments[k][0] for i, k in units)


def _run_ray(jobs, out_dir: Path, quiet: bool, on_progress, address, workers) -> list[dict]:
    from .ray_engine import render_on_ray

    plans = [plan_job(j, out_dir) for j in jobs]
    prepare_work(plans)
    units = pending_units(plans)
    threads = max((_threads(p) for p in plans if not p.error), default=1)
    with default_progress(on_progress, "all jobs", quiet) as callback:
        progress = Progress(callback, _units_frames(plans, units))
        progress.emit("load")
        try:
            if units:
                stats = render_on_ray(plans, units, out_dir, progress, address, workers, threads)
                write_json(out_dir / "ray.json", stats)
        except KeyboardInterrupt:
            raise _interrupted(plans, out_dir) from None
        return report(plans, out_dir, progress, quiet)


def _threads(plan: JobPlan) -> int:
    """The CPUs a job's models run on: ``model_threads``, where that is torch's default all of this machine's."""
    from ..pipelines.loader import model_threads

    return model_threads(plan.job.cfg.model) or os.cpu_count() or 1


def _run_batch(state, jobs: list[Job], out_dir: Path, quiet: bool, on_progress: OnProgress | None) -> list[dict]:
    """``local`` (``state`` None) or ``torchrun`` (an accelerate ``PartialState``)."""
    main = state is None or state.is_main_process

    def barrier():
        if state is not None:
            state.wait_for_everyone()

    barrier()
    plans = [plan_job(j, out_dir) for j in jobs]
    if main:
        prepare_work(plans)
    barrier()
    units = pending_units(plans)
    cache = ModelCache(device=str(state.device) if state is not None else None)
    rows: list[dict] = []
    if state is None:
        mine, worker, engine = units, "0", "local"
    else:
        with state.split_between_processes(units) as mine:
            pass
        worker, engine = str(state.process_index), "torchrun"
    with default_progress(on_progress, "all jobs", quiet or not main) as callback:
        progress = Progress(callback, _units_frames(plans, mine))
        progress.emit("load")
        try:
            for i, k in mine:
                write_segment(plans[i], k, cache, worker, progress, engine)
        except KeyboardInterrupt:
            raise _interrupted(plans, out_dir) from None
        barrier()
        if main:
            rows = report(plans, out_dir, progress, quiet)
    barrier()
    if not main:
        rows = json.loads((out_dir / "report.json").read_text())["jobs"]
    return rows


def _accelerator_available() -> bool:
    import torch

    return torch.cuda.is_available()


__all__ = ["Job", "load_jobs", "run_batch"]
