"""The page of a watched run (``watch.json``, written by ``Watch.save`` or ``initlab watch-demo``): the
first-loss check and the alerts of each run, the update-to-data figure with its 1e-3 line, each
statistic per layer over steps (runs overlaid), a layer x step heatmap of every statistic and the
histogram-over-time image of each layer."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..escaping import esc
from ..outputs import read_watch
from ..tables import html_table
from ..watchstats import STATS, WatchRecord
from .base import img, scroll_box, write_page

#: Histogram images drawn per run, at most (the first layers in module order that have them).
MAX_HISTOGRAM_LAYERS = 16
ALERT_COLUMNS = ["step", "kind", "layer", "value", "message"]


def _figure(fig, folder: Path, name: str, alt: str) -> str:
    from .. import plots

    path = plots.save_figure(fig, folder / name, formats=("png",))[0]
    return img(path, alt)


def _verdict(runs: dict[str, WatchRecord]) -> str:
    items = []
    for name, r in runs.items():
        first = r.first_loss or {}
        counts = ", ".join(f"{k} {v}" for k, v in sorted(r.alert_counts.items())) or "none"
        cls = "bad" if r.alert_counts or first.get("flagged") else "good"
        items.append(f"<li class='{cls}'><b>{esc(name)}</b>: {len(r.steps)} recorded steps (every {esc(r.every)}), "
                     f"alerts: {esc(counts)}. {esc(first.get('message', ''))}</li>")
    return f"<b>What the watch saw.</b><ul>{''.join(items)}</ul>"


def watch_body(runs: dict[str, WatchRecord], scratch: Path) -> str:
    """The page's body for ``runs`` (figures drawn into ``scratch`` and embedded)."""
    from .. import plots

    plt = plots.plt
    body = ["<h2>Update-to-data ratio</h2><p class='small'>Per layer, the std of each recorded step's actual "
            "change of its weights over their std (any optimizer). Around 1e-3 (dashed) a layer learns; "
            "far below it barely moves, far above each step rewrites it.</p>"]
    ax = plots.update_ratio(runs)
    body.append(_figure(ax.figure, scratch, "update", "update-to-data ratio per layer over steps"))
    body.append("<h2>Per layer over steps</h2>")
    axes = plots.layer_lines(runs)
    body.append(_figure(axes.flat[0].figure, scratch, "lines", "statistics per layer over steps"))
    for n, (name, r) in enumerate(runs.items()):
        body.append(f"<h2>{esc(name)}</h2>")
        alerts = [{**a, "value": a.get("value")} for a in r.alerts]
        body.append(scroll_box(html_table(ALERT_COLUMNS, alerts)) if alerts else "<p>No alert.</p>")
        stats = [s for s in STATS if (r.stat(s) == r.stat(s)).any()]
        if stats:
            cols = 3
            fig, grid = plt.subplots(-(-len(stats) // cols), cols, figsize=(15, 3.2 * -(-len(stats) // cols)),
                                     squeeze=False)
            for ax, stat in zip(grid.flat, stats):
                plots.layer_heatmap(r, stat, ax=ax)
            for ax in grid.flat[len(stats):]:
                ax.set_visible(False)
            fig.tight_layout()
            body.append(f"<h3>Layer x step heatmaps</h3>{_figure(fig, scratch, f'heat{n}', 'heatmaps per statistic')}")
        with_hist = [] if r.hists is None else [
            layer for j, layer in enumerate(r.layers) if (r.hists["output_hist"][:, j] == r.hists["output_hist"][:, j]).any()]
        if with_hist:
            shown = with_hist[:MAX_HISTOGRAM_LAYERS]
            fig, grid = plt.subplots(len(shown), 2, figsize=(10, 1.9 * len(shown)), squeeze=False)
            for row, layer in zip(grid, shown):
                plots.histogram_image(r, layer, "output", ax=row[0])
                plots.histogram_image(r, layer, "grad", ax=row[1])
            fig.tight_layout()
            more = (f"<p class='small'>The first {len(shown)} of {len(with_hist)} layers.</p>"
                    if len(with_hist) > len(shown) else "")
            body.append(f"<h3>Histograms over time</h3><p class='small'>Each column a recorded step, each row a "
                        f"fixed bin; brighter: more of the layer's values there.</p>{more}"
                        f"{_figure(fig, scratch, f'hist{n}', 'histograms over time per layer')}")
    return "".join(body)


def render_watch(path: Path, page_path: Path) -> Path:
    """Write the page of the ``watch.json`` at ``path`` (or in the folder ``path``) to ``page_path``."""
    stored = read_watch(path)
    runs = {name: WatchRecord.from_dict(doc) for name, doc in stored["runs"].items()}
    with tempfile.TemporaryDirectory() as scratch:
        body = watch_body(runs, Path(scratch))
    return write_page(page_path, "initlab watch", _verdict(runs), body, stored)
