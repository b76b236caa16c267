"""The figures of signal propagation: Jacobian spectra, the correlation map measured beside theory,
and width sweeps (muP's coordinate check with fitted slopes). Each takes what
:mod:`initlab.signal` and :mod:`initlab.widths` return (or their ``to_dict()``, as stored in
``signal.json``) and ``ax=None``, and returns the axes."""

from __future__ import annotations

from typing import Mapping

import matplotlib.pyplot as plt
import numpy as np

from .base import COLORS, legend_below


def _d(x) -> dict:
    return x.to_dict() if hasattr(x, "to_dict") else x


def jacobian_spectrum(spectra: Mapping[str, object], ax=None, bins: int = 60, floor: float = 1e-3):
    """Histograms of the input-output Jacobian's singular values, one outline per label (a scheme, a
    depth), on a log axis, with the line s = 1 (dynamical isometry: every singular value there).
    Each label carries its spread std(s^2)/mean(s^2) and mean s^2 (predicted beside it, where there
    is a prediction). Values under ``floor`` are counted in the first bin (a near-singular Jacobian has
    values down to rounding). A spectrum estimated by random projections is dashed, its method and
    standard errors in its label: its histogram holds only the top singular values, while its
    spread and mean s^2 are estimates over all of them. ``spectra``: label -> :class:`initlab.signal.JacobianSpectrum` or its dict."""
    ax = ax or plt.gca()
    items = {k: _d(v) for k, v in spectra.items()}
    values = {k: np.asarray(v["singular_values"], float).ravel() for k, v in items.items()}
    pos = np.concatenate([s[s > 0] for s in values.values()] or [np.ones(1)])
    lo = max(float(pos.min()) if pos.size else floor, floor)
    hi = float(pos.max()) if pos.size else 10.0
    below = any((s < floor).any() for s in values.values())
    edges = np.logspace(np.log10(lo) - (0 if below else 0.05), np.log10(max(hi, 1.01)) + 0.05, bins)
    for i, (label, d) in enumerate(items.items()):
        s = np.clip(values[label], edges[0], None)
        pred = d.get("predicted_mean_s2")
        extra = f", predicted {pred:.3g}" if pred is not None else ""
        exact = d.get("method", "exact") == "exact"
        pm = lambda key: "" if exact or not d.get(key) else f" ± {d[key]:.2g}"  # noqa: E731
        method = "" if exact else f" [{d['method']}: the histogram shows only the top values]"
        ax.hist(s, bins=edges, histtype="step", linewidth=1.8, color=COLORS[i % len(COLORS)],
                weights=np.full(s.size, 1 / max(s.size, 1)), linestyle="-" if exact else "--",
                label=f"{label}: spread {d['spread']:.3g}{pm('spread_error')}, mean s^2 {d['mean_s2']:.3g}"
                      f"{pm('mean_s2_error')}{extra}{method}")
    ax.axvline(1.0, color="black", linestyle=":", linewidth=1)
    ax.text(1.0, 0.98, " s = 1: isometry", transform=ax.get_xaxis_transform(), va="top", fontsize=8)
    if below:
        ax.text(0.0, 0.98, f" first bin: every value <= {floor:g}\n (directions the network all but erases)",
                transform=ax.transAxes, va="top", fontsize=8)
    ax.set_xscale("log")
    ax.set(xlabel="singular value s of the input-output Jacobian (log scale)", ylabel="share of singular values")
    legend_below(ax, ncol=1)
    return ax


def correlation_map(maps: Mapping[str, object], ax=None):
    """The mean cosine similarity of pairs of inputs' representations at each layer (solid, with the
    spread over pairs shaded when there are at most 3 labels) beside mean-field theory's c-map (dashed)
    and its fixed point c* (dotted), one colour per label. ``maps``: label ->
    :class:`initlab.signal.CorrelationMap` or its dict."""
    ax = ax or plt.gca()
    for i, (label, m) in enumerate(maps.items()):
        m = _d(m)
        color = COLORS[i % len(COLORS)]
        layers = np.arange(1, len(m["measured"]) + 1)
        meas, sd = np.asarray(m["measured"], float), np.asarray(m.get("measured_std") or np.zeros(len(layers)), float)
        ax.plot(layers, meas, "-", color=color, linewidth=1.8, label=f"{label}: measured")
        if len(maps) <= 3:
            ax.fill_between(layers, meas - sd, meas + sd, color=color, alpha=0.1, linewidth=0)
        if m.get("predicted") is not None:
            ax.plot(layers, m["predicted"], "--", color=color, linewidth=1.4, label=f"{label}: mean-field c-map")
        if m.get("c_star") is not None:
            ax.axhline(m["c_star"], color=color, linestyle=":", linewidth=1)
    ax.set_ylim(min(-0.05, ax.get_ylim()[0]), 1.05)
    ax.set(xlabel="layer (weight layers in forward order)", ylabel="mean cos(h(x_a), h(x_b)) over pairs")
    legend_below(ax, ncol=2)
    return ax


def _sweep_frames(sweep):
    """``(data, slopes)`` DataFrames of a :class:`initlab.widths.WidthSweep` or its ``to_dict()``."""
    import pandas as pd

    if isinstance(sweep, Mapping):
        return pd.DataFrame(sweep["data"]), pd.DataFrame(sweep["slopes"])
    return sweep.data, sweep.slopes


def _shown_modules(data, slopes, max_modules: int) -> list[str]:
    """At most ``max_modules`` modules (more only when more move), in forward order: every module
    that moves with width or diverged, the last one (the output), then the first others."""
    order = list(dict.fromkeys(data["module"]))
    must = set(slopes.loc[slopes["trend"].isin(["grows", "shrinks", "diverged"]), "module"]) | {order[-1]}
    room = max(max_modules - len(must), 0)
    rest = [m for m in order if m not in must][:room]
    return [m for m in order if m in must or m in rest]


def width_sweep(sweep, axes=None, max_modules: int = 8):
    """muP's coordinate check with its slopes: one panel per step, the mean |output| of each module
    against the width (log-log; a point per seed, the line through their means), the fitted slope of
    each module in its label and the verdict in the title. At most ``max_modules`` modules are drawn:
    always every one that moves with width and the last (the output), then the first of the others.
    ``sweep``: a :class:`initlab.widths.WidthSweep` or its ``to_dict()``."""
    data, slopes = _sweep_frames(sweep)
    steps = sorted(data["step"].unique())
    if axes is None:
        _, axes = plt.subplots(1, len(steps), figsize=(4.2 * len(steps), 4.4), sharey=True, squeeze=False)
        axes = axes[0]
    modules = _shown_modules(data, slopes, max_modules)
    for ax, step in zip(axes, steps):
        for i, module in enumerate(modules):
            g = data[(data["module"] == module) & (data["step"] == step)]
            row = slopes[(slopes["module"] == module) & (slopes["step"] == step)].iloc[0]
            color = COLORS[i % len(COLORS)]
            if row["trend"] in ("zero", "diverged"):
                ax.plot([], [], color=color, label=f"{module}: " + ("0 at every width" if row["trend"] == "zero"
                                                                     else "NaN or inf (diverged)"))
                continue
            g = g[g["l1"] > 0]
            mean = g.groupby("width")["l1"].mean()
            slope = "n/a" if np.isnan(row["slope"]) else f"{row['slope']:+.2f}"
            tag = {"grows": " (moves)", "shrinks": " (moves)", "inconclusive": " (cannot tell)"}.get(row["trend"], "")
            ax.plot(mean.index, mean.values, "o-", color=color, markersize=4, label=f"{module}: slope {slope}{tag}")
            ax.plot(g["width"], g["l1"], ".", color=color, alpha=0.35)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title("initialization (step 0)" if step == 0 else f"after {step} step{'s' if step > 1 else ''}",
                     fontsize=10)
        ax.set_xlabel("width (log scale)")
        legend_below(ax, ncol=2, fontsize=7)
    axes[0].set_ylabel("mean |output| of the module (log scale)")
    return axes
