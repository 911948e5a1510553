"""The ``lcm-video`` command line: a parser derived from the options' declarations and a thin layer over the
library."""

from .commands import main

__all__ = ["main"]
