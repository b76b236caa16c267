"""The results store: stable ids, one transaction per write, each run once, load and summarize."""

import math
import sqlite3

import numpy as np
import pytest

import initlab
from initlab import InitlabError
from initlab.store import Store, canonical, export, run_id, summarize, t975
from initlab.train import TrainResult


def result(acc, seed=0, diverged=False):
    history = {"step": [0, 10, 20], "train_loss": [0.7, 0.5, float("nan") if diverged else 0.3],
               "train_accuracy": [0.5, 0.8, acc], "test_loss": [0.7, 0.5, 0.4],
               "test_accuracy": [0.5, min(acc, 0.85), acc]}
    final = {k: v[-1] for k, v in history.items() if k != "step"}
    return TrainResult(history, final, diverged, 20 if diverged else None, {"seed": seed}, 0.1)


def record(scheme, seed, acc, **kw):
    config = {"scheme": {"name": scheme, "params": {}}, "depth": 2, "width": 8, "lr": 0.1, "seed": seed}
    return {"config": config, "result": result(acc, seed, **kw), "sweep": "s",
            "grid": {"p": np.full((4, 4), 0.25), "extent": [-1, 1, -2, 2]}}


def test_run_id_is_stable_and_ignores_key_order():
    a = {"lr": 0.1, "scheme": {"name": "normal", "params": {"std": 0.01}}, "seed": 1}
    b = {"seed": 1, "scheme": {"params": {"std": 0.01}, "name": "normal"}, "lr": 0.1}
    assert canonical(a) == canonical(b) and run_id(a) == run_id(b)
    assert run_id(a) != run_id({**a, "seed": 2}) and len(run_id(a)) == 16


def test_write_stores_each_run_once_and_load_reads_it_back(tmp_path):
    db = tmp_path / "runs.db"
    with Store(db) as store:
        assert store.write([record("default", 0, 0.9), record("default", 1, 0.8)]) == 2
        assert store.write([record("default", 1, 0.1), record("default", 2, 0.95, diverged=True)]) == 1
        assert len(store.finished()) == 3
    df = initlab.load(db)
    assert len(df) == 3 and df["run_id"].is_unique
    assert list(df["test_accuracy"]) == [0.9, 0.8, 0.95]  # the first write of seed 1 is kept
    row = df.iloc[2]
    assert row["status"] == "diverged" and row["diverged_step"] == 20 and math.isnan(row["train_loss"])
    assert row["scheme"] == "default" and row["depth"] == 2 and row["seed"] == 2
    assert row["history"]["step"] == [0, 10, 20] and row["history"]["train_loss"][-1] is None
    assert row["grid"].shape == (4, 4) and row["grid_extent"] == [-1, 1, -2, 2]
    assert initlab.load(tmp_path).shape == df.shape  # the folder works too


def test_a_failed_write_leaves_nothing(tmp_path):
    db = tmp_path / "runs.db"
    bad = record("default", 1, 0.5)
    bad["result"] = None  # breaks while the rows are made: nothing of the batch may land
    with Store(db) as store, pytest.raises(Exception):
        store.write([record("default", 0, 0.9), bad])
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0


def test_summarize_gives_mean_std_t_interval_success_rate_and_steps_to_threshold(tmp_path):
    accs = [0.95, 0.85, 0.92, 0.97]
    with Store(tmp_path / "runs.db") as store:
        store.write([record("xavier_uniform", s, a) for s, a in enumerate(accs)] + [record("default", 0, 0.5)])
    summary = summarize(initlab.load(tmp_path / "runs.db"), threshold=0.9)
    row = summary.set_index("scheme").loc["xavier_uniform"]
    mean, std = np.mean(accs), np.std(accs, ddof=1)
    assert row["runs"] == 4 and row["mean"] == pytest.approx(mean) and row["std"] == pytest.approx(std)
    assert row["ci_high"] - mean == pytest.approx(3.182 * std / 2)
    assert row["success_rate"] == 0.75 and row["steps_to_threshold"] == 20
    lone = summary.set_index("scheme").loc["default"]
    assert lone["runs"] == 1 and math.isnan(lone["ci_low"]) and lone["success_rate"] == 0


def test_t_quantile_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 4, 29, 30, 31, 60, 200, 5000):
        assert t975(df) == pytest.approx(stats.t.ppf(0.975, df), abs=1e-3)


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_export(tmp_path, suffix):
    if suffix == "parquet":
        pytest.importorskip("pyarrow")
    with Store(tmp_path / "runs.db") as store:
        store.write([record("default", 0, 0.9)])
    path = export(initlab.load(tmp_path / "runs.db"), tmp_path / f"runs.{suffix}")
    import pandas as pd
    back = pd.read_csv(path) if suffix == "csv" else pd.read_parquet(path)
    assert back["test_accuracy"].tolist() == [0.9] and "history" in back


def test_missing_store_is_a_clear_error(tmp_path):
    with pytest.raises(InitlabError, match="no results store"):
        initlab.load(tmp_path / "nothing.db")
    with pytest.raises(InitlabError, match="no runs"):
        summarize(initlab.load(Store(tmp_path / "empty.db").path))
