"""End to end through the library and the CLI: same video back (frames, exact fps, audio in sync), atomic output,
progress, text embeddings once, device and dtype choice."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

import lcm_video
from lcm_video import cli
from lcm_video.errors import Note
from lcm_video.models.device import pick_device, pick_dtype
from lcm_video.models.loading import load_models
from lcm_video.pipelines.video_to_video import Stylizer, stylize
from lcm_video.video.writer import VideoWriter

from .conftest import read_audio, read_frames, stream_info

NTSC = Fraction(30000, 1001)


def test_same_video_back_frames_exact_fps_and_audio(tiny_models, videos, tmp_path):
    out = tmp_path / "out.mp4"
    res = stylize(videos["ntsc"], out, "watercolor", models=tiny_models, quiet=True)
    src, got = stream_info(videos["ntsc"]), stream_info(out)
    assert got["frames"] == src["frames"] == res.frames
    assert got["fps"] == NTSC == res.fps
    video_seconds = got["frames"] / NTSC
    assert abs(got["audio_seconds"] - video_seconds) <= 1 / NTSC
    assert res.size == (64, 48)


def _lag_seconds(a: np.ndarray, b: np.ndarray, rate: int) -> float:
    """Lag of b against a from the cross-correlation of their 5 ms amplitude envelopes."""

    def env(x):
        n = len(x) // (rate // 200)
        return np.abs(x[: n * (rate // 200)]).reshape(n, -1).mean(1)

    ea, eb = env(a) - env(a).mean(), env(b) - env(b).mean()
    corr = np.correlate(eb, ea, mode="full")
    return (corr.argmax() - (len(ea) - 1)) / 200


def test_audio_of_the_rendered_range_is_in_sync(tiny_models, videos, tmp_path):
    out = tmp_path / "range.mp4"
    res = stylize(videos["ntsc"], out, "x", models=tiny_models, start=0.5, end=1.6, quiet=True)
    assert res.frames == math.ceil(1.6 * NTSC) - math.ceil(0.5 * NTSC)
    start = math.ceil(0.5 * NTSC) / NTSC  # the first frame's timestamp
    ref = read_audio(videos["ntsc"], start=float(start), duration=float(res.frames / NTSC))
    got = read_audio(out)
    assert abs(len(got) - len(ref)) <= 8000 / NTSC  # durations agree within a frame
    assert abs(_lag_seconds(ref, got, 8000)) <= 1 / 30  # the beep at 1.0 s lands where it was


def test_target_fps_resamples_and_no_audio_drops_the_track(tiny_models, videos, tmp_path):
    out = tmp_path / "12fps.mkv"
    res = stylize(videos["ntsc"], out, "x", models=tiny_models, fps="12", audio=False, quiet=True)
    got = stream_info(out)
    assert got["fps"] == 12 and got["frames"] == res.frames == math.ceil(Fraction(59, 1) / NTSC * 12)
    assert got["audio_seconds"] is None


def test_output_appears_only_when_complete(tiny_models, videos, tmp_path, monkeypatch):
    out = tmp_path / "atomic.mp4"
    seen = []
    original = VideoWriter.write

    def spy(self, frames):
        seen.append((out.exists(), self.tmp.exists()))
        original(self, frames)

    monkeypatch.setattr(VideoWriter, "write", spy)
    stylize(videos["moving"], out, "x", models=tiny_models, window=8, quiet=True)
    assert seen and all(not final and tmp for final, tmp in seen)
    assert out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["atomic.mp4"]


def test_a_failure_mid_render_leaves_nothing_behind(tiny_models, videos, tmp_path, monkeypatch):
    out = tmp_path / "fail.mp4"
    calls = []
    original = Stylizer.window

    def flaky(self, frames, indices, *args):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("simulated crash in the second window")
        return original(self, frames, indices, *args)

    monkeypatch.setattr(Stylizer, "window", flaky)
    with pytest.raises(RuntimeError, match="simulated"):
        stylize(videos["moving"], out, "x", models=tiny_models, window=8, quiet=True)
    assert list(tmp_path.iterdir()) == []


def test_progress_bar_shows_frames_rate_and_eta_and_quiet_silences_it(videos, tmp_path, capsys):
    assert (
        cli.main(["stylize", str(videos["moving"]), "-o", str(tmp_path / "a.mp4"), "-p", "x", "--model", "tiny"]) == 0
    )
    err = capsys.readouterr().err
    assert "stylize:" in err and "frame/s" in err and "<" in err  # tqdm: "n/N [elapsed<eta, rate frame/s]"
    assert "29/29" in err and "wrote" in err
    argv = ["stylize", str(videos["moving"]), "-o", str(tmp_path / "b.mp4"), "-p", "x", "--model", "tiny", "-q"]
    assert cli.main(argv) == 0
    assert capsys.readouterr().err == ""


def test_text_embeddings_are_computed_once_per_prompt(videos, tmp_path):
    models = load_models("tiny", device="cpu")
    calls = []
    models.pipe.text_encoder.register_forward_hook(lambda *a: calls.append(1))
    opts = {"window": 4, "max_frames": 12, "quiet": True}
    stylize(videos["moving"], tmp_path / "a.mp4", "one prompt", models=models, **opts)  # 3 windows
    assert len(calls) == 1
    stylize(videos["moving"], tmp_path / "b.mp4", "one prompt", models=models, **opts)
    assert len(calls) == 1  # cached across renders with the same models
    models_cfg = load_models("tiny-lora", device="cpu")
    calls.clear()
    models_cfg.pipe.text_encoder.register_forward_hook(lambda *a: calls.append(1))
    stylize(videos["moving"], tmp_path / "c.mp4", "p", models=models_cfg, guidance=2.0, **opts)
    assert len(calls) == 2  # prompt and negative (empty) prompt, once each


def test_device_and_dtype_choice(monkeypatch):
    from lcm_video.models import device

    assert pick_dtype("auto", torch.device("cpu")) == torch.float32  # this suite's default (conftest)
    monkeypatch.setattr(device, "native_bf16", lambda: True)
    assert pick_dtype("auto", torch.device("cpu")) == torch.bfloat16
    monkeypatch.setattr(device, "native_bf16", lambda: False)
    assert pick_dtype("auto", torch.device("cuda")) == torch.float16
    assert pick_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(lcm_video.UserError, match="float16 is not supported on the CPU"):
        pick_dtype("float16", torch.device("cpu"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("auto").type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert pick_device("auto").type == "cpu"
    with pytest.raises(lcm_video.UserError, match="no CUDA GPU"):
        pick_device("cuda")


def test_package_functions_stay_functions(videos, tmp_path, tiny_models):
    """`import lcm_video.x` sets the package attribute x to the submodule: no export may share a submodule's name."""
    import importlib
    import pkgutil

    for mod in pkgutil.iter_modules(lcm_video.__path__):
        if mod.name == "__main__":
            continue
        importlib.import_module(f"lcm_video.{mod.name}")
        assert mod.name not in lcm_video.__all__
    for name in lcm_video.__all__:
        assert type(getattr(lcm_video, name)).__name__ != "module"
    for i in range(2):
        lcm_video.stylize(videos["moving"], tmp_path / f"{i}.mp4", "x", models=tiny_models, max_frames=2, quiet=True)


def test_prompt_keyframes_switch_the_prompt_at_their_output_frame(tiny_models, videos, tmp_path, capsys):
    """--prompt-at for stylise: before the key the frames are the first prompt's, from it on the second's (no
    blending, noise keyed per frame, so each frame depends on its own text only)."""
    common = dict(models=tiny_models, quiet=True, blend=0.0, pixel_blend=0.0, codec="libx264rgb", crf=0, audio=False)
    common["window"] = 4
    common["max_frames"] = 12
    src = videos["moving"]
    stylize(src, tmp_path / "a.mp4", "ink", **common)
    stylize(src, tmp_path / "b.mp4", "neon", **common)
    stylize(src, tmp_path / "ab.mp4", "ink", prompt_at=("6=neon",), **common)
    a, b, ab = (read_frames(tmp_path / f"{n}.mp4").astype(int) for n in ("a", "b", "ab"))
    assert np.abs(ab[0] - a[0]).max() <= 1 and np.abs(ab[6:] - b[6:]).max() <= 1
    assert np.abs(a[6:] - b[6:]).max() > 3  # the control: the prompts give different frames (8 levels here)
    args = ["stylize", str(src), "-o", str(tmp_path / "x.mp4"), "-p", "x", "--max-frames", "12", "-q"]
    assert cli.main([*args, "--prompt-at", "12=y"]) == 2
    assert "past the output's last frame (11)" in capsys.readouterr().err


@pytest.mark.slow  # ~2.5 s; the quick loop stays under 90 s
def test_an_anamorphic_source_keeps_its_display_aspect(tiny_models, tmp_path):
    """120x120 coded pixels with SAR 4:3 are shown 160x120: the output is 160x120 square pixels, and the frames
    the model sees are the source as displayed (compared with ffmpeg's own SAR-aware scale)."""
    import subprocess

    from lcm_video.video.reader import FrameReader, probe
    from lcm_video.video.synthetic import lavfi_clip

    from .conftest import FFMPEG

    src = lavfi_clip(tmp_path / "ana.mp4", size="120x120", encode=["-vf", "setsar=4/3"], audio=False)
    info = probe(src)
    assert (info.width, info.height, info.sar) == (160, 120, Fraction(4, 3))
    res = stylize(src, tmp_path / "out.mp4", "x", models=tiny_models, quiet=True)
    assert res.size == (160, 120) and read_frames(tmp_path / "out.mp4").shape[1:3] == (120, 160)
    log = subprocess.run([FFMPEG, "-hide_banner", "-i", str(tmp_path / "out.mp4")], capture_output=True, text=True)
    assert "SAR 4:3" not in log.stderr
    ref = subprocess.run(
        [FFMPEG, "-loglevel", "error", "-i", str(src), "-frames:v", "1", "-vf", "scale=iw*sar:ih,setsar=1"]
        + ["-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        check=True,
    ).stdout
    ref = np.frombuffer(ref, np.uint8).reshape(120, 160, 3).astype(int)
    ours = FrameReader(info, (160, 120)).read([0])[0].astype(int)
    assert np.abs(ours - ref).mean() < 4  # the same picture, up to the two scalers' filters


def test_a_folder_of_frames_is_a_source(tiny_models, videos, tmp_path, capsys):
    """Image-sequence input: natural order (frame2 before frame10), --fps sets its rate, else 24 is said."""
    from PIL import Image

    frames = read_frames(videos["moving"])[:12]
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"frame{i}.png")
    (folder / "notes.txt").write_text("not a frame")
    common = dict(models=tiny_models, quiet=True, codec="libx264rgb", crf=0, blend=0.0, pixel_blend=0.0)
    stylize(folder, tmp_path / "seq.mp4", "x", fps=12, **common)
    assert stream_info(tmp_path / "seq.mp4")["fps"] == Fraction(12) and read_frames(tmp_path / "seq.mp4").shape[0] == 12
    # The same frames from the video (same noise keys, no blending) give the same output: order and pixels kept.
    stylize(videos["moving"], tmp_path / "vid.mp4", "x", max_frames=12, **common)
    a, b = read_frames(tmp_path / "seq.mp4").astype(int), read_frames(tmp_path / "vid.mp4").astype(int)
    assert np.abs(a - b).max() <= 2
    # The library warns as a Note what the command line prints as a note (below).
    with pytest.warns(Note, match="12 images read as a video at 24 fps; give --fps"):
        stylize(folder, tmp_path / "lib.mp4", "x", max_frames=2, **common)
    out = tmp_path / "cli.mp4"
    assert cli.main(["stylize", str(folder), "-o", str(out), "-p", "x", "--model", "tiny", "--max-frames", "4"]) == 0
    assert "12 images read as a video at 24 fps; give --fps" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["stylize", str(empty), "-o", str(out), "-p", "x", "--model", "tiny", "-q"]) == 2
    assert "has no images" in capsys.readouterr().err


def test_strength_keyframes_give_each_frame_its_own_schedule(tiny_models, videos, tmp_path, capsys):
    """--strength-at: a key equal to --strength changes nothing (bit for bit); after a key the frames are those of a
    render at that strength, before it those of --strength (no blending: each frame depends on its own schedule)."""
    common = dict(models=tiny_models, quiet=True, blend=0.0, pixel_blend=0.0, codec="libx264rgb", crf=0, audio=False)
    common["window"] = 4
    common["max_frames"] = 12
    src = videos["moving"]
    stylize(src, tmp_path / "lo.mp4", "x", strength=0.3, **common)
    stylize(src, tmp_path / "hi.mp4", "x", strength=0.7, **common)
    stylize(src, tmp_path / "same.mp4", "x", strength=0.3, strength_at=("6=0.3",), **common)
    stylize(src, tmp_path / "key.mp4", "x", strength=0.3, strength_at=("5=0.7", "10=0.7"), **common)
    lo, hi, same, key = (read_frames(tmp_path / f"{n}.mp4").astype(int) for n in ("lo", "hi", "same", "key"))
    assert np.array_equal(same, lo)
    assert np.abs(key[0] - lo[0]).max() <= 1 and np.abs(key[5:] - hi[5:]).max() <= 1
    assert np.abs(lo[5:] - hi[5:]).max() > 10  # the control: the strengths differ
    base = ["stylize", str(src), "-o", str(tmp_path / "x.mp4"), "-p", "x", "--model", "tiny", "-q"]
    for extra, expect in (
        (["--strength-at", "5=1.5"], "--strength-at 5=1.5: the value must be in (0, 1]"),
        (["--strength-at", "5=0.05"], "raise --strength"),
        (["--strength-at", "5=0.5", "--motion-adapter", "tiny"], "not with --motion-adapter"),
    ):
        assert cli.main(base + extra) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and expect in err[0], err


@pytest.mark.slow  # 4 s: over the quick loop's budget (README), in the full suite
@pytest.mark.parametrize("extra", [{}, {"warp": "flow", "pixel_blend": 0.5, "cross_frame": "anchor+prev"}])
def test_frames_pushed_one_at_a_time_come_out_as_a_file_render(tiny_models, videos, tmp_path, extra):
    """The live-mode contract: ``Stylizer.stream`` fed the source's frames one by one from any iterator gives the
    frames ``stylize`` writes for that source (PNG output: no encoder in between)."""
    import imageio.v3 as iio

    from lcm_video.pipelines.prepare import prepare_stylize
    from lcm_video.pipelines.window import window_layout
    from lcm_video.settings.configs import StylizeConfig
    from lcm_video.settings.resolve import validate
    from lcm_video.video.reader import FrameReader

    opts = {"blend": 0.5, "shared_noise": 0.5, "window": 4, "max_frames": 12, "seed": 5, **extra}
    stylize(videos["moving"], tmp_path / "file" / "%05d.png", "ink", models=tiny_models, quiet=True, **opts)
    rendered = np.stack([iio.imread(p) for p in sorted((tmp_path / "file").glob("*.png"))])

    cfg = validate(StylizeConfig.make(prompt="ink", **opts))
    prep = prepare_stylize(videos["moving"], tmp_path / "unused.mp4", cfg)
    source = FrameReader(prep.info, prep.size).read(prep.plan.sources)  # uint8 (12, h, w, 3)
    stylizer = Stylizer(tiny_models, cfg, batch=window_layout(tiny_models, cfg, len(prep.plan)).size)
    streamed = np.stack(list(stylizer.stream(frame for frame in source)))
    assert rendered.shape == streamed.shape == (12, *source.shape[1:])
    assert np.array_equal(streamed, rendered)
