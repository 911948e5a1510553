"""Units of work: every process plans every job identically (frames, segments, fingerprint), so processes agree on
the units without talking; the main process prepares the work folders before the split.

Work folder layout, inside ``--out`` (``OUT/.lcm-video-work/NAME/``):

    job.json                      fingerprint of the job's settings and input; a mismatch discards the folder
    seg_000000_000120.mkv         a finished segment: lossless RGB frames [0, 120) (renamed into place when complete)
    seg_000000_000120.json        written after the .mkv: frames, seconds, process rank
    seg_000000_000120.failed      the unit failed: the one-line error
    seg_000000_000120.PID.busy    a Ray actor (process PID) is rendering the unit now
    done.json                     the output was assembled

A unit is done when its .json exists, so a run killed at any moment (even with kill -9) resumes by skipping those.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UserError
from ..files import digest, write_json
from ..options import STYLIZE
from ..video.lock import remove_stale_partials
from .jobs import Job

if TYPE_CHECKING:
    from ..pipelines.prepare import Prepared

WORK = ".lcm-video-work"


@dataclass(frozen=True)
class JobPlan:
    """A job with its prepared render (source probed and frames planned once, for all its segments), work folder and
    segments; ``error`` if it could not be prepared."""

    job: Job
    work: Path
    prep: Prepared | None = None
    segments: tuple[tuple[int, int], ...] = ()
    fingerprint: str = ""
    error: str | None = None

    @property
    def frames(self) -> int:
        return len(self.prep.plan) if self.prep else 0

    @property
    def fps(self) -> Fraction:
        return self.prep.plan.fps

    @property
    def size(self) -> tuple[int, int]:
        return self.prep.size

    @property
    def start(self) -> float:
        return float(self.prep.plan.start)

    @property
    def pts(self) -> tuple[Fraction, ...] | None:
        """A variable-rate output: its frames' times (``FramePlan.pts``)."""
        return self.prep.plan.pts

    @property
    def duration(self) -> Fraction:
        return self.prep.plan.duration


def out_folder(out) -> Path:
    """``--out`` as an absolute folder path (it need not exist yet); a file there is a one-line error."""
    out_dir = Path(out).resolve()
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {str(out)!r} is a file; give a folder")
    return out_dir


def _fingerprint(job: Job) -> str:
    payload = {k: v for k, v in job.cfg.flat().items() if k != "quiet"}
    payload |= {"mode": job.mode, "segment_frames": job.segment_frames, "output": str(job.output)}
    if job.input is not None:
        st = job.input.stat()
        payload |= {"input": str(job.input), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if job.cfg.style.style_image:  # a reference image rewritten in place changes the frames as an input does
        st = Path(job.cfg.style.style_image).stat()
        payload |= {"style_size": st.st_size, "style_mtime_ns": st.st_mtime_ns}
    return digest(payload)


def plan_job(job: Job, out_dir: Path) -> JobPlan:
    """The job's frames, size and segments, or the reason it cannot be planned (an undecodable input, say)."""
    from ..pipelines.prepare import prepare_generate, prepare_stylize

    work = out_dir / WORK / job.name
    try:
        if job.mode == STYLIZE:
            prep = prepare_stylize(job.input, job.output, job.cfg)
        else:
            prep = prepare_generate(job.output, job.cfg)
    except UserError as exc:
        return JobPlan(job, work, error=str(exc))
    n, seg = len(prep.plan), job.segment_frames
    segments = tuple((s, min(n, s + seg)) for s in range(0, n, seg))
    return JobPlan(job, work, prep, segments, _fingerprint(job))


def seg_name(seg: tuple[int, int]) -> str:
    return f"seg_{seg[0]:06d}_{seg[1]:06d}"


def prepare_work(plans: list[JobPlan]) -> None:
    """Main process, before the split, holding the ``--out`` lock (so no live run owns a temporary file): discard
    work folders of changed jobs, stale temporaries and old failures."""
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
        for pattern in ("*.partial", "*.failed", "*.tmp", "*.busy"):
            for stale in p.work.glob(pattern):
                stale.unlink(missing_ok=True)
        remove_stale_partials(p.job.output)  # a dead run's half-assembled output
        write_json(meta, {"name": p.job.name, "fingerprint": p.fingerprint})


def segment_done(plan: JobPlan, k: int) -> bool:
    """Segment ``k`` of ``plan`` is rendered: its ``.json`` is written only after its ``.mkv`` is in place, and the
    ``.mkv`` is still there (assembly removes them: an output deleted afterwards has its segments rendered again)."""
    stem = plan.work / seg_name(plan.segments[k])
    return stem.with_suffix(".json").exists() and stem.with_suffix(".mkv").exists()


def pending_units(plans: list[JobPlan]) -> list[tuple[int, int]]:
    """(plan index, segment index) of every unit still to render, grouped by model so each process loads each
    model once."""
    units = []
    for i, p in enumerate(plans):
        if p.error or (p.work / "done.json").exists():
            continue
        units += [(i, k) for k in range(len(p.segments)) if not segment_done(p, k)]
    return sorted(units, key=lambda u: (plans[u[0]].job.model_key, u))
