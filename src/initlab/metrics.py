"""What a number means: accuracies compared with a threshold in the precision they were counted in,
one helper for steps-to-threshold, a diverged model's accuracy as none, and intervals that stay
inside [0, 1] by construction (Wilson for success rates, a percentile bootstrap for means), with
none below :data:`MIN_RUNS` values. Read by training, the store, summaries, figures and pages."""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from .errors import InitlabError


#: Accuracies are counted in float32 (``train``, ``train_many``: correct predictions ``.float().mean()``),
#: so a threshold is compared in float32 too: 270 of 300 is 0.89999998 there and reaches 0.9.
ACCURACY_DTYPE = np.float32
#: Below this many values a 95% interval is not meaningful, and none is given.
MIN_RUNS = 3
_Z975 = 1.959964  # the standard normal's 97.5% quantile


def reaches(value, threshold: float) -> bool:
    """Whether an accuracy ``value`` reached ``threshold``, compared in :data:`ACCURACY_DTYPE`, the
    precision it was counted in. None and NaN (a diverged model) reach nothing.

    >>> reaches(np.float32(0.9).item(), 0.9), reaches(0.8999, 0.9), reaches(None, 0.9)
    (True, False, False)
    """
    if value is None:
        return False
    value = float(value)
    if not math.isfinite(value):
        return False
    return bool(ACCURACY_DTYPE(value) >= ACCURACY_DTYPE(threshold))


def steps_to(history: dict, threshold: float, split: str = "test") -> int | None:
    """The first evaluated step at which ``split`` accuracy :func:`reaches` ``threshold`` (None: never)."""
    for step, acc in zip(history["step"], history[f"{split}_accuracy"]):
        if reaches(acc, threshold):
            return step
    return None


def null_diverged_accuracy(history: dict, diverged_step: int | None) -> dict:
    """A copy of ``history`` whose accuracies at and after ``diverged_step`` are None: a diverged
    model's predictions come from NaN or infinite outputs and measure nothing."""
    history = {k: list(v) for k, v in history.items()}
    if diverged_step is None or diverged_step != diverged_step:  # None, NaN or pandas' NA
        return history
    for key in ("train_accuracy", "test_accuracy"):
        if key in history:
            history[key] = [None if s >= diverged_step else v for s, v in zip(history["step"], history[key])]
    return history


def wilson(successes: int, n: int, z: float = _Z975) -> tuple[float, float]:
    """The Wilson score interval of a proportion, ``successes`` of ``n`` (95% by default): inside
    [0, 1] by construction, 1 its upper end when every trial succeeded and 0 the lower end when none
    did. ``(nan, nan)`` when ``n`` is 0.

    >>> wilson(10, 10)[1], round(wilson(10, 10)[0], 3)
    (1.0, 0.722)
    """
    if n <= 0:
        return math.nan, math.nan
    if not 0 <= successes <= n:
        raise InitlabError(f"wilson: successes must be between 0 and n = {n}; got {successes}.")
    root = z * math.sqrt(z * z + 4 * successes * (n - successes) / n)
    low = 0.0 if successes == 0 else (2 * successes + z * z - root) / (2 * (n + z * z))
    high = 1.0 if successes == n else (2 * successes + z * z + root) / (2 * (n + z * z))
    return low, high


def mean_interval(values: Iterable[float], level: float = 0.95, resamples: int = 4000,
                  seed: int = 0) -> tuple[float, float]:
    """A percentile-bootstrap interval of the mean of ``values`` (NaN and None left out): the middle
    ``level`` of the means of ``resamples`` resamples drawn with a fixed ``seed``. Every resample's
    mean lies between the smallest and the largest value, so an accuracy's interval stays inside
    [0, 1] by construction. ``(nan, nan)`` below :data:`MIN_RUNS` values: not meaningful."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(float(x))], dtype=float)
    if len(v) < MIN_RUNS:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(resamples, len(v)))].mean(axis=1)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2], method="inverted_cdf")
    return float(low), float(high)


def interval_text(low: float, high: float, runs: int, digits: int = 3) -> str:
    """``"0.812 to 0.903"``, or why there is no interval (fewer than :data:`MIN_RUNS` values)."""
    runs = int(runs)
    if runs < MIN_RUNS or low != low or high != high:
        return f"not meaningful with {runs} run{'s' if runs != 1 else ''} (needs {MIN_RUNS})"
    return f"{low:.{digits}f} to {high:.{digits}f}"
