"""Models: ``mlp()``, the chapter's fully connected network, with named layers.

>>> from initlab import mlp
>>> mlp(2, [16, 16], 1, "tanh")
Sequential(
  (fc1): Linear(in_features=2, out_features=16, bias=True)
  (act1): Tanh()
  (fc2): Linear(in_features=16, out_features=16, bias=True)
  (act2): Tanh()
  (out): Linear(in_features=16, out_features=1, bias=True)
)
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

from torch import nn

from .activations import get as get_activation
from .errors import InitlabError


class Sine(nn.Module):
    """``sin(x)``, the activation row ``sine`` (torch has no module for it)."""

    def forward(self, x):
        return x.sin()


def make_activation(name: str) -> nn.Module:
    """A fresh activation module called ``name`` (a row of :data:`initlab.activations.ACTIVATIONS`)."""
    return get_activation(name).make()


def parse_hidden(hidden: int | str | Sequence[int]) -> list[int]:
    """Hidden widths from ``[32, 32]``, ``32``, ``"32,32"`` or ``"32x2"`` (width x depth)."""
    try:
        if isinstance(hidden, int):
            widths = [hidden]
        elif isinstance(hidden, str):
            text = hidden.replace(" ", "")
            if "x" in text:
                width, depth = text.split("x")
                widths = [int(width)] * int(depth)
            else:
                widths = [int(w) for w in text.split(",") if w]
        else:
            widths = [int(w) for w in hidden]
    except (TypeError, ValueError):
        raise InitlabError(f"hidden widths are like '32,32,32' or '32x3' (width x depth); got {hidden!r}.")
    if not widths or any(w < 1 for w in widths):
        raise InitlabError(f"every hidden layer needs width >= 1 and there must be at least one; got {hidden!r}.")
    return widths


def mlp(in_features: int = 2, hidden: int | str | Sequence[int] = (16, 16, 16), out_features: int = 1,
        activation: str = "relu") -> nn.Sequential:
    """A fully connected network ``in -> hidden[0] -> ... -> hidden[-1] -> out``.

    Layers are named ``fc1, act1, fc2, act2, ..., out``; the activation's name is kept as
    ``model.initlab_activation`` so that schemes with a gain (``he_normal``) pick it up.

    Parameters
    ----------
    in_features, out_features : int
        Input and output sizes (2 and 1 for the chapter's points and their probability of black).
    hidden : list of int, int or str
        Width of each hidden layer: ``[32, 32, 32]``, ``"32,32,32"`` or ``"32x3"``.
    activation : str
        A name of :data:`initlab.activations.ACTIVATIONS` (relu, leaky_relu, tanh, sigmoid, gelu, selu,
        silu, elu, sine, identity).
    """
    widths = parse_hidden(hidden)
    if in_features < 1 or out_features < 1:
        raise InitlabError(f"in_features and out_features must be >= 1; got {in_features}, {out_features}.")
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    prev = in_features
    for i, width in enumerate(widths, start=1):
        layers[f"fc{i}"] = nn.Linear(prev, width)
        layers[f"act{i}"] = make_activation(activation)
        prev = width
    layers["out"] = nn.Linear(prev, out_features)
    model = nn.Sequential(layers)
    model.initlab_activation = activation
    return model
