"""Every few-step preset loads through the code its real hub ids use: a hub cache laid out as the real repos are (repo
ids, file names, subfolders, weight names), holding tiny random models, read offline."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from diffusers import MotionAdapter, StableDiffusionImg2ImgPipeline
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from safetensors.torch import save_file

from lcm_video.models.loading import load_models
from lcm_video.models.presets import MOTION_PRESETS, PRESETS, SD15, ModelPreset, non_commercial
from lcm_video.models.tiny import tiny_components

NO_SAFETY = {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}
FEW_STEP = [name for name, p in PRESETS.items() if p.sampling.scheduler != "lcm" and p.family == "sd15"]
LIGHTNING = [name for name in MOTION_PRESETS if name.startswith("animatediff-lightning")]


def _put(cache: Path, repo: str, files: dict[str, Path]) -> None:
    """Lay ``files`` (path in the repo → local file or folder) into ``cache`` as huggingface_hub keeps a download."""
    commit = "0" * 40
    root = cache / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(commit)
    for name, src in files.items():
        dst = root / "snapshots" / commit / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dst)


def _lora(folder: Path, seed: int) -> Path:
    unet = tiny_components(guidance_embedding=False)["unet"]
    cfg = LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=False)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        unet.add_adapter(cfg)
    folder.mkdir(parents=True)
    StableDiffusionImg2ImgPipeline.save_lora_weights(folder, unet_lora_layers=get_peft_model_state_dict(unet))
    return folder / "pytorch_lora_weights.safetensors"


def _lightning_file(path: Path, seed: int) -> Path:
    """A motion adapter state dict as AnimateDiff-Lightning ships it (diffusers keys, the default config's layout:
    heads and norm groups at their defaults), shrunk to the tiny UNet's channels."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        adapter = MotionAdapter(block_out_channels=(32, 64), motion_layers_per_block=1, use_motion_mid_block=True)
    save_file({k: v.contiguous() for k, v in adapter.state_dict().items()}, path)
    return path


@pytest.fixture(scope="module")
def hub(tmp_path_factory) -> Path:
    """A hub cache with SD1.5, epiCRealism and every few-step preset's repo, shaped as on the hub."""
    tmp = tmp_path_factory.mktemp("hub")
    cache = tmp / "cache"
    base = tmp / "sd15"
    StableDiffusionImg2ImgPipeline(**tiny_components(guidance_embedding=False), **NO_SAFETY).save_pretrained(base)
    pipeline = {p.relative_to(base).as_posix(): p for p in base.rglob("*") if p.is_file()}
    _put(cache, SD15, pipeline)
    _put(cache, "emilianJR/epiCRealism", pipeline)
    _put(cache, "h1t/TCD-SD15-LoRA", {"pytorch_lora_weights.safetensors": _lora(tmp / "tcd", 1)})
    hyper = {
        f"Hyper-SD15-{n}step{'s' if n > 1 else ''}-lora.safetensors": _lora(tmp / f"h{n}", 10 + n) for n in (1, 2, 4, 8)
    }
    _put(cache, "ByteDance/Hyper-SD", hyper)
    pcm = {f"sd15/pcm_sd15_smallcfg_{n}step_converted.safetensors": _lora(tmp / f"p{n}", 20 + n) for n in (2, 4, 8)}
    _put(cache, "wangfuyun/PCM_Weights", pcm)
    lightning = {
        f"animatediff_lightning_{n}step_diffusers.safetensors": _lightning_file(tmp / f"l{n}.safetensors", 30 + n)
        for n in (1, 2, 4, 8)
    }
    _put(cache, "ByteDance/AnimateDiff-Lightning", lightning)
    return cache


@pytest.fixture
def offline_hub(hub, monkeypatch):
    import huggingface_hub.constants

    assert huggingface_hub.constants.HF_HUB_OFFLINE  # conftest: never the network
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub))
    return hub


def _probe(unet) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x, states = torch.randn(1, 4, 8, 8, generator=g), torch.randn(1, 77, 32, generator=g)
    with torch.no_grad():
        return unet(x, 499, encoder_hidden_states=states).sample


@pytest.mark.slow  # 4 s: over the quick loop's budget (README), in the full suite
def test_every_few_step_preset_loads_its_lora_from_its_repo_and_samples_as_its_card_says(offline_hub):
    base = _probe(load_models(SD15, device="cpu", dtype="float32").unet)
    seen = []
    for name in FEW_STEP:
        preset = PRESETS[name]
        models = load_models(name, device="cpu", dtype="float32")
        assert models.sampling == preset.sampling and models.default_guidance == preset.guidance
        out = _probe(models.unet)
        assert (out - base).abs().max() > 1e-4, name  # the LoRA was found and fused
        assert all((out - other).abs().max() > 1e-6 for other in seen), name  # its own file, not another's
        seen.append(out)


@pytest.mark.parametrize("name", LIGHTNING)
def test_lightning_presets_load_their_single_file_adapter(offline_hub, name):
    preset = MOTION_PRESETS[name]
    models = load_models(preset.base, device="cpu", dtype="float32", motion_adapter=name)
    assert models.motion and models.max_context == 32
    assert models.sampling == preset.sampling and models.sampling.scheduler == "euler-trailing"
    assert models.scheduler.config.beta_schedule == "linear"  # AnimateDiff's betas, as the card sets them
    assert models.default_guidance == 1.0


def test_a_lightning_clip_renders_with_euler_trailing(offline_hub, tmp_path):
    from lcm_video.pipelines.text_to_video import generate

    res = generate(
        "a fox", tmp_path / "fox.mp4", model="emilianJR/epiCRealism", motion_adapter="animatediff-lightning-2step",
        device="cpu", frames=4, width=32, height=32, quiet=True,
    )  # fmt: skip
    assert res.frames == 4 and res.unet_calls == 2  # the preset's 2 steps


def test_licences_are_stated_and_non_commercial_ones_say_so(capsys):
    from lcm_video import cli

    assert cli.main(["models"]) == 0
    out = capsys.readouterr().out
    for name, p in {**PRESETS, **MOTION_PRESETS}.items():
        line = next(line for line in out.splitlines() if line.split()[:1] == [name])
        assert p.licence in line, name
    assert non_commercial("cc-by-nc-4.0") and not non_commercial("creativeml-openrail-m")
    dmd2 = ModelPreset("dmd2", "tianweiy/DMD2", "x", 0.0, licence="cc-by-nc-4.0")
    from lcm_video.cli.commands import preset_lines

    assert "NON-COMMERCIAL" in "\n".join(preset_lines([dmd2]))


def test_a_render_far_from_the_models_trained_size_is_noted_once_with_the_flag(videos, tmp_path, capsys):
    from lcm_video import cli
    from lcm_video.options import STYLIZE
    from lcm_video.pipelines.prepare import prepare_stylize, size_note
    from lcm_video.settings.resolve import resolve

    def notes(**opts):
        cfg = resolve(STYLIZE, None, {"prompt": "x", **opts})
        return [n for n in prepare_stylize(videos["moving"], tmp_path / "o.mp4", cfg).notes if "trained at" in n]

    # the 64x48 clip: a fifth of the toy's 128x128, a quarter of SD1.5's 512x512 at --width 256 ... and fine at 128
    assert notes(model="toy") == [
        "64x48 is under half the area 'toy' was trained at (128x128): expect lost or garbled shapes; set --width 144 "
        "(the height follows the aspect) to render near its size"
    ]
    assert notes(model="toy", width=128) == notes(model="tiny") == []  # near its size; random weights have none
    assert "over twice" in size_note("tcd-sd15", (1024, 768))[0] and not size_note("tcd-sd15", (640, 480))
    unet = tmp_path / "local" / "unet"
    unet.mkdir(parents=True)
    (unet / "config.json").write_text('{"sample_size": 64}')  # a diffusers folder: sample_size x 8 = 512
    assert "(512x512)" in size_note(str(tmp_path / "local"), (128, 128))[0]
    # the command line says it once, as a note, and renders
    args = ["stylize", str(videos["moving"]), "-o", str(tmp_path / "c.mp4"), "-p", "x", "--model", "toy"]
    assert cli.main([*args, "--max-frames", "2", "--steps", "2", "--scheduler", "tcd", "-q"]) == 0
    err = capsys.readouterr().err
    assert err.count("trained at") == 1 and "lcm-video: note: 64x48 is under half" in err


def test_scheduler_options_are_checked_before_anything_loads(videos, tmp_path, capsys):
    from lcm_video import cli

    base = ["stylize", str(videos["moving"]), "-o", str(tmp_path / "o.mp4"), "-p", "x", "--model", "tiny"]
    cases = {
        ("--eta", "0.3"): "--scheduler lcm has none: drop --eta",
        ("--scheduler", "euler-trailing", "--eta", "0.3"): "--scheduler euler-trailing has none",
        ("--scheduler", "tcd", "--strength-at", "4=0.8"): "only --scheduler lcm runs",
        ("--scheduler", "ddim-trailing", "--steps", "2", "--strength", "0.4"): "raise --strength to at least 0.50",
        ("--scheduler", "dpm"): "--scheduler",
        ("--eta", "1.5", "--scheduler", "tcd"): "--eta",
    }
    for extra, message in cases.items():
        assert cli.main([*base, *extra]) == 2, extra
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (extra, err)
