"""A playground's settings: parsed from a URL query string, checked against the registry and sane
ranges, and written back as the same query string (so a link reproduces a run).

A query looks like ``dataset=moons&noise=0.2&n=400&data_seed=0&depth=4&width=16&activation=relu&
scheme=constant(value=0.1)&scheme=xavier_uniform&optimizer=sgd&lr=0.1&batch_size=full&seed=0&speed=30``;
``scheme`` may repeat (compare mode), each ``name`` or ``name(key=value,key=value)``. The keys are the
run config's names (:mod:`initlab.config`; the old ``dseed`` and ``batch=0`` still read), and each value
passes the run config's own check before the playground's tighter ranges.
Every bad value raises :class:`InitlabError` with a message naming it and what would be right.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence
from urllib.parse import urlencode

from .. import datasets
from . import upload
from ..schemes import CHOICES, get, label_of, parse_spec, schemes
from ..errors import InitlabError, unknown_name
from ..activations import ACTIVATIONS
from ..config import OLD_NAMES, check
from ..optimizers import OPTIMIZERS

MAX_QUERY = 2000
MAX_SCHEMES = 4
#: The ``dataset`` of a session training on an uploaded CSV (a link names it but cannot carry the data).
CUSTOM = "custom"
#: name -> (low, high) for numbers, checked inclusive; the issue's "sane ranges".
RANGES = {"noise": (0.0, 1.0), "n": (20, 2000), "depth": (1, 8), "width": (1, 128), "lr": (1e-5, 10.0),
          "weight_decay": (0.0, 1.0), "batch_size": (1, 2000), "seed": (0, 2**31 - 1),
          "data_seed": (0, 2**31 - 1), "speed": (1, 200)}
INTEGERS = {"n", "depth", "width", "batch_size", "seed", "data_seed", "speed"}
#: A scheme parameter's kind: (low, high) for a number, a tuple of words for a choice.
PARAM_RULES: dict[str, Any] = {
    "value": (-10.0, 10.0), "std": (0.0, 100.0), "mean": (-10.0, 10.0), "bound": (0.0, 100.0),
    "gain": (0.0, 100.0), "scale": (1e-6, 1000.0), "negative_slope": (0.0, 1.0), "bias": (-10.0, 10.0),
    "target_std": (1e-3, 100.0), "tol": (1e-4, 1.0), "max_iter": (1, 50),
    **{key: tuple(choices) for key, choices in CHOICES.items()},
}
_SCHEME = re.compile(r"^([a-z_]+)(?:\(([^()]*)\))?$")


def scheme_params(name: str) -> dict[str, Any]:
    """The parameters scheme ``name`` takes in the playground, with their defaults."""
    return get(name).params()


def _whole(default) -> bool:
    """Does a parameter with this default take whole numbers?"""
    return isinstance(default, int) and not isinstance(default, bool)


def catalog() -> dict:
    """Everything the page needs to build its controls: datasets, activations, optimizers, ranges,
    every scheme of the registry with its formula and its parameters (default and rule), and the
    upload limits (:func:`.upload.limits`)."""
    rows = []
    for name in schemes():
        s = get(name)
        params = []
        for key, default in scheme_params(name).items():
            rule = PARAM_RULES.get(key, (-1e6, 1e6))
            kind = "choice" if isinstance(rule[0], str) else "int" if _whole(default) else "number"
            params.append({"name": key, "default": default, "kind": kind,
                           **({"choices": list(rule)} if kind == "choice" else {"min": rule[0], "max": rule[1]})})
        rows.append({"name": name, "formula": s.formula, "params": params})
    return {"datasets": datasets.names(), "activations": list(ACTIVATIONS), "optimizers": list(OPTIMIZERS),
            "optimizer_params": {name: o.params for name, o in OPTIMIZERS.items()},
            "ranges": {k: list(v) for k, v in RANGES.items()}, "max_schemes": MAX_SCHEMES, "schemes": rows,
            "upload": upload.limits()}


def _number(key: str, text: str, lo: float, hi: float, integer: bool = False) -> float | int:
    try:
        value = int(text) if integer else float(text)
    except (TypeError, ValueError):
        kind = "an integer" if integer else "a number"
        raise InitlabError(f"{key} must be {kind}; got {text!r}.") from None
    if not (math.isfinite(value) and lo <= value <= hi):
        raise InitlabError(f"{key} must lie between {lo:g} and {hi:g}; got {text}.")
    return value


def parse_scheme(text: str) -> dict:
    """``"normal(std=0.01)"`` -> ``{"name": "normal", "params": {"std": 0.01}}``, checked against the
    playground's ranges, then by :func:`initlab.schemes.parse_spec` as everywhere else."""
    m = _SCHEME.match(text.strip())
    if not m:
        raise InitlabError(f"a scheme is NAME or NAME(key=value,...), like normal(std=0.01); got {text!r}.")
    name = get(m.group(1)).name
    accepted = scheme_params(name)
    if name != "default" and name != "lsuv":
        accepted["bias"] = 0.0
    params: dict[str, Any] = {}
    for pair in filter(None, (p.strip() for p in (m.group(2) or "").split(","))):
        key, sep, value = pair.partition("=")
        key, value = key.strip(), value.strip()
        if not sep:
            raise InitlabError(f"a scheme parameter is key=value, like std=0.01; got {pair!r}.")
        if key not in accepted:
            raise InitlabError(f"scheme '{name}' takes no parameter '{key}'; it takes: "
                               f"{', '.join(accepted) or 'none'}.")
        rule = PARAM_RULES.get(key, (-1e6, 1e6))
        if isinstance(rule[0], str):
            if value not in rule:
                raise unknown_name(key, value, rule)
            params[key] = value
        elif value in ("", "none", "None") and accepted[key] is None:
            continue
        else:
            params[key] = _number(f"{name}'s {key}", value, *rule, integer=_whole(accepted[key]))
    return parse_spec({"name": name, "params": params})


def scheme_text(spec: dict) -> str:
    """The inverse of :func:`parse_scheme`: :func:`initlab.schemes.label_of` in the URL's form."""
    return label_of(spec, sep=",")


@dataclass
class Settings:
    """Everything that decides a playground run; the defaults are a small version of the chapter's."""

    dataset: str = "moons"
    noise: float = 0.2
    n: int = 400                  # points before the 70/30 split
    data_seed: int = 0            # the points
    depth: int = 4                # hidden layers
    width: int = 16
    activation: str = "relu"
    schemes: list[dict] = field(default_factory=lambda: [{"name": "xavier_uniform", "params": {}}])
    optimizer: str = "sgd"
    lr: float = 0.1
    weight_decay: float | None = None  # None: the optimizer's default (adamw's 0.01)
    batch_size: int | None = None      # None: the full training set
    seed: int = 0                 # the initialization and the minibatch order
    speed: int = 30               # steps per second

    @property
    def hidden(self) -> list[int]:
        return [self.width] * self.depth

    def query(self) -> str:
        """The URL query string that reproduces these settings."""
        pairs: list[tuple[str, Any]] = []
        for key in ("dataset", "noise", "n", "data_seed", "depth", "width", "activation"):
            pairs.append((key, getattr(self, key)))
        pairs += [("scheme", scheme_text(s)) for s in self.schemes]
        pairs += [("optimizer", self.optimizer), ("lr", self.lr)]
        if self.weight_decay is not None:
            pairs.append(("weight_decay", self.weight_decay))
        pairs.append(("batch_size", "full" if self.batch_size is None else self.batch_size))
        for key in ("seed", "speed"):
            pairs.append((key, getattr(self, key)))
        return urlencode([(k, f"{v:g}" if isinstance(v, float) else v) for k, v in pairs], safe="(),=")

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "noise": self.noise, "n": self.n, "data_seed": self.data_seed,
                "depth": self.depth, "width": self.width, "activation": self.activation,
                "schemes": [scheme_text(s) for s in self.schemes], "optimizer": self.optimizer,
                "lr": self.lr, "weight_decay": self.weight_decay, "batch_size": self.batch_size,
                "seed": self.seed, "speed": self.speed}

    def run_config(self, spec: dict):
        """The :class:`~initlab.config.RunConfig` of the run of scheme ``spec`` (the playground has no
        step limit or evaluation schedule of its own: those fields keep their defaults)."""
        from ..config import RunConfig

        return RunConfig(dataset=self.dataset, n=self.n, noise=self.noise, data_seed=self.data_seed,
                         hidden=self.hidden, activation=self.activation, scheme=spec, optimizer=self.optimizer,
                         lr=self.lr, weight_decay=self.weight_decay, batch_size=self.batch_size, seed=self.seed)


def parse(query: Mapping[str, Any] | Sequence[tuple[str, str]]) -> Settings:
    """Settings from query pairs (``[("dataset", "moons"), ("scheme", "constant"), ...]`` or a mapping);
    a missing key keeps its default, an unknown key is an error."""
    pairs = list(query.items()) if isinstance(query, Mapping) else list(query)
    if sum(len(str(k)) + len(str(v)) + 2 for k, v in pairs) > MAX_QUERY:
        raise InitlabError(f"the settings are longer than {MAX_QUERY} characters.")
    s = Settings()
    known = {"dataset", "activation", "optimizer", "scheme", *RANGES}
    scheme_texts = []
    seen = set()
    for key, value in pairs:
        value = str(value)
        if key == "batch" and value == "0":  # the old name's 0 meant the full training set
            value = "full"
        key = OLD_NAMES.get(key, key)
        if key not in known:
            raise unknown_name("setting", key, known)
        if key == "scheme":
            scheme_texts.append(value)
            continue
        if key in seen:
            raise InitlabError(f"setting '{key}' is given twice.")
        seen.add(key)
        if key == "dataset" and value == CUSTOM:
            s.dataset = CUSTOM
        elif key in ("dataset", "activation", "optimizer"):
            setattr(s, key, check(key, value))
        elif key == "batch_size" and value == "full":
            s.batch_size = None
        else:
            setattr(s, key, _number(key, value, *RANGES[key], integer=key in INTEGERS))
    if s.weight_decay is not None:
        OPTIMIZERS[s.optimizer].settings({"weight_decay": s.weight_decay})
    if scheme_texts:
        if len(scheme_texts) > MAX_SCHEMES:
            raise InitlabError(f"compare at most {MAX_SCHEMES} schemes at once; got {len(scheme_texts)}.")
        s.schemes = [parse_scheme(t) for t in scheme_texts]
    return s


def nearest(query: Mapping[str, Any] | Sequence[tuple[str, str]], custom: bool = False) -> tuple[Settings, list[dict]]:
    """The settings nearest to a refused link: every value :func:`parse` accepts is kept, and each it
    refuses is replaced by the nearest allowed one (a number clamped into its range, an unknown name
    by the default, a bad scheme dropped) and listed as ``{"setting", "value", "reason", "nearest"}``
    (``nearest`` None: the default). ``custom`` says whether the session has uploaded data: a link
    cannot carry it, so without it ``dataset=custom`` falls back to the default dataset."""
    pairs = list(query.items()) if isinstance(query, Mapping) else list(query)
    refused: list[dict] = []
    if sum(len(str(k)) + len(str(v)) + 2 for k, v in pairs) > MAX_QUERY:
        return Settings(), [{"setting": "link", "value": "", "nearest": None,
                             "reason": f"the settings are longer than {MAX_QUERY} characters."}]
    kept: list[tuple[str, str]] = []
    seen: set[str] = set()

    def refuse(key, value, reason, near=None):
        refused.append({"setting": key, "value": str(value)[:80], "reason": reason,
                        "nearest": None if near is None else str(near)})

    for key, value in pairs:
        key, value = str(key), str(value)
        name = OLD_NAMES.get(key, key)
        if name in seen and name != "scheme":
            refuse(key, value, f"setting '{name}' is given twice; the first is kept.")
            continue
        if name == "dataset" and value == CUSTOM and not custom:
            refuse(key, value, "a link cannot carry uploaded data: upload your CSV again.", Settings.dataset)
            continue
        try:
            parse(kept + [(key, value)])
        except InitlabError as e:
            near = _near(name, value)
            try:
                near = None if near is None else (parse(kept + [(name, near)]) and near)
            except InitlabError:
                near = None
            refuse(key, value, str(e), near)
            if near is not None:
                kept.append((name, near))
                seen.add(name)
            continue
        if name == "scheme" and sum(k == "scheme" for k, _ in kept) >= MAX_SCHEMES:
            refuse(key, value, f"compare at most {MAX_SCHEMES} schemes at once; the first {MAX_SCHEMES} are kept.")
            continue
        kept.append((key, value))
        seen.add(name)
    try:
        return parse(kept), refused
    except InitlabError as e:  # a combination no single value shows (weight decay for sgd)
        return parse([(k, v) for k, v in kept if k not in ("weight_decay",)]), refused + [
            {"setting": "weight_decay", "value": "", "reason": str(e), "nearest": None}]


def _near(key: str, value: str) -> str | None:
    """The allowed value nearest to a refused ``value`` of ``key`` (None: drop it, the default holds)."""
    if key not in RANGES:
        return None
    try:
        v = float(value)
    except ValueError:
        return None
    if math.isnan(v):
        return None
    lo, hi = RANGES[key]
    v = min(max(v, lo), hi)
    return str(int(round(v))) if key in INTEGERS else f"{v:g}"
