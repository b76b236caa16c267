"""Sweeps: grid expansion, grouping by architecture, bad files named by line and key, resume."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

import initlab
from initlab import InitlabError
from initlab import sweep as sw
from initlab.store import run_id

GOOD = """\
name = "small"
depth = [1, 2]
width = 4
steps = 10
optimizer = "adam"
lr = 0.01
n = 100
seeds = 2

[[scheme]]
name = "default"

[[scheme]]
name = "normal"
std = {log = [0.01, 1.0, 3]}
"""


def write(tmp_path, text, name="sweep.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_file_expands_to_cells_times_seeds(tmp_path):
    sweep = sw.from_toml(write(tmp_path, GOOD))
    assert sweep.name == "small" and sweep.swept() == ["scheme", "depth"]
    assert [s["params"].get("std") for s in sweep.schemes] == [None, 0.01, 0.1, 1.0]
    runs = sweep.runs()
    assert len(runs) == 2 * 4 * 2 and len({run_id(r) for r in runs}) == len(runs)
    assert {r["seed"] for r in runs} == {0, 1} and runs[0]["batch_size"] is None
    groups = sw.groups(runs)
    assert len(groups) == 2 and all(len({r["depth"] for r in g}) == 1 for g in groups)
    assert [len(g) for g in sw.groups(runs, size=5)] == [5, 3, 5, 3]
    noisy = sw.from_flags({"depth": 2, "noise": [0.1, 0.3], "data_seed": [0, 1], "seeds": 2}).runs()
    assert len(sw.groups(noisy)) == 1  # data of one size: one computation


def test_flags_and_a_file_give_the_same_run_ids(tmp_path):
    sweep = sw.from_flags({"depth": [1, 2], "width": 4, "steps": 10, "optimizer": "adam", "lr": 0.01, "n": 100,
                           "seeds": 2, "scheme": [{"name": "default"}, {"name": "normal", "std": [0.01, 0.1, 1]}]})
    assert {run_id(r) for r in sweep.runs()} == {run_id(r) for r in sw.from_toml(write(tmp_path, GOOD)).runs()}


def test_run_trains_stores_and_skips_what_is_done(tmp_path):
    sweep = sw.from_toml(write(tmp_path, GOOD))
    seen = []
    first = sw.run(sweep, tmp_path / "runs.db", progress=lambda done, total: seen.append((done, total)))
    assert first["trained"] == 16 and first["skipped"] == 0 and seen[-1] == (16, 16)
    second = sw.run(sweep, tmp_path / "runs.db")
    assert second["trained"] == 0 and second["skipped"] == 16
    df = initlab.load(tmp_path / "runs.db")
    assert len(df) == 16 and set(df["run_id"]) == {run_id(r) for r in sweep.runs()}
    # a run in the store is the run train_many (and so train) gives for its config
    row = df[(df["scheme"] == "normal(std=0.1)") & (df["depth"] == 2) & (df["seed"] == 1)].iloc[0]
    data = initlab.datasets.make("moons", n=100, noise=0.2, seed=0)
    model = initlab.mlp(2, [4, 4], 1, "relu")
    initlab.initialize(model, "normal", seed=1, std=0.1)
    ref = initlab.train(model, data, steps=10, lr=0.01, optimizer="adam", seed=1)
    assert row["test_accuracy"] == pytest.approx(ref.final["test_accuracy"])
    assert row["train_loss"] == pytest.approx(ref.final["train_loss"], rel=1e-5)
    assert row["grid"].shape == (32, 32) and row["torch"] and row["initlab"]


@pytest.mark.parametrize("text, line, key", [
    ('depth = [1, 2\nwidth = 4\n', 2, None),                   # TOML syntax: where the parser stops
    ('depth = 2\nwidht = 4\n', 2, "widht"),                                   # unknown key
    ('depth = 2\nactivation = "relux"\n', 2, "activation"),                   # unknown value
    ('steps = 10\nlr = [0.1, -1]\n', 2, "lr"),                                # bad number
    ('width = 4.5\n', 1, "width"),
    ('batch_size = "half"\n', 1, "batch_size"),
    ('seeds = 0\n', 1, "seeds"),
    ('noise = {log = [0.1, 1]}\n', 1, "noise"),
    ('depth = 2\n\n[[scheme]]\nname = "default"\n\n[[scheme]]\nname = "normal"\nstd = -1\n', 8, "std"),
    ('depth = 2\n\n[[scheme]]\nname = "normal"\nsdt = 0.1\n', 5, "sdt"),
    ('depth = 2\n\n[[scheme]]\nname = "nromal"\n', 4, "name"),
    ('scheme = ["default", "xavier_unifrom"]\n', 1, "scheme"),
])
def test_a_bad_file_is_rejected_with_its_line_and_key(tmp_path, text, line, key):
    path = write(tmp_path, text)
    with pytest.raises(InitlabError) as err:
        sw.from_toml(path)
    message = str(err.value)
    assert message.startswith(f"{path}:{line}: "), message
    if key:
        assert f"key '{key}'" in message
    assert "\n" not in message


def test_bad_flags_name_the_flag():
    with pytest.raises(InitlabError, match="^--depth: must be a positive integer"):
        sw.from_flags({"depth": [0]})


SLOW = """\
name = "resume"
depth = [1, 2, 3, 4, 5, 6]
width = 8
steps = 400
n = 200
seeds = 3
scheme = ["default", "xavier_uniform"]
"""


def test_a_sweep_killed_midway_resumes_and_holds_each_run_once(tmp_path):
    path = write(tmp_path, SLOW)
    out = tmp_path / "out"
    db = out / "runs.db"
    cmd = [sys.executable, "-m", "initlab", "sweep", str(path), "--out", str(out), "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    rows, deadline = 0, time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if db.exists():
            try:
                rows = sqlite3.connect(db).execute("SELECT COUNT(*) FROM runs").fetchone()[0]
            except sqlite3.OperationalError:
                rows = 0
            if rows:
                break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    total = len(sw.from_toml(path).runs())
    assert 0 < rows < total, f"killed with {rows} of {total} runs stored"
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    ids = [r[0] for r in sqlite3.connect(db).execute("SELECT run_id FROM runs")]
    assert len(ids) == total == len(set(ids))
    assert set(ids) == {run_id(r) for r in sw.from_toml(path).runs()}


def test_cli_sweep_results_and_figures(tmp_path):
    from click.testing import CliRunner

    from initlab.cli import main

    run = lambda *a: CliRunner().invoke(main, list(a), catch_exceptions=False)  # noqa: E731
    flags = ["--scheme", "default,normal", "--param", "std=log:0.1:1:2", "--depth", "1,2", "--width", "4",
             "--steps", "10", "--n", "100", "--seeds", "2", "--out", str(tmp_path)]
    dry = run("sweep", *flags, "--dry-run", "--json")
    assert dry.exit_code == 0 and json.loads(dry.output)["runs"] == 12
    done = run("sweep", *flags, "--no-progress", "--json")
    assert json.loads(done.output)["trained"] == 12
    assert json.loads(run("sweep", *flags, "--no-progress", "--json").output)["skipped"] == 12
    out = run("results", str(tmp_path / "runs.db"), "--json", "--csv", str(tmp_path / "r.csv"),
              "--figures", str(tmp_path / "fig"))
    cells = json.loads(out.stdout)
    assert len(cells) == 6 and {"mean", "ci_low", "ci_high", "success_rate", "steps_to_threshold"} <= set(cells[0])
    assert (tmp_path / "r.csv").is_file()
    assert {p.name for p in (tmp_path / "fig").iterdir()} == {"heatmap.png", "curves.png", "thumbnails.png"}
    # the path given is the path written, whatever its suffix, in the format the flag names
    assert run("results", str(tmp_path / "runs.db"), "--csv", str(tmp_path / "mine.txt")).exit_code == 0
    assert (tmp_path / "mine.txt").read_text().startswith("run_id") and not (tmp_path / "mine.csv").exists()
    # a CSV results wrote is rewritten; a user's file and figures initlab cannot tell as its own need --force
    assert run("results", str(tmp_path / "runs.db"), "--csv", str(tmp_path / "mine.txt")).exit_code == 0
    (tmp_path / "notes.csv").write_text("mine\n")
    refused = run("results", str(tmp_path / "runs.db"), "--csv", str(tmp_path / "notes.csv"))
    assert refused.exit_code == 2 and "--force" in refused.output and (tmp_path / "notes.csv").read_text() == "mine\n"
    again = run("results", str(tmp_path / "runs.db"), "--figures", str(tmp_path / "fig"))
    assert again.exit_code == 2 and "cannot tell" in again.output
    assert run("results", str(tmp_path / "runs.db"), "--figures", str(tmp_path / "fig"), "--force").exit_code == 0
    for args, message in [(["sweep", "--depth", "0"], "--depth"), (["sweep", "--param", "gain=2"], "--param gain"),
                          (["results", str(tmp_path / "none.db")], "no results store")]:
        bad = run(*args)
        assert bad.exit_code == 2 and message in bad.output and bad.output.strip().count("\n") == 0


def test_runs_on_different_data_train_together_and_match_their_solo_runs(tmp_path):
    sweep = sw.from_flags({"depth": 1, "width": 4, "steps": 10, "n": 100, "noise": [0.1, 0.4], "data_seed": [0, 3]})
    assert sw.run(sweep, tmp_path / "runs.db")["trained"] == 4
    df = initlab.load(tmp_path / "runs.db")
    assert df["group_size"].tolist() == [4] * 4
    for _, row in df.iterrows():
        data = initlab.datasets.make("moons", n=100, noise=row["noise"], seed=row["data_seed"])
        model = initlab.mlp(2, [4], 1, "relu")
        initlab.initialize(model, "default", seed=0)
        ref = initlab.train(model, data, steps=10, lr=0.1, seed=0)
        assert row["train_loss"] == pytest.approx(ref.final["train_loss"], rel=1e-5)
