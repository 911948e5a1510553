"""The motion module's loss on the toy video world (``train.motion`` trains with it): noising, the motion UNet's ε,
the per-clip weights, and the two terms that make the motion words matter (``--contrast``, ``--track``). Plain
functions over tensors; every random draw from the caller's generator.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange

CONTRAST_MIN_T = 500  # ``--contrast`` scores clips from this t up: below it the noisy frames show their own motion
CONTRAST_MARGIN = 0.05  # … and wants the clip's loss under its caption 5 % (in log) below that under its reverse
STILL_MIN_T = 600  # ``--still`` holds a moving clip's first frame in its noisy input from this t up


def add_noise(z: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """x_t = √ᾱ_t·z + √(1−ᾱ_t)·ε with one t per clip: z, ε float (b, f, c, h, w), t long (b,)."""
    a = alphas_cumprod.to(z.device)[t].view(-1, 1, 1, 1, 1)
    return a.sqrt() * z + (1 - a).sqrt() * eps


def predict_eps(unet, x_t: torch.Tensor, t: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    """The motion UNet's ε for clips x_t float (b, f, c, h, w) at t long (b,), text states float (b, 77, d).

    diffusers' ``UNetMotionModel.forward`` takes (b, c, f, h, w) and expects the text states already repeated per
    frame, (b·f, 77, d): its spatial cross-attention runs on frames as a batch."""
    f = x_t.shape[1]
    out = unet(
        rearrange(x_t, "b f c h w -> b c f h w"), t, encoder_hidden_states=states.repeat_interleave(f, dim=0)
    ).sample
    return rearrange(out, "b c f h w -> b f c h w")


def loss_weights(t: torch.Tensor, alphas_cumprod: torch.Tensor, snr_cap: float) -> torch.Tensor:
    """float (b,): each clip's weight on its ε loss. ``snr_cap`` 0: 1 (the plain ε loss, AnimateDiff's).
    ``snr_cap`` > 0: min(1 + 1/SNR(t), snr_cap), SNR = ᾱ/(1−ᾱ): the v-prediction loss's weight (Salimans & Ho),
    truncated. Why: where a clip's motion is decided, at high noise, an x₀ error shows in ε scaled by √SNR (t = 950:
    SNR ≈ 0.006), so the plain ε loss barely sees a clip drawn moving the wrong way; measured on the 64 px run of 6000
    steps, its loss with the caption reversed was the same to 4 digits at every t."""
    if snr_cap <= 0:
        return torch.ones(t.shape)
    a = alphas_cumprod[t]
    return torch.clamp(1 + (1 - a) / a, max=snr_cap)


def pairs_differ(states: torch.Tensor, opposite: torch.Tensor) -> torch.Tensor:
    """bool (b,): which pairs of text states float (b, 77, d) differ anywhere (a caption and its reverse are the same
    for a still clip or a dropped caption)."""
    return (opposite - states).abs().flatten(1).amax(1) > 0


def latent_track(z: torch.Tensor) -> torch.Tensor:
    """float (b, f, 2): where the object is in each frame of clips z float (b, f, c, h, w), in latent cells (x, y),
    relative to frame 0: the centroid of each cell's squared distance from the frame's per-channel median (on a
    plain background the median is the background, so the weight sits on the object). Differentiable in z."""
    b, f, c, h, w = z.shape
    flat = z.flatten(3)
    d = (flat - flat.median(dim=3, keepdim=True).values).pow(2).sum(2)  # (b, f, h·w)
    p = d / d.sum(-1, keepdim=True).clamp_min(1e-8)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=z.dtype), torch.arange(w, dtype=z.dtype), indexing="ij")
    grid = torch.stack([xs.flatten(), ys.flatten()], -1).to(z.device)  # (h·w, 2)
    centre = p @ grid  # (b, f, 2)
    return centre - centre[:, :1]


def tracked(captions: list[str]) -> torch.Tensor:
    """bool (b,): the clips whose track ``--track`` scores: a shape moving over a plain background (a caption that
    says "moving" and not "textured"; "" — a dropped caption — says nothing, so no track can be asked of it)."""
    return torch.tensor([("moving" in c.split()) and ("textured" not in c) for c in captions], dtype=torch.bool)


def motion_loss(
    unet,
    z: torch.Tensor,
    states: torch.Tensor,
    gen: torch.Generator,
    alphas_cumprod,
    snr_cap: float = 0.0,
    opposite: torch.Tensor | None = None,
    contrast: float = 0.0,
    track: float = 0.0,
    track_mask: torch.Tensor | None = None,
    still: float = 0.0,
) -> torch.Tensor:
    """The epsilon-prediction loss (mean squared error, weighted per clip by ``loss_weights``) of clips z float
    (b, f, c, h, w) under text states (b, 77, d): t ~ U{0 … 999} per clip, ε ~ N(0, 1) per element, both from
    ``gen``.

    ``contrast`` > 0 with ``opposite`` (b, 77, d), the states of each clip's caption played the other way: adds
    ``contrast`` · mean relu(log L(caption) − log L(opposite) + CONTRAST_MARGIN) over the clips whose two captions
    differ, at t ≥ CONTRAST_MIN_T: the clip must be fitted better under what it shows than under its reverse. Why:
    the ε loss alone leaves a motion word unused, since below that t the frames show their motion themselves and
    above it a clip's average over start places barely moves (measured: 6800 steps, the loss under the reversed
    caption equal to 4 digits at t = 300 … 950). Only at high t, where the frames do not yet show which way.

    ``track`` > 0 with ``track_mask`` bool (b,) (``tracked``): adds ``track`` · the mean squared distance, in latent
    cells, between the object's track (``latent_track``) in the x₀ = (x_T − √(1−ᾱ_T)·ε̂)/√ᾱ_T the module predicts
    from pure noise x_T ~ N(0, 1) at the last timestep T under the clip's caption, and the clip's own track, over the
    masked clips (one more UNet call on them, with fresh noise from ``gen``). Why: every sampler here starts from pure
    noise at T, where only the caption can say which way the object goes; but in training even t = 950 keeps
    √ᾱ ≈ 0.07 of the clip, and over 16 frames that shows its motion: measured at step 1000 of a 64 px run, the
    predicted x₀ moved the clip's way in 12 of 12 clips at t = 850 whether the caption or its reverse was given (the
    noise schedule's signal leak, Lin et al. 2023). So the ε loss never needs the words, and from pure noise the
    module picks a way from the noise. With no clip signal in its input, this term can only be met through them.

    ``still`` > 0 with ``track_mask``: each masked clip drawn at t ≥ STILL_MIN_T has, with probability ``still``, its
    first frame held in its noisy input, x_t = √ᾱ·z[0] + √(1−ᾱ)·ε, while the target stays the moving clip (the ε that
    takes x_t to it, ε + √(ᾱ/(1−ᾱ))·(z[0] − z)). Why: what leaks of a clip into x_t shows its motion, so the ε loss is
    met by copying the motion in; a sampler's x_t at those t holds only the little motion its first step drew. A held
    frame shows where the object is but not where it goes: only the caption says that."""
    b = z.shape[0]
    t = torch.randint(0, len(alphas_cumprod), (b,), generator=gen)
    eps = torch.randn(z.shape, generator=gen)
    signal = z
    if still > 0 and track_mask is not None:  # drawn only then: the recipes without it keep their random streams
        hold = torch.rand(b, generator=gen) < still
        held = (hold & track_mask & (t >= STILL_MIN_T)).to(z.device)
        signal = torch.where(held.view(-1, 1, 1, 1, 1), z[:, :1].expand_as(z), z)
    x_t = add_noise(signal, eps.to(z.device), t.to(z.device), alphas_cumprod)
    target = eps.to(z.device)
    if signal is not z:
        a = alphas_cumprod.to(z.device)[t.to(z.device)].view(-1, 1, 1, 1, 1)
        target = target + (a / (1 - a)).sqrt() * (signal - z)
    err = (predict_eps(unet, x_t, t.to(z.device), states) - target).pow(2).mean(dim=(1, 2, 3, 4))
    loss = (err * loss_weights(t, alphas_cumprod.cpu(), snr_cap).to(err)).mean()
    if track > 0 and track_mask is not None:
        pick = track_mask.nonzero().flatten().to(z.device)
        if len(pick):
            last = len(alphas_cumprod) - 1
            x_T = torch.randn((len(pick), *z.shape[1:]), generator=gen).to(z.device)
            eps_T = predict_eps(unet, x_T, torch.full((len(pick),), last, device=z.device), states[pick])
            a = alphas_cumprod[last].to(z.device)
            x0 = (x_T - (1 - a).sqrt() * eps_T) / a.sqrt()
            miss = (latent_track(x0) - latent_track(z[pick])).pow(2).sum(-1).mean(-1)
            loss = loss + track * miss.sum() / b
    if contrast > 0 and opposite is not None:
        differs = pairs_differ(states, opposite)
        pick = (differs & (t.to(differs.device) >= CONTRAST_MIN_T)).nonzero().flatten()
        if len(pick):
            other = predict_eps(unet, x_t[pick], t[pick].to(z.device), opposite[pick])
            err_other = (other - target[pick]).pow(2).mean(dim=(1, 2, 3, 4))
            hinge = F.relu(err[pick].log() - err_other.log() + CONTRAST_MARGIN)
            loss = loss + contrast * hinge.sum() / b
    return loss


def image_caption(caption: str) -> str:
    """The image world's caption inside a toy video caption (the words up to "background"; a caption without one
    is returned as it is): what the text encoder must keep reading as the image model learnt it."""
    words = caption.split()
    return " ".join(words[: words.index("background") + 1]) if "background" in words else caption


def word_separation(states: torch.Tensor, opposite: torch.Tensor, lengths: torch.Tensor, margin: float) -> torch.Tensor:
    """The hinge mean relu(margin − ‖s − s'‖) over the end-of-text and padding positions (index ≥ length − 1) of
    each pair of text states float (b, 77, d), a caption's and its reverse's (``lengths`` long (b,): the caption's
    token count with its start and end tokens), over the pairs whose captions differ (``opposite`` not equal).

    Why: the toy UNet's cross-attention puts 86 % of its weight on those positions (measured at t = 999) and the
    frozen encoder writes a colour into them (a distance of 5.4 a position between red and green) but barely a new
    word (0.04-0.06 between left and right), so no loss on the frames can reach the motion words through it."""
    pos = torch.arange(states.shape[1], device=states.device)[None] >= (lengths.to(states.device)[:, None] - 1)
    differs = pairs_differ(states, opposite)
    if not bool(differs.any()):
        return states.new_zeros(())
    dist = (states - opposite).norm(dim=-1)  # (b, 77)
    keep = pos & differs[:, None]
    return F.relu(margin - dist[keep]).mean()
