"""``train_many()``: many same-shaped MLPs trained as one batched computation.

Every model keeps its own parameters, optimizer state, minibatch order and fate: the ``M`` models
live in one :class:`~initlab.stack.StackedMLP` (one flat buffer, ``(M, in, out)`` views per layer,
autograd for the gradients and the optimizer table's stacked step), evaluated on both splits in one
batched pass. Nothing couples the models: a batched matmul computes each model's slice from that
model's slice alone, and a model whose loss or parameters become NaN or inf is recorded as diverged at
that step and dropped from the stack, so the rest train on as if it had never been there.

The plain loop :func:`initlab.train` is the reference: each model's :class:`~initlab.TrainResult`
equals what ``train`` gives that model alone, to float tolerance (``tests/test_ensemble.py``), for
every optimizer of :mod:`initlab.optimizers` and every activation of :mod:`initlab.activations`.

>>> import initlab
>>> data = initlab.datasets.make("moons", n=200, seed=0)
>>> runs = [{"scheme": "xavier_uniform", "seed": s} for s in range(3)]
>>> results = initlab.train_many(data, runs, hidden=[8, 8], activation="tanh", steps=50, lr=0.1)
>>> len(results), results[0].history["step"][-1]
(3, 50)
"""

from __future__ import annotations

import time
from typing import Callable, Mapping, Sequence

import torch
from torch import nn

from .checks import check_training_data, expect
from .config import check
from .datasets import Dataset
from .errors import InitlabError
from .init import initialize
from .models import mlp, parse_hidden
from .optimizers import get as get_optimizer
from .schemes import parse_spec
from .stack import StackedMLP
from .train import DTYPES, TrainResult, check_arguments, epoch_order, resolve_device

RUN_KEYS = {"scheme", "params", "seed", "lr"}
ACTIVATION_BUDGET = 1 << 21      # layer outputs' elements per chunk of models (8 MB in float32; measured best)
#: On a GPU caches matter little and every kernel launch costs: chunks as large as 1 GB in float32.
GPU_ACTIVATION_BUDGET = 1 << 28
METRICS = ("train_loss", "train_accuracy", "test_loss", "test_accuracy")


def train_many(data: Dataset | Sequence[Dataset], runs: Sequence[Mapping], *, hidden, activation: str = "relu",
               steps: int = 1000, lr: float = 0.1, optimizer: str = "sgd", batch_size: int | None = None,
               device: str | torch.device | None = None, eval_every: int = 10,
               dtype: str | torch.dtype = "float32", weight_decay: float | None = None,
               callback: Callable[[int], None] | None = None, return_models: bool = False):
    """Train one MLP per run, all of one architecture, as one batched computation.

    Parameters
    ----------
    data : Dataset or list of Dataset
        From :func:`initlab.datasets.make`: one that every model trains on, or one per run (of equal
        sizes: runs that differ in data seed or noise still train as one computation).
    runs : list of dict
        One per model: ``{"scheme": name or {"name", "params"}, "params": {...}, "seed": 0, "lr": None}``.
        ``seed`` seeds the initialization and the minibatch order, as in ``initlab train``; ``lr``
        overrides the shared learning rate for that model.
    hidden : list of int or str
        Hidden widths, as for :func:`initlab.mlp`.
    activation : str, default "relu"
        A row of :data:`initlab.activations.ACTIVATIONS`.
    steps, lr, optimizer, batch_size, eval_every, weight_decay
        As for :func:`initlab.train`: a row of :data:`initlab.optimizers.OPTIMIZERS` with PyTorch's
        defaults (``weight_decay`` for the optimizers that take it, such as ``adamw``), full batch
        (None) or minibatches in each model's own seeded order.
    device : {"cpu", "cuda"}, optional
    dtype : {"float32", "float64"}, default "float32"
    callback : callable, optional
        ``callback(step)`` after every step, and once with 0 before the first (for progress bars).
    return_models : bool, default False
        Also return the trained models as ``nn.Sequential`` (diverged ones as they were when they
        diverged).

    Returns
    -------
    list of TrainResult
        One per run, in order, equal to what :func:`initlab.train` gives that model alone (to float
        tolerance). ``seconds`` is the group's time divided by the number of models. With
        ``return_models``, ``(results, models)``.
    """
    runs = _check_runs(runs)
    lrs = [lr if run["lr"] is None else run["lr"] for run in runs]
    for value in dict.fromkeys([lr, *lrs]):
        check_arguments(steps, value, optimizer, batch_size, eval_every, weight_decay=weight_decay)
    settings = get_optimizer(optimizer).settings({} if weight_decay is None else {"weight_decay": weight_decay})
    _check_data(data)
    check("activation", activation)
    dtype = check("dtype", str(dtype).replace("torch.", ""))
    if callback is not None and not callable(callback):
        raise InitlabError(f"callback must be callable, as callback(step); got {type(callback).__name__}.")
    widths, dev = parse_hidden(hidden), resolve_device(device)
    group = _Group(data, runs, widths, activation, DTYPES[dtype], dev, return_models)
    start = time.perf_counter()
    group.train(steps, lrs, optimizer, settings, batch_size, eval_every, callback)
    seconds = (time.perf_counter() - start) / len(runs)
    shared = {"steps": steps, "optimizer": optimizer, "batch_size": batch_size, "device": str(dev), "dtype": dtype,
              "hidden": widths, "activation": activation,
              **({} if weight_decay is None else {"weight_decay": weight_decay})}
    results = [group.result(i, {**shared, "lr": lrs[i], "seed": run["seed"], "scheme": run["scheme"]}, seconds)
               for i, run in enumerate(runs)]
    return (results, group.trained_models()) if return_models else results


# --------------------------------------------------------------------------------------------------
# checks and data

def _check_runs(runs: Sequence[Mapping]) -> list[dict]:
    if not isinstance(runs, (list, tuple)):
        raise InitlabError(f"train_many needs runs as a list of dicts, like [{{'scheme': 'xavier_uniform', "
                           f"'seed': 0}}]; got {type(runs).__name__}.")
    if not runs:
        raise InitlabError("train_many needs at least one run.")
    checked = []
    for i, run in enumerate(runs):
        if not isinstance(run, Mapping) or "scheme" not in run:
            raise InitlabError(f"run {i} must be a dict with a 'scheme' (and 'params', 'seed', 'lr'); got {run!r}.")
        unknown = set(run) - RUN_KEYS
        if unknown:
            raise InitlabError(f"run {i} has unknown key(s) {', '.join(sorted(unknown))}; a run takes "
                               f"{', '.join(sorted(RUN_KEYS))}.")
        scheme = run["scheme"]
        spec = parse_spec(scheme if isinstance(scheme, Mapping) else
                          {"name": scheme, "params": dict(run.get("params") or {})})
        seed = run.get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise InitlabError(f"run {i}: seed must be a non-negative integer; got {seed!r}.")
        checked.append({"scheme": spec, "seed": seed, "lr": run.get("lr")})
    return checked


def _check_data(data) -> None:
    """One :class:`Dataset`, or a list of them: each checked once (:func:`~initlab.checks.check_training_data`)."""
    if isinstance(data, Dataset):
        data = [data]
    elif not (isinstance(data, (list, tuple)) and data and all(isinstance(d, Dataset) for d in data)):
        expect(data, "data", "train_many", "data (one Dataset, or a list of one per run)")
    for d in {id(d): d for d in data}.values():
        check_training_data(d, who="train_many")


def _stack_data(data, m: int, dev: torch.device, dtype: torch.dtype):
    """``X, y, X_test, y_test`` on ``dev`` in ``dtype``: shared ``(n, d)``, or ``(m, n, d)`` when
    ``data`` is a list of data sets, one per run; and each run's data config."""
    if isinstance(data, Dataset):
        return (*(t.to(dev, dtype) for t in data), [data.config] * m)
    data = list(data)
    if len(data) != m:
        raise InitlabError(f"data is one Dataset or a list of one Dataset per run ({m}); got {len(data)} items.")
    shapes = {tuple(t.shape for t in d) for d in data}
    if len(shapes) > 1:
        raise InitlabError(f"the data sets of one train_many call must have equal sizes; got {sorted(shapes)}.")
    return (*(torch.stack(ts).to(dev, dtype) for ts in zip(*data)), [d.config for d in data])


# --------------------------------------------------------------------------------------------------
# one group of models, trained together

class _Group:
    """The models of one :func:`train_many` call: their stacked network, which of them still train
    (``alive``: global indices, in stack order), their histories and, once they stop, their parameters."""

    def __init__(self, data, runs: list[dict], widths: list[int], activation: str, dtype: torch.dtype,
                 dev: torch.device, keep_models: bool):
        self.runs, self.dev, self.activation, self.widths = runs, dev, activation, widths
        self.X, self.y, X_test, y_test, self.data_configs = _stack_data(data, len(runs), dev, dtype)
        self.per_model = self.X.dim() == 3  # each model its own data set: (M, n, d)
        # both splits in one forward pass: train points first, then test points
        self.X_eval, self.y_eval = torch.cat([self.X, X_test], -2), torch.cat([self.y, y_test], -1)
        self.n_train = self.X.shape[-2]
        self.sizes = [self.X.shape[-1], *widths, 1]
        self.budget = ACTIVATION_BUDGET if dev.type == "cpu" else GPU_ACTIVATION_BUDGET
        self.net = StackedMLP(len(runs), self.sizes, activation, dtype, dev)
        self.models = self._initialize(keep_models)
        self.alive = torch.arange(len(runs))
        self.alive_dev = self.alive.to(dev)
        self.history = [{k: [] for k in ("step", *METRICS)} for _ in runs]
        self.diverged_at: list[int | None] = [None] * len(runs)
        self.final: list[list[torch.Tensor] | None] = [None] * len(runs)

    def _blank(self) -> nn.Module:
        """An MLP built on the meta device (no draws from the global RNG, no work), then allocated."""
        with torch.device("meta"):
            model = mlp(self.sizes[0], self.widths, 1, self.activation)
        return model.to_empty(device=self.dev).to(self.net.flat.dtype)

    def _initialize(self, keep_models: bool) -> list[nn.Module]:
        """Each model's parameters drawn by the plain path (:func:`initlab.initialize`, bitwise) into the stack."""
        models, template = [], None if keep_models else self._blank()
        for j, run in enumerate(self.runs):
            model = self._blank() if keep_models else template
            initialize(model, run["scheme"], seed=run["seed"])  # writes every weight and bias
            with torch.no_grad():
                for p, v in zip(model.parameters(), self.net.model_params(j)):
                    v.copy_(p)
            if keep_models:
                models.append(model)
        return models

    # ---- evaluation, divergence

    @torch.no_grad()
    def evaluate(self, rows: torch.Tensor, step: int) -> None:
        """Record loss and accuracy on both splits for the stacked models at positions ``rows``."""
        chunk = max(1, self.budget // (self.X_eval.shape[-2] * max(self.sizes[1:])))  # no activations kept
        everyone = rows.numel() == self.net.m  # then chunks are slices of the stack: no copies
        parts = []
        for start in range(0, rows.numel(), chunk):
            sel = rows[start:start + chunk].to(self.dev)
            xs, ys = (self.X_eval[self.alive_dev[sel]], self.y_eval[self.alive_dev[sel]]) if self.per_model \
                else (self.X_eval, self.y_eval)
            logits = self.net.forward(xs, slice(start, start + sel.numel()) if everyone else sel)
            ys = ys.expand_as(logits)
            loss = nn.functional.binary_cross_entropy_with_logits(logits, ys, reduction="none")
            correct = (((logits > 0) == (ys > 0.5)) & ~torch.isnan(logits)).float()  # as train() counts
            n = self.n_train
            parts.append(torch.stack([loss[:, :n].mean(1), correct[:, :n].mean(1),
                                      loss[:, n:].mean(1), correct[:, n:].mean(1)]))
        values = torch.cat(parts, 1).tolist()
        for j, g in enumerate(self.alive[rows.cpu()].tolist()):
            self.history[g]["step"].append(step)
            for k, column in zip(METRICS, values):
                self.history[g][k].append(column[j])

    def freeze(self, rows: torch.Tensor) -> None:
        """Keep the current parameters of the stacked models at positions ``rows`` as their final ones."""
        for j, g in zip(rows.tolist(), self.alive[rows.cpu()].tolist()):
            if self.final[g] is None:
                self.final[g] = [p.clone() for p in self.net.model_params(j)]

    def drop(self, bad: torch.Tensor, step: int) -> None:
        """Stop the stacked models where ``bad``: diverged at ``step``, their parameters frozen."""
        rows = bad.nonzero().reshape(-1)
        self.freeze(rows)
        for g in self.alive[rows].tolist():
            self.diverged_at[g] = step
        keep = (~bad).nonzero().reshape(-1)
        self.net.keep(keep.to(self.dev))
        self.alive = self.alive[keep]
        self.alive_dev = self.alive.to(self.dev)
        self.orders.drop(keep)

    # ---- training

    def train(self, steps: int, lrs: list[float], optimizer: str, settings: dict, batch_size: int | None,
              eval_every: int, callback) -> None:
        row = get_optimizer(optimizer)
        lr_tensor = torch.tensor(lrs, dtype=self.net.flat.dtype, device=self.dev)
        lr_of = (lambda: lr_tensor[0]) if len(set(lrs)) == 1 else (lambda: self.net.spread(lr_tensor[self.alive_dev]))
        self.orders = _Orders(self.n_train, batch_size, [run["seed"] for run in self.runs], self.dev)
        chunk = max(1, self.budget // (self.orders.batch * sum(self.sizes[1:])))
        self.evaluate(torch.arange(self.net.m), 0)
        if callback:
            callback(0)
        lr = lr_of()
        for step in range(1, steps + 1):
            if self.net.m == 0:
                break
            m = self.net.m
            self.step(step, row, lr, settings, chunk)
            if self.net.m != m:
                lr = lr_of()
            if self.net.m and (step % eval_every == 0 or step == steps):
                self.evaluate(torch.arange(self.net.m), step)
            if callback:
                callback(step)
        self.freeze(torch.arange(self.net.m))

    def step(self, step: int, row, lr: torch.Tensor, settings: dict, chunk: int) -> None:
        """One update of every model still training; the ones whose loss or parameters stop being
        finite are recorded (as the plain loop records them: no step after a non-finite loss) and dropped."""
        xb, yb = self.batch()
        losses = self.net.backward(xb, yb, chunk)
        bad_loss = ~torch.isfinite(losses)
        if bool(bad_loss.any()):  # the plain loop takes no step: record the model as it is
            rows = bad_loss.nonzero().reshape(-1)
            self.evaluate(rows, step)
            self.freeze(rows)
            self.net.grad.nan_to_num_(0.0, 0.0, 0.0)
        self.net.step(row, lr, settings)
        bad = bad_loss
        if not bool(torch.isfinite(self.net.flat.sum())):
            bad = bad_loss | ~self.net.finite()
            new = (bad & ~bad_loss).nonzero().reshape(-1)
            if new.numel():
                self.evaluate(new, step)
        if bool(bad.any()):
            self.drop(bad.cpu(), step)

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This step's inputs and labels: ``(n, d)`` shared, or ``(m, b, d)``, one minibatch per model."""
        idx = self.orders.next()
        if idx is None:
            if self.per_model and self.net.m < len(self.runs):
                return self.X[self.alive_dev], self.y[self.alive_dev]
            return self.X, self.y
        n = self.n_train
        flat_idx = (idx + self.alive_dev[:, None] * n if self.per_model else idx).reshape(-1)
        xb = self.X.reshape(-1, self.X.shape[-1]).index_select(0, flat_idx).view(*idx.shape, self.X.shape[-1])
        return xb, self.y.reshape(-1).index_select(0, flat_idx).view(idx.shape)

    # ---- results

    def result(self, i: int, config: dict, seconds: float) -> TrainResult:
        h = self.history[i]
        final = {k: h[k][-1] for k in ("train_loss", "test_loss", "train_accuracy", "test_accuracy")}
        config = {**config, "data": self.data_configs[i]}
        return TrainResult(h, final, self.diverged_at[i] is not None, self.diverged_at[i], config, seconds)

    def trained_models(self) -> list[nn.Module]:
        with torch.no_grad():
            for model, params in zip(self.models, self.final):
                for p, v in zip(model.parameters(), params):
                    p.copy_(v)
        return self.models


class _Orders:
    """Each stacked model's minibatch indices, drawn as :class:`initlab.train.Minibatches` draws them
    for that model alone (:func:`~initlab.train.epoch_order` from a generator seeded with its seed):
    once per distinct seed, as models of one seed draw the same orders."""

    def __init__(self, n: int, batch_size: int | None, seeds: list[int], dev: torch.device):
        self.n, self.dev = n, dev
        self.batch = n if batch_size is None else min(batch_size, n)
        distinct = sorted(set(seeds))
        self.generators = [torch.Generator().manual_seed(s) for s in distinct]
        self.of_model = torch.tensor([distinct.index(s) for s in seeds])  # stacked model -> its seed's generator
        self.perms: torch.Tensor | None = None
        self.cursor = n

    def next(self) -> torch.Tensor | None:
        """``(m, batch)`` indices of this step's minibatch of every stacked model (None: full batch)."""
        if self.batch == self.n:
            return None
        if self.cursor + self.batch > self.n:
            used = self.of_model.unique()
            drawn = torch.empty(len(self.generators), self.n, dtype=torch.long)
            for k in used.tolist():
                epoch_order(self.n, self.generators[k], out=drawn[k])
            self.perms, self.cursor = drawn[self.of_model].to(self.dev), 0
        idx = self.perms[:, self.cursor:self.cursor + self.batch]
        self.cursor += self.batch
        return idx

    def drop(self, keep: torch.Tensor) -> None:
        """Keep the orders of the stacked models at positions ``keep`` (the survivors keep their order)."""
        self.of_model = self.of_model[keep]
        if self.perms is not None:
            self.perms = self.perms[keep.to(self.perms.device)]
