"""--compile: torch.compile'd UNet and VAE give the eager frames (to float rounding) and, because every call of a
render has one fixed shape, compile once and never recompile from window to window."""

from __future__ import annotations

import numpy as np
import pytest

from lcm_video import load_models, stylize

from .conftest import read_frames


@pytest.mark.slow
def test_compiled_render_matches_eager_and_never_recompiles(tmp_path, videos):
    import torch._dynamo

    eager = load_models("tiny", device="cpu")
    compiled = load_models("tiny", device="cpu")  # its own copy: compiling is in place
    # 29 frames in windows of 8 → 8, 8, 8 and a tail of 5 padded to 8; VAE chunks likewise.
    opts = dict(window=8, quiet=True, audio=False, codec="libx264rgb", crf=0)
    stylize(videos["moving"], tmp_path / "eager.mp4", "x", models=eager, **opts)
    torch._dynamo.reset()
    with torch._dynamo.config.patch(error_on_recompile=True):
        res = stylize(videos["moving"], tmp_path / "compiled.mp4", "x", models=compiled, compile=True, **opts)
    assert compiled.compiled and res.frames == 29
    a = read_frames(tmp_path / "eager.mp4").astype(int)
    b = read_frames(tmp_path / "compiled.mp4").astype(int)
    diff = np.abs(a - b)
    assert diff.max() <= 3 and diff.mean() < 0.05, (diff.max(), diff.mean())


def test_compile_without_a_cpp_compiler_is_a_one_line_user_error(tmp_path, videos, monkeypatch, capsys):
    from lcm_video import cli
    from lcm_video.models import container as models

    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(models.shutil, "which", lambda name: None)
    out = tmp_path / "o.mp4"
    code = cli.main(["stylize", str(videos["moving"]), "-o", str(out), "-p", "x", "--model", "tiny", "--compile"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "C++ compiler" in err[0] and not out.exists()
