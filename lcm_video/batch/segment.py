"""One unit of batch work: a segment of a job rendered to its lossless file in the job's work folder, whoever runs
it (this process, a torchrun rank, a Ray actor, an array task). Its frames depend only on the job and the segment:
a segment that starts cold re-renders a few frames before its start (discarded) to rebuild the blending state, which
it can because a frame's noise depends only on the seed and its index."""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Iterator
from typing import Any

from ..errors import UserError
from ..events import Cancelled, Progress
from ..files import write_json
from ..options import GENERATE
from ..pipelines.loader import ModelCache
from .work import JobPlan, seg_name


def segment_frames(plan: JobPlan, models, seg: tuple[int, int]) -> Iterator[tuple[range, Any]]:
    """Render output frames ``seg`` of a job, warming up before a cold start; yields (frames, uint8 chunk)."""
    from ..pipelines import text_to_video, video_to_video
    from ..pipelines.quantize import quantize_unet
    from ..pipelines.text_to_video import ClipGenerator, generated_frames
    from ..pipelines.video_to_video import Stylizer, source_map, stylized_frames
    from ..pipelines.window import window_layout
    from ..video.reader import FrameReader

    prep, cfg = plan.prep, plan.job.cfg
    key = (plan.job.name, plan.fingerprint)  # --quantize int8 calibrates once per job and process
    if plan.job.mode == GENERATE:
        layout = window_layout(models, cfg, plan.frames)
        quantize_unet(models, cfg, text_to_video.calibration(models, cfg, prep, min(layout.size, plan.frames)), key)
        gen = ClipGenerator(models, cfg, prep.size, prep.prompts, prep.control)
        yield from generated_frames(gen, layout, plan.frames, *seg)
        return
    fmap = source_map(cfg, prep)
    layout = window_layout(models, cfg, fmap.rendered)
    batch, control = min(layout.size, fmap.rendered), plan.work / "control"
    quantize_unet(models, cfg, video_to_video.calibration(models, cfg, prep, batch, control), key)
    stylizer = Stylizer(
        models, cfg, batch, prep.prompts, prep.strengths, prep.size, prep.control, control_cache=control
    )
    reader = FrameReader(prep.info, prep.size)
    try:
        yield from stylized_frames(stylizer, reader, prep, fmap, layout, *seg)
    finally:
        reader.close()


def write_segment(
    plan: JobPlan, k: int, cache: ModelCache, worker: str, progress: Progress, engine: str = "local"
) -> None:
    """Render segment ``k`` of a job to its lossless file; on failure leave a ``.failed`` marker with the reason.
    A :class:`Cancelled` from the progress callback is not a failure: the segment is dropped and it propagates.
    ``worker`` names who rendered it (a process rank, a Ray actor), ``engine`` how; both go in the segment's
    ``.json`` and from there in the output's record."""
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
    meta = {"frames": seg[1] - seg[0], "seconds": time.perf_counter() - t0, "worker": worker, "engine": engine}
    write_json(stem.with_suffix(".json"), meta | {"ran": models.runtime})
    with open(plan.work / "renders.log", "a") as log:  # one line per render, to show each unit ran once
        log.write(f"{seg_name(seg)} {worker}\n")
