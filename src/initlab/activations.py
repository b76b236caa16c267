"""The one table of activations: everything initlab knows about each nonlinearity, in one row.

Every other module reads this table: :mod:`initlab.models` builds its modules, :mod:`initlab.schemes`
takes its gain, :mod:`initlab.theory` its function and derivatives, the probe and the diagnosis
recognize it by its module or its autograd node and suggest its scheme, :func:`initlab.train_many`
runs its torch function, and the CLI lists its names. Adding an activation is one row here (and its
tests in ``tests/test_activations.py``, which check the derivatives against autograd).

It imports neither torch nor matplotlib (``initlab --help`` lists the names without loading torch):
a row names its module class in ``torch.nn`` and its function in ``torch.nn.functional``, and
:attr:`Activation.module` and :attr:`Activation.function` look them up when first asked.

>>> from initlab.activations import ACTIVATIONS
>>> ACTIVATIONS["tanh"].gain(), ACTIVATIONS["relu"].suggested
(1.6666666666666667, 'he_normal')
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .errors import unknown_name

_SQRT_2PI = math.sqrt(2 * math.pi)
#: SELU's constants (Klambauer et al. 2017).
SELU_ALPHA, SELU_SCALE = 1.6732632423543772, 1.0507009873554805
LEAKY_SLOPE = 0.01  # nn.LeakyReLU's default


def _erf(x):
    from scipy.special import erf  # scipy comes with scikit-learn

    return erf(x)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _gelu(x):
    return 0.5 * x * (1 + _erf(x / math.sqrt(2)))


def _silu(x):
    return x * _sigmoid(x)


def _elu(x):
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))


def _second_moment_gain(phi: Callable) -> Callable[[], float]:
    """1 / sqrt(E[phi(z)^2]), z ~ N(0, 1): the gain that keeps a layer's second moment where torch's
    ``calculate_gain`` has none (it gives ReLU's sqrt(2) for ReLU)."""
    def gain() -> float:
        z, w = np.polynomial.hermite_e.hermegauss(120)
        return float(1 / math.sqrt(np.sum(w * phi(z) ** 2) / np.sum(w)))
    return gain


def _leaky_relu_gain(negative_slope: float = LEAKY_SLOPE) -> float:
    """sqrt(2 / (1 + a^2)) for slope a (He et al. 2015)."""
    return math.sqrt(2.0 / (1.0 + negative_slope**2))


@dataclass(frozen=True)
class Activation:
    """One row of the table.

    ``phi``, ``dphi`` and ``d2phi`` act on numpy arrays (mean-field theory); ``function`` on tensors
    (the batched trainer; ``torch.nn.functional.<function_name>``, None for the identity); ``module``
    is the ``torch.nn.<module_name>`` class a model uses; ``gain`` the factor that
    keeps a layer's second moment (``torch.nn.init.calculate_gain``'s values); ``suggested`` the named
    scheme that keeps the variance and ``sigma_w2`` = fan_in * Var(W) that scheme gives a square
    hidden layer; ``nodes`` the names of the autograd nodes it leaves in a graph (how a functional
    call such as ``F.relu(x)`` is recognized); ``can_die`` says that a unit whose output is never
    positive is dead, with no gradient to revive it (ReLU; not LeakyReLU, whose slope below 0 passes
    one), and ``saturated`` marks the outputs where the derivative has
    all but vanished (for the probe's dead and saturated fractions).
    """

    name: str
    module_name: str
    function_name: str | None
    phi: Callable
    dphi: Callable
    d2phi: Callable
    gain: Callable[..., float]
    suggested: str
    sigma_w2: float
    nodes: tuple[str, ...] = field(default=())
    can_die: bool = False
    saturated: Callable | None = None
    module_home: str = "torch.nn"

    @property
    def module(self):
        """The module class (imports torch): ``torch.nn.<module_name>``, or initlab's own for the
        activations torch has no module for (``module_home``, like ``initlab.models.Sine``)."""
        import importlib

        return getattr(importlib.import_module(self.module_home), self.module_name)

    @property
    def function(self):
        """The tensor function (imports torch): ``torch.nn.functional.<function_name>``, else
        ``torch.<function_name>`` (``torch.sin``)."""
        import torch
        from torch.nn import functional as F

        if self.function_name is None:
            return lambda x: x
        return getattr(F, self.function_name, None) or getattr(torch, self.function_name)

    def make(self):
        """A fresh module of this activation."""
        return self.module()


ACTIVATIONS: dict[str, Activation] = {a.name: a for a in [
    Activation("relu", "ReLU", "relu",
               lambda x: np.maximum(x, 0), lambda x: (x > 0).astype(float), lambda x: np.zeros_like(x),
               lambda: math.sqrt(2.0), "he_normal", 2.0, ("ReluBackward0",), can_die=True),
    Activation("leaky_relu", "LeakyReLU", "leaky_relu",
               lambda x: np.where(x > 0, x, LEAKY_SLOPE * x), lambda x: np.where(x > 0, 1.0, LEAKY_SLOPE),
               lambda x: np.zeros_like(x), _leaky_relu_gain, "he_normal", 2.0,
               ("LeakyReluBackward0", "LeakyReluBackward1")),  # never dead: its slope below 0 passes a gradient
    Activation("tanh", "Tanh", "tanh",
               np.tanh, lambda x: 1 - np.tanh(x) ** 2, lambda x: -2 * np.tanh(x) * (1 - np.tanh(x) ** 2),
               lambda: 5.0 / 3.0, "xavier_uniform", 1.0, ("TanhBackward0",), saturated=lambda a: a.abs() > 0.99),
    Activation("sigmoid", "Sigmoid", "sigmoid",
               _sigmoid, lambda x: _sigmoid(x) * (1 - _sigmoid(x)),
               lambda x: _sigmoid(x) * (1 - _sigmoid(x)) * (1 - 2 * _sigmoid(x)),
               lambda: 1.0, "xavier_uniform", 1.0, ("SigmoidBackward0",),
               saturated=lambda a: (2 * a - 1).abs() > 0.99),
    # GELU has no closed-form gain; ReLU's sqrt(2) is used, as GELU behaves like ReLU away from zero.
    Activation("gelu", "GELU", "gelu",
               _gelu, lambda x: 0.5 * (1 + _erf(x / math.sqrt(2))) + x * np.exp(-x * x / 2) / _SQRT_2PI,
               lambda x: np.exp(-x * x / 2) / _SQRT_2PI * (2 - x * x),
               lambda: math.sqrt(2.0), "he_normal", 2.0, ("GeluBackward0",)),
    Activation("selu", "SELU", "selu",
               lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0))),
               lambda x: SELU_SCALE * np.where(x > 0, 1.0, SELU_ALPHA * np.exp(np.minimum(x, 0))),
               lambda x: SELU_SCALE * np.where(x > 0, 0.0, SELU_ALPHA * np.exp(np.minimum(x, 0))),
               lambda: 0.75, "lecun_normal", 1.0, ("EluBackward0",)),
    # SiLU (swish) and ELU have no gain in torch: theirs keeps the second moment, as ReLU's sqrt(2) does.
    Activation("silu", "SiLU", "silu",
               _silu, lambda x: _sigmoid(x) * (1 + x * (1 - _sigmoid(x))),
               lambda x: _sigmoid(x) * (1 - _sigmoid(x)) * (2 + x * (1 - 2 * _sigmoid(x))),
               _second_moment_gain(_silu), "he_normal", _second_moment_gain(_silu)() ** 2, ("SiluBackward0",)),
    # ELU leaves SELU's autograd node (EluBackward0): a functional F.elu reads as selu; its module is its own.
    Activation("elu", "ELU", "elu",
               _elu, lambda x: np.where(x > 0, 1.0, np.exp(np.minimum(x, 0))),
               lambda x: np.where(x > 0, 0.0, np.exp(np.minimum(x, 0))),
               _second_moment_gain(_elu), "he_normal", _second_moment_gain(_elu)() ** 2, ()),
    # sin(x): linear near 0 like tanh, so Xavier's sigma_w^2 = 1; its module is initlab.models.Sine.
    Activation("sine", "Sine", "sin",
               np.sin, np.cos, lambda x: -np.sin(x),
               _second_moment_gain(np.sin), "xavier_uniform", 1.0, ("SinBackward0",), module_home="initlab.models"),
    Activation("identity", "Identity", None,
               lambda x: x, lambda x: np.ones_like(x), lambda x: np.zeros_like(x),
               lambda: 1.0, "xavier_uniform", 1.0, ()),
]}
#: Other names for a row (``"linear"`` is PyTorch's name for no nonlinearity in ``calculate_gain``).
ALIASES = {"linear": "identity"}
#: The activation of each ``torch.nn`` class name, for the probe (``BY_MODULE[type(m).__name__]``,
#: checked to be that very class by :func:`of_module`).
BY_MODULE: dict[str, str] = {a.module_name: a.name for a in ACTIVATIONS.values()}
#: The activation of each autograd node name, for activations written as functions.
BY_NODE: dict[str, str] = {node: a.name for a in ACTIVATIONS.values() for node in a.nodes}
#: What the diagnosis suggests when it cannot tell the activation: the data-dependent scheme.
UNKNOWN_SUGGESTED = "lsuv"


def names() -> list[str]:
    """The activations' names, in table order."""
    return list(ACTIVATIONS)


def get(name: str) -> Activation:
    """The row called ``name`` (or one of its :data:`ALIASES`); an unknown name lists the known ones."""
    if isinstance(name, str) and name in ALIASES:
        name = ALIASES[name]
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise unknown_name("activation", name, ACTIVATIONS)
    return ACTIVATIONS[name]


def help_text() -> str:
    """The names as a CLI help line: ``relu, leaky_relu, tanh, ...``."""
    return ", ".join(ACTIVATIONS) + "."


def of_module(module) -> str | None:
    """The name of ``module``'s activation when it is one of the table's modules, else None."""
    name = BY_MODULE.get(type(module).__name__)
    return name if name is not None and type(module) is ACTIVATIONS[name].module else None


def non_default(module) -> list[str]:
    """The settings of a table activation module that differ from its class's defaults, as
    ``"negative_slope=0.5"`` (``[]``: the form the table describes; ``inplace`` does not count)."""
    default = vars(type(module)())
    return [f"{k}={v!r}" for k, v in vars(module).items()
            if not k.startswith("_") and k not in ("training", "inplace") and default.get(k) != v]
