"""Every figure initlab draws. Each function takes ``ax=None`` (or ``axes``) and returns the axes;
figures are drawn from stored results (see :func:`initlab.experiment.load`), never by training.

What every figure keeps: layer axes show whole layers (never 2.5), step axes round steps (0, 500,
1000: :func:`round_ticks`), legends sit under the axes, off the data (:func:`legend_below`), and a
log-scale chart with nothing to draw says why in the axes. The figures of an experiment (``lang``)
are drawn in English or in Hebrew (:data:`initlab.report.text.TEXT`), in DejaVu Sans, which has the
Hebrew letters; a right-to-left language's text is given to matplotlib as :func:`rtl_text` says.
"""

from __future__ import annotations

import functools
import unicodedata
import warnings
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import ScaledTranslation

from .errors import InitlabError
from .report.text import RTL, TEXT, figure_file, visual_order

LEVELS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
COLORS = plt.get_cmap("tab10").colors
#: Spacings of step ticks, times a power of ten: 0, 500, 1000 or 0, 20, 40, never 0, 240, 680.
ROUND_STEPS = (1, 2, 5, 10)
#: A font with Hebrew letters (matplotlib ships it), put first when a figure is drawn in Hebrew.
RTL_FONT = "DejaVu Sans"


def round_ticks(low: float, high: float, nbins: int = 6) -> np.ndarray:
    """Round values between ``low`` and ``high`` for a step axis: whole numbers spaced 1, 2 or 5 times
    a power of ten, at most ``nbins + 1`` of them."""
    ticks = MaxNLocator(nbins=nbins, steps=ROUND_STEPS, integer=True).tick_values(low, high)
    return ticks[(ticks >= low - 1e-9) & (ticks <= high + 1e-9)]


def _round_step_axis(axis) -> None:
    axis.set_major_locator(MaxNLocator(nbins=6, steps=ROUND_STEPS, integer=True, min_n_ticks=1))


def _layer_axis(axis, n: int) -> None:
    """Whole layers only: every layer when there are few, else whole numbers."""
    if n <= 16:
        axis.set_ticks(range(1, n + 1))
    else:
        axis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


@functools.cache
def draws_bidi() -> bool:
    """Whether this matplotlib orders right-to-left text itself (3.11 and later lay text out with
    libraqm): then a Hebrew string is given as written, else in :func:`~initlab.report.text.visual_order`."""
    try:
        from matplotlib import font_manager, ft2font

        font = ft2font.FT2Font(font_manager.findfont(RTL_FONT))
        font.set_size(12, 72)
        return [g.char for g in font._layout("\u05d0\u05d1", ft2font.LoadFlags.NO_HINTING)] == ["\u05d1", "\u05d0"]
    except Exception:  # no layout engine: glyphs go left to right as given
        return False


def rtl_text(text: str) -> str:
    """A right-to-left language's ``text`` as matplotlib must be given it to draw it in reading order:
    each line opened by a RIGHT-TO-LEFT MARK (so that a line that begins with code, ``normal(std=3)
    (...)``, still reads from the right) where matplotlib orders text itself, else reordered."""
    text = str(text)
    if not draws_bidi():
        return visual_order(text)
    if not any(unicodedata.bidirectional(c) in ("R", "AL") for c in text):
        return text
    return "\n".join("\u200f" + line for line in text.split("\n"))


def _words(lang: str) -> tuple[dict, callable]:
    """The figures' words in ``lang`` and the function that gives a string to matplotlib."""
    if lang not in TEXT:
        raise InitlabError(f"unknown language '{lang}'; use one of {', '.join(TEXT)}.")
    return TEXT[lang]["figures"], (rtl_text if lang in RTL else str)


def legend_below(ax, lang: str = "en", ncol: int = 1, fontsize: float = 8, **kwargs):
    """The axes' legend under its x label, where it covers no data. In a right-to-left language the
    marker follows the words and the first column is the rightmost. Layout (``tight_layout``,
    ``bbox_inches="tight"``) makes room for it."""
    handles, labels = ax.get_legend_handles_labels()
    ncol = max(1, min(ncol, len(handles)))
    if lang in RTL:
        handles, labels = _columns_from_the_right(handles, labels, ncol)
    below = ScaledTranslation(0, -0.48, ax.figure.dpi_scale_trans)
    return ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0),
                     bbox_transform=ax.transAxes + below, ncol=ncol, fontsize=fontsize, frameon=False,
                     markerfirst=lang not in RTL, **kwargs)


def _columns_from_the_right(handles: list, labels: list, ncol: int) -> tuple[list, list]:
    """Legend entries reordered so that the columns, which matplotlib fills from the left, read from
    the right; blank entries make the columns equally long."""
    from matplotlib.lines import Line2D

    rows = -(-len(handles) // ncol)
    pad = rows * ncol - len(handles)
    entries = list(zip(handles, labels)) + [(Line2D([], [], alpha=0), "")] * pad
    columns = [entries[i * rows:(i + 1) * rows] for i in range(ncol)]
    ordered = [e for column in reversed(columns) for e in column]
    return [h for h, _ in ordered], [lab for _, lab in ordered]


def _empty_note(ax, text: str) -> None:
    """Say in the middle of the axes why there is nothing to see."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=10, color="0.25",
            bbox={"facecolor": "#fff8e0", "edgecolor": "0.7", "boxstyle": "round,pad=0.5"})


def _lone_point(values) -> dict:
    """A marker for a line with a single finite value, which a line style alone does not draw."""
    return {"marker": "o", "markersize": 4} if np.isfinite(np.asarray(values, dtype=float)).sum() == 1 else {}


def _drawable_on_log(*arrays) -> bool:
    return any(np.any(np.isfinite(a) & (a > 0)) for a in (np.asarray(x, dtype=float) for x in arrays))


def _log_y(ax, arrays, note: str) -> None:
    """A log y axis; when no value of ``arrays`` is above 0, the axes say ``note`` instead of
    matplotlib warning that it has nothing to scale."""
    if _drawable_on_log(*arrays):
        ax.set_yscale("log")
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ax.set_yscale("log")
    _empty_note(ax, note)


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
    from .experiment import accuracy_text, output_signal, signal_text

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
    from .experiment import accuracy_text

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
    from .metrics import null_diverged_accuracy

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


def save_figure(fig, stem: str | Path, formats: Sequence[str] = ("png", "svg")) -> list[Path]:
    """Save ``fig`` as ``stem.png`` and ``stem.svg`` and close it."""
    paths = []
    for fmt in formats:
        path = Path(f"{stem}.{fmt}")
        fig.savefig(path, dpi=110, bbox_inches="tight")
        paths.append(path)
    plt.close(fig)
    return paths


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


def diagnosis_plot(doc: dict, ax=None, title: str | None = None):
    """A diagnosis (``Diagnosis.to_dict()``): the std of each layer's output (forward) and of the
    gradient reaching it (backward), on a log scale; measured solid, predicted dashed. Whole layers on
    the x axis, the legend under it; a model whose every std is 0 (all weights zero) says so."""
    W, _ = _words("en")
    ax = ax or plt.gca()
    rows = doc["layers"]
    x = np.arange(1, len(rows) + 1)
    series = [("preact_std", "predicted_preact_std", "forward: std of layer output", COLORS[0]),
              ("grad_std", "predicted_grad_std", "backward: std of gradient at layer output", COLORS[1])]
    drawn = []
    for measured, predicted, label, color in series:
        m = np.array([np.nan if r.get(measured) is None else r[measured] for r in rows], dtype=float)
        drawn.append(m)
        ax.plot(x, m, "-o", color=color, markersize=3, label=f"{label} (measured)")
        p = np.array([np.nan if r.get(predicted) is None else r[predicted] for r in rows], dtype=float)
        if np.isfinite(p).any():
            ax.plot(x, p, "--", color=color, linewidth=1.5, label=f"{label} (theory)")
    _log_y(ax, drawn, W["empty_log"])
    ax.set(xlabel="layer", ylabel="std (log scale)")
    _layer_axis(ax.xaxis, len(rows))
    verdict = doc.get("verdict", {})
    name = doc.get("scheme") or "model"
    ax.set_title(title or f"{name}: {verdict.get('summary', '')}", fontsize=10,
                 color="#116611" if verdict.get("summary") == "ok" else "#a00000")
    legend_below(ax, fontsize=7)
    return ax


def diagnosis_panels(docs: list[dict]):
    """One :func:`diagnosis_plot` panel per diagnosis, side by side, on a shared log axis."""
    fig, axes = plt.subplots(1, len(docs), figsize=(5.5 * len(docs), 4.2), sharey=True, squeeze=False)
    for doc, ax in zip(docs, axes.flat):
        diagnosis_plot(doc, ax=ax)
    fig.tight_layout()
    return fig


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
    bootstrap band (:func:`initlab.metrics.mean_interval`: inside the values' range, so an accuracy's band
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
        _log_y(ax, [line.get_ydata() for line in ax.lines], TEXT["en"]["figures"]["empty_log"])
    ax.set(xlabel="step", ylabel=metric, title=f"{metric}: mean and 95% bootstrap band")
    _round_step_axis(ax.xaxis)
    legend_below(ax, ncol=2)
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
        legend_below(ax, ncol=2)
    ax.set(xlabel="sigma_w^2 (fan_in x Var(W))", ylabel="sigma_b^2 (Var(b))",
           title=f"{grid['activation']}: order, chaos and the depth a signal survives")
    return ax


def save_trainability(result: dict, stem: str | Path, formats: Sequence[str] = ("png", "svg")) -> list[Path]:
    """The trainability heatmap (:func:`trainability_heatmap`) on its own 8 x 5 figure, saved at
    ``stem`` (the command and the sweep page draw the same one)."""
    fig, ax = plt.subplots(figsize=(8, 5))
    trainability_heatmap(result, ax)
    return save_figure(fig, stem, formats)


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
    legend_below(ax)
    return ax
