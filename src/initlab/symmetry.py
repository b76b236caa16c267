"""Symmetry: how many neurons of each hidden layer are really different.

Neurons that start with identical parameters compute the same function, get the same gradient and
stay identical (the chapter's symmetry problem): the layer behaves like one neuron.
:func:`effective_width` counts the distinct neurons per hidden layer on a batch of inputs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .checks import call_fitting, check_finite, expect
from .errors import InitlabError
from .layers import LAYER_TYPES


@dataclass
class LayerWidth:
    """One hidden layer: ``width`` neurons, of which ``effective_width`` are distinct; neurons of
    one group differ by at most ``max_difference`` (absolute, on the batch), which shows how exact
    the symmetry is; ``spread`` is the largest difference between any two neurons of the layer."""

    layer: str
    width: int
    effective_width: int
    max_difference: float
    spread: float

    def to_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def hidden_outputs(model: nn.Module, X: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each hidden layer's output on ``X`` as ``(samples, neurons)``: every Linear or convolution but
    the last one run, in forward order (a convolution's channels are its neurons, positions samples)."""
    expect(model, "model", "effective_width")
    expect(X, "tensor", "effective_width", "X (a batch of inputs)")
    check_finite(X)
    param = next(model.parameters(), None)
    if param is None:
        raise InitlabError(f"effective_width needs a model with parameters; {type(model).__name__} has none.")
    outputs: dict[str, torch.Tensor] = {}
    names = {m: n for n, m in model.named_modules() if isinstance(m, LAYER_TYPES)}

    def hook(module, _inputs, out):
        h = out.detach()
        if h.dim() > 2:  # (N, C, *spatial) -> (N * spatial, C)
            h = h.transpose(0, 1).reshape(h.shape[1], -1).T
        if h.data_ptr() == out.data_ptr():  # a copy: an in-place activation after the layer would overwrite it
            h = h.clone()
        outputs[names[module]] = h

    handles = [m.register_forward_hook(hook) for m in names]
    try:
        call_fitting(model, X.to(param.device, param.dtype))
    finally:
        for h in handles:
            h.remove()
    if len(outputs) < 2:
        raise InitlabError("effective_width needs a model with at least one hidden layer "
                           "(two or more Linear or convolution layers).")
    return dict(list(outputs.items())[:-1])


def _blocks(H: torch.Tensor, tol: float, rounds: int = 8) -> list[torch.Tensor]:
    """Candidate groups of columns: two columns within ``tol`` everywhere have means within ``tol``
    and agree within ``tol`` on every single row, so sorting by the mean and then by a few rows and
    cutting at gaps wider than ``tol`` never separates columns that belong together."""
    w = H.shape[1]
    label = torch.zeros(w, dtype=torch.long)
    keys = [H.mean(0)] + [H[i] for i in torch.linspace(0, H.shape[0] - 1, min(rounds, H.shape[0])).long().tolist()]
    for key in keys:
        order = torch.argsort(key, stable=True)
        order = order[torch.argsort(label[order], stable=True)]  # by block, then by key within the block
        lab, k = label[order], key[order]
        cut = torch.ones(w, dtype=torch.bool)
        cut[1:] = (lab[1:] != lab[:-1]) | ((k[1:] - k[:-1]) > tol)
        label = torch.empty_like(label)
        label[order] = torch.cumsum(cut.long(), 0) - 1
        if int(label.max()) + 1 == w:  # every column alone: nothing left to compare
            break
    order = torch.argsort(label, stable=True)
    return list(torch.split(order, torch.bincount(label).tolist()))


def count_distinct(H: torch.Tensor, tol: float) -> tuple[int, float]:
    """Greedy grouping of the columns of ``H`` (samples x neurons) whose largest absolute difference
    is within ``tol``: ``(number of groups, largest difference inside a group)``.

    Columns are first cut into candidate blocks (:func:`_blocks`) and only columns of one block are
    compared pairwise (fast when all are distinct, as in any random initialization)."""
    H = H.double()
    count, worst = 0, 0.0
    for block in _blocks(H, tol):
        if block.numel() == 1:
            count += 1
            continue
        cols = H[:, block].T
        dist = torch.cdist(cols, cols, p=float("inf"))
        unassigned = torch.ones(block.numel(), dtype=torch.bool)
        for j in range(block.numel()):
            if not unassigned[j]:
                continue
            members = unassigned & (dist[j] <= tol)
            worst = max(worst, float(dist[j][members].max()))
            unassigned &= ~members
            count += 1
    return count, worst


def effective_width(model: nn.Module, X: torch.Tensor, rtol: float = 1e-3) -> list[LayerWidth]:
    """The number of distinct neurons in each hidden layer of ``model`` on inputs ``X``.

    Two neurons count once when their outputs on every input of ``X`` agree within
    ``rtol`` times the layer's largest absolute output. A constant initialization gives 1 in every
    layer; a random one gives the width.

    >>> import initlab
    >>> m = initlab.mlp(2, [8, 8], 1, "tanh"); _ = initlab.initialize(m, "constant", value=0.1)
    >>> [w.effective_width for w in initlab.effective_width(m, torch.randn(50, 2))]
    [1, 1]
    """
    if not (isinstance(rtol, (int, float)) and not isinstance(rtol, bool) and math.isfinite(rtol) and rtol >= 0):
        raise InitlabError(f"effective_width needs rtol as a finite number >= 0; got rtol={rtol!r}.")
    result = []
    for name, H in hidden_outputs(model, X).items():
        finite = torch.isfinite(H).all()
        scale = float(H.abs().max()) if finite else float("nan")
        if not finite:  # a diverged model: nothing to compare
            result.append(LayerWidth(name, H.shape[1], 0, float("nan"), float("nan")))
            continue
        count, worst = count_distinct(H, rtol * scale + 1e-30)
        spread = float((H.max(1).values - H.min(1).values).max()) if H.numel() else 0.0
        result.append(LayerWidth(name, H.shape[1], count, worst, spread))
    return result
