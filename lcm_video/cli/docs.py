"""The README's option tables, rendered from the options' declarations, and its preset tables, from the presets.

Each option table sits between ``<!-- options: COMMAND -->`` and ``<!-- /options -->`` in README.md, the preset
tables between ``<!-- presets -->`` and ``<!-- /presets -->``. To refresh them after changing a declaration or a
preset: ``python -m lcm_video.cli.docs README.md``; the test suite fails while they differ.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from ..models.ip_presets import IP_ADAPTERS
from ..models.presets import MOTION_PRESETS, PRESETS, non_commercial
from ..options import markdown_table
from ..settings.flags import options_for

_BLOCK = re.compile(r"(<!-- options: (\w+) -->\n)(.*?)(<!-- /options -->)", re.S)
_PRESETS = re.compile(r"(<!-- presets -->\n)(.*?)(<!-- /presets -->)", re.S)


def _licence(text: str) -> str:
    return f"**non-commercial**: {text}" if non_commercial(text) else text


def presets_table() -> str:
    """Markdown tables of the model and motion presets (weights, how each samples, guidance, size, licence) and of the
    IP-Adapters (weights, image encoder, model family, licence)."""
    rows = [
        "| `--model` | family | weights | method (`--scheduler`, `--steps`, `--eta`) | guidance | trained at "
        "| licence |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in PRESETS.values():
        unet = (f"UNet {p.unet}",) if p.unet else ()
        weights = ", ".join(f"`{w}`" for w in (p.base, *unet, *p.lora))
        how, licence = p.sampling.describe(), _licence(p.licence)
        rows.append(f"| `{p.name}` | {p.family} | {weights} | {how} | {p.guidance:g} | {p.size}² | {licence} |")
    rows += [
        "",
        "| `--motion-adapter` | weights | method | guidance | base when `--model` is not given | licence |",
        "|---|---|---|---|---|---|",
    ]
    for m in MOTION_PRESETS.values():
        weights = ", ".join(f"`{w}`" for w in (m.adapter, *m.lora))
        how = m.sampling.describe() if m.sampling else "the model's"
        guidance = f"{m.guidance:g}" if m.guidance is not None else "the model's"
        rows.append(f"| `{m.name}` | {weights} | {how} | {guidance} | `{m.base}` | {_licence(m.licence)} |")
    rows += ["", "| `--ip-adapter` | weights | image encoder | for | licence |", "|---|---|---|---|---|"]
    for a in IP_ADAPTERS.values():
        weights = f"`{a.repo}/{a.subfolder}/{a.weight_name}`" if a.weight_name else f"`{a.repo}`"
        encoder = f"`{a.repo}/{a.image_encoder}`" if a.image_encoder else "built in code"
        rows.append(f"| `{a.name}` | {weights} | {encoder} | {a.fits} | {_licence(a.licence)} |")
    return "\n".join(rows) + "\n"


def render_tables(text: str) -> str:
    """``text`` with every option block replaced by the table its command's declarations give."""

    def table(m: re.Match) -> str:
        command = m.group(2)
        return m.group(1) + markdown_table(options_for(command), command) + "\n" + m.group(4)

    return _PRESETS.sub(lambda m: m.group(1) + presets_table() + m.group(3), _BLOCK.sub(table, text))


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
