"""The figures of a watched run (:func:`initlab.watch`): the update-to-data ratio with its 1e-3 line,
each statistic per layer over steps, a layer x step heatmap of a statistic, and a layer's histogram
over time ("colorful dimension": one column per recorded step, one row per fixed bin).

Each takes a :class:`~initlab.watch.Watch`, its :class:`~initlab.watchstats.WatchRecord` or a run of
a saved ``watch.json`` (a dict); :func:`update_ratio` and :func:`layer_lines` also take several runs
by name, drawn over each other (one line style per run, one colour per layer).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm

from ..errors import InitlabError
from ..watchstats import GRAD_EDGES, OUTPUT_EDGES, STATS, WatchRecord
from .base import COLORS, _drawable_on_log, _empty_note, _round_step_axis, legend_below

#: The update-to-data ratio a healthy layer hovers around (Karpathy's line).
HEALTHY_UPDATE = 1e-3
STYLES = ("-", "--", ":", "-.")
#: Statistics drawn on a log scale (the rest, means and shares, on a linear one).
LOG_STATS = {"preact_std", "act_std", "grad_std", "weight_std", "weight_grad_std", "weight_grad_norm",
             "grad_to_weight", "update_to_data"}


def as_record(obj) -> WatchRecord:
    """A :class:`WatchRecord` from a Watch, a record or a saved run (dict)."""
    if isinstance(obj, WatchRecord):
        return obj
    if hasattr(obj, "record") and isinstance(obj.record, WatchRecord):
        return obj.record
    if isinstance(obj, dict) and "layers" in obj:
        return WatchRecord.from_dict(obj)
    raise InitlabError(f"a watched run is a Watch, its .record or a run of watch.json; got {type(obj).__name__}.")


def _runs(obj) -> dict[str, WatchRecord]:
    if isinstance(obj, dict) and "layers" not in obj:
        if not obj:
            raise InitlabError("no runs to draw: give a Watch, or a dict of runs by name.")
        return {str(k): as_record(v) for k, v in obj.items()}
    return {"": as_record(obj)}


def _measured(record: WatchRecord, stat: str) -> list[int]:
    """The layers with at least one finite value of ``stat``."""
    a = record.stat(stat)
    return [j for j in range(len(record.layers)) if a.size and np.isfinite(a[:, j]).any()]


def _lines(ax, runs: dict[str, WatchRecord], stat: str, legend: bool = True) -> None:
    drawn = False
    for r, (run, record) in enumerate(runs.items()):
        a = record.stat(stat)
        for c, j in enumerate(_measured(record, stat)):
            label = record.layers[j] if len(runs) == 1 else f"{run}: {record.layers[j]}"
            ax.plot(record.steps, a[:, j], STYLES[r % len(STYLES)], color=COLORS[c % len(COLORS)], lw=1.2,
                    label=label, marker="o" if len(record.steps) == 1 else None, markersize=3)
            drawn = True
    if not drawn:
        _empty_note(ax, f"no layer has {stat}")
    elif stat in LOG_STATS and _drawable_on_log(*(rec.stat(stat) for rec in runs.values())):
        ax.set_yscale("log")
    _round_step_axis(ax.xaxis)
    ax.set(xlabel="step", title=stat)
    if legend and drawn:
        legend_below(ax, ncol=3, fontsize=7)


def update_ratio(runs, ax=None):
    """Each layer's update-to-data ratio (std of the step's change of its weights over their std)
    against the step, on a log scale, with the line at 1e-3 where a healthy layer hovers; several
    runs (a dict by name) are drawn over each other, one line style per run."""
    runs = _runs(runs)
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 4))
    _lines(ax, runs, "update_to_data", legend=False)
    ax.axhline(HEALTHY_UPDATE, color="0.3", lw=1, ls="--", label="1e-3")
    ax.set(ylabel="update / data (std)", title="update-to-data ratio per layer")
    legend_below(ax, ncol=3, fontsize=7)
    return ax


def layer_lines(runs, stats=("preact_std", "act_std", "grad_std", "dead_fraction", "saturated_fraction",
                             "grad_to_weight"), axes=None):
    """Small multiples: one panel per statistic, one line per layer (and line style per run)."""
    runs = _runs(runs)
    for s in stats:
        if s not in STATS and s != "loss":
            raise InitlabError(f"unknown statistic '{s}'; use one of {', '.join(STATS)}, loss.")
    if axes is None:
        cols = min(3, len(stats))
        rows = -(-len(stats) // cols)
        _, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    flat = np.asarray(axes).reshape(-1)
    for ax, stat in zip(flat, stats):
        _lines(ax, runs, stat, legend=False)
    for ax in flat[len(stats):]:
        ax.set_visible(False)
    handles, labels = flat[0].get_legend_handles_labels()
    rows = -(-len(labels) // 6)
    flat[0].figure.tight_layout(rect=(0, min(0.3, 0.04 * rows), 1, 1))
    if handles:
        flat[0].figure.legend(handles, labels, loc="lower center", ncol=min(6, len(labels)), fontsize=7,
                              frameon=False, bbox_to_anchor=(0.5, 0))
    return axes


def layer_heatmap(record, stat: str = "preact_std", ax=None):
    """Layers (rows, module order) x recorded steps (columns) of one statistic, on a log colour scale
    for stds and ratios; a cell not measured is blank."""
    record = as_record(record)
    a = record.stat(stat)
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.3 * len(record.layers) + 2))
    rows = _measured(record, stat)
    values = a[:, rows].T if rows else np.full((1, max(1, len(record.steps))), np.nan)
    finite = values[np.isfinite(values)]
    positive = finite[finite > 0]
    if not rows or not finite.size:
        _empty_note(ax, f"no layer has {stat}")
        return ax
    log = stat in LOG_STATS and positive.size
    norm = LogNorm(vmin=positive.min(), vmax=max(positive.max(), positive.min() * 1.0001)) if log else None
    shown = np.where(values > 0, values, np.nan) if log else values
    steps = record.steps
    mesh = ax.imshow(shown, aspect="auto", origin="lower", cmap="magma", interpolation="nearest", norm=norm,
                     extent=(-0.5, len(steps) - 0.5, 0.5, len(rows) + 0.5))
    plt.colorbar(mesh, ax=ax, label=stat + (" (log)" if log else ""))
    idx = np.unique(np.linspace(0, len(steps) - 1, min(6, len(steps))).round().astype(int))
    ax.set_xticks(idx, [str(int(steps[i])) for i in idx])
    ax.set_yticks(range(1, len(rows) + 1), [record.layers[j] for j in rows], fontsize=7)
    ax.set(xlabel="step", ylabel="layer", title=f"{stat} per layer")
    return ax


def histogram_image(record, layer: str, kind: str = "output", ax=None):
    """One layer's histogram over time: a column per recorded step, a row per fixed bin, the colour
    the log of the share of values in it. ``kind="output"``: the layer's output over [-4, 4];
    ``"grad"``: log10 |gradient reaching it|."""
    record = as_record(record)
    if kind not in ("output", "grad"):
        raise InitlabError(f"kind is 'output' or 'grad'; got {kind!r}.")
    if layer not in record.layers:
        raise InitlabError(f"no layer '{layer}' in this record; its layers: {', '.join(record.layers)}.")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3))
    edges = OUTPUT_EDGES if kind == "output" else GRAD_EDGES
    if record.hists is None or not record.hists.count:
        _empty_note(ax, "no histograms were recorded")
        return ax
    j = record.layers.index(layer)
    h = record.hists[f"{kind}_hist"][:, j, :].astype(float)
    steps = record.hists.steps()
    if not np.isfinite(h).any():
        _empty_note(ax, f"'{layer}' has no {kind} histogram")
        return ax
    ax.imshow(np.log1p(1000 * np.nan_to_num(h.T)), aspect="auto", origin="lower", cmap="viridis",
              interpolation="nearest", extent=(-0.5, len(steps) - 0.5, edges[0], edges[-1]))
    idx = np.unique(np.linspace(0, len(steps) - 1, min(5, len(steps))).round().astype(int))
    ax.set_xticks(idx, [str(int(steps[i])) for i in idx])
    ax.set(xlabel="step", ylabel="output value" if kind == "output" else "log10 |gradient|",
           title=f"{layer}: {kind}")
    return ax
