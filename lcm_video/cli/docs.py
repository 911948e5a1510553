"""The README's option tables, rendered from the options' declarations.

Each table sits between ``<!-- options: COMMAND -->`` and ``<!-- /options -->`` in README.md. To refresh them after
changing a declaration: ``python -m lcm_video.cli.docs README.md``; the test suite fails while they differ.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from ..options import markdown_table
from ..settings.flags import options_for

_BLOCK = re.compile(r"(<!-- options: (\w+) -->\n)(.*?)(<!-- /options -->)", re.S)


def render_tables(text: str) -> str:
    """``text`` with every option block replaced by the table its command's declarations give."""

    def table(m: re.Match) -> str:
        command = m.group(2)
        return m.group(1) + markdown_table(options_for(command), command) + "\n" + m.group(4)

    return _BLOCK.sub(table, text)


def commands_in(text: str) -> list[str]:
    """The commands whose option tables ``text`` holds."""
    return [m.group(2) for m in _BLOCK.finditer(text)]


def main(argv: list[str] | None = None) -> int:
    paths = [Path(p) for p in (argv if argv is not None else sys.argv[1:])] or [Path("README.md")]
    for path in paths:
        old = path.read_text(encoding="utf-8")
        new = render_tables(old)
        if new != old:
            path.write_text(new, encoding="utf-8")
            print(f"updated {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
