"""Trainability: mean-field theory's depth limit against real training.

Schoenholz et al. (2017) found that a deep tanh network trains only when its depth is below about
6 xi_c, the correlation depth scale at its (sigma_w^2, sigma_b^2): beyond it the network forgets which
input it was given. :func:`preset` is the sweep that tests this claim (tanh MLPs over a grid of
sigma_w^2 and depth, on ``circles``, where a straight line is no better than chance), and
:func:`analyze` compares each cell's outcome with the curve depth = 6 xi_c.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .errors import InitlabError
from .metrics import MIN_RUNS, reaches, wilson
from .theory import mean_field

#: The preset's sizes: "default" runs on a 2-core CPU in minutes; "large" is for a GPU.
SIZES = {
    "small": {"sigma_w2": [0.5, 1.0, 2.0, 8.0], "depth": [4, 16, 32], "width": 32, "seeds": 1, "steps": 600},
    "default": {"sigma_w2": [0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0], "depth": [4, 8, 16, 32, 48], "width": 32,
                "seeds": 2, "steps": 1000},
    "large": {"sigma_w2": [0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 4.0, 5.0, 6.5, 8.0, 10.0],
              "depth": [4, 8, 16, 24, 32, 48, 64, 96], "width": 128, "seeds": 4, "steps": 3000},
}
SIGMA_B2 = 0.05
THRESHOLD = 0.8  # test accuracy on circles: a straight line gets about 0.5


def preset(size: str = "default", sigma_b2: float = SIGMA_B2) -> dict:
    """The sweep settings of the trainability preset (a dict for :func:`initlab.sweep.build`)."""
    if size not in SIZES:
        raise InitlabError(f"unknown trainability size '{size}'; use one of {', '.join(SIZES)}.")
    s = SIZES[size]
    return {
        "name": f"trainability-{size}",
        "scheme": [{"name": "variance_scaling", "scale": [float(sw) for sw in s["sigma_w2"]], "mode": "fan_in",
                    "distribution": "normal", "bias_std": math.sqrt(sigma_b2)}],
        "dataset": "circles", "n": 500, "noise": 0.1, "depth": s["depth"], "width": s["width"],
        "activation": "tanh", "optimizer": "sgd", "lr": 0.1, "steps": s["steps"], "eval_every": 100,
        "seeds": s["seeds"],
    }


def depth_limit(sigma_w2s: Sequence[float], sigma_b2: float = SIGMA_B2, factor: float = 6.0) -> list[float]:
    """``factor * xi_c`` for tanh at each sigma_w^2 (inf at the critical point)."""
    return [factor * mean_field("tanh", float(s), sigma_b2).xi_c for s in sigma_w2s]


def analyze(df, threshold: float = THRESHOLD, sigma_b2: float = SIGMA_B2, margin: float = 1.5) -> dict:
    """Per (sigma_w^2, depth): the share of seeds that trained (test accuracy :func:`~initlab.metrics.reaches`
    ``threshold``; a diverged run did not); and the fraction that trained among cells well within the
    curve (depth <= 6 xi_c / margin) and well beyond it (depth >= 6 xi_c * margin), each with its 95%
    Wilson interval (``ci_low``, ``ci_high``; None below 3 runs)."""
    if "param_scale" not in df:
        raise InitlabError("this store is not a trainability sweep (no sigma_w^2 = scale column).")
    sigmas = sorted(float(v) for v in df["param_scale"].astype(float).unique())
    depths = sorted(int(v) for v in df["depth"].astype(int).unique())
    limit = dict(zip(sigmas, depth_limit(sigmas, sigma_b2)))
    trained = np.full((len(depths), len(sigmas)), np.nan)
    within, beyond = [], []
    for (sw, depth), g in df.groupby([df["param_scale"].astype(float), df["depth"].astype(int)]):
        sw, depth = float(sw), int(depth)
        ok = [reaches(v, threshold) for v in g["test_accuracy"]]
        trained[depths.index(depth), sigmas.index(sw)] = float(np.mean(ok))
        if depth <= limit[sw] / margin:
            within.extend(ok)
        elif depth >= limit[sw] * margin:
            beyond.extend(ok)
    dense = np.linspace(min(sigmas), max(sigmas), 80)
    return {"sigma_w2": sigmas, "depth": depths, "trained": trained.tolist(), "limit": [limit[s] for s in sigmas],
            "curve": {"sigma_w2": dense.tolist(), "depth": depth_limit(dense, sigma_b2)},
            "sigma_b2": sigma_b2, "threshold": threshold, "within": _share(within), "beyond": _share(beyond)}


def _share(ok: list[bool]) -> dict:
    """``runs``, the share that ``trained`` (None without runs) and its 95% Wilson interval (None below
    :data:`~initlab.metrics.MIN_RUNS` runs: not meaningful)."""
    low, high = wilson(sum(ok), len(ok)) if len(ok) >= MIN_RUNS else (None, None)
    return {"runs": len(ok), "trained": float(np.mean(ok)) if ok else None, "ci_low": low, "ci_high": high}
