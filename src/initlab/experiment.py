"""One experiment: a config -> data + model -> scheme applied -> trained -> a record; and the
record's storage in an output folder (``results.json`` with every number, ``arrays.npz`` with the
probability grids), which plots and reports read back without training.
"""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from ._version import __version__
from .datasets import GENERATORS as DATASETS, Dataset, make
from .errors import InitlabError, unknown_name
from .jsonsafe import json_safe
from .models import make_activation, mlp, parse_hidden
from .init import initialize
from .schemes import parse_spec
from .symmetry import effective_width
from .train import check_arguments, probability_grid, resolve_device, train

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class ExperimentConfig:
    """Everything that decides a run; the defaults are the chapter's network."""

    dataset: str = "moons"          # see initlab.datasets.names()
    n: int = 1000                   # points, before the 70/30 train/test split
    noise: float = 0.2              # make_moons' noise
    data_seed: int = 0              # the points and the split
    hidden: list[int] = field(default_factory=lambda: [32, 32, 32, 32])
    activation: str = "relu"
    steps: int = 2000
    lr: float = 0.1
    optimizer: str = "sgd"
    batch_size: int | None = None  # None: full batch
    seed: int = 0                   # the initialization and the minibatch order
    device: str | None = None
    dtype: str = "float32"
    eval_every: int = 10
    track_every: int | None = None  # per-layer output std and gradient norm every k steps

    def __post_init__(self):
        self.hidden = parse_hidden(self.hidden)
        make_activation(self.activation)
        check_arguments(self.steps, self.lr, self.optimizer, self.batch_size, self.eval_every)
        if self.dataset not in DATASETS:
            raise unknown_name("dataset", self.dataset, DATASETS)
        resolve_device(self.device)
        if self.dtype not in DTYPES:
            raise InitlabError(f"dtype must be one of {', '.join(DTYPES)}; got {self.dtype!r}.")

    def data(self) -> Dataset:
        return make(self.dataset, n=self.n, noise=self.noise, seed=self.data_seed)


def label_of(spec: dict) -> str:
    """A short, readable name for a scheme spec: ``normal(std=0.01)``, ``xavier_uniform``."""
    params = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                       for k, v in spec["params"].items())
    return f"{spec['name']}({params})" if params else spec["name"]


def run_scheme(config: ExperimentConfig, scheme: Any, data: Dataset | None = None,
               callback: Callable[[int, torch.nn.Module], None] | None = None,
               label: str | None = None) -> dict:
    """Build the config's MLP, initialize it with ``scheme``, train it and return its record:
    the summary row, the history, the manifest and the probability grid."""
    spec = parse_spec(scheme)
    data = data or config.data()
    device = resolve_device(config.device)
    model = mlp(data.X_train.shape[1], config.hidden, 1, config.activation).to(device, DTYPES[config.dtype])
    manifest = initialize(model, spec, seed=config.seed, inputs=data.X_train)
    result = train(model, data, steps=config.steps, lr=config.lr, optimizer=config.optimizer,
                   batch_size=config.batch_size, seed=config.seed, device=device,
                   eval_every=config.eval_every, track_every=config.track_every, callback=callback)
    widths = effective_width(model, data.X_train)
    grid = probability_grid(model, torch.cat([data.X_train, data.X_test]))
    if result.diverged:  # the parameters are NaN or inf: no probabilities, no neurons to count
        grid["p"][:] = np.nan
    row = {"scheme": label or label_of(spec), "spec": spec,
           "train_accuracy": result.final["train_accuracy"],
           "test_accuracy": result.final["test_accuracy"],
           "final_loss": result.final["train_loss"],
           "steps_to_90": result.steps_to(0.9),
           "effective_width": None if result.diverged else [w.effective_width for w in widths],
           "width": [w.width for w in widths],
           "diverged": result.diverged, "diverged_step": result.diverged_step}
    return {"row": row, "result": result, "manifest": manifest, "grid": grid, "widths": widths}


def linear_baseline(data: Dataset) -> float:
    """Test accuracy of a logistic regression (a straight line) on the same data."""
    clf = LogisticRegression().fit(data.X_train.numpy(), data.y_train.numpy())
    return float(clf.score(data.X_test.numpy(), data.y_test.numpy()))


def environment() -> dict:
    return {"initlab": __version__, "torch": torch.__version__, "python": platform.python_version()}


def save(out: str | Path, config: ExperimentConfig, records: list[dict], data: Dataset,
         command: str = "", extra: dict | None = None) -> Path:
    """Write ``results.json`` and ``arrays.npz`` for ``records`` into folder ``out``."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InitlabError(f"cannot create output folder '{out}': {e.strerror}.")
    doc = {"config": asdict(config), "command": command, "environment": environment(),
           "results": [r["row"] for r in records],
           "histories": {r["row"]["scheme"]: r["result"].to_dict()["history"] for r in records},
           "manifests": {r["row"]["scheme"]: r["manifest"].to_dict() for r in records},
           "tracked": {r["row"]["scheme"]: r["result"].to_dict()["tracked"] for r in records
                       if r["result"].tracked},
           **(extra or {})}
    (out / "results.json").write_text(json.dumps(json_safe(doc), indent=2))
    arrays = {"X_train": data.X_train.numpy(), "y_train": data.y_train.numpy(),
              "X_test": data.X_test.numpy(), "y_test": data.y_test.numpy()}
    for i, r in enumerate(records):
        arrays[f"p_{i}"] = r["grid"]["p"]
        arrays[f"xx_{i}"], arrays[f"yy_{i}"] = r["grid"]["xx"], r["grid"]["yy"]
    np.savez_compressed(out / "arrays.npz", **arrays)
    return out


def load(out: str | Path) -> dict:
    """Read back what :func:`save` wrote: the JSON document plus ``grids`` (one per result) and
    ``points`` (the data)."""
    out = Path(out)
    if not (out / "results.json").is_file():
        raise InitlabError(f"'{out}' holds no results.json; give a folder written by 'initlab demo' "
                           f"or 'initlab train'.")
    doc = json.loads((out / "results.json").read_text())
    with np.load(out / "arrays.npz") as z:
        doc["points"] = {k: z[k] for k in ("X_train", "y_train", "X_test", "y_test")}
        doc["grids"] = [{"xx": z[f"xx_{i}"], "yy": z[f"yy_{i}"], "p": z[f"p_{i}"]}
                        for i in range(len(doc["results"]))]
    return doc
