"""The real loading paths, exercised offline: tiny models saved to disk and loaded back through the code hub ids use."""

from __future__ import annotations

import os

import pytest
import torch
from diffusers import AutoencoderTiny, StableDiffusionImg2ImgPipeline
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict

from lcm_video.errors import UserError
from lcm_video.models.loading import load_models, parse_lora
from lcm_video.models.tiny import tiny_components, tiny_taesd
from lcm_video.pipelines.video_to_video import stylize

from .conftest import read_frames

NO_SAFETY = {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}


def _unet_out(unet, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 4, 8, 8, generator=g)
    states = torch.randn(2, 77, 32, generator=g)
    kw = {"timestep_cond": torch.randn(2, 32, generator=g)} if unet.config.time_cond_proj_dim else {}
    with torch.no_grad():
        return unet(x, 499, encoder_hidden_states=states, **kw).sample


@pytest.fixture(scope="module")
def saved_pipeline(tmp_path_factory):
    d = tmp_path_factory.mktemp("pipe")
    models = load_models("tiny", device="cpu")
    models.pipe.save_pretrained(d)
    return d


def test_a_saved_pipeline_loads_through_the_hub_code_path(saved_pipeline, videos, tmp_path):
    loaded = load_models(str(saved_pipeline), device="cpu")
    ref = load_models("tiny", device="cpu")
    assert torch.equal(_unet_out(loaded.unet), _unet_out(ref.unet))
    assert loaded.default_guidance == 8.0  # a w-embedding UNet not from a preset: the LCM default
    a = stylize(videos["moving"], tmp_path / "a.mp4", "x", models=loaded, guidance=2.0, quiet=True, crf=0)
    b = stylize(videos["moving"], tmp_path / "b.mp4", "x", models=ref, quiet=True, crf=0)
    assert a.frames == b.frames
    assert (read_frames(a.output).astype(int) - read_frames(b.output)).__abs__().max() == 0


@pytest.fixture(scope="module")
def lora_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("lora")
    unet = tiny_components()["unet"]
    cfg = LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=False)
    with torch.random.fork_rng():
        torch.manual_seed(1)
        unet.add_adapter(cfg)
    StableDiffusionImg2ImgPipeline.save_lora_weights(d, unet_lora_layers=get_peft_model_state_dict(unet))
    path = d / "pytorch_lora_weights.safetensors"
    assert path.is_file()
    return path


def test_lora_file_loads_fused_and_matches_diffusers_unfused(lora_file):
    ours = load_models("tiny", lora=[f"{lora_file}:0.7"], device="cpu")
    ref = StableDiffusionImg2ImgPipeline(**tiny_components(), **NO_SAFETY)
    ref.load_lora_weights(str(lora_file.parent), weight_name=lora_file.name, adapter_name="x")
    ref.set_adapters(["x"], adapter_weights=[0.7])
    base = _unet_out(load_models("tiny", device="cpu").unet)
    got, want = _unet_out(ours.unet), _unet_out(ref.unet)
    assert (got - base).abs().max() > 1e-3  # the LoRA changes the model
    assert (got - want).abs().max() < 1e-4  # exactly as diffusers applies it
    zero = load_models("tiny", lora=[f"{lora_file}:0"], device="cpu")
    assert (_unet_out(zero.unet) - base).abs().max() < 1e-6


def test_lora_spec_parsing():
    assert parse_lora("latent-consistency/lcm-lora-sdv1-5") == ("latent-consistency/lcm-lora-sdv1-5", 1.0)
    assert parse_lora("dir/x.safetensors:0.5") == ("dir/x.safetensors", 0.5)
    assert parse_lora("C:/x.safetensors") == ("C:/x.safetensors", 1.0)


def test_tiny_autoencoder_loads_through_vae_option(tmp_path, videos):
    tiny_taesd().save_pretrained(tmp_path / "taesd")
    models = load_models("tiny", vae=str(tmp_path / "taesd"), device="cpu")
    assert isinstance(models.vae, AutoencoderTiny)
    res = stylize(videos["moving"], tmp_path / "o.mp4", "x", models=models, max_frames=5, quiet=True)
    assert read_frames(res.output).shape == (5, 48, 64, 3)


def test_missing_model_offline_says_what_to_do(tmp_path):
    with pytest.raises(UserError, match="HF_HUB_OFFLINE"):
        load_models("someone/no-such-model", device="cpu")
    with pytest.raises(UserError, match="not a preset"):
        load_models("no such model", device="cpu")
    with pytest.raises(UserError, match="model_index.json"):
        load_models(str(tmp_path), device="cpu")
    with pytest.raises(UserError, match="--lora"):
        load_models("tiny", lora=["missing/file.safetensors"], device="cpu")


def test_offline_hub_error_from_the_command_line(videos, tmp_path, capsys):
    from lcm_video import cli

    assert os.environ["HF_HUB_OFFLINE"] == "1"  # set by conftest before the hub library was imported
    argv = ["stylize", str(videos["moving"]), "-o", str(tmp_path / "o.mp4"), "-p", "x", "--model", "someone/no-such"]
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "local directory" in lines[0] and "HF_HUB_OFFLINE" in lines[0], captured.err
    assert captured.out == "" and not list(tmp_path.iterdir())


def test_fast_swaps_in_taesd_and_refuses_a_second_vae(videos, tmp_path, capsys):
    from lcm_video import cli
    from lcm_video.pipelines.loader import vae_source
    from lcm_video.settings.configs import StylizeConfig

    assert vae_source(StylizeConfig.make(model="lcm-dreamshaper-v7", fast=True).model) == "taesd"
    assert vae_source(StylizeConfig.make(model="tiny", fast=True).model) == "builtin:tiny-taesd"
    assert vae_source(StylizeConfig.make(model="tiny").model) is None
    models = load_models("tiny", vae=vae_source(StylizeConfig.make(model="tiny", fast=True).model), device="cpu")
    assert isinstance(models.vae, AutoencoderTiny)
    argv = ["stylize", str(videos["moving"]), "-o", str(tmp_path / "o.mp4"), "-p", "x", "--model", "tiny", "-q"]
    assert cli.main([*argv, "--fast"]) == 0 and (tmp_path / "o.mp4").exists()
    assert cli.main([*argv, "--fast", "--vae", "taesd"]) == 2
    assert "--fast" in capsys.readouterr().err


def test_threads_follow_the_model_class_unless_given():
    """``--threads``: 1 for the small models built or trained here (measured: BENCHMARKS.md, "Threads on 2 cores"),
    the number given otherwise; a model outside the small ones leaves torch's setting alone."""
    import torch

    from lcm_video.pipelines.loader import models_for
    from lcm_video.settings.configs import StylizeConfig

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        tiny = models_for(StylizeConfig.make(model="tiny", device="cpu").model)
        assert torch.get_num_threads() == 1
        models_for(StylizeConfig.make(model="tiny", threads=2).model, tiny)
        assert torch.get_num_threads() == 2
        models_for(StylizeConfig.make().model, tiny)  # given models: their own class (tiny), whatever the config names
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
