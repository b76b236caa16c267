"""``train()``: the plain training loop, the reference every faster path is tested against.

Divergence is a result: when the loss or a parameter becomes NaN or inf, training stops at that step
and the result says ``diverged=True, diverged_step=k``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from .checks import check_training_data, expect
from .config import check
from .optimizers import get as get_optimizer
from .datasets import Dataset
from .errors import InitlabError
from .metrics import null_diverged_accuracy, steps_to
from .jsonsafe import json_safe



#: The torch dtype of each :data:`initlab.config.DTYPES` name.
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` -> CPU; ``"cuda"`` only where a CUDA device is present (else a clear error)."""
    if device is None:
        return torch.device("cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise InitlabError(f"unknown device {device!r}; use 'cpu' or 'cuda'.")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InitlabError("device 'cuda' asked for, but this torch sees no CUDA GPU; use --device cpu.")
    return device


def _loss_fn(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy on one logit per point (:func:`~initlab.checks.check_training_data` made
    sure the model has one output and the labels are 0 and 1)."""
    return nn.functional.binary_cross_entropy_with_logits(logits.reshape(-1), y)


def _correct(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Correct predictions as a bool tensor; a NaN output is never correct."""
    logits = logits.reshape(-1)
    return ((logits > 0) == (y > 0.5)) & ~torch.isnan(logits)


@torch.no_grad()
def evaluate(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """``(loss, accuracy)`` of ``model`` on ``(X, y)``; the loss is NaN or inf for a diverged model."""
    logits = model(X)
    return float(_loss_fn(logits, y)), float(_correct(logits, y).float().mean())


def check_arguments(steps: int, lr: float, optimizer: str, batch_size: int | None,
                    eval_every: int = 10, seed: int = 0, **optimizer_params) -> None:
    """Raise a clear :class:`InitlabError` for a bad training argument, before any work is done: the
    run config's checks (:func:`initlab.config.check`), the same in every entry point."""
    for key, value in (("steps", steps), ("lr", lr), ("optimizer", optimizer), ("eval_every", eval_every),
                       ("seed", seed)):
        check(key, value)
    check("batch_size", batch_size)
    get_optimizer(optimizer).settings({k: v for k, v in optimizer_params.items() if v is not None})


@dataclass
class TrainResult:
    """What :func:`train` returns.

    ``history`` holds parallel lists ``step, train_loss, train_accuracy, test_loss, test_accuracy``
    (evaluated every ``eval_every`` steps and at the end); ``final`` the last of each as a dict.
    """

    history: dict[str, list]
    final: dict[str, float | None]
    diverged: bool = False
    diverged_step: int | None = None
    config: dict = field(default_factory=dict)
    seconds: float = 0.0
    tracked: dict | None = None  # with track_every: the per-layer record initlab.watch keeps

    def __post_init__(self):
        # a diverged model's predictions come from NaN or inf outputs: from that step on it has no accuracy
        if self.diverged_step is not None:
            self.history = null_diverged_accuracy(self.history, self.diverged_step)
            self.final = {**self.final, "train_accuracy": None, "test_accuracy": None}

    def steps_to(self, accuracy: float = 0.9, split: str = "test") -> int | None:
        """The first evaluated step at which ``split`` accuracy reached ``accuracy``, compared in the
        precision it was counted in (None: never, or diverged first)."""
        return steps_to(self.history, accuracy, split)

    def __repr__(self) -> str:
        steps = self.history["step"][-1] if self.history.get("step") else 0
        if self.diverged:
            return f"TrainResult(diverged at step {self.diverged_step}: no accuracy; {self.seconds:.1f} s)"
        f = self.final
        acc = f.get("test_accuracy")
        loss = f.get("train_loss")
        return (f"TrainResult({steps} steps, test accuracy {'n/a' if acc is None else f'{acc:.3f}'}, train loss "
                f"{'n/a' if loss is None else f'{loss:.3g}'}, {self.seconds:.1f} s)")

    def _repr_html_(self) -> str:
        from html import escape

        head = f"<p><b>{escape(repr(self))}</b></p>"
        if self.diverged:
            return head
        rows = "".join(f"<tr><td>{escape(k)}</td><td>{'n/a' if v is None else f'{v:.4g}'}</td></tr>"
                       for k, v in self.final.items() if k != "step" and isinstance(v, (int, float, type(None))))
        return head + f"<table><tr><th>final</th><th>value</th></tr>{rows}</table>"

    def to_dict(self) -> dict:
        """JSON-ready: non-finite numbers become None."""
        return json_safe({"history": self.history, "final": self.final, "diverged": self.diverged,
                          "diverged_step": self.diverged_step, "config": self.config, "seconds": self.seconds,
                          "tracked": self.tracked})


def _all_finite(loss: torch.Tensor, params: list[torch.Tensor]) -> bool:
    sums = torch.stack([loss.detach().reshape(())] + [p.detach().sum() for p in params])
    return bool(torch.isfinite(sums).all())


def epoch_order(n: int, generator: torch.Generator, out: torch.Tensor | None = None) -> torch.Tensor:
    """The order of the ``n`` training points in the next epoch: the one minibatch-order rule of
    initlab (:class:`Minibatches` and :func:`initlab.train_many` both draw through it, so a model
    sees the same batches however it is trained)."""
    return torch.randperm(n, generator=generator) if out is None else torch.randperm(n, generator=generator, out=out)


class Minibatches:
    """The indices of each step's minibatch: consecutive slices of a fresh :func:`epoch_order` drawn
    from ``seed`` whenever the epoch cannot fill another batch (the rest of it is dropped)."""

    def __init__(self, n: int, batch_size: int | None, seed: int, device: torch.device):
        self.n, self.device = n, device
        self.batch = n if batch_size is None else min(batch_size, n)
        self.generator = torch.Generator().manual_seed(seed)
        self.perm, self.cursor = None, n

    @property
    def full(self) -> bool:
        return self.batch == self.n

    def next(self) -> torch.Tensor | None:
        """The next batch's indices (None: the whole training set)."""
        if self.full:
            return None
        if self.cursor + self.batch > self.n:
            self.perm, self.cursor = epoch_order(self.n, self.generator).to(self.device), 0
        idx = self.perm[self.cursor:self.cursor + self.batch]
        self.cursor += self.batch
        return idx


class Trainer:
    """:func:`train` one step at a time: the one training loop of initlab (the playground steps it;
    ``train`` runs it to the end). Arguments are those of :func:`train`.

    ``step()`` makes one update and says whether the model is still finite; ``step_count`` counts the
    updates made and ``diverged_step`` is the step at which the loss or a parameter became NaN or inf.
    A :class:`~initlab.probe.Recorder` passed as ``recorder`` sees each step's forward and backward
    pass when it is started before :meth:`step`.
    """

    def __init__(self, model: nn.Module, data: Dataset, *, lr: float = 0.1, optimizer: str = "sgd",
                 batch_size: int | None = None, seed: int = 0, device: str | torch.device | None = None,
                 weight_decay: float | None = None, caller: str = "train"):
        expect(model, "model", caller)
        check_arguments(0, lr, optimizer, batch_size, seed=seed, weight_decay=weight_decay)
        dev = resolve_device(device) if device is not None else None
        if dev is not None:
            model.to(dev)
        self.model = model
        self.params = [p for p in model.parameters() if p.requires_grad]
        if not self.params:
            raise InitlabError("the model has no trainable parameters.")
        check_training_data(data, model, caller)
        self.dtype, self.device = self.params[0].dtype, self.params[0].device
        self.X, self.y, self.X_test, self.y_test = (t.to(self.device, self.dtype) for t in data)
        extra = {} if weight_decay is None else {"weight_decay": weight_decay}
        self.opt = get_optimizer(optimizer).make(self.params, lr=lr, **extra)
        self.batches = Minibatches(self.X.shape[0], batch_size, seed, self.device)
        self.step_count = 0
        self.diverged_step: int | None = None
        self.last_loss: torch.Tensor | None = None
        self.last_loss_finite = True
        model.train()

    @property
    def diverged(self) -> bool:
        return self.diverged_step is not None

    def step(self, recorder=None) -> bool:
        """One update (none once diverged); False when the model has diverged. With a started
        ``recorder``, it is stopped after this step's backward pass, before the update."""
        if self.diverged:
            return False
        idx = self.batches.next()
        xb, yb = (self.X, self.y) if idx is None else (self.X[idx], self.y[idx])
        self.opt.zero_grad(set_to_none=True)
        loss = _loss_fn(self.model(xb), yb)
        self.last_loss = loss.detach()
        self.last_loss_finite = bool(torch.isfinite(loss))
        if self.last_loss_finite:
            loss.backward()
        if recorder is not None:
            recorder.stop()
        if self.last_loss_finite:
            self.opt.step()
        self.step_count += 1
        if not _all_finite(loss, self.params):
            self.diverged_step = self.step_count
        return not self.diverged

    def evaluate(self) -> dict[str, float]:
        """Train and test loss and accuracy now (NaN or inf losses for a diverged model)."""
        was_training = self.model.training
        self.model.eval()
        try:
            out = {}
            for split, (xs, ys) in (("train", (self.X, self.y)), ("test", (self.X_test, self.y_test))):
                out[f"{split}_loss"], out[f"{split}_accuracy"] = evaluate(self.model, xs, ys)
            return out
        finally:
            self.model.train(was_training)


def train(model: nn.Module, data: Dataset, *, steps: int = 1000, lr: float = 0.1,
          optimizer: str = "sgd", batch_size: int | None = None, seed: int = 0,
          device: str | torch.device | None = None, eval_every: int = 10,
          track_every: int | None = None, weight_decay: float | None = None,
          callback: Callable[[int, nn.Module], None] | None = None) -> TrainResult:
    """Train ``model`` on ``data`` with a binary cross-entropy loss (on logits), in place.

    Parameters
    ----------
    model : nn.Module
        Already initialized (see :func:`initlab.initialize`); trained in its own dtype. One output:
        the logit of class 1.
    data : Dataset
        From :func:`initlab.datasets.make`, or your own: labels 0 and 1, finite 2-D inputs as wide as
        the model's first layer (checked before training, see
        :func:`~initlab.checks.check_training_data`).
    steps : int, default 1000
        Optimizer steps.
    lr : float, default 0.1
    optimizer : {"sgd", "adam", "adamw", "rmsprop"}, default "sgd"
        A row of :data:`initlab.optimizers.OPTIMIZERS`, with PyTorch's defaults (plain SGD has no
        momentum).
    batch_size : int, optional
        None trains on the full training set every step; otherwise minibatches in an order drawn
        from ``seed`` (a new permutation each epoch, see :class:`Minibatches`).
    seed : int, default 0
        Seeds the minibatch order only; the global RNG is never touched.
    device : {"cpu", "cuda"}, optional
    eval_every : int, default 10
        Train and test loss and accuracy are recorded at step 0, every ``eval_every`` steps and at
        the last step.
    track_every : int, optional
        At the first 5 steps, every ``track_every`` steps and at a divergence, record per layer the
        statistics :func:`initlab.watch` records (:mod:`initlab.watchstats`: ``preact_std``,
        ``weight_grad_norm``, ``update_to_data`` ...), in ``result.tracked``, the layout of
        :meth:`initlab.watchstats.WatchRecord.to_dict` (``{"layers", "step", "loss", <statistic>:
        [[value per layer] per step], ...}``; step s is the state after s updates).
    weight_decay : float, optional
        For optimizers that take it (adamw; default 0.01).
    callback : callable, optional
        ``callback(step, model)`` after every step (and once with step 0 before training).
    """
    check_arguments(steps, lr, optimizer, batch_size, eval_every, seed, weight_decay=weight_decay)
    if callback is not None and not callable(callback):
        raise InitlabError(f"callback must be callable, as callback(step, model); got {type(callback).__name__}.")
    if track_every is not None:
        check("track_every", track_every)
    trainer = Trainer(model, data, lr=lr, optimizer=optimizer, batch_size=batch_size, seed=seed,
                      device=resolve_device(device), weight_decay=weight_decay)
    tracker = _Tracker(model, track_every, steps) if track_every else None
    start = time.perf_counter()
    history = _run(trainer, steps, eval_every, tracker, callback)
    seconds = time.perf_counter() - start
    final = {k: history[k][-1] for k in ("train_loss", "test_loss", "train_accuracy", "test_accuracy")}
    config = {"steps": steps, "lr": lr, "optimizer": optimizer, "batch_size": batch_size, "seed": seed,
              "device": str(trainer.device), "dtype": str(trainer.dtype).replace("torch.", ""),
              **({} if weight_decay is None else {"weight_decay": weight_decay})}
    tracked = tracker.close() if tracker else None
    return TrainResult(history, final, trainer.diverged, trainer.diverged_step, config, seconds, tracked)


def _run(trainer: Trainer, steps: int, eval_every: int, tracker: "_Tracker | None", callback) -> dict[str, list]:
    """:func:`train`'s loop: ``steps`` steps of ``trainer`` (fewer when it diverges), evaluated at step
    0, every ``eval_every`` steps, at the last and at a divergence; returns the history."""
    history = {k: [] for k in ("step", "train_loss", "train_accuracy", "test_loss", "test_accuracy")}

    def record(step: int) -> None:
        history["step"].append(step)
        for k, v in trainer.evaluate().items():
            history[k].append(v)

    record(0)
    if callback:
        callback(0, trainer.model)
    for step in range(1, steps + 1):
        watch = tracker is not None and tracker.due(step - 1)
        if watch:
            tracker.probe.begin()
        trainer.step(tracker.probe.recorder if watch else None)
        if tracker is not None and (watch or not trainer.last_loss_finite):
            tracker.record(step - 1, trainer.last_loss)
        if trainer.diverged:
            record(step)
            break
        if step % eval_every == 0 or step == steps:
            record(step)
        if callback:
            callback(step, trainer.model)
    return history


class _Tracker:
    """``train(track_every=)``'s record: the record :func:`initlab.watch` keeps (a
    :class:`~initlab.watchstats.WatchRecord` of a :class:`~initlab.watchstats.StepProbe` begun on the
    steps it is due), without histograms and with room for every due step of a run of ``steps``."""

    def __init__(self, model: nn.Module, every: int, steps: int):
        from .watchstats import StepProbe, WatchRecord

        self.every = every
        self.probe = StepProbe(model, histograms=False)
        due = min(steps, 5) + max(0, (steps - 1) // every - 4 // every)
        self.kept = WatchRecord(self.probe.layers, self.probe.kinds, every, max_samples=max(4, due + 2),
                                histograms=False)

    def due(self, step: int) -> bool:
        return step < 5 or step % self.every == 0

    def record(self, step: int, loss: torch.Tensor | None = None) -> None:
        self.kept.add(step, None if loss is None else float(loss), self.probe.measure())

    def close(self) -> dict:
        self.probe.close()
        return self.kept.to_dict()


@torch.no_grad()
def probability_grid(model: nn.Module, X: torch.Tensor, resolution: int = 150,
                     margin: float = 0.6) -> dict[str, np.ndarray]:
    """The model's probability of class 1 ("black") on a grid covering ``X`` plus ``margin``.

    Returns ``{"xx", "yy", "p"}`` (2-D arrays), what :func:`initlab.plots.probability_contours`
    draws; a diverged model's NaN probabilities stay NaN."""
    expect(model, "model", "probability_grid")
    expect(X, "tensor", "probability_grid", "X (the points to cover)")
    if X.dim() != 2 or X.shape[1] != 2 or X.shape[0] == 0:
        raise InitlabError(f"probability_grid needs X of 2-D points, shape (n, 2); got shape {tuple(X.shape)}.")
    param = next(model.parameters())
    lo = X.min(0).values.cpu().numpy() - margin
    hi = X.max(0).values.cpu().numpy() + margin
    xs, ys = np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution)
    xx, yy = np.meshgrid(xs, ys)
    grid = torch.as_tensor(np.stack([xx.ravel(), yy.ravel()], 1), dtype=param.dtype, device=param.device)
    was_training = model.training
    model.eval()
    p = torch.sigmoid(model(grid).reshape(-1)).cpu().double().numpy().reshape(xx.shape)
    model.train(was_training)
    return {"xx": xx, "yy": yy, "p": p}
