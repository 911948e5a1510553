"""The job file: ``defaults:`` (any stylize or generate option) and ``jobs:`` (each a name, a mode, an output inside
``--out``, an input for stylize, and any option of its mode). The whole file is checked before anything renders and
every problem is listed with its job and key."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..options import BATCH, GENERATE, STYLIZE, did_you_mean
from ..settings.configs import GenerateConfig, StylizeConfig
from ..settings.flags import COMMAND_FLAGS
from ..settings.parts import SETTINGS
from ..settings.resolve import load_yaml, resolve

MODES = (STYLIZE, GENERATE)
JOB_KEYS = ("name", "mode", "input", "output", "segment_frames")
SEGMENT_FRAMES = next(o for o in COMMAND_FLAGS if o.name == "segment_frames")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


@dataclass(frozen=True)
class Job:
    """One validated job: its config, resolved input path, output path inside ``--out`` and segment length."""

    index: int
    name: str
    mode: str
    cfg: StylizeConfig | GenerateConfig
    input: Path | None
    output: Path
    segment_frames: int

    @property
    def model_key(self) -> tuple:
        """What decides the loaded models: jobs with the same key share them."""
        from ..pipelines.loader import model_key

        return model_key(self.cfg.model)


def _keys(mapping: dict) -> dict[str, Any]:
    return {str(k).replace("-", "_"): v for k, v in mapping.items()}


def mode_keys(mode: str) -> set[str]:
    """The option names a job of ``mode`` may set."""
    return {name for name, o in SETTINGS.items() if mode in o.commands}


class _Problems(list):
    """Problems found so far, each ``label: what``."""

    def about(self, label: str) -> bool:
        return any(p.startswith(label + ":") for p in self)


RELATIVE_FILES = ("style_image",)
"""Settings naming a file that a job file gives relative to itself, as it gives ``input``."""


def _read_file(path: str | os.PathLike, problems: _Problems) -> tuple[dict[str, Any], list]:
    data = load_yaml(path)
    unknown = set(data) - {"defaults", "jobs"}
    if unknown:
        problems.append(f"{path}: unknown top-level keys {sorted(unknown)}; use defaults: and jobs:")
    defaults, entries = data.get("defaults") or {}, data.get("jobs")
    if not isinstance(defaults, dict):
        problems.append(f"{path}: defaults must be a mapping of option: value")
        defaults = {}
    if not isinstance(entries, list) or not entries:
        raise UserError(f"{path}: needs a non-empty list under jobs:")
    defaults = _keys(defaults)
    known = mode_keys(STYLIZE) | mode_keys(GENERATE) | {"segment_frames"}
    for key in defaults:
        if key not in known:
            problems.append(f"defaults: unknown key {key!r}{did_you_mean(key, known)}")
    return defaults, entries


def _segment_frames(entry: dict, defaults: dict, given: int | None, label: str, problems: _Problems) -> int:
    """A job's own key, else the command line's --segment-frames, else the file's defaults, else 240."""
    value = entry.get("segment_frames", given if given is not None else defaults.get("segment_frames"))
    if value is None:
        return SEGMENT_FRAMES.default
    try:
        n = SEGMENT_FRAMES.coerce(value)
        SEGMENT_FRAMES.check(n)
        return n
    except UserError as exc:
        problems.append(f"{label}: {exc}")
        return SEGMENT_FRAMES.default


def _output(entry: dict, out_dir: Path, label: str, outputs: dict[Path, str], problems: _Problems) -> Path | None:
    output = entry.get("output")
    if not output:
        problems.append(f"{label}: needs an output file name")
        return None
    rel = Path(str(output))
    if rel.is_absolute() or ".." in rel.parts:
        problems.append(f"{label}: output {str(output)!r} must be a relative path inside --out, without '..'")
        return None
    path = (out_dir / rel).resolve()
    if path in outputs:
        problems.append(f"{label}: output {str(output)!r} is also the output of job {outputs[path]!r}")
    outputs.setdefault(path, str(entry.get("name", "")))
    return path


def _input(entry: dict, mode: str, base: Path, label: str, problems: _Problems) -> Path | None:
    if mode == GENERATE:
        if entry.get("input"):
            problems.append(f"{label}: generate takes no input")
        return None
    if not entry.get("input"):
        problems.append(f"{label}: stylize needs an input video")
        return None
    path = (base / str(entry["input"])).resolve()
    if not path.exists():
        problems.append(f"{label}: input {str(entry['input'])!r} not found (relative to the job file)")
    return path


def _config(mode: str, values: dict[str, Any], out_path: Path | None):
    """The job's validated config (the same resolve path as the command line's), or a UserError."""
    from ..video.ffmpeg import check_container

    cfg = resolve(mode, None, values, "the job")
    if out_path is not None:
        check_container(out_path, cfg.output.codec, cfg.output.preset)
    return cfg


def load_jobs(path: str | os.PathLike, out: str | os.PathLike, segment_frames: int | None = None) -> list[Job]:
    """Read and check a whole job file before anything renders; every problem is listed with its job and key."""
    problems = _Problems()
    defaults, entries = _read_file(path, problems)
    base, out_dir = Path(path).resolve().parent, Path(out).resolve()
    jobs: list[Job] = []
    names: dict[str, int] = {}
    outputs: dict[Path, str] = {}
    for i, entry in enumerate(entries):
        label = f"job #{i + 1}"
        if not isinstance(entry, dict):
            problems.append(f"{label}: must be a mapping of key: value")
            continue
        entry = _keys(entry)
        name = str(entry.get("name", ""))
        label = f"job #{i + 1} {name!r}" if name else label
        mode = str(entry.get("mode", STYLIZE))
        if mode not in MODES:
            problems.append(f"{label}: mode must be stylize or generate, got {mode!r}")
            continue
        allowed = mode_keys(mode)
        values = {k: v for k, v in defaults.items() if k in allowed}
        for key, value in entry.items():
            if key in JOB_KEYS:
                continue
            if key not in allowed:
                hint = did_you_mean(key, allowed | set(JOB_KEYS)) or f"; valid: {', '.join(sorted(allowed))}"
                problems.append(f"{label}: unknown key {key!r} for mode {mode}{hint}")
                continue
            values[key] = value
        for key in RELATIVE_FILES:  # a file a setting names, like the input: relative to the job file
            if isinstance(values.get(key), str) and values[key]:
                values[key] = str((base / values[key]).resolve())
        if not name:
            problems.append(f"{label}: needs a name")
        elif not _NAME.match(name) or ".." in name:
            problems.append(f"{label}: name must be letters, digits, '_', '-' or '.' (no '..', no '/')")
        elif name in names:
            problems.append(f"{label}: duplicate name (also job #{names[name] + 1})")
        names.setdefault(name, i)
        out_path = _output(entry, out_dir, label, outputs, problems)
        in_path = _input(entry, mode, base, label, problems)
        seg = _segment_frames(entry, defaults, segment_frames, label, problems)
        try:
            cfg = _config(mode, values, out_path)
        except UserError as exc:
            problems.append(f"{label}: {exc}")
            continue
        if out_path is not None and name and not problems.about(label):
            jobs.append(Job(i, name, mode, cfg, in_path, out_path, seg))
    if problems:
        raise UserError(f"{path}: {len(problems)} problem(s):\n  " + "\n  ".join(problems))
    return jobs


__all__ = ["BATCH", "Job", "load_jobs"]
