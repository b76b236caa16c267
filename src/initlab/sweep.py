"""Sweeps: the runs of a grid (:mod:`initlab.grid`) grouped by architecture, trained with
:func:`~initlab.train_many`, stored in a results store as each group finishes, and resumed where
they stopped. The grid's names (``Sweep``, ``from_toml``, ``from_flags``, ``estimate`` ...) are
importable from here too.
"""

from __future__ import annotations

import time
import uuid
from contextlib import closing
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from .datasets import make
from .ensemble import train_many
from .errors import InitlabError
from .executors import LocalExecutor, RayExecutor, TaskFailed
from .experiment import environment
from .grid import (DATA_KEYS, DEFAULTS, DTYPE_BYTES, GROUP_KEYS, MAX_AXIS, MAX_MEMORY_GB, MAX_RUNS,  # noqa: F401
                   RUN_BYTES, TOP_KEYS, Sweep, build, check_size, estimate, from_flags, from_toml, size_text)
from .store import Store, group_key, run_id
from .train import probability_grid

#: Seconds between looks at groups that another sweep on the same store is training.
CLAIM_POLL = 0.5


# --------------------------------------------------------------------------------------------------
# running

def groups(configs: list[dict], size: int = 256) -> list[list[dict]]:
    """Runs that share everything but scheme, seed and learning rate, in chunks of at most ``size``."""
    by_key: dict[tuple, list[dict]] = {}
    for config in configs:
        by_key.setdefault(tuple(config.get(k, DEFAULTS[k]) for k in GROUP_KEYS), []).append(config)
    return [runs[i:i + size] for runs in by_key.values() for i in range(0, len(runs), size)]


def train_group(group: list[dict], *, sweep: str = "sweep", device: str | None = None, thumbnail: int = 32,
                callback: Callable[[float], None] | None = None) -> list[dict]:
    """Train one group of same-architecture runs with :func:`~initlab.train_many`.

    Returns the records :meth:`initlab.store.Store.write` takes, as plain data (results, numbers,
    arrays; no models, no database), so that a worker on another machine can return them.
    ``callback(fraction)`` follows the training, from 0 to 1.
    """
    datasets: dict[tuple, Any] = {}
    per_run = []
    for c in group:
        key = (c["dataset"], c["n"], c["noise"], c["data_seed"])
        if key not in datasets:
            datasets[key] = make(c["dataset"], n=c["n"], noise=c["noise"], seed=c["data_seed"])
        per_run.append(datasets[key])
    data = per_run[0] if len(datasets) == 1 else per_run
    first = group[0]
    steps = max(first["steps"], 1)
    t0 = time.perf_counter()
    results, models = train_many(
        data, [{"scheme": c["scheme"], "seed": c["seed"], "lr": c["lr"]} for c in group],
        hidden=[first["width"]] * first["depth"], activation=first["activation"], steps=first["steps"],
        lr=first["lr"], optimizer=first["optimizer"], batch_size=first["batch_size"], device=device,
        **({} if first.get("weight_decay") is None else {"weight_decay": first["weight_decay"]}),
        eval_every=first["eval_every"], dtype=first["dtype"],
        callback=(lambda s: callback(s / steps)) if callback else None, return_models=True)
    seconds = time.perf_counter() - t0
    records = []
    for config, result, model, d in zip(group, results, models, per_run):
        grid = None
        if thumbnail:
            points = torch.cat([d.X_train, d.X_test])
            g = probability_grid(model, points, resolution=thumbnail)
            if result.diverged:
                g["p"][:] = np.nan
            grid = {"p": g["p"], "extent": [float(g["xx"].min()), float(g["xx"].max()),
                                            float(g["yy"].min()), float(g["yy"].max())]}
        records.append({"config": config, "result": result, "sweep": sweep, "grid": grid,
                        "group_seconds": seconds, "group_size": len(group), "versions": environment(),
                        "device": result.config["device"]})
    return records


class GroupFailed(InitlabError):
    """A group that its executor gave up on (a Ray task whose retries are used up); names the group."""


def describe(group: list[dict]) -> str:
    """A group in words: what its runs share, and how many they are."""
    first = group[0]
    value = lambda k: first.get(k, DEFAULTS[k])  # noqa: E731
    shared = ", ".join(f"{k}={'full' if k == 'batch_size' and value(k) is None else value(k)}" for k in GROUP_KEYS)
    return f"the group of {len(group)} run(s) with {shared} (first run {run_id(first)})"


def _naming_failures(completed: Iterator[tuple[list, list]]) -> Iterator[tuple[list, list]]:
    """The executor's results; a group that it gave up on becomes an error that names the group."""
    try:
        yield from completed
    except TaskFailed as e:
        raise GroupFailed(f"{describe(e.group)} failed: {e.reason}. The groups stored so far are kept; the same "
                          f"command resumes with the rest") from None


def run(sweep: Sweep, db: str | Path, *, device: str | None = None, group_size: int = 256,
        thumbnail: int = 32, progress: Callable[[float, int], None] | None = None,
        executor: LocalExecutor | RayExecutor | None = None, max_runs: int | None = None,
        max_memory_gb: float | None = None) -> dict:
    """Train every run of ``sweep`` that ``db`` does not hold yet, one group at a time, storing each
    group in one transaction as it finishes.

    Sweeps started together on one store share the work: each claims a group (a lease in the store,
    freed when its holder dies) before training it, so every run is trained once. A group that the
    store cannot take (locked past every retry) is kept in a side file beside it, imported by the
    next sweep that opens the store.

    Parameters
    ----------
    sweep : Sweep
    db : str or Path
        The results store (created if missing).
    device : {"cpu", "cuda"}, optional
    group_size : int, default 256
        At most this many models are trained as one computation and stored in one transaction.
    thumbnail : int, default 32
        Resolution of the stored probability grid of each run (0: none).
    progress : callable, optional
        ``progress(runs_done, runs_total)``, with fractions while a group trains (locally).
    executor : LocalExecutor or RayExecutor, optional
        Where the groups train (see :mod:`initlab.executors`); default: in this process. Only this
        process writes the store, whatever the executor.
    max_runs, max_memory_gb : optional
        Refuse (:func:`check_size`) before anything is allocated when :func:`estimate` passes these.

    Returns
    -------
    dict
        ``total``, ``skipped`` (stored before it began), ``trained`` (by this call), ``others`` (stored
        meanwhile by another sweep on the same store), ``diverged`` (of those trained here), ``kept``
        (side files holding groups the store could not take), ``seconds``.
    """
    check_size(estimate(sweep, group_size, thumbnail), max_runs, max_memory_gb)
    executor = executor or LocalExecutor()
    executor.connect(device)  # a missing GPU is an error before anything is written
    holder = uuid.uuid4().hex  # this call's name on the leases it takes
    try:
        with Store(db) as store, store.heartbeat(holder):  # a read-only or foreign store fails here
            todo = [c for c in sweep.iter_runs() if run_id(c) not in store.finished()]
            tally = _Tally(sweep.count(), len(todo), progress)
            fn = partial(train_group, sweep=sweep.name, device=device, thumbnail=thumbnail)
            waiting = groups(todo, group_size)
            while waiting:
                waiting = _one_pass(waiting, store, holder, executor, fn, tally)
    finally:
        executor.close()
    return tally.summary()


class _Tally:
    """What a :func:`run` has done so far, told to ``progress`` as it changes."""

    def __init__(self, total: int, todo: int, progress: Callable[[float, int], None] | None):
        self.total, self.skipped, self.progress = total, total - todo, progress
        self.finished, self.trained, self.others, self.diverged = total - todo, 0, 0, 0
        self.kept: list[str] = []
        self.leases: dict[int, str] = {}
        self.start = time.perf_counter()
        self.tell(self.finished)

    def tell(self, done: float) -> None:
        if self.progress:
            self.progress(done, self.total)

    def training(self, group: list, fraction: float) -> None:
        self.tell(self.finished + len(group) * fraction)

    def stored(self, group: list, records: list, side: Path | None) -> None:
        if side is not None:
            self.kept.append(str(side))
        self.finished += len(group)
        self.trained += len(group)
        self.diverged += sum(r["result"].diverged for r in records)
        self.tell(self.finished)

    def summary(self) -> dict:
        return {"total": self.total, "skipped": self.skipped, "trained": self.trained, "others": self.others,
                "diverged": self.diverged, "kept": self.kept, "seconds": time.perf_counter() - self.start}


def _claimed(pending: list, held: list, store: Store, holder: str, tally: _Tally):
    """Each group claimed as the executor takes it; a group that another live sweep holds waits for
    the next pass (in ``held``), one that it stored is counted as its."""
    for group in pending:
        ids = [run_id(c) for c in group]
        state, missing = store.claim(group_key(ids), ids, holder)
        if state == "held":
            held.append(group)
            continue
        rest = [c for c in group if run_id(c) in missing]
        tally.others += len(group) - len(rest)
        tally.finished += len(group) - len(rest)
        if rest:
            tally.leases[id(rest)] = group_key(ids)
            yield rest


def _one_pass(waiting: list, store: Store, holder: str, executor, fn: Callable, tally: _Tally) -> list:
    """Train and store every group of ``waiting`` that no other sweep holds; returns those it holds."""
    held: list = []
    before = tally.trained
    # closing: an interruption (Ctrl-C) cancels what is outstanding; stored groups stay stored
    with closing(executor.map(fn, _claimed(waiting, held, store, holder, tally), tally.training)) as completed:
        for group, records in _naming_failures(completed):
            tally.stored(group, records, store.save(records, lease=tally.leases.pop(id(group), None)))
    if held and tally.trained == before:
        time.sleep(CLAIM_POLL)  # others train these: look again soon
    return held


__all__ = ["CLAIM_POLL", "DATA_KEYS", "DEFAULTS", "DTYPE_BYTES", "GROUP_KEYS", "GroupFailed", "MAX_AXIS",
           "MAX_MEMORY_GB", "MAX_RUNS", "RUN_BYTES", "TOP_KEYS", "Sweep", "build", "check_size", "describe",
           "estimate", "from_flags", "from_toml", "groups", "run", "size_text", "train_group"]
