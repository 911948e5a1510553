"""Loaded models kept for reuse: the batch runner's (one at a time, units grouped by model) and the web UI's (the
last two). One key says which settings decide what is loaded."""

from __future__ import annotations

import gc
from collections import OrderedDict
from typing import Any


def model_key(m) -> tuple:
    """What decides the loaded models of a :class:`ModelConfig`: renders with the same key share them."""
    spec = (m.model or "", tuple(m.lora), m.vae or "", m.fast, m.motion_adapter or "")
    return (*spec, m.device, m.dtype, m.compile, m.backend)


class ModelCache:
    """The last ``size`` model sets loaded, by :func:`model_key`; the least recently used is dropped (and its memory
    freed) before the next loads. ``device``: where a config's ``auto`` device goes (a batch process's own GPU)."""

    def __init__(self, size: int = 1, device: str | None = None):
        self.size, self.device = size, device
        self._models: OrderedDict[tuple, Any] = OrderedDict()
        self.loads = 0

    def get(self, m):
        """The models ``m`` asks for: cached, or loaded now."""
        from .loading import models_for

        key = model_key(m)
        if key in self._models:
            self._models.move_to_end(key)
            return self._models[key]
        while len(self._models) >= self.size:
            self._models.popitem(last=False)
            gc.collect()
        device = m.device if m.device != "auto" or self.device is None else self.device
        self._models[key] = models_for(m, device=device)
        self.loads += 1
        return self._models[key]

    def __len__(self) -> int:
        return len(self._models)
