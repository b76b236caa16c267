"""``Stepper``: :func:`initlab.train` cut into steps, so a model can be trained a few steps at a time
and looked at in between.

It reuses the training loop's own pieces (the loss, the divergence test, the evaluation, the
minibatch order drawn from ``seed``), so ``Stepper(...).step(k)`` leaves the model exactly where
``train(..., steps=k)`` leaves it; ``tests/test_playground.py`` checks that bit for bit.
"""

from __future__ import annotations

import torch
from torch import nn

from ..datasets import Dataset
from ..errors import InitlabError
from ..layers import LAYER_TYPES
from ..train import OPTIMIZERS, _all_finite, _loss_fn, check_arguments, evaluate


def _std(t: torch.Tensor) -> float | None:
    return float(t.detach().double().std()) if t.numel() > 1 else None


class Stepper:
    """Train ``model`` on ``data`` one step at a time, as :func:`initlab.train` does.

    Parameters are those of :func:`initlab.train`. ``step_count`` counts the updates made;
    ``diverged_step`` is set (and stepping stops) when the loss or a parameter becomes NaN or inf.
    After each step, ``layer_stats()`` gives per layer the std of its output on the last batch and
    the std of the loss's gradient with respect to that output (as :func:`initlab.diagnose` measures
    them at step 0).
    """

    def __init__(self, model: nn.Module, data: Dataset, *, lr: float = 0.1, optimizer: str = "sgd",
                 batch_size: int | None = None, seed: int = 0):
        check_arguments(0, lr, optimizer, batch_size)
        self.model = model
        self.params = [p for p in model.parameters() if p.requires_grad]
        if not self.params:
            raise InitlabError("the model has no trainable parameters.")
        dtype, device = self.params[0].dtype, self.params[0].device
        self.X, self.y, self.X_test, self.y_test = (t.to(device, dtype) for t in data)
        self.opt = OPTIMIZERS[optimizer](self.params, lr=lr)
        self.order_gen = torch.Generator().manual_seed(seed)
        self.n = self.X.shape[0]
        self.batch = self.n if batch_size is None else min(batch_size, self.n)
        self.perm, self.cursor = None, self.n
        self.step_count = 0
        self.diverged_step: int | None = None
        self.layers = [(name, m) for name, m in model.named_modules() if isinstance(m, LAYER_TYPES)]
        self._out_std: dict[str, float] = {}
        self._grad_std: dict[str, float] = {}
        self._measure = False
        self._handles = [m.register_forward_hook(self._hook(name)) for name, m in self.layers]
        model.train()

    def _hook(self, name):
        def hook(_module, _args, out):
            if self._measure:
                self._out_std[name] = _std(out)
                if out.requires_grad:
                    out.register_hook(lambda g: self._grad_std.__setitem__(name, _std(g)))
        return hook

    @property
    def diverged(self) -> bool:
        return self.diverged_step is not None

    def _next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.batch == self.n:
            return self.X, self.y
        if self.cursor + self.batch > self.n:
            self.perm, self.cursor = torch.randperm(self.n, generator=self.order_gen).to(self.X.device), 0
        idx = self.perm[self.cursor:self.cursor + self.batch]
        self.cursor += self.batch
        return self.X[idx], self.y[idx]

    def step(self, count: int = 1, measure_last: bool = True) -> int:
        """Make up to ``count`` updates (fewer if the model diverges); return how many were made.

        With ``measure_last``, the last update's forward pass records each layer's output std."""
        made = 0
        for i in range(count):
            if self.diverged:
                break
            self._measure = measure_last and i == count - 1
            xb, yb = self._next_batch()
            self.opt.zero_grad(set_to_none=True)
            loss = _loss_fn(self.model(xb), yb)
            self._measure = False
            finite_loss = bool(torch.isfinite(loss))
            if finite_loss:
                loss.backward()
                self.opt.step()
            self.step_count += 1
            made += 1
            if not _all_finite(loss, self.params):
                self.diverged_step = self.step_count
        return made

    def evaluate(self) -> dict[str, float]:
        """Train and test loss and accuracy now (NaN or inf losses for a diverged model)."""
        self.model.eval()
        try:
            train_loss, train_acc = evaluate(self.model, self.X, self.y)
            test_loss, test_acc = evaluate(self.model, self.X_test, self.y_test)
        finally:
            self.model.train()
        return {"train_loss": train_loss, "train_accuracy": train_acc,
                "test_loss": test_loss, "test_accuracy": test_acc}

    def layer_stats(self) -> dict[str, list]:
        """Per layer (forward order): ``names``, ``act_std`` (std of the layer's output in the last
        measured step) and ``grad_std`` (std of the loss's gradient with respect to that output)."""
        names = [n for n, _ in self.layers]
        return {"names": names, "act_std": [self._out_std.get(n) for n in names],
                "grad_std": [self._grad_std.get(n) for n in names]}

    def close(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
