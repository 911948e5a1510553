"""ControlNets beside the UNet: their residuals for one UNet call, summed over several nets as diffusers'
``MultiControlNetModel`` sums them, each acting on the share of the steps diffusers' ``control_guidance_start`` /
``control_guidance_end`` give it. Tensors in, tensors out."""

from __future__ import annotations

from collections.abc import Sequence

import torch


class ControlGuide:
    """``nets`` (``ControlNetModel`` each), their ``scales`` and the share of the steps they act on.

    A net acts at step i of n when ``start <= i / n`` and ``(i + 1) / n <= end`` (diffusers' ``controlnet_keep``);
    outside it, it is not run at all (diffusers runs it at scale 0: the same UNet input, since adding zero residuals
    changes nothing)."""

    def __init__(self, nets: Sequence, scales: Sequence[float], start: float = 0.0, end: float = 1.0):
        self.nets, self.scales, self.start, self.end = list(nets), [float(s) for s in scales], start, end
        self.dtype = self.nets[0].dtype
        self.calls = 0  # ControlNet forward passes

    def acts(self, step: int, steps: int) -> bool:
        return not (step / steps < self.start or (step + 1) / steps > self.end)

    @torch.inference_mode()
    def residuals(
        self, sample: torch.Tensor, t, states: torch.Tensor, images: Sequence[torch.Tensor], step: int, steps: int
    ) -> dict | None:
        """The UNet's extra inputs for one call, or None where no net acts.

        sample: (B, c, h, w) the UNet's input latents, frames as a batch (a motion UNet's (b, c, f, h, w) flattened
        to (b·f, c, h, w), as diffusers' ``AnimateDiffControlNetPipeline`` does); t: the timestep (int, or (B,));
        states: (B, L, D) text states; images: per net, (B, 3, H, W) control maps in [0, 1] at the frame's size.
        Returns ``{"down_block_additional_residuals": [...], "mid_block_additional_residual": ...}``."""
        if not self.acts(step, steps):
            return None
        down = mid = None
        dev = sample.device
        tt = t.to(dev) if isinstance(t, torch.Tensor) else torch.tensor(t, device=dev)
        for net, scale, image in zip(self.nets, self.scales, images, strict=True):
            d, m = net(
                sample.to(dev, self.dtype),
                tt,
                encoder_hidden_states=states.to(dev, self.dtype),
                controlnet_cond=image.to(dev, self.dtype),
                conditioning_scale=scale,
                return_dict=False,
            )
            self.calls += 1
            if down is None:
                down, mid = list(d), m
            else:
                down, mid = [a + b for a, b in zip(down, d, strict=True)], mid + m
        return {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}
