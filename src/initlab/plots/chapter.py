"""The figures of an experiment (the chapter's and the demo's): probability contours, training curves,
the symmetry trace and the layer x step heatmaps, in English or in Hebrew, and
:func:`experiment_figures`, which draws them all from a stored experiment."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np

from ..report.text import RTL, TEXT, figure_file
from .base import (COLORS, LEVELS, RTL_FONT, _empty_note, _log_y, _lone_point, _round_step_axis, _words,
                   legend_below, round_ticks, save_figure)


def probability_contours(grid: dict, X=None, y=None, ax=None, title: str | None = None,
                         accuracy: float | None = None, signal: dict | None = None, dtype: str = "float32",
                         lang: str = "en"):
    """The chapter's figure: the model's probability that a point is black, as contour lines at
    0.1 ... 0.9, each labelled with its probability, over a light fill; black and white points.

    ``grid`` is ``{"xx", "yy", "p"}`` from :func:`initlab.probability_grid`; ``X, y`` the points
    (y = 1 drawn black, y = 0 white). A flat or weak output is noted on the panel, as
    :func:`initlab.experiment.output_signal` judges it: ``signal`` when given (judged over the data),
    else judged over the grid in ``dtype``. ``accuracy`` is written in a corner, marked when the output
    is flat. ``lang``: the language of its words (``title`` is drawn as given, reordered)."""
    from ..experiment import accuracy_text, output_signal, signal_text

    W, say = _words(lang)
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
            ax.text(0.5, 0.93, say(signal_text(signal, where, TEXT[lang])), transform=ax.transAxes, ha="center",
                    va="top", fontsize=8, bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "none"})
    else:
        ax.set_facecolor("#f3e0e0")
        ax.text(0.5, 0.93, say(W["no_probabilities"]), transform=ax.transAxes, ha="center",
                va="top", fontsize=9, color="#a00000")
    if X is not None and y is not None:
        X, y = np.asarray(X), np.asarray(y)
        ax.scatter(X[y == 0, 0], X[y == 0, 1], s=10, c="white", edgecolors="black", linewidths=0.5,
                   label=say(W["white"]))
        ax.scatter(X[y == 1, 0], X[y == 1, 1], s=10, c="black", label=say(W["black"]))
    if accuracy is not None:
        text = accuracy_text({"test_accuracy": accuracy, "output_signal": signal}, digits=2, words=TEXT[lang])
        ax.text(0.98, 0.03, say(W["test_accuracy"].format(acc=text)), transform=ax.transAxes, ha="right",
                va="bottom", fontsize=9, bbox={"facecolor": "white", "alpha": 0.9, "edgecolor": "0.6"})
    if title:
        ax.set_title(say(title), fontsize=10)
    ax.set_xlim(xx.min(), xx.max())
    ax.set_ylim(yy.min(), yy.max())
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def contour_panels(doc: dict, titles: Sequence[str] | None = None, ncols: int = 3, lang: str = "en"):
    """One probability-contour panel per result of a stored experiment, on shared axes. A diverged
    run's title says so and shows no accuracy; a flat output's accuracy is marked. The points' legend
    is under the panels."""
    from ..experiment import accuracy_text

    W, say = _words(lang)
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
            title += "\n" + W["test_accuracy"].format(acc=accuracy_text(row, words=TEXT[lang]))
        probability_contours(grid, X, y, ax=axes.flat[i], title=title, dtype=dtype,
                             accuracy=None if row.get("diverged") else row["test_accuracy"],
                             signal=row.get("output_signal"), lang=lang)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        if lang in RTL:  # one row, read from the right
            handles, labels = handles[::-1], labels[::-1]
        fig.legend(handles, labels, loc="lower center", ncol=len(handles), fontsize=9, frameon=False,
                   markerfirst=lang not in RTL)
    fig.suptitle(say(W["contours_title"]), fontsize=12)
    fig.tight_layout(rect=(0, 0.35 / fig.get_figheight() if handles else 0, 1, 1))
    return fig


def training_curves(histories: dict[str, dict], axes=None, diverged: dict[str, int | None] | None = None,
                    signals: dict[str, dict | None] | None = None, lang: str = "en"):
    """Training loss (log scale) and test accuracy over the steps, one line per scheme. A diverged run's
    accuracy line ends before the step it diverged (its predictions after that measure nothing); a run
    whose final output is flat (``signals``: :func:`initlab.experiment.output_signal` per name) says so
    in the legend, which is under the accuracy panel. A loss panel with no finite loss says so."""
    from ..metrics import null_diverged_accuracy

    W, say = _words(lang)
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 4))
    loss_ax, acc_ax = axes
    losses, all_steps, notes = [], [], []
    for i, (name, h) in enumerate(histories.items()):
        color = COLORS[i % len(COLORS)]
        step = (diverged or {}).get(name)
        h = null_diverged_accuracy(h, step)
        steps = np.asarray(h["step"], dtype=float)
        loss = np.array([np.nan if v is None else v for v in h["train_loss"]], dtype=float)
        acc = np.array([np.nan if v is None else v for v in h["test_accuracy"]], dtype=float)
        losses.append(loss)
        all_steps += [*steps, *([step] if step is not None else [])]
        loss_ax.plot(steps, loss, color=color, label=name, **_lone_point(loss))
        label = name if step is None else W["named_diverged"].format(name=name, step=step)
        if ((signals or {}).get(name) or {}).get("signal") == "none":
            label = TEXT[lang]["accuracy"]["flat"].format(acc=name)
        acc_ax.plot(steps, acc, color=color, label=say(label), **_lone_point(acc))
        if step is not None and np.isfinite(loss).any():
            last = np.nanmax(loss[np.isfinite(loss)])
            loss_ax.plot([step], [last], "x", color=color, markersize=10, mew=2)
            notes.append(loss_ax.annotate(say(W["diverged_at"].format(step=step)), (step, last),
                                          textcoords="offset points", xytext=(6, 4), fontsize=8, color=color))
    _log_y(loss_ax, losses, say(W["empty_loss"]))
    loss_ax.set(xlabel=say(W["step"]), ylabel=say(W["loss_label"]), title=say(W["loss_title"]))
    acc_ax.axhline(0.9, color="0.6", linestyle=":", linewidth=1)
    acc_ax.set(xlabel=say(W["step"]), ylabel=say(W["acc_label"]), title=say(W["acc_title"]), ylim=(0.0, 1.02))
    for ax in axes:
        _round_step_axis(ax.xaxis)
        if all_steps and max(all_steps) > min(all_steps):  # both panels over the same steps
            margin = 0.03 * (max(all_steps) - min(all_steps))
            ax.set_xlim(min(all_steps) - margin, max(all_steps) + margin)
    for note in notes:  # in the right half, the words go to the left of the mark: inside the axes
        if note.xy[0] > sum(loss_ax.get_xlim()) / 2:
            note.set(ha="right", position=(-6, 4))
    legend_below(acc_ax, lang, ncol=2)
    return axes


def symmetry_trace(traces: dict[str, dict], ax=None, floor: float = 1e-17, lang: str = "en"):
    """The largest difference between neurons of a constant-initialized network over the steps.

    ``traces`` maps a label (``"adam float32"``) to ``{"step": [...], "spread": [...]}``; exact
    zeros (bitwise-identical neurons) are drawn on the floor of the log axis, marked under it, and
    named in the legend; when every trace is exactly 0 the axes say so."""
    W, say = _words(lang)
    ax = ax or plt.gca()
    zero = {}
    for i, (name, t) in enumerate(traces.items()):
        raw = np.asarray(t["spread"], dtype=float)
        spread = np.maximum(raw, floor)
        zero[name] = not np.any(raw > 0)
        label = W["sym_zero"].format(name=name) if zero[name] else name
        if "effective_width" in t:
            label = W["sym_width"].format(name=label, widths=", ".join(map(str, t["effective_width"])))
        ax.plot(t["step"], spread * (1.6 ** i if spread.max() <= floor else 1), color=COLORS[i % len(COLORS)],
                label=say(label), linestyle="-" if "float32" in name else "--", linewidth=1.8)
    ax.set_yscale("log")
    ax.set_ylim(floor / 12, None)  # room under the floor for its name
    ax.axhline(floor, color="0.7", linewidth=0.8)
    rtl = lang in RTL  # the floor's name where its reader starts
    ax.text(0.99 if rtl else 0.01, floor / 1.3, say(W["sym_floor"]), transform=ax.get_yaxis_transform(),
            fontsize=8, color="0.4", va="top", ha="right" if rtl else "left")
    if traces and all(zero.values()):
        _empty_note(ax, say(W["sym_empty"]))
    ax.set(xlabel=say(W["step"]), ylabel=say(W["sym_label"]), title=say(W["sym_title"]))
    _round_step_axis(ax.xaxis)
    legend_below(ax, lang, ncol=2)
    return ax


def experiment_figures(doc: dict, out: str | Path, lang: str = "en") -> dict[str, Path]:
    """Draw the figures of a stored experiment into ``out``: contours, curves and (for the demo) the
    symmetry trace. Returns ``{name: png path}``. In another language than English the words are
    that language's and the files are named by :func:`initlab.report.text.figure_file`
    (``contours-he.png``, PNG only), beside the English ones."""
    _words(lang)
    if lang in RTL:  # Hebrew letters: a font that has them, whatever the user's rcParams say
        with plt.rc_context({"font.family": "sans-serif",
                             "font.sans-serif": [RTL_FONT, *plt.rcParams["font.sans-serif"]]}):
            return _experiment_figures(doc, Path(out), lang)
    return _experiment_figures(doc, Path(out), lang)


def _experiment_figures(doc: dict, out: Path, lang: str) -> dict[str, Path]:
    figures = {"contours": contour_panels(doc, lang=lang)}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    training_curves(doc["histories"], axes,
                    diverged={r["scheme"]: r["diverged_step"] for r in doc["results"]},
                    signals={r["scheme"]: r.get("output_signal") for r in doc["results"]}, lang=lang)
    fig.tight_layout()
    figures["curves"] = fig
    scale_rows = [r for r in doc["results"] if r.get("role") in ("vanishing", "exploding")] or \
        (doc["results"] if doc.get("kind") != "demo" else [])
    scale_rows = [r for r in scale_rows if (doc.get("tracked") or {}).get(r["scheme"])]
    if scale_rows:
        fig, axes = plt.subplots(len(scale_rows), 2, figsize=(12, 3.4 * len(scale_rows)), squeeze=False)
        for r, pair in zip(scale_rows, axes):
            tracking_heatmaps(doc["tracked"][r["scheme"]], pair, title=r["scheme"], lang=lang)
        fig.tight_layout()
        figures["scale"] = fig
    if doc.get("symmetry"):
        fig, ax = plt.subplots(figsize=(7.5, 4.8))
        symmetry_trace(doc["symmetry"]["traces"], ax, lang=lang)
        fig.tight_layout()
        figures["symmetry"] = fig
    formats = ("png", "svg") if lang == "en" else ("png",)
    return {name: save_figure(fig, out / figure_file(name, lang), formats)[0] for name, fig in figures.items()}


def tracking_heatmaps(tracked: dict, axes=None, title: str = "", lang: str = "en"):
    """Layer x step heatmaps of what ``train(..., track_every=k)`` recorded: each layer's output std
    and its weight-gradient norm, on a log colour scale. The step axis is labelled at round steps,
    placed between the recorded columns; a panel with no value above 0 says so."""
    from matplotlib.colors import LogNorm

    W, say = _words(lang)
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    steps = tracked["step"]
    for ax, key, label in zip(axes, ("preact_std", "weight_grad_norm"), (W["act_std"], W["grad_norm"])):
        values = np.array([[np.nan if v is None else v for v in row] for row in tracked[key]], dtype=float).T
        finite = values[np.isfinite(values) & (values > 0)]
        if finite.size:
            norm = LogNorm(vmin=max(finite.min(), 1e-12), vmax=max(finite.max(), 1e-11))
            mesh = ax.imshow(np.where(values > 0, values, np.nan), aspect="auto", origin="lower", norm=norm,
                             cmap="magma", interpolation="nearest",
                             extent=(-0.5, len(steps) - 0.5, 0.5, len(tracked["layers"]) + 0.5))
            plt.colorbar(mesh, ax=ax, label=say(W["log"].format(label=label)))
        else:
            _empty_note(ax, say(W["empty_log"]))
        if values.shape[1] <= 10 and values.shape[0] <= 12:  # few cells: write the numbers in
            for (i, j), v in np.ndenumerate(values):
                text = "NaN" if not np.isfinite(v) else f"{v:.2g}"
                ax.text(j, i + 1, text, ha="center", va="center", fontsize=7,
                        color="black" if np.isfinite(v) and finite.size and v > np.sqrt(
                            finite.min() * finite.max()) else "white" if np.isfinite(v) else "#a00000")
        ticks = round_ticks(steps[0], steps[-1]) if len(steps) > 1 else np.asarray(steps)
        ax.set_xticks(np.interp(ticks, steps, np.arange(len(steps))), [str(int(t)) for t in ticks])
        ax.set_yticks(range(1, len(tracked["layers"]) + 1), tracked["layers"], fontsize=7)
        ax.set(xlabel=say(W["step"]), ylabel=say(W["layer"]), title=say(f"{title}: {label}" if title else label))
    return axes
