"""The store under readers, foreign files and a second sweep (issue 15): a reader never blocks a
sweep's commits, read commands never write into a database that is not a store, every foreign or
damaged file is one line, and two sweeps on one folder train each run once between them."""

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import initlab
from initlab import InitlabError
from initlab import store as st
from initlab import sweep as sw
from initlab.cli import main
from initlab.store import Store, run_id

TINY = {"depth": [1, 2], "width": 4, "steps": 5, "n": 50, "seeds": 2}  # 4 runs in 2 groups


def tiny_sweep():
    return sw.from_flags(dict(TINY))


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line(result):
    """A refused command: exit code 2, one line, no traceback."""
    text = result.output.strip()
    assert result.exit_code == 2, text
    assert "Traceback" not in text and text.count("\n") == 0, text
    return text


def digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_a_reader_holding_a_transaction_never_blocks_the_sweeps_commits(tmp_path, monkeypatch):
    monkeypatch.setattr(st, "BUSY_TIMEOUT", 1.0)  # a blocked commit would show within seconds
    db = tmp_path / "runs.db"
    Store(db).close()
    reader = sqlite3.connect(db)
    reader.execute("BEGIN")
    assert reader.execute("SELECT COUNT(*) FROM runs").fetchone() == (0,)  # a read transaction, held
    outcome = sw.run(tiny_sweep(), db, group_size=1, thumbnail=0)  # 4 groups: 4 commits under the reader
    assert outcome["trained"] == 4 and outcome["kept"] == []
    assert reader.execute("SELECT COUNT(*) FROM runs").fetchone() == (0,)  # still its snapshot
    reader.execute("COMMIT")
    assert set(initlab.load(db)["run_id"]) == {run_id(c) for c in tiny_sweep().runs()}


def test_a_group_the_store_cannot_take_is_kept_beside_it_and_imported_next_time(tmp_path, monkeypatch):
    monkeypatch.setattr(st, "BUSY_TIMEOUT", 0.1)
    monkeypatch.setattr(st, "WRITE_ATTEMPTS", 2)
    db = tmp_path / "runs.db"
    records = sw.train_group(tiny_sweep().runs()[:2], thumbnail=4)
    with Store(db) as store:
        writer = sqlite3.connect(db, timeout=0)
        writer.execute("BEGIN IMMEDIATE")  # another writer holds the lock past every retry
        side = store.save(records)
        assert side is not None and side.is_file()
        assert {run_id(r["config"]) for r in records} <= store.finished()  # a rerun does not train them
        writer.execute("ROLLBACK")
    with Store(db):  # the next writer imports the side file
        pass
    assert not side.exists() and len(initlab.load(db)) == 2
    assert initlab.load(db)["grid"].iloc[0].shape == (4, 4)


def foreign(path, sql="CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT); INSERT INTO notes VALUES (1, 'mine')"):
    db = sqlite3.connect(path)
    db.executescript(sql)
    db.commit()
    db.close()
    return path


def test_read_commands_leave_a_foreign_database_as_it_was(tmp_path):
    other = foreign(tmp_path / "other.db")
    folder = tmp_path / "sweep"
    folder.mkdir()
    inside = foreign(folder / "runs.db")
    before = digest(other), digest(inside)
    with pytest.raises(InitlabError, match="not an initlab results store"):
        initlab.load(other)
    for args in (["results", other], ["report", other, "--out", tmp_path / "page.html"],
                 ["sweep", "--depth", "1", "--out", folder, "--dry-run"],
                 ["sweep", "--depth", "1", "--steps", "5", "--out", folder, "--no-progress"]):  # nor a sweep
        assert "not an initlab results store" in one_line(cli(*args))
    assert (digest(other), digest(inside)) == before
    tables = {r[0] for r in sqlite3.connect(other).execute("SELECT name FROM sqlite_master")}
    assert tables == {"notes"} and not (tmp_path / "page.html").exists()


def damaged(tmp_path, case):
    path = tmp_path / "runs.db"
    if case == "other runs columns":
        foreign(path, "CREATE TABLE runs (id INTEGER, value REAL); INSERT INTO runs VALUES (1, 0.5)")
    elif case == "not sqlite":
        path.write_text("run_id,test_accuracy\nabc,0.9\n")
    elif case == "header then garbage":
        path.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 16)
    elif case == "good pages then garbage":
        sw.run(tiny_sweep(), path, thumbnail=0)
        data = path.read_bytes()
        path.write_bytes(data[:4096] + os.urandom(len(data) - 4096))
    elif case == "empty store":
        Store(path).close()
    elif case == "empty file":
        path.touch()
    elif case == "newer schema":
        Store(path).close()
        db = sqlite3.connect(path)
        with db:
            db.execute("UPDATE initlab SET value = '99' WHERE key = 'schema_version'")
        db.close()
    return path


@pytest.mark.parametrize("case", ["other runs columns", "not sqlite", "header then garbage", "good pages then garbage",
                                  "empty store", "empty file", "newer schema"])
def test_each_damaged_or_foreign_store_is_one_line(tmp_path, case):
    path = damaged(tmp_path, case)
    before = digest(path)
    if case == "empty store":  # a store: the library reads it (no rows); the commands refuse it
        assert initlab.load(path).empty
    else:
        with pytest.raises(InitlabError) as e:
            initlab.load(path)
        assert "\n" not in str(e.value) and str(path) in str(e.value)
    for args in (["results", path], ["report", path, "--out", tmp_path / "page.html"]):
        one_line(cli(*args))
    assert digest(path) == before


@pytest.mark.parametrize("case", ["other runs columns", "not sqlite", "header then garbage", "newer schema"])
def test_a_sweep_refuses_a_foreign_or_damaged_store_before_training(tmp_path, case, monkeypatch):
    path = damaged(tmp_path, case)
    before = digest(path)
    monkeypatch.setattr(sw, "train_group", lambda *a, **k: pytest.fail("trained into a store it cannot use"))
    with pytest.raises(InitlabError):
        sw.run(tiny_sweep(), path)
    assert digest(path) == before


def read_only(path):
    """Make ``path`` read-only even for root (who writes through file modes): immutable, or skip."""
    os.chmod(path, 0o444)
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
            pytest.skip("root, and chattr +i is not available here: no way to make a file read-only")
    return lambda: os.geteuid() == 0 and subprocess.run(["chattr", "-i", str(path)], capture_output=True)


def test_a_read_only_store_is_refused_before_training(tmp_path, monkeypatch):
    db = tmp_path / "runs.db"
    sw.run(tiny_sweep(), db, thumbnail=0)
    before = digest(db)
    undo = read_only(db)
    try:
        monkeypatch.setattr(sw, "train_group", lambda *a, **k: pytest.fail("trained into a read-only store"))
        more = sw.from_flags({**TINY, "seeds": 3})
        with pytest.raises(InitlabError, match="read-only"):
            sw.run(more, db)
        assert "read-only" in one_line(cli("sweep", "--depth", "1,2", "--width", "4", "--steps", "5", "--n", "50",
                                           "--seeds", "3", "--out", tmp_path, "--no-progress"))
        assert len(initlab.load(db)) == 4  # reading still works
    finally:
        undo()
    assert digest(db) == before


def test_a_store_of_an_earlier_initlab_is_read_as_it_is_and_migrated_on_write(tmp_path):
    db = tmp_path / "runs.db"
    old = sqlite3.connect(db)
    old.executescript(st.RUNS)  # the runs table alone, in rollback-journal mode: as initlab wrote it before
    old.close()
    with Store(db) as store:  # fill it, then take the new tables away again
        store.write(sw.train_group(tiny_sweep().runs()[:2], thumbnail=0))
        store.db.executescript("DROP TABLE initlab; DROP TABLE leases; PRAGMA journal_mode = DELETE;")
    before = digest(db)
    assert len(initlab.load(db)) == 2 and digest(db) == before
    assert json.loads(cli("sweep", *sum((["--" + k, str(v) if not isinstance(v, list) else ",".join(map(str, v))]
                                         for k, v in TINY.items()), []),
                          "--out", tmp_path, "--no-progress", "--json").output)["trained"] == 2
    meta = dict(sqlite3.connect(db).execute("SELECT key, value FROM initlab"))
    assert meta == {"format": st.FORMAT, "schema_version": str(st.SCHEMA_VERSION)}


def test_a_lease_is_held_while_its_holder_lives_and_free_when_it_dies_or_expires(tmp_path, monkeypatch):
    db, ids = tmp_path / "runs.db", ["a", "b"]
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with Store(db) as store:
        key = st.group_key(ids)
        assert store.claim(key, ids, "first") == ("claimed", {"a", "b"})
        assert store.claim(key, ids, "second")[0] == "held"  # this process holds it, alive
        store.db.execute("UPDATE leases SET pid = ?", (dead.pid,))
        assert store.claim(key, ids, "second")[0] == "claimed"  # its holder died
        store.db.execute("UPDATE leases SET pid = ?, host = 'elsewhere', expires = 0", (os.getpid(),))
        assert store.claim(key, ids, "third")[0] == "claimed"  # expired, on a host we cannot look at
        store.db.execute("UPDATE leases SET host = 'elsewhere', expires = 1e12")
        assert store.claim(key, ids, "fourth")[0] == "held"


def test_two_sweeps_on_one_folder_train_each_run_once_between_them(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "initlab", "sweep", "--depth", "1,2,3,4", "--width", "4", "--steps", "150",
           "--n", "100", "--seeds", "2", "--out", str(out), "--no-progress", "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outcomes = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, stderr
        outcomes.append(json.loads(stdout))
    assert sum(o["trained"] for o in outcomes) == 8
    assert all(o["trained"] + o["others"] + o["skipped"] == o["total"] == 8 for o in outcomes)
    db = sqlite3.connect(out / "runs.db")
    ids = [r[0] for r in db.execute("SELECT run_id FROM runs")]
    assert len(ids) == len(set(ids)) == 8
    assert db.execute("SELECT COUNT(*) FROM leases").fetchone() == (0,)  # every lease released
