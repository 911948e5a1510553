"""Cross-frame attention (``--cross-frame``): the UNet's spatial self-attention of every frame also attends to the
anchor frame's (the render's first) and the previous frame's hidden states at the same step and layer, as
Text2Video-Zero, Pix2Video and Rerender-A-Video do, so what each frame draws is tied to what the others drew.

Only the self-attention of the spatial transformer blocks (``attn1``) changes: text cross-attention and a motion
module's temporal attention are left alone. States carried between windows: per (step, layer), the anchor frame's
hidden states and the previous frame's of the next window's first (one frame each, never the video), so a window cut
anywhere sees the same context as one long window. Motion windows (generate, or stylise with a motion adapter) work
the same way: the UNet's spatial layers see one frame at a time, in (guidance half, frame) order.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..choices import CROSS_FRAME
from ..errors import UserError


class CrossFrameState:
    """What the processors share: the mode, which call of the current window this is (one call per sampler step),
    how the UNet batch is laid out (``groups`` × frames, guidance halves first), and the carried hidden states."""

    def __init__(self, mode: str):
        if mode not in CROSS_FRAME[1:]:
            raise ValueError(f"mode must be one of {CROSS_FRAME[1:]}")
        self.prev = mode == "anchor+prev"
        self.anchor: dict[tuple[int, str], torch.Tensor] = {}  # (step, layer) → (groups, tokens, dim)
        self.last: dict[tuple[int, str], torch.Tensor] = {}
        self._next_last: dict[tuple[int, str], torch.Tensor] = {}
        self.last_frame: int | None = None  # the frame ``last`` holds
        self.frames: list[int] = []
        self.carry = 0  # the position in the window of the frame the next window's first frame follows
        self.real = 0
        self.groups = 1
        self.step = -1

    def start_window(self, frames: range | list[int], carry: int | None = None) -> None:
        """Before a window's first UNet call: its output frame indices (positions), and ``carry``, the frame whose
        states the next window's first frame takes as its previous: the frame before the next window starts (the
        window's last without overlap; inside the overlap for motion windows). Default: the last."""
        self.frames, self.step = list(frames), -1
        self.carry = len(self.frames) - 1 if carry is None else self.frames.index(carry)

    def begin_call(self, real: int, batch: int, groups: int) -> None:
        """Before each UNet call: ``real`` frames (the rest of ``batch`` is padding), ``groups`` guidance halves."""
        self.step += 1
        self.real, self.batch, self.groups = real, batch, groups

    def end_window(self) -> None:
        """After a window: the carried frame's states become the previous frame of the next window's first."""
        if self._next_last:
            self.last, self._next_last = self._next_last, {}
            self.last_frame = self.frames[min(self.carry, self.real - 1)]

    def reset(self) -> None:
        """A cold start: forget the previous frame (the anchor stays: it is the render's, wherever a segment starts)."""
        self.last, self._next_last, self.last_frame = {}, {}, None


class CrossFrameAttnProcessor:
    """``attn1`` of one transformer block: keys and values from [this frame, the anchor, the previous frame]; a frame
    without one of them (the anchor itself, the render's first frame) sees itself in its place, which leaves plain
    self-attention's result unchanged up to rounding."""

    def __init__(self, state: CrossFrameState, layer: str):
        self.state, self.layer = state, layer

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        s = self.state
        if encoder_hidden_states is not None or hidden_states.ndim != 3 or attn.group_norm is not None:
            raise RuntimeError("cross-frame attention replaces spatial self-attention only")
        bf, tokens, dim = hidden_states.shape
        g = s.groups
        f = bf // g
        h = hidden_states.view(g, f, tokens, dim)
        key = (s.step, self.layer)
        # The anchor: frame 0 of the render, from this window if it is here, else carried.
        if 0 in s.frames[: s.real]:
            anchor = h[:, s.frames.index(0)]
            s.anchor[key] = anchor.detach().clone()
        else:
            anchor = s.anchor.get(key)
        ctx = [h, (h if anchor is None else anchor[:, None].expand(g, f, tokens, dim))]
        if s.prev:
            carried = s.last.get(key) if s.frames and s.last_frame == s.frames[0] - 1 else None
            first = h[:, :1] if carried is None else carried[:, None]
            ctx.append(torch.cat([first, h[:, :-1]], 1))
        s._next_last[key] = h[:, min(s.carry, s.real - 1)].detach().clone()
        context = torch.cat(ctx, 2).reshape(bf, len(ctx) * tokens, dim)
        q, k, v = attn.to_q(hidden_states), attn.to_k(context), attn.to_v(context)
        heads = attn.heads
        q, k, v = (x.view(bf, -1, heads, x.shape[-1] // heads).transpose(1, 2) for x in (q, k, v))
        if attn.norm_q is not None:
            q, k = attn.norm_q(q), attn.norm_k(k)
        out = F.scaled_dot_product_attention(q, k, v, scale=attn.scale)
        out = out.transpose(1, 2).reshape(bf, tokens, -1).to(q.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + hidden_states
        return out / attn.rescale_output_factor


def processors(unet, state: CrossFrameState) -> dict:
    """``unet``'s attention processors with cross-frame ones on its spatial self-attention layers (every ``attn1``
    outside motion modules). The denoiser sets them around each of its UNet calls and puts the old ones back, so a
    shared, loaded model is never left changed."""
    if not hasattr(unet, "attn_processors"):
        raise UserError("--cross-frame changes the torch UNet's attention per call; use it with --backend torch")
    procs = dict(unet.attn_processors)
    hit = 0
    for name in procs:
        if name.endswith("attn1.processor") and "motion_modules" not in name:
            procs[name] = CrossFrameAttnProcessor(state, name)
            hit += 1
    if not hit:
        raise RuntimeError("this UNet has no spatial self-attention layers for cross-frame attention")
    return procs
