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


class AddedConditions:
    """SDXL's added UNet inputs (``added_cond_kwargs``) per output frame: the pooled text embedding (a
    ``PromptSchedule`` of (1, 1, P) keys, so keyframed prompts interpolate it as they do the states) and the time ids
    (1, 5 or 6), the same for every frame of a render; the unconditional pair where classifier-free guidance runs.
    ``__call__(frames, motion)`` → ``{"text_embeds", "time_ids"}`` in the UNet batch's order (uncond first): per frame
    for a 2D UNet, per clip (the first frame's) for a motion UNet, which repeats them over its frames itself."""

    def __init__(
        self,
        pooled: PromptSchedule,
        time_ids: torch.Tensor,
        uncond_pooled: PromptSchedule | None = None,
        uncond_time_ids: torch.Tensor | None = None,
    ):
        self.pooled, self.time_ids = pooled, time_ids
        self.uncond_pooled, self.uncond_time_ids = uncond_pooled, uncond_time_ids

    def __call__(self, frames: list[int], motion: bool = False, uncond: bool = True) -> dict[str, torch.Tensor]:
        frames = frames[:1] if motion else frames
        branches = [(self.pooled, self.time_ids)]
        if self.uncond_pooled is not None and uncond:
            branches.insert(0, (self.uncond_pooled, self.uncond_time_ids))
        embeds = torch.cat([p(frames)[:, 0] for p, _ in branches])  # (b, P)
        ids = torch.cat([t.expand(len(frames), -1) for _, t in branches])  # (b, 5 or 6)
        return {"text_embeds": embeds, "time_ids": ids}


def pad_batch(x: torch.Tensor, size: int | None) -> torch.Tensor:
    """Repeat the last item of ``x`` (f, ...) until it has ``size`` items; unchanged if already that long."""
    if size is None or x.shape[0] >= size:
        return x
    return torch.cat([x, x[-1:].expand(size - x.shape[0], *x.shape[1:])])


class UNetDenoiser:
    """A ``UNet2DConditionModel`` (frames as a batch) or ``UNetMotionModel`` (frames as one clip) as a denoiser.

    ``__call__(x, t, frames)``: x (f, c, h, w) float32 latents of output frames ``frames`` at integer timestep t →
    model output (f, c, h, w) float32. cond / uncond: ``PromptSchedule``s giving (f, L, D) text states; uncond given →
    classifier-free guidance ``u + g·(c - u)`` in one UNet batch, or, given ``negative`` (residual CFG,
    ``core.sampler.Residual``: u made without the UNet, (f, c, h, w)), the conditional branch alone; ``last_uncond``
    keeps the last real u (f, c, h, w). timestep_cond: (1, E) LCM w-embedding or None; it is
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
        self.dtype, self.device = unet.dtype, unet.device  # read once: diffusers walks the parameters per access
        self.calls = 0  # UNet forward passes, for tests of "steps are steps"
        self.control = None  # a ``core.control.ControlGuide`` for ``--control``
        self.added: list = []
        """Sources of ``added_cond_kwargs`` entries, each ``source(frames, motion) -> dict`` of tensors in the UNet
        batch's order (``AddedConditions`` for SDXL; an image embedding may join them)."""
        self.cross_frame = (
            None  # (CrossFrameState, processors) for ``--cross-frame``: ``temporal.attention.processors``
        )
        self.image_embeds: list[torch.Tensor] | None = None  # ``--style-image``: see the class docstring
        self.last_uncond: torch.Tensor | None = None

    @torch.inference_mode()
    def __call__(
        self,
        x: torch.Tensor,
        t: int | torch.Tensor,
        frames: range | list[int],
        step: int = 0,
        steps: int = 1,
        control: list[torch.Tensor] | None = None,
        negative: torch.Tensor | None = None,
    ) -> torch.Tensor:
        n = x.shape[0]
        x = pad_batch(x, self.batch)
        guided = self.uncond is not None and negative is None  # a negative pass in this UNet batch
        if isinstance(t, torch.Tensor):  # one timestep per frame (strength keyframes; 2D UNet only)
            t = pad_batch(t, self.batch)
            t = torch.cat([t, t]) if guided else t
        frames = list(frames) + [frames[-1]] * (x.shape[0] - n)
        states = self.cond(frames)
        xs = [x]
        if guided:
            states = torch.cat([self.uncond(frames), states])
            xs = [x, x]
        dev = self.device
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
        added = {}
        for source in self.added:
            added.update(source(frames, self.motion, guided))
        if added:  # tensors, or lists of them (IP-Adapter's image_embeds), in the UNet's device and dtype
            extra["added_cond_kwargs"] = {
                k: [e.to(dev, self.dtype) for e in v] if isinstance(v, list) else v.to(dev, self.dtype)
                for k, v in added.items()
            }
        if self.image_embeds is not None:
            # beside any other added conditions (SDXL's pooled text and time ids go in the same dict)
            rows = [
                self._image_rows(e if guided or self.uncond is None else e[1:], x.shape[0], dev, guided)
                for e in self.image_embeds
            ]
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
        if guided:
            u, out = out.chunk(2)
            self.last_uncond = u[:n]
        elif negative is not None and self.uncond is not None:
            u = negative
            out = out[:n]
        if self.uncond is not None:
            out = u[:n] + self.guidance * (out[:n] - u[:n])
        return out[:n]

    def _image_rows(self, embeds: torch.Tensor, frames: int, dev, guided: bool = True) -> torch.Tensor:
        """One adapter's (k, 1, ...) embedding (k = 2 with guidance: negative, then positive) as the UNet batch takes
        it: per branch, one row per frame for a 2D UNet ((k·f, 1, ...), the branches in the order of ``states``); the
        k rows as they are for a motion UNet, which repeats them per frame."""
        if embeds.shape[0] != (2 if guided and self.uncond is not None else 1):
            raise ValueError(f"image_embeds have {embeds.shape[0]} rows; guidance needs 2, none 1")
        if not self.motion:
            embeds = torch.cat([e[None].expand(frames, *e.shape) for e in embeds])
        return embeds.to(dev, self.dtype)
