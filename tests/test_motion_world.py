"""The toy video world (``lcm_video.toy.video``) and the motion module's training (``lcm_video.train.motion``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lcm_video.toy import video as tv
from lcm_video.toy import world
from lcm_video.train import motion as tm  # torch, diffusers, transformers: imported once, at collection


def _centroid(frame: np.ndarray, colour: str) -> np.ndarray:
    """(x, y) of the pixels within a small distance of ``colour`` in uint8 (h, w, 3)."""
    mask = np.abs(frame.astype(int) - np.array(world.COLOURS[colour])).sum(-1) < 60
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


def test_clips_are_deterministic():
    a, sa = tv.random_clip(np.random.default_rng(3), 32)
    b, sb = tv.random_clip(np.random.default_rng(3), 32)
    assert sa == sb and np.array_equal(a, b)
    assert a.shape == (tv.FRAMES, 32, 32, 3) and a.dtype == np.uint8


def test_captions_say_what_is_drawn():
    """Over many seeds: the centroid moves along the captioned direction at the captioned speed, a still shape stays,
    a growing shape's area grows (pans: ``test_a_pan_slides_the_texture_the_other_way``)."""
    seen = set()
    rng = np.random.default_rng(0)
    for _ in range(60):
        spec = tv.random_clip_spec(rng, 64)
        if spec.kind == "pan":
            assert np.ptp(spec.centres(), axis=0).max() == 0  # the camera follows the shape
            continue
        clip = tv.draw_clip(spec, rng)
        seen.add(spec.kind)
        c0, c1 = _centroid(clip[0], spec.scene.colour), _centroid(clip[-1], spec.scene.colour)
        per_frame = (c1 - c0) / (spec.frames - 1)
        if spec.kind == "move":
            unit = np.array(tv.DIRECTIONS[spec.direction], float)
            assert f"moving {spec.direction}" in spec.caption
            assert np.allclose(per_frame, unit * tv.SPEEDS[spec.speed] * 64, atol=0.15), spec.caption
        elif spec.kind == "still":
            assert np.abs(per_frame).max() < 0.05, spec.caption
        else:
            area = [(np.abs(f.astype(int) - world.COLOURS[spec.scene.colour]).sum(-1) < 60).sum() for f in clip]
            grew = area[-1] / area[0]
            assert (grew > 2.0) if spec.kind == "grow" else (grew < 0.5), spec.caption
            assert {"grow": "growing", "shrink": "shrinking"}[spec.kind] in spec.caption
    assert seen == set(tv.KINDS) - {"pan"}


def test_still_caption_is_the_image_caption():
    spec = next(s for s in (tv.random_clip_spec(np.random.default_rng(i), 64) for i in range(50)) if s.kind == "still")
    assert spec.caption == spec.scene.caption
    assert not any(w in spec.caption.split() for w in tv.MOTION_WORDS)


def test_every_caption_starts_with_its_image_caption():
    """The motion is said last, so a causal text encoder reads the image caption's words exactly as the image model
    learnt them (toy.video's docstring has the measured why); a pan without a shape says only the texture."""
    rng = np.random.default_rng(1)
    for _ in range(80):
        spec = tv.random_clip_spec(rng, 64)
        if spec.kind == "pan" and not spec.shape_in_pan:
            assert spec.caption.startswith("a texture panning ")
            continue
        rest = spec.caption.removeprefix(spec.scene.caption)
        assert rest != spec.caption, spec.caption
        assert all(w in tv.MOTION_WORDS for w in rest.split()), spec.caption


def test_a_pan_slides_the_texture_the_other_way():
    """ "panning left": the camera turns left, so the picture content moves right in the frame."""
    rng = np.random.default_rng(1)
    spec = next(s for s in iter(lambda: tv.random_clip_spec(rng, 64), None) if s.kind == "pan")
    spec = tv.ClipSpec(spec.scene, "pan", "left", "", (-1.0, 0.0), shape_in_pan=False, size=64)  # 1 px a frame
    clip = tv.draw_clip(spec, np.random.default_rng(0)).astype(float)
    shift = spec.frames - 1
    errs = {d: np.abs(clip[-1][:, 20 + d : 44 + d] - clip[0][:, 20:44]).mean() for d in (-shift, 0, shift)}
    assert min(errs, key=errs.get) == shift  # content moved right by the pan's travel
    assert spec.caption == "a texture panning left"


def test_reversed_spec_and_held_out():
    rng = np.random.default_rng(2)
    spec = next(s for s in iter(lambda: tv.random_clip_spec(rng, 64), None) if s.kind == "move")
    back = tv.reversed_spec(spec)
    assert np.allclose(back.centres(), spec.centres()[::-1])
    assert tv.reversed_spec(back).caption == spec.caption
    captions = [tv.random_clip_spec(np.random.default_rng(i), 64).caption for i in range(300)]
    share = np.mean([tv.held_out(c) for c in captions])
    assert 0.03 < share < 0.2
    assert all(not tv.held_out(tv.training_clip(np.random.default_rng(i), 32, 2)[1].caption) for i in range(5))


def test_motion_words_are_appended():
    """The motion words get the ids after the toy tokenizer's 580, in order; every image caption keeps its ids."""
    from transformers import CLIPTokenizer

    from lcm_video.models.presets import WEIGHTS

    tok = CLIPTokenizer.from_pretrained(WEIGHTS / "toy-teacher" / "tokenizer")
    rng = np.random.default_rng(0)
    captions = [world.random_picture(rng, 32)[1] for _ in range(40)]
    before = [tok(c).input_ids for c in captions]
    ids = tm.add_motion_words(tok)
    assert ids == list(range(580, 580 + len(tv.MOTION_WORDS)))
    assert [tok(c).input_ids for c in captions] == before
    assert tok("a red circle on a blue background moving up left quickly").input_ids[8:12] == [580, 583, 581, 586]
    assert tv.VIDEO_WORDS[: len(world.WORDS)] == world.WORDS


@pytest.fixture(scope="module")
def parts():
    torch.manual_seed(0)
    return tm.load_toy_parts(tm.toy_motion_adapter(heads=2, max_frames=8))


def test_zero_initialised_module_is_the_image_model(parts):
    """AnimateDiff's init: with the output projections at zero, the motion UNet gives each frame the 2D UNet's ε."""
    from diffusers import UNet2DConditionModel

    unet2d = UNet2DConditionModel.from_pretrained(tm.TEACHER / "unet", dtype=torch.float32).eval()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, 4, 4, 4, generator=gen)
    states = tm.encode_text(parts.text_encoder, parts.tokenizer, ["a red circle on a blue background"])
    with torch.no_grad():
        got = tm.predict_eps(parts.unet, x, torch.tensor([500]), states)
        want = unet2d(x[0], torch.tensor([500] * 3), encoder_hidden_states=states.expand(3, -1, -1)).sample
    assert torch.allclose(got[0], want, atol=1e-5)


def _small_pool(parts):
    return tm.make_pool(parts.vae, 2, 32, seed=0, frames=4)


def test_training_steps_run_and_resume_bit_identically(parts, tmp_path):
    pool = _small_pool(parts)
    assert pool.mean.shape == (2, 4, 4, 4, 4)
    cfg = tm.MotionTrainConfig(size=32, batch=2, pool=2, warmup=2, heads=2)
    start = {n: p.detach().clone() for n, p in parts.motion_params().items()}
    words0 = parts.words.detach().clone()
    trainer = tm.MotionTrainer(parts, cfg)
    trainer.train_step(pool)
    ckpt = trainer.save_checkpoint(tmp_path / "ckpt")
    trainer.train_step(pool)
    first = trainer.state()
    assert all(np.isfinite(first["losses"])) and len(first["losses"]) == 2
    assert not torch.equal(first["words"], words0)  # the motion words learn
    frozen_text = parts.text_encoder.get_input_embeddings().base
    assert frozen_text.requires_grad is False
    # a fresh trainer on the same parts, rewound to the checkpoint, continues the very same run
    with torch.no_grad():
        for n, p in parts.motion_params().items():
            p.copy_(start[n])
    again = tm.MotionTrainer(parts, cfg)
    again.load_state(torch.load(ckpt, weights_only=False))
    again.train_step(pool)
    second = again.state()
    assert second["losses"] == first["losses"]
    assert all(torch.equal(second["motion"][n], first["motion"][n]) for n in first["motion"])
    assert all(torch.equal(second["ema"][n], first["ema"][n]) for n in first["ema"])
    assert torch.equal(second["words"], first["words"])
    with pytest.raises(ValueError, match="other settings"):
        tm.MotionTrainer(parts, tm.MotionTrainConfig(size=32, batch=3, pool=2, heads=2)).load_state(second)


def test_exported_adapter_loads_with_its_words(parts, tmp_path):
    """The exported folder loads through ``load_models``: the adapter, and the motion words at the ids training used;
    a prompt without a motion word gives the same text states as the toy-teacher alone."""
    import lcm_video

    trainer = tm.MotionTrainer(parts, tm.MotionTrainConfig(size=32, batch=2, pool=3, heads=2))
    folder = trainer.export(tmp_path / "adapter")
    assert (folder / tm.WORDS_FILE).is_file()
    with_words = lcm_video.load_models("toy-teacher", motion_adapter=str(folder), device="cpu", dtype="float32")
    alone = lcm_video.load_models("toy-teacher", device="cpu", dtype="float32")
    tok = with_words.pipe.tokenizer
    assert tok("moving").input_ids[1] == 580
    emb = with_words.pipe.text_encoder.get_input_embeddings().weight
    assert torch.equal(emb[580 : 580 + len(tv.MOTION_WORDS)], trainer.ema_words)
    plain = "a red circle on a blue background"
    a = tm.encode_text(with_words.pipe.text_encoder, tok, [plain])
    b = tm.encode_text(alone.pipe.text_encoder, alone.pipe.tokenizer, [plain])
    assert torch.equal(a, b)


def test_loss_weights_lift_high_noise_and_cap():
    acp = torch.linspace(0.999, 0.005, 1000)  # a falling ᾱ, as every schedule's
    t = torch.tensor([0, 500, 999])
    assert torch.equal(tm.loss_weights(t, acp, 0.0), torch.ones(3))  # the plain ε loss
    w = tm.loss_weights(t, acp, 20.0)
    assert w[0] == pytest.approx(1 + 0.001 / 0.999)  # low noise: about 1
    assert 1 < w[1] < 20 and w[2] == 20  # 1 + 1/SNR grows with t, capped


def test_contrast_hinge_only_where_the_captions_differ(parts):
    """``--contrast``: no extra term when a clip's opposite caption is its own; with a reversed caption the hinge is
    active (an untrained module fits both the same, so the margin is unmet) at the clips with t ≥ CONTRAST_MIN_T."""
    pool = _small_pool(parts)
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731  (the same t and ε for every call)
    z, caps, opposite = tm.draw_batch(pool, 2, 0.18, gen(), with_opposite=True)
    states = tm.encode_text(parts.text_encoder, parts.tokenizer, ["a red circle on a blue background moving left"] * 2)
    other = tm.encode_text(parts.text_encoder, parts.tokenizer, ["a red circle on a blue background moving right"] * 2)
    t = torch.randint(0, 1000, (2,), generator=gen())
    assert (t >= tm.CONTRAST_MIN_T).any()  # this seed draws a high-noise clip
    with torch.no_grad():
        plain = tm.motion_loss(parts.unet, z, states, gen(), parts.alphas_cumprod)
        same = tm.motion_loss(parts.unet, z, states, gen(), parts.alphas_cumprod, 0.0, states, 1.0)
        hinge = tm.motion_loss(parts.unet, z, states, gen(), parts.alphas_cumprod, 0.0, other, 1.0)
    assert same == plain
    assert hinge > plain


def test_latent_track_follows_a_moving_blob_and_has_a_gradient():
    """A blob moving 1/4 cell a frame right and 1/8 down over a flat latent background: the track (relative to frame
    0) says so within a tenth of a cell; on real toy clips: ``test_track_loss_only_on_moving_plain_clips``."""
    f, h, w = 9, 8, 8
    ys, xs = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    frames = []
    for k in range(f):
        cx, cy = 2.0 + 0.25 * k, 3.0 + 0.125 * k
        blob = torch.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / 0.8)
        frames.append(torch.stack([0.5 + 2 * blob, -0.3 - blob, 0.1 + blob, torch.full_like(blob, 0.2)]))
    z = torch.stack(frames)[None].requires_grad_(True)  # (1, f, 4, h, w)
    track = tm.latent_track(z)
    want = torch.stack([0.25 * torch.arange(f), 0.125 * torch.arange(f)], -1).float()
    assert torch.allclose(track[0], want, atol=0.1)
    track[0, -1, 0].backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_track_loss_only_on_moving_plain_clips(parts):
    """``--track``: nothing added for clips the mask leaves out (still, textured, dropped captions); for a moving
    clip an untrained module's x0 predicted from pure noise does not follow the clip's track: the term is positive.
    The toy world's own moving clips, encoded, give a track of the captioned sign."""
    assert tm.tracked(["a red circle on a blue background moving left", "", "a red circle on a blue background",
                       "a red circle on a textured background moving up", "a texture panning left"]).tolist() == [
        True, False, False, False, False]  # fmt: skip
    rng = np.random.default_rng(4)
    specs = (tv.random_clip_spec(rng, 32, frames=4) for _ in range(500))
    spec = next(s for s in specs if s.caption.endswith("moving right quickly") and "textured" not in s.caption)
    from lcm_video.train.clips import encode_clips

    mean, _ = encode_clips(parts.vae, tv.draw_clip(spec, rng)[None])
    z = mean * float(parts.vae.config.scaling_factor)
    end = tm.latent_track(z)[0, -1]  # in latent cells: 2.7 px right at 32 px is 0.34 of a cell
    assert end[0] > 0.1 and abs(end[1]) < 0.05
    states = tm.encode_text(parts.text_encoder, parts.tokenizer, [spec.caption])
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731  (the same t and ε every call)
    with torch.no_grad():
        plain = tm.motion_loss(parts.unet, z, states, gen(), parts.alphas_cumprod)
        off = tm.motion_loss(parts.unet, z, states, gen(), parts.alphas_cumprod, track=1.0, track_mask=tm.tracked([""]))
        on = tm.motion_loss(parts.unet, z, states, gen(), parts.alphas_cumprod, track=1.0,
                            track_mask=tm.tracked([spec.caption]))  # fmt: skip
    assert off == plain
    assert on > plain


def test_word_separation_pushes_only_the_end_states_of_differing_pairs():
    """``--separate``: the hinge sees the end-of-text and padding positions (index ≥ length − 1) of pairs whose
    captions differ, and is zero once they are ``margin`` apart; an image caption is read out of a video caption."""
    assert tm.image_caption("a red circle on a blue background moving left") == "a red circle on a blue background"
    assert tm.image_caption("a texture panning left") == "a texture panning left"
    states = torch.zeros(2, 6, 3)
    other = states.clone()
    other[0, 4:, 0] = 1.0  # pair 0 differs, at the end positions only (its length is 5: index 4 on)
    lengths = torch.tensor([5, 5])
    assert float(tm.word_separation(states, other, lengths, 3.0)) == pytest.approx(2.0)  # relu(3 - 1)
    assert float(tm.word_separation(states, other, lengths, 0.5)) == 0.0
    other[0, 1, 0] = 100.0  # a difference before the end does not count
    assert float(tm.word_separation(states, other, lengths, 3.0)) == pytest.approx(2.0)
    assert float(tm.word_separation(states, states, lengths, 3.0)) == 0.0  # no differing pair


@pytest.mark.slow  # 8 s (its own toy parts with a text LoRA): over the quick loop's budget, in the full suite
def test_separation_trains_the_text_lora_and_keeps_image_captions(tmp_path):
    """A few steps with ``--text-lora 4 --separate 3`` on the real toy encoder: the end states of "moving left" and
    "moving right" move apart, an image caption's states stay (the preservation term), and a checkpoint resumes."""
    torch.manual_seed(0)
    parts = tm.load_toy_parts(tm.toy_motion_adapter(heads=2, max_frames=8), text_lora_rank=4)
    pool = _small_pool(parts)
    pool.captions[:] = ["a red circle on a blue background moving left"] * len(pool)
    pool.reversed_captions[:] = ["a red circle on a blue background moving right"] * len(pool)
    cfg = tm.MotionTrainConfig(size=32, batch=2, pool=2, warmup=1, heads=2, text_lora=4, separate=3.0, lr=1e-2)
    trainer = tm.MotionTrainer(parts, cfg)
    pair = ["a red circle on a blue background moving left", "a red circle on a blue background moving right"]
    image = ["a red circle on a blue background"]

    def gap_and_image():
        with torch.no_grad():
            s = tm.encode_text(parts.text_encoder, parts.tokenizer, pair)
            return float((s[0] - s[1])[11:].norm(dim=-1).mean()), tm.encode_text(
                parts.text_encoder, parts.tokenizer, image
            )

    gap0, image0 = gap_and_image()
    for _ in range(6):
        trainer.train_step(pool)
    gap, image_now = gap_and_image()
    moved = float((image_now - image0).norm(dim=-1).mean())  # an image caption's states, a position's mean change
    print(f"gap {gap0:.3f} -> {gap:.3f}; image caption moved {moved:.3f}")
    assert gap > 2 * gap0, (gap0, gap)
    assert moved < 0.2 * gap, (moved, gap)


def test_text_lora_exports_and_loads_with_the_adapter(tmp_path):
    """A ``--text-lora`` run's text-encoder LoRA goes into the adapter's LoRA file beside the spatial one, and
    ``load_models`` fuses it: the loaded text encoder gives the trained one's states."""
    import lcm_video

    parts = tm.load_toy_parts(tm.toy_motion_adapter(heads=2, max_frames=8), lora_rank=2, text_lora_rank=2)
    assert any(n.startswith("text_encoder.") for n in parts.motion_params())
    trainer = tm.MotionTrainer(parts, tm.MotionTrainConfig(size=32, batch=2, pool=2, warmup=1, heads=2))
    trainer.train_step(_small_pool(parts))
    folder = trainer.export(tmp_path / "adapter", ema=False)
    loaded = lcm_video.load_models("toy-teacher", motion_adapter=str(folder), device="cpu", dtype="float32")
    prompt = ["a red circle moving left on a blue background"]
    with torch.no_grad():
        want = tm.encode_text(parts.text_encoder, parts.tokenizer, prompt)
        got = tm.encode_text(loaded.pipe.text_encoder, loaded.pipe.tokenizer, prompt)
        base = lcm_video.load_models("toy-teacher", device="cpu", dtype="float32")
    assert torch.allclose(got, want, atol=1e-5)
    assert not torch.allclose(want[:, :5], tm.encode_text(base.pipe.text_encoder, base.pipe.tokenizer, prompt)[:, :5])


def test_still_holds_the_first_frame_in_the_input_and_keeps_the_moving_target():
    """``--still``: a masked clip drawn at t ≥ STILL_MIN_T shows the module its first frame held (x_t from z[0]) and
    is scored against the ε that leads to the moving clip; an unmasked clip, or ``still`` 0, is the plain loss."""
    from types import SimpleNamespace

    from einops import rearrange

    seen = []

    def unet(x, t, encoder_hidden_states):  # predicts ε = 0 and keeps what it was shown
        seen.append(rearrange(x, "b c f h w -> b f c h w"))
        return SimpleNamespace(sample=torch.zeros_like(x))

    alphas = torch.linspace(0.999, 0.005, 1000)
    first_t = lambda s: int(torch.randint(0, 1000, (1,), generator=torch.Generator().manual_seed(s)))  # noqa: E731
    seed = next(s for s in range(100) if first_t(s) >= 700)
    z = torch.randn(1, 4, 2, 3, 3, generator=torch.Generator().manual_seed(1))
    states = torch.zeros(1, 77, 8)
    loss = {}
    for name, still, mask in (("plain", 0.0, True), ("still", 1.0, True), ("unmasked", 1.0, False)):
        seen.clear()
        gen = torch.Generator().manual_seed(seed)
        loss[name] = tm.motion_loss(unet, z, states, gen, alphas, track_mask=torch.tensor([mask]), still=still)
        gen = torch.Generator().manual_seed(seed)
        t, eps = torch.randint(0, 1000, (1,), generator=gen), torch.randn(z.shape, generator=gen)
        a = alphas[t]
        signal = z[:, :1].expand_as(z) if name == "still" else z
        assert torch.allclose(seen[0], a.sqrt() * signal + (1 - a).sqrt() * eps, atol=1e-6)
        target = eps + (a / (1 - a)).sqrt() * (signal - z)
        assert torch.allclose(loss[name], target.pow(2).mean(), atol=1e-6)
    assert loss["unmasked"] == loss["plain"] and loss["still"] != loss["plain"]
