"""``lcm-video distill``'s settings (declared once, as the render settings are) and the layers an LCM-LoRA adapts."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..options import DISTILL, Option, did_you_mean, option, options_of
from .resolve import load_yaml

LORA_TARGETS = (  # the layers LCM-LoRA adapts (diffusers' train_lcm_distill_lora_sd_wds.py)
    "to_q",
    "to_k",
    "to_v",
    "to_out.0",
    "proj_in",
    "proj_out",
    "ff.net.0.proj",
    "ff.net.2",
    "conv1",
    "conv2",
    "conv_shortcut",
    "downsamplers.0.conv",
    "upsamplers.0.conv",
    "time_emb_proj",
)


@dataclass(frozen=True)
class DistillConfig:
    """Every option of ``lcm-video distill``: latent consistency distillation of ``teacher`` on ``data`` into ``out``.

    Defaults follow diffusers' consistency-distillation scripts (DDIM solver over 50 of 1000 timesteps, w in
    [5, 15], Huber c = 0.001, EMA 0.95, LoRA rank 64) except where a CPU needs smaller numbers (batch size).
    """

    teacher: str = option(
        "",
        "the model to distil: preset, hub id, diffusers dir or single file",
        commands=(DISTILL,),
        required=True,
        metavar="MODEL",
    )
    data: str = option(
        "",
        "folder of images/videos with same-name .txt captions, or a .csv/.jsonl of path,caption",
        commands=(DISTILL,),
        required=True,
        metavar="DIR",
    )
    out: str = option(
        "",
        "output folder: the LoRA file (lora) or a diffusers model folder (full), checkpoints, validation grids",
        commands=(DISTILL,),
        required=True,
        metavar="DIR",
    )
    mode: str = option(
        "lora",
        "lora: train LoRA adapters only (LCM-LoRA; loads with --lora); full: a whole LCM UNet with a guidance "
        "embedding (loads with --model); with --motion-adapter the student motion module is trained whole",
        commands=(DISTILL,),
        choices=("lora", "full"),
        metavar="lora|full",
    )
    lora_rank: int = option(64, "LoRA rank (lora mode)", commands=(DISTILL,), lo=1, metavar="R")
    motion_adapter: str = option(
        "",
        "distil a video model: the teacher's motion module (preset, hub id, folder); the teacher + it is distilled "
        "into a student motion module for --student's frozen spatial weights (AnimateLCM's decoupled recipe), saved "
        "as a MotionAdapter folder that --motion-adapter loads; --data then holds videos",
        commands=(DISTILL,),
        metavar="ADAPTER",
    )
    student: str = option(
        "",
        "with --motion-adapter: the few-step image LCM the student motion module is for (a preset, hub id, folder or "
        "file with a guidance embedding, or the teacher with --student-lora)",
        commands=(DISTILL,),
        metavar="MODEL",
    )
    student_lora: tuple[str, ...] = option(
        (),
        "with --motion-adapter: an LCM-LoRA fused into --student (default: the teacher) to make the image LCM, "
        "repeatable",
        commands=(DISTILL,),
        metavar="LORA",
    )
    frames: int = option(
        16, "with --motion-adapter: frames per training clip (consecutive)", commands=(DISTILL,), lo=2, metavar="N"
    )
    steps: int = option(1000, "training steps", commands=(DISTILL,), lo=1, metavar="N")
    batch_size: int = option(4, "images per step and process", commands=(DISTILL,), lo=1, metavar="N")
    lr: float | None = option(
        None,
        "AdamW learning rate",
        commands=(DISTILL,),
        derived="1e-4 (lora, or a motion module), 1e-6 (full)",
        lo=0.0,
        lo_open=True,
        metavar="LR",
    )
    resolution: int = option(
        512,
        "training size (square; shorter side scaled, centre crop)",
        commands=(DISTILL,),
        multiple_of=8,
        metavar="PX",
    )
    w_min: float = option(
        5.0, "smallest guidance w (scale − 1) of the CFG-augmented teacher", commands=(DISTILL,), lo=0.0, metavar="W"
    )
    w_max: float = option(
        15.0, "largest guidance w of the CFG-augmented teacher", commands=(DISTILL,), lo=0.0, metavar="W"
    )
    ddim_points: int = option(
        50, "DDIM solver points over the teacher's timesteps (skip = 1000 / N)", commands=(DISTILL,), lo=1, metavar="N"
    )
    loss: str = option("huber", "consistency loss", commands=(DISTILL,), choices=("huber", "l2"), metavar="huber|l2")
    huber_c: float = option(0.001, "the Huber loss's c", commands=(DISTILL,), lo=0.0, lo_open=True, metavar="C")
    ema_decay: float = option(
        0.95,
        "EMA decay of the target network (also in lora mode: diffusers issue 6505); 0 = no target network",
        commands=(DISTILL,),
        lo=0.0,
        hi=1.0,
        metavar="D",
    )
    seed: int = option(0, "seed of data order, noise, timesteps and w", commands=(DISTILL,), lo=0, metavar="N")
    save_every: int = option(
        100, "write a checkpoint every N steps (and at the end)", commands=(DISTILL,), lo=1, metavar="N"
    )
    validate_every: int = option(
        0,
        "write a PNG grid of validation prompts at 1, 2 and 4 steps every N steps (0: at the end only)",
        commands=(DISTILL,),
        lo=0,
        metavar="N",
    )
    validation_prompt: tuple[str, ...] = option(
        (),
        "prompt for the validation grid, repeatable",
        commands=(DISTILL,),
        derived="the first 4 captions",
        metavar="TEXT",
    )
    resume: bool = option(False, "continue from the latest checkpoint in --out", commands=(DISTILL,))
    device: str = option("auto", "auto (CUDA > MPS > CPU), cpu, cuda, cuda:N", commands=(DISTILL,), metavar="D")
    dtype: str = option(
        "auto",
        "weights of the frozen teacher and text encoder: auto (bfloat16 on GPU, float32 on CPU), float32, bfloat16",
        commands=(DISTILL,),
        choices=("auto", "float32", "bfloat16"),
        metavar="T",
    )
    quiet: bool = option(False, "no progress bar", commands=(DISTILL,), short="-q")

    @property
    def learning_rate(self) -> float:
        if self.lr is not None:
            return self.lr
        return 1e-4 if self.mode == "lora" or self.motion_adapter else 1e-6

    def flat(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


DISTILL_SETTINGS: dict[str, Option] = {o.name: o for o in options_of(DistillConfig, "distill")}


def resolve_distill(
    config: DistillConfig | str | Path | None = None, options: dict[str, Any] | None = None, source: str = "options"
) -> DistillConfig:
    """The validated config of a distillation (same path as :func:`resolve`: defaults ← config/YAML ← options)."""
    values = {} if config is None else (load_yaml(config) if isinstance(config, (str, Path)) else config.flat())
    values = {**values, **(options or {})}
    coerced = {}
    for key, value in values.items():
        name = str(key).replace("-", "_")
        opt = DISTILL_SETTINGS.get(name)
        if opt is None:
            raise UserError(f"unknown key {key!r} in {source}{did_you_mean(name, DISTILL_SETTINGS)}")
        coerced[name] = opt.coerce(value)
    cfg = DistillConfig(**coerced)
    for name, value in cfg.flat().items():
        DISTILL_SETTINGS[name].check(value)
    for name in ("teacher", "data", "out"):
        if not getattr(cfg, name):
            raise UserError(f"--{name} is required")
    if (cfg.student or cfg.student_lora) and not cfg.motion_adapter:
        raise UserError(
            "--student and --student-lora belong to video distillation; add --motion-adapter TEACHER_ADAPTER"
        )
    if cfg.motion_adapter and not (cfg.student or cfg.student_lora):
        raise UserError(
            "--motion-adapter distils a motion module for an image LCM: add --student LCM_MODEL (e.g. toy) or "
            "--student-lora LCM_LORA"
        )
    if cfg.w_min > cfg.w_max:
        raise UserError(f"--w-min ({cfg.w_min:g}) must not be above --w-max ({cfg.w_max:g})")
    return cfg
