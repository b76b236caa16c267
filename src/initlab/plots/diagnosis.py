"""The figures of a diagnosis: each layer's forward and backward std, measured and predicted."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from .base import COLORS, _layer_axis, _log_y, _words, legend_below


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
