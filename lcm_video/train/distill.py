"""``lcm-video distill``: latent consistency distillation (LCD) of a teacher into a few-step LCM.

One training step, as in the LCM paper (Algorithm 1) and diffusers' ``train_lcm_distill_{lora_,}sd_wds.py``:

    x_t  = √ᾱ_t·z + √(1−ᾱ_t)·ε                       t on the DDIM solver's points (19, 39, …, 999)
    w    ~ U[w_min, w_max]
    pred = f_θ(x_t, t)                               the student, through the consistency boundary scalings
    x̂    = DDIM step of the CFG-guided teacher       x_t → x_{t−k} with x̂0 = x̂0_c + w(x̂0_c − x̂0_u), ε̂ likewise
    tgt  = f_θ⁻(x̂, t−k)                              the target network: an EMA of the student, no gradient
    loss = Huber(pred, tgt)

``mode="lora"`` trains LoRA adapters on the teacher's UNet (LCM-LoRA: no guidance embedding; the teacher is the same
UNet with its adapters switched off, the EMA target a second adapter); ``mode="full"`` trains a copy of the UNet with a
w-embedding (``time_cond_proj_dim=256``) and an EMA copy as target. Every random draw of a step (data, noise,
timesteps, w) is a function of (seed, step, process), so a resumed run continues the very same loss curve.

**Video** (``motion_adapter`` set; AnimateLCM's decoupled consistency learning, Wang et al. 2024): the teacher is the
teacher UNet with that motion module (a ``UNetMotionModel``), the student the image LCM ``student`` (its spatial
weights frozen) with a copy of the teacher's motion module, which is what trains; the EMA target is a copy of the
student. The step is the one above over clips of ``frames`` consecutive frames: one t, noise level and w per clip,
noise per frame. Rows of the tensors are (clip, frame) pairs, ``(b·f, c, h, w)``; the UNet calls fold them into
``(b, c, f, h, w)``. The output is a ``MotionAdapter`` folder (with the teacher adapter's motion words and spatial
LoRA, when it has them, copied beside it) that ``--motion-adapter`` loads.
"""

from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.codec import latent_scaling
from ..core.noise import keyed_generator
from ..errors import UserError
from ..events import OnProgress, Progress, default_progress
from ..models.device import pick_device
from ..settings.distill import LORA_TARGETS, DistillConfig, resolve_distill
from .consistency import DDIMSolver, boundary_scalings, guided, huber, predicted_eps, predicted_x0
from .data import ClipSample, load_clip, load_pixels, open_clips, open_dataset
from .distill_outputs import (  # noqa: F401 (LORA_FILE re-exported)
    LORA_FILE,
    fingerprint,
    save_checkpoint,
    save_motion_output,
    save_output,
    validate,
    validation_prompts,
)
from .loop import latest_checkpoint

W_EMBEDDING = 256  # the full student's guidance-embedding width, as LCM Dreamshaper's time_cond_proj_dim


@dataclass(frozen=True)
class DistillResult:
    """What a distillation produced: ``output`` (the LoRA file, or the model folder), the steps run in this call,
    the loss of every step from the first (a resumed run's history included), and wall seconds."""

    output: Path
    steps: int
    losses: tuple[float, ...]
    seconds: float


# --------------------------------------------------------------------------------------------------------------------
# Set-up.


def _teacher(cfg: DistillConfig, device: torch.device):
    """The teacher's pipeline container, frozen, on ``device``; a UserError if it is already an LCM."""
    from ..models.loading import load_models

    dtype = cfg.dtype if cfg.dtype != "auto" else ("bfloat16" if device.type == "cuda" else "float32")
    models = load_models(cfg.teacher, device=str(device), dtype=dtype, motion_adapter=cfg.motion_adapter or None)
    if models.family == "sdxl":
        raise UserError(
            f"--teacher {cfg.teacher!r} is SDXL-shaped; distill trains SD1.5/SD2.1-shaped teachers only so far (SDXL's "
            "pooled text and time ids are not built into training); use an SD1.5 teacher or LCM-LoRA-SDXL as it is"
        )
    if models.uses_guidance_embedding:
        raise UserError(
            f"--teacher {cfg.teacher!r} is already a latent consistency model (its UNet has a guidance embedding); "
            "give the model it was distilled from, or use it as it is"
        )
    pipe = models.pipe
    pipe.vae.to(torch.float32)  # the VAE in float32 "to avoid NaN losses", as diffusers' scripts keep it
    for module in (pipe.unet, pipe.vae, pipe.text_encoder):
        module.requires_grad_(False)
    return models


def _video_student(cfg: DistillConfig, device: torch.device):
    """The student's pipeline container: the image LCM ``cfg.student`` (or the teacher) with ``cfg.student_lora``
    fused and the teacher's motion module inserted (a ``UNetMotionModel``, float32, spatial weights frozen, motion
    modules trainable). A UserError if it is not a few-step LCM."""
    from ..models.loading import load_models
    from ..models.presets import PRESETS

    name = cfg.student or cfg.teacher
    models = load_models(
        name, lora=cfg.student_lora, device=str(device), dtype="float32", motion_adapter=cfg.motion_adapter
    )
    preset = PRESETS.get(name)
    if not (models.uses_guidance_embedding or cfg.student_lora or (preset and preset.lora)):
        raise UserError(
            f"--student {name!r} is not a latent consistency model (no guidance embedding, no LCM-LoRA); give an LCM "
            "(e.g. toy) or add --student-lora LCM_LORA"
        )
    pipe = models.pipe
    pipe.vae.requires_grad_(False)
    pipe.text_encoder.requires_grad_(False)
    pipe.unet.freeze_unet2d_params()  # everything but the motion modules
    pipe.unet.train()
    return models


def _lora_student(unet, cfg: DistillConfig):
    """Adapters ``default`` (trained) and ``target`` (its EMA) on the teacher's UNet; returns the trained params."""
    from peft import LoraConfig

    targets = [t for t in LORA_TARGETS if any(n.endswith(t) for n, _ in unet.named_modules())]
    config = LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_rank, target_modules=targets, init_lora_weights="gaussian")
    with torch.random.fork_rng(devices=[]):  # the adapters' initial A: the same for the same seed, run after run
        torch.manual_seed(cfg.seed)
        unet.add_adapter(config, adapter_name="default")
    unet.add_adapter(copy.deepcopy(config), adapter_name="target")
    params = dict(unet.named_parameters())
    for name, p in params.items():
        p.requires_grad_(".default." in name)
    with torch.no_grad():
        for name, p in params.items():
            if ".target." in name:
                p.copy_(params[name.replace(".target.", ".default.")])
    unet.set_adapter("default")
    return [p for n, p in params.items() if ".default." in n]


def _full_student(unet, seed: int):
    """A UNet of the teacher's shape with a w-embedding, initialised from the teacher (the embedding from ``seed``)."""
    from diffusers import UNet2DConditionModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        student = UNet2DConditionModel.from_config({**unet.config, "time_cond_proj_dim": W_EMBEDDING})
    missing, unexpected = student.load_state_dict(unet.state_dict(), strict=False)
    assert not unexpected and all("time_embedding.cond_proj" in k for k in missing), (missing, unexpected)
    student.to(unet.device, torch.float32).train()
    return student


class _Trainer:
    """The student, target and teacher views of one distillation, and one training step."""

    def __init__(self, cfg: DistillConfig, models, accelerator):
        self.cfg, self.models, self.accelerator = cfg, models, accelerator
        pipe = models.pipe
        self.teacher = pipe.unet
        self.device = models.device
        sched = models.scheduler
        self.prediction_type = sched.config.prediction_type
        self.timestep_scaling = float(sched.config.get("timestep_scaling", 10.0))
        self.alphas_cumprod = sched.alphas_cumprod.float().to(self.device)
        self.solver = DDIMSolver(sched.alphas_cumprod, cfg.ddim_points)
        self.frames = cfg.frames if cfg.motion_adapter else 1
        self.student_models = models
        if self.video:
            self.student_models = _video_student(cfg, self.device)
            self.student = self.student_models.pipe.unet
            self.params = [p for n, p in self.student.named_parameters() if "motion_modules" in n]
            self.target = copy.deepcopy(self.student).requires_grad_(False).eval()
        elif cfg.mode == "lora":
            self.teacher.to(torch.float32)  # adapters train in float32 on top of the base weights
            self.params = _lora_student(self.teacher, cfg)
            self.student = self.teacher
            self.target = None
        else:
            self.student = _full_student(self.teacher, cfg.seed)
            self.params = list(self.student.parameters())
            self.target = copy.deepcopy(self.student).requires_grad_(False).eval()
        self.optimizer = torch.optim.AdamW(self.params, lr=cfg.learning_rate, weight_decay=0.0)
        self.student, self.optimizer = accelerator.prepare(self.student, self.optimizer)
        self._text: dict[tuple[bool, str], torch.Tensor] = {}

    @property
    def video(self) -> bool:
        """Whether this distils a video model (a motion module) rather than an image one."""
        return bool(self.cfg.motion_adapter)

    @property
    def w_dim(self) -> int | None:
        """The student's guidance-embedding width, None without one (a LoRA student)."""
        if self.video:
            return self.accelerator.unwrap_model(self.student).config.get("time_cond_proj_dim")
        return None if self.cfg.mode == "lora" else W_EMBEDDING

    # The frozen parts --------------------------------------------------------------------------------------------

    def text(self, captions: list[str], student: bool = False) -> torch.Tensor:
        """(b, 77, D) text states of ``captions`` by the teacher's text encoder (``student``: the student's, which
        may differ in a video distillation), each encoded once."""
        pipe = (self.student_models if student else self.models).pipe
        for c in captions:
            if (student, c) not in self._text:
                with torch.no_grad():
                    self._text[student, c] = pipe.encode_prompt(c, self.device, 1, False)[0][0]
        return torch.stack([self._text[student, c] for c in captions])

    @torch.no_grad()
    def latents(self, pixels: np.ndarray, gen: torch.Generator) -> torch.Tensor:
        """uint8 (b, h, w, 3) → scaled latents (b, 4, h/8, w/8): a VAE posterior sample drawn with ``gen``."""
        vae = self.models.vae
        x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div(127.5).sub(1).to(self.device)
        dist = vae.encode(x).latent_dist
        z = dist.mean + dist.std * torch.randn(dist.mean.shape, generator=gen).to(self.device)
        scale, shift = latent_scaling(vae)
        return (z - shift) * scale

    def w_embedding(self, w: torch.Tensor) -> torch.Tensor | None:
        """float (b, D): the student's guidance embedding of w (b,); None for a student without one."""
        if self.w_dim is None:
            return None
        from diffusers import StableDiffusionPipeline

        emb = StableDiffusionPipeline.get_guidance_scale_embedding(self.models.pipe, w, embedding_dim=self.w_dim)
        return emb.to(self.device)

    def _unet(self, unet, x, t, states, tcond=None) -> torch.Tensor:
        """The UNet's output for rows x float (B, c, h, w) at t (B,), text states (B, 77, D), guidance embedding
        (B, D) or None. For a video (``frames`` f > 1) the rows are b clips of f frames in order: folded into the
        motion UNet's (b, c, f, h, w), one t and w per clip (the rows of a clip share them)."""
        dtype = self.accelerator.unwrap_model(unet).dtype  # under several processes the student is a DDP wrapper
        f = self.frames
        if f > 1:
            x = x.reshape(-1, f, *x.shape[1:]).transpose(1, 2)  # (b·f, c, h, w) → (b, c, f, h, w)
            t = t[::f]
            tcond = None if tcond is None else tcond[::f]
        out = unet(x.to(dtype), t, encoder_hidden_states=states.to(dtype), timestep_cond=tcond, return_dict=False)[0]
        if f > 1:
            out = out.transpose(1, 2).reshape(-1, *out.shape[1:2], *out.shape[3:])
        return out.float()

    def _teacher_out(self, x, t, states) -> torch.Tensor:
        if self.cfg.mode == "lora" and not self.video:
            unet = self.accelerator.unwrap_model(self.student)
            unet.disable_adapters()
            try:
                return self._unet(unet, x, t, states)
            finally:
                unet.enable_adapters()
                unet.set_adapter("default")
        return self._unet(self.teacher, x, t, states)

    def _target_out(self, x, t, states, tcond) -> torch.Tensor:
        if self.cfg.mode == "lora" and not self.video:
            unet = self.accelerator.unwrap_model(self.student)
            unet.set_adapter("target" if self.cfg.ema_decay > 0 else "default")
            try:
                return self._unet(unet, x, t, states)
            finally:
                unet.set_adapter("default")
        target = self.target if self.cfg.ema_decay > 0 else self.accelerator.unwrap_model(self.student)
        return self._unet(target, x, t, states, tcond)

    # One step ------------------------------------------------------------------------------------------------------

    def loss(
        self,
        z: torch.Tensor,
        states: torch.Tensor,
        uncond: torch.Tensor,
        gen: torch.Generator,
        student_states: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The consistency distillation loss of latents z (B, 4, h, w) with their text states (B, 77, D) (the
        teacher's; ``student_states`` the student's and target's, default the same). For a video the B rows are
        b clips of ``frames`` frames in order, and one solver point, noise level and w is drawn per clip."""
        f, b = self.frames, z.shape[0]
        clips = b // f
        solver = self.solver
        index = torch.randint(0, len(solver), (clips,), generator=gen).repeat_interleave(f)
        t, t_prev = solver.timesteps[index].to(self.device), solver.prev_timesteps[index].to(self.device)
        noise = torch.randn(z.shape, generator=gen).to(self.device)
        w = (self.cfg.w_max - self.cfg.w_min) * torch.rand(clips, generator=gen) + self.cfg.w_min
        w = w.repeat_interleave(f)
        own = states if student_states is None else student_states
        a_t = self.alphas_cumprod[t]
        x_t = a_t.sqrt().view(-1, 1, 1, 1) * z + (1 - a_t).sqrt().view(-1, 1, 1, 1) * noise
        tcond = self.w_embedding(w)
        c_skip0, c_out0 = (c.view(-1, 1, 1, 1) for c in boundary_scalings(t, self.timestep_scaling))
        c_skip, c_out = (c.view(-1, 1, 1, 1) for c in boundary_scalings(t_prev, self.timestep_scaling))

        out = self._unet(self.student, x_t, t, own, tcond)
        pred = c_skip0 * x_t + c_out0 * predicted_x0(out, x_t, a_t, self.prediction_type)
        with torch.no_grad():
            pt = self.prediction_type
            cond = self._teacher_out(x_t, t, states)
            uncond_out = self._teacher_out(x_t, t, uncond.expand(b, -1, -1))
            x0 = guided(predicted_x0(cond, x_t, a_t, pt), predicted_x0(uncond_out, x_t, a_t, pt), w.to(self.device))
            eps = guided(predicted_eps(cond, x_t, a_t, pt), predicted_eps(uncond_out, x_t, a_t, pt), w.to(self.device))
            x_prev = solver.step(x0, eps, index)
            a_prev = self.alphas_cumprod[t_prev]
            target_out = self._target_out(x_prev, t_prev, own, tcond)
            target = c_skip * x_prev + c_out * predicted_x0(target_out, x_prev, a_prev, pt)
        if self.cfg.loss == "l2":
            return torch.nn.functional.mse_loss(pred.float(), target.float())
        return huber(pred, target, self.cfg.huber_c)

    @torch.no_grad()
    def update_target(self) -> None:
        """target ← decay·target + (1 − decay)·student."""
        decay = self.cfg.ema_decay
        if decay <= 0:
            return
        student = self.accelerator.unwrap_model(self.student)
        if self.video:  # only the motion modules train: the frozen spatial weights are equal in both
            target = dict(self.target.named_parameters())
            for name, p in self._motion(student).items():
                target[name].lerp_(p.detach(), 1 - decay)
            return
        if self.cfg.mode == "lora":
            params = dict(student.named_parameters())
            for name, p in params.items():
                if ".target." in name:
                    p.lerp_(params[name.replace(".target.", ".default.")], 1 - decay)
            return
        for t, s in zip(self.target.parameters(), student.parameters(), strict=True):
            t.lerp_(s.detach(), 1 - decay)

    @staticmethod
    def _motion(unet) -> dict[str, torch.Tensor]:
        """The motion modules' parameters of a ``UNetMotionModel``, by name."""
        return {n: p for n, p in unet.named_parameters() if "motion_modules" in n}

    # State -------------------------------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        student = self.accelerator.unwrap_model(self.student)
        if self.video:
            return {
                "student": {n: p.detach().clone() for n, p in self._motion(student).items()},
                "target": {n: p.detach().clone() for n, p in self._motion(self.target).items()},
                "optimizer": self.optimizer.state_dict(),
            }
        if self.cfg.mode == "lora":
            trained = {
                n: p.detach().clone() for n, p in student.named_parameters() if ".default." in n or ".target." in n
            }
            return {"student": trained, "optimizer": self.optimizer.state_dict()}
        return {
            "student": student.state_dict(),
            "target": self.target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        student = self.accelerator.unwrap_model(self.student)
        if self.video:
            with torch.no_grad():
                for unet, key in ((student, "student"), (self.target, "target")):
                    params = self._motion(unet)
                    for name, value in state[key].items():
                        params[name].copy_(value)
        elif self.cfg.mode == "lora":
            params = dict(student.named_parameters())
            with torch.no_grad():
                for name, value in state["student"].items():
                    params[name].copy_(value)
        else:
            student.load_state_dict(state["student"])
            self.target.load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])


# --------------------------------------------------------------------------------------------------------------------
# The loop.


def _batch(samples: list, cfg: DistillConfig, trainer: _Trainer, gen: torch.Generator):
    """One step's latents and captions, every draw from ``gen``: images → z float (b, 4, h, w); videos → b clips of
    ``frames`` consecutive frames from a drawn start, z float (b·frames, 4, h, w) and each caption per frame."""
    picks = torch.randint(0, len(samples), (cfg.batch_size,), generator=gen).tolist()
    batch = [samples[i] for i in picks]
    if not trainer.video:
        z = trainer.latents(np.stack([load_pixels(s, cfg.resolution) for s in batch]), gen)
        return z, [s.caption for s in batch]
    f = cfg.frames
    clips: list[ClipSample] = batch
    starts = [int(torch.randint(0, c.frames - f + 1, (1,), generator=gen)) for c in clips]
    pixels = np.concatenate([load_clip(c, s, f, cfg.resolution) for c, s in zip(clips, starts, strict=True)])
    return trainer.latents(pixels, gen), [c.caption for c in clips for _ in range(f)]


def _generator(seed: int, step: int, rank: int) -> torch.Generator:
    """The generator of one step of one process: a pure function of (seed, step, rank)."""
    return keyed_generator(seed, step, rank)


def distill(
    teacher: str | None = None,
    data: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    *,
    config: DistillConfig | str | Path | None = None,
    on_progress: OnProgress | None = None,
    **options: Any,
) -> DistillResult:
    """Distil ``teacher`` on ``data`` into ``out``; options as ``lcm-video distill --help`` (``_`` for ``-``).

    Returns the output (``out/pytorch_lora_weights.safetensors`` for LoRA, ``out`` as a diffusers model folder for
    full) and the loss curve. ``on_progress`` gets a :class:`ProgressEvent` per step (stage ``train``, ``loss`` set);
    raising :class:`Cancelled` from it stops after the step, keeping the last checkpoint for ``resume=True``.
    """
    from accelerate import Accelerator

    t0 = time.perf_counter()
    given = {k: v for k, v in (("teacher", teacher), ("data", data), ("out", out)) if v is not None}
    cfg = resolve_distill(config, {**given, **options}, "distill() arguments")
    out_dir = Path(cfg.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {cfg.out!r} is a file; give a folder")
    if Path(cfg.data).is_dir() and out_dir.resolve().is_relative_to(Path(cfg.data).resolve()):
        raise UserError(f"--out {cfg.out!r} is inside --data; its validation images would become training data")
    samples = open_clips(cfg.data, cfg.frames) if cfg.motion_adapter else open_dataset(cfg.data)
    device = pick_device(cfg.device)
    accelerator = Accelerator(cpu=device.type == "cpu")
    models = _teacher(cfg, device)
    trainer = _Trainer(cfg, models, accelerator)
    checkpoints = out_dir / "checkpoints"
    start, losses = 0, []
    if cfg.resume:
        found = latest_checkpoint(checkpoints)
        if found is None:
            raise UserError(f"--resume: no checkpoint in {str(checkpoints)!r}; drop --resume to start afresh")
        state = torch.load(found, map_location=device, weights_only=False)
        if state["config"] != fingerprint(cfg):
            changed = sorted(k for k in state["config"] if state["config"][k] != fingerprint(cfg).get(k))
            raise UserError(
                f"--resume: {found.name} was made with other settings ({', '.join(changed)}); use a new --out or the "
                "same settings"
            )
        trainer.load_state(state)
        start, losses = int(state["step"]), list(state["losses"])
    uncond = trainer.text([""])
    prompts = validation_prompts(cfg, samples)
    rank = accelerator.process_index
    with default_progress(on_progress, "distill", cfg.quiet or not accelerator.is_main_process) as callback:
        progress = Progress(callback, cfg.steps)
        progress.done = start
        progress.emit("load")
        for step in range(start, cfg.steps):
            gen = _generator(cfg.seed, step, rank)
            z, captions = _batch(samples, cfg, trainer, gen)
            student_states = trainer.text(captions, student=True) if trainer.video else None
            loss = trainer.loss(z, trainer.text(captions), uncond, gen, student_states)
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(trainer.params, 1.0)
            trainer.optimizer.step()
            trainer.optimizer.zero_grad(set_to_none=True)
            trainer.update_target()
            value = float(accelerator.reduce(loss.detach(), reduction="mean"))
            if not math.isfinite(value):
                raise UserError(f"the loss became {value} at step {step + 1}; lower --lr or use --dtype float32")
            losses.append(value)
            done = step + 1
            if accelerator.is_main_process:
                if done % cfg.save_every == 0 or done == cfg.steps:
                    save_checkpoint(checkpoints, done, trainer, losses, cfg)
                if cfg.validate_every and done % cfg.validate_every == 0:
                    validate(trainer, prompts, out_dir / "validation" / f"step_{done:06d}.png")
            progress.emit("train", 1, loss=value)
        accelerator.wait_for_everyone()
        output = out_dir
        if accelerator.is_main_process:
            validate(trainer, prompts, out_dir / "validation" / f"step_{cfg.steps:06d}.png")
            output = (save_motion_output if trainer.video else save_output)(trainer, out_dir)
        progress.emit("done")
    return DistillResult(Path(output), cfg.steps - start, tuple(losses), time.perf_counter() - t0)
