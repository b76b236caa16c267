"""The engine under :func:`initlab.train_many`: ``M`` same-shaped MLPs as one stacked network.

The parameters of all ``M`` models live in one flat buffer, each layer a ``(M, in, out)`` weight view
and a ``(M, out)`` bias view of it; the forward pass is one batched matmul per layer
(``torch.baddbmm``) and the activation table's torch function; autograd computes the gradients of the
sum of the per-model losses (each model's slice of the gradient is that model's own gradient: nothing
couples the models), into one flat gradient buffer of the same layout; and the optimizer table's
stacked step (:mod:`initlab.optimizers`) updates the whole buffer at once, with one learning rate per
model where the runs carry their own.

Any activation of :mod:`initlab.activations` and any optimizer of :mod:`initlab.optimizers` trains
here: nothing is written per activation or per optimizer, so nothing can be missing for a new row.
(A hand-written backward was measured against this in ``benchmarks/train_many.py``; it did not pay
for itself: see the README's train_many section.)

>>> import torch
>>> net = StackedMLP(3, [2, 8, 1], "tanh", torch.float64, torch.device("cpu"))
>>> net.forward(torch.zeros(5, 2)).shape
torch.Size([3, 5])
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .activations import get as get_activation
from .optimizers import Optimizer

#: On a CPU the optimizer steps the flat buffer in slices of this many elements: its temporaries then
#: stay in cache (Adam's step on 100 models of [64] x 10: 8.3 ms whole, 5.0 ms in slices, measured).
STEP_SLICE = 1 << 18


def numel(m: int, sizes: Sequence[int]) -> int:
    """Elements of ``m`` MLPs of layer widths ``sizes`` (weights and biases)."""
    return m * sum(i * o + o for i, o in zip(sizes[:-1], sizes[1:]))


def views(flat: torch.Tensor, m: int, sizes: Sequence[int]) -> tuple[list, list]:
    """Per-layer ``(m, in, out)`` weight and ``(m, out)`` bias views of a layer-major flat buffer."""
    weights, biases, offset = [], [], 0
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        weights.append(flat[offset:offset + m * fan_in * fan_out].view(m, fan_in, fan_out))
        offset += m * fan_in * fan_out
        biases.append(flat[offset:offset + m * fan_out].view(m, fan_out))
        offset += m * fan_out
    return weights, biases


def bce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-model mean binary cross-entropy of logits ``(m, n)`` against labels ``(n,)`` or ``(m, n)``:
    what :func:`initlab.train` minimizes, for each model."""
    return nn.functional.binary_cross_entropy_with_logits(logits, y.expand_as(logits), reduction="none").mean(1)


class StackedMLP:
    """``m`` MLPs of layer widths ``sizes`` (input, hidden..., 1) with activation ``activation``.

    ``flat`` holds the parameters, ``grad`` their gradients and ``state`` the optimizer's state, all
    in the same flat layout, so that the optimizer steps every model with a handful of elementwise
    operations. ``W`` and ``b`` are the per-layer views.
    """

    def __init__(self, m: int, sizes: Sequence[int], activation: str, dtype: torch.dtype, device: torch.device):
        self.sizes, self.m, self.t = list(sizes), m, 0
        self.function = get_activation(activation).function
        self.flat = torch.empty(numel(m, sizes), dtype=dtype, device=device)
        self.state: dict[str, torch.Tensor] = {}
        self._bind()

    def _bind(self) -> None:
        self.grad = torch.zeros_like(self.flat)
        self.W, self.b = views(self.flat, self.m, self.sizes)
        self._leaves: dict[tuple, tuple[list, list]] = {}
        self._parts: list[tuple[slice, dict]] = []

    def model_params(self, i: int) -> list[torch.Tensor]:
        """Model ``i``'s parameters as ``nn.Linear`` holds them: ``(out, in)`` weights, then biases."""
        return [t for W, b in zip(self.W, self.b) for t in (W[i].t(), b[i])]

    def keep(self, rows: torch.Tensor) -> None:
        """Keep only the models at positions ``rows``: parameters and optimizer state."""
        def take(buf: torch.Tensor) -> torch.Tensor:
            parts = [v[rows].reshape(-1) for pair in zip(*views(buf, self.m, self.sizes)) for v in pair]
            return torch.cat(parts)
        self.flat = take(self.flat)
        self.state = {k: take(v) for k, v in self.state.items()}
        self.m = int(rows.numel())
        self._bind()

    def spread(self, per_model: torch.Tensor) -> torch.Tensor:
        """One value per model spread over that model's parameters, in the flat layout (a per-model lr)."""
        buf = torch.empty_like(self.flat)
        for W, b in zip(*views(buf, self.m, self.sizes)):
            W.copy_(per_model.view(-1, 1, 1).expand_as(W))
            b.copy_(per_model.view(-1, 1).expand_as(b))
        return buf

    def forward(self, x: torch.Tensor, rows: slice | torch.Tensor = slice(None), params=None) -> torch.Tensor:
        """Logits ``(r, n)`` of the models ``rows`` (a slice, or positions) on ``x``: ``(n, d)`` shared
        by all, or ``(r, n, d)``; ``params``: that chunk's ``(weights, biases)`` if not the views'."""
        weights, biases = params or ([W[rows] for W in self.W], [b[rows] for b in self.b])
        h = x if x.dim() == 3 else x.expand(weights[0].shape[0], *x.shape)
        last = len(weights) - 1
        for i, (W, b) in enumerate(zip(weights, biases)):
            h = torch.baddbmm(b.unsqueeze(1), h, W)
            if i < last:
                h = self.function(h)
        return h.squeeze(-1)

    def _chunk_leaves(self, rows: slice) -> tuple[list, list]:
        """The trainable tensors of the models ``rows``: leaves that share memory with ``flat`` and
        accumulate their gradients into ``grad``'s views (made once per chunk, kept until ``keep``)."""
        key = (rows.start, rows.stop)
        if key not in self._leaves:
            gW, gb = views(self.grad, self.m, self.sizes)
            pairs = ([], [])
            for params, grads, out in ((self.W, gW, pairs[0]), (self.b, gb, pairs[1])):
                for p, g in zip(params, grads):
                    leaf = p[rows].detach().requires_grad_()
                    leaf.grad = g[rows]
                    out.append(leaf)
            self._leaves[key] = pairs
        return self._leaves[key]

    def backward(self, x: torch.Tensor, y: torch.Tensor, chunk: int) -> torch.Tensor:
        """Write every model's gradient of its own loss on ``(x, y)`` into ``grad``, ``chunk`` models at
        a time (a chunk's activations stay in cache); returns the per-model losses ``(m,)``."""
        self.grad.zero_()
        losses = []
        for start in range(0, self.m, chunk):
            rows = slice(start, min(start + chunk, self.m))
            loss = bce(self.forward(x if x.dim() == 2 else x[rows], params=self._chunk_leaves(rows)),
                       y if y.dim() == 1 else y[rows])
            loss.sum().backward()
            losses.append(loss.detach())
        return torch.cat(losses)

    @torch.no_grad()
    def step(self, optimizer: Optimizer, lr: torch.Tensor, settings: dict) -> None:
        """One step of ``optimizer`` (a row of the table) on every model; ``lr`` a 0-dim tensor or a
        flat buffer of per-model rates (:meth:`spread`). The step is elementwise, so stepping the
        buffer slice by slice is the same step."""
        self.t += 1
        if lr.dim() == 0 and optimizer.uniform_step is not None:  # one rate for all: torch's fused kernel
            optimizer.uniform_step(self.flat, self.grad, self.state, float(lr), self.t, **settings)
            return
        if not self._parts:
            size = STEP_SLICE if self.flat.device.type == "cpu" else self.flat.numel()
            self._parts = [(s, {k: v[s] for k, v in self.state.items()})
                           for s in (slice(a, a + size) for a in range(0, self.flat.numel(), max(size, 1)))]
        for s, state in self._parts:
            optimizer.step(self.flat[s], self.grad[s], state, lr if lr.dim() == 0 else lr[s], self.t, **settings)
        if self._parts and self._parts[0][1] and not self.state:  # its first step made the state: one buffer each
            self.state = {k: torch.cat([state[k] for _, state in self._parts]) for k in self._parts[0][1]}
            for s, state in self._parts:
                state.update({k: v[s] for k, v in self.state.items()})

    def finite(self) -> torch.Tensor:
        """Per model: is every parameter tensor's sum finite (the plain loop's divergence test)?"""
        sums = [t.sum(dim=tuple(range(1, t.dim()))) for pair in zip(self.W, self.b) for t in pair]
        return torch.isfinite(torch.stack(sums)).all(0)
