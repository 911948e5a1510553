"""The one path to a validated config: defaults ← config object ← YAML file (or a video this tool made) ← keyword
arguments / flags, then ``validate``: every value against its declaration, then every rule between options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..choices import DEVICES
from ..errors import UserError
from ..models.ip_presets import check_style_image, ip_adapter_source, ip_adapter_spec
from ..models.presets import PRESETS, Sampling, default_motion, motion_preset, preset_sampling, sampling_for
from ..options import GENERATE, STYLIZE
from .configs import CONFIGS, RenderConfig
from .keyframes import keyframe_map
from .parts import SETTINGS


def load_config_file(path: str | Path, command: str) -> dict[str, Any]:
    """A ``--config``'s settings: a YAML file's, or those recorded in a video this tool made (``record.py``)."""
    from ..video.ffmpeg import CONTAINERS

    if Path(path).suffix.lower() in CONTAINERS:
        from ..record import recorded_settings

        return recorded_settings(path, command)
    return load_yaml(path)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping with the safe loader; any Python object tag is refused."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"config file {str(p)!r} not found; check the path given to --config")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"config file {str(p)!r} is not plain YAML{line}: {problem}") from None
    except UnicodeDecodeError:
        raise UserError(f"config file {str(p)!r} is not UTF-8 text") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {str(p)!r} must hold a mapping of option: value, not {type(data).__name__}")
    return data


def resolve(
    command: str,
    config: RenderConfig | str | Path | None = None,
    options: dict[str, Any] | None = None,
    source: str = "options",
    loaded_model: str | None = None,
) -> RenderConfig:
    """The one path to a validated config of ``command``.

    ``config``: a config object, or a YAML file's path (its keys are the options' names). ``options``: flat
    ``name: value`` pairs (keyword arguments, command-line flags, a batch job's keys) that win over ``config``;
    ``source`` names them in error messages. Every value is type-checked and range-checked, then the options are
    checked together (see :func:`validate`). Generate's derived defaults (model, motion adapter, size) are filled
    in, the model from ``loaded_model`` (the name of already loaded models) when the options give none.
    """
    cls = CONFIGS[command]
    if isinstance(config, (str, Path)):
        cfg = cls.from_options(load_config_file(config, command), str(config))
    elif config is None:
        cfg = cls()
    elif isinstance(config, cls):
        cfg = config
    else:
        raise UserError(f"config must be a {cls.__name__} or a YAML file's path, not {type(config).__name__}")
    cfg = validate(cfg.from_options(options, source, base=cfg), loaded_model)
    return derive_generate(cfg, loaded_model) if command == GENERATE else cfg


def derive_generate(cfg: RenderConfig, loaded_model: str | None = None) -> RenderConfig:
    """Fill generate's derived defaults: the motion adapter (``presets.default_motion``: the toy models' own,
    ``tiny`` for the tiny ones, else AnimateLCM), the model (the adapter preset's base), the size (the model preset's
    own, else 512²)."""
    model = cfg.model.model or loaded_model
    adapter = cfg.model.motion_adapter or default_motion(model)
    mpreset = motion_preset(adapter)
    model = model or (mpreset.base if mpreset else PRESETS["sd15-lcm-lora"].base)
    side = PRESETS[model].size if model in PRESETS else 512
    w, h = cfg.frames.width or side, cfg.frames.height or side
    return cfg.replace(motion_adapter=adapter, model=model, width=w, height=h)


LCM_ORIGINAL_STEPS = 50
"""The points of LCM's distillation schedule (``LCMScheduler``'s ``original_inference_steps``): a strength s leaves
``int(50·s)`` of them, and ``--steps`` must fit (checked against ``LCMScheduler.set_timesteps`` for every steps 1-50
and strength 0.01-1 in ``tests/test_options.py``)."""


def check_steps_fit(steps: int, strength: float) -> None:
    """Refuse a steps/strength pair that LCM's 50-point schedule cannot run, before anything is imported."""
    points = int(LCM_ORIGINAL_STEPS * strength)
    if steps > points:
        need = steps / LCM_ORIGINAL_STEPS
        raise UserError(
            f"--steps {steps} needs more of the schedule than --strength {strength:g} leaves ({points} points); "
            f"raise --strength to at least {need:.2f} or lower --steps"
        )


def render_sampling(cfg: RenderConfig, loaded_model: str | None = None) -> Sampling:
    """How a render samples: the preset's method, steps and eta (the models' loaded as ``loaded_model``, else the
    config's model and motion adapter, generate's derived as ``derive_generate`` derives them), under the render's
    ``--scheduler``, ``--steps`` and ``--eta``. The render itself takes them from its loaded models (``Models``)."""
    model = loaded_model or cfg.model.model
    motion = cfg.model.motion_adapter
    if cfg.command == GENERATE and motion is None:
        motion = default_motion(model)
    s = cfg.sampling
    return sampling_for(preset_sampling(model, motion), s.scheduler, s.steps, s.eta)


def check_sampling(sampling: Sampling, cfg: RenderConfig) -> None:
    """The rules between the few-step method and the other sampling options: ``--eta`` only where the method has
    one; per-frame strengths (``--strength-at``) only with LCM, whose steps are steps at any strength; steps that each
    strength leaves room for (``check_strength``). Generate always runs at strength 1."""
    s, method = cfg.sampling, sampling.scheduler
    if s.eta is not None and method in ("lcm", "euler-trailing"):
        raise UserError(f"--eta is TCD's gamma (or DDIM's eta); --scheduler {method} has none: drop --eta")
    if cfg.command == GENERATE:
        return
    if s.strength_at and method != "lcm":
        raise UserError(
            f"--strength-at gives each frame its own timesteps, which only --scheduler lcm runs (--scheduler {method} "
            "cuts its schedule by strength, as diffusers' img2img does); drop one"
        )
    for strength in keyframe_map("--strength-at", s.strength_at, None, s.strength).values():
        check_strength(sampling, strength)


def check_strength(sampling: Sampling, strength: float) -> None:
    """Whether ``sampling``'s steps fit ``strength``: LCM's within its 50-point schedule (``check_steps_fit``); TCD,
    DDIM and Euler run the last int(steps × strength) of their schedule, so at least one must be left. A strength
    changed during a render (the live mode's) is checked here too."""
    if sampling.scheduler == "lcm":
        check_steps_fit(sampling.steps, strength)
    elif int(sampling.steps * strength) < 1:
        raise UserError(
            f"--strength {strength:g} leaves no step of {sampling.steps} with --scheduler {sampling.scheduler} (it "
            f"runs the last int(steps x strength), as diffusers' img2img does); raise --strength to at least "
            f"{1 / sampling.steps:.2f} or --steps"
        )


def _needs_torch(cfg: RenderConfig) -> str | None:
    """Why ``cfg`` cannot run on the OpenVINO backend (the message refusing ``--backend openvino``), or None."""
    m = cfg.model
    if m.compile:
        return "--compile is torch's compiler; --backend openvino compiles on its own (drop one)"
    if m.device not in ("auto", "cpu"):
        return f"--backend openvino runs on the CPU, not --device {m.device}; use --backend torch there"
    if m.dtype == "float16":
        return "--backend openvino computes in float32 or bfloat16 on a CPU; use --dtype bfloat16"
    if cfg.temporal.cross_frame != "off":
        return "--cross-frame changes the torch UNet's attention per call; use it with --backend torch"
    if cfg.control.control:
        return "--control adds ControlNet residuals to the torch UNet; use it with --backend torch"
    if cfg.style.style_image:
        return "--style-image adds IP-Adapter attention to the torch UNet; use it with --backend torch"
    return None


def _check_style(cfg: RenderConfig, loaded_model: str | None) -> None:
    """The rules of the ``--style-image`` options: the image readable, an IP-Adapter for the model."""
    st = cfg.style
    if not st.style_image:
        if st.ip_adapter:
            raise UserError("--ip-adapter is for a style image: add --style-image FILE or drop --ip-adapter")
        return
    check_style_image(st.style_image)
    ip_adapter_spec(ip_adapter_source(loaded_model or cfg.model.model, st.ip_adapter))


def _check_control(cfg: RenderConfig) -> None:
    """The rules between the ``--control`` options."""
    c = cfg.control
    kinds = [k for k, _ in c.control]
    if not kinds:
        for name in ("control_model", "control_video"):
            if getattr(c, name):
                flag = "--" + name.replace("_", "-")
                raise UserError(f"{flag} is for a ControlNet: add --control TYPE (e.g. --control canny)")
        return
    stray = [k for k, _ in c.control_model if k not in kinds]
    if stray:
        raise UserError(f"--control-model {stray[0]}=…: there is no --control {stray[0]}; add it or drop the model")
    if c.control_start >= c.control_end:
        raise UserError(
            f"--control-start ({c.control_start:g}) must be before --control-end ({c.control_end:g}): "
            "no step would be guided"
        )
    if c.canny_low > c.canny_high:
        raise UserError(f"--canny-low ({c.canny_low}) must be at most --canny-high ({c.canny_high})")
    if c.control_video and len(kinds) > 1:
        raise UserError("--control-video gives the maps of one ControlNet; give one --control with it")
    if cfg.command == GENERATE and not c.control_video:
        raise UserError("generate has no source to annotate: give the control maps with --control-video FILE")


def validate(cfg: RenderConfig, loaded_model: str | None = None) -> RenderConfig:
    """Check every value against its declaration, then the rules between options; a UserError naming the option
    and the fix. ``loaded_model``: the name of the models the render will run (their preset says how they sample).
    Returns ``cfg``."""
    for name, value in cfg.flat().items():
        SETTINGS[name].check(value)
    m, t, f, p = cfg.model, cfg.temporal, cfg.frames, cfg.prompt
    if not p.prompt and not p.prompt_at:
        raise UserError("no prompt: give -p/--prompt TEXT (or prompt: in the --config YAML or job file)")
    if m.device not in DEVICES and not m.device.startswith(("cuda:", "mps:")):
        raise UserError(f"--device must be one of {', '.join(DEVICES)} or cuda:N, got {m.device!r}")
    if m.fast and m.vae:
        raise UserError("--fast swaps the VAE for TAESD; it cannot be combined with --vae (pick one)")
    needs_torch = _needs_torch(cfg)
    if needs_torch and m.backend == "openvino":
        raise UserError(needs_torch)
    if needs_torch and m.backend == "auto":
        cfg = cfg.replace(backend="torch")  # what auto means here, recorded as such
    if m.quantize != "none" and cfg.model.backend != "openvino":
        raise UserError(f"--quantize {m.quantize} quantises the OpenVINO UNet: add --backend openvino (or drop it)")
    _check_control(cfg)
    _check_style(cfg, loaded_model)
    if m.model is not None and not m.model:
        raise UserError("--model is empty; give a preset name (see `lcm-video models`), hub id or path")
    if t.overlap is not None and t.context is not None and t.overlap >= t.context:
        raise UserError(f"--overlap ({t.overlap}) must be smaller than --context ({t.context})")
    if cfg.command == STYLIZE:
        if f.end is not None and f.end <= f.start:
            raise UserError(f"--end ({f.end:g} s) must be after --start ({f.start:g} s)")
        if m.motion_adapter is not None and t.window is not None:
            raise UserError("--window is for the 2D UNet; with --motion-adapter the window is --context")
        if m.motion_adapter is None:
            for name in ("context", "overlap"):
                if getattr(t, name) is not None:
                    raise UserError(f"--{name} applies to motion-aware stylise only; add --motion-adapter or drop it")
        if cfg.sampling.strength_at and m.motion_adapter is not None:
            raise UserError("--strength-at needs one timestep per frame: not with --motion-adapter (drop one)")
    else:
        keyframe_map("--prompt-at", cfg.prompt.prompt_at, f.frames, cfg.prompt.prompt)
    check_sampling(render_sampling(cfg, loaded_model), cfg)  # strength keys' frame range: checked in prepare
    return cfg
