"""Every output records how it was made (issue 11): the settings in the video's own metadata, printed by ``lcm-video
info``, rendered again identically by ``--config OUT.mp4`` and ``lcm-video rerun``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from lcm_video import __version__, cli
from lcm_video.record import read_record

from .conftest import read_frames


@pytest.fixture(scope="module")
def made(tmp_path_factory, videos):
    d = tmp_path_factory.mktemp("made")
    lora_free = ["--model", "tiny", "-q", "--seed", "5", "--blend", "0.3", "--shared-noise", "0.4"]
    args = ["stylize", str(videos["moving"]), "-o", str(d / "s.mp4"), "-p", "ink wash", "--start", "0.2", *lora_free]
    assert cli.main(args) == 0
    assert cli.main(["generate", "-p", "a fox", "-o", str(d / "g.mp4"), "--model", "tiny", "--frames", "8", "-q"]) == 0
    return d


def test_the_settings_are_in_the_video(made, videos):
    rec = read_record(made / "s.mp4")
    assert rec["tool"] == "lcm_video" and rec["version"] == __version__ and rec["command"] == "stylize"
    assert rec["source"]["path"] == str(videos["moving"].resolve())
    s = rec["settings"]
    assert (s["prompt"], s["seed"], s["blend"], s["shared_noise"], s["start"]) == ("ink wash", 5, 0.3, 0.4, 0.2)
    assert "quiet" not in s
    # `--dtype auto` resolves per machine: the record keeps what it resolved to
    assert rec["ran"] == [{"device": "cpu", "dtype": "float32", "backend": "torch"}]
    assert read_record(made / "g.mp4")["ran"] == rec["ran"]


@pytest.mark.slow  # three more renders; the quick loop stays under 90 s
def test_rerun_and_config_from_the_video_render_identical_frames(made, videos, tmp_path):
    for name in ("s", "g"):
        assert cli.main(["rerun", str(made / f"{name}.mp4"), "-o", str(tmp_path / f"{name}.mp4"), "-q"]) == 0
        assert np.array_equal(read_frames(made / f"{name}.mp4"), read_frames(tmp_path / f"{name}.mp4"))
    src, out = str(videos["moving"]), str(tmp_path / "c.mp4")
    assert cli.main(["stylize", src, "-o", out, "--config", str(made / "s.mp4"), "-q"]) == 0
    assert np.array_equal(read_frames(made / "s.mp4"), read_frames(tmp_path / "c.mp4"))
    # A flag still wins over the recorded settings.
    assert cli.main(["stylize", src, "-o", out, "--config", str(made / "s.mp4"), "--seed", "6", "-q"]) == 0
    assert not np.array_equal(read_frames(made / "s.mp4"), read_frames(tmp_path / "c.mp4"))


def test_rerun_says_when_dtype_auto_means_another_precision_here(made, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("lcm_video.models.device.native_bf16", lambda: True)  # as on a CPU with bfloat16 in hardware
    assert cli.main(["rerun", str(made / "g.mp4"), "-o", str(tmp_path / "g.mp4"), "-q"]) == 0
    err = capsys.readouterr().err
    assert "rendered in float32 (--dtype auto there) and auto means bfloat16 here" in err
    assert f"--config {made / 'g.mp4'} --dtype float32" in err


def test_info_prints_a_yaml_config(made, capsys):
    assert cli.main(["info", str(made / "g.mp4")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# ") and "made by lcm-video" in out
    settings = yaml.safe_load(out)
    assert settings["prompt"] == "a fox" and settings["frames"] == 8 and settings["motion_adapter"] == "tiny"
    assert "# ran on cpu in float32 (torch backend)" in out
    assert cli.main(["info", str(made / "g.mp4"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["command"] == "generate"


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["info", "{src}"], "has no lcm-video settings"),
        (["stylize", "{src}", "-o", "{tmp}/x.mp4", "--config", "{made}/g.mp4"], "was made by `lcm-video generate`"),
        (["rerun", "{made}/s.mp4", "-o", "{tmp}/x.mp4", "--source", "{tmp}/gone.mp4"], "does not exist"),
    ],
)
def test_records_that_do_not_fit_are_one_line_errors(made, videos, tmp_path, capsys, args, expect):
    names = {"src": str(videos["moving"]), "tmp": str(tmp_path), "made": str(made)}
    assert cli.main([a.format(**names) for a in args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expect in err[0], err
    assert not (tmp_path / "x.mp4").exists()


def test_eval_against_another_source_than_the_recorded_one_warns(made, videos):
    from lcm_video.metrics import evaluate

    assert not any("was made from" in n for n in evaluate(made / "s.mp4", videos["moving"]).notes)
    notes = evaluate(made / "s.mp4", videos["static"]).notes
    assert any(f"was made from {str(videos['moving'].resolve())!r}" in n for n in notes)
