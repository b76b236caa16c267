"""The figures of mean-field theory: the order-to-chaos phase diagram and the trainability heatmap
with theory's depth limit drawn over it."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np

from .base import COLORS, legend_below, save_figure


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

    curve = result["curve"]
    cx = _cell_position(np.asarray(curve["sigma_w2"], float), sw)
    cy = _cell_position(np.minimum(np.asarray(curve["depth"], float), 1e9), depth, log=True)
    ax.plot(cx, cy, color="black", linewidth=2.4, label="6 xi_c: mean-field theory's depth limit")
    ax.set_xlim(-0.5, len(sw) - 0.5)
    ax.set_ylim(-0.5, len(depth) - 0.5)
    ax.set_xticks(range(len(sw)), [f"{v:g}" for v in sw])
    ax.set_yticks(range(len(depth)), [f"{int(d)}" for d in depth])
    ax.set(xlabel="sigma_w^2 (weight variance x fan_in)", ylabel="depth (hidden layers)",
           title=f"tanh, sigma_b^2 = {result['sigma_b2']:g}: which networks train")
    legend_below(ax)
    return ax


def _cell_position(values, grid, log=False):
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


def c_map_curves(curves: dict, ax=None):
    """The correlation map iterated from several starting correlations c0 (one line each), with its
    fixed point c* (dotted): how fast two inputs become alike (ordered phase, c* = 1) or settle at a
    partial likeness (chaotic phase, c* < 1). ``curves``: ``{"c0": [...], "c": [[c_0, c_1, ...], ...],
    "c_star": float, "label": str}`` (from :func:`initlab.theory.c_map`)."""
    ax = ax or plt.gca()
    for i, (c0, c) in enumerate(zip(curves["c0"], curves["c"])):
        ax.plot(np.arange(len(c)), c, color=COLORS[(i + 1) % len(COLORS)], linewidth=1.8, label=f"c0 = {c0:g}")
    if curves.get("c_star") is not None:
        ax.axhline(curves["c_star"], color="black", linestyle=":", linewidth=1.2, label=f"c* = {curves['c_star']:.3g}")
    ax.set_ylim(-0.05, 1.05)
    ax.set(xlabel="layer l", ylabel="correlation c_l of two inputs' preactivations",
           title=curves.get("label", "the correlation map"))
    legend_below(ax, ncol=3)
    return ax
