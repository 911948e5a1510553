"""The structure-guidance part of a render: ControlNets, their annotators and how long they act (``--control``). Its
own module beside ``parts.py``, declared the same way (a field is the option's declaration). No torch."""

from __future__ import annotations

from dataclasses import dataclass

from ..choices import CONTROL_TYPES
from ..options import option


@dataclass(frozen=True)
class ControlConfig:
    """Structure guidance: ControlNets, their annotators and how long they act."""

    control: tuple[tuple[str, float], ...] = option(
        (),
        f"ControlNet TYPE ({', '.join(CONTROL_TYPES)}) at SCALE (default 1); repeatable for several at once",
        metavar="TYPE[:SCALE]",
        choices=CONTROL_TYPES,
        lo=0.0,
        hi=2.0,
        doc="structure guidance by a ControlNet of TYPE at SCALE (default 1): `canny` and `tile` need no annotator "
        "model, `depth` (Depth-Anything-V2-Small), `softedge`, `lineart`, `openpose` (`pip install -e "
        '".[control]"`) load theirs on first use; repeatable (several ControlNets at once)',
    )
    control_model: tuple[tuple[str, str], ...] = option(
        (),
        "the ControlNet for TYPE: hub id, directory or single file; repeatable",
        derived="per model (`lcm-video models`)",
        metavar="TYPE=ID",
        choices=CONTROL_TYPES,
    )
    control_start: float = option(0.0, "the share of the steps before the ControlNets act", lo=0.0, hi=1.0, metavar="F")
    control_end: float = option(
        1.0, "the share of the steps after which the ControlNets stop", lo=0.0, hi=1.0, metavar="F"
    )
    control_video: str | None = option(
        None,
        "control maps made elsewhere (a video or frame folder), frame-aligned with the output; for one --control",
        metavar="FILE",
        doc="control maps made elsewhere (a video or a folder of frames), read through the same frame plan as the "
        "source (fps, `--start`/`--end`) and resized to the output; they replace the annotator of the one `--control`",
    )
    canny_low: int = option(100, "canny's lower hysteresis threshold", lo=0, hi=1000, metavar="N")
    canny_high: int = option(200, "canny's upper hysteresis threshold", lo=0, hi=1000, metavar="N")
