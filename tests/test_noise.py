import torch

from lcm_video.core.noise import FrameNoise


def test_frame_noise_depends_only_on_seed_frame_and_step():
    a = FrameNoise(7, (4, 6, 8), shared=0.5)
    b = FrameNoise(7, (4, 6, 8), shared=0.5)
    whole = a.window(range(0, 10))[2]
    parts = torch.cat([b.window(range(0, 3))[2], b.window(range(3, 8))[2], b.window(range(8, 10))[2]])
    assert torch.equal(whole, parts)
    assert torch.equal(a.frame_eps(5, 1), b.frame_eps(5, 1))
    assert not torch.equal(a.frame_eps(5, 1), a.frame_eps(5, 2))
    assert not torch.equal(a.frame_eps(5, 1), FrameNoise(8, (4, 6, 8), 0.5).frame_eps(5, 1))


def test_shared_noise_one_is_identical_across_frames_zero_is_not():
    same = FrameNoise(0, (4, 8, 8), shared=1.0).window(range(5))[0]
    assert all(torch.equal(same[0], same[i]) for i in range(5))
    own = FrameNoise(0, (4, 8, 8), shared=0.0).window(range(5))[0]
    assert not torch.allclose(own[0], own[1])


def test_mixed_noise_keeps_unit_variance_and_given_correlation():
    eps = FrameNoise(3, (4, 64, 64), shared=0.64).window(range(2))[0]
    assert abs(eps.std().item() - 1.0) < 0.02
    corr = torch.corrcoef(eps.flatten(1))[0, 1].item()
    assert abs(corr - 0.64) < 0.03


def test_renoise_initial_reuses_step_zero():
    n = FrameNoise(1, (4, 4, 4), shared=0.3, renoise="initial")
    assert torch.equal(n.frame_eps(2, 0), n.frame_eps(2, 3))
    f = FrameNoise(1, (4, 4, 4), shared=0.3, renoise="fresh")
    assert not torch.equal(f.frame_eps(2, 0), f.frame_eps(2, 3))
