"""Load errors of hub ids and local folders as one line that says what to do; shared by every loader (models,
LoRAs, VAEs, motion adapters, ControlNets, IP-Adapters). No torch."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from ..errors import UserError


@contextmanager
def explain_load_errors(what: str, source: str):
    """Turn diffusers / hub exceptions into one line that says what to do."""
    try:
        yield
    except UserError:
        raise
    except (OSError, ValueError, KeyError) as exc:
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        local = Path(source).exists()
        if local:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise UserError(f"cannot load {what} from {source!r}: {first}") from None
        how = (
            "HF_HUB_OFFLINE is set, so only the local cache is used"
            if offline
            else "the hub could not be reached or has no such repository"
        )
        raise UserError(
            f"cannot load {what} {source!r}: not in the local cache and {how}; pass a local directory instead, "
            f"or download it once with `hf download {source}` (cache: $HF_HOME) and rerun"
        ) from None
