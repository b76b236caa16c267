"""The empirical neural tangent kernel of a batch: Theta(x, x') = J(x) J(x')^T, J the Jacobian of the
outputs with respect to the parameters (Jacot, Gabriel and Hongler 2018), by ``torch.func`` as in
PyTorch's NTK tutorial, with its eigenvalues and condition number (Xiao, Pennington and Schoenholz
2020: a large condition number predicts slow training). Measured as :mod:`initlab.signal` measures:
in eval mode, parameters unchanged, on finite inputs moved to the model's device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import jacrev, jvp, vjp, vmap

from .errors import InitlabError
from .signal import _batch, _evaluating, _numpy, _one_line, _single, _state

#: Above this many numbers (examples x outputs x parameters) the NTK is built column by column.
MAX_NTK_JACOBIAN = 50_000_000


@dataclass
class NTK:
    """The empirical NTK of a batch: ``kernel`` is ``(n * k, n * k)`` (example-major: row ``i * k + a``
    is example i's output a), ``eigenvalues`` descending (float64), ``condition`` = largest / smallest
    (inf when the smallest is 0 to the rounding of the parameters' dtype: under largest x eps x size),
    ``method`` "jacobian" (J J^T from the per-example Jacobians) or "products" (one kernel column per
    vjp and jvp)."""

    kernel: np.ndarray
    eigenvalues: np.ndarray
    condition: float
    examples: int
    outputs: int
    parameters: int
    method: str

    def to_dict(self, with_kernel: bool = False) -> dict:
        out = {"eigenvalues": self.eigenvalues.tolist(), "condition": self.condition, "examples": self.examples,
               "outputs": self.outputs, "parameters": self.parameters, "method": self.method,
               "trace": float(np.trace(self.kernel))}
        if with_kernel:
            out["kernel"] = self.kernel.tolist()
        return out


def ntk(model: nn.Module, inputs: torch.Tensor, output: int | None = None, *, method: str = "auto") -> NTK:
    """The empirical neural tangent kernel of ``model`` on a small batch,

    .. math:: \\Theta_{ia, jb} = \\sum_p \\frac{\\partial f_a(x_i)}{\\partial \\theta_p}
              \\frac{\\partial f_b(x_j)}{\\partial \\theta_p},

    over every trainable parameter (Jacot et al. 2018), with its eigenvalues and condition number
    (Xiao, Pennington and Schoenholz 2020: a large condition number predicts slow training).

    Parameters
    ----------
    model : nn.Module
        Any model; its first output tensor (flattened per example) is f. Token-id inputs work.
    inputs : Tensor
        The batch (examples first, finite); each example goes through the model alone.
    output : int, optional
        Only this output coordinate (a scalar-output kernel, n x n); None: every output.
    method : {"auto", "jacobian", "products"}
        "jacobian" builds the per-example Jacobians (``vmap(jacrev)``) and multiplies them;
        "products" builds the kernel one column at a time (``vjp`` then ``jvp``), in memory of a
        few parameter copies; "auto" takes "jacobian" up to 5e7 numbers.

    >>> import torch, initlab
    >>> k = initlab.ntk(initlab.mlp(4, [32], 1, "tanh"), torch.randn(6, 4, generator=torch.Generator().manual_seed(0)))
    >>> k.kernel.shape, bool((k.eigenvalues > 0).all())
    ((6, 6), True)
    """
    if method not in ("auto", "jacobian", "products"):
        raise InitlabError(f"method is one of auto, jacobian, products; got {method!r}.")
    if output is not None and (not isinstance(output, int) or isinstance(output, bool) or output < 0):
        raise InitlabError(f"output is an output coordinate (an integer >= 0) or None; got {output!r}.")
    names = [k for k, p in model.named_parameters() if p.requires_grad]
    if not names:
        raise InitlabError("the model has no trainable parameters: its NTK is 0.")
    x = _batch(inputs, None, "ntk", model)
    with _evaluating(model):
        state = _state(model)
        params = {k: state[k] for k in names}
        fixed = {k: v for k, v in state.items() if k not in params}
        f = _single(model)
        try:
            width = f(state, x[0]).numel()
        except Exception as e:
            raise _one_line(e) from None
        if output is not None and output >= width:
            raise InitlabError(f"output {output} is past the model's {width} outputs (0 to {width - 1}).")
        pick = (lambda out: out) if output is None else (lambda out: out[output:output + 1])
        g = lambda p, xi: pick(f({**fixed, **p}, xi))  # noqa: E731
        k = 1 if output is not None else width
        count = sum(p.numel() for p in params.values())
        chosen = method if method != "auto" else ("jacobian" if len(x) * k * count <= MAX_NTK_JACOBIAN
                                                  else "products")
        try:
            theta = _ntk_jacobian(g, params, x) if chosen == "jacobian" else _ntk_products(g, params, x, k)
        except Exception as e:
            raise _one_line(e) from None
    theta = _numpy(theta)
    if not np.isfinite(theta).all():
        raise InitlabError("the NTK holds NaN or inf: the model's outputs or their gradients overflow at these "
                           "parameters and inputs.")
    theta = (theta + theta.T) / 2
    ev = np.linalg.eigvalsh(theta)[::-1].copy()
    eps = torch.finfo(next(iter(params.values())).dtype).eps  # the kernel's own rounding, not float64's
    return NTK(theta, ev, condition(ev, eps), len(x), k, count, chosen)


def condition(eigenvalues: np.ndarray, eps: float) -> float:
    """Largest over smallest eigenvalue; inf when the smallest is under largest x eps x size (0 to the
    rounding of a kernel computed at precision ``eps``)."""
    top, low = float(eigenvalues[0]), float(eigenvalues[-1])
    return math.inf if top <= 0 or low <= top * eps * len(eigenvalues) else top / low


def _ntk_jacobian(g, params: dict, x: torch.Tensor) -> torch.Tensor:
    jac = vmap(jacrev(g), in_dims=(None, 0))(params, x)      # name -> (n, k, *shape)
    n = len(x)
    theta = None
    for j in jac.values():
        j = j.reshape(n * j.shape[1], -1)
        theta = j @ j.T if theta is None else theta + j @ j.T
    return theta


def _ntk_products(g, params: dict, x: torch.Tensor, k: int, chunk: int = 16) -> torch.Tensor:
    """Theta e_c = J (J^T e_c), one column c per unit cotangent, ``chunk`` columns at a time."""
    F = lambda p: vmap(g, in_dims=(None, 0))(p, x).reshape(-1)  # noqa: E731
    _, pull = vjp(F, params)
    first = next(iter(params.values()))
    eye = torch.eye(len(x) * k, dtype=first.dtype, device=first.device)
    cols = []
    for start in range(0, len(eye), chunk):
        tangents = vmap(lambda e: pull(e)[0])(eye[start:start + chunk])
        cols.append(vmap(lambda t: jvp(F, (params,), (t,))[1])(tangents))
    return torch.cat(cols).T
