"""The results store: one SQLite file (standard library) with one row per finished run.

A run is identified by a hash of its canonical JSON config, so the same run always has the same id
and a rerun of a sweep can skip what is already stored. Rows are written in one transaction per
group of runs: an interrupted sweep (Ctrl-C, ``kill -9``) leaves whole groups or nothing, never a
partial row. :func:`load` reads a store back as a pandas DataFrame, one row per run;
:func:`summarize` reduces it across seeds.

>>> import initlab
>>> df = initlab.load("initlab-out/sweep/runs.db")             # doctest: +SKIP
>>> initlab.store.summarize(df, threshold=0.9)                  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import sqlite3
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .errors import InitlabError
from .metrics import (ACCURACY_DTYPE, MIN_RUNS, interval_text, mean_interval, null_diverged_accuracy,  # noqa: F401
                      reaches, steps_to, wilson)

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,      -- hash of the canonical JSON config
    sweep TEXT,
    config TEXT NOT NULL,         -- the canonical JSON config
    status TEXT NOT NULL,         -- 'finished' or 'diverged'
    train_loss REAL, test_loss REAL, train_accuracy REAL, test_accuracy REAL,
    diverged INTEGER NOT NULL, diverged_step INTEGER,
    history TEXT NOT NULL,        -- JSON: step, train_loss, train_accuracy, test_loss, test_accuracy
    grid BLOB, grid_shape TEXT, grid_extent TEXT,   -- probability thumbnail (float16) and its box
    seconds REAL,                 -- the group's training time divided by its models
    group_seconds REAL, group_size INTEGER,
    initlab TEXT, torch TEXT, device TEXT, finished_at TEXT
);
"""
METRICS = ("train_loss", "test_loss", "train_accuracy", "test_accuracy")
#: The config columns that name a cell of a sweep; seeds vary within a cell.
AXES = ("scheme", "dataset", "n", "noise", "data_seed", "depth", "width", "activation", "optimizer", "lr",
        "steps", "batch_size")
#: The precision of the stored probability thumbnails.
GRID_DTYPE = np.float16


def canonical(config: dict) -> str:
    """The canonical JSON of a config: sorted keys, no spaces, so equal configs give equal text."""
    return json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=False)


def run_id(config: dict) -> str:
    """A stable id for a run: the first 16 hex digits of the SHA-256 of its canonical JSON."""
    return hashlib.sha256(canonical(config).encode()).hexdigest()[:16]


def _finite(v):
    return v if not isinstance(v, float) or math.isfinite(v) else None


class Store:
    """An open results store (a SQLite file), created with its table when missing.

    Parameters
    ----------
    path : str or Path
        The database file, e.g. ``initlab-out/<sweep>/runs.db``.
    create : bool, default True
        False: the file must exist (reading).
    """

    def __init__(self, path: str | Path, create: bool = True):
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise InitlabError(f"no results store at '{self.path}'; give the runs.db of a sweep "
                               f"(`initlab sweep ... --out DIR` writes DIR/runs.db).")
        try:
            if create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=30)
            with self.db:
                self.db.executescript(SCHEMA)
        except (OSError, sqlite3.DatabaseError) as e:
            raise InitlabError(f"cannot open results store '{self.path}': {e}.")

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    def finished(self) -> set[str]:
        """The ids of every stored run."""
        return {r[0] for r in self.db.execute("SELECT run_id FROM runs")}

    def write(self, records: Iterable[dict]) -> int:
        """Store finished runs in ONE transaction; a run already stored is left as it is.

        Each record holds ``config`` (dict), ``result`` (a :class:`~initlab.TrainResult`) and
        optionally ``sweep``, ``grid`` (``{"p", "extent"}``), ``group_seconds``, ``group_size``,
        ``versions`` and ``device``. Returns the number of rows added."""
        rows = [self._row(r) for r in records]
        if not rows:
            return 0
        sql = f"INSERT OR IGNORE INTO runs ({', '.join(rows[0])}) VALUES ({', '.join('?' * len(rows[0]))})"
        with self.db:  # commits, or rolls back on any error
            before = self.db.total_changes
            self.db.executemany(sql, [tuple(r.values()) for r in rows])
            return self.db.total_changes - before

    @staticmethod
    def _row(record: dict) -> dict:
        result, config = record["result"], record["config"]
        grid = record.get("grid")
        p = None if grid is None else np.asarray(grid["p"], dtype=GRID_DTYPE)
        versions = record.get("versions", {})
        return {
            "run_id": run_id(config), "sweep": record.get("sweep"), "config": canonical(config),
            "status": "diverged" if result.diverged else "finished",
            **{k: _finite(result.final[k]) for k in METRICS},
            "diverged": int(result.diverged), "diverged_step": result.diverged_step,
            "history": json.dumps(result.to_dict()["history"]),
            "grid": None if p is None else p.tobytes(), "grid_shape": None if p is None else json.dumps(p.shape),
            "grid_extent": None if grid is None else json.dumps([float(v) for v in grid["extent"]]),
            "seconds": result.seconds, "group_seconds": record.get("group_seconds"),
            "group_size": record.get("group_size"), "initlab": versions.get("initlab"),
            "torch": versions.get("torch"), "device": record.get("device"),
            "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }


def _label(spec: dict) -> str:
    params = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in spec["params"].items())
    return f"{spec['name']}({params})" if params else spec["name"]


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
    with Store(path, create=False) as store:
        cur = store.db.execute("SELECT * FROM runs ORDER BY rowid")
        names = [d[0] for d in cur.description]
        raw = [dict(zip(names, r)) for r in cur.fetchall()]
    rows = []
    for r in raw:
        config = json.loads(r.pop("config"))
        spec = config.get("scheme", {"name": "?", "params": {}})
        flat = {k: v for k, v in config.items() if k != "scheme"}
        flat.update({"scheme": _label(spec), "scheme_name": spec["name"]})
        flat.update({f"param_{k}": v for k, v in spec["params"].items()})
        blob, shape = r.pop("grid"), r.pop("grid_shape")
        grid = None if blob is None else np.frombuffer(blob, dtype=GRID_DTYPE).reshape(json.loads(shape)).astype(float)
        extent = r.pop("grid_extent")
        history = json.loads(r.pop("history"))
        if r["diverged"]:  # its predictions come from NaN or infinite outputs: no accuracy
            r.update(train_accuracy=None, test_accuracy=None)
            history = null_diverged_accuracy(history, r["diverged_step"])
        rows.append({**r, **flat, "diverged": bool(r["diverged"]), "config": config, "history": history,
                     "grid": grid, "grid_extent": None if extent is None else json.loads(extent)})
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


def export(df, path: str | Path) -> Path:
    """Write ``df`` as CSV or Parquet (by ``path``'s suffix); dict and array columns become JSON text."""
    path = Path(path)
    flat = df.copy()
    for col in ("config", "history", "grid", "grid_extent"):
        if col in flat:
            flat[col] = [None if v is None else json.dumps(v.tolist() if isinstance(v, np.ndarray) else v)
                         for v in flat[col]]
    if path.suffix == ".parquet":
        try:
            flat.to_parquet(path, index=False)
        except ImportError:
            raise InitlabError("--parquet needs pyarrow: pip install 'initlab[parquet]'.")
    else:
        flat.to_csv(path, index=False)
    return path
