"""Text-to-video through a motion module: parity with diffusers' AnimateDiffPipeline, long clips without seams,
determinism, guidance through the motion UNet, motion-aware stylise, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import AnimateDiffPipeline, UNetMotionModel
from diffusers.schedulers import scheduling_lcm
from einops import rearrange

from lcm_video import cli
from lcm_video.core.sampler import sample
from lcm_video.errors import UserError
from lcm_video.models.loading import load_models
from lcm_video.models.tiny import tiny_components, tiny_motion_adapter
from lcm_video.pipelines.text_to_video import ClipGenerator, generate
from lcm_video.pipelines.video_to_video import stylize
from lcm_video.settings.configs import GenerateConfig

from .conftest import read_frames, stream_info


@pytest.fixture(scope="module")
def random_adapter(tmp_path_factory):
    """The tiny adapter with random output projections, saved as a folder (the ``tiny`` preset's are zero, an
    identity: these tests check the motion path itself, which an identity module would hide)."""
    path = tmp_path_factory.mktemp("adapter") / "random"
    tiny_motion_adapter(zero_out=False).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def motion_lora_models(random_adapter):
    return load_models("tiny-lora", device="cpu", motion_adapter=random_adapter)


@pytest.fixture(scope="module")
def motion_models(random_adapter):
    return load_models("tiny", device="cpu", motion_adapter=random_adapter)


def _reference_pipeline(guidance_embedding: bool) -> AnimateDiffPipeline:
    comps = tiny_components(guidance_embedding=guidance_embedding)
    pipe = AnimateDiffPipeline(
        vae=comps["vae"],
        text_encoder=comps["text_encoder"],
        tokenizer=comps["tokenizer"],
        unet=comps["unet"],
        motion_adapter=tiny_motion_adapter(zero_out=False),
        scheduler=comps["scheduler"],
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _diffusers_with_our_noise(pipe, gen: ClipGenerator, frames: int, monkeypatch, **kwargs):
    """Run diffusers' AnimateDiffPipeline with our keyed ε: the start latents, then each step's re-noise."""
    eps = gen.sampler.noise.window(range(frames))
    draws = iter([rearrange(eps[k], "f c h w -> 1 c f h w") for k in range(1, len(gen.sampler.schedule))])
    monkeypatch.setattr(scheduling_lcm, "randn_tensor", lambda *a, **k: next(draws))
    return pipe(
        num_frames=frames,
        num_inference_steps=len(gen.sampler.schedule),
        latents=rearrange(eps[0], "f c h w -> 1 c f h w"),
        output_type="latent",
        **kwargs,
    ).frames


def test_parity_with_animatediff_pipeline_cfg_model(motion_lora_models, monkeypatch):
    cfg = GenerateConfig.make(prompt="a red fox", frames=12, guidance=1.8, negative_prompt="blur", seed=3)
    gen = ClipGenerator(motion_lora_models, cfg, (64, 48))
    ours = gen.window(range(12), range(12))  # warms the noise source; uint8 (12, 48, 64, 3)
    gen.sampler.blender.reset()
    eps = gen.sampler.noise.window(range(12))
    x0 = sample(lambda x, t: gen.sampler.denoiser(x, t, range(12)), eps[0], gen.sampler.schedule, eps)
    ref = _diffusers_with_our_noise(
        _reference_pipeline(False), gen, 12, monkeypatch, prompt="a red fox", negative_prompt="blur", guidance_scale=1.8
    )
    assert gen.sampler.schedule.timesteps == (999, 759, 499, 259)
    assert (x0 - rearrange(ref, "1 c f h w -> f c h w")).abs().max().item() <= 1e-4
    assert ours.shape == (12, 48, 64, 3)


def test_w_embedding_reaches_the_motion_unet(motion_models, monkeypatch):
    """diffusers' AnimateDiff pipelines never pass timestep_cond; ours does, so an LCM checkpoint gets its guidance."""
    seen = []
    hook = motion_models.unet.register_forward_pre_hook(
        lambda m, a, kw: seen.append(kw.get("timestep_cond")), with_kwargs=True
    )
    try:
        cfg = GenerateConfig.make(prompt="a fox", frames=8, guidance=3.0)
        gen = ClipGenerator(motion_models, cfg, (64, 48))
        gen.window(range(8), range(8))
    finally:
        hook.remove()
    assert isinstance(motion_models.unet, UNetMotionModel)
    assert seen and all(t is not None and t.shape == (1, 32) for t in seen)
    gen.sampler.blender.reset()
    eps = gen.sampler.noise.window(range(8))
    ours = sample(lambda x, t: gen.sampler.denoiser(x, t, range(8)), eps[0], gen.sampler.schedule, eps)
    ref = _diffusers_with_our_noise(_reference_pipeline(True), gen, 8, monkeypatch, prompt="a fox", guidance_scale=3.0)
    # Same weights and noise; the only difference is the guidance embedding diffusers drops.
    assert (ours - rearrange(ref, "1 c f h w -> f c h w")).abs().max().item() > 1e-3


def _step_ratio(path) -> float:
    """Largest mean absolute step between consecutive frames over the median step."""
    frames = read_frames(path).astype(np.float32)
    steps = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))
    return float(steps.max() / np.median(steps))


LONG = {"frames": 40, "context": 16, "shared_noise": 1.0, "crf": 0, "quiet": True}


@pytest.fixture(scope="module")
def cut_step_ratio(motion_models, tmp_path_factory) -> float:
    """The control of the seam tests: windows without shared frames (no fusion, so any --fuse) do show a seam."""
    cut = generate("a fox", tmp_path_factory.mktemp("cut") / "cut.mp4", models=motion_models, overlap=0, **LONG)
    return _step_ratio(cut.output)


@pytest.mark.parametrize("fuse", ["flat", "linear", "pyramid"])
def test_long_clip_has_no_visible_seam(motion_models, tmp_path, fuse, cut_step_ratio):
    """Fully shared noise makes a window's frames nearly alike, so a seam between windows would stand out."""
    res = generate("a fox", tmp_path / "long.mp4", models=motion_models, overlap=4, fuse=fuse, **LONG)
    assert res.frames == 40 and res.size == (64, 64)  # size defaults follow the loaded (tiny) models
    assert res.unet_calls == 3 * 4  # windows [0,16) [12,28) [24,40), 4 steps each
    assert _step_ratio(res.output) <= 3.0
    assert cut_step_ratio > 3.0  # the control: windows without shared frames do show a seam


def test_window_state_is_one_window(motion_models):
    cfg = GenerateConfig.make(prompt="x", frames=64)
    gen = ClipGenerator(motion_models, cfg, (64, 48))
    gen.window(range(0, 16), range(0, 12))
    gen.window(range(12, 28), range(12, 24))
    assert all(n == 16 for n in gen.sampler.blender.carried.values())


@pytest.mark.parametrize(
    "fuse, window, want",
    [
        ("flat", 8, [0.5, 0.5, 0.5]),
        ("linear", 8, [0.25, 0.5, 0.75]),
        ("pyramid", 8, [0.25, 0.5, 0.75]),  # the previous window's edge against this one's: 1/(1+3), 2/(2+2), 3/(3+1)
        ("pyramid", 4, [1 / 4, 2 / 4, 2 / 3]),  # a short window's middle is its edge too: 2/(2+2), 2/(2+1)
    ],
)
def test_overlap_fusion_weighs_the_shared_frames(fuse, window, want):
    """The current window's weight on each frame it shares with the previous one, at one step (no blending)."""
    from lcm_video.temporal.blend import TemporalBlender

    b = TemporalBlender(0.0, fuse)
    b(torch.zeros(8, 1, 1, 1), 0, range(0, 8))
    b.end_window()
    out = b(torch.ones(window, 1, 1, 1), 0, range(5, 5 + window))
    assert out[:3].flatten().tolist() == pytest.approx(want)
    assert out[3:].flatten().tolist() == [1.0] * (window - 3)


# fusion's weights are tested above; determinism under the other two runs in the full suite only (the quick loop)
@pytest.mark.parametrize(
    "fuse", [pytest.param("flat", marks=pytest.mark.slow), "linear", pytest.param("pyramid", marks=pytest.mark.slow)]
)
def test_same_seed_same_frames(motion_models, tmp_path, fuse):
    opts = {"frames": 14, "context": 8, "overlap": 3, "fuse": fuse, "seed": 11, "crf": 0, "quiet": True}
    a = generate("a fox", tmp_path / "a.mp4", models=motion_models, **opts)
    b = generate("a fox", tmp_path / "b.mp4", models=motion_models, **opts)
    c = generate("a fox", tmp_path / "c.mp4", models=motion_models, **{**opts, "seed": 12})
    fa, fb, fc = (read_frames(r.output) for r in (a, b, c))
    assert np.array_equal(fa, fb)
    assert not np.array_equal(fa, fc)


def test_prompt_travel_changes_the_later_frames(motion_models, tmp_path):
    base = {"frames": 16, "crf": 0, "quiet": True}
    a = read_frames(generate("a fox", tmp_path / "a.mp4", models=motion_models, **base).output)
    b = read_frames(
        generate("a fox", tmp_path / "b.mp4", models=motion_models, prompt_at=("15=a whale",), **base).output
    )
    diff = np.abs(a.astype(int) - b.astype(int)).mean(axis=(1, 2, 3))
    assert diff[-1] > diff[0]  # the end is steered harder than the start


def test_classifier_free_guidance_doubles_the_motion_batch(motion_lora_models):
    shapes = []
    hook = motion_lora_models.unet.register_forward_pre_hook(lambda m, a: shapes.append(a[0].shape))
    try:
        ClipGenerator(motion_lora_models, GenerateConfig.make(prompt="x", frames=8, guidance=2.0), (64, 48)).window(
            range(8), range(8)
        )
    finally:
        hook.remove()
    assert shapes and all(s[:3] == (2, 4, 8) for s in shapes)  # (uncond + cond, channels, frames, h, w)


def test_motion_aware_stylize_keeps_the_video(motion_models, videos, tmp_path):
    res = stylize(videos["ntsc"], tmp_path / "m.mp4", "anime", models=motion_models, motion_adapter="tiny", quiet=True)
    src, got = stream_info(videos["ntsc"]), stream_info(res.output)
    assert got["frames"] == src["frames"] == res.frames
    assert got["fps"] == src["fps"]
    assert abs(got["audio_seconds"] - res.frames / res.fps) <= 1 / res.fps
    # 59 frames in windows of 16 sharing 4: [0,16) [12,28) [24,40) [36,52) [43,59) → 5 windows × 4 steps
    assert res.unet_calls == 5 * 4


def test_saved_motion_adapter_loads_through_the_hub_code_path(tmp_path):
    tiny_motion_adapter().save_pretrained(tmp_path / "adapter")
    loaded = load_models("tiny", device="cpu", motion_adapter=str(tmp_path / "adapter"))
    builtin = load_models("tiny", device="cpu", motion_adapter="tiny")
    sd_a, sd_b = loaded.unet.state_dict(), builtin.unet.state_dict()
    assert sd_a.keys() == sd_b.keys() and all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)
    assert loaded.max_context == 32


def test_adapter_that_does_not_fit_the_model(tmp_path):
    from diffusers import MotionAdapter

    MotionAdapter(block_out_channels=(32, 64, 64), motion_layers_per_block=1, motion_norm_num_groups=8).save_pretrained(
        tmp_path / "big"
    )
    with pytest.raises(UserError, match="does not fit"):
        load_models("tiny", device="cpu", motion_adapter=str(tmp_path / "big"))


GEN_CASES = {
    "frames 0": (["--frames", "0"], "--frames"),
    "context past adapter": (["--context", "40"], "supports (32 frames)"),
    "overlap >= context": (["--context", "8", "--overlap", "8"], "--overlap"),
    "malformed prompt-at": (["--prompt-at", "fox at night"], "FRAME=TEXT"),
    "prompt-at past the end": (["--frames", "8", "--prompt-at", "9=x"], "past the output's last frame"),
    "unknown fuse": (["--fuse", "zigzag"], "--fuse"),
    "unknown motion adapter": (["--motion-adapter", "not one"], "not a preset"),
}


@pytest.mark.parametrize("case", list(GEN_CASES))
def test_generate_bad_input_is_one_line(case, tmp_path, capsys):
    args, expect = GEN_CASES[case]
    out = tmp_path / "o.mp4"
    code = cli.main(["generate", "-p", "x", "-o", str(out), "--model", "tiny", "-q", *args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and expect in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_motion_options_without_a_motion_adapter_are_refused(videos, tmp_path, capsys):
    argv = ["stylize", str(videos["moving"]), "-o", str(tmp_path / "o.mp4"), "-p", "x", "--model", "tiny"]
    assert cli.main([*argv, "--context", "8"]) == 2
    assert "--motion-adapter" in capsys.readouterr().err


def test_motion_defaults_resolve_from_presets_and_their_hub_ids():
    from lcm_video.settings.resolve import resolve

    m, f = (lambda c: (c.model, c.frames))(resolve("generate", None, {"prompt": "x"}))
    assert (m.motion_adapter, m.model, f.width) == ("animatelcm", "emilianJR/epiCRealism", 512)
    cfg = resolve("generate", None, {"prompt": "x", "motion_adapter": "wangfuyun/AnimateLCM"})
    assert cfg.model.model == "emilianJR/epiCRealism"  # the hub id gets the AnimateLCM recipe
    cfg = resolve("generate", None, {"prompt": "x", "model": "tiny"})
    assert (cfg.model.motion_adapter, cfg.frames.width, cfg.frames.height) == ("tiny", 64, 64)


@pytest.mark.slow  # a fresh interpreter: torch and diffusers imported from nothing
def test_the_readme_load_once_pattern_for_generate_runs_and_prints_nothing(tmp_path):
    """Library use is as quiet as the CLI: no diffusers/transformers notices on import or load (issue 11, bug 2)."""
    import subprocess
    import sys

    code = (
        "import lcm_video\n"
        "models = lcm_video.load_models('tiny', motion_adapter='tiny')\n"
        f"for name in ('a.mp4', 'b.mp4'):\n"
        f"    lcm_video.generate('a fox', {str(tmp_path)!r} + '/' + name, models=models, frames=8, quiet=True)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" and proc.stdout == ""
    assert read_frames(tmp_path / "b.mp4").shape[0] == 8


def test_cross_frame_attention_in_a_motion_unet_changes_the_frames_and_leaves_the_model_as_it_was(
    motion_models, tmp_path
):
    opts = {"frames": 12, "context": 8, "overlap": 2, "crf": 0, "quiet": True}
    before = {k: type(v) for k, v in motion_models.unet.attn_processors.items()}
    off = read_frames(generate("a fox", tmp_path / "off.mp4", models=motion_models, **opts).output)
    on = read_frames(
        generate("a fox", tmp_path / "on.mp4", models=motion_models, cross_frame="anchor+prev", **opts).output
    )
    assert on.shape == off.shape and not np.array_equal(on, off)
    assert {k: type(v) for k, v in motion_models.unet.attn_processors.items()} == before
