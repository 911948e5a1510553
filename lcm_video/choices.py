"""The values options may take, and the window defaults: plain data shared by the settings (which declare the
options) and the layers below them (which act on the values). No imports."""

from __future__ import annotations

DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float32", "float16", "bfloat16")
BACKENDS = ("torch", "openvino", "auto")
QUANTIZE = ("none", "int8")  # --quantize: the OpenVINO UNet as it converts, or int8 through NNCF
RENOISE = ("fresh", "initial")
CFG_TYPES = ("full", "self", "initialize")  # classifier-free guidance's negative branch (core/sampler.py's Residual)
SCHEDULERS = ("lcm", "tcd", "ddim-trailing", "euler-trailing")  # few-step methods (core/schedule.py's METHODS)
FUSE = ("flat", "linear", "pyramid")  # how two windows' shared frames are cross-faded
WARP = ("none", "flow")
CROSS_FRAME = ("off", "anchor", "anchor+prev")
ENGINES = ("local", "torchrun", "ray")  # how a batch spreads its segments (batch/run.py, batch/ray_engine.py)
FLOW = ("dis", "farneback")  # optical flow estimators (OpenCV)
STYLE_MODES = ("style", "full")  # IP-Adapter blocks: InstantStyle's style block only, or every block
CONTROL_TYPES = ("canny", "tile", "depth", "softedge", "lineart", "openpose")  # ControlNet kinds with an annotator
DEFAULT_WINDOW = 16  # frames per 2D UNet batch: 12 frames at batch 12 run 7% faster per frame than 2 x 6 on CPU
DEFAULT_CONTEXT = 16  # AnimateDiff-family motion modules are trained on 16-frame clips


def default_overlap(context: int) -> int:
    """Frames shared by consecutive motion windows when ``--overlap`` is not given: 4, or a quarter of a short
    context (so a context of 4 gets 1, never an overlap as long as the window)."""
    return min(4, context // 4)
