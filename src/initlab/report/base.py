"""The shell every initlab page shares: one self-contained HTML file, the figures embedded as data
URIs, the CSS inline, no script and no network request. Every string that comes from a user or a run
goes through :func:`initlab.escaping.esc`. The pages themselves (:mod:`.experiment`, :mod:`.diagnosis`,
:mod:`.sweep`) build on this module and never on each other.
"""

from __future__ import annotations

import base64
import math
from pathlib import Path

from ..errors import InitlabError
from ..escaping import esc
from .text import RTL, TEXT

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1100px;margin:0 auto;
padding:1rem 1.2rem;line-height:1.5;color:#1d1d1f;overflow-wrap:break-word}
h1{font-size:1.7rem;margin-bottom:.2rem} h2{margin-top:2rem;border-bottom:1px solid #ddd}
img{max-width:100%;height:auto}
.figure{overflow-x:auto;margin:1rem 0;direction:ltr} .figure img{display:block;border:1px solid #eee}
[dir=rtl] .figure img{margin-left:auto}
[dir=rtl] span[dir=ltr],[dir=rtl] code[dir=ltr]{display:inline-block;max-width:100%}
.scroll{overflow-x:auto;margin:1rem 0} table{border-collapse:collapse;font-size:.92rem}
th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:end} th{background:#f4f4f6}
td:first-child,th:first-child{text-align:start} .settings td{text-align:start}
.numbers td{white-space:nowrap}
.verdict{background:#f0f6ff;border-inline-start:4px solid #1f3a93;padding:.6rem 1rem}
.bad{color:#a00000} .good{color:#116611}
code,pre{background:#f6f6f6;padding:.1rem .3rem;border-radius:3px}
pre{padding:.6rem;overflow-x:auto;white-space:pre-wrap;overflow-wrap:anywhere} .small{color:#666;font-size:.85rem}
@media (max-width:600px){body{padding:.6rem .7rem} h1{font-size:1.35rem} h2{font-size:1.2rem}
table{font-size:.85rem} th,td{padding:.25rem .4rem}}
"""

#: Every page says it is initlab's, so a command may rewrite a page it wrote and refuse anyone else's file.
GENERATOR = '<meta name="generator" content="initlab">'

#: A figure is never shown smaller than one CSS pixel per point it was drawn at: its 8-point labels
#: (legends, cell values, contour labels) stay at least 8 CSS px tall. Where that is wider than the
#: screen (a phone), the figure scrolls sideways in its own box; the page itself never does.
CSS_PX_PER_POINT = 1.0


def png_size(data: bytes) -> tuple[int, int, float]:
    """A PNG's width and height in pixels and its dots per inch (its ``pHYs`` chunk; 96 without one)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise InitlabError("not a PNG image.")
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    at = data.find(b"pHYs", 8, max(data.find(b"IDAT"), 8))
    if at < 0 or data[at + 12] != 1:  # unit 1: pixels per metre
        return width, height, 96.0
    return width, height, int.from_bytes(data[at + 4:at + 8], "big") * 0.0254


def scroll_box(table_html: str) -> str:
    """A table in a box of its own that scrolls sideways when the table is wider than the screen."""
    return f'<div class="scroll">{table_html}</div>'


def img(path: Path, alt: str) -> str:
    """The PNG at ``path`` embedded in a figure box: as wide as the page allows, never narrower than
    :data:`CSS_PX_PER_POINT` per point it was drawn at (then its box scrolls sideways)."""
    if not path.is_file():
        return ""
    raw = path.read_bytes()
    width, height, dpi = png_size(raw)
    least = math.ceil(width * 72 / dpi * CSS_PX_PER_POINT)
    data = base64.b64encode(raw).decode("ascii")
    return (f'<div class="figure"><img src="data:image/png;base64,{data}" alt="{esc(alt)}" width="{width}" '
            f'height="{height}" style="min-width:{min(least, width)}px"></div>')


def fmt(v, digits: int = 3) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    if isinstance(v, list):
        return ", ".join(map(str, v))
    return str(v)


def ltr(value) -> str:
    """A number, formula or code kept left to right inside a right-to-left page (and escaped)."""
    return f'<span dir="ltr">{esc(value)}</span>'


def page(title: str, verdict: str, body: str, command: str = "", env: dict | None = None,
         lang: str = "en") -> str:
    """A whole self-contained page: the verdict first, then the body (figures, tables), then the
    command that reproduces it and the versions."""
    T = TEXT.get(lang, TEXT["en"])
    env = env or {}
    versions = T["versions"].format(**{k: ltr(env.get(k, "?")) for k in ("initlab", "torch", "python")})
    direction = ' dir="rtl"' if lang in RTL else ""
    return (f'<!doctype html><html lang="{esc(lang)}"{direction}><head><meta charset="utf-8">{GENERATOR}'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{esc(title)}</h1><div class=\"verdict\">{verdict}</div>{body}"
            f"<h2>{T['reproduce']}</h2><pre dir=\"ltr\">{esc(command or '')}</pre>"
            f"<p class='small'>{versions}</p></body></html>")



def write_page(page_path: Path, title: str, verdict: str, body: str, stored: dict) -> Path:
    """Write :func:`page` to ``page_path`` with the ``command`` and ``environment`` a stored file holds."""
    page_path.write_text(page(title, verdict, body, stored.get("command", ""), stored.get("environment")),
                         encoding="utf-8")
    return page_path

def target(path: str | Path, out: str | Path | None = None) -> Path:
    """The page :func:`render` writes for ``path``: ``out`` when given, else ``report.html`` beside
    what is read."""
    path = Path(path)
    return Path(out) if out else (path if path.is_dir() else path.parent) / "report.html"


def written_by_initlab(page_path: str | Path) -> bool:
    """Whether the file at ``page_path`` is a page initlab wrote (its head names initlab as generator)."""
    try:
        with open(page_path, "rb") as f:
            return GENERATOR.encode() in f.read(4096)
    except OSError:
        return False


def asset(page_path: Path, name: str) -> Path:
    """Where a page's figure ``name`` goes: beside the page, named after it (``notes/page-heatmap.png``
    for ``notes/page.html``), so a page never writes over files that are not its own."""
    return page_path.with_name(f"{page_path.stem}-{name}.png")
