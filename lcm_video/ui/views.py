"""What the page shows of a finished render, as plain data for its components: the metrics as a rounded table and a
per-pair plot, and the control map of the first frame."""

from __future__ import annotations

import math
from typing import Any


def control_map(prep) -> Any:
    """The first ``--control``'s map of the render's first frame (uint8 (h, w, 3)), shown beside the result so a
    user sees what the ControlNet followed; None without ``--control``."""
    c = prep.cfg.control
    if not c.control:
        return None
    from ..video.reader import FrameReader

    if prep.control is not None:  # --control-video: its frame at the output's first time
        reader, index = FrameReader(prep.control, prep.size), 0
    else:
        reader, index = FrameReader(prep.info, prep.size), prep.plan.sources[0]
    try:
        frame = reader.read([index])[0]
    finally:
        reader.close()
    if prep.control is not None:
        return frame
    from ..control.annotators import annotator

    return annotator(c.control[0][0], c.canny_low, c.canny_high)(frame)


def metric_views(m) -> tuple[list[list[str]], Any]:
    """A ``Metrics`` as the page shows it: [metric, value] rows rounded to 4 significant digits (a person reads
    0.003121, not 0.0031209412589669228), and a DataFrame of warp error and flicker per frame pair for the line plot
    (a seam or a flickering stretch shows as a spike)."""
    import pandas as pd

    table = [[k, f"{v:.4g}" if isinstance(v, float) else str(v)] for k, v in m.to_dict().items()
             if v is not None and k != "notes"]  # fmt: skip
    rows = [(i, v, "warp error") for i, v in enumerate(m.warp_errors) if not math.isnan(v)]  # NaN: a cut
    rows += [(i, v, "flicker") for i, v in enumerate(m.flickers)]
    return table, pd.DataFrame(rows, columns=["pair", "value", "metric"])
