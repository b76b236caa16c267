"""The one table of optimizers: how :func:`initlab.train` builds each one, and how
:func:`initlab.train_many` steps the same rule over many models' stacked parameters at once.

Adding an optimizer is one row here plus its tests (``tests/test_optimizers.py`` checks that every
row's stacked step equals ``torch.optim`` to float tolerance, and ``tests/test_ensemble.py`` that
``train_many`` equals ``train`` with it). Every entry point (``train``, ``train_many``, sweeps, the
playground, the run config) reads the names and hyperparameters from here; nothing falls back to
another rule.

A stacked step updates ``param`` in place from ``grad`` with a learning rate ``lr`` that broadcasts
against it (one value per model), keeping its state in ``state``; ``t`` counts the steps taken,
from 1. It is the torch rule written out, with torch's defaults, so that each model's slice moves as
``torch.optim`` would move that model alone.

This module does not import torch (the CLI's help reads the names without it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import InitlabError, unknown_name

BETAS, EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's and AdamW's defaults
RMS_ALPHA = 0.99                 # torch.optim.RMSprop's default


def _sgd(param, grad, state: dict, lr, t: int, **_) -> None:
    """w <- w - lr g."""
    param.addcmul_(grad, lr, value=-1.0)


def _adam_direction(grad, state: dict, t: int):
    """Adam's step direction m_hat / (sqrt(v_hat) + eps) (Kingma and Ba 2015) as torch computes it,
    but for the 1 / (1 - beta1^t) that the caller applies: one temporary tensor, the rest in place."""
    if "m" not in state:
        state["m"], state["v"] = grad.new_zeros(grad.shape), grad.new_zeros(grad.shape)
    m, v = state["m"], state["v"]
    m.lerp_(grad, 1 - BETAS[0])
    v.mul_(BETAS[1]).addcmul_(grad, grad, value=1 - BETAS[1])
    out = v.sqrt().div_((1 - BETAS[1] ** t) ** 0.5).add_(EPS)
    return _div_into(m, out, out)


def _div_into(a, b, out):
    """``a / b`` written into ``out``."""
    import torch

    return torch.div(a, b, out=out)


def _adam(param, grad, state: dict, lr, t: int, **_) -> None:
    """w <- w - lr m_hat / (sqrt(v_hat) + eps)."""
    param.addcmul_(_adam_direction(grad, state, t), lr, value=-1.0 / (1 - BETAS[0] ** t))


def _adamw(param, grad, state: dict, lr, t: int, weight_decay: float = 0.01) -> None:
    """w <- w (1 - lr lambda), then Adam's step: decoupled weight decay (Loshchilov and Hutter 2019)."""
    if isinstance(lr, float):
        param.mul_(1 - lr * weight_decay)
    else:
        param.addcmul_(param, lr, value=-weight_decay)
    _adam(param, grad, state, lr, t)


def _rmsprop(param, grad, state: dict, lr, t: int, **_) -> None:
    """v <- alpha v + (1 - alpha) g^2; w <- w - lr g / (sqrt(v) + eps) (Hinton's lecture 6e)."""
    if "v" not in state:
        state["v"] = grad.new_zeros(grad.shape)
    v = state["v"]
    v.mul_(RMS_ALPHA).addcmul_(grad, grad, value=1 - RMS_ALPHA)
    out = v.sqrt().add_(EPS)
    param.addcmul_(_div_into(grad, out, out), lr, value=-1.0)


def _torch_adam(param, grad, state: dict, lr: float, t: int, weight_decay: float = 0.0,
                decoupled: bool = False) -> None:
    """Adam (AdamW when ``decoupled``) over the whole of ``param`` with one learning rate: torch's own
    fused kernel (``torch.optim.adam.adam(fused=True)``, what ``Adam(fused=True)`` runs), one pass."""
    import torch
    from torch.optim.adam import adam

    if "m" not in state:
        state["m"], state["v"] = grad.new_zeros(grad.shape), grad.new_zeros(grad.shape)
    steps = [torch.tensor(float(t - 1), device=param.device)]  # the kernel counts this step itself
    adam([param], [grad], [state["m"]], [state["v"]], [], steps, fused=True, amsgrad=False, beta1=BETAS[0],
         beta2=BETAS[1], lr=lr, weight_decay=weight_decay, eps=EPS, maximize=False, decoupled_weight_decay=decoupled)


def _torch_adamw(param, grad, state: dict, lr: float, t: int, weight_decay: float = 0.01) -> None:
    _torch_adam(param, grad, state, lr, t, weight_decay, decoupled=True)


@dataclass(frozen=True)
class Optimizer:
    """One row: the ``torch.optim`` class ``torch_name`` with ``torch_kwargs`` (torch's defaults
    otherwise), the hyperparameters a run may set (``params``, with defaults), the stacked step,
    and how many parameter-sized tensors of state it keeps (for memory estimates).

    ``uniform_step``, where torch has a fused kernel for the rule, is the same update when every model
    has one learning rate (a float), over the whole buffer in one pass; it keeps the same state."""

    name: str
    torch_name: str
    step: Callable[..., None]
    states: int
    params: dict[str, Any] = field(default_factory=dict)
    torch_kwargs: dict[str, Any] = field(default_factory=dict)
    uniform_step: Callable[..., None] | None = None

    def make(self, parameters, lr: float, **params):
        """The ``torch.optim`` optimizer over ``parameters`` (what :func:`initlab.train` steps)."""
        import torch

        return getattr(torch.optim, self.torch_name)(parameters, lr=lr, **self.torch_kwargs,
                                                     **self.settings(params))

    def settings(self, params: dict | None = None) -> dict:
        """``params`` checked and completed with this optimizer's defaults."""
        params = dict(params or {})
        for key, value in params.items():
            if key not in self.params:
                takes = ", ".join(self.params) or "no hyperparameter but lr"
                raise InitlabError(f"optimizer '{self.name}' takes no {key}; it takes {takes}.")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
                raise InitlabError(f"{key} must be a non-negative number; got {value!r}.")
        return {**self.params, **params}


OPTIMIZERS: dict[str, Optimizer] = {o.name: o for o in [
    Optimizer("sgd", "SGD", _sgd, states=0),
    Optimizer("adam", "Adam", _adam, states=2, uniform_step=_torch_adam),
    Optimizer("adamw", "AdamW", _adamw, states=2, params={"weight_decay": 0.01}, uniform_step=_torch_adamw),
    Optimizer("rmsprop", "RMSprop", _rmsprop, states=1),
]}


def get(name: str) -> Optimizer:
    """The row called ``name``; an unknown name lists the known ones."""
    if not isinstance(name, str) or name not in OPTIMIZERS:
        raise unknown_name("optimizer", name, OPTIMIZERS)
    return OPTIMIZERS[name]


def names() -> list[str]:
    return list(OPTIMIZERS)
