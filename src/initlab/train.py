"""``train()``: the plain training loop, the reference every faster path is tested against.

Divergence is a result: when the loss or a parameter becomes NaN or inf, training stops at that step
and the result says ``diverged=True, diverged_step=k``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from .checks import check_training_data, expect
from .datasets import Dataset
from .errors import InitlabError, unknown_name
from .metrics import null_diverged_accuracy, steps_to
from .jsonsafe import json_safe

OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}


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


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_arguments(steps: int, lr: float, optimizer: str, batch_size: int | None,
                    eval_every: int = 10, seed: int = 0) -> None:
    """Raise a clear :class:`InitlabError` for a bad training argument, before any work is done."""
    if not _whole(steps) or steps < 0:
        raise InitlabError(f"steps must be a non-negative integer; got {steps!r}.")
    if not (isinstance(lr, (int, float)) and not isinstance(lr, bool) and lr > 0 and math.isfinite(lr)):
        raise InitlabError(f"lr must be a positive number; got {lr!r}.")
    if not isinstance(optimizer, str) or optimizer not in OPTIMIZERS:
        raise unknown_name("optimizer", optimizer, OPTIMIZERS)
    if batch_size is not None and (not _whole(batch_size) or batch_size < 1):
        raise InitlabError(f"batch_size must be a positive integer or None; got {batch_size!r}.")
    if not _whole(eval_every) or eval_every < 1:
        raise InitlabError(f"eval_every must be an integer >= 1; got {eval_every!r}.")
    if not _whole(seed) or seed < 0:
        raise InitlabError(f"seed must be a non-negative integer; got {seed!r}.")


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
    tracked: dict | None = None  # with track_every: per layer output std and weight-gradient norm

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


def train(model: nn.Module, data: Dataset, *, steps: int = 1000, lr: float = 0.1,
          optimizer: str = "sgd", batch_size: int | None = None, seed: int = 0,
          device: str | torch.device | None = None, eval_every: int = 10,
          track_every: int | None = None,
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
    optimizer : {"sgd", "adam"}, default "sgd"
        Plain SGD (no momentum) or Adam with PyTorch's defaults.
    batch_size : int, optional
        None trains on the full training set every step; otherwise minibatches in an order drawn
        from ``seed`` (a new permutation each epoch).
    seed : int, default 0
        Seeds the minibatch order only; the global RNG is never touched.
    device : {"cpu", "cuda"}, optional
    eval_every : int, default 10
        Train and test loss and accuracy are recorded at step 0, every ``eval_every`` steps and at
        the last step.
    track_every : int, optional
        At the first 5 steps, every ``track_every`` steps and at a divergence, record, per Linear or
        convolution layer, the
        std of its output and the norm of its weight's gradient, in ``result.tracked``
        (``{"layers", "step", "act_std", "grad_norm"}``; step s is the state after s updates).
    callback : callable, optional
        ``callback(step, model)`` after every step (and once with step 0 before training).
    """
    expect(model, "model", "train")
    check_arguments(steps, lr, optimizer, batch_size, eval_every, seed)
    if callback is not None and not callable(callback):
        raise InitlabError(f"callback must be callable, as callback(step, model); got {type(callback).__name__}.")
    dev = resolve_device(device)
    model.to(dev)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise InitlabError("the model has no trainable parameters.")
    check_training_data(data, model, "train")
    dtype = params[0].dtype
    X, y, X_test, y_test = (t.to(dev, dtype) for t in data)
    opt = OPTIMIZERS[optimizer](params, lr=lr)
    order_gen = torch.Generator().manual_seed(seed)
    n = X.shape[0]
    batch = n if batch_size is None else min(batch_size, n)
    perm, cursor = None, n

    history = {k: [] for k in ("step", "train_loss", "train_accuracy", "test_loss", "test_accuracy")}

    def record(step: int) -> None:
        model.eval()
        for split, (xs, ys) in (("train", (X, y)), ("test", (X_test, y_test))):
            loss, acc = evaluate(model, xs, ys)
            history[f"{split}_loss"].append(loss)
            history[f"{split}_accuracy"].append(acc)
        history["step"].append(step)
        model.train()

    tracker = _Tracker(model, track_every) if track_every else None
    start = time.perf_counter()
    record(0)
    if callback:
        callback(0, model)
    diverged_step = None
    model.train()
    for step in range(1, steps + 1):
        if batch == n:
            xb, yb = X, y
        else:
            if cursor + batch > n:
                perm, cursor = torch.randperm(n, generator=order_gen).to(dev), 0
            idx = perm[cursor:cursor + batch]
            cursor += batch
            xb, yb = X[idx], y[idx]
        opt.zero_grad(set_to_none=True)
        loss = _loss_fn(model(xb), yb)
        finite_loss = bool(torch.isfinite(loss))
        if finite_loss:
            loss.backward()
        if tracker and (step - 1 < 5 or (step - 1) % track_every == 0 or not finite_loss):
            tracker.record(step - 1)
        if finite_loss:
            opt.step()
        if not _all_finite(loss, params):
            diverged_step = step
            record(step)
            break
        if step % eval_every == 0 or step == steps:
            record(step)
        if callback:
            callback(step, model)
    seconds = time.perf_counter() - start
    final = {k: history[k][-1] for k in ("train_loss", "test_loss", "train_accuracy", "test_accuracy")}
    config = {"steps": steps, "lr": lr, "optimizer": optimizer, "batch_size": batch_size, "seed": seed,
              "device": str(dev), "dtype": str(dtype).replace("torch.", "")}
    tracked = tracker.close() if tracker else None
    return TrainResult(history, final, diverged_step is not None, diverged_step, config, seconds, tracked)


class _Tracker:
    """Keeps each layer's latest output; on ``record(step)`` stores its std and the weight-gradient norm."""

    def __init__(self, model: nn.Module, every: int):
        from .layers import LAYER_TYPES

        if not _whole(every) or every < 1:
            raise InitlabError(f"track_every must be a positive integer; got {every!r}.")
        self.layers = [(n, m) for n, m in model.named_modules() if isinstance(m, LAYER_TYPES)]
        self.outputs: dict[nn.Module, torch.Tensor] = {}
        self.data = {"layers": [n for n, _ in self.layers], "step": [], "act_std": [], "grad_norm": []}
        self.handles = [m.register_forward_hook(self._hook) for _, m in self.layers]

    def _hook(self, module, _args, out):
        self.outputs[module] = out.detach()

    def record(self, step: int) -> None:
        self.data["step"].append(step)
        self.data["act_std"].append([float(self.outputs[m].double().std()) if m in self.outputs else None
                                     for _, m in self.layers])
        self.data["grad_norm"].append([None if m.weight.grad is None else float(m.weight.grad.double().norm())
                                       for _, m in self.layers])

    def close(self) -> dict:
        for h in self.handles:
            h.remove()
        self.outputs.clear()
        return self.data


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
