"""A results store read as a pandas DataFrame (:func:`load`), summarized across seeds
(:func:`summarize`) and exported (:func:`export`): what the ``results`` command, the sweep page and
``initlab.load`` show. Reading never trains and never writes the store.
"""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import InitlabError
from .metrics import MIN_RUNS, mean_interval, null_diverged_accuracy, reaches, steps_to, wilson
from .schemes import label_of
from .store import COLUMNS, GRID_DTYPE, METRICS, Store

#: The config columns that name a cell of a sweep; seeds vary within a cell.
AXES = ("scheme", "dataset", "n", "noise", "data_seed", "depth", "width", "activation", "optimizer", "lr",
        "weight_decay", "steps", "batch_size")


def _frame_row(r: dict) -> dict:
    """One stored row as :func:`load`'s DataFrame has it."""
    config = json.loads(r.pop("config"))
    spec = config.get("scheme", {"name": "?", "params": {}})
    flat = {k: v for k, v in config.items() if k != "scheme"}
    flat.update({"scheme": label_of(spec), "scheme_name": spec["name"]})
    flat.update({f"param_{k}": v for k, v in spec["params"].items()})
    blob, shape = r.pop("grid"), r.pop("grid_shape")
    grid = None if blob is None else np.frombuffer(blob, dtype=GRID_DTYPE).reshape(json.loads(shape)).astype(float)
    extent = r.pop("grid_extent")
    history = json.loads(r.pop("history"))
    if r["diverged"]:  # its predictions come from NaN or infinite outputs: no accuracy
        r.update(train_accuracy=None, test_accuracy=None)
        history = null_diverged_accuracy(history, r["diverged_step"])
    return {**r, **flat, "diverged": bool(r["diverged"]), "config": config, "history": history,
            "grid": grid, "grid_extent": None if extent is None else json.loads(extent)}


def load(path: str | Path):
    """Read a results store as a pandas DataFrame, one row per run.

    Columns: ``run_id``, ``sweep``, ``status``, the config's fields (``scheme`` as a label such as
    ``normal(std=0.01)``, ``scheme_name``, one ``param_<name>`` column per scheme parameter, ``dataset``,
    ``depth``, ``width``, ``lr``, ``seed`` ...), the final metrics, ``diverged``, ``diverged_step``,
    ``seconds``, the versions, and ``config``, ``history`` (dicts) and ``grid`` (2-D array or None).
    A diverged run has no accuracy: NaN in its final ones, None in its history from the step it
    diverged."""
    import pandas as pd

    path = Path(path)
    if path.is_dir():
        path = path / "runs.db"
    with Store(path, readonly=True) as store:
        if not store.version:
            raise InitlabError(f"'{path}' holds no runs yet (an empty database): run a sweep into it first.")
        try:
            cur = store.db.execute(f"SELECT {', '.join(COLUMNS)} FROM runs ORDER BY rowid")
            names = [d[0] for d in cur.description]
            raw = [dict(zip(names, r)) for r in cur.fetchall()]
        except sqlite3.Error as e:
            raise store.error(e) from None
    try:
        rows = [_frame_row(r) for r in raw]
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise InitlabError(f"'{path}' holds a run that cannot be read ({type(e).__name__}: {e}): "
                           f"not a results store written by initlab.") from None
    df = pd.DataFrame(rows)
    if not df.empty and "diverged_step" in df:
        df["diverged_step"] = df["diverged_step"].astype("Int64")
    return df


# --------------------------------------------------------------------------------------------------
# summaries across seeds

def swept_axes(df) -> list[str]:
    """The config columns (of :data:`AXES`) that take more than one value in the store, seeds aside."""
    return [a for a in AXES if a in df and len({str(v) for v in df[a].tolist()}) > 1]


def summarize(df, by: Sequence[str] | None = None, metric: str = "test_accuracy", threshold: float = 0.9):
    """One row per cell (the runs that differ only in seed): ``runs``; ``measured`` (the runs with a
    value of ``metric``: a diverged run has no accuracy); ``mean`` and ``std`` of ``metric``, ``ci_low``
    and ``ci_high`` (a 95% percentile-bootstrap interval of the mean, see :func:`mean_interval`: NaN
    below :data:`MIN_RUNS` values); ``success_rate`` (the share of runs whose test accuracy
    :func:`reaches` ``threshold``; a diverged run failed) with ``success_low`` and ``success_high`` (its
    95% Wilson interval, NaN below :data:`MIN_RUNS` runs); ``steps_to_threshold`` (the mean first step
    at which the successful runs reached it) and ``diverged`` (the share that diverged).

    ``by`` defaults to every swept axis (see :data:`AXES`) that the DataFrame has."""
    import pandas as pd

    if df.empty:
        raise InitlabError("the store holds no runs yet.")
    if metric not in df:
        raise InitlabError(f"unknown metric '{metric}'; use one of {', '.join(METRICS)}.")
    by = [c for c in (by or AXES) if c in df]
    out = []
    for key, g in df.groupby(by, dropna=False, sort=True):
        values = g[metric].astype(float).dropna()
        n = len(values)
        ci_low, ci_high = mean_interval(values)
        reached = [s for s in (steps_to(h, threshold) for h in g["history"]) if s is not None]
        successes = sum(reaches(v, threshold) for v in g["test_accuracy"])
        success_low, success_high = wilson(successes, len(g)) if len(g) >= MIN_RUNS else (math.nan, math.nan)
        out.append({**dict(zip(by, key if isinstance(key, tuple) else (key,))), "runs": len(g), "measured": n,
                    "mean": values.mean() if n else math.nan, "std": values.std(ddof=1) if n > 1 else math.nan,
                    "ci_low": ci_low, "ci_high": ci_high, "success_rate": successes / len(g),
                    "success_low": success_low, "success_high": success_high,
                    "steps_to_threshold": float(np.mean(reached)) if reached else math.nan,
                    "diverged": g["diverged"].mean()})
    return pd.DataFrame(out)


def export(df, path: str | Path, fmt: str | None = None) -> Path:
    """Write ``df`` to ``path`` as ``fmt`` ("csv" or "parquet"; by default by ``path``'s suffix);
    dict and array columns become JSON text."""
    path = Path(path)
    fmt = fmt or ("parquet" if path.suffix == ".parquet" else "csv")
    if fmt not in ("csv", "parquet"):
        raise InitlabError(f"an export is csv or parquet; got {fmt!r}.")
    flat = df.copy()
    for col in ("config", "history", "grid", "grid_extent"):
        if col in flat:
            flat[col] = [None if v is None else json.dumps(v.tolist() if isinstance(v, np.ndarray) else v)
                         for v in flat[col]]
    if fmt == "parquet":
        try:
            flat.to_parquet(path, index=False)
        except ImportError:
            raise InitlabError("--parquet needs pyarrow: pip install 'initlab[parquet]'.")
    else:
        flat.to_csv(path, index=False)
    return path
