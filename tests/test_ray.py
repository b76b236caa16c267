"""Sweeps on Ray (issue 7): the same results as in this process, a worker killed mid-task retried with
every run stored once, Ctrl-C keeping what finished, and one clear line when Ray is not installed.

The Ray tests share one small local instance (2 CPUs, no dashboard) that this module starts and
stops; without Ray they are skipped.
"""

import json
import logging
import os
import signal
import sqlite3
import sys
import threading
import time

import pytest

import initlab
from initlab import sweep as sw
from initlab.executors import RayExecutor
from initlab.store import run_id

SMALL = {"scheme": [{"name": "default"}, {"name": "normal", "std": 0.5}], "depth": [1, 2], "width": 4,
         "steps": 20, "n": 100, "optimizer": "adam", "lr": 0.01, "seeds": 2}


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'initlab[ray]'")
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    try:
        yield ray
    finally:
        ray.shutdown()


def stored_ids(db):
    return [r[0] for r in sqlite3.connect(db).execute("SELECT run_id FROM runs")]


def test_ray_gives_the_results_of_the_local_executor(ray_local, tmp_path):
    sweep = sw.from_flags(SMALL)
    local = sw.run(sweep, tmp_path / "local.db", group_size=2)
    seen = []
    remote = sw.run(sweep, tmp_path / "ray.db", group_size=2, executor=RayExecutor(),
                    progress=lambda done, total: seen.append((done, total)))
    assert local["trained"] == remote["trained"] == 8
    assert seen == [(k, 8) for k in (0, 2, 4, 6, 8)]  # one tick per completed task
    assert ray_local.is_initialized()  # a Ray the executor did not start is left running
    a, b = (initlab.load(tmp_path / db).set_index("run_id").sort_index() for db in ("local.db", "ray.db"))
    assert list(a.index) == list(b.index) == sorted(run_id(r) for r in sweep.runs())
    for rid in a.index:
        for metric in ("train_loss", "test_loss", "train_accuracy", "test_accuracy"):
            assert b.at[rid, metric] == pytest.approx(a.at[rid, metric], rel=1e-6, abs=1e-9)
        for key, values in a.at[rid, "history"].items():
            assert b.at[rid, "history"][key] == pytest.approx(values, rel=1e-6, abs=1e-9)
        assert (b.at[rid, "grid"] - a.at[rid, "grid"]).max() < 1e-3
    assert sw.run(sweep, tmp_path / "ray.db", executor=RayExecutor())["skipped"] == 8  # resume as locally


def test_a_worker_killed_mid_task_is_retried_and_every_run_is_stored_once(ray_local, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()

    class FirstToHalfwayHangs(RayExecutor):
        """Every attempt leaves a file; the first task to reach half its steps writes its PID and
        waits there for the test to kill its worker."""

        def map(self, fn, groups, on_progress):
            def task(group, callback=None, marks=str(marks)):
                import os
                import time

                from initlab.store import run_id
                open(os.path.join(marks, f"attempt-{run_id(group[0])}-{os.getpid()}"), "w").close()

                def hang(fraction):
                    if fraction < 0.5:
                        return
                    try:  # only one task claims the part
                        os.close(os.open(os.path.join(marks, "claimed"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                    except FileExistsError:
                        return
                    with open(os.path.join(marks, "victim.tmp"), "w") as f:
                        f.write(str(os.getpid()))
                    os.rename(os.path.join(marks, "victim.tmp"), os.path.join(marks, "victim"))
                    time.sleep(60)

                return fn(group, callback=hang)
            return super().map(task, groups, on_progress)

    killed = []

    def kill_the_victim():
        deadline = time.time() + 60
        while time.time() < deadline and not killed:
            if (marks / "victim").exists():
                pid = int((marks / "victim").read_text())
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.05)

    killer = threading.Thread(target=kill_the_victim, daemon=True)
    killer.start()
    sweep = sw.from_flags({**SMALL, "steps": 40})
    db = tmp_path / "runs.db"
    outcome = sw.run(sweep, db, group_size=2, executor=FirstToHalfwayHangs())
    killer.join(timeout=5)
    assert len(killed) == 1
    with pytest.raises(ProcessLookupError):
        os.kill(killed[0], 0)  # the worker is gone
    attempts = {}
    for f in marks.glob("attempt-*"):
        group = f.name.split("-")[1]
        attempts.setdefault(group, []).append(int(f.name.split("-")[2]))
    assert sorted(len(pids) for pids in attempts.values()) == [1, 1, 1, 2]  # the killed group ran twice
    assert any(killed[0] in pids for pids in attempts.values() if len(pids) == 2)
    ids = stored_ids(db)
    assert outcome["trained"] == len(ids) == len(set(ids)) == 8
    assert set(ids) == {run_id(r) for r in sweep.runs()}


def test_an_interrupted_ray_sweep_keeps_what_finished_and_a_rerun_completes_it(ray_local, tmp_path):
    sweep = sw.from_flags(SMALL)
    db = tmp_path / "runs.db"

    def ctrl_c_after_the_first_task(done, total):
        if done:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sw.run(sweep, db, group_size=2, executor=RayExecutor(), progress=ctrl_c_after_the_first_task)
    assert len(stored_ids(db)) == 2  # the first group, committed; the rest cancelled
    rerun = sw.run(sweep, db, group_size=2, executor=RayExecutor())
    assert rerun["skipped"] == 2 and rerun["trained"] == 6
    ids = stored_ids(db)
    assert len(ids) == len(set(ids)) == 8


def test_cli_sweep_on_ray(ray_local, tmp_path):
    import json

    from click.testing import CliRunner

    from initlab.cli import main

    flags = ["sweep", "--depth", "1", "--width", "4", "--steps", "5", "--n", "50", "--seeds", "3",
             "--out", str(tmp_path), "--executor", "ray", "--no-progress", "--json"]
    done = CliRunner().invoke(main, flags, catch_exceptions=False)
    assert done.exit_code == 0 and json.loads(done.output)["trained"] == 3
    assert len(stored_ids(tmp_path / "runs.db")) == 3
    no_gpu = CliRunner().invoke(main, [*flags, "--device", "cuda"])  # the driver needs none; the cluster does
    assert no_gpu.exit_code == 2 and "the Ray cluster has no GPU" in no_gpu.output


def test_without_ray_the_executor_says_how_to_install_it(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from initlab.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    run = lambda *a: CliRunner().invoke(main, ["sweep", "--depth", "1", "--steps", "2", "--n", "50",  # noqa: E731
                                               "--out", str(tmp_path), "--no-progress", *a])
    bad = run("--executor", "ray")
    assert bad.exit_code == 2 and bad.output.strip().count("\n") == 0
    assert "pip install 'initlab[ray]'" in bad.output
    assert not (tmp_path / "runs.db").exists()
    bad = run("--address", "auto")
    assert bad.exit_code == 2 and "--address is for --executor ray" in bad.output


def test_an_address_nothing_answers_is_one_line_at_once():
    from initlab import InitlabError
    from initlab.executors import _probe

    start = time.perf_counter()
    with pytest.raises(InitlabError, match="no Ray cluster answers at '127.0.0.1:1'"):
        _probe("127.0.0.1:1")
    with pytest.raises(InitlabError, match="HOST:PORT"):
        _probe("head-node")
    assert time.perf_counter() - start < 5  # not Ray's minutes of retries


# --------------------------------------------------------------------------------------------------
# issue 15: a worker that dies on every try, Ray's lines kept off stdout, an interrupted driver.
# Each test runs the CLI as its own process (its own Ray instance), as a user does.

DRIVER = """
import os, signal, sys, time
from initlab import executors, sweep
from initlab.cli import main
mode, marks = sys.argv[1], sys.argv[2]
real = sweep.train_group

def train_group(group, **kw):  # pickled by value: runs on the worker
    import os, signal, time
    if mode == "always" or (mode == "once" and not os.path.exists(os.path.join(marks, "died"))):
        open(os.path.join(marks, "died"), "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    if mode == "hang":
        open(os.path.join(marks, "training"), "w").close()
        time.sleep(300)
    return real(group, **kw)

sweep.train_group = train_group
executors.get = lambda name, address=None: executors.RayExecutor(address, max_retries=1)
sys.argv = ["initlab", *sys.argv[3:]]
main()
"""
CLI_FLAGS = ["sweep", "--depth", "1", "--width", "4", "--steps", "5", "--n", "50", "--seeds", "2",
             "--executor", "ray", "--no-progress", "--json"]


def driver(mode, tmp_path, **kw):
    import subprocess

    pytest.importorskip("ray")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    (tmp_path / "marks").mkdir(exist_ok=True)
    return subprocess.Popen([sys.executable, "-c", DRIVER, mode, str(tmp_path / "marks"), *CLI_FLAGS,
                             "--out", str(tmp_path / "out")], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def test_a_worker_that_dies_on_every_try_ends_the_sweep_with_one_line_naming_the_group(tmp_path):
    proc = driver("always", tmp_path)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 2 and out == ""  # nothing of Ray's on stdout
    assert "Traceback" not in err and "WorkerCrashedError" in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("Error: the group of 2 run(s) with n=50, depth=1, width=4") and "failed: its Ray worker died" \
        in last and "the same command resumes with the rest: " in last and "--executor ray" in last


def test_a_worker_death_that_a_retry_survives_leaves_stdout_json(tmp_path):
    proc = driver("once", tmp_path)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    assert (tmp_path / "marks" / "died").exists()  # a worker did die
    assert json.loads(out)["trained"] == 2


def _descendants(pid):
    """Every process under ``pid`` (from /proc: Ray's raylet, GCS, workers, agents)."""
    children = {}
    for stat in os.listdir("/proc"):
        if stat.isdigit():
            try:
                with open(f"/proc/{stat}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(stat))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_driver_shuts_down_the_ray_it_started(tmp_path, sig):
    proc = driver("hang", tmp_path)
    deadline = time.time() + 180
    while not (tmp_path / "marks" / "training").exists():
        assert time.time() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    ray_processes = _descendants(proc.pid)
    assert ray_processes  # raylet, GCS, a worker
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and out == "" and "Interrupted: 0 of 2 runs are kept" in err
    deadline = time.time() + 15
    while any(_alive(p) for p in ray_processes) and time.time() < deadline:
        time.sleep(0.2)
    assert not [p for p in ray_processes if _alive(p)]
