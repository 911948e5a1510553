"""Make samples/clip.mp4: a 3-second 160x120 test scene at 30000/1001 fps with a 440 Hz tone, under 100 kB.

Uses ffmpeg's built-in test sources, so it needs nothing but the ffmpeg that imageio-ffmpeg ships:

    python -m benchmarks.make_sample [--out samples/clip.mp4] [--seconds 3] [--size 160x120]
    python -m benchmarks.make_sample --toy [--out samples/crossing.mp4]

``--toy`` writes a clip of the toy world instead: the red square crossing a smooth texture 3 px a frame, 48 frames
at 24 fps, 128 px (``video.synthetic.motion_clip("crossing")``), what the toy models know, for ``--control canny``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.common import ROOT, make_clip


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.make_sample", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="default samples/clip.mp4 (samples/crossing.mp4 with --toy)")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--size", default="160x120")
    ap.add_argument("--toy", action="store_true", help="the toy world's crossing square instead (samples/crossing.mp4)")
    return ap


def main(argv: list[str] | None = None) -> Path:
    args = parser().parse_args(argv)
    if args.toy:
        from lcm_video.video.synthetic import frames_clip, motion_clip

        path = frames_clip(
            args.out or ROOT / "samples" / "crossing.mp4", motion_clip("crossing", 128, 48, seed=1), fps=24
        )
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} kB)")
        return path
    out = args.out or ROOT / "samples" / "clip.mp4"
    out.parent.mkdir(parents=True, exist_ok=True)
    path = make_clip(out, args.seconds, args.size)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} kB)")
    return path


if __name__ == "__main__":
    main()
