"""The one run config: everything that decides one training run, with one name per concept and one
set of checks.

``initlab train``'s flags, each cell of a sweep, the playground's URL, ``results.json``'s ``config``
and the results store's rows are all :class:`RunConfig` s. A value is accepted or refused the same way
in every entry point, because each of them calls :func:`check` here and only adds where the value
came from (a flag, a line of a sweep file, a URL key).

=============  =====================================  ================================
group          names                                  meaning
=============  =====================================  ================================
data           dataset, n, noise, data_seed           which points, how many, how noisy
model          hidden (or depth and width),           the MLP ``2 -> hidden -> 1``
               activation, scheme                     and its initialization spec
training       optimizer, lr, weight_decay, steps,    how it trains; ``seed`` draws the
               batch_size, seed, eval_every,          initialization and the minibatch
               track_every, dtype, device             order
=============  =====================================  ================================

``run_id`` names a run by its identity: every field but ``device`` and ``track_every`` (where it ran
and what was watched do not change what it is), with fields added after the first release left out
while they hold their default, so a store written then still names the same runs.

This module does not import torch.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Callable, Mapping

from .activations import ACTIVATIONS
from .errors import InitlabError, unknown_name
from .optimizers import OPTIMIZERS

DTYPES = ("float32", "float64")
DEVICES = ("cpu", "cuda")
#: Fields that are not part of a run's identity (see :meth:`RunConfig.identity`).
NOT_IDENTITY = ("device", "track_every")
#: Fields added after the first release: left out of the identity while they hold their default.
ADDED_LATER = ("weight_decay",)
#: Old names still read from files, URLs and flags, and what they are called now.
OLD_NAMES = {"dseed": "data_seed", "batch": "batch_size"}


class FieldError(InitlabError):
    """A bad value of one field: ``key`` and ``reason`` (``"must be ...; got ..."``), so that each entry
    point can say where the value came from before the reason."""

    def __init__(self, key: str, reason: str, keyed: bool = True):
        self.key, self.reason = key, reason
        super().__init__(f"{key} {reason}." if keyed else f"{reason}.")


# --------------------------------------------------------------------------------------------------
# the checks, one per kind of value

def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _integer(low: int, words: str | None = None) -> Callable[[str, Any], int]:
    words = words or {0: "a non-negative integer", 1: "a positive integer"}.get(low, f"an integer >= {low}")

    def check(key, value):
        if not _is_int(value) or value < low:
            raise FieldError(key, f"must be {words}; got {value!r}")
        return value
    return check


def _number(positive: bool) -> Callable[[str, Any], float]:
    words = "a positive number" if positive else "a non-negative number"

    def check(key, value):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
            and (value > 0 if positive else value >= 0)
        if not ok:
            raise FieldError(key, f"must be {words}; got {value!r}")
        return float(value)
    return check


def _choice(known) -> Callable[[str, Any], str]:
    def check(key, value):
        if not isinstance(value, str) or value not in known:
            raise FieldError(key, str(unknown_name(key, value, known)).rstrip("."), keyed=False)
        return value
    return check


def _dataset(key, value):
    from .datasets import GENERATORS

    return _choice(GENERATORS)(key, value)


def _optional(check: Callable, none_words: tuple = (None,)) -> Callable:
    def optional(key, value):
        return None if any(value is w or value == w for w in none_words if not isinstance(value, bool)) \
            else check(key, value)
    return optional


def _batch_size(key, value):
    if value is None or value == "full":
        return None
    if not _is_int(value) or value < 1:
        raise FieldError(key, f"must be a positive integer, or \"full\" (None) for the whole training set; "
                              f"got {value!r}")
    return value


def _hidden(key, value):
    from .models import parse_hidden

    try:
        return tuple(parse_hidden(value))
    except InitlabError as e:
        raise FieldError(key, f"must be widths like [32, 32] or '32x2'; {str(e).split('; ')[-1].rstrip('.')}")


def _scheme(key, value):
    from .schemes import parse_spec

    return parse_spec(value)


def _device(key, value):
    if value is None:
        return None
    name = str(value)
    if name.split(":")[0] not in DEVICES:
        raise FieldError(key, f"must be one of {', '.join(DEVICES)}; got {value!r}")
    return name


CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "dataset": _dataset, "n": _integer(10, "an integer >= 10 (a dataset needs n >= 10 points)"), "noise": _number(False), "data_seed": _integer(0),
    "hidden": _hidden, "depth": _integer(1), "width": _integer(1), "activation": _choice(ACTIVATIONS), "scheme": _scheme,
    "optimizer": _choice(OPTIMIZERS), "lr": _number(True), "weight_decay": _optional(_number(False)),
    "steps": _integer(0), "batch_size": _batch_size, "seed": _integer(0),
    "eval_every": _integer(1), "track_every": _optional(_integer(1)), "dtype": _choice(DTYPES),
    "device": _device,
}


def check(key: str, value: Any) -> Any:
    """``value`` of field ``key`` checked and normalized (``batch_size="full"`` -> None, ``lr=1`` ->
    1.0, a scheme name -> its spec); a bad one raises :class:`FieldError`."""
    key = OLD_NAMES.get(key, key)
    if key not in CHECKS:
        raise unknown_name("run setting", key, CHECKS)
    return CHECKS[key](key, value)


# --------------------------------------------------------------------------------------------------
# the config

@dataclass(frozen=True)
class RunConfig:
    """Everything that decides one run; the defaults are the chapter's network and training."""

    dataset: str = "moons"
    n: int = 1000                       # points, before the 70/30 train/test split
    noise: float = 0.2
    data_seed: int = 0                  # the points and the split
    hidden: tuple[int, ...] = (32, 32, 32, 32)
    activation: str = "relu"
    scheme: dict = field(default_factory=lambda: {"name": "default", "params": {}})
    optimizer: str = "sgd"
    lr: float = 0.1
    weight_decay: float | None = None   # None: the optimizer's own default (adamw: 0.01)
    steps: int = 2000
    batch_size: int | None = None       # None: the full training set each step
    seed: int = 0                       # the initialization and the minibatch order
    eval_every: int = 10
    track_every: int | None = None      # per-layer statistics every k steps
    dtype: str = "float32"
    device: str | None = None

    def __post_init__(self):
        for f in fields(self):
            object.__setattr__(self, f.name, check(f.name, getattr(self, f.name)))
        from .optimizers import get

        get(self.optimizer).settings(self.optimizer_params())

    # -- views
    @property
    def depth(self) -> int:
        return len(self.hidden)

    @property
    def width(self) -> int | None:
        """The hidden width when every hidden layer has it, else None."""
        return self.hidden[0] if len(set(self.hidden)) == 1 else None

    def optimizer_params(self) -> dict:
        """The optimizer's hyperparameters this config sets (``{}``: all the optimizer's defaults)."""
        return {} if self.weight_decay is None else {"weight_decay": self.weight_decay}

    def train_kwargs(self) -> dict:
        """The keyword arguments of :func:`initlab.train` this config decides."""
        return {"steps": self.steps, "lr": self.lr, "optimizer": self.optimizer, "batch_size": self.batch_size,
                "seed": self.seed, "device": self.device, "eval_every": self.eval_every,
                "track_every": self.track_every, **self.optimizer_params()}

    def data(self):
        """The data set this config names."""
        from .datasets import make

        return make(self.dataset, n=self.n, noise=self.noise, seed=self.data_seed)

    def replace(self, **changes) -> "RunConfig":
        """A copy with ``changes`` (checked like any config)."""
        return replace(self, **{OLD_NAMES.get(k, k): v for k, v in changes.items()})

    # -- serial forms
    def to_dict(self) -> dict:
        """JSON-ready, in the field order; ``depth`` and ``width`` in place of ``hidden`` when uniform."""
        d = asdict(self)
        hidden = list(d.pop("hidden"))
        shape = {"depth": len(hidden), "width": hidden[0]} if len(set(hidden)) == 1 else {"hidden": hidden}
        out = {}
        for key, value in d.items():
            out[key] = value
            if key == "data_seed":
                out.update(shape)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RunConfig":
        """The inverse of :meth:`to_dict`; also takes ``hidden`` as a list, ``depth`` with ``width``,
        and the old names (``dseed``, ``batch``). An unknown key lists the known ones."""
        d = {OLD_NAMES.get(k, k): v for k, v in d.items()}
        known = {f.name for f in fields(cls)} | {"depth", "width"}
        for key in d:
            if key not in known:
                raise unknown_name("run setting", key, known)
        if "depth" in d or "width" in d:
            if "hidden" in d:
                raise InitlabError("give hidden, or depth and width, not both.")
            depth = _integer(1)("depth", d.pop("depth", len(cls.hidden_default())))
            width = _integer(1)("width", d.pop("width", cls.hidden_default()[0]))
            d["hidden"] = (width,) * depth
        return cls(**d)

    @staticmethod
    def hidden_default() -> tuple[int, ...]:
        return RunConfig.__dataclass_fields__["hidden"].default

    def identity(self) -> dict:
        """What names the run: :meth:`to_dict` without :data:`NOT_IDENTITY`, and without the
        :data:`ADDED_LATER` fields that hold their default."""
        d = self.to_dict()
        for key in NOT_IDENTITY:
            d.pop(key, None)
        for key in ADDED_LATER:
            if d.get(key) == RunConfig.__dataclass_fields__[key].default:
                d.pop(key)
        return d

    @property
    def run_id(self) -> str:
        """A stable name of this run: the same config always has the same id (see :func:`run_id`)."""
        return run_id(self.identity())


def canonical(config: Mapping) -> str:
    """The canonical JSON of a config: sorted keys, no spaces, so equal configs give equal text."""
    return json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=False)


def run_id(config: Mapping) -> str:
    """A stable id for a run: the first 16 hex digits of the SHA-256 of its canonical JSON."""
    return hashlib.sha256(canonical(config).encode()).hexdigest()[:16]
