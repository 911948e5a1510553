"""Make samples/clip.mp4: a 3-second 160x120 test scene at 30000/1001 fps with a 440 Hz tone, under 100 kB.

Uses ffmpeg's built-in test sources, so it needs nothing but the ffmpeg that imageio-ffmpeg ships:

    python -m benchmarks.make_sample [--out samples/clip.mp4] [--seconds 3] [--size 160x120]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.common import ROOT, make_clip


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.make_sample", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "samples" / "clip.mp4")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--size", default="160x120")
    return ap


def main(argv: list[str] | None = None) -> Path:
    args = parser().parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    path = make_clip(args.out, args.seconds, args.size)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} kB)")
    return path


if __name__ == "__main__":
    main()
