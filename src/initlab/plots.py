"""Every figure initlab draws. Each function takes ``ax=None`` (or ``axes``) and returns the axes;
figures are drawn from stored results (see :func:`initlab.experiment.load`), never by training.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np

LEVELS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
COLORS = plt.get_cmap("tab10").colors


def probability_contours(grid: dict, X=None, y=None, ax=None, title: str | None = None,
                         accuracy: float | None = None, signal: dict | None = None, dtype: str = "float32"):
    """The chapter's figure: the model's probability that a point is black, as contour lines at
    0.1 ... 0.9, each labelled with its probability, over a light fill; black and white points.

    ``grid`` is ``{"xx", "yy", "p"}`` from :func:`initlab.probability_grid`; ``X, y`` the points
    (y = 1 drawn black, y = 0 white). A flat or weak output is noted on the panel, as
    :func:`initlab.experiment.output_signal` judges it: ``signal`` when given (judged over the data),
    else judged over the grid in ``dtype``. ``accuracy`` is written in a corner, marked when the output
    is flat."""
    from .experiment import accuracy_text, output_signal, signal_text

    ax = ax or plt.gca()
    xx, yy, p = (np.asarray(grid[k]) for k in ("xx", "yy", "p"))
    finite = np.isfinite(p)
    where = "data" if signal is not None else "grid"
    if finite.any():
        pf = np.where(finite, p, 0.5)
        signal = signal or output_signal(pf, dtype)
        flat = signal["signal"] == "none"  # its shades and lines would trace rounding, not the model
        ax.contourf(xx, yy, np.full_like(pf, pf.mean()) if flat else pf, levels=np.linspace(0, 1, 11), cmap="Greys",
                    vmin=0, vmax=1.6, alpha=0.9)
        present = [] if flat else [lv for lv in LEVELS if pf.min() < lv < pf.max()]
        if present:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cs = ax.contour(xx, yy, pf, levels=present, colors="#1f3a93",
                                linewidths=[2.0 if lv == 0.5 else 0.9 for lv in present])
            ax.clabel(cs, fmt="%.1f", fontsize=8, inline=True)
        if signal["signal"] != "clear":
            ax.text(0.5, 0.93, signal_text(signal, where), transform=ax.transAxes, ha="center", va="top",
                    fontsize=8, bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "none"})
    else:
        ax.set_facecolor("#f3e0e0")
        ax.text(0.5, 0.93, "diverged: no probabilities to draw", transform=ax.transAxes, ha="center",
                va="top", fontsize=9, color="#a00000")
    if X is not None and y is not None:
        X, y = np.asarray(X), np.asarray(y)
        ax.scatter(X[y == 0, 0], X[y == 0, 1], s=10, c="white", edgecolors="black", linewidths=0.5,
                   label="white (0)")
        ax.scatter(X[y == 1, 0], X[y == 1, 1], s=10, c="black", label="black (1)")
    if accuracy is not None:
        text = accuracy_text({"test_accuracy": accuracy, "output_signal": signal}, digits=2)
        ax.text(0.98, 0.03, f"test accuracy {text}", transform=ax.transAxes, ha="right",
                va="bottom", fontsize=9, bbox={"facecolor": "white", "alpha": 0.9, "edgecolor": "0.6"})
    if title:
        ax.set_title(title, fontsize=10)
    ax.set_xlim(xx.min(), xx.max())
    ax.set_ylim(yy.min(), yy.max())
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def contour_panels(doc: dict, titles: Sequence[str] | None = None, ncols: int = 3):
    """One probability-contour panel per result of a stored experiment, on shared axes. A diverged
    run's title says so and shows no accuracy; a flat output's accuracy is marked."""
    from .experiment import accuracy_text

    results = doc["results"]
    n = len(results)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 4.0 * nrows), sharex=True, sharey=True,
                             squeeze=False)
    pts = doc["points"]
    X = np.concatenate([pts["X_train"], pts["X_test"]])
    y = np.concatenate([pts["y_train"], pts["y_test"]])
    dtype = doc.get("config", {}).get("dtype", "float32")
    for i, (row, grid) in enumerate(zip(results, doc["grids"])):
        title = titles[i] if titles else row["scheme"]
        if row.get("diverged"):
            title += f"\ntest accuracy {accuracy_text(row)}"
        probability_contours(grid, X, y, ax=axes.flat[i], title=title, dtype=dtype,
                             accuracy=None if row.get("diverged") else row["test_accuracy"],
                             signal=row.get("output_signal"))
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend(loc="upper left", fontsize=7, framealpha=0.9)
    fig.suptitle("Probability that a point is black (contour lines labelled with the probability)",
                 fontsize=12)
    fig.tight_layout()
    return fig


def training_curves(histories: dict[str, dict], axes=None, diverged: dict[str, int | None] | None = None,
                    signals: dict[str, dict | None] | None = None):
    """Training loss (log scale) and test accuracy over the steps, one line per scheme. A diverged run's
    accuracy line ends before the step it diverged (its predictions after that measure nothing); a run
    whose final output is flat (``signals``: :func:`initlab.experiment.output_signal` per name) says so
    in the legend."""
    from .report_text import TEXT
    from .metrics import null_diverged_accuracy

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 4))
    loss_ax, acc_ax = axes
    for i, (name, h) in enumerate(histories.items()):
        color = COLORS[i % len(COLORS)]
        step = (diverged or {}).get(name)
        h = null_diverged_accuracy(h, step)
        steps = np.asarray(h["step"], dtype=float)
        loss = np.array([np.nan if v is None else v for v in h["train_loss"]], dtype=float)
        acc = np.array([np.nan if v is None else v for v in h["test_accuracy"]], dtype=float)
        loss_ax.plot(steps, loss, color=color, label=name)
        label = name if step is None else f"{name} (diverged at step {step})"
        if ((signals or {}).get(name) or {}).get("signal") == "none":
            label = TEXT["en"]["accuracy"]["flat"].format(acc=name)
        acc_ax.plot(steps, acc, color=color, label=label)
        if step is not None:
            last = np.nanmax(loss[np.isfinite(loss)]) if np.isfinite(loss).any() else 1.0
            loss_ax.plot([step], [last], "x", color=color, markersize=10, mew=2)
            loss_ax.annotate(f"diverged at step {step}", (step, last), textcoords="offset points",
                             xytext=(6, 4), fontsize=8, color=color)
    loss_ax.set_yscale("log")
    loss_ax.set(xlabel="step", ylabel="training loss (log scale)", title="Loss")
    acc_ax.axhline(0.9, color="0.6", linestyle=":", linewidth=1)
    acc_ax.set(xlabel="step", ylabel="test accuracy", title="Test accuracy", ylim=(0.0, 1.02))
    acc_ax.legend(fontsize=8, loc="lower right")
    return axes


def symmetry_trace(traces: dict[str, dict], ax=None, floor: float = 1e-17):
    """The largest difference between neurons of a constant-initialized network over the steps.

    ``traces`` maps a label (``"adam float32"``) to ``{"step": [...], "spread": [...]}``; exact
    zeros (bitwise-identical neurons) are drawn on the floor of the log axis."""
    ax = ax or plt.gca()
    for i, (name, t) in enumerate(traces.items()):
        spread = np.maximum(np.asarray(t["spread"], dtype=float), floor)
        if "effective_width" in t:
            name = f"{name}: effective width {', '.join(map(str, t['effective_width']))} at the end"
        ax.plot(t["step"], spread * (1.6 ** i if spread.max() <= floor else 1), color=COLORS[i % len(COLORS)],
                label=name, linestyle="-" if "float32" in name else "--", linewidth=1.8)
    ax.set_yscale("log")
    ax.set_ylim(floor / 3, None)
    ax.axhline(floor, color="0.7", linewidth=0.8)
    ax.text(0.01, floor * 1.5, "exactly equal (difference 0)", transform=ax.get_yaxis_transform(),
            fontsize=8, color="0.4", va="bottom")
    ax.set(xlabel="step", ylabel="largest difference between neurons",
           title="Does a constant initialization stay symmetric?")
    ax.legend(fontsize=8, loc="center right")
    return ax


def save_figure(fig, stem: str | Path, formats: Sequence[str] = ("png", "svg")) -> list[Path]:
    """Save ``fig`` as ``stem.png`` and ``stem.svg`` and close it."""
    paths = []
    for fmt in formats:
        path = Path(f"{stem}.{fmt}")
        fig.savefig(path, dpi=110, bbox_inches="tight")
        paths.append(path)
    plt.close(fig)
    return paths


def experiment_figures(doc: dict, out: str | Path) -> dict[str, Path]:
    """Draw the figures of a stored experiment into ``out``: contours, curves and (for the demo) the
    symmetry trace. Returns ``{name: png path}``."""
    out = Path(out)
    figures = {"contours": contour_panels(doc)}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    training_curves(doc["histories"], axes,
                    diverged={r["scheme"]: r["diverged_step"] for r in doc["results"]},
                    signals={r["scheme"]: r.get("output_signal") for r in doc["results"]})
    fig.tight_layout()
    figures["curves"] = fig
    scale_rows = [r for r in doc["results"] if r.get("role") in ("vanishing", "exploding")] or \
        (doc["results"] if doc.get("kind") != "demo" else [])
    scale_rows = [r for r in scale_rows if (doc.get("tracked") or {}).get(r["scheme"])]
    if scale_rows:
        fig, axes = plt.subplots(len(scale_rows), 2, figsize=(12, 3.4 * len(scale_rows)), squeeze=False)
        for r, pair in zip(scale_rows, axes):
            tracking_heatmaps(doc["tracked"][r["scheme"]], pair, title=r["scheme"])
        fig.tight_layout()
        figures["scale"] = fig
    if doc.get("symmetry"):
        fig, ax = plt.subplots(figsize=(7.5, 4.2))
        symmetry_trace(doc["symmetry"]["traces"], ax)
        fig.tight_layout()
        figures["symmetry"] = fig
    return {name: save_figure(fig, out / name)[0] for name, fig in figures.items()}


def diagnosis_plot(doc: dict, ax=None, title: str | None = None):
    """A diagnosis (``Diagnosis.to_dict()``): the std of each layer's output (forward) and of the
    gradient reaching it (backward), on a log scale; measured solid, predicted dashed."""
    ax = ax or plt.gca()
    rows = doc["layers"]
    x = np.arange(1, len(rows) + 1)
    series = [("preact_std", "predicted_preact_std", "forward: std of layer output", COLORS[0]),
              ("grad_std", "predicted_grad_std", "backward: std of gradient at layer output", COLORS[1])]
    for measured, predicted, label, color in series:
        m = np.array([np.nan if r.get(measured) is None else r[measured] for r in rows], dtype=float)
        ax.plot(x, m, "-o", color=color, markersize=3, label=f"{label} (measured)")
        p = np.array([np.nan if r.get(predicted) is None else r[predicted] for r in rows], dtype=float)
        if np.isfinite(p).any():
            ax.plot(x, p, "--", color=color, linewidth=1.5, label=f"{label} (theory)")
    ax.set_yscale("log")
    ax.set(xlabel="layer", ylabel="std (log scale)")
    verdict = doc.get("verdict", {})
    name = doc.get("scheme") or "model"
    ax.set_title(title or f"{name}: {verdict.get('summary', '')}", fontsize=10,
                 color="#116611" if verdict.get("summary") == "ok" else "#a00000")
    ax.legend(fontsize=7, loc="best")
    return ax


def diagnosis_panels(docs: list[dict]):
    """One :func:`diagnosis_plot` panel per diagnosis, side by side, on a shared log axis."""
    fig, axes = plt.subplots(1, len(docs), figsize=(5.5 * len(docs), 4.2), sharey=True, squeeze=False)
    for doc, ax in zip(docs, axes.flat):
        diagnosis_plot(doc, ax=ax)
    fig.tight_layout()
    return fig


def tracking_heatmaps(tracked: dict, axes=None, title: str = ""):
    """Layer x step heatmaps of what ``train(..., track_every=k)`` recorded: each layer's output std
    and its weight-gradient norm, on a log colour scale."""
    from matplotlib.colors import LogNorm

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    steps = tracked["step"]
    for ax, key, label in zip(axes, ("act_std", "grad_norm"), ("std of layer output", "weight-gradient norm")):
        values = np.array([[np.nan if v is None else v for v in row] for row in tracked[key]], dtype=float).T
        finite = values[np.isfinite(values) & (values > 0)]
        if finite.size:
            norm = LogNorm(vmin=max(finite.min(), 1e-12), vmax=max(finite.max(), 1e-11))
            mesh = ax.imshow(np.where(values > 0, values, np.nan), aspect="auto", origin="lower", norm=norm,
                             cmap="magma", interpolation="nearest",
                             extent=(-0.5, len(steps) - 0.5, 0.5, len(tracked["layers"]) + 0.5))
            plt.colorbar(mesh, ax=ax, label=label + " (log)")
        if values.shape[1] <= 10 and values.shape[0] <= 12:  # few cells: write the numbers in
            for (i, j), v in np.ndenumerate(values):
                text = "NaN" if not np.isfinite(v) else f"{v:.2g}"
                ax.text(j, i + 1, text, ha="center", va="center", fontsize=7,
                        color="black" if np.isfinite(v) and finite.size and v > np.sqrt(
                            finite.min() * finite.max()) else "white" if np.isfinite(v) else "#a00000")
        ticks = np.linspace(0, len(steps) - 1, min(6, len(steps))).astype(int)
        ax.set_xticks(ticks, [str(steps[t]) for t in ticks])
        ax.set_yticks(range(1, len(tracked["layers"]) + 1), tracked["layers"], fontsize=7)
        ax.set(xlabel="step", ylabel="layer", title=f"{title}: {label}" if title else label)
    return axes


# --------------------------------------------------------------------------------------------------
# sweeps: figures from a results store (a DataFrame from initlab.load)

def _axis_label(value) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "full"
    return f"{value:g}" if isinstance(value, float) else str(value)


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


def _sort_key(v):
    return (0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v))


def confidence_curves(df, by: str = "scheme", metric: str = "test_accuracy", ax=None):
    """``metric`` over the steps, one line per value of ``by``: the mean across runs with a 95%
    bootstrap band (:func:`initlab.store.mean_interval`: inside the values' range, so an accuracy's band
    stays inside [0, 1]; none where fewer than 3 runs have a value). A run that diverged counts until
    the step before it diverged."""
    from .metrics import MIN_RUNS, mean_interval

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
        ax.set_yscale("log")
    ax.set(xlabel="step", ylabel=metric, title=f"{metric}: mean and 95% bootstrap band")
    ax.legend(fontsize=8)
    return ax


def contour_thumbnails(df, rows: str = "scheme", cols: str = "depth", seed: int | None = None):
    """A grid of small probability-contour panels from the stored thumbnails: one run (the lowest
    seed, or ``seed``) per cell of ``rows`` x ``cols``, titled with its accuracy (none for a diverged run,
    marked for a flat output). Returns the figure."""
    from .experiment import accuracy_text, output_signal
    from .store import GRID_DTYPE

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


def phase_diagram(grid: dict, points: Sequence[dict] = (), ax=None):
    """Mean-field phase diagram: sigma_w^2 (x) against sigma_b^2 (y), the chi_1 = 1 line between
    order and chaos, contours of the correlation depth scale xi_c, and a point per scheme or network.

    ``grid`` from :func:`initlab.theory.phase_grid`; ``points`` dicts with ``label``, ``sigma_w2``,
    ``sigma_b2``."""
    from matplotlib.colors import LogNorm

    ax = ax or plt.gca()
    sw, sb = np.asarray(grid["sigma_w2"]), np.asarray(grid["sigma_b2"])
    xi = np.asarray(grid["xi_c"], dtype=float)
    chi = np.asarray(grid["chi_1"], dtype=float)
    shown = np.clip(np.where(np.isfinite(xi), xi, np.nan), 0.5, 200)
    mesh = ax.pcolormesh(sw, sb, shown, shading="auto", cmap="viridis", norm=LogNorm(0.5, 200))
    plt.colorbar(mesh, ax=ax, label="correlation depth scale xi_c (layers, log)")
    levels = [2, 5, 10, 20, 50]
    cs = ax.contour(sw, sb, shown, levels=levels, colors="white", linewidths=0.7)
    ax.clabel(cs, fmt="%g", fontsize=7)
    if np.nanmin(chi) < 1 < np.nanmax(chi):
        edge = ax.contour(sw, sb, chi, levels=[1.0], colors="red", linewidths=2.2)
        ax.clabel(edge, fmt={1.0: "chi_1 = 1"}, fontsize=8)
    ax.text(0.03, 0.95, "ordered\n(signals converge,\ngradients vanish)", transform=ax.transAxes, va="top",
            fontsize=8, color="white")
    ax.text(0.97, 0.95, "chaotic\n(signals decorrelate,\ngradients explode)", transform=ax.transAxes, va="top",
            ha="right", fontsize=8, color="white")
    for i, p in enumerate(points):
        ax.plot(p["sigma_w2"], p["sigma_b2"], "o", color=COLORS[(i + 1) % len(COLORS)], markersize=8,
                markeredgecolor="white", label=p["label"])
    if points:
        ax.legend(fontsize=8, loc="lower right", framealpha=0.9)
    ax.set(xlabel="sigma_w^2 (fan_in x Var(W))", ylabel="sigma_b^2 (Var(b))",
           title=f"{grid['activation']}: order, chaos and the depth a signal survives")
    return ax


def trainability_heatmap(result: dict, ax=None):
    """The share of seeds that trained per (sigma_w^2, depth), with mean-field theory's depth limit
    6 xi_c drawn over it (``result`` from :func:`initlab.trainability.analyze`). Cells are evenly
    spaced; the curve is placed between them by interpolation (log scale for depth)."""
    ax = ax or plt.gca()
    sw, depth = np.asarray(result["sigma_w2"], float), np.asarray(result["depth"], float)
    trained = np.asarray(result["trained"], float)
    mesh = ax.imshow(trained, origin="lower", cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
    plt.colorbar(mesh, ax=ax, label=f"share of seeds with test accuracy >= {result['threshold']:g}")
    for (i, j), v in np.ndenumerate(trained):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.0%}", ha="center", va="center", fontsize=8)

    def position(values, grid, log=False):
        """Fractional cell index of each value, extrapolating linearly past the ends."""
        v, g = (np.log(values), np.log(grid)) if log else (np.asarray(values), grid)
        idx = np.arange(len(g), dtype=float)
        if len(g) == 1:
            return np.zeros_like(v)
        out = np.interp(v, g, idx)
        lo, hi = v < g[0], v > g[-1]
        out[lo] = (v[lo] - g[0]) / (g[1] - g[0])
        out[hi] = len(g) - 1 + (v[hi] - g[-1]) / (g[-1] - g[-2])
        return out

    curve = result["curve"]
    cx = position(np.asarray(curve["sigma_w2"], float), sw)
    cy = position(np.minimum(np.asarray(curve["depth"], float), 1e9), depth, log=True)
    ax.plot(cx, cy, color="black", linewidth=2.4, label="6 xi_c: mean-field theory's depth limit")
    ax.set_xlim(-0.5, len(sw) - 0.5)
    ax.set_ylim(-0.5, len(depth) - 0.5)
    ax.set_xticks(range(len(sw)), [f"{v:g}" for v in sw])
    ax.set_yticks(range(len(depth)), [f"{int(d)}" for d in depth])
    ax.set(xlabel="sigma_w^2 (weight variance x fan_in)", ylabel="depth (hidden layers)",
           title=f"tanh, sigma_b^2 = {result['sigma_b2']:g}: which networks train")
    ax.legend(loc="upper right", fontsize=8, framealpha=0.9)
    return ax
