"""Pages: an output folder or a results store -> one self-contained HTML page. It reads; it never trains.

- :mod:`.base`: the shell every page shares (CSS, figures as data URIs, escaping, where a page goes);
- :mod:`.experiment`: a demo's or a train folder's page; :mod:`.diagnosis`: a diagnose folder's;
  :mod:`.sweep`: a sweep's; :mod:`.watch`: a watched run's (each builds on :mod:`.base`, never on
  another page);
- :mod:`.dispatch`: :func:`render`, which picks the page for a path;
- :mod:`.text`: the words of pages and figures in English and Hebrew (on the ground floor: the
  figures read it too).

The names below are loaded from their module when first asked (PEP 562): importing
``initlab.report.text`` loads nothing else.
"""

from __future__ import annotations

import importlib

_HOMES = {
    "render": "dispatch", "CSS": "base", "GENERATOR": "base", "CSS_PX_PER_POINT": "base", "png_size": "base",
    "scroll_box": "base", "ltr": "base", "page": "base", "target": "base", "written_by_initlab": "base",
    "asset": "base", "results_table": "experiment", "write": "experiment", "layers_html": "diagnosis",
    "sweep_page": "sweep", "TEXT": "text", "RTL": "text", "figure_file": "text",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'initlab.report' has no attribute '{name}'")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
