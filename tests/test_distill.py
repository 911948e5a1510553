"""Consistency distillation: its pieces against diffusers' own schedulers, the LoRA student at initialisation, a short
run whose loss falls, resume on the same curve, and outputs that load back through the project's loading code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, LCMScheduler
from PIL import Image

from lcm_video import cli
from lcm_video.errors import UserError
from lcm_video.train.consistency import DDIMSolver, boundary_scalings, huber
from lcm_video.train.distill import LORA_FILE, distill

SQUARES = [((255, 0, 0), "red"), ((0, 0, 255), "blue")]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Two captioned 32x32 images: a red and a blue square on white."""
    folder = tmp_path_factory.mktemp("data")
    for i, (colour, name) in enumerate(SQUARES):
        img = np.full((32, 32, 3), 255, np.uint8)
        img[8:24, 8:24] = colour
        Image.fromarray(img).save(folder / f"{i}.png")
        (folder / f"{i}.txt").write_text(f"a {name} square on a white background")
    return folder


FAST = {"batch_size": 2, "resolution": 32, "lora_rank": 4, "device": "cpu", "quiet": True, "w_min": 0.0, "w_max": 1.0}


def test_boundary_scalings_are_lcmschedulers_and_the_identity_at_zero():
    sched = LCMScheduler()
    t = torch.tensor([0, 1, 19, 259, 999])
    c_skip, c_out = boundary_scalings(t, sched.config.timestep_scaling)
    assert c_skip[0] == 1.0 and c_out[0] == 0.0
    for i, ti in enumerate(t.tolist()):
        ref_skip, ref_out = sched.get_scalings_for_boundary_condition_discrete(ti)
        assert abs(c_skip[i] - ref_skip) < 1e-7 and abs(c_out[i] - ref_out) < 1e-7


def test_one_ddim_solver_step_equals_ddimscheduler_step():
    betas = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}
    ddim = DDIMScheduler(**betas, timestep_spacing="trailing", set_alpha_to_one=False, clip_sample=False)  # as SD
    ddim.set_timesteps(50)
    solver = DDIMSolver(ddim.alphas_cumprod, 50)
    assert sorted(ddim.timesteps.tolist()) == solver.timesteps.tolist()  # 19, 39, ..., 999
    g = torch.Generator().manual_seed(0)
    for index in (0, 1, 24, 49):
        t = int(solver.timesteps[index])
        x, eps = torch.randn(1, 4, 8, 8, generator=g), torch.randn(1, 4, 8, 8, generator=g)
        a = ddim.alphas_cumprod[t]
        x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
        ours = solver.step(x0, eps, torch.tensor([index]))
        ref = ddim.step(eps, t, x).prev_sample
        assert torch.allclose(ours, ref, atol=1e-5), (index, (ours - ref).abs().max())


def test_huber_is_zero_on_equal_inputs_quadratic_near_zero_and_linear_far_out():
    x = torch.randn(4, 4, 8, 8)
    assert huber(x, x, 0.001) == 0
    near = huber(x, x + 1e-4, 1e-2)
    assert abs(near / (1e-8 / (2 * 1e-2)) - 1) < 1e-3  # √(d² + c²) − c ≈ d²/2c for d ≪ c
    far = huber(x, x + 10.0, 1e-3)
    assert abs(far - (10.0 - 1e-3)) < 1e-4  # ≈ |d| − c for d ≫ c


def test_a_fresh_lora_student_equals_the_teacher(data):
    from accelerate import Accelerator

    from lcm_video.settings.distill import resolve_distill
    from lcm_video.train.distill import _teacher, _Trainer

    cfg = resolve_distill(None, {"teacher": "tiny-lora", "data": str(data), "out": "unused", **FAST})
    trainer = _Trainer(cfg, _teacher(cfg, torch.device("cpu")), Accelerator(cpu=True))
    unet = trainer.student
    x, t, states = torch.randn(2, 4, 4, 4), torch.tensor([499, 499]), trainer.text(["a", "b"])
    student = trainer._unet(unet, x, t, states)
    teacher = trainer._teacher_out(x, t, states)
    assert len(trainer.params) > 0 and all(p.requires_grad for p in trainer.params)
    assert torch.equal(student, teacher)
    with torch.no_grad():
        for p in trainer.params:  # a trained adapter (B no longer zero) does change the output: the check can fail
            p.add_(0.1)
    assert not torch.equal(trainer._unet(unet, x, t, states), teacher)


@pytest.fixture(scope="module")
def lora_run(data, tmp_path_factory):
    """30 steps of LoRA distillation."""
    return distill("tiny-lora", data, tmp_path_factory.mktemp("lora"), steps=30, lr=1e-2, save_every=10, **FAST)


@pytest.mark.slow
def test_the_loss_falls_on_a_short_run(lora_run):
    losses = lora_run.losses
    assert len(losses) == 30 and np.mean(losses[-10:]) < 0.8 * np.mean(losses[:10]), losses


@pytest.mark.slow
def test_the_saved_lora_loads_fuses_and_matches_the_trained_student(lora_run, data):
    from accelerate import Accelerator

    from lcm_video.models.loading import load_models
    from lcm_video.settings.distill import resolve_distill
    from lcm_video.train.distill import _teacher, _Trainer, latest_checkpoint

    assert lora_run.output.name == LORA_FILE
    cfg = resolve_distill(None, {"teacher": "tiny-lora", "data": str(data), "out": "unused", **FAST})
    trained = _Trainer(cfg, _teacher(cfg, torch.device("cpu")), Accelerator(cpu=True))
    trained.load_state(torch.load(latest_checkpoint(lora_run.output.parent / "checkpoints"), weights_only=False))
    base = load_models("tiny-lora", device="cpu")
    tuned = load_models("tiny-lora", lora=[str(lora_run.output)], device="cpu")  # the project's loader: fused
    x, t = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(1)), torch.tensor([259])
    states = base.text_conditioning("a red square on a white background", "", 1.0)[0]([0])
    with torch.no_grad():
        before = base.unet(x, t, encoder_hidden_states=states).sample
        fused = tuned.unet(x, t, encoder_hidden_states=states).sample
        student = trained._unet(trained.student, x, t, states)
    assert (fused - before).abs().max() > 1e-3  # the LoRA changed the UNet ...
    assert torch.allclose(fused, student, atol=1e-5), (fused - student).abs().max()  # ... into the trained student
    grid = lora_run.output.parent / "validation" / "step_000030.png"
    assert grid.is_file() and np.asarray(Image.open(grid)).shape == (2 * 32, 3 * 32, 3)  # prompts x (1, 2, 4 steps)


@pytest.mark.slow
def test_resume_continues_the_same_loss_curve(data, tmp_path):
    whole = distill("tiny-lora", data, tmp_path / "whole", steps=6, save_every=3, lr=1e-2, **FAST)
    first = distill("tiny-lora", data, tmp_path / "parts", steps=3, save_every=3, lr=1e-2, **FAST)
    rest = distill("tiny-lora", data, tmp_path / "parts", steps=6, save_every=3, lr=1e-2, resume=True, **FAST)
    assert first.losses == whole.losses[:3] and rest.steps == 3
    assert rest.losses == whole.losses  # bit for bit: every draw of a step is keyed on (seed, step)
    with pytest.raises(UserError, match="other settings"):
        distill("tiny-lora", data, tmp_path / "parts", steps=8, lr=2e-2, resume=True, **FAST)


@pytest.mark.slow
def test_full_mode_saves_a_model_that_loads_with_model(data, tmp_path):
    from lcm_video.models.loading import load_models

    res = distill("tiny-lora", data, tmp_path / "full", mode="full", steps=3, lr=1e-3, **FAST)
    models = load_models(str(res.output), device="cpu")
    assert models.uses_guidance_embedding  # an LCM: guidance through a w-embedding
    out = tmp_path / "v.mp4"
    assert (
        cli.main(
            [
                "generate",
                "-p",
                "a red square",
                "-o",
                str(out),
                "--model",
                str(res.output),
                "--motion-adapter",
                "tiny",
                "--frames",
                "4",
                "--width",
                "32",
                "--height",
                "32",
                "-q",
            ]
        )
        == 0
    )


@pytest.mark.parametrize(
    "setup,args,expect",
    [
        ("empty", [], "holds no images"),
        ("uncaptioned", [], "have no caption"),
        ("unreadable", [], "cannot read the image"),
        ("good", ["--teacher", "tiny"], "already a latent consistency model"),
        ("good", ["--resolution", "30"], "multiple of 8"),
        ("good", ["--resume"], "no checkpoint"),
    ],
)
def test_bad_input_is_one_line(setup, args, expect, data, tmp_path, capsys):
    folder = tmp_path / "d"
    folder.mkdir()
    if setup == "uncaptioned":
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "a.png")
    if setup == "unreadable":
        (folder / "a.png").write_bytes(b"not a png")
        (folder / "a.txt").write_text("x")
    source = data if setup == "good" else folder
    argv = ["distill", "--teacher", "tiny-lora", "--data", str(source), "--out", str(tmp_path / "o"), "-q"]
    assert cli.main([*argv, *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expect in err[0], err
    assert not (tmp_path / "o").exists()


def test_the_toy_world_is_deterministic_and_its_captions_say_what_is_drawn(tmp_path):
    from lcm_video.toy.world import COLOURS, Scene, draw, make_toy_dataset, moving_clip
    from lcm_video.train.data import open_dataset

    a, b = make_toy_dataset(tmp_path / "a", 12, 32, seed=3), make_toy_dataset(tmp_path / "b", 12, 32, seed=3)
    assert all((a / p.name).read_bytes() == p.read_bytes() for p in b.iterdir())
    samples = open_dataset(a)
    assert len(samples) == 12 and all(s.caption.startswith(("a ", "an ")) for s in samples)
    scene = Scene("triangle", "orange", "blue", 16.0, 16.0, 8.0)
    img = draw(scene, 32)
    assert scene.caption == "an orange triangle on a blue background"
    assert tuple(img[17, 16]) == COLOURS["orange"] and tuple(img[1, 1]) == COLOURS["blue"]
    clip = moving_clip(Scene("square", "red", "white", 8.0, 16.0, 5.0), 4, 32, (4.0, 0.0))
    left = [int(np.argmax((clip[k, 16] == COLOURS["red"]).all(1))) for k in range(4)]  # the shape's left edge
    assert np.diff(left).tolist() == [4, 4, 4]  # moves 4 px a frame


@pytest.mark.slow
def test_two_processes_under_torchrun_distil_and_save_once(data, tmp_path):
    """Several processes (each its own --batch-size a step, gradients averaged by DDP): the student is a DDP wrapper
    there, which once broke the step (its dtype was read off the wrapper)."""
    import os
    import subprocess
    import sys

    from .conftest import ROOT

    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "lcm_video", "distill"]
    cmd += ["--teacher", "tiny-lora", "--data", str(data), "--out", str(out), "--steps", "4", "--batch-size", "2"]
    cmd += ["--resolution", "32", "--lora-rank", "4", "--device", "cpu", "--save-every", "2", "-q"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = torch.load(out / "checkpoints" / "step_000004.pt", weights_only=False)
    assert len(state["losses"]) == 4
    assert (out / LORA_FILE).is_file()


# Video distillation (AnimateLCM's decoupled recipe): the teacher tiny-lora + the tiny motion module, distilled into a
# motion module for the tiny LCM (guidance embedding), on 8-frame clips of a square moving right or left.


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    import imageio.v3 as iio

    folder = tmp_path_factory.mktemp("clips")
    for i, ((colour, name), step) in enumerate(zip(SQUARES, (2, -2), strict=True)):
        frames = []
        for k in range(8):
            img = np.full((32, 32, 3), 255, np.uint8)
            x = 8 + step * k if step > 0 else 22 + step * k
            img[10:20, x : x + 8] = colour
            frames.append(img)
        iio.imwrite(folder / f"{i}.mp4", np.stack(frames), fps=8, codec="libx264", quality=10)
        (folder / f"{i}.txt").write_text(f"a {name} square moving {'right' if step > 0 else 'left'}")
    return folder


VIDEO = {**FAST, "motion_adapter": "tiny", "student": "tiny", "frames": 4}


def _video_trainer(clips):
    from accelerate import Accelerator

    from lcm_video.settings.distill import resolve_distill
    from lcm_video.train.distill import _teacher, _Trainer

    cfg = resolve_distill(None, {"teacher": "tiny-lora", "data": str(clips), "out": "unused", **VIDEO})
    return _Trainer(cfg, _teacher(cfg, torch.device("cpu")), Accelerator(cpu=True))


def test_a_video_student_folds_clip_rows_into_the_motion_unet_and_trains_only_its_motion_modules(clips):
    trainer = _video_trainer(clips)
    student, teacher = trainer.student, trainer.teacher
    assert type(student).__name__ == "UNetMotionModel" and type(teacher).__name__ == "UNetMotionModel"
    assert student.config.time_cond_proj_dim and not teacher.config.time_cond_proj_dim  # LCM student, DDPM teacher
    trained = {id(p) for p in trainer.params}
    for name, p in student.named_parameters():
        assert (id(p) in trained) == ("motion_modules" in name) == p.requires_grad, name
    # rows (clip, frame) in order → (b, c, f, h, w): the same output as the motion UNet called on the clips
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2 * 4, 4, 4, 4, generator=g)
    t = torch.tensor([499, 259]).repeat_interleave(4)
    states = trainer.text(["a", "a", "a", "a", "b", "b", "b", "b"], student=True)
    tcond = trainer.w_embedding(torch.tensor([3.0, 7.0]).repeat_interleave(4))
    with torch.no_grad():
        rows = trainer._unet(student, x, t, states, tcond)
        direct = student(
            x.reshape(2, 4, 4, 4, 4).transpose(1, 2), t[::4], encoder_hidden_states=states, timestep_cond=tcond[::4]
        ).sample
    assert torch.equal(rows, direct.transpose(1, 2).reshape(8, 4, 4, 4))
    clip_b = trainer._unet(student, x[4:], t[4:], states[4:], tcond[4:])
    assert torch.allclose(rows[4:], clip_b, atol=1e-5)  # a clip's frames see only their own clip
    assert not torch.allclose(rows[:4], trainer._unet(student, x[:4], t[4:], states[:4], tcond[4:]), atol=1e-3)


@pytest.mark.slow
def test_video_distillation_resumes_bit_identically_and_saves_an_adapter_that_loads(clips, tmp_path):
    from lcm_video.models.loading import load_models
    from lcm_video.train.distill import latest_checkpoint

    whole = distill("tiny-lora", clips, tmp_path / "whole", steps=20, save_every=10, lr=1e-2, **VIDEO)
    assert np.mean(whole.losses[-5:]) < 0.8 * np.mean(whole.losses[:5]), whole.losses
    first = distill("tiny-lora", clips, tmp_path / "parts", steps=10, save_every=10, lr=1e-2, **VIDEO)
    rest = distill("tiny-lora", clips, tmp_path / "parts", steps=20, save_every=10, lr=1e-2, resume=True, **VIDEO)
    assert first.losses == whole.losses[:10] and rest.losses == whole.losses  # bit for bit
    strip = tmp_path / "whole" / "validation" / "step_000020.png"
    assert np.asarray(Image.open(strip)).shape == (2 * 3 * 32, 4 * 32, 3)  # (prompt, steps) rows x 4 frames

    # the folder loads with --motion-adapter into the trained student, and training changed the motion module
    trainer = _video_trainer(clips)
    trainer.load_state(torch.load(latest_checkpoint(tmp_path / "whole" / "checkpoints"), weights_only=False))
    loaded = load_models("tiny", motion_adapter=str(whole.output), device="cpu").unet
    fresh = load_models("tiny", motion_adapter="tiny", device="cpu").unet
    x = torch.randn(1, 4, 4, 4, 4, generator=torch.Generator().manual_seed(1))
    states = trainer.text(["a red square moving right"] * 4, student=True)
    tcond = trainer.w_embedding(torch.tensor([7.0]))
    with torch.no_grad():
        ours = trainer.student(x, 259, encoder_hidden_states=states, timestep_cond=tcond).sample
        back = loaded(x, 259, encoder_hidden_states=states, timestep_cond=tcond).sample
        before = fresh(x, 259, encoder_hidden_states=states, timestep_cond=tcond).sample
    assert torch.allclose(back, ours, atol=1e-5), (back - ours).abs().max()
    assert (back - before).abs().max() > 1e-3
    out = tmp_path / "g.mp4"
    argv = ["generate", "-p", "a red square", "-o", str(out), "--model", "tiny", "--motion-adapter", str(whole.output)]
    assert cli.main([*argv, "--frames", "8", "--width", "32", "--height", "32", "-q"]) == 0 and out.stat().st_size


@pytest.mark.parametrize(
    "args,expect",
    [
        (["--motion-adapter", "tiny"], "add --student"),
        (["--student", "tiny"], "add --motion-adapter"),
        (["--motion-adapter", "tiny", "--student", "tiny", "--frames", "9"], "fewer than --frames 9"),
        (["--motion-adapter", "tiny", "--student", "tiny-lora", "--frames", "4"], "not a latent consistency model"),
    ],
)
def test_bad_video_distillation_input_is_one_line(args, expect, clips, data, tmp_path, capsys):
    argv = ["distill", "--teacher", "tiny-lora", "--data", str(clips), "--out", str(tmp_path / "o"), "-q"]
    assert cli.main([*argv, "--resolution", "32", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expect in err[0], err
    assert not (tmp_path / "o").exists()
    images = ["distill", "--teacher", "tiny-lora", "--data", str(data), "--out", str(tmp_path / "o"), "-q"]
    assert cli.main([*images, "--motion-adapter", "tiny", "--student", "tiny"]) == 2
    assert "is not a video" in capsys.readouterr().err


@pytest.mark.slow
def test_two_processes_distil_a_motion_module(clips, tmp_path):
    """Video distillation under torchrun: the student UNetMotionModel in DDP, only its motion modules training."""
    import os
    import subprocess
    import sys

    from .conftest import ROOT

    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "lcm_video", "distill"]
    cmd += ["--teacher", "tiny-lora", "--motion-adapter", "tiny", "--student", "tiny", "--data", str(clips)]
    cmd += ["--out", str(out), "--frames", "4", "--steps", "4", "--batch-size", "1", "--resolution", "32", "-q"]
    cmd += ["--device", "cpu", "--save-every", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(torch.load(out / "checkpoints" / "step_000004.pt", weights_only=False)["losses"]) == 4
    assert (out / "config.json").is_file() and (out / "diffusion_pytorch_model.safetensors").is_file()
