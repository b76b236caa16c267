"""One experiment: a config -> data + model -> scheme applied -> trained -> a record; and the
record's storage in an output folder (``results.json`` with every number, ``arrays.npz`` with the
probability grids), which plots and reports read back without training.
"""

from __future__ import annotations

import math
import platform
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from ._version import __version__
from .config import RunConfig
from .datasets import Dataset
from .outputs import read_results, write_results
from .models import mlp
from .init import initialize
from .report.text import TEXT
from .schemes import label_of, parse_spec
from .metrics import null_diverged_accuracy, steps_to
from .symmetry import effective_width
from .train import DTYPES, probability_grid, resolve_device, train


#: Below this spread (max - min) of p an output is a weak signal; contour lines 0.1 ... 0.9 mostly absent.
WEAK_SPREAD = 0.1


def run_scheme(config: RunConfig, scheme: Any, data: Dataset | None = None,
               callback: Callable[[int, torch.nn.Module], None] | None = None,
               label: str | None = None) -> dict:
    """Build the config's MLP, initialize it with ``scheme``, train it and return its record:
    the summary row, the history, the manifest and the probability grid.

    A diverged model has no accuracy (None, with ``diverged_step``) and no ``output_signal``; for
    the others ``output_signal`` (see :func:`output_signal`) judges its probabilities over the data."""
    spec = parse_spec(scheme)
    data = data or config.data()
    device = resolve_device(config.device)
    model = mlp(data.X_train.shape[1], config.hidden, 1, config.activation).to(device, DTYPES[config.dtype])
    manifest = initialize(model, spec, seed=config.seed, inputs=data.X_train)
    result = train(model, data, **{**config.train_kwargs(), "device": device}, callback=callback)
    widths = effective_width(model, data.X_train)
    points = torch.cat([data.X_train, data.X_test])
    grid = probability_grid(model, points)
    diverged = result.diverged
    if diverged:  # the parameters are NaN or inf: no probabilities, no neurons to count, no accuracy
        grid["p"][:] = np.nan
    else:
        with torch.no_grad():
            p = torch.sigmoid(model(points.to(device, DTYPES[config.dtype])).reshape(-1)).cpu().double().numpy()
    row = {"scheme": label or label_of(spec), "spec": spec,
           "train_accuracy": None if diverged else result.final["train_accuracy"],
           "test_accuracy": None if diverged else result.final["test_accuracy"],
           "final_loss": result.final["train_loss"],
           "steps_to_90": steps_to(null_diverged_accuracy(result.history, result.diverged_step), 0.9),
           "output_signal": None if diverged else output_signal(p, config.dtype),
           "effective_width": None if diverged else [w.effective_width for w in widths],
           "width": [w.width for w in widths],
           "diverged": diverged, "diverged_step": result.diverged_step}
    return {"row": row, "result": result, "manifest": manifest, "grid": grid, "widths": widths}


def output_signal(p, dtype: str = "float32", stored_as: str | None = None) -> dict | None:
    """How much a model's probability ``p`` varies over some points (the data, or a grid).

    ``signal`` is ``"none"`` when the spread (largest minus smallest) is within the square root of
    ``dtype``'s machine epsilon (3.5e-4 in float32, 1.5e-8 in float64): the output is flat, what
    differs between points is at the level of accumulated rounding, and an accuracy it reaches says
    nothing about the data; ``"weak"`` below :data:`WEAK_SPREAD`; ``"clear"`` otherwise. ``stored_as``:
    the precision ``p`` was kept in when coarser (a float16 thumbnail), whose step is tolerated too.
    Returns ``{"signal", "p_min", "p_max"}``, or None when ``p`` holds NaN or inf (a diverged model).

    >>> output_signal([0.5 - 9e-8, 0.5 + 9e-8])["signal"], output_signal([0.1, 0.9])["signal"]
    ('none', 'clear')
    """
    p = np.asarray(p, dtype=float)
    if p.size == 0 or not np.isfinite(p).all():
        return None
    low, high = float(p.min()), float(p.max())
    flat = math.sqrt(float(np.finfo(np.dtype(dtype)).eps))
    if stored_as is not None:
        flat = max(flat, float(np.finfo(stored_as).eps))  # two steps of the stored values on [0.5, 1)
    signal = "none" if high - low <= flat else "weak" if high - low < WEAK_SPREAD else "clear"
    return {"signal": signal, "p_min": low, "p_max": high}


def signal_text(signal: dict, where: str = "data", words: dict | None = None, number: Callable = str) -> str:
    """``"p = 0.500 ± 9e-08 over the data: no signal"`` for an :func:`output_signal`; ``where`` is
    ``"data"`` or ``"grid"``; ``words`` a language of :data:`initlab.report.text.TEXT` (English by
    default); ``number`` wraps the formula (the page keeps it left to right)."""
    words = words or TEXT["en"]
    mid, half = (signal["p_max"] + signal["p_min"]) / 2, (signal["p_max"] - signal["p_min"]) / 2
    formula = number(f"p = {mid:.3f} \u00b1 {half:.1g}")
    return words[f"signal_{where}"].format(p=formula, verdict=words["signal"][signal["signal"]])


def accuracy_text(row, split: str = "test", digits: int = 3, words: dict | None = None,
                  number: Callable = str) -> str:
    """A run's accuracy as the table, the figures and the page show it: ``"0.912"``; ``"n/a (diverged at
    step 12)"`` for a diverged run (whatever number it holds); ``"0.780 (flat output: no signal)"`` when
    its :func:`output_signal` is ``"none"``; ``"n/a"`` when there is none. ``row`` is a result row (a dict
    or a pandas row); ``words`` a language of :data:`initlab.report.text.TEXT`; ``number`` wraps the
    numbers (the page keeps them left to right)."""
    words = (words or TEXT["en"])["accuracy"]
    if row.get("diverged"):
        return words["diverged"].format(step=number(row.get("diverged_step")))
    value = row.get(f"{split}_accuracy")
    if value is None or value != value:
        return words["missing"]
    text = number(f"{float(value):.{digits}f}")
    signal = row.get("output_signal")
    return words["flat"].format(acc=text) if isinstance(signal, dict) and signal.get("signal") == "none" else text


def linear_baseline(data: Dataset) -> float:
    """Test accuracy of a logistic regression (a straight line) on the same data."""
    clf = LogisticRegression().fit(data.X_train.numpy(), data.y_train.numpy())
    return float(clf.score(data.X_test.numpy(), data.y_test.numpy()))


def environment() -> dict:
    return {"initlab": __version__, "torch": torch.__version__, "python": platform.python_version()}


def save(out: str | Path, config: RunConfig, records: list[dict], data: Dataset,
         command: str = "", extra: dict | None = None) -> Path:
    """Write ``results.json`` and ``arrays.npz`` for ``records`` into folder ``out``
    (:func:`initlab.outputs.write_results`, the format's one writer)."""
    doc = {"config": {k: v for k, v in config.to_dict().items() if k != "scheme"}, "command": command,
           "environment": environment(), "results": [r["row"] for r in records],
           "histories": {r["row"]["scheme"]: null_diverged_accuracy(r["result"].to_dict()["history"],
                                                                     r["row"]["diverged_step"]) for r in records},
           "manifests": {r["row"]["scheme"]: r["manifest"].to_dict() for r in records},
           "tracked": {r["row"]["scheme"]: r["result"].to_dict()["tracked"] for r in records
                       if r["result"].tracked},
           **(extra or {})}
    arrays = {"X_train": data.X_train.numpy(), "y_train": data.y_train.numpy(),
              "X_test": data.X_test.numpy(), "y_test": data.y_test.numpy()}
    for i, r in enumerate(records):
        arrays[f"p_{i}"] = r["grid"]["p"]
        arrays[f"xx_{i}"], arrays[f"yy_{i}"] = r["grid"]["xx"], r["grid"]["yy"]
    return write_results(out, doc, arrays)


#: Read back what :func:`save` wrote (the format's one reader, :func:`initlab.outputs.read_results`).
load = read_results
