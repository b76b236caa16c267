"""The results store: stable ids, one transaction per write, each run once, load and summarize."""

import math
import sqlite3

import numpy as np
import pytest

import initlab
from initlab import InitlabError
from initlab.metrics import interval_text, mean_interval, reaches, steps_to, wilson
from initlab.results import export, summarize
from initlab.store import Store, canonical, run_id
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
    assert list(df["test_accuracy"])[:2] == [0.9, 0.8]  # the first write of seed 1 is kept
    row = df.iloc[2]
    assert row["status"] == "diverged" and row["diverged_step"] == 20 and math.isnan(row["train_loss"])
    # a diverged run has no accuracy, though training recorded 0.95 at the step it diverged
    assert math.isnan(row["test_accuracy"]) and math.isnan(row["train_accuracy"])
    assert row["history"]["test_accuracy"] == [0.5, 0.85, None]
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


def test_summarize_gives_mean_std_bootstrap_interval_wilson_success_and_steps_to_threshold(tmp_path):
    accs = [0.95, 0.85, 0.92, 0.97]
    with Store(tmp_path / "runs.db") as store:
        store.write([record("xavier_uniform", s, a) for s, a in enumerate(accs)] + [record("default", 0, 0.5)])
    summary = summarize(initlab.load(tmp_path / "runs.db"), threshold=0.9)
    row = summary.set_index("scheme").loc["xavier_uniform"]
    mean, std = np.mean(accs), np.std(accs, ddof=1)
    assert row["runs"] == row["measured"] == 4
    assert row["mean"] == pytest.approx(mean) and row["std"] == pytest.approx(std)
    assert min(accs) <= row["ci_low"] < mean < row["ci_high"] <= max(accs)
    assert row["success_rate"] == 0.75 and row["steps_to_threshold"] == 20
    assert (row["success_low"], row["success_high"]) == pytest.approx(wilson(3, 4))
    lone = summary.set_index("scheme").loc["default"]
    assert lone["runs"] == 1 and math.isnan(lone["ci_low"]) and lone["success_rate"] == 0
    assert math.isnan(lone["success_low"])  # one run: no interval


def test_summary_intervals_stay_inside_0_1_where_a_t_interval_leaves_it(tmp_path):
    """Two or three seeds near 1 (a t-interval of 0.954 +- 0.085 reaches 1.039): the interval is in
    [0, 1]; with 2 seeds there is none, and the text says it is not meaningful."""
    with Store(tmp_path / "runs.db") as store:
        store.write([record("he", s, a) for s, a in enumerate([0.92, 1.0, 0.99])]
                    + [record("wild", s, a) for s, a in enumerate([0.2, 1.0])])
    summary = summarize(initlab.load(tmp_path / "runs.db"), threshold=0.9).set_index("scheme")
    he, wild = summary.loc["he"], summary.loc["wild"]
    assert 0.92 <= he["ci_low"] <= he["ci_high"] <= 1.0
    assert 0 <= he["success_low"] < he["success_high"] == 1.0  # 3 of 3: Wilson's upper end is exactly 1
    assert math.isnan(wild["ci_low"]) and math.isnan(wild["ci_high"]) and math.isnan(wild["success_low"])
    assert interval_text(wild["ci_low"], wild["ci_high"], wild["measured"]) == "not meaningful with 2 runs (needs 3)"
    assert interval_text(he["ci_low"], he["ci_high"], he["measured"]).count(" to ") == 1


def test_a_diverged_run_fails_and_is_left_out_of_the_mean(tmp_path):
    with Store(tmp_path / "runs.db") as store:
        store.write([record("big", 0, 0.95, diverged=True), record("big", 1, 0.91), record("big", 2, 0.93),
                     record("big", 3, 0.89)])
    row = summarize(initlab.load(tmp_path / "runs.db"), threshold=0.9).iloc[0]
    assert row["runs"] == 4 and row["measured"] == 3 and row["mean"] == pytest.approx(0.91)
    assert row["success_rate"] == 0.5 and row["diverged"] == 0.25  # the diverged 0.95 is no success


def test_a_float32_accuracy_shown_as_0_900_reaches_0_9(tmp_path):
    acc = float(np.float32(270) / np.float32(300))  # how train() counts 270 of 300: 0.89999998
    assert acc < 0.9 and f"{acc:.3f}" == "0.900"
    assert reaches(acc, 0.9) and steps_to({"step": [0, 5], "test_accuracy": [0.5, acc]}, 0.9) == 5
    assert not reaches(float(np.float32(269) / np.float32(300)), 0.9)
    assert not reaches(None, 0.5) and not reaches(math.nan, 0.5)
    with Store(tmp_path / "runs.db") as store:
        store.write([record("x", s, acc) for s in range(3)])
    row = summarize(initlab.load(tmp_path / "runs.db"), threshold=0.9).iloc[0]
    assert row["success_rate"] == 1.0 and row["steps_to_threshold"] == 20


def test_wilson_interval_on_known_cases():
    assert wilson(10, 10)[1] == 1.0 and 0 < wilson(10, 10)[0] < 1
    assert wilson(0, 10)[0] == 0.0 and 0 < wilson(0, 10)[1] < 1
    assert wilson(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)  # the textbook value
    for k in range(0, 21):
        low, high = wilson(k, 20)
        assert 0 <= low <= k / 20 <= high <= 1
    with pytest.raises(InitlabError, match="between 0 and n"):
        wilson(11, 10)


def test_bootstrap_interval_is_bounded_reproducible_and_absent_below_three_values():
    values = [0.2, 1.0, 1.0, 0.99, 1.0]
    low, high = mean_interval(values)
    assert 0.2 <= low < np.mean(values) < high <= 1.0
    assert mean_interval(values) == (low, high)  # a fixed seed
    assert all(math.isnan(v) for v in mean_interval([0.9, 1.0]))
    assert all(math.isnan(v) for v in mean_interval([0.9, None, math.nan]))
    # it covers about 95%: the mean of 30 uniform draws, 400 times
    rng = np.random.default_rng(1)
    draws = rng.uniform(size=(400, 30))
    hits = sum(lo <= 0.5 <= hi for lo, hi in map(mean_interval, draws))
    assert 0.88 <= hits / 400 <= 0.99


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
