"""How an output was made, written into the video itself (as ComfyUI and A1111 embed their settings) and read back:
``lcm-video info OUT.mp4`` prints it, ``--config OUT.mp4`` and ``lcm-video rerun OUT.mp4`` render it again.

The record is one JSON object in the container's ``comment`` tag (mp4/mov ``©cmt``, Matroska/WebM ``COMMENT``, AVI
``ICMT``): the tool and its version, the command, every resolved setting (``cfg.flat()``), the source file and its
size and date (stylise), the style image's path and SHA-256 (``--style-image``), and the SHA-256 of local weight files
(checkpoint, LoRAs, VAE, motion adapter, IP-Adapter) where the setting names one. No torch here: reading a record is
instant.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from . import __version__
from .errors import UserError

TOOL = "lcm_video"
_WEIGHT_SETTINGS = ("model", "lora", "vae", "motion_adapter", "ip_adapter")


@lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_hash(spec: str) -> str | None:
    """SHA-256 of a setting's local weight file (``path`` or ``path:scale`` of a LoRA, or a preset's shipped file);
    None for hub ids, presets without a file and directories."""
    from .models.presets import parse_lora, preset_path

    path = Path(preset_path(spec))
    if not path.is_file():
        path = Path(preset_path(parse_lora(spec)[0]))
    if not path.is_file():
        return None
    st = path.stat()
    return _sha256(str(path.resolve()), st.st_size, st.st_mtime_ns)


def make_record(
    command: str,
    settings: dict[str, Any],
    source: str | os.PathLike | None = None,
    ran: list[dict] | None = None,
    rendered: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The record of one render: ``settings`` is the resolved config's ``flat()``; ``ran``: what the models computed
    on (``Models.runtime``), one entry per distinct one (a batch job's segments may have run on several machines);
    ``rendered``: a batch output's ``{"engine": ..., "workers": n}`` (who rendered its segments)."""
    hashes = {}
    for key in _WEIGHT_SETTINGS:
        value = settings.get(key)
        for spec in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(spec, str) and (digest := file_hash(spec)):
                hashes[spec] = digest
    rec: dict[str, Any] = {"tool": TOOL, "version": __version__, "command": command}
    made = {k: v for k, v in settings.items() if k != "quiet"}  # how it was made, not how it was watched
    rec["settings"] = json.loads(json.dumps(made, default=str))  # Fraction → "30000/1001", tuples → lists
    if source is not None:
        p = Path(source).resolve()
        st = p.stat()
        rec["source"] = {"path": str(p), "bytes": st.st_size, "mtime": int(st.st_mtime)}
    if hashes:
        rec["sha256"] = hashes
    style = settings.get("style_image")
    if isinstance(style, str) and Path(style).is_file():  # the reference image by content, not only by name
        st = Path(style).stat()
        digest = _sha256(str(Path(style).resolve()), st.st_size, st.st_mtime_ns)
        rec["style_image"] = {"path": str(Path(style).resolve()), "sha256": digest}
    if ran:
        rec["ran"] = ran
    if rendered:
        rec["rendered"] = rendered
    return rec


def read_record(path: str | os.PathLike) -> dict[str, Any] | None:
    """The record written into ``path``, or None when it has none (not made by this tool)."""
    from .video.ffmpeg import read_comment
    from .video.reader import check_input

    rec = read_comment(check_input(path))
    return rec if rec is not None and rec.get("tool") == TOOL else None


def recorded_settings(path: str | os.PathLike, command: str) -> dict[str, Any]:
    """The settings recorded in a video made by ``command``, for ``--config VIDEO``; a UserError otherwise."""
    rec = read_record(path)
    if rec is None:
        raise UserError(f"{str(path)!r} has no lcm-video settings in it; give a YAML file or a video lcm-video made")
    if rec.get("command") != command:
        raise UserError(
            f"{str(path)!r} was made by `lcm-video {rec.get('command')}`; use it as --config of that command "
            f"(or `lcm-video rerun {path}`)"
        )
    return dict(rec["settings"])
