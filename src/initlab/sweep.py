"""Sweeps: a grid of configs expanded into runs, grouped by architecture, trained with
:func:`~initlab.train_many`, stored in a results store, and resumed where they stopped.

A sweep file is TOML; every key but ``name`` and ``seeds`` takes one value or a list (a grid axis),
and a number may also be ``{log = [low, high, count]}`` or ``{linear = [low, high, count]}``::

    name = "depth-vs-scheme"
    dataset = "moons"            # moons, circles, blobs, xor, spiral
    noise = 0.2
    depth = [2, 4, 8]
    width = [16, 32]
    activation = "tanh"
    optimizer = "adam"
    lr = 0.01
    steps = 300
    batch_size = "full"          # or a number
    seeds = 5                    # seeds 0..4, or a list

    [[scheme]]
    name = "default"

    [[scheme]]
    name = "normal"
    std = {log = [0.01, 10.0, 7]}

    [[scheme]]                   # sigma_w^2 on a grid: variance sigma_w^2 / fan_in
    name = "variance_scaling"
    scale = [0.5, 1.0, 2.0]
    distribution = "normal"

``scheme`` may also be a list of names: ``scheme = ["default", "xavier_uniform"]``.
"""

from __future__ import annotations

import itertools
import math
import re
import time
import tomllib
import uuid
from contextlib import closing
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from .datasets import GENERATORS as DATASETS, make
from .ensemble import train_many
from .errors import InitlabError, unknown_name
from .executors import LocalExecutor, RayExecutor, TaskFailed
from .experiment import environment
from .activations import ACTIVATIONS
from .models import mlp
from .init import initialize
from .schemes import parse_spec
from .store import Store, group_key, run_id
from .train import OPTIMIZERS, probability_grid

#: Every axis a sweep can span, with its default (one value).
DEFAULTS: dict[str, Any] = {"dataset": "moons", "n": 1000, "noise": 0.2, "data_seed": 0, "depth": 3,
                            "width": 16, "activation": "relu", "optimizer": "sgd", "lr": 0.1, "steps": 300,
                            "batch_size": None, "eval_every": 10, "dtype": "float32"}
TOP_KEYS = set(DEFAULTS) | {"name", "seeds", "scheme"}
#: What a group shares: runs that differ only in scheme, seed, learning rate and data (of one size)
#: train as one computation.
DATA_KEYS = ("dataset", "noise", "data_seed")
GROUP_KEYS = tuple(k for k in DEFAULTS if k != "lr" and k not in DATA_KEYS)
#: The most values one ``{log|linear = [low, high, count]}`` grid may have (it is a list in memory).
MAX_AXIS = 1_000_000
#: What ``initlab sweep`` refuses unless told otherwise: runs, and estimated gigabytes (see :func:`estimate`).
MAX_RUNS, MAX_MEMORY_GB = 100_000, 4.0
#: Bytes per number of each dtype, and the copies of the parameters each optimizer keeps beside them
#: (SGD's momentum buffer, Adam's two moments); the parameters' gradients are counted apart.
DTYPE_BYTES = {"float32": 4, "float64": 8}
OPTIMIZER_STATES = {"sgd": 1, "adam": 2}
#: Bytes of one expanded run in a list (its config dict, scheme and id): what :func:`run` holds per run.
RUN_BYTES = 2_000
#: Seconds between looks at groups that another sweep on the same store is training.
CLAIM_POLL = 0.5


@dataclass
class Sweep:
    """A grid: the scheme specs, each axis's values, and the seeds."""

    name: str = "sweep"
    schemes: list[dict] = field(default_factory=lambda: [{"name": "default", "params": {}}])
    axes: dict[str, list] = field(default_factory=lambda: {k: [v] for k, v in DEFAULTS.items()})
    seeds: list[int] | range = field(default_factory=lambda: range(1))

    def count(self) -> int:
        """How many runs: the product of the axes' lengths (the grid is not expanded)."""
        return math.prod(len(v) for v in self.axes.values()) * len(self.schemes) * len(self.seeds)

    def iter_cells(self) -> Iterator[dict]:
        """Every config without its seed, in grid order, one at a time."""
        keys = list(self.axes)
        for values in itertools.product(*(self.axes[k] for k in keys)):
            for spec in self.schemes:
                yield {**dict(zip(keys, values)), "scheme": spec}

    def iter_runs(self) -> Iterator[dict]:
        """Every run's full config (a cell and a seed), one at a time; :func:`initlab.store.run_id` names it."""
        for cell in self.iter_cells():
            for seed in self.seeds:
                yield {**cell, "seed": seed}

    def cells(self) -> list[dict]:
        """:meth:`iter_cells` as a list."""
        return list(self.iter_cells())

    def runs(self) -> list[dict]:
        """:meth:`iter_runs` as a list (check :func:`estimate` first: this is the whole grid)."""
        return list(self.iter_runs())

    def swept(self) -> list[str]:
        """The axes with more than one value (``scheme`` when several)."""
        axes = [k for k, v in self.axes.items() if len(v) > 1]
        return (["scheme"] if len(self.schemes) > 1 else []) + axes


# --------------------------------------------------------------------------------------------------
# values and their checks

def _grid(value, fail: Callable[[str], None]) -> list:
    """A value, a list of values, or ``{log|linear = [low, high, count]}`` -> a list."""
    if isinstance(value, dict):
        if len(value) != 1 or next(iter(value)) not in ("log", "linear"):
            fail("a grid is {log = [low, high, count]} or {linear = [low, high, count]}")
        kind, spec = next(iter(value.items()))
        if not (isinstance(spec, list) and len(spec) == 3 and isinstance(spec[2], int) and spec[2] >= 1
                and all(isinstance(v, (int, float)) for v in spec[:2])):
            fail(f"{kind} = [low, high, count] with a whole count >= 1; got {spec!r}")
        low, high, count = spec
        if count > MAX_AXIS:
            fail(f"a grid of at most {MAX_AXIS:,} values; got {count:,}")
        if kind == "log":
            if low <= 0 or high <= 0:
                fail("a log grid needs low > 0 and high > 0")
            return [float(f"{v:.6g}") for v in np.geomspace(low, high, count)]
        return [float(f"{v:.6g}") for v in np.linspace(low, high, count)]
    values = value if isinstance(value, list) else [value]
    if not values:
        fail("an empty list")
    return values


def _number(value):
    """Numbers as floats (``1`` and ``1.0`` are one config), other values as they are."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def _check_axis(key: str, value, fail: Callable[[str], None]):
    """Check and normalize one value of axis ``key``; ``fail(message)`` raises with the location."""
    if key in ("n", "depth", "width", "steps", "data_seed", "eval_every"):
        low = 0 if key in ("data_seed", "steps") else 1
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            fail(f"must be a whole number >= {low}; got {value!r}")
        return value
    if key in ("lr", "noise"):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) \
                or value < 0 or (key == "lr" and value == 0):
            fail(f"must be a {'positive' if key == 'lr' else 'non-negative'} number; got {value!r}")
        return float(value)
    if key == "batch_size":
        if value in ("full", 0, None):
            return None
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            fail(f"must be a whole number >= 1 or \"full\"; got {value!r}")
        return value
    known = {"dataset": DATASETS, "activation": ACTIVATIONS, "optimizer": OPTIMIZERS,
             "dtype": {"float32": 0, "float64": 0}}[key]
    if value not in known:
        fail(str(unknown_name(key, value, known)).rstrip("."))
    return value


def _schemes(entries, fail: Callable[[str, int | None, str | None], None]) -> list[dict]:
    """Scheme specs from a list of names or of ``{name, param = value | list | grid}`` tables."""
    if not isinstance(entries, list):
        entries = [entries]
    specs = []
    for i, entry in enumerate(entries):
        listed = isinstance(entry, str)  # scheme = ["default", ...]: the key at fault is 'scheme'
        if listed:
            entry = {"name": entry}
        if not isinstance(entry, dict) or "name" not in entry:
            fail("each scheme is a name or a [[scheme]] table with a name", i, None)
        params = {k: v for k, v in entry.items() if k != "name"}
        grids = {k: [_number(v) for v in _grid(v, lambda m, k=k: fail(m, i, k))] for k, v in params.items()}
        for values in itertools.product(*grids.values()):
            spec = {"name": entry["name"], "params": dict(zip(grids, values))}
            try:
                specs.append(parse_spec(spec))
                initialize(mlp(2, [2], 1), spec, seed=0)  # checks the values too (std >= 0 ...)
            except InitlabError as e:
                bad = next((k for k in params if f"'{k}'" in str(e) or f"{k}=" in str(e) or f"{k} " in str(e)),
                           "scheme" if listed else "name")
                fail(str(e).rstrip("."), i, bad)
    return specs


def _seeds(value, fail: Callable[[str], None]) -> list[int] | range:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return range(value)  # not a list: a count of 10,000,000 is counted, not allocated
    if isinstance(value, list) and value and \
            all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value):
        return value
    fail(f"a count >= 1 (seeds 0..count-1) or a list of seeds >= 0; got {value!r}")


def build(settings: dict, fail_at: Callable[[str, str, int | None], None], name: str = "sweep") -> Sweep:
    """A :class:`Sweep` from parsed settings; ``fail_at(key, message, scheme_index)`` raises."""
    for key in settings:
        if key not in TOP_KEYS:
            close = unknown_name("key", key, TOP_KEYS)
            fail_at(key, str(close).rstrip("."), None)
    axes = {}
    for key, default in DEFAULTS.items():
        fail = lambda msg, key=key: fail_at(key, msg, None)  # noqa: E731
        values = _grid(settings.get(key, default), fail)
        axes[key] = list(dict.fromkeys(_check_axis(key, v, fail) for v in values))
    schemes = _schemes(settings.get("scheme", "default"), lambda msg, i, k: fail_at(k or "scheme", msg, i))
    seeds = _seeds(settings.get("seeds", 1), lambda msg: fail_at("seeds", msg, None))
    sweep_name = settings.get("name", name)
    if not isinstance(sweep_name, str) or not re.fullmatch(r"[\w.-]+", sweep_name):
        fail_at("name", f"a name of letters, digits, '-', '_' or '.'; got {sweep_name!r}", None)
    return Sweep(sweep_name, list({run_id(s): s for s in schemes}.values()), axes, seeds)


def _line_of(text: str, key: str, scheme_index: int | None) -> int | None:
    """The line of ``key = ...``: at the top level, or inside the ``scheme_index``-th ``[[scheme]]``
    table (else that table's header, else the top-level ``scheme = ...`` line)."""
    table, count, top, header, scheme_line = None, -1, None, None, None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("["):
            table = stripped.strip("[] ")
            count += table == "scheme"
            if table == "scheme" and count == scheme_index:
                header = number
            continue
        if table is None and re.match(r"scheme\s*=", stripped):
            scheme_line = number
        if re.match(rf'"?{re.escape(key)}"?\s*=', stripped):
            if table is None and top is None:
                top = number
            if scheme_index is not None and table == "scheme" and count == scheme_index:
                return number
    return top if scheme_index is None else header or scheme_line or top


def from_toml(path: str | Path) -> Sweep:
    """Read a sweep file; an error names the file, the line and the key at fault."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise InitlabError(f"cannot read sweep file '{path}': {e.strerror}.")
    except UnicodeDecodeError:
        raise InitlabError(f"sweep file '{path}' is not UTF-8 text: a sweep file is TOML (see the README).") from None
    try:
        settings = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        match = re.search(r"\(at line (\d+), column \d+\)", str(e))
        where = f"{path}:{match.group(1)}" if match else str(path)
        reason = str(e)[:match.start()].strip() if match else str(e)
        raise InitlabError(f"{where}: not valid TOML: {reason}.")

    def fail_at(key: str, message: str, scheme_index: int | None):
        line = _line_of(text, key, scheme_index)
        where = f"{path}:{line}" if line else str(path)
        table = "" if scheme_index is None else f" (entry {scheme_index + 1})" if key == "scheme" else \
            f" of [[scheme]] {scheme_index + 1}"
        raise InitlabError(f"{where}: key '{key}'{table}: {message}.")

    return build(settings, fail_at, name=path.stem)


def from_flags(settings: dict, name: str = "sweep") -> Sweep:
    """A :class:`Sweep` from command-line values (lists already split); errors name the flag."""
    def fail_at(key, message, _index):
        raise InitlabError(f"--{key.replace('_', '-')}: {message}.")
    return build({"name": name, **settings}, fail_at, name=name)


# --------------------------------------------------------------------------------------------------
# sizes

def estimate(sweep: Sweep, group_size: int = 256, thumbnail: int = 32) -> dict:
    """What ``sweep`` will take, from its axes' lengths and largest values, without expanding it.

    The largest group is bounded from above: the most models one group can hold, each with the widest,
    deepest layers, the most points and the widest dtype and optimizer state of the grid.

    Returns
    -------
    dict
        ``runs``, ``cells`` (runs without their seeds), ``groups``, ``models_per_group`` (of the
        largest), ``parameters`` (of its largest model), and bytes: ``model_bytes`` (parameters,
        gradients and optimizer state of the group), ``data_bytes`` (its datasets),
        ``activation_bytes`` (every layer's output on every point, kept for the backward pass),
        ``list_bytes`` (the expanded list of runs that :func:`run` holds) and ``memory_bytes``, their sum.
    """
    axes = sweep.axes
    length = lambda keys: math.prod(len(axes[k]) for k in keys)  # noqa: E731
    per_key = sweep.count() // length(GROUP_KEYS)  # the runs that share one architecture
    models = min(group_size, per_key)
    width, depth, n = max(axes["width"]), max(axes["depth"]), max(axes["n"])
    size = max(DTYPE_BYTES[d] for d in axes["dtype"])
    states = max(OPTIMIZER_STATES[o] for o in axes["optimizer"])
    parameters = (2 * width + width) + (depth - 1) * (width * width + width) + (width + 1)  # 2 -> width^depth -> 1
    datasets = min(models, length(DATA_KEYS))  # a group holds one dataset per data setting in it
    out = {"runs": sweep.count(), "cells": sweep.count() // len(sweep.seeds),
           "groups": length(GROUP_KEYS) * -(-per_key // group_size), "models_per_group": models,
           "parameters": parameters,
           "model_bytes": models * parameters * size * (2 + states),
           "data_bytes": datasets * n * 3 * size + models * thumbnail ** 2 * 8,
           "activation_bytes": models * n * width * depth * 2 * size,
           "list_bytes": sweep.count() * RUN_BYTES}
    out["memory_bytes"] = out["model_bytes"] + out["data_bytes"] + out["activation_bytes"] + out["list_bytes"]
    return out


def check_size(size: dict, max_runs: int | None = MAX_RUNS, max_memory_gb: float | None = MAX_MEMORY_GB,
               what: str = "this sweep") -> None:
    """Raise an :class:`InitlabError` naming the flag that raises the limit when ``size`` (from
    :func:`estimate`) passes ``max_runs`` or ``max_memory_gb`` (None: no limit)."""
    runs, gb = size["runs"], size["memory_bytes"] / 1e9
    if max_runs is not None and runs > max_runs:
        raise InitlabError(f"{what} has {runs:,} runs, over the limit of {max_runs:,}: add --max-runs {runs} "
                           f"to run it anyway, or --dry-run to see its grid.")
    if max_memory_gb is not None and gb > max_memory_gb:
        parts = {"the models of its largest group": "model_bytes", "their data": "data_bytes",
                 "their activations": "activation_bytes", "its list of runs": "list_bytes"}
        most = max(parts, key=lambda p: size[parts[p]])
        raise InitlabError(f"{what} needs about {gb:.1f} GB ({most}: {size[parts[most]] / 1e9:.1f} GB), over "
                           f"the limit of {max_memory_gb:g} GB: add --max-memory {math.ceil(gb)} to run it anyway, "
                           f"or lower --group-size, --n, --width or the runs.")


def size_text(size: dict) -> str:
    """One line: runs, groups, parameters per model and the estimated memory, by part."""
    gb = lambda b: f"{b / 1e9:.2f} GB" if b >= 1e8 else f"{b / 1e6:.1f} MB"  # noqa: E731
    return (f"{size['runs']:,} runs in {size['groups']:,} groups of up to {size['models_per_group']:,} models "
            f"({size['parameters']:,} parameters each); estimated memory {gb(size['memory_bytes'])}: "
            f"models {gb(size['model_bytes'])}, data {gb(size['data_bytes'])}, "
            f"activations {gb(size['activation_bytes'])}, list of runs {gb(size['list_bytes'])}")


# --------------------------------------------------------------------------------------------------
# running

def groups(configs: list[dict], size: int = 256) -> list[list[dict]]:
    """Runs that share everything but scheme, seed and learning rate, in chunks of at most ``size``."""
    by_key: dict[tuple, list[dict]] = {}
    for config in configs:
        by_key.setdefault(tuple(config[k] for k in GROUP_KEYS), []).append(config)
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
    shared = ", ".join(f"{k}={'full' if k == 'batch_size' and first[k] is None else first[k]}" for k in GROUP_KEYS)
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
            done = store.finished()
            todo = [c for c in sweep.iter_runs() if run_id(c) not in done]
            total, start = sweep.count(), time.perf_counter()
            count = {"finished": total - len(todo), "trained": 0, "others": 0, "diverged": 0}
            kept: list[str] = []
            if progress:
                progress(count["finished"], total)

            def training(group: list, fraction: float) -> None:
                if progress:
                    progress(count["finished"] + len(group) * fraction, total)

            fn = partial(train_group, sweep=sweep.name, device=device, thumbnail=thumbnail)
            waiting, leases = groups(todo, group_size), {}

            def claimed(pending: list, held: list):
                """Each group claimed as the executor takes it; a group that another live sweep
                holds waits for the next pass, one that it stored is counted as its."""
                for group in pending:
                    ids = [run_id(c) for c in group]
                    state, missing = store.claim(group_key(ids), ids, holder)
                    if state == "held":
                        held.append(group)
                        continue
                    rest = [c for c in group if run_id(c) in missing]
                    count["others"] += len(group) - len(rest)
                    count["finished"] += len(group) - len(rest)
                    if rest:
                        leases[id(rest)] = group_key(ids)
                        yield rest

            while waiting:
                held: list = []
                before = count["trained"]
                # closing: an interruption (Ctrl-C) cancels what is outstanding; stored groups stay stored
                with closing(executor.map(fn, claimed(waiting, held), training)) as completed:
                    for group, records in _naming_failures(completed):
                        side = store.save(records, lease=leases.pop(id(group), None))
                        if side is not None:
                            kept.append(str(side))
                        count["finished"] += len(group)
                        count["trained"] += len(group)
                        count["diverged"] += sum(r["result"].diverged for r in records)
                        if progress:
                            progress(count["finished"], total)
                if held and count["trained"] == before:
                    time.sleep(CLAIM_POLL)  # others train these: look again soon
                waiting = held
    finally:
        executor.close()
    return {"total": total, "skipped": total - len(todo), "trained": count["trained"], "others": count["others"],
            "diverged": count["diverged"], "kept": kept, "seconds": time.perf_counter() - start}
