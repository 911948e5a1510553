"""What a distillation writes (``distill.py`` runs it): checkpoints written whole or not at all, validation images
(an image student's grid, a video student's strip of frames) and the saved student in the form the render path loads
(a LoRA file, a model folder, or a ``MotionAdapter`` folder)."""

from __future__ import annotations

import errno
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.codec import latent_scaling
from ..errors import UserError
from ..files import atomic_write, plain
from ..settings.distill import DistillConfig
from .data import Sample
from .loop import atomic_save, keep_last

Trainer = Any  # ``distill._Trainer`` (not imported: ``distill`` imports this module)
LORA_FILE = "pytorch_lora_weights.safetensors"

# --------------------------------------------------------------------------------------------------------------------
# Checkpoints: written whole or not at all.


def fingerprint(cfg: DistillConfig) -> dict[str, Any]:
    """The settings a checkpoint must share with a run that resumes it (not: steps, save/validate cadence, quiet)."""
    skip = ("steps", "save_every", "validate_every", "quiet", "resume")
    return plain({k: v for k, v in cfg.flat().items() if k not in skip})


def _atomic_save(obj: Any, path: Path) -> None:
    try:
        atomic_save(obj, path)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise UserError(
                f"the disk is full while writing {str(path)!r}; free some space and rerun with --resume"
            ) from None
        raise UserError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None


def save_checkpoint(folder: Path, step: int, trainer: Trainer, losses: list[float], cfg: DistillConfig) -> Path:
    """``folder/step_NNNNNN.pt`` (weights, optimizer, loss history, settings); older ones but the last are removed."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step_{step:06d}.pt"
    _atomic_save({"step": step, "losses": losses, "config": fingerprint(cfg), **trainer.state()}, path)
    keep_last(folder, 2)
    return path


# --------------------------------------------------------------------------------------------------------------------
# Outputs.


def validation_prompts(cfg: DistillConfig, samples: list[Sample]) -> list[str]:
    if cfg.validation_prompt:
        return list(cfg.validation_prompt)
    return list(dict.fromkeys(s.caption for s in samples))[:4]


@torch.no_grad()
def validation_grid(trainer: Trainer, prompts: list[str], path: Path, size: int, seed: int) -> Path:
    """A PNG grid: one row per prompt, columns at 1, 2 and 4 LCM steps, the same seed in every cell."""
    import imageio.v3 as iio
    from diffusers import LatentConsistencyModelPipeline, LCMScheduler, StableDiffusionPipeline

    pipe = trainer.models.pipe
    student = trainer.accelerator.unwrap_model(trainer.student)
    parts = {"vae": pipe.vae, "text_encoder": pipe.text_encoder, "tokenizer": pipe.tokenizer, "unet": student}
    scheduler = LCMScheduler.from_config(pipe.scheduler.config)
    common = {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}
    if trainer.cfg.mode == "lora":
        view = StableDiffusionPipeline(**parts, scheduler=scheduler, **common)
        guidance = 1.0
    else:
        view = LatentConsistencyModelPipeline(**parts, scheduler=scheduler, **common)
        guidance = 1.0 + (trainer.cfg.w_min + trainer.cfg.w_max) / 2
    view.set_progress_bar_config(disable=True)
    was_training = student.training
    student.eval()
    rows = []
    for prompt in prompts:
        cells = []
        for steps in (1, 2, 4):
            gen = torch.Generator().manual_seed(seed)
            img = view(
                prompt,
                height=size,
                width=size,
                num_inference_steps=steps,
                guidance_scale=guidance,
                generator=gen,
                output_type="np",
            ).images[0]
            cells.append((np.clip(img, 0, 1) * 255).round().astype(np.uint8))
        rows.append(np.concatenate(cells, axis=1))
    student.train(was_training)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda tmp: iio.imwrite(tmp, np.concatenate(rows, axis=0)))


@torch.no_grad()
def validation_strip(trainer: Trainer, prompts: list[str], path: Path, size: int, seed: int) -> Path:
    """A PNG of the video student's clips: one row per prompt and step count (1, 2, 4 LCM steps, the same seed),
    every ``frames // 8``-th frame of the clip side by side."""
    import imageio.v3 as iio
    from diffusers import LCMScheduler

    models = trainer.student_models
    pipe = models.pipe
    student = trainer.accelerator.unwrap_model(trainer.student)
    f, cells = trainer.frames, size // 8
    w = torch.tensor([(trainer.cfg.w_min + trainer.cfg.w_max) / 2])
    tcond = trainer.w_embedding(w)
    scale, shift = latent_scaling(pipe.vae)
    was_training = student.training
    student.eval()
    rows = []
    for prompt in prompts:
        states = trainer.text([prompt] * f, student=True)
        for steps in (1, 2, 4):
            sched = LCMScheduler.from_config(pipe.scheduler.config)
            sched.set_timesteps(steps, device=trainer.device)
            gen = torch.Generator().manual_seed(seed)
            x = torch.randn(1, 4, f, cells, cells, generator=gen).to(trainer.device)
            for t in sched.timesteps:
                out = student(x, t, encoder_hidden_states=states, timestep_cond=tcond, return_dict=False)[0]
                x, denoised = sched.step(out, t, x, generator=gen, return_dict=False)
            z = denoised[0].transpose(0, 1).float() / scale + shift  # (f, 4, h, w)
            frames = pipe.vae.decode(z.to(pipe.vae.dtype)).sample.float().clamp(-1, 1)
            pixels = ((frames + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
            rows.append(np.concatenate(list(pixels[:: max(1, f // 8)]), axis=1))
    student.train(was_training)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda tmp: iio.imwrite(tmp, np.concatenate(rows, axis=0)))


def validate(trainer: Trainer, prompts: list[str], path: Path) -> Path:
    cfg = trainer.cfg
    view = validation_strip if trainer.video else validation_grid
    return view(trainer, prompts, path, cfg.resolution, cfg.seed)


def save_motion_output(trainer: Trainer, out: Path) -> Path:
    """``out`` as a ``MotionAdapter`` folder (config + weights) holding the student's motion modules, with the
    teacher adapter's motion words and spatial LoRA copied beside them when it has them (the student was trained with
    both): what ``--motion-adapter out`` loads."""
    from ..models.loading import MOTION_LORA_FILE, MOTION_WORDS_FILE
    from ..models.presets import motion_preset, preset_path
    from .motion import adapter_from

    student = trainer.accelerator.unwrap_model(trainer.student)
    adapter = adapter_from(student, {n: p.detach().float() for n, p in trainer._motion(student).items()})
    mpreset = motion_preset(trainer.cfg.motion_adapter)
    source = Path(preset_path(mpreset.adapter) if mpreset else trainer.cfg.motion_adapter)
    with _staging(out) as staging:
        adapter.save_pretrained(staging)
        for name in (MOTION_WORDS_FILE, MOTION_LORA_FILE):
            if (source / name).is_file():
                shutil.copyfile(source / name, staging / name)
        for item in staging.iterdir():
            os.replace(item, out / item.name)
    return out


@contextmanager
def _staging(out: Path):
    """A staging folder inside ``out`` (made if missing) that an output is written into before its files are moved
    into place; removed afterwards whatever happens. A full disk is a UserError."""
    out.mkdir(parents=True, exist_ok=True)
    staging = out / f".staging.{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        yield staging
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise UserError(f"the disk is full while writing into {str(out)!r}; free some space and rerun") from None
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def save_output(trainer: Trainer, out: Path) -> Path:
    """The LoRA file (diffusers format, loads with ``--lora``) or a whole diffusers model folder (``--model``)."""
    from diffusers import LCMScheduler, StableDiffusionPipeline
    from peft.utils import get_peft_model_state_dict

    pipe = trainer.models.pipe
    student = trainer.accelerator.unwrap_model(trainer.student)
    with _staging(out) as staging:
        if trainer.cfg.mode == "lora":
            layers = get_peft_model_state_dict(
                student, adapter_name="default"
            )  # PEFT keys: load_lora_weights reads them
            StableDiffusionPipeline.save_lora_weights(staging, unet_lora_layers=layers, safe_serialization=True)
            os.replace(staging / LORA_FILE, out / LORA_FILE)
            return out / LORA_FILE
        model = StableDiffusionPipeline(
            vae=pipe.vae,
            text_encoder=pipe.text_encoder,
            tokenizer=pipe.tokenizer,
            unet=student,
            scheduler=LCMScheduler.from_config(pipe.scheduler.config),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
        model.save_pretrained(staging)
        for item in staging.iterdir():
            dest = out / item.name
            if dest.is_dir():
                shutil.rmtree(dest)
            os.replace(item, dest)
    return out
