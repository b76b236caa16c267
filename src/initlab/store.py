"""The results store: one SQLite file (standard library) with one row per finished run.

A run is identified by a hash of its canonical JSON config, so the same run always has the same id
and a rerun of a sweep can skip what is already stored. Rows are written in one transaction per
group of runs: an interrupted sweep (Ctrl-C, ``kill -9``) leaves whole groups or nothing, never a
partial row. :func:`load` reads a store back as a pandas DataFrame, one row per run;
:func:`summarize` reduces it across seeds.

The file is in WAL mode, so a reader (a notebook holding :func:`load`'s connection, a ``sqlite3``
shell) never blocks a sweep's commits. A store names itself in its ``initlab`` table (format and
schema version); reading opens the file read-only (``mode=ro``) and refuses anything that is not a
store, so initlab never writes into someone else's database. Sweeps that share a store claim each
group with a lease row (holder, pid, host, expiry) so that no group is trained twice.

>>> import initlab
>>> df = initlab.load("initlab-out/sweep/runs.db")             # doctest: +SKIP
>>> initlab.store.summarize(df, threshold=0.9)                  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import math
import os
import socket
import sqlite3
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .config import canonical, run_id
from .outputs import STORE_FORMAT, STORE_VERSION
from .errors import InitlabError

RUNS = """
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
META = """
-- what the file is: format, schema_version
CREATE TABLE IF NOT EXISTS initlab (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS leases (
    group_key TEXT PRIMARY KEY,   -- hash of the group's run ids
    holder TEXT NOT NULL,         -- the sweep that trains it (one id per sweep.run call)
    pid INTEGER NOT NULL, host TEXT NOT NULL,
    expires REAL NOT NULL         -- unix time; the holder's heartbeat pushes it on
);
"""
SCHEMA = RUNS + META
#: What the ``initlab`` table says of a store. Version 1 is the runs table alone (initlab before the
#: metadata table): read as it is, migrated when a sweep writes to it.
FORMAT, SCHEMA_VERSION = STORE_FORMAT, STORE_VERSION  # the format's name and version: initlab.outputs
#: Seconds a connection waits for another's write lock before SQLite gives up (then a write retries).
BUSY_TIMEOUT = 10.0
#: Attempts at a group's transaction before its rows go to a side file (see :meth:`Store.keep`).
WRITE_ATTEMPTS = 3
#: Seconds a lease lasts without a heartbeat (a holder on another host that died frees it then).
LEASE_SECONDS = 60.0
METRICS = ("train_loss", "test_loss", "train_accuracy", "test_accuracy")
#: The precision of the stored probability thumbnails.
GRID_DTYPE = np.float16
def _finite(v):
    return v if not isinstance(v, float) or math.isfinite(v) else None



HOST = socket.gethostname()


def group_key(run_ids: Iterable[str]) -> str:
    """The lease name of a group: a hash of its run ids (in any order)."""
    return hashlib.sha256(",".join(sorted(run_ids)).encode()).hexdigest()[:16]


def _columns(script: str) -> tuple[str, ...]:
    db = sqlite3.connect(":memory:")
    db.executescript(script)
    return tuple(r[1] for r in db.execute("PRAGMA table_info(runs)"))


#: The columns of the runs table, in order.
COLUMNS = _columns(RUNS)


def _busy(e: sqlite3.Error) -> bool:
    return isinstance(e, sqlite3.OperationalError) and ("locked" in str(e) or "busy" in str(e))


def _alive(pid: int, host: str, expires: float) -> bool:
    """Whether a lease's holder may still be training: not expired, and on this host, its process lives."""
    if expires < time.time():
        return False
    if host != HOST:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        pass
    return True


class Store:
    """An open results store (a SQLite file).

    Parameters
    ----------
    path : str or Path
        The database file, e.g. ``initlab-out/<sweep>/runs.db``.
    readonly : bool, default False
        True: open the existing file read-only (``mode=ro``), to read. False: create the store when
        missing, migrate one written by an earlier initlab, import the groups kept in side files.

    Anything that is not a store (another program's database, a damaged file, a store that cannot
    be written to when writing) is an :class:`~initlab.InitlabError` of one line, and the file is
    left as it was.
    """

    def __init__(self, path: str | Path, readonly: bool = False):
        self.path, self.readonly = Path(path), readonly
        if readonly and not self.path.is_file():
            raise InitlabError(f"no results store at '{self.path}'; give the runs.db of a sweep "
                               f"(`initlab sweep ... --out DIR` writes DIR/runs.db).")
        try:
            if readonly:
                self.db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True,
                                          timeout=BUSY_TIMEOUT, isolation_level=None)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None)
        except (OSError, sqlite3.Error) as e:
            raise InitlabError(f"cannot open results store '{self.path}': {e}.") from None
        try:
            self.version = self._identify()
            if not readonly:
                self._prepare()
        except sqlite3.Error as e:
            self.db.close()
            raise self.error(e) from None
        except BaseException:
            self.db.close()
            raise

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    # ---------------------------------------------------------------------------------------------
    # what the file is

    def error(self, e: sqlite3.Error) -> InitlabError:
        """One line for a SQLite error on this store."""
        text = str(e)
        if "file is not a database" in text:
            return InitlabError(f"'{self.path}' is not a SQLite database, so not an initlab results store.")
        if "malformed" in text or "corrupt" in text:
            return InitlabError(f"'{self.path}' is damaged ({text}): it cannot be read as a results store.")
        if "readonly" in text or "read-only" in text:
            return InitlabError(f"the results store '{self.path}' is read-only: nothing can be stored in it; "
                                f"make it writable or give another --out.")
        if _busy(e):
            return InitlabError(f"the results store '{self.path}' stays locked by another program ({text}); "
                                f"try again when it is done.")
        return InitlabError(f"cannot use results store '{self.path}': {text}.")

    def _identify(self) -> int:
        """The store's schema version (1: written before the metadata table; 0: an empty database).
        Raises for a database that is not a store, without writing to it."""
        tables = {name for (name,) in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        foreign = f"'{self.path}' is not an initlab results store (a SQLite database with the tables " \
                  f"{', '.join(sorted(tables))}); initlab leaves it as it is."
        version = 1
        if "initlab" in tables:
            try:
                meta = dict(self.db.execute("SELECT key, value FROM initlab"))
            except sqlite3.OperationalError:
                raise InitlabError(foreign) from None
            if meta.get("format") != FORMAT or not str(meta.get("schema_version", "")).isdigit():
                raise InitlabError(foreign)
            version = int(meta["schema_version"])
            if version > SCHEMA_VERSION:
                raise InitlabError(f"'{self.path}' is a results store of schema {version}, written by a newer "
                                   f"initlab (this one knows up to {SCHEMA_VERSION}): upgrade initlab to use it.")
        if "runs" not in tables:
            if tables:
                raise InitlabError(foreign)
            return 0
        missing = set(COLUMNS) - {r[1] for r in self.db.execute("PRAGMA table_info(runs)")}
        if missing:
            raise InitlabError(f"'{self.path}' is not an initlab results store: its runs table has other columns "
                               f"(no {', '.join(sorted(missing)[:3])}); initlab leaves it as it is.")
        return version

    def _prepare(self) -> None:
        """WAL mode, the tables and the metadata (so a read-only file is refused before any training),
        then the side files of earlier runs."""
        self.db.execute("PRAGMA busy_timeout = 1000")
        try:  # a reader of an old (rollback-journal) store can keep it from switching: then it stays
            self.db.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError:
            pass
        self.db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")

        def create():
            for statement in SCHEMA.split(";\n"):
                if statement.strip():
                    self.db.execute(statement)
            self.db.executemany("INSERT OR REPLACE INTO initlab VALUES (?, ?)",
                                [("format", FORMAT), ("schema_version", str(SCHEMA_VERSION))])
        self._attempt(create)
        self.version = SCHEMA_VERSION
        for path in self.kept_files():
            self._import(path)

    @contextmanager
    def transaction(self):
        """``BEGIN IMMEDIATE`` ... ``COMMIT``: the write lock first, so a transaction never fails midway
        for want of it; rolled back on any error."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise

    def _attempt(self, fn):
        """``fn()`` in a transaction, retried while another connection holds the lock."""
        for attempt in range(WRITE_ATTEMPTS):
            try:
                with self.transaction():
                    return fn()
            except sqlite3.OperationalError as e:
                if not _busy(e) or attempt == WRITE_ATTEMPTS - 1:
                    raise

    def _read(self, sql: str, params: Sequence = ()) -> sqlite3.Cursor:
        try:
            return self.db.execute(sql, params)
        except sqlite3.Error as e:
            raise self.error(e) from None

    # ---------------------------------------------------------------------------------------------
    # runs

    def finished(self) -> set[str]:
        """The ids of every stored run (including those kept in side files, not yet imported)."""
        ids = {r[0] for r in self._read("SELECT run_id FROM runs")} if self.version else set()
        for path in self.kept_files():
            try:
                ids.update(json.loads(path.read_text())["run_ids"])
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise InitlabError(f"cannot read the kept runs in '{path}' ({e}); move it away to go on.") from None
        return ids

    def write(self, records: Iterable[dict], lease: str | None = None) -> int:
        """Store finished runs in ONE transaction; a run already stored is left as it is.

        Each record holds ``config`` (dict), ``result`` (a :class:`~initlab.TrainResult`) and
        optionally ``sweep``, ``grid`` (``{"p", "extent"}``), ``group_seconds``, ``group_size``,
        ``versions`` and ``device``. ``lease``: the group's lease, released in the same transaction.
        Retries while another connection holds the lock; then raises :class:`sqlite3.Error` (see
        :meth:`save`). Returns the number of rows added."""
        return self._insert([self._row(r) for r in records], lease)

    def _insert(self, rows: list[dict], lease: str | None = None) -> int:
        if not rows and lease is None:
            return 0

        def insert():
            before = self.db.total_changes
            if rows:
                sql = f"INSERT OR IGNORE INTO runs ({', '.join(rows[0])}) VALUES ({', '.join('?' * len(rows[0]))})"
                self.db.executemany(sql, [tuple(r.values()) for r in rows])
            added = self.db.total_changes - before
            if lease is not None:
                self.db.execute("DELETE FROM leases WHERE group_key = ?", (lease,))
            return added
        return self._attempt(insert)

    def save(self, records: Iterable[dict], lease: str | None = None) -> Path | None:
        """:meth:`write`, and when the store cannot take them (locked past every retry, a full disk),
        keep the rows in a side file beside it that the next writer imports: a trained group is never
        lost. Returns that file, or None when the rows are in the store."""
        rows = [self._row(r) for r in records]
        try:
            self._insert(rows, lease)
            return None
        except sqlite3.Error:
            return self.keep(rows)

    def kept_files(self) -> list[Path]:
        """The side files of groups that could not be written (see :meth:`save`)."""
        return sorted(self.path.parent.glob(f"{self.path.name}.kept-*.json"))

    def keep(self, rows: list[dict]) -> Path:
        """Write ``rows`` (from :meth:`_row`) to a new side file, atomically."""
        path = self.path.parent / f"{self.path.name}.kept-{uuid.uuid4().hex[:12]}.json"
        data = {"format": FORMAT, "run_ids": [r["run_id"] for r in rows],
                "rows": [{k: {"base64": base64.b64encode(v).decode()} if isinstance(v, bytes) else v
                          for k, v in r.items()} for r in rows]}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)
        return path

    def _import(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text())
            rows = [{k: base64.b64decode(v["base64"]) if isinstance(v, dict) else v for k, v in r.items()}
                    for r in data["rows"]]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise InitlabError(f"cannot import the kept runs in '{path}' ({e}); move it away to go on.") from None
        self._insert(rows)
        path.unlink()

    # ---------------------------------------------------------------------------------------------
    # leases: sweeps sharing a store train each group once

    def claim(self, key: str, run_ids: Sequence[str], holder: str) -> tuple[str, set[str]]:
        """Claim the group ``key`` (runs ``run_ids``) for ``holder``: ``("claimed", missing)`` with the
        ids still to train, ``("stored", set())`` when all are stored, ``("held", missing)`` when a
        live holder (its process running, its lease not expired) trains it."""
        def attempt():
            marks = ", ".join("?" * len(run_ids))
            missing = set(run_ids) - {r[0] for r in self.db.execute(
                f"SELECT run_id FROM runs WHERE run_id IN ({marks})", tuple(run_ids))}
            if not missing:
                return "stored", missing
            row = self.db.execute("SELECT holder, pid, host, expires FROM leases WHERE group_key = ?",
                                  (key,)).fetchone()
            if row and row[0] != holder and _alive(*row[1:]):
                return "held", missing
            self.db.execute("INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?, ?)",
                            (key, holder, os.getpid(), HOST, time.time() + LEASE_SECONDS))
            return "claimed", missing
        try:
            return self._attempt(attempt)
        except sqlite3.Error as e:
            raise self.error(e) from None

    @contextmanager
    def heartbeat(self, holder: str, every: float = LEASE_SECONDS / 4):
        """Keep ``holder``'s leases alive while the block runs (a thread with its own connection);
        release whatever it still holds at the end."""
        import threading

        stop = threading.Event()

        def beat():
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT)
            try:
                while not stop.wait(every):
                    try:
                        with db:
                            db.execute("UPDATE leases SET expires = ? WHERE holder = ?",
                                       (time.time() + LEASE_SECONDS, holder))
                    except sqlite3.Error:
                        pass  # a missed beat: the lease lasts LEASE_SECONDS
            finally:
                db.close()

        thread = threading.Thread(target=beat, name="initlab-lease-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            try:
                self._attempt(lambda: self.db.execute("DELETE FROM leases WHERE holder = ?", (holder,)))
            except sqlite3.Error:
                pass  # they expire, and this process is gone soon

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
