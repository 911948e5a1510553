"""A digest of the frames of a fixed set of renders, to show that a change left every frame as it was.

    python -m benchmarks.frames_digest build/digest            # in one checkout, then in the other; compare the JSON

Cases: stylise with the tiny model (defaults; ``--warp flow --pixel-blend 0.5 --cross-frame anchor+prev``; the
similarity filter with strength and prompt keyframes; a motion adapter; the OpenVINO backend), the trained toy in
float32, and generate with the tiny motion adapter. PNG output, so no encoder stands between the frames and the
digest. Run with the same thread count on both sides (``OMP_NUM_THREADS``)."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

from .common import ROOT

CASES: dict[str, dict] = {
    "tiny_default": {"model": "tiny", "max_frames": 20},
    "tiny_flow_cross": {
        "model": "tiny",
        "max_frames": 20,
        "warp": "flow",
        "pixel_blend": 0.5,
        "cross_frame": "anchor+prev",
        "shared_noise": 0.5,
    },
    "tiny_skip_keys": {
        "model": "tiny",
        "max_frames": 24,
        "skip_similar": 2.0,
        "strength_at": ("10=0.7",),
        "prompt_at": ("12=neon city",),
    },
    "toy_default": {"model": "toy", "max_frames": 12, "dtype": "float32"},
    "tiny_motion": {"model": "tiny", "motion_adapter": "tiny", "max_frames": 20, "context": 8, "overlap": 2},
    "tiny_openvino": {"model": "tiny", "max_frames": 8, "backend": "openvino"},
}


def digest(folder: Path) -> str:
    import imageio.v3 as iio

    frames = np.stack([iio.imread(p) for p in sorted(folder.glob("*.png"))])
    return hashlib.sha256(frames.tobytes()).hexdigest()[:16]


def main(argv: list[str] | None = None) -> dict[str, str]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.frames_digest", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for the PNG frames and digest.json")
    args = parser.parse_args(argv)
    import lcm_video

    src, got = ROOT / "samples" / "clip.mp4", {}
    for name, opts in CASES.items():
        folder = args.out / name
        lcm_video.stylize(src, folder / "%05d.png", "watercolor painting", quiet=True, seed=3, **opts)
        got[name] = digest(folder)
    folder = args.out / "generate_tiny"
    lcm_video.generate(
        "a red fox", folder / "%05d.png", model="tiny", frames=20, fps=8, width=64, height=64, quiet=True, context=8,
        overlap=2,
    )  # fmt: skip
    got["generate_tiny"] = digest(folder)
    (args.out / "digest.json").write_text(json.dumps(got, indent=1))
    print(json.dumps(got, indent=1))
    return got


if __name__ == "__main__":
    main()
