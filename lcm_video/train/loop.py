"""What every training loop here shares: a step's generator as a pure function of (seed, step), atomic checkpoint
files, the newest checkpoint of a folder. A resumed run draws exactly what the uninterrupted one would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..files import atomic_write


def step_generator(seed: int, step: int) -> torch.Generator:
    """The generator of one training step: a pure function of (seed, step)."""
    state = np.random.SeedSequence([seed, step]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 31 ^ int(state[1]))


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary name beside ``path``, then rename: a crash leaves the old file or the new one."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest ``step_NNNNNN.pt`` in ``folder`` (names sort by step), or None."""
    found = sorted(Path(folder).glob("step_*.pt"))
    return found[-1] if found else None


def keep_last(folder: Path, keep: int) -> None:
    """Remove all but the newest ``keep`` checkpoints of ``folder``."""
    for old in sorted(Path(folder).glob("step_*.pt"))[:-keep]:
        old.unlink(missing_ok=True)


def ema_decay(step: int, ceiling: float) -> float:
    """The EMA's decay after ``step`` optimiser steps: (1 + step) / (10 + step), capped at ``ceiling`` (the toy
    teacher's warm-up, so early averages are not dominated by the random start)."""
    return min(ceiling, (1 + step) / (10 + step))
