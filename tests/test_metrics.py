"""Metrics on synthetic videos whose answer is known."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest

from lcm_video import cli
from lcm_video.metrics import evaluate
from lcm_video.video.writer import VideoWriter


def _write(path, frames: np.ndarray):
    w = VideoWriter(path, (frames.shape[2], frames.shape[1]), Fraction(24), crf=0)
    w.write(frames)
    w.close()
    return path


@pytest.fixture(scope="module")
def pan(tmp_path_factory):
    """A smooth texture panning 2 px per frame, and a copy whose brightness alternates frame to frame."""
    d = tmp_path_factory.mktemp("metrics")
    rng = np.random.default_rng(0)
    import cv2

    tex = cv2.resize(rng.random((24, 60, 3)).astype(np.float32), (240, 96), interpolation=cv2.INTER_CUBIC)
    tex = (np.clip(tex, 0, 1) * 200 + 20).astype(np.uint8)
    frames = np.stack([tex[:, 2 * i : 2 * i + 128] for i in range(12)])
    flick = frames.astype(int) + np.array([0 if i % 2 == 0 else 30 for i in range(12)])[:, None, None, None]
    return {
        "pan": _write(d / "pan.mp4", frames),
        "flicker": _write(d / "flicker.mp4", np.clip(flick, 0, 255).astype(np.uint8)),
        "still": _write(d / "still.mp4", np.repeat(frames[:1], 6, axis=0)),
    }


def test_an_unchanged_video_scores_near_zero_against_itself(pan):
    m = evaluate(pan["pan"], source=pan["pan"])
    assert m.frames == 12
    assert m.warp_error < 2e-3
    assert m.tof < 0.05
    assert m.psnr == 100.0 and m.ssim > 0.999


def test_alternating_brightness_scores_far_higher(pan):
    clean = evaluate(pan["pan"], source=pan["pan"])
    bad = evaluate(pan["flicker"], source=pan["pan"])
    assert bad.warp_error > 10 * clean.warp_error
    assert abs(bad.warp_error - (30 / 255) ** 2) < 1e-3  # the brightness step, on every pair
    assert bad.flicker > clean.flicker + 0.02
    assert bad.psnr < clean.psnr and bad.ssim < clean.ssim


def test_a_still_video_has_no_flicker_and_self_flow_without_source(pan):
    m = evaluate(pan["still"])
    assert m.flicker == 0.0 and m.warp_error < 1e-6
    assert m.tof is None and m.psnr is None and m.ssim is None


def test_eval_command_prints_json(pan, capsys):
    assert cli.main(["eval", str(pan["pan"]), "--source", str(pan["pan"]), "--json"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert set(out) == {"frames", "warp_error", "flicker", "tof", "psnr", "ssim", "edge_f1", "notes"}
    assert out["notes"] == [] and captured.err == ""


def test_pairing_a_retimed_or_cut_render_with_its_source_warns(pan, tmp_path, capsys):
    """By index, a --fps or --start/--end render is compared with the wrong source frames: said, not silent."""
    frames = np.stack([np.full((96, 128, 3), 10 * i, np.uint8) for i in range(6)])
    half = VideoWriter(tmp_path / "half.mp4", (128, 96), Fraction(12), crf=0)
    half.write(frames)
    half.close()
    assert cli.main(["eval", str(tmp_path / "half.mp4"), "--source", str(pan["pan"])]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("lcm-video: warning: ") for line in err)
    assert "12 fps and the source at 24" in err[0] and "6 frames and the source 12" in err[1]
    assert evaluate(pan["flicker"], source=pan["pan"]).notes == ()  # same rate, count and size: nothing to say


def test_stylize_writes_metrics_beside_the_output(videos, tmp_path):
    argv = ["stylize", str(videos["moving"]), "-o", str(tmp_path / "o.mp4"), "-p", "x", "--model", "tiny", "-q"]
    assert cli.main([*argv, "--metrics"]) == 0
    m = json.loads((tmp_path / "o.metrics.json").read_text())
    assert m["frames"] == 29 and m["psnr"] is not None


def test_edge_f1_is_one_for_the_same_layout_and_low_for_another(tmp_path):
    """Structure fidelity with a known answer: toy shapes recoloured (same edges) score ~1, shifted by 1 px still ~1
    (the 2 px tolerance), the same shapes elsewhere low, a flat video 0."""
    from lcm_video.metrics import edge_f1
    from lcm_video.toy.world import Scene, draw

    def clip(colour: str, background: str, dx: float = 0.0, y0: float = 40.0) -> np.ndarray:
        return np.stack([draw(Scene("square", colour, background, 40 + 3 * i + dx, y0, 20), 128) for i in range(6)])

    src = clip("red", "blue")
    recoloured, shifted, elsewhere = clip("yellow", "purple"), clip("red", "blue", dx=1), clip("red", "blue", 0, 90)
    paths = {k: _write(tmp_path / f"{k}.mp4", v) for k, v in {"src": src, "re": recoloured, "far": elsewhere}.items()}
    flat = _write(tmp_path / "flat.mp4", np.full_like(src, 90))
    assert evaluate(paths["re"], source=paths["src"]).edge_f1 > 0.95
    assert min(edge_f1(a, b) for a, b in zip(shifted, src, strict=True)) > 0.95
    assert evaluate(paths["far"], source=paths["src"]).edge_f1 < 0.35
    m = evaluate(flat, source=paths["src"])
    assert m.edge_f1 == 0.0 and len(m.edge_f1s) == 6
    assert evaluate(paths["src"]).edge_f1 is None  # needs a source


def test_eval_plot_shows_a_jump_as_a_spike_where_it_is(pan, tmp_path, capsys):
    """`lcm-video eval --plot FILE.png`: a still clip with one brighter frame (6 of 10) draws its flicker peak over
    frame pairs 5-6, and nowhere else."""
    from PIL import Image

    frames = np.repeat(np.full((1, 64, 96, 3), 100, np.uint8), 10, axis=0)
    frames[6] += 40
    video = _write(tmp_path / "jump.mp4", frames)
    png = tmp_path / "jump.png"
    assert cli.main(["eval", str(video), "--plot", str(png)]) == 0
    img = np.asarray(Image.open(png).convert("RGB")).astype(int)
    assert img.shape[1] == 900
    blue = np.abs(img - [40, 90, 200]).sum(-1) < 60
    blue[:, :70] = False  # the axis labels
    rows, cols = np.nonzero(blue[240:])  # the flicker panel, below the warp error one
    peak = cols[rows == rows.min()]
    x_of = lambda i: 70 + (900 - 70 - 20) * i / 8  # noqa: E731 (9 pairs)
    assert x_of(5) - 3 <= peak.min() and peak.max() <= x_of(6) + 3
    assert cli.main(["eval", str(pan["pan"]), "--plot", str(tmp_path / "p.jpg")]) == 2
    assert "must name a .png file" in capsys.readouterr().err
