"""The web UI's inputs, made from the options' declarations (``config.py``): one Gradio component per option, with
the option's name as the API parameter, its default as the value, its limits as the slider's range and its help as
the hint. Nothing about an option is restated here, so the page cannot drift from the command line.

Also the way back: the page's values → the flat ``{name: value}`` options that
:func:`lcm_video.settings.resolve.resolve` takes, and a resolved config → the ``lcm-video`` command line and YAML
file that reproduce it.
"""

from __future__ import annotations

import inspect
import shlex
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import yaml

from ..options import GENERATE, KEYS, STYLIZE, Option
from ..settings.configs import CONFIGS
from ..settings.parts import SETTINGS

# Options the page sets itself (the output path, the progress bar) or takes another way (the source video upload).
NOT_SHOWN = ("input", "output", "config", "quiet")

# What the page shows above the fold, per command; every other option of the command goes under "Advanced".
MAIN = {
    STYLIZE: ("prompt", "negative_prompt", "model", "strength", "scheduler", "steps", "guidance", "seed", "blend",
              "pixel_blend", "shared_noise", "warp", "cross_frame", "control", "width", "height", "start", "end",
              "style_image", "style_scale"),
    GENERATE: ("prompt", "negative_prompt", "prompt_at", "model", "motion_adapter", "frames", "fps", "scheduler",
               "steps", "guidance", "seed", "width", "height", "style_image", "style_scale"),
}  # fmt: skip


def shown(command: str) -> list[Option]:
    """Every setting of ``command`` the page has an input for, in declaration order: all but :data:`NOT_SHOWN`."""
    return [o for o in SETTINGS.values() if command in o.commands and o.name not in NOT_SHOWN]


def label(opt: Option) -> str:
    return opt.name.replace("_", " ")


def hint(opt: Option, command: str, value: Any = None) -> str:
    """The option's ``--help`` line and flag; for an on-by-default switch (``--no-audio``) the box says what
    unticking does; a value the page starts with (``lcm-video ui --model``) is named instead of the default."""
    text = opt.help_text(command) if value is None else f"{opt.help} (this page starts with {value})"
    if opt.kind == "bool" and opt.cli.startswith("--no-"):
        return f"untick: {text} ({opt.cli})"
    return f"{text} ({opt.cli})"


def ui_value(opt: Option, command: str, value: Any = None) -> Any:
    """An option's value as its component holds it: lists as lines, a frame rate as text, no value as empty."""
    value = opt.default_for(command) if value is None else value
    if opt.kind in KEYS:
        return "\n".join(opt.format(value or ()))
    if opt.kind == "strs":
        return "\n".join(value or ())
    if opt.kind == "fps":
        return "" if value is None else str(value)
    if (opt.kind == "str" and not opt.choices) or (opt.kind in ("int", "float") and value is None):
        return "" if value is None else value  # a derived default is an empty box (a number box would be required)
    if opt.choices and value is None:
        return ""  # a derived choice (``--scheduler``: the model's) is the dropdown's first, empty entry
    return value


SLIDER_SPAN = 1000  # wider ranges (--frames: 1-100000) get a number box: a slider could not be dragged to 16 or 24


def component(opt: Option, command: str, value: Any = None, choices: list[str] | None = None, tab: str | None = None):
    """The Gradio input of ``opt``: a checkbox, a dropdown of its choices (or of ``choices``), a slider over a closed
    range, a number, or text (one entry per line for a repeatable option). ``tab``: the element id's prefix when it
    is not the command's (the Live tab's stylise options: ``#live-prompt``)."""
    import gradio as gr

    kw = {"label": label(opt), "info": hint(opt, command, value), "value": ui_value(opt, command, value)}
    kw["elem_id"] = f"{tab or command}-{opt.name}"  # a stable handle for browsers and tests: #stylize-prompt
    if opt.kind == "bool":
        return gr.Checkbox(**kw)
    if opt.upload == "image":  # a file the page uploads (gradio serves only its own uploads), its hint inside
        return gr.Image(
            label=kw["label"], value=None, type="filepath", sources=["upload"], placeholder=kw["info"], height=160,
            elem_id=kw["elem_id"],
        )  # fmt: skip
    if opt.repeatable:  # --control canny:0.8, --prompt-at 24=…, --lora …: a line each (their choices in the hint)
        return gr.Textbox(lines=2, placeholder=f"one {opt.metavar or 'value'} per line", **kw)
    if opt.choices or choices:
        options = list(opt.choices or choices)
        if opt.choices and opt.default_for(command) is None:  # derived: an empty entry that says from what
            options = [(opt.default_text(command) or "default", ""), *options]
        return gr.Dropdown(choices=options, allow_custom_value=not opt.choices, **kw)
    derived = opt.default_for(command) is None  # ``--steps``: the model's; a slider cannot be left empty
    ranged = opt.lo is not None and opt.hi is not None and opt.hi - opt.lo <= SLIDER_SPAN
    if opt.kind in ("int", "float") and ranged and not derived:
        step = 1 if opt.kind == "int" else (0.5 if opt.hi > 10 else 0.01)
        return gr.Slider(minimum=opt.lo, maximum=opt.hi, step=step, **kw)
    if opt.kind in ("int", "float") and opt.default_for(command) is not None:
        return gr.Number(precision=0 if opt.kind == "int" else None, minimum=opt.lo, maximum=opt.hi, **kw)
    placeholder = opt.default_text(command) or (opt.metavar or "")  # a derived default says what it derives from
    return gr.Textbox(placeholder=placeholder, **kw)


def optional_uploads(fn: Callable, command: str) -> Callable:
    """``fn(request, **values)`` with a signature that also names ``command``'s upload options (``--style-image``)
    with a default of None, so the API takes an upload that has no initial value as optional, not required."""
    sig = inspect.signature(fn)
    fixed = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    names = [o.name for o in shown(command) if o.upload]
    extra = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=None) for n in names]
    rest = [p for p in sig.parameters.values() if p.kind is inspect.Parameter.VAR_KEYWORD]
    fn.__signature__ = sig.replace(parameters=[*fixed, *extra, *rest])
    return fn


def to_options(command: str, values: dict[str, Any]) -> dict[str, Any]:
    """The page's ``{name: value}`` → the options to resolve: empty text and empty numbers are "not given" (the
    declared default applies), repeatable options are split into lines; unknown names are left for ``resolve`` to
    refuse."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        opt = SETTINGS.get(name)
        if opt is None or command not in opt.commands:
            out[name] = value
            continue
        if opt.repeatable:
            lines = value.splitlines() if isinstance(value, str) else list(value or ())
            value = tuple(s.strip() for s in lines if str(s).strip())
        elif isinstance(value, str) and not value.strip() and opt.default_for(command) in (None, ()):
            value = None
        elif opt.kind == "int" and isinstance(value, float) and value.is_integer():
            value = int(value)  # gradio numbers arrive as floats
        if value is None:
            continue
        out[name] = value
    return out


def changed(cfg) -> dict[str, Any]:
    """The settings of a resolved config that differ from its command's defaults, in declaration order, as YAML
    would hold them (a frame rate as ``30000/1001``, lists as lists)."""
    defaults = CONFIGS[cfg.command]().flat()
    out = {}
    for name, value in cfg.flat().items():
        if name == "quiet" or value == defaults[name]:
            continue
        if isinstance(value, Fraction):
            value = str(value) if value.denominator != 1 else value.numerator
        if SETTINGS[name].kind in KEYS:
            value = dict(value)  # YAML's natural form: {24: a fox at night}
        out[name] = list(value) if isinstance(value, tuple) else value
    return out


def command_line(cfg, source: str | None, output: str) -> str:
    """The ``lcm-video`` command that renders ``cfg`` again (stylize from ``source``), shell-quoted."""
    argv = ["lcm-video", cfg.command]
    if source is not None:
        argv.append(source)
    argv += ["-o", output]
    for name, value in changed(cfg).items():
        opt = SETTINGS[name]
        if opt.kind == "bool":
            argv.append(opt.cli)  # a changed switch is the flag itself (--fast, or --no-audio)
        elif opt.repeatable:
            for item in opt.format(value.items()) if opt.kind in KEYS else value:
                argv += [opt.cli, str(item)]
        else:
            argv += [opt.cli, str(value)]
    return shlex.join(argv)


def config_yaml(cfg) -> str:
    """A ``--config`` file of the settings that differ from the defaults."""
    head = f"# lcm-video {cfg.command} --config this.yaml\n"
    return head + yaml.safe_dump(changed(cfg), sort_keys=False, allow_unicode=True)
