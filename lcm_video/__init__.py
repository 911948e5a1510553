"""lcm_video: fast, flicker-free video synthesis with Latent Consistency Models.

>>> import lcm_video
>>> lcm_video.stylize("clip.mp4", "out.mp4", "watercolor painting", model="tiny")  # doctest: +SKIP

Heavy imports (torch, diffusers) are deferred until a name below is first used, so ``lcm-video --help`` is instant.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

_EXPORTS = {
    "StylizeConfig": ".settings.configs",
    "GenerateConfig": ".settings.configs",
    "RenderConfig": ".settings.configs",
    "UserError": ".errors",
    "PRESETS": ".models.presets",
    "Models": ".models.container",
    "load_models": ".models.loading",
    "RenderResult": ".pipelines.window",
    "stylize": ".pipelines.video_to_video",
    "generate": ".pipelines.text_to_video",
    "ProgressEvent": ".events",
    "Cancelled": ".events",
    "evaluate": ".metrics",
    "run_batch": ".batch.run",
    "run_live": ".live.run",
    "LiveResult": ".live.run",
}
__all__ = sorted(_EXPORTS)


# No exported name may equal a submodule's: importing ``lcm_video.x`` sets the package attribute ``x`` to the module.
def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = _EXPORTS[name]
        if module in (".settings.configs", ".errors", ".models.presets"):  # no torch: keep them instant
            return getattr(importlib.import_module(module, __name__), name)
        from .notices import library_notices_off

        with library_notices_off():
            return getattr(importlib.import_module(module, __name__), name)
    raise AttributeError(f"module 'lcm_video' has no attribute {name!r}")
