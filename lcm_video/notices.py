"""Library chatter off for a moment: what diffusers and transformers log while they are imported and while weights
load (optional-dependency hints such as "requires torchvision", an empty "modules that should be kept in float32:
[]", deprecation notes) is about their internals, not the user's input; and their own "Loading pipeline components"
and "Loading weights" bars, which would print before lcm-video's own progress (one progress display per run).
Errors still show; levels and bars are restored."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def library_notices_off() -> Iterator[None]:
    # Through the libraries' own verbosity setters: they configure their root logger on first use, which would
    # undo a level set on it beforehand.
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    libraries = (diffusers_logging, transformers_logging)
    saved = [(lib.get_verbosity(), lib.is_progress_bar_enabled()) for lib in libraries]
    for lib in libraries:
        lib.set_verbosity_error()
        lib.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        for lib, (level, bars) in zip(libraries, saved, strict=True):
            lib.set_verbosity(level)
            if bars:
                lib.enable_progress_bar()
