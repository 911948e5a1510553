"""Files written whole or not at all, and fingerprints of settings: what batch work folders and training checkpoints
share. No torch."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


def cache_dir() -> Path:
    """lcm-video's cache: ``$LCM_VIDEO_CACHE`` (default ``~/.cache/lcm_video``): converted models, indexable copies of
    sources decord cannot read."""
    return Path(os.environ.get("LCM_VIDEO_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "lcm_video"))


def atomic_write(path: Path, write: Callable[[Path], object]) -> Path:
    """``write(tmp)`` to a temporary name beside ``path``, then rename it into place: a reader sees the old file or
    the whole new one, never a part. On an error the temporary file is removed and the error raised."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_json(path: Path, data: dict) -> Path:
    """``data`` as indented JSON at ``path``, atomically (values JSON cannot hold are written as their ``str``)."""
    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, default=str)))


def plain(settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` as JSON holds them: tuples become lists, fractions and paths strings; equal settings compare
    equal after a round trip through a file."""
    return json.loads(json.dumps(settings, default=str))


def digest(payload: dict[str, Any]) -> str:
    """A short, stable fingerprint of ``payload`` (16 hex digits of the SHA-256 of its sorted JSON)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]
