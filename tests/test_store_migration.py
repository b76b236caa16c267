"""A results store written by the release before issue 12 (tests/data/release_runs.db, made from
tests/data/release_sweep.toml at commit 63dbcd4) opens, loads and resumes with today's code."""

import shutil
from pathlib import Path

from initlab import results as st
from initlab.config import run_id
from initlab import sweep as sw

DATA = Path(__file__).parent / "data"


def test_a_store_from_the_last_release_loads_and_resumes(tmp_path):
    db = tmp_path / "runs.db"
    shutil.copy(DATA / "release_runs.db", db)
    before = st.load(db)
    assert len(before) == 8 and set(before["seed"]) == {0, 1}
    sweep = sw.from_toml(DATA / "release_sweep.toml")
    ids = {run_id(r) for r in sweep.runs()}
    assert ids == set(before["run_id"]), "today's run ids must name the runs the release stored"
    sweep.seeds = range(3)
    summary = sw.run(sweep, db)
    assert (summary["skipped"], summary["trained"]) == (8, 4)
    after = st.load(db)
    assert len(after) == 12 and set(after["seed"]) == {0, 1, 2}
    old = before.set_index("run_id")["test_accuracy"]
    assert after.set_index("run_id").loc[old.index, "test_accuracy"].equals(old)
