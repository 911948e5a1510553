"""Batch rendering: validation first, failure isolation, crash-safe resume (kill -9), two processes with torchrun,
model reuse, path safety, and segment seams."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lcm_video import cli
from lcm_video.batch import jobs as batch_jobs
from lcm_video.batch import run as batch
from lcm_video.errors import Note, UserError
from lcm_video.pipelines.text_to_video import generate
from lcm_video.pipelines.video_to_video import stylize
from lcm_video.video.synthetic import lavfi_clip

from .conftest import ROOT, STYLE, read_frames, with_style

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def write_jobs(folder: Path, jobs: list[dict], defaults: dict | None = None) -> Path:
    path = folder / "jobs.yaml"
    path.write_text(json.dumps({"defaults": defaults or {"model": "tiny", "device": "cpu"}, "jobs": jobs}))
    return path  # JSON is YAML


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return lavfi_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", seconds=2.0)


SEAM_FRAMES = 26
"""The seam tests' length: segments of 7 frames start at 7, 14 and 21 (inside motion windows of 8 sharing 2, too); the
one at 21 starts cold with a warm-up (17 frames for the default --pixel-blend 0.5) that begins at frame 4, not 0."""


def _jobs(clip: Path) -> list[dict]:
    return [
        {"name": "styl", "mode": "stylize", "input": str(clip), "prompt": "oil painting", "output": "styl.mp4"},
        {"name": "gen", "mode": "generate", "prompt": "a fox", "frames": 20, "fps": 8, "output": "gen/fox.mp4"},
    ]


def _run(args: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, env=ENV, cwd=ROOT, **kw)


def test_every_problem_is_listed_before_anything_renders(tmp_path, clip, capsys):
    jobs = [
        {"name": "a", "mode": "stylize", "input": str(clip), "prompt": "x", "output": "a.mp4", "strenght": 0.5},
        {"name": "a", "mode": "stylize", "input": "missing.mp4", "prompt": "x", "output": "b.mp4"},
        {"name": "c", "mode": "generate", "prompt": "x", "output": "a.mp4", "frames": 0},
        {"name": "d", "mode": "stylize", "input": str(clip), "prompt": "x", "output": "../escape.mp4"},
        {"name": "e", "mode": "stylize", "input": str(clip), "prompt": "x", "output": "/abs.mp4"},
        {"name": "../f", "mode": "generate", "prompt": "x", "output": "f.mp4"},
        {"name": "g", "mode": "paint", "output": "g.mp4"},
        {"name": "h", "mode": "stylize", "input": str(clip), "prompt": "x", "output": "h.mp4", "blend": 2},
    ]
    code = cli.main(["batch", str(write_jobs(tmp_path, jobs)), "--out", str(tmp_path / "out"), "-q"])
    err = capsys.readouterr().err
    assert code == 2
    for expected in [
        "job #1 'a': unknown key 'strenght'",
        "job #2 'a': duplicate name",
        "job #2 'a': input 'missing.mp4' not found",
        "job #3 'c': output 'a.mp4' is also the output of job 'a'",
        "job #3 'c': --frames must be at least 1",
        "job #4 'd': output '../escape.mp4' must be a relative path inside --out",
        "job #5 'e': output '/abs.mp4' must be a relative path",
        "job #6 '../f': name must be",
        "job #7 'g': mode must be stylize or generate",
        "job #8 'h': --blend must be in [0, 1]",
    ]:
        assert expected in err, (expected, err)
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_python_tags_are_refused(tmp_path, capsys):
    (tmp_path / "jobs.yaml").write_text("jobs:\n  - !!python/object/apply:os.system ['echo pwned']\n")
    assert cli.main(["batch", str(tmp_path / "jobs.yaml"), "--out", str(tmp_path / "o")]) == 2
    assert "not plain YAML" in capsys.readouterr().err


def test_a_failing_job_is_isolated_and_reported(tmp_path, clip, capsys):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 5000)
    styl, gen = _jobs(clip)
    bad_job = {"name": "bad", "mode": "stylize", "input": str(bad), "prompt": "x", "output": "bad.mp4"}
    jobs = [styl | {"max_frames": 12}, gen, bad_job]  # 12 frames: the report's count is the job's, not the clip's
    out = tmp_path / "o"
    assert cli.main(["batch", str(write_jobs(tmp_path, jobs)), "--out", str(out), "-q"]) == 1
    report = {r["name"]: r for r in json.loads((out / "report.json").read_text())["jobs"]}
    assert report["styl"]["status"] == report["gen"]["status"] == "done"
    assert report["styl"]["frames"] == 12 and report["gen"]["frames"] == 20
    assert (out / "styl.mp4").exists() and (out / "gen" / "fox.mp4").exists() and not (out / "bad.mp4").exists()
    assert report["bad"]["status"] == "failed" and "cannot decode" in report["bad"]["error"]
    assert set(report["bad"]) >= {"name", "status", "output", "frames", "seconds", "error"}
    assert "failed bad" in capsys.readouterr().err


def test_a_deleted_output_is_rendered_again(tmp_path, clip):
    """Assembly removes a job's segments; a later run whose output was deleted renders them again (it used to find
    their .json, skip them and fail to assemble) and writes the same frames."""
    styl = _jobs(clip)[0] | {"max_frames": 9, "segment_frames": 4}
    jobs, out = write_jobs(tmp_path, [styl]), tmp_path / "o"
    assert cli.main(["batch", str(jobs), "--out", str(out), "-q"]) == 0
    first = read_frames(out / "styl.mp4")
    (out / "styl.mp4").unlink()
    assert cli.main(["batch", str(jobs), "--out", str(out), "-q"]) == 0
    assert np.array_equal(read_frames(out / "styl.mp4"), first)


@pytest.mark.slow  # 6 s: over the quick loop's budget (README), in the full suite
def test_model_is_loaded_once_per_process_for_all_jobs_that_share_it(tmp_path, clip, monkeypatch):
    from lcm_video.models import loading as models_mod

    loads = []
    real = models_mod.load_models
    monkeypatch.setattr(models_mod, "load_models", lambda *a, **k: loads.append(a) or real(*a, **k))
    job = {"mode": "stylize", "input": str(clip), "prompt": "x", "max_frames": 12}
    jobs = [{"name": f"s{i}", "output": f"s{i}.mp4", **job} for i in range(3)]
    rows = batch.run_batch(write_jobs(tmp_path, jobs), tmp_path / "out", segment_frames=5, quiet=True)
    assert [r["status"] for r in rows] == ["done"] * 3
    assert len(loads) == 1  # 3 jobs x 3 segments, one model


@pytest.mark.slow  # 9 s: over the quick loop's budget (README), in the full suite
@pytest.mark.parametrize(
    ("blend", "extra"),
    [
        # Two in the quick loop (the default path, and cross-frame attention's anchor across segments); the rest in
        # the full suite, to keep the quick loop under 90 s.
        (0.3, {}),
        pytest.param(0.6, {"warp": "none"}, marks=pytest.mark.slow),
        pytest.param(0.6, {"warp": "flow"}, marks=pytest.mark.slow),
        (0.3, {"cross_frame": "anchor+prev"}),
        # nothing to warm up, but a later segment still needs the anchor
        pytest.param(0.0, {"cross_frame": "anchor+prev"}, marks=pytest.mark.slow),
        pytest.param(
            0.3,
            {"motion_adapter": "tiny", "context": 8, "overlap": 2, "cross_frame": "anchor+prev"},
            marks=pytest.mark.slow,
        ),
        # every few-step method: TCD's and DDIM's keyed re-noise (eta > 0), Euler's none
        (0.3, {"scheduler": "tcd", "eta": 0.5, "strength": 0.75}),
        pytest.param(0.3, {"scheduler": "ddim-trailing", "eta": 0.5, "strength": 0.75}, marks=pytest.mark.slow),
        pytest.param(0.3, {"scheduler": "euler-trailing", "strength": 0.75}, marks=pytest.mark.slow),
        # an IP-Adapter's reference image, embedded once per segment as once per render
        pytest.param(0.3, {"style_image": STYLE}, id="style"),
        # SDXL's conditioning (pooled text, time ids; CFG at tiny-sdxl's guidance 1.5)
        (0.3, {"model": "tiny-sdxl", "cross_frame": "anchor+prev"}),
    ],
)
def test_segment_seams_match_a_continuous_render(tmp_path, clip, style_image, blend, extra):
    extra = with_style(extra, style_image)
    job = {"name": "s", "mode": "stylize", "input": str(clip), "prompt": "x", "output": "s.mp4", "blend": blend}
    # Lossless RGB: yuv420's chroma rounding turns a 1-level difference of RGB into up to 4 levels.
    defaults = {"model": "tiny", "device": "cpu", "crf": 0, "codec": "libx264rgb", "max_frames": SEAM_FRAMES}
    batch.run_batch(write_jobs(tmp_path, [job | extra], defaults), tmp_path / "out", segment_frames=7, quiet=True)
    opts = {"blend": blend, "crf": 0, "codec": "libx264rgb", "max_frames": SEAM_FRAMES, "quiet": True, **extra}
    whole = stylize(clip, tmp_path / "whole.mp4", "x", **{"model": "tiny", "device": "cpu", **opts})
    a, b = read_frames(tmp_path / "out" / "s.mp4").astype(int), read_frames(whole.output).astype(int)
    assert a.shape == b.shape and len(a) == SEAM_FRAMES
    assert np.abs(a - b).max() <= 2  # each segment re-renders frames before its start until β^n < 1e-5


# bfloat16 on a CPU without it in hardware (this one) is emulated, minutes: slow; float32 stays in the quick loop.
@pytest.mark.slow  # 15 s: over the quick loop's budget (README), in the full suite
@pytest.mark.parametrize("dtype", ["float32", pytest.param("bfloat16", marks=pytest.mark.slow)])
def test_segment_seams_of_the_trained_toy_match_in_either_precision(tmp_path, clip, dtype):
    # On a CPU with bfloat16 in hardware it is `--dtype auto`. Trained weights do not amplify rounding as the random
    # tiny model does (3 levels at its seams in bfloat16): this is the default path on a model that means something.
    job = {"name": "s", "mode": "stylize", "input": str(clip), "prompt": "a red circle", "output": "s.mp4"}
    defaults = {
        "model": "toy",
        "device": "cpu",
        "crf": 0,
        "codec": "libx264rgb",
        "dtype": dtype,
        "max_frames": SEAM_FRAMES,
    }
    batch.run_batch(write_jobs(tmp_path, [job], defaults), tmp_path / "out", segment_frames=7, quiet=True)
    opts = {k: v for k, v in defaults.items() if k != "model"}
    with pytest.warns(Note, match=r"64x48 is under half the area 'toy' was trained at \(128x128\)"):
        whole = stylize(clip, tmp_path / "whole.mp4", "a red circle", model="toy", quiet=True, **opts)
    a, b = read_frames(tmp_path / "out" / "s.mp4").astype(int), read_frames(whole.output).astype(int)
    assert len(a) == len(b) == SEAM_FRAMES > 21  # the segment at 21 starts cold: its warm-up begins at frame 4, not 0
    assert np.abs(a - b).max() <= 2  # measured: 1 level in float32, 2 in bfloat16


def test_segments_that_ran_differently_are_recorded_and_warned_about(tmp_path, clip, capsys, monkeypatch):
    from lcm_video.models.container import Models
    from lcm_video.record import read_record

    job = {"name": "s", "mode": "stylize", "input": str(clip), "prompt": "x", "output": "s.mp4", "max_frames": 10}
    batch.run_batch(write_jobs(tmp_path, [job]), tmp_path / "one", segment_frames=5, quiet=True)
    ran = {"device": "cpu", "dtype": "float32", "backend": "torch"}
    assert read_record(tmp_path / "one" / "s.mp4")["ran"] == [ran]
    assert "segments ran on" not in capsys.readouterr().err
    # As if the first segment had run on a machine whose `--dtype auto` is bfloat16.
    said = iter([ran | {"dtype": "bfloat16"}, ran])
    monkeypatch.setattr(Models, "runtime", property(lambda self: next(said)))
    batch.run_batch(write_jobs(tmp_path, [job]), tmp_path / "two", segment_frames=5, quiet=True)
    assert read_record(tmp_path / "two" / "s.mp4")["ran"] == [ran | {"dtype": "bfloat16"}, ran]
    assert "its segments ran on cpu bfloat16 (torch); cpu float32 (torch)" in capsys.readouterr().err


def test_warm_up_covers_the_longer_memory_of_the_two_blends():
    from lcm_video.video.plan import warmup_frames

    assert warmup_frames(0.0) == 0 and warmup_frames(0.2) == 8 and warmup_frames(0.5) == 17
    assert warmup_frames(1.0) == 128  # a blend of 1 never forgets: the cap, not a division by zero
    assert warmup_frames(0.5, context=16, overlap=4) == 17 and warmup_frames(0.2, context=16, overlap=4) == 12


def test_paths_stay_inside_out(tmp_path):
    jobs = [{"name": "x", "mode": "generate", "prompt": "p", "output": "sub/../../x.mp4"}]
    with pytest.raises(UserError, match="inside --out"):
        batch_jobs.load_jobs(write_jobs(tmp_path, jobs), tmp_path / "out")


def _uninterrupted(tmp_path: Path, job_file: Path) -> Path:
    out = tmp_path / "ref"
    res = _run([sys.executable, "-m", "lcm_video", "batch", str(job_file), "--out", str(out), "-q"])
    assert res.returncode == 0, res.stderr
    return out


def kill_after_segments(proc: subprocess.Popen, work: Path, count: int, timeout: float = 120) -> set[str]:
    """kill -9 ``proc`` once ``work`` holds ``count`` finished segments (or at ``timeout``); the finished ones."""
    deadline = time.time() + timeout
    while time.time() < deadline and len(list(work.glob("seg_*.json"))) < count:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return {p.stem for p in work.glob("seg_*.json")}


@pytest.mark.slow
def test_kill_9_then_resume_gives_the_same_frames(tmp_path, clip):
    jobs = [
        {"name": "styl", "mode": "stylize", "input": str(clip), "prompt": "x", "output": "styl.mp4", "blend": 0.3},
        {"name": "gen", "mode": "generate", "prompt": "a fox", "frames": 40, "fps": 8, "output": "fox.mp4"},
    ]
    job_file = write_jobs(tmp_path, jobs, {"model": "tiny", "device": "cpu", "segment_frames": 10})
    ref = _uninterrupted(tmp_path, job_file)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "lcm_video", "batch", str(job_file), "--out", str(out), "-q"]
    proc = subprocess.Popen(cmd, env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    work = out / ".lcm-video-work" / "styl"
    finished = kill_after_segments(proc, work, 2)
    assert 2 <= len(finished) < 6, finished  # killed part-way through the 6 segments
    assert not (out / "styl.mp4").exists()
    res = _run(cmd)
    assert res.returncode == 0, res.stderr
    log = (work / "renders.log").read_text().split()
    renders = log[0::2]
    assert all(renders.count(s) == 1 for s in finished)  # finished segments were skipped, not re-rendered
    assert sorted(set(renders)) == sorted(renders)
    for name in ("styl.mp4", "fox.mp4"):
        a, b = read_frames(out / name).astype(int), read_frames(ref / name).astype(int)
        assert a.shape == b.shape and np.abs(a - b).max() <= 2
    assert not list(out.glob("*.partial")) and not list(work.glob("*.partial"))


@pytest.mark.slow
def test_two_processes_render_each_unit_once_and_match_one_process(tmp_path, clip):
    job_file = write_jobs(tmp_path, _jobs(clip), {"model": "tiny", "device": "cpu", "segment_frames": 10})
    ref = _uninterrupted(tmp_path, job_file)
    out = tmp_path / "two"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29561"]
    res = _run([*torchrun, "-m", "lcm_video", "batch", str(job_file), "--out", str(out), "-q"], timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    ranks = set()
    for job in ("styl", "gen"):
        log = (out / ".lcm-video-work" / job / "renders.log").read_text().split()
        units, who = log[0::2], log[1::2]
        assert len(units) == len(set(units))  # each unit rendered once
        ranks |= set(who)
    assert ranks == {"0", "1"}  # both processes worked
    for name in ("styl.mp4", "gen/fox.mp4"):
        assert np.array_equal(read_frames(out / name), read_frames(ref / name))
    report = json.loads((out / "report.json").read_text())["jobs"]
    assert [r["status"] for r in report] == ["done", "done"]


@pytest.mark.slow
def test_two_processes_match_one_process_with_every_scheduler(tmp_path, clip):
    """Every few-step method, and tiny-sdxl (SDXL's conditioning) stylising and generating."""
    base = {"mode": "stylize", "input": str(clip), "prompt": "x", "max_frames": 16, "strength": 0.75}
    jobs = [
        {**base, "name": "tcd", "output": "tcd.mp4", "scheduler": "tcd", "eta": 0.5},
        {**base, "name": "ddim", "output": "ddim.mp4", "scheduler": "ddim-trailing", "eta": 0.5},
        {"name": "euler", "mode": "generate", "prompt": "a fox", "frames": 16, "fps": 8, "context": 8,
         "output": "euler.mp4", "scheduler": "euler-trailing"},
        {**base, "name": "sdxl", "output": "sdxl.mp4", "model": "tiny-sdxl", "cross_frame": "anchor+prev"},
        {"name": "sdxlgen", "mode": "generate", "prompt": "a fox", "frames": 16, "fps": 8, "context": 8,
         "output": "sdxlgen.mp4", "model": "tiny-sdxl"},
    ]  # fmt: skip
    job_file = write_jobs(tmp_path, jobs, {"model": "tiny", "device": "cpu", "segment_frames": 6})
    ref = _uninterrupted(tmp_path, job_file)
    out = tmp_path / "two"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29562"]
    res = _run([*torchrun, "-m", "lcm_video", "batch", str(job_file), "--out", str(out), "-q"], timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    ranks = set()
    for job in ("tcd", "ddim", "euler", "sdxl", "sdxlgen"):
        ranks |= set((out / ".lcm-video-work" / job / "renders.log").read_text().split()[1::2])
        assert np.array_equal(read_frames(out / f"{job}.mp4"), read_frames(ref / f"{job}.mp4")), job
    assert ranks == {"0", "1"}


@pytest.mark.slow  # two batch runs; the quick loop stays under 90 s
def test_ctrl_c_says_how_many_segments_were_kept(tmp_path, monkeypatch, capsys):
    jobs = [{"name": "gen", "mode": "generate", "prompt": "a fox", "frames": 12, "fps": 8, "output": "fox.mp4"}]
    job_file = write_jobs(tmp_path, jobs, {"model": "tiny", "device": "cpu", "segment_frames": 4})
    real, calls = batch.write_segment, []

    def render_then_interrupt(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(batch, "write_segment", render_then_interrupt)
    assert cli.main(["batch", str(job_file), "--out", str(tmp_path / "out"), "-q"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "interrupted; 2 finished segment(s) kept" in err[0] and "resume" in err[0], err
    monkeypatch.setattr(batch, "write_segment", real)
    assert cli.main(["batch", str(job_file), "--out", str(tmp_path / "out"), "-q"]) == 0
    assert read_frames(tmp_path / "out" / "fox.mp4").shape[0] == 12


@pytest.mark.slow  # 6 s: over the quick loop's budget (README), in the full suite
@pytest.mark.parametrize(
    ("cross", "sched"),
    [
        pytest.param("off", {}, marks=pytest.mark.slow),
        ("anchor+prev", {}),
        ("off", {"scheduler": "euler-trailing"}),  # AnimateDiff-Lightning's method
        pytest.param("off", {"scheduler": "tcd", "eta": 0.5}, marks=pytest.mark.slow),
        pytest.param("off", {"scheduler": "ddim-trailing", "eta": 0.5}, marks=pytest.mark.slow),
    ],
)
def test_generate_segments_match_a_continuous_render_with_and_without_cross_frame(tmp_path, cross, sched):
    opts = {"frames": 20, "fps": 8, "context": 8, "overlap": 2, "cross_frame": cross, **sched}
    job = {"name": "g", "mode": "generate", "prompt": "a fox", "output": "g.mp4", **opts}
    defaults = {"model": "tiny", "device": "cpu", "crf": 0}
    batch.run_batch(write_jobs(tmp_path, [job], defaults), tmp_path / "out", segment_frames=7, quiet=True)
    whole = generate("a fox", tmp_path / "whole.mp4", model="tiny", device="cpu", crf=0, quiet=True, **opts)
    a, b = read_frames(tmp_path / "out" / "g.mp4").astype(int), read_frames(whole.output).astype(int)
    assert a.shape == b.shape
    assert np.array_equal(a, b)  # the whole render's window layout, warmed from earlier windows


@pytest.mark.slow  # 30 s
def test_generate_segments_of_a_trained_motion_module_match_a_continuous_render(tmp_path):
    """A trained module (``toy-motion``, unlike the tiny identity one) carries each window into the next through the
    fused overlaps, fading over windows: a segment that starts far into the clip warms up over enough of them
    (``MOTION_WARM_WINDOWS``) to give a continuous render's frames (one window left frames up to 6/255 off)."""
    opts = {"frames": 100, "fps": 8, "width": 64, "height": 64}
    job = {"name": "g", "mode": "generate", "prompt": "a red circle on a white background", "output": "g.mp4", **opts}
    defaults = {"model": "toy", "crf": 0}
    batch.run_batch(write_jobs(tmp_path, [job], defaults), tmp_path / "out", segment_frames=72, quiet=True)
    whole = generate("a red circle on a white background", tmp_path / "w.mp4", model="toy", crf=0, quiet=True, **opts)
    a, b = read_frames(tmp_path / "out" / "g.mp4").astype(int), read_frames(whole.output).astype(int)
    assert a.shape == b.shape == (100, 64, 64, 3)
    assert np.array_equal(a, b)  # the segment from frame 72 starts 5 windows (of 16, sharing 4) into the clip


@pytest.mark.slow  # 10 s: over the quick loop's budget (README), in the full suite
@pytest.mark.parametrize(
    "sched",
    [
        {"scheduler": "tcd", "eta": 0.5},
        pytest.param({"scheduler": "euler-trailing"}, marks=pytest.mark.slow),
        pytest.param({"model": "tiny-sdxl", "scheduler": "tcd", "eta": 0.5}, marks=pytest.mark.slow),
    ],
)
def test_a_resumed_batch_gives_the_frames_of_an_uninterrupted_one_with_every_scheduler(
    tmp_path, clip, sched, monkeypatch
):
    """Interrupted after its first segments and resumed, a batch gives the uninterrupted one's frames bit for bit,
    stylise and generate, with TCD's keyed re-noise and with Euler."""
    jobs = [
        {"name": "styl", "mode": "stylize", "input": str(clip), "prompt": "x", "output": "s.mp4", "max_frames": 14},
        {"name": "gen", "mode": "generate", "prompt": "a fox", "frames": 12, "fps": 8, "output": "g.mp4", "context": 8},
    ]
    defaults = {"model": "tiny", "device": "cpu", "crf": 0, "codec": "libx264rgb", "strength": 0.75, **sched}
    job_file = write_jobs(tmp_path, jobs, defaults)
    batch.run_batch(job_file, tmp_path / "ref", segment_frames=5, quiet=True)
    real, calls = batch.write_segment, []

    def render_then_interrupt(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(batch, "write_segment", render_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        batch.run_batch(job_file, tmp_path / "out", segment_frames=5, quiet=True)
    monkeypatch.setattr(batch, "write_segment", real)
    assert len(list((tmp_path / "out").rglob("seg_*.json"))) == 2  # two segments kept, four to go
    batch.run_batch(job_file, tmp_path / "out", segment_frames=5, quiet=True)
    for name in ("s.mp4", "g.mp4"):
        assert np.array_equal(read_frames(tmp_path / "out" / name), read_frames(tmp_path / "ref" / name)), name
