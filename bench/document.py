"""A report as a list of blocks, rendered to GitHub markdown or to one self-contained HTML file.

Building the report once and rendering it twice keeps the two formats saying the same thing.
Text may use three inline marks, understood by both renderers: ``code``, **strong**, *emphasis*.

>>> print(to_markdown([Heading(2, "Scores"), Table(["model", "acc"], [["mlp", "0.7"]], "lr")]))
## Scores
<BLANKLINE>
| model | acc |
|:------|----:|
| mlp   | 0.7 |
<BLANKLINE>
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Heading:
    level: int
    text: str


@dataclass
class Text:
    text: str


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    align: str
    """One letter per column: ``l`` or ``r``."""


@dataclass
class Figure:
    path: Path
    """A PNG written beside the report; markdown links it relatively, HTML embeds it."""
    alt: str


Block = Heading | Text | Table | Figure


def to_markdown(blocks: list[Block]) -> str:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Text):
            out.append(block.text)
        elif isinstance(block, Table):
            out.append(_markdown_table(block))
        else:  # Figure
            out.append(f"![{block.alt}]({block.path.name})")
        out.append("")
    return "\n".join(out)


def _markdown_table(table: Table) -> str:
    """Columns padded to a common width, so the source reads as a table too."""
    cells = [[_escape_cell(c) for c in row] for row in [table.header, *table.rows]]
    widths = [max(3, *(len(row[i]) for row in cells)) for i in range(len(table.header))]
    align = list(table.align)

    def line(row: list[str]) -> str:
        padded = [
            c.rjust(w) if a == "r" else c.ljust(w)
            for c, w, a in zip(row, widths, align, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = [
        "-" * (w + 1) + ":" if a == "r" else ":" + "-" * (w + 1)
        for w, a in zip(widths, align, strict=True)
    ]
    return "\n".join([line(cells[0]), "|" + "|".join(rule) + "|", *map(line, cells[1:])])


def _escape_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_html(blocks: list[Block], title: str) -> str:
    """One file: styles inline, figures embedded as base64 data URIs."""
    body: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{_inline(block.text)}</h{block.level}>")
        elif isinstance(block, Text):
            body.append(f"<p>{_inline(block.text)}</p>")
        elif isinstance(block, Table):
            body.append(_html_table(block))
        else:  # Figure
            data = base64.b64encode(block.path.read_bytes()).decode("ascii")
            alt = html.escape(block.alt)
            body.append(f'<figure><img alt="{alt}" src="data:image/png;base64,{data}"></figure>')
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _html_table(table: Table) -> str:
    def row(cells: list[str], tag: str) -> str:
        return (
            "<tr>"
            + "".join(
                f'<{tag} class="{a}">{_inline(c)}</{tag}>'
                for c, a in zip(cells, table.align, strict=True)
            )
            + "</tr>"
        )

    rows = "".join(row(r, "td") for r in table.rows)
    return f"<table><thead>{row(table.header, 'th')}</thead><tbody>{rows}</tbody></table>"


def _inline(text: str) -> str:
    text = html.escape(text, quote=False)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    text = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"\*([^*]+)\*", r"<em>\1</em>", text)


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;margin:0.5em 0 1.5em}"
    "th,td{border:1px solid #ccc;padding:3px 8px}th{background:#f3f3f3}"
    "td.r,th.r{text-align:right}td.l,th.l{text-align:left}"
    "code{background:#f3f3f3;padding:0 3px}img{max-width:100%}"
)
