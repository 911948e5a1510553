"""Every option is declared once: the parsers, YAML keys, keyword arguments, batch job keys, --help and the README's
tables all come from the declarations, so they cannot disagree."""

from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path

import pytest

from lcm_video import cli
from lcm_video.cli.docs import commands_in, render_tables
from lcm_video.errors import UserError
from lcm_video.settings.configs import GenerateConfig, StylizeConfig
from lcm_video.settings.flags import options_for
from lcm_video.settings.parts import PARTS, SETTINGS
from lcm_video.settings.resolve import resolve

from .conftest import ROOT

COMMANDS = ("stylize", "generate", "batch", "distill", "eval", "info", "rerun", "ui", "live")


def _help(command: str, capsys, usage_only: bool = False) -> str:
    """``lcm-video COMMAND --help`` as printed (or its usage lines alone), whitespace collapsed."""
    assert cli.main([command, "--help"]) == 0
    text = capsys.readouterr().out
    return " ".join((text.split("\n\n")[0] if usage_only else text).split())


def test_readme_option_tables_are_the_declarations():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert sorted(commands_in(text)) == sorted(COMMANDS)
    assert render_tables(text) == text, "README tables drifted: run `python -m lcm_video.cli.docs README.md`"


def test_a_changed_default_would_fail_the_readme_check(monkeypatch):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    monkeypatch.setitem(SETTINGS, "blend", SETTINGS["blend"].__class__(**{**vars(SETTINGS["blend"]), "default": 0.3}))
    assert render_tables(text) != text


@pytest.mark.parametrize("command", COMMANDS)
def test_the_parser_has_exactly_the_declared_flags(command, capsys):
    flags, positionals = {"-h"}, []
    for opt in options_for(command):
        if opt.positional:
            positionals.append(opt.name)
        else:
            flags |= {opt.short or opt.cli}  # usage shows the short form where there is one
    usage = _help(command, capsys, usage_only=True)
    assert set(re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", usage)) == flags
    assert [w for w in usage.split() if w in positionals] == positionals


def test_help_states_each_default(capsys):
    help_text = {c: _help(c, capsys) for c in ("stylize", "generate")}
    assert "(default: 0.5)" in help_text["stylize"] and "(default: 0)" in help_text["generate"]  # --blend
    for command, text in help_text.items():
        for opt in options_for(command):
            shown = opt.default_text(command)
            if opt.kind != "bool" and shown and not (opt.positional or opt.required):
                assert f"(default: {' '.join(shown.split())})" in text, (command, opt.name)


def test_each_setting_lives_in_one_part_and_every_part_field_is_declared():
    names = [f for part in PARTS.values() for f in part.__dataclass_fields__]
    assert len(names) == len(set(names)) == len(SETTINGS)


@pytest.mark.parametrize("cls", [StylizeConfig, GenerateConfig])
def test_every_setting_is_a_keyword_a_yaml_key_and_a_job_key(cls, tmp_path):
    cfg = cls()
    flat = cfg.flat()
    assert cls.make(**flat) == cfg  # keyword arguments
    path = tmp_path / "all.yaml"
    path.write_text(json.dumps({k: str(v) if isinstance(v, Fraction) else v for k, v in flat.items()}))
    assert cls.from_options(json.loads(path.read_text())) == cfg  # YAML keys (JSON is YAML)
    from lcm_video.batch.jobs import mode_keys

    assert mode_keys(cls.command) == set(flat)  # batch job keys


def test_per_command_defaults_and_derived_defaults_resolve_in_one_place():
    s, g = StylizeConfig(), GenerateConfig()
    assert (s.temporal.shared_noise, s.temporal.blend, s.frames.fps) == (1.0, 0.5, None)
    assert (g.temporal.shared_noise, g.temporal.blend, g.frames.fps) == (0.0, 0.0, Fraction(8))
    with pytest.raises(UserError, match="--strength is not an option of generate"):
        GenerateConfig.make(strength=0.5)


def test_overlap_default_follows_a_short_context(tmp_path, capsys):
    """--context 4 alone used to fail with "--overlap (4) must be smaller than --context (4)"."""
    out = tmp_path / "c4.mp4"
    argv = ["generate", "-p", "fox", "-o", str(out), "--model", "tiny", "--context", "4", "--frames", "8", "-q"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    assert out.is_file()


@pytest.mark.parametrize(
    "argv,expect",
    [
        (["stylize", "in.mp4", "-o", "o.mp4", "--strenght", "0.5"], "did you mean --strength?"),
        (["generate", "-o", "o.mp4", "--prompt-a", "3=x"], "did you mean --prompt-at?"),
        (["batch", "j.yaml", "--out", "o", "--segment-frame", "9"], "did you mean --segment-frames?"),
    ],
)
def test_a_mistyped_flag_gets_a_suggestion(argv, expect, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expect in err[0]


def test_a_mistyped_config_key_gets_a_suggestion(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("prompt: x\nstrenght: 0.4\n")
    with pytest.raises(UserError, match=r"unknown key 'strenght' in .*did you mean strength\?"):
        resolve("stylize", path, {})
    with pytest.raises(UserError, match=r"did you mean blend\?"):
        StylizeConfig.make(blnd=0.3)


def test_values_are_checked_by_their_declaration():
    for opts, expect in [
        ({"steps": 0}, "--steps must be at least 1"),
        ({"blend": 1.5}, r"--blend must be in \[0, 1\]"),
        ({"strength": 0}, r"--strength must be in \(0, 1\]"),
        ({"width": 100}, "multiple of 8, got 100; try 96 or 104"),
        ({"fuse": "zigzag"}, "--fuse must be one of flat, linear, pyramid"),
        ({"seed": "x"}, "--seed expects a whole number"),
    ]:
        with pytest.raises(UserError, match=expect):
            resolve("stylize", None, {"prompt": "p", **opts})


def test_configs_folder_holds_only_valid_keys(tmp_path):
    """Every example config resolves, and each of its keys reaches the config with the file's value (none is dropped
    or overridden by a default); the example job file passes the batch checks, its inputs found."""
    import yaml

    from lcm_video.batch.jobs import load_jobs

    checked = []
    for path in sorted(Path(ROOT / "configs").glob("*.yaml")):
        if path.name == "jobs.yaml":
            continue
        command = "generate" if "generate" in path.name else "stylize"
        keys = yaml.safe_load(path.read_text())
        flat = resolve(command, path, {}).flat()
        assert keys and all(flat[k] == SETTINGS[k].coerce(v) for k, v in keys.items()), path.name
        checked.append(command)
    assert set(checked) == {"generate", "stylize"}  # the README's examples: one for each command at least
    jobs = load_jobs(ROOT / "configs" / "jobs.yaml", tmp_path / "out")
    assert {j.mode for j in jobs} == {"stylize", "generate"} and all(j.input is None or j.input.is_file() for j in jobs)


def test_an_unexpected_note_of_lcm_video_fails_a_test_and_other_libraries_warnings_do_not():
    """pyproject.toml's filters: the library's notes (``Note``) are errors in this suite unless a test expects them
    (``pytest.warns(Note)``); other libraries' ``UserWarning``s are ignored."""
    import warnings

    from lcm_video.errors import Note

    with pytest.raises(Note, match="unexpected"):
        warnings.warn("unexpected", Note, stacklevel=1)
    warnings.warn("another library's notice", UserWarning, stacklevel=1)  # ignored: no error


def test_ci_runs_the_readmes_set_up_line_and_test_command_verbatim():
    readme, ci = (ROOT / "README.md").read_text(), (ROOT / ".ci" / "run").read_text()
    lines = readme.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("pip install torch=="))
    setup = lines[first : first + 2]
    assert "download.pytorch.org/whl/cpu" in setup[0]  # a stock pip would pull the CUDA build otherwise
    assert setup[1] == 'pip install -e ".[dev]"'  # never PyTorch's index for the rest (issue 32: 806 s of retries)
    ran = ci.replace(" -q ", " ").replace(" \\\n    ", " ")
    for line in setup:
        assert line.replace("pip install", "python3 -m pip install") in ran
    assert "python3 -m pytest -q" in ci and "python -m pytest -q\n" in readme


def test_validate_refuses_exactly_the_steps_and_strengths_lcm_cannot_run():
    """The torch-free rule in ``validate`` against ``LCMScheduler.set_timesteps`` itself, every steps 1-50 and
    strength 0.01-1: it refuses a pair exactly when the scheduler would."""
    from diffusers import LCMScheduler

    from lcm_video.errors import UserError
    from lcm_video.settings.resolve import check_steps_fit

    mismatches = []
    for steps in range(1, 51):
        for hundredths in range(1, 101):
            strength = hundredths / 100
            try:
                LCMScheduler().set_timesteps(steps, strength=strength)
                runs = True
            except ValueError:
                runs = False
            try:
                check_steps_fit(steps, strength)
                allowed = True
            except UserError:
                allowed = False
            if runs != allowed:
                mismatches.append((steps, strength))
    assert not mismatches


def test_a_config_without_a_prompt_is_refused_by_validate_with_the_fix():
    from lcm_video.errors import UserError
    from lcm_video.settings.configs import GenerateConfig, StylizeConfig
    from lcm_video.settings.resolve import validate

    for cls in (StylizeConfig, GenerateConfig):
        with pytest.raises(UserError, match="no prompt: give -p/--prompt"):
            validate(cls.make())
    validate(StylizeConfig.make(prompt_at=("0=a fox",)))  # keyframed prompts are a prompt


def test_a_config_is_checked_when_it_is_made():
    """``StylizeConfig.make(strength=2)`` is refused there, with the option's message, not later at render time."""
    from lcm_video.errors import UserError
    from lcm_video.settings.configs import GenerateConfig, StylizeConfig

    with pytest.raises(UserError, match=r"--strength must be in \(0, 1\], got 2; 0.3-0.6 keeps the source's layout"):
        StylizeConfig.make(strength=2)
    with pytest.raises(UserError, match="--fuse must be one of flat, linear, pyramid"):
        GenerateConfig.make(fuse="sideways")
    with pytest.raises(UserError, match="--strength must be"):
        StylizeConfig.make(strength=0.5).replace(strength=0)
    assert StylizeConfig.make(strength=0.3).sampling.strength == 0.3


def test_keyframed_options_are_parsed_once_by_their_kind_in_every_form_a_user_writes():
    """``--prompt-at`` / ``--strength-at`` become sorted (frame, value) pairs when the config is made, from flags,
    a YAML mapping or list, or a record's JSON pairs; everything downstream reads the pairs."""
    import json

    import yaml

    from lcm_video.errors import UserError
    from lcm_video.settings.configs import StylizeConfig
    from lcm_video.settings.parts import SETTINGS
    from lcm_video.ui.widgets import changed, command_line

    want = ((0, "a fox"), (24, "a fox at night"))
    for given in (
        ("24=a fox at night", "0=a fox"),  # flags, any order
        {24: "a fox at night", 0: "a fox"},  # a YAML mapping
        [[0, "a fox"], [24, "a fox at night"]],  # a record's JSON
        want,
    ):
        assert StylizeConfig.make(prompt_at=given).prompt.prompt_at == want
    cfg = StylizeConfig.make(prompt="x", prompt_at=want, strength_at={"48": "0.7", 0: 0.3})
    assert cfg.sampling.strength_at == ((0, 0.3), (48, 0.7))
    assert SETTINGS["strength_at"].format(cfg.sampling.strength_at) == ("0=0.3", "48=0.7")
    # The YAML the UI saves and the command it shows read back to the same pairs.
    saved = yaml.safe_load(yaml.safe_dump(changed(cfg)))
    assert StylizeConfig.make(**saved).prompt.prompt_at == want
    assert "--prompt-at '24=a fox at night'" in command_line(cfg, "in.mp4", "out.mp4")
    assert StylizeConfig.make(**json.loads(json.dumps(cfg.flat()))).flat() == cfg.flat()
    opt = SETTINGS["strength_at"]
    for bad, msg in (
        ("24", "--strength-at '24' must be FRAME=S: a frame number"),
        ("x=0.5", "--strength-at 'x=0.5' must be FRAME=S"),
        ("-1=0.5", "must be FRAME=S"),
        (("4=0.5", "4=0.6"), "gives frame 4 twice"),
    ):
        with pytest.raises(UserError, match=msg):
            opt.coerce(bad)
    with pytest.raises(UserError, match=r"--strength-at 4=1.5: the value must be in \(0, 1\]"):
        StylizeConfig.make(strength_at=("4=1.5",))
