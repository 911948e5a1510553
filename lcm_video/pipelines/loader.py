"""Which models a render's settings ask for (``models_for``), and loaded models kept for reuse: the batch runner's
(one at a time, units grouped by model) and the web UI's (the last two). One key says which settings decide what is
loaded. No torch until something loads."""

from __future__ import annotations

import gc
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from ..errors import UserError
from ..models.presets import PRESETS, SMALL_MODELS, TAESD_FOR, TINY_MODELS
from ..settings.parts import ModelConfig

if TYPE_CHECKING:
    from ..models.container import Models


def vae_source(m: ModelConfig) -> str | None:
    """The VAE a model config asks for: ``--vae``, TAESD for ``--fast`` (the preset's own tiny autoencoder, as the
    toy's trained here, else TAESDXL for an SDXL preset, a tiny random TAESD for the tiny presets, TAESD for the
    rest), or None for the model's own."""
    if m.vae or not m.fast:
        return m.vae
    if m.model in TINY_MODELS:
        return "builtin:tiny-taesd"
    preset = PRESETS.get(m.model or "")
    if preset is not None and preset.fast_vae:
        return preset.fast_vae
    if preset is not None and preset.base.startswith("weights:"):
        raise UserError(f"--fast: there is no tiny autoencoder for {m.model!r} (its own is already small); drop --fast")
    return TAESD_FOR[preset.family] if preset is not None else "taesd"


def model_threads(m: ModelConfig, name: str | None = None) -> int | None:
    """The torch threads ``m``'s models run with: ``--threads``, else 1 for the small models (measured per model
    class, BENCHMARKS.md), else None (torch's default). ``name``: the models actually run, when not ``m.model``."""
    return m.threads or (1 if (name if name is not None else m.model) in SMALL_MODELS else None)


def models_for(m: ModelConfig, models: Models | None = None, device: str | None = None) -> Models:
    """The models a render's model config asks for: ``models`` if given, else loaded from its model, LoRAs, VAE (or
    TAESD for ``fast``), dtype, motion adapter and ``device`` (default the config's); compiled in place when the
    config asks for it. Sets the process's torch thread count: ``--threads``, else 1 for the small models."""
    name = models.name if models is not None else m.model  # the models that will run
    threads = model_threads(m, name)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)  # the process's torch pool: measured per model class, BENCHMARKS.md
    if models is None:
        from ..models.loading import load_models

        dev = m.device if device is None else device
        models = load_models(m.model, m.lora, vae_source(m), dev, m.dtype, m.motion_adapter, m.backend)
    if m.compile:
        models.compile()
    return models


def model_key(m: ModelConfig) -> tuple:
    """What decides the loaded models of a :class:`ModelConfig`: renders with the same key share them."""
    spec = (m.model or "", tuple(m.lora), m.vae or "", m.fast, m.motion_adapter or "")
    return (*spec, m.device, m.dtype, m.compile, m.backend, m.quantize)


class ModelCache:
    """The last ``size`` model sets loaded, by :func:`model_key`; the least recently used is dropped (and its memory
    freed) before the next loads. ``device``: where a config's ``auto`` device goes (a batch process's own GPU)."""

    def __init__(self, size: int = 1, device: str | None = None):
        self.size, self.device = size, device
        self._models: OrderedDict[tuple, Any] = OrderedDict()
        self.loads = 0

    def get(self, m: ModelConfig) -> Models:
        """The models ``m`` asks for: cached, or loaded now."""
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
