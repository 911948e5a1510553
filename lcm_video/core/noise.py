"""Noise that is a pure function of (seed, frame, step, shape).

Because no generator state is carried between frames, a frame gets the same ε whether it is rendered in a window of
3 or 16, in the first or the fifth segment, by process 0 or 7, fresh or after a resume.
"""

from __future__ import annotations

import math

import numpy as np
import torch

_SHARED, _OWN = 0, 1


def gaussian(seed: int, key: tuple[int, ...], shape: tuple[int, ...]) -> torch.Tensor:
    """Standard normal float32 CPU tensor of ``shape`` determined by ``seed`` and ``key`` alone.

    Drawn on the CPU so a CUDA, MPS and CPU render of the same seed start from the same numbers.
    """
    return torch.randn(shape, generator=keyed_generator(seed, *key), dtype=torch.float32)


def keyed_generator(seed: int, *key: int) -> torch.Generator:
    """A CPU generator whose stream is a pure function of ``(seed, *key)``: render noise is keyed on (frame, step),
    a training step's draws on (step, process rank)."""
    state = np.random.SeedSequence([seed, *key]).generate_state(2, np.uint32)
    return torch.Generator(device="cpu").manual_seed(int(state[0]) << 31 ^ int(state[1]))


class FrameNoise:
    """ε for frame ``f`` at step ``k``: ``sqrt(a)·shared_k + sqrt(1-a)·own_{f,k}`` with ``a = shared``.

    ``shared=1`` gives every frame the same ε (the strongest anti-flicker setting on a steady shot); ``0`` gives each
    frame its own. ``renoise="initial"`` re-uses the step-0 ε for every re-noise (StreamDiffusion's choice);
    ``"fresh"`` draws a new ε per step as diffusers' LCMScheduler does.
    """

    def __init__(self, seed: int, shape: tuple[int, int, int], shared: float = 1.0, renoise: str = "fresh"):
        self.seed, self.shape, self.shared, self.renoise = seed, tuple(shape), float(shared), renoise
        self._shared_cache: dict[int, torch.Tensor] = {}

    def _key_step(self, step: int) -> int:
        return 0 if self.renoise == "initial" else step

    def shared_eps(self, step: int) -> torch.Tensor:
        k = self._key_step(step)
        if k not in self._shared_cache:
            self._shared_cache[k] = gaussian(self.seed, (_SHARED, k), self.shape)
        return self._shared_cache[k]

    def frame_eps(self, frame: int, step: int) -> torch.Tensor:
        """(c, h, w) float32 ε of one output frame at one step."""
        a = self.shared
        k = self._key_step(step)
        if a >= 1.0:
            return self.shared_eps(step)
        own = gaussian(self.seed, (_OWN, frame, k), self.shape)
        if a <= 0.0:
            return own
        return math.sqrt(a) * self.shared_eps(step) + math.sqrt(1.0 - a) * own

    def window(self, frames: range | list[int], device: torch.device | str = "cpu") -> WindowNoise:
        return WindowNoise(self, list(frames), device)


class WindowNoise:
    """Indexable by step: ``noise[k]`` is the (f, c, h, w) float32 ε of the window's frames at step k, made lazily."""

    def __init__(self, source: FrameNoise, frames: list[int], device: torch.device | str):
        self.source, self.frames, self.device = source, frames, device

    def __getitem__(self, step: int) -> torch.Tensor:
        eps = torch.stack([self.source.frame_eps(f, step) for f in self.frames])
        return eps.to(self.device)
