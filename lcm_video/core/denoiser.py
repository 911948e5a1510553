"""Adapters that turn a diffusers UNet into ``denoiser(x, t) -> model output`` for the sampler.

They hide everything the loop should not see: text embeddings (one prompt, or keyframed prompts interpolated per
frame), guidance (a w-embedding for LCM checkpoints, or classifier-free guidance for LCM-LoRA-style models at
guidance > 1), dtype, and layout (frames as a batch for a 2D UNet, as a clip for a motion UNet).
"""

from __future__ import annotations

import torch
from einops import rearrange

from ..keyframes import Keyframes


class PromptSchedule:
    """Text states per output frame: keyframes ``{frame: (1, L, D)}`` interpolated by ``Keyframes`` (linear in
    between, held before the first key and after the last). ``__call__(frames)`` → (f, L, D)."""

    def __init__(self, keys: dict[int, torch.Tensor]):
        self.keys = Keyframes(keys)

    def __call__(self, frames: range | list[int]) -> torch.Tensor:
        keys = self.keys
        if len(keys) == 1:
            return keys.keys[keys.frames[0]].expand(len(frames), -1, -1)
        out = []
        for f in frames:
            lo, hi, w = keys.span(f)
            out.append(keys.keys[lo][0] if lo == hi else torch.lerp(keys.keys[lo][0], keys.keys[hi][0], w))
        return torch.stack(out)


def pad_batch(x: torch.Tensor, size: int | None) -> torch.Tensor:
    """Repeat the last item of ``x`` (f, ...) until it has ``size`` items; unchanged if already that long."""
    if size is None or x.shape[0] >= size:
        return x
    return torch.cat([x, x[-1:].expand(size - x.shape[0], *x.shape[1:])])


class UNetDenoiser:
    """A ``UNet2DConditionModel`` (frames as a batch) or ``UNetMotionModel`` (frames as one clip) as a denoiser.

    ``__call__(x, t, frames)``: x (f, c, h, w) float32 latents of output frames ``frames`` at integer timestep t →
    model output (f, c, h, w) float32. cond / uncond: ``PromptSchedule``s giving (f, L, D) text states; uncond given →
    classifier-free guidance ``u + g·(c - u)`` in one UNet batch. timestep_cond: (1, E) LCM w-embedding or None; it is
    passed to the motion UNet too, which diffusers' AnimateDiff pipelines never do.

    ``control``: a ``ControlGuide`` (ControlNets) or None; a call then takes the window's control maps, per net
    (f, 3, H, W) in [0, 1], and the step index ``step`` of ``steps`` (when the nets act).

    ``image_embeds``: an IP-Adapter reference's embedding per loaded adapter (``--style-image``), as diffusers'
    ``prepare_ip_adapter_image_embeds`` gives it, computed once per render: (1, 1, ...) for the conditional branch, or
    (2, 1, ...) negative first where classifier-free guidance runs; each call hands the UNet one row per item of its
    batch (a motion UNet repeats them per frame itself), as ``added_cond_kwargs={"image_embeds": ...}``.

    ``batch`` (2D UNet only): a short window is padded to this many frames and the pad dropped. BLAS kernels round
    differently for different batch sizes (~1e-6), so one fixed shape makes identical inputs give bit-identical
    outputs wherever they fall in the video. A motion UNet is never padded: pad frames would join its temporal
    attention.
    """

    def __init__(
        self,
        unet,
        cond: PromptSchedule,
        uncond: PromptSchedule | None = None,
        guidance: float = 1.0,
        timestep_cond: torch.Tensor | None = None,
        batch: int | None = None,
    ):
        self.unet, self.cond, self.uncond, self.guidance, self.tcond = unet, cond, uncond, guidance, timestep_cond
        self.motion = getattr(unet, "motion", type(unet).__name__ == "UNetMotionModel")  # OpenVINO runners say
        self.batch = None if self.motion else batch
        self.dtype = unet.dtype
        self.calls = 0  # UNet forward passes, for tests of "steps are steps"
        self.control = None  # a ``core.control.ControlGuide`` for ``--control``
        self.cross_frame = (
            None  # (CrossFrameState, processors) for ``--cross-frame``: ``temporal.attention.processors``
        )
        self.image_embeds: list[torch.Tensor] | None = None  # ``--style-image``: see the class docstring

    @torch.inference_mode()
    def __call__(
        self,
        x: torch.Tensor,
        t: int | torch.Tensor,
        frames: range | list[int],
        step: int = 0,
        steps: int = 1,
        control: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        n = x.shape[0]
        x = pad_batch(x, self.batch)
        if isinstance(t, torch.Tensor):  # one timestep per frame (strength keyframes; 2D UNet only)
            t = pad_batch(t, self.batch)
            t = torch.cat([t, t]) if self.uncond is not None else t
        frames = list(frames) + [frames[-1]] * (x.shape[0] - n)
        states = self.cond(frames)
        xs = [x]
        if self.uncond is not None:
            states = torch.cat([self.uncond(frames), states])
            xs = [x, x]
        dev = self.unet.device
        if self.motion:
            sample = torch.stack([rearrange(v, "f c h w -> c f h w") for v in xs])  # (b, c, f, h, w)
        else:
            sample = torch.cat(xs)  # (b·f, c, h, w)
        tcond = None if self.tcond is None else self.tcond.expand(sample.shape[0], -1)
        tt = t.to(dev) if isinstance(t, torch.Tensor) else torch.tensor(t, device=dev)
        extra = {}
        if self.control is not None and control is not None:
            # The maps in the UNet batch's layout: padded as the latents are, once per guidance branch.
            images = [torch.cat([pad_batch(im, self.batch)] * len(xs)) for im in control]
            flat = rearrange(sample, "b c f h w -> (b f) c h w") if self.motion else sample
            extra = self.control.residuals(flat, tt, states, images, step, steps) or {}
        if self.image_embeds is not None:
            # beside any other added conditions (SDXL's pooled text and time ids go in the same dict)
            rows = [self._image_rows(e, x.shape[0], dev) for e in self.image_embeds]
            extra.setdefault("added_cond_kwargs", {})["image_embeds"] = rows
        before = None
        if self.cross_frame is not None:
            state, procs = self.cross_frame
            state.begin_call(n, x.shape[0], len(xs))
            before = dict(self.unet.attn_processors)
            self.unet.set_attn_processor(dict(procs))  # diffusers empties the dict it is given
        try:
            out = self.unet(
                # One memory layout for every call (the first step's latents come out of the VAE channels-last): the
                # same strides keep BLAS on one path and let a compiled UNet reuse its graph.
                sample.to(dev, self.dtype).contiguous(),
                tt,
                encoder_hidden_states=states.to(dev, self.dtype),
                timestep_cond=tcond,
                return_dict=False,
                **extra,
            )[0]
        finally:
            if before is not None:
                self.unet.set_attn_processor(before)
        self.calls += 1
        out = out.float()
        if self.motion:
            out = rearrange(out, "b c f h w -> (b f) c h w")
        if self.uncond is not None:
            u, c = out.chunk(2)
            out = u + self.guidance * (c - u)
        return out[:n]

    def _image_rows(self, embeds: torch.Tensor, frames: int, dev) -> torch.Tensor:
        """One adapter's (k, 1, ...) embedding (k = 2 with guidance: negative, then positive) as the UNet batch takes
        it: per branch, one row per frame for a 2D UNet ((k·f, 1, ...), the branches in the order of ``states``); the
        k rows as they are for a motion UNet, which repeats them per frame."""
        if embeds.shape[0] != (2 if self.uncond is not None else 1):
            raise ValueError(f"image_embeds have {embeds.shape[0]} rows; guidance needs 2, none 1")
        if not self.motion:
            embeds = torch.cat([e[None].expand(frames, *e.shape) for e in embeds])
        return embeds.to(dev, self.dtype)
