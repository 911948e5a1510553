"""Array jobs (Slurm ``--array``, Kubernetes Indexed Jobs): identical tasks that differ only by an index.

    lcm-video batch JOBS --out DIR --plan                  number every segment once, in DIR/plan.json
    lcm-video batch JOBS --out DIR --segment-index N       render segment N (or A-B, or A-B:STEP); done ones skipped
    lcm-video batch JOBS --out DIR --assemble              join finished jobs, write report.json

The plan numbers all segments of all jobs, done or not, so an index means the same segment in every task however
many have finished (concurrent tasks never collide; a task re-run after a preemption finds its work done). Each row
carries its job's fingerprint: a task refuses to render a job whose file or settings changed since ``--plan``.
``--plan`` and ``--assemble`` hold the folder's lock (they clean and join); segment tasks do not (they run
concurrently; each writes only its own segment files, under temporary names until complete).
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
from pathlib import Path

from ..errors import UserError
from ..events import OnProgress, Progress, default_progress
from ..files import write_json
from ..video.lock import OutputLock
from .jobs import load_jobs
from .work import WORK, JobPlan, out_folder, plan_job, prepare_work, seg_name, segment_done

PLAN = "plan.json"
_SPEC = re.compile(r"^(\d+)(?:-(\d+)(?::(\d+))?)?$")


def parse_indices(spec: str, count: int) -> list[int]:
    """``N``, ``A-B`` (inclusive) or ``A-B:STEP`` → the indices, each checked against the plan's ``count``."""
    m = _SPEC.match(spec.strip())
    if not m:
        raise UserError(f"--segment-index {spec!r}: give N, A-B or A-B:STEP (e.g. 0-99:4)")
    a = int(m.group(1))
    b = int(m.group(2)) if m.group(2) is not None else a
    step = int(m.group(3)) if m.group(3) is not None else 1
    if b < a or step < 1:
        raise UserError(f"--segment-index {spec!r}: the range must run upwards with a step of at least 1")
    if a >= count:
        raise UserError(f"--segment-index {spec!r}: the plan has {count} segments (0-{count - 1})")
    return list(range(a, min(b, count - 1) + 1, step))


def _plans(job_file, out_dir: Path, segment_frames: int | None, names: set[str] | None = None) -> list[JobPlan]:
    jobs = load_jobs(job_file, out_dir, segment_frames)
    return [plan_job(j, out_dir) for j in jobs if names is None or j.name in names]


def plan_rows(plans: list[JobPlan]) -> list[dict]:
    rows = []
    for p in plans:
        for k, seg in enumerate(p.segments):
            row = {"index": len(rows), "job": p.job.name, "segment": k, "frames": list(seg)}
            rows.append(row | {"fingerprint": p.fingerprint})
    return rows


def write_plan(job_file, out, segment_frames: int | None = None, quiet: bool = False) -> list[dict]:
    """Plan every job, prepare the work folders (as a run does) and write ``OUT/plan.json``; returns its rows. A job
    that cannot be planned is reported and left out (its error is in the plan's ``errors``)."""
    out_dir = out_folder(out)
    with OutputLock(out_dir, "folder"):
        plans = _plans(job_file, out_dir, segment_frames)
        prepare_work(plans)
        rows = plan_rows(plans)
        errors = {p.job.name: p.error for p in plans if p.error}
        write_json(out_dir / PLAN, {"segments": rows, "errors": errors})
    for name, error in errors.items():
        print(f"failed {name}: {error}", file=sys.stderr)
    if not quiet:
        last = f"0-{len(rows) - 1}" if rows else "(none)"
        print(f"{len(rows)} segments in {out_dir / PLAN}: render them with --segment-index {last}, then --assemble")
    return rows


def read_plan(out_dir: Path) -> dict:
    path = out_dir / PLAN
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"no plan in {str(out_dir)!r}: run the same command with --plan first") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{str(path)!r} cannot be read ({exc}): run the same command with --plan again") from None


def _check_same(plan: JobPlan, row: dict) -> None:
    if plan.error:
        raise UserError(f"job {plan.job.name!r} cannot be rendered now ({plan.error})")
    if plan.fingerprint != row["fingerprint"] or not (plan.work / "job.json").exists():
        raise UserError(
            f"job {plan.job.name!r} changed since --plan (its input, settings or work folder): run --plan again "
            "(finished segments of unchanged jobs are kept)"
        )


def render_indices(
    job_file,
    out,
    spec: str,
    segment_frames: int | None = None,
    quiet: bool = False,
    on_progress: OnProgress | None = None,
) -> dict:
    """Render the plan's segments ``spec`` (``parse_indices``) that are not done; returns ``{"rendered": [...],
    "skipped": [...], "failed": [...]}`` (indices). Jobs are planned only as far as these segments need."""
    from ..pipelines.loader import ModelCache
    from .segment import write_segment

    out_dir = out_folder(out)
    rows = read_plan(out_dir)["segments"]
    if not rows:
        raise UserError(f"the plan in {str(out_dir)!r} has no segments")
    picked = [rows[i] for i in parse_indices(spec, len(rows))]
    plans = {p.job.name: p for p in _plans(job_file, out_dir, segment_frames, {r["job"] for r in picked})}
    todo = []
    for row in picked:
        if row["job"] not in plans:
            raise UserError(f"job {row['job']!r} of the plan is not in the job file: run --plan again")
        plan = plans[row["job"]]
        _check_same(plan, row)
        todo.append((row["index"], plan, row["segment"]))
    worker = f"{socket.gethostname()}-{os.getpid()}"
    cache = ModelCache()
    result: dict[str, list[int]] = {"rendered": [], "skipped": [], "failed": []}
    pending = [t for t in todo if not segment_done(t[1], t[2])]
    result["skipped"] = [t[0] for t in todo if t not in pending]
    frames = sum(p.segments[k][1] - p.segments[k][0] for _, p, k in pending)
    if not pending:
        if not quiet:
            print(f"segments {spec}: all {len(todo)} done already", file=sys.stderr)
        return result
    with default_progress(on_progress, f"segments {spec}", quiet) as callback:
        progress = Progress(callback, frames)
        progress.emit("load")
        for index, plan, k in pending:
            stem = plan.work / seg_name(plan.segments[k])
            stem.with_suffix(".failed").unlink(missing_ok=True)  # an earlier try of this very segment
            write_segment(plan, k, cache, worker, progress, engine="array")
            result["failed" if stem.with_suffix(".failed").exists() else "rendered"].append(index)
        progress.emit("done")
    return result


def _ranges(indices: list[int]) -> str:
    parts, start = [], None
    for i, n in enumerate(indices):
        if start is None:
            start = n
        if i + 1 == len(indices) or indices[i + 1] != n + 1:
            parts.append(str(start) if start == n else f"{start}-{n}")
            start = None
    return ",".join(parts)


def assemble_plan(job_file, out, segment_frames: int | None = None, quiet: bool = False) -> list[dict]:
    """Join every job of the plan whose segments are all done and write ``report.json``; when any segment is neither
    done nor failed, list them in one line and render nothing."""
    from .run import report

    out_dir = out_folder(out)
    with OutputLock(out_dir, "folder"):
        plan = read_plan(out_dir)
        rows = plan["segments"]
        plans = _plans(job_file, out_dir, segment_frames)
        by_name = {p.job.name: p for p in plans}
        missing = []
        for row in rows:
            p = by_name.get(row["job"])
            if p is None:
                raise UserError(f"job {row['job']!r} of the plan is not in the job file: run --plan again")
            _check_same(p, row)
            failed = (p.work / seg_name(tuple(row["frames"]))).with_suffix(".failed")
            if not segment_done(p, row["segment"]) and not failed.exists():
                missing.append(row["index"])
        if missing:
            raise UserError(
                f"{len(missing)} of {len(rows)} segments are not rendered yet (--segment-index "
                f"{_ranges(missing)}): render them, then --assemble again"
            )
        return report(plans, out_dir, Progress(None, 0), quiet)


__all__ = ["PLAN", "WORK", "assemble_plan", "parse_indices", "read_plan", "render_indices", "write_plan"]
