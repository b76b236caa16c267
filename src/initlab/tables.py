"""Tables of numbers as text and as HTML, and the number format they share: the ground floor every
printed or paged table reads (a diagnosis's per-layer table in the terminal, in a notebook and on a
report page). No torch, no matplotlib; every HTML cell goes through :func:`initlab.escaping.esc`.

>>> print(text_table(["name", "std"], [{"name": "0", "std": 0.012345}]))
name     std
   0  0.0123
"""

from __future__ import annotations

from typing import Callable, Sequence

from .escaping import esc


def significant(v, digits: int = 3) -> str:
    """``v`` in ``digits`` significant digits (a diagnosis spans many orders of magnitude); None is ``-``."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def text_table(columns: Sequence[str], rows: Sequence[dict], cell: Callable = significant) -> str:
    """``rows`` (dicts) as right-aligned text columns under a header line."""
    cells = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def html_table(columns: Sequence[str], rows: Sequence[dict], cell: Callable = significant) -> str:
    """``rows`` (dicts) as an HTML table, every header and cell escaped."""
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{esc(cell(r.get(c)))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"
