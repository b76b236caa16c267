"""The page of a diagnose folder (``diagnoses.json``): each scheme's verdict, the figure and the
per-layer table of measured beside predicted statistics."""

from __future__ import annotations

from pathlib import Path

from ..diagnose import TABLE_COLUMNS
from ..escaping import esc
from ..outputs import check_diagnoses, read_json
from ..tables import html_table
from .base import img as _img, page, scroll_box


def layers_html(rows: list[dict], columns: list[str] = TABLE_COLUMNS) -> str:
    """A diagnosis's rows as an HTML table, every cell escaped."""
    return html_table(columns, rows)


def _diagnose_body(docs: list[dict], out: Path) -> tuple[str, str]:
    items = "".join(f"<li><b>{esc(d.get('scheme'))}</b>: {esc(d['verdict']['summary'])}. "
                    f"{esc(d['verdict']['message'])}</li>" for d in docs)
    tables = [f"<h3>{esc(d.get('scheme'))}</h3>{scroll_box(layers_html(d['layers']))}" for d in docs]
    body = (f"{_img(out / 'diagnose.png', 'std per layer, forward and backward, measured and predicted')}"
            f"<p class='small'>Solid: measured on the batch. Dashed: mean-field theory's prediction.</p>"
            f"{''.join(tables)}")
    return f"<b>Verdict.</b><ul>{items}</ul>", body


def render_diagnoses(folder: Path, page_path: Path) -> Path:
    """Write the page of the diagnose folder ``folder`` to ``page_path``."""
    stored = check_diagnoses(read_json(folder / "diagnoses.json"), folder / "diagnoses.json")
    verdict, body = _diagnose_body(stored["diagnoses"], folder)
    page_path.write_text(page("initlab diagnose", verdict, body, stored.get("command", ""),
                              stored.get("environment")), encoding="utf-8")
    return page_path
