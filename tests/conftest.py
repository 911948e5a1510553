"""Shared fixtures: tiny models (random weights, CPU, seconds) and small synthetic videos made with ffmpeg."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
# One OpenMP thread for torch (and BLAS) here and in every process a test starts: the tests' models are small, and on
# a shared 2-core machine torch's second thread costs 2-10x (BENCHMARKS.md, "Threads on 2 cores"). Set
# OMP_NUM_THREADS to run the suite with more.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import imageio_ffmpeg  # noqa: E402
import torch  # noqa: E402

from lcm_video.video.synthetic import lavfi_clip  # noqa: E402

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
ROOT = Path(__file__).resolve().parent.parent
torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))  # in case torch was imported before the variable was set


def read_frames(path: Path) -> np.ndarray:
    """All frames of a (small) video as uint8 (f, h, w, 3), through decord."""
    import decord

    vr = decord.VideoReader(str(path))
    return vr.get_batch(list(range(len(vr)))).asnumpy()


def stream_info(path: Path) -> dict:
    """Frame count and exact fps (decord), and audio duration in seconds (decoded by ffmpeg; None if no audio)."""
    import decord

    from lcm_video.video.reader import exact_fps

    vr = decord.VideoReader(str(path))
    info = {"frames": len(vr), "fps": exact_fps(vr.get_avg_fps())}
    res = subprocess.run(
        [FFMPEG, "-hide_banner", "-i", str(path), "-map", "0:a:0", "-f", "null", "-"],
        capture_output=True,
        text=True,
    )
    times = re.findall(r"time=(\d+):(\d+):([\d.]+)", res.stderr)
    info["audio_seconds"] = None
    if res.returncode == 0 and times:
        h, m, s = times[-1]
        info["audio_seconds"] = int(h) * 3600 + int(m) * 60 + float(s)
    return info


def read_audio(path: Path, rate: int = 8000, start: float = 0.0, duration: float | None = None) -> np.ndarray:
    """Mono float32 PCM of a file's audio."""
    cmd = [FFMPEG, "-hide_banner", "-loglevel", "error", "-ss", f"{start}", "-i", str(path)]
    if duration is not None:
        cmd += ["-t", f"{duration}"]
    cmd += ["-map", "0:a:0", "-ac", "1", "-ar", str(rate), "-f", "f32le", "-"]
    return np.frombuffer(subprocess.run(cmd, check=True, capture_output=True).stdout, dtype=np.float32)


@pytest.fixture(scope="session", autouse=True)
def float32_by_default():
    """In this process `--dtype auto` means float32 on every CPU, so a test's frames do not depend on whether the CPU
    running it computes bfloat16 natively; the random-weight models of the tests also turn bfloat16's rounding into
    differences of several levels that trained weights do not (BENCHMARKS.md). Tests of the bfloat16 default ask for
    it (``native_bf16``)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("lcm_video.models.device.native_bf16", lambda: False)
        yield


@pytest.fixture(autouse=True)
def sigint_as_it_was(request):
    """A test that leaves this process's SIGINT handler changed gets it back after it (said on stderr). Why: a
    library that sets it to SIG_IGN in-process made every later child process start with Ctrl-C ignored (a child
    inherits an ignored signal through exec), and the live Ctrl-C test then failed in whichever worker ran after it."""
    import signal
    import sys

    before = signal.getsignal(signal.SIGINT)
    yield
    if signal.getsignal(signal.SIGINT) is not before:
        print(f"{request.node.nodeid} left SIGINT at {signal.getsignal(signal.SIGINT)}; restored", file=sys.stderr)
        signal.signal(signal.SIGINT, before)


STYLE = "<style image>"
"""Stands for the ``style_image`` fixture's path in a test's parametrisation (parameters are made before fixtures)."""


@pytest.fixture(scope="session")
def style_image(tmp_path_factory) -> str:
    """A 40x56 PNG of random colours, a ``--style-image`` reference."""
    from PIL import Image

    path = tmp_path_factory.mktemp("style") / "reference.png"
    Image.fromarray(np.random.default_rng(7).integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(path)
    return str(path)


def with_style(options: dict, style_image: str) -> dict:
    """``options`` with :data:`STYLE` replaced by the style image's path."""
    return {k: style_image if v == STYLE else v for k, v in options.items()}


@pytest.fixture(scope="session")
def tiny_models():
    from lcm_video.models.loading import load_models

    return load_models("tiny", device="cpu")


@pytest.fixture(scope="session")
def videos(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("videos")
    return {
        "moving": lavfi_clip(d / "moving.mp4"),
        "static": lavfi_clip(d / "static.mp4", source="smptebars", audio=False),
        "ntsc": lavfi_clip(d / "ntsc.mp4", seconds=2.0, crf=23),
    }
