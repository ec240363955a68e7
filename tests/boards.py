"""Read the tables of a generated markdown report back into cells."""

from __future__ import annotations

import re


def table_rows(markdown: str) -> list[list[str]]:
    """Stripped cells of every table line (headers included, alignment rules left out)."""
    rows = []
    for line in markdown.splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if all(re.fullmatch(r":?-+:?", c) for c in cells):
            continue
        rows.append(cells)
    return rows
