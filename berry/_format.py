"""Tables as text: aligned columns for the terminal, or Markdown for documents. berry's one table formatter.

>>> print(format_table([("he", 0.0884), ("xavier", 0.0625)], ("rule", "std")))
rule        std
------  ------
he      0.0884
xavier  0.0625
>>> print(format_table([("he", 0.0884)], ("rule", "std"), markdown=True))
| rule | std |
|---|---|
| he | 0.0884 |
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["format_table"]


def format_table(rows: Sequence[Sequence[Any]], header: Sequence[str], *, markdown: bool = False) -> str:
    """Rows as a table: columns aligned (numbers right, text left), or a Markdown table with ``markdown``.

    Floats are shown with 6 significant digits; format them beforehand for fewer.
    """
    cells = [[str(h) for h in header]] + [[_cell(v) for v in row] for row in rows]
    if markdown:
        lines = ["| " + " | ".join(row) + " |" for row in cells]
        lines.insert(1, "|" + "---|" * len(header))
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    numeric = [all(_is_number(row[i]) for row in rows) and bool(rows) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        parts = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
