"""A sweep's grid: run configs (:class:`~initlab.config.RunConfig` names) over axes of values,
read from a TOML file or from command-line flags, checked by the run config's own checks, counted and
sized without being expanded. :mod:`initlab.sweep` trains them.

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
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from .errors import InitlabError, unknown_name
from .models import mlp
from .init import initialize
from .schemes import parse_spec
from .config import run_id
from .config import ADDED_LATER, FieldError, check
from .optimizers import OPTIMIZERS

#: Every axis a sweep can span, with its default (one value).
#: The names are :class:`~initlab.config.RunConfig`'s (with ``depth`` and ``width`` for its ``hidden``);
#: ``weight_decay`` None is the optimizer's default and is left out of a run's config and id.
DEFAULTS: dict[str, Any] = {"dataset": "moons", "n": 1000, "noise": 0.2, "data_seed": 0, "depth": 3,
                            "width": 16, "activation": "relu", "optimizer": "sgd", "lr": 0.1, "weight_decay": None,
                            "steps": 300, "batch_size": None, "eval_every": 10, "dtype": "float32"}
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
#: (:attr:`initlab.optimizers.Optimizer.states`, at least one); the gradients are counted apart.
DTYPE_BYTES = {"float32": 4, "float64": 8}
#: Bytes of one expanded run in a list (its config dict, scheme and id): what :func:`run` holds per run.
RUN_BYTES = 2_000


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
            cell = dict(zip(keys, values))
            for key in ADDED_LATER:  # at its default, a later field is not part of a run's identity
                if key in cell and cell[key] == DEFAULTS[key]:
                    del cell[key]
            for spec in self.schemes:
                yield {**cell, "scheme": spec}

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
    """Check and normalize one value of axis ``key`` by the run config's own check
    (:func:`initlab.config.check`, the same in every entry point); ``fail(message)`` adds the location."""
    try:
        return check(key, value)
    except FieldError as e:
        fail(e.reason)


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
    decays = [w for w in axes["weight_decay"] if w is not None]
    for optimizer in axes["optimizer"] if decays else []:
        try:
            OPTIMIZERS[optimizer].settings({"weight_decay": decays[0]})
        except InitlabError as e:
            fail_at("weight_decay", str(e).rstrip("."), None)
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
    states = max(1, max(OPTIMIZERS[o].states for o in axes["optimizer"]))  # at least a buffer's worth
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
