"""The benchmarks package (``python -m benchmarks.NAME``): every module imports and answers ``--help`` as a module,
none reaches into another's private names or edits the import path, and the cheapest real mode of each runs and
writes rows with the fields and figures it promises."""

from __future__ import annotations

import ast
import importlib
import json
import math
import subprocess
import sys

import pytest

from lcm_video.toy import world

from .conftest import ROOT

RUNNABLE = (
    "speed", "backends", "temporal", "eval_toy", "train_toy", "make_sample", "frames_digest", "threads", "train_motion",
    "eval_motion", "train_control", "eval_control", "control_cost", "engines", "live",
)  # fmt: skip
MODULES = ("common", *RUNNABLE)


def _document(path) -> dict:
    """The JSON document a benchmark wrote to ``--out``, checked for the fields every benchmark writes."""
    doc = json.loads(path.read_text())
    assert {"benchmark", "argv", "python", "torch", "device", "cpus", "peak_rss_mib_process", "rows"} <= doc.keys()
    assert doc["peak_rss_mib_process"] > 0 and doc["cpus"] >= 1
    assert doc["rows"], "no rows"
    return doc


def _positive(row: dict, *keys: str) -> None:
    for key in keys:
        value = row[key]
        assert isinstance(value, int | float) and math.isfinite(value) and value > 0, (key, row)


def test_every_module_imports_and_the_package_is_the_repositorys():
    for name in MODULES:
        module = importlib.import_module(f"benchmarks.{name}")
        assert module.__file__.startswith(str(ROOT / "benchmarks")), module.__file__
        assert module.__doc__, name
    assert not list(ROOT.glob("scripts/*.py")), "scripts/ became benchmarks/"


@pytest.mark.parametrize("name", RUNNABLE)
def test_help_as_a_module(name):
    """``python -m benchmarks.NAME --help`` in a fresh interpreter: exits 0 with the usage under its module name; torch
    is imported only where a mode runs, so this takes well under a second."""
    res = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{name}", "--help"], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"usage: python -m benchmarks.{name}"), res.stdout[:200]
    first_line = importlib.import_module(f"benchmarks.{name}").__doc__.splitlines()[0]
    assert " ".join(first_line.split()[:4]) in " ".join(res.stdout.split()), res.stdout


def _python_files():
    for folder in ("benchmarks", "lcm_video", "tests"):
        yield from sorted((ROOT / folder).rglob("*.py"))


def test_nothing_edits_the_import_path_and_benchmarks_use_no_private_names_of_each_other():
    """No ``sys.path`` edits anywhere (tests included); a benchmark imports another module of the package only for
    public names (shared helpers live in ``benchmarks.common`` or in the library)."""
    files = list(_python_files())
    assert len(files) > 50
    for path in files:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "path":
                assert not (isinstance(node.value, ast.Name) and node.value.id == "sys"), f"{path}:{node.lineno}"
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(("scripts", "benchmarks.")):
                assert not node.module.startswith("scripts"), f"{path}:{node.lineno}"
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{path}:{node.lineno} imports {private} from {node.module}"


def test_make_sample_writes_a_clip_of_the_asked_length_and_size(tmp_path):
    from benchmarks import make_sample
    from lcm_video.video.reader import probe

    path = make_sample.main(["--out", str(tmp_path / "new" / "clip.mp4"), "--seconds", "0.5", "--size", "64x48"])
    info = probe(path)
    assert (info.width, info.height) == (64, 48)
    assert 14 <= info.frames <= 16, info.frames  # 0.5 s at 30000/1001 fps


def test_temporal_flows_and_parts(tmp_path):
    """The flow estimators against the toy clips' true motion (DIS nearly exact on the pan: measured 0.01 px at 128
    px), and the CPU cost of ``--warp flow``'s parts; both on small clips, no model."""
    import torch

    from benchmarks import temporal
    from lcm_video.video.synthetic import MOTION_CLIPS

    threads = torch.get_num_threads()
    temporal.main(["--out", str(tmp_path / "out" / "flows.json"), "flows", "--size", "64", "--frames", "6"])
    rows = _document(tmp_path / "out" / "flows.json")["rows"]
    assert [(r["clip"], r["flow"]) for r in rows] == [(c, f) for c in MOTION_CLIPS for f in ("dis", "farneback")]
    for row in rows:
        _positive(row, "ms")
        assert row["size"] == 64 and 0 <= row["epe_px"] < 3, row
    pan = {r["flow"]: r for r in rows if r["clip"] == "pan"}
    assert pan["dis"]["epe_px"] < 0.5 and 0.8 < pan["dis"]["motion_seen"] <= 1.05, pan

    temporal.main(["--out", str(tmp_path / "parts.json"), "parts", "--sizes", "64,96", "--frames", "4"])
    doc = _document(tmp_path / "parts.json")
    assert doc["benchmark"] == "temporal parts" and [r["size"] for r in doc["rows"]] == [64, 96]
    for row in doc["rows"]:
        _positive(row, "latent_motion_ms", "fuse_frame_ms")
    assert torch.get_num_threads() == threads  # measured on one thread, the process's setting restored


def test_train_toy_data_stage(tmp_path):
    from benchmarks import train_toy

    row = train_toy.main(["data", "--out", str(tmp_path), "--images", "6", "--size", "64"])
    images, captions = sorted((tmp_path / "data").glob("*.png")), sorted((tmp_path / "data").glob("*.txt"))
    assert len(images) == len(captions) == 6
    for caption in captions:
        words = caption.read_text().split()
        assert words and set(words) <= set(world.WORDS), words
    logged = [json.loads(line) for line in (tmp_path / "times.json").read_text().splitlines()]
    assert logged == [json.loads(json.dumps(row, default=str))]
    assert row["stage"] == "data" and row["images"] == 6 and row["seconds"] >= 0


@pytest.mark.slow  # loads the toy teacher
def test_eval_toy_autoencoder_iou(tmp_path):
    """The square through the teacher's autoencoder alone keeps its place (measured IoU min 0.83 at 64 px)."""
    from benchmarks import eval_toy

    eval_toy.main(["--autoencoder-iou", "--sizes", "64", "--out", str(tmp_path / "ae.json")])
    (row,) = _document(tmp_path / "ae.json")["rows"]
    assert row["size"] == 64 and 0.7 <= row["video_iou_min"] <= row["video_iou_mean"] <= 1, row


@pytest.mark.slow  # builds a CLIP-L-sized text encoder
def test_backends_unet_batch_on_the_tiny_shape(tmp_path):
    from benchmarks import backends

    backends.main(["--unet-batch", "--shapes", "tiny", "--sizes", "64", "--out", str(tmp_path / "ub.json")])
    doc = _document(tmp_path / "ub.json")
    assert doc["benchmark"] == "backends unet_batch"
    assert [r["batch"] for r in doc["rows"]] == [1, 2, 4, 12]
    for row in doc["rows"]:
        assert row["shape"] == "tiny" and row["size"] == 64
        _positive(row, "s_per_frame", "vs_batch1")
    assert doc["rows"][0]["vs_batch1"] == 1.0


@pytest.mark.slow  # every case: diffusers' pipelines and ours, on the tiny models
def test_speed_on_the_tiny_models(tmp_path):
    from benchmarks import speed

    argv = ["--out", str(tmp_path / "speed.json"), "speed", "--models", "tiny", "--size", "64"]
    speed.main([*argv, "--frames", "3", "--motion-frames", "2"])
    rows = _document(tmp_path / "speed.json")["rows"]
    assert [(r["case"], r["pipeline"]) for r in rows] == [
        ("stylize", "diffusers LCM img2img, per-frame loop"),
        ("stylize", "lcm_video stylize"),
        ("stylize", "lcm_video stylize --fast (TAESD)"),
        ("motion stylize", "diffusers AnimateDiffVideoToVideo + LCM"),
        ("motion stylize", "lcm_video stylize --motion-adapter"),
        ("generate", "diffusers AnimateDiff + LCM"),
        ("generate", "lcm_video generate"),
    ]
    for row in rows:
        assert row["frames"] == (3 if row["case"] == "stylize" else 2), row
        _positive(row, "seconds", "fps", "first_frame_s")
        assert row["first_frame_s"] <= row["seconds"] + 0.01 and row["peak_mib"] >= 0, row


def test_speed_on_the_tiny_sdxl_models(tmp_path):
    from benchmarks import speed

    argv = ["--out", str(tmp_path / "speed.json"), "speed", "--models", "tiny-sdxl", "--size", "64"]
    speed.main([*argv, "--frames", "2", "--cases", "stylize,motion"])  # SDXL shapes: the stylize case only
    rows = _document(tmp_path / "speed.json")["rows"]
    assert [r["pipeline"] for r in rows] == [
        "diffusers SDXL img2img + LCMScheduler, per-frame loop",
        "lcm_video stylize",
        "lcm_video stylize --fast (TAESDXL)",
    ]


def test_live_t_index_list_picks_our_timesteps_in_streamdiffusions_schedule():
    """StreamDiffusion indexes its 50-point LCM schedule (999, 979, ..., 19); ours at 4 steps, strength 0.5 are
    499, 379, 259, 139."""
    from diffusers import LCMScheduler

    from benchmarks import live

    assert live.t_index_list(LCMScheduler()) == [25, 31, 37, 43]
    assert live.t_index_list(LCMScheduler(), steps=2, strength=1.0) == [0, 25]


@pytest.mark.slow  # loads the toy and renders ~60 frames
def test_live_on_the_toy(tmp_path, capsys):
    """Every mode of ours on the toy with the stream batch, and StreamDiffusion's class on the same modules where
    its package is installed: all frames out in order without realtime, the stream batch's UNet calls one per
    input frame plus its fill, realtime drops what it could not render, the table compares the two sides."""
    from benchmarks import live

    try:
        import streamdiffusion  # noqa: F401

        theirs = True
    except ImportError:
        theirs = False
    argv = ["--models", "toy", "--backends", "torch", "--dtypes", "float32", "--stream-batch", "on"]
    argv += ["--warp", "none", "--frames", "8", "--latency-seconds", "1", "--out", str(tmp_path / "live.json")]
    live.main(argv + ([] if theirs else ["--no-streamdiffusion"]))
    doc = _document(tmp_path / "live.json")
    assert doc["benchmark"] == "live"
    rows = {(r["side"].split()[0], r["mode"]): r for r in doc["rows"]}
    expected = {("lcm_video", m) for m in ("throughput", "latency", "bare")} | (
        {("StreamDiffusion", "throughput")} if theirs else set()
    )
    assert set(rows) == expected
    for mode in ("throughput", "bare"):
        row = rows["lcm_video", mode]
        assert row["frames_in"] == row["frames"] == 8 and row["dropped"] == 0, row
        assert row["unet_calls"] == 8 + live.STEPS - 1, row  # one call a frame, and the batch's fill
        _positive(row, "fps", "fps_steady", "latency_p50_ms")
    rt = rows["lcm_video", "latency"]
    assert 28 <= rt["frames_in"] <= 31 and rt["frames"] == rt["frames_in"] - rt["dropped"] > 0, rt
    assert 0 < rt["latency_p50_ms"] <= rt["latency_p95_ms"], rt
    if theirs:
        sd = rows["StreamDiffusion", "throughput"]
        assert sd["frames"] == 8 and sd["unet_calls"] == 8 and sd["threads"] == rows["lcm_video", "bare"]["threads"]
        _positive(sd, "fps", "latency_p50_ms")
        assert "vs SD" in capsys.readouterr().out
