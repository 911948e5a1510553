"""Make samples/clip.mp4: a 3-second 160x120 test scene at 30000/1001 fps with a 440 Hz tone, under 100 kB.

Uses ffmpeg's built-in test sources, so it needs nothing but the ffmpeg that imageio-ffmpeg ships:

    python scripts/make_sample.py [--out samples/clip.mp4] [--seconds 3] [--size 160x120]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lcm_video.video.synthetic import lavfi_clip  # noqa: E402


def make_clip(out: Path, seconds: float = 3.0, size: str = "160x120", rate: str = "30000/1001") -> Path:
    """A moving test pattern with a tone; deterministic for the same arguments and ffmpeg build."""
    encode = ("-preset", "veryslow", "-g", "30")
    return lavfi_clip(out, "testsrc2", size, rate, seconds, crf=28, encode=encode, audio_bitrate="48k")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "samples" / "clip.mp4")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--size", default="160x120")
    args = ap.parse_args()
    path = make_clip(args.out, args.seconds, args.size)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} kB)")


if __name__ == "__main__":
    main()
