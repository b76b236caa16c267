"""The figures of a sweep, from a results store (a DataFrame from :func:`initlab.load`): a heatmap of
two swept axes, curves with bootstrap bands, and a grid of contour thumbnails."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np

from ..report.text import TEXT
from .base import COLORS, _axis_label, _log_y, _round_step_axis, _sort_key, legend_below, save_figure
from .chapter import probability_contours


def sweep_heatmap(df, x: str, y: str, metric: str = "test_accuracy", ax=None, title: str | None = None):
    """Two swept axes (e.g. ``depth`` x ``scheme``) coloured by the mean of ``metric`` over the other
    axes and the seeds; each cell is labelled with its mean and its number of runs."""
    ax = ax or plt.gca()
    xs = sorted(df[x].dropna().unique().tolist(), key=_sort_key) + ([None] if df[x].isna().any() else [])
    ys = sorted(df[y].dropna().unique().tolist(), key=_sort_key) + ([None] if df[y].isna().any() else [])
    values = np.full((len(ys), len(xs)), np.nan)
    counts = np.zeros((len(ys), len(xs)), dtype=int)
    for i, yv in enumerate(ys):
        for j, xv in enumerate(xs):
            sel = df[(df[y].isna() if yv is None else df[y] == yv) & (df[x].isna() if xv is None else df[x] == xv)]
            vals = sel[metric].astype(float).dropna()
            counts[i, j] = len(sel)
            values[i, j] = vals.mean() if len(vals) else np.nan
    accuracy = metric.endswith("accuracy")
    image = ax.imshow(values, cmap="viridis", aspect="auto", vmin=0.5 if accuracy else None,
                      vmax=1.0 if accuracy else None)
    for i in range(len(ys)):
        for j in range(len(xs)):
            text = "-" if np.isnan(values[i, j]) else f"{values[i, j]:.2f}"
            ax.text(j, i, f"{text}\n({counts[i, j]})", ha="center", va="center", fontsize=7,
                    color="white" if np.isnan(values[i, j]) or values[i, j] < np.nanmean(values) else "black")
    ax.set_xticks(range(len(xs)), [_axis_label(v) for v in xs], rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(ys)), [_axis_label(v) for v in ys], fontsize=8)
    ax.set(xlabel=x, ylabel=y, title=title or f"mean {metric} (runs per cell)")
    plt.colorbar(image, ax=ax, label=metric)
    return ax


def confidence_curves(df, by: str = "scheme", metric: str = "test_accuracy", ax=None):
    """``metric`` over the steps, one line per value of ``by``: the mean across runs with a 95%
    bootstrap band (:func:`initlab.metrics.mean_interval`: inside the values' range, so an accuracy's band
    stays inside [0, 1]; none where fewer than 3 runs have a value). A run that diverged counts until
    the step before it diverged."""
    from ..metrics import MIN_RUNS, mean_interval

    ax = ax or plt.gca()
    for i, (name, group) in enumerate(df.groupby(by, dropna=False, sort=True)):
        steps = sorted({s for h in group["history"] for s in h["step"]})
        index = {s: k for k, s in enumerate(steps)}
        table = np.full((len(group), len(steps)), np.nan)
        for r, h in enumerate(group["history"]):
            for s, v in zip(h["step"], h[metric]):
                table[r, index[s]] = np.nan if v is None else v
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mean = np.nanmean(table, axis=0)
        band = np.array([mean_interval(table[:, k]) for k in range(len(steps))]).reshape(-1, 2)
        color = COLORS[i % len(COLORS)]
        banded = np.isfinite(band).all(axis=1).any()
        runs = f"{len(group)} run{'s' if len(group) != 1 else ''}"
        note = "" if banded else f", no band: fewer than {MIN_RUNS}"
        ax.plot(steps, mean, color=color, label=f"{_axis_label(name)} ({runs}{note})")
        if banded:
            ax.fill_between(steps, band[:, 0], band[:, 1], color=color, alpha=0.2, linewidth=0)
    if metric.endswith("loss"):
        _log_y(ax, [line.get_ydata() for line in ax.lines], TEXT["en"]["figures"]["empty_log"])
    ax.set(xlabel="step", ylabel=metric, title=f"{metric}: mean and 95% bootstrap band")
    _round_step_axis(ax.xaxis)
    legend_below(ax, ncol=2)
    return ax


def contour_thumbnails(df, rows: str = "scheme", cols: str = "depth", seed: int | None = None):
    """A grid of small probability-contour panels from the stored thumbnails: one run (the lowest
    seed, or ``seed``) per cell of ``rows`` x ``cols``, titled with its accuracy (none for a diverged run,
    marked for a flat output). Returns the figure."""
    from ..experiment import accuracy_text, output_signal
    from ..store import GRID_DTYPE

    if seed is not None:
        df = df[df["seed"] == seed]
    df = df.sort_values("seed")
    row_values = sorted(df[rows].unique().tolist(), key=_sort_key)
    col_values = sorted(df[cols].unique().tolist(), key=_sort_key) if cols != rows else [None]
    fig, axes = plt.subplots(len(row_values), len(col_values), figsize=(1.9 * len(col_values) + 1,
                             1.8 * len(row_values) + 0.6), squeeze=False)
    for i, rv in enumerate(row_values):
        for j, cv in enumerate(col_values):
            ax = axes[i, j]
            sel = df[(df[rows] == rv) & ((df[cols] == cv) if cv is not None else True)]
            run = next((r for _, r in sel.iterrows() if r["grid"] is not None), None)
            if run is None:
                ax.axis("off")
                continue
            x0, x1, y0, y1 = run["grid_extent"]
            p = run["grid"]
            xx, yy = np.meshgrid(np.linspace(x0, x1, p.shape[1]), np.linspace(y0, y1, p.shape[0]))
            dtype = run["dtype"] if isinstance(run.get("dtype"), str) else "float32"
            signal = output_signal(p, dtype, stored_as=np.dtype(GRID_DTYPE).name)
            probability_contours({"xx": xx, "yy": yy, "p": p}, ax=ax)
            for text in list(ax.texts):  # contour labels and notes: too small to read here
                text.remove()
            ax.set_title(f"acc {accuracy_text({**run.to_dict(), 'output_signal': signal}, digits=2)}", fontsize=7)
            if j == 0:
                ax.set_ylabel(_axis_label(rv), fontsize=7)
            if i == len(row_values) - 1 and cv is not None:
                ax.set_xlabel(f"{cols} {_axis_label(cv)}", fontsize=7)
    fig.suptitle(f"Probability that a point is black: {rows} x {cols}" if cols != rows else rows, fontsize=10)
    fig.tight_layout()
    return fig


def sweep_figures(df, out: str | Path, axes: Sequence[str] = ("scheme",), metric: str = "test_accuracy"
                  ) -> dict[str, Path]:
    """Draw a sweep's figures into ``out``: ``heatmap`` (the first two swept ``axes``), ``curves``
    (per value of the first axis) and ``thumbnails``. Returns ``{name: png path}``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    axes = list(axes) or ["scheme"]
    first = axes[0]
    second = axes[1] if len(axes) > 1 else ("seed" if first != "seed" else "scheme")
    figures = {}
    fig, ax = plt.subplots(figsize=(1.2 * df[second].nunique() + 3.5, 0.5 * df[first].nunique() + 2.5))
    sweep_heatmap(df, second, first, metric, ax=ax)
    fig.tight_layout()
    figures["heatmap"] = fig
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    confidence_curves(df, by=first, metric=metric, ax=ax)
    fig.tight_layout()
    figures["curves"] = fig
    if "grid" in df and df["grid"].notna().any():
        figures["thumbnails"] = contour_thumbnails(df, rows=first, cols=second)
    return {name: save_figure(fig, out / name, formats=("png",))[0] for name, fig in figures.items()}
