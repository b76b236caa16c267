"""Signal propagation at initialization, measured on the user's own network beside mean-field theory:
the input-output Jacobian's singular values, the correlation map of pairs of inputs, and the empirical
neural tangent kernel.

- :func:`jacobian_spectrum`: dynamical isometry is every singular value of the input-output Jacobian
  near 1 (Pennington, Schoenholz and Ganguli 2017, "Resurrecting the sigmoid in deep learning through
  dynamical isometry"; 2018, "The emergence of spectral universality in deep networks"). In mean
  field the mean squared singular value is the product of the layers' chi_1 (chi_1^L at q*).
- :func:`correlation_map`: how the cosine similarity of two inputs' representations moves layer by
  layer, beside the c-map iteration from the inputs' own correlation (Poole et al. 2016; Schoenholz
  et al. 2017; :func:`initlab.theory.pair_map`).
- :func:`ntk`: the empirical neural tangent kernel Theta(x, x') = J(x) J(x')^T, J the Jacobian of the
  outputs with respect to the parameters (Jacot, Gabriel and Hongler 2018), by ``torch.func`` as in
  PyTorch's NTK tutorial; its eigenvalues and condition number (Xiao, Pennington and Schoenholz 2020).

Every function measures the model as it stands, in eval mode (no dropout; batch norm with its running
statistics), with its parameters unchanged; the mean-field prediction is given for an MLP of Linear
layers and one known activation, and is None, with the reason, for any other model.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, jacfwd, jacrev, jvp, vjp, vmap

from . import layers as L
from . import theory
from .activations import of_module
from .checks import FIT_ERRORS, does_not_fit
from .errors import InitlabError
from .probe import first_tensor, trace

#: Above this many input (and output) coordinates the Jacobian is estimated by random projections.
MAX_EXACT = 1024
#: Under this q* (tanh with no bias: q* = 0, approached slowly) the fixed point c* is not defined.
Q_DEGENERATE = 1e-3
#: Above this many numbers (examples x outputs x parameters) the NTK is built column by column.
MAX_NTK_JACOBIAN = 50_000_000


# --------------------------------------------------------------------------------------------------
# shared: the model as a function, its inputs, its mean-field structure

@contextmanager
def _evaluating(model: nn.Module):
    """The model in eval mode for the measurement, its modules' training flags restored after."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, t in flags:
            m.train(t)


def _batch(inputs, n: int | None, what: str) -> torch.Tensor:
    if not isinstance(inputs, torch.Tensor) or inputs.dim() < 1:
        raise InitlabError(f"{what} takes a batch of inputs as one tensor (examples first); got "
                           f"{type(inputs).__name__}.")
    if n is not None:
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise InitlabError(f"n must be an integer >= 1; got {n!r}.")
        inputs = inputs[:n]
    return inputs


def _single(model: nn.Module):
    """``f(state, x)``: the model with parameters and buffers ``state`` on one example ``x`` (a batch
    of one), its primary output flattened."""
    def f(state, x):
        out = first_tensor(functional_call(model, state, (x.unsqueeze(0),)))
        if out is None:
            raise InitlabError("the model's output holds no tensor.")
        return out.reshape(-1)
    return f


def _state(model: nn.Module) -> dict:
    return {**{k: v.detach() for k, v in model.named_parameters()}, **dict(model.named_buffers())}


def _one_line(e: Exception) -> InitlabError:
    if isinstance(e, InitlabError):
        return e
    return does_not_fit(e) if isinstance(e, FIT_ERRORS) else InitlabError(f"{type(e).__name__}: {e}")


def mlp_structure(model: nn.Module) -> tuple[str, list[nn.Linear]] | str:
    """``(activation, linears)`` when ``model`` is an MLP that mean-field theory describes: an
    ``nn.Sequential`` of Linear layers with one known activation module between each two (and none
    after the last); else the reason it is not, as one sentence."""
    if not isinstance(model, nn.Sequential):
        kinds = sorted({type(m).__name__ for m in model.modules() if L.is_weight_layer(m)} - {"Linear"})
        has = f" (it has {', '.join(kinds)})" if kinds else ""
        return (f"the mean-field prediction is for an MLP (an nn.Sequential of Linear layers and one activation); "
                f"this model is a {type(model).__name__}{has}")
    children = [m for m in model.children() if not isinstance(m, (nn.Dropout, nn.Identity))]
    linears, acts = children[0::2], children[1::2]
    if not all(isinstance(m, nn.Linear) for m in linears) or not isinstance(children[-1], nn.Linear):
        other = next((type(m).__name__ for m in children if not isinstance(m, nn.Linear) and of_module(m) is None),
                     "layers out of order")
        return ("the mean-field prediction is for Linear layers with an activation between each two; this model has "
                f"{other}")
    names = {of_module(m) for m in acts}
    if None in names or len(names) > 1:
        return ("the mean-field prediction needs one known activation between every two Linear layers; this model "
                f"has {', '.join(sorted(type(m).__name__ for m in acts)) or 'none'}")
    return (names.pop() if names else "identity"), linears


@dataclass
class MeanFieldPoint:
    """Mean-field theory at an MLP's hidden layers: their average (sigma_w^2, sigma_b^2), q*, chi_1
    at q* and the number of hidden layers (so chi_1^L is ``chi_1 ** depth``)."""

    activation: str
    sigma_w2: float
    sigma_b2: float
    q_star: float | None
    chi_1: float | None
    depth: int


def _hidden_point(activation: str, linears: list[nn.Linear]) -> MeanFieldPoint:
    pts = theory.network_points(nn.Sequential(*linears))
    hidden = pts[1:] or pts
    sw = float(np.mean([p["sigma_w2"] for p in hidden]))
    sb = float(np.mean([p["sigma_b2"] for p in hidden]))
    try:
        q = theory.length_fixed_point(activation, sw, sb)
        chi = theory.chi_1(activation, sw, sb, q)
    except InitlabError:  # no finite fixed point: chi_1 at q* is not defined
        q = chi = None
    return MeanFieldPoint(activation, sw, sb, q, chi, len(linears) - 1)


# --------------------------------------------------------------------------------------------------
# the input-output Jacobian

@dataclass
class JacobianSpectrum:
    """The singular values of the input-output Jacobian at a sample of inputs.

    ``singular_values`` is ``(examples, k)``: every singular value of each example's Jacobian when
    ``method == "exact"``; with ``"projections"``, the k largest estimated by randomized SVD (each at
    most the true one). ``mean_s2`` is the mean squared singular value (||J||_F^2 / min(in, out),
    averaged over the examples) and ``mean_s2_error`` its standard error (0 when exact; Hutchinson's
    estimator otherwise). ``spread`` = std(s^2) / mean(s^2) over all the singular values (0 at
    perfect isometry); ``condition`` the median over examples of s_max / s_min (None with projections).
    ``predicted_mean_s2``: mean-field theory's mean s^2, the product over the layers of
    sigma_w^2 E[phi'(h_l)^2] from the inputs' own second moment (None, with ``reason``, where no
    prediction applies); ``point`` the hidden layers' mean-field point (chi_1 at q*).
    """

    singular_values: np.ndarray
    mean_s2: float
    mean_s2_error: float
    max: float
    condition: float | None
    spread: float
    method: str
    in_dim: int
    out_dim: int
    predicted_mean_s2: float | None = None
    point: MeanFieldPoint | None = None
    reason: str | None = None

    def to_dict(self) -> dict:
        return {"singular_values": self.singular_values.tolist(), "mean_s2": self.mean_s2,
                "mean_s2_error": self.mean_s2_error, "max": self.max, "condition": self.condition,
                "spread": self.spread, "method": self.method, "in_dim": self.in_dim, "out_dim": self.out_dim,
                "predicted_mean_s2": self.predicted_mean_s2, "reason": self.reason,
                "point": None if self.point is None else dict(vars(self.point))}


def jacobian_spectrum(model: nn.Module, inputs: torch.Tensor, n: int | None = 8, *, max_exact: int = MAX_EXACT,
                      probes: int = 64, seed: int = 0) -> JacobianSpectrum:
    """The singular values of d model(x) / dx at the first ``n`` of ``inputs``, with mean-field
    theory's mean s^2 beside them for an MLP.

    Parameters
    ----------
    model : nn.Module
        Any model of float inputs; its first output tensor is the output.
    inputs : Tensor
        A batch, examples first; each example's Jacobian is taken alone (a batch of one).
    n : int or None, default 8
        How many of the inputs (None: all).
    max_exact : int, default 1024
        When both the input and the output have more coordinates than this, the Jacobian is not
        built: ``probes`` random Gaussian directions give ||J||_F^2 (Hutchinson's estimator, with its
        standard error) and the top singular values (randomized SVD, Halko, Martinsson and Tropp 2011).
    probes : int, default 64
        Random directions per example in that case.
    seed : int, default 0
        Seed of the random directions' own generator.

    Notes
    -----
    For an MLP ``x -> W_1 -> phi -> ... -> W_L -> phi -> W_out`` mean-field theory gives
    E||J||_F^2 = out * prod_l sigma_{w,l}^2 E[phi'(h_l)^2] * sigma_{w,out}^2, the preactivation
    variances h_l following the length map from the inputs' mean second moment; at the fixed point q*
    this is chi_1^L times the readout's sigma_w^2 (Pennington et al. 2017, eq. 6).

    >>> import torch, initlab
    >>> net = initlab.mlp(16, [16] * 4, 16, "tanh"); _ = initlab.initialize(net, "orthogonal", seed=0)
    >>> s = initlab.jacobian_spectrum(net, 0.1 * torch.randn(4, 16, generator=torch.Generator().manual_seed(0)))
    >>> s.singular_values.shape, round(s.max, 1)
    ((4, 16), 1.0)
    """
    x = _batch(inputs, n, "jacobian_spectrum")
    if not x.is_floating_point():
        raise InitlabError("the input-output Jacobian needs float inputs; these are "
                           f"{str(x.dtype).replace('torch.', '')} (token ids have no derivative: measure from "
                           "the embedding's output with a model that starts after it).")
    if not isinstance(probes, int) or isinstance(probes, bool) or probes < 2:
        raise InitlabError(f"probes must be an integer >= 2; got {probes!r}.")
    with _evaluating(model):
        try:
            state, f = _state(model), _single(model)
            g = lambda xi: f(state, xi.reshape(x.shape[1:]))  # noqa: E731  (one example, flattened in and out)
            flat = x.reshape(len(x), -1)
            in_dim, out_dim = flat.shape[1], g(flat[0]).numel()
            if min(in_dim, out_dim) <= max_exact:
                J = vmap(jacrev(g) if out_dim <= in_dim else jacfwd(g))(flat)
                s = np.linalg.svd(J.detach().double().numpy(), compute_uv=False)
                ms2 = np.mean(np.sum(s**2, axis=1) / min(in_dim, out_dim))
                method, err = "exact", 0.0
                cond = float(np.median(s[:, 0] / np.maximum(s[:, -1], 1e-300)))
            else:
                s, ms2, err = _projected(g, flat, probes, seed, min(in_dim, out_dim))
                method, cond = f"projections ({probes} per example)", None
        except Exception as e:  # the user's model on the user's inputs: one line
            raise _one_line(e) from None
    s2 = s**2
    structure = mlp_structure(model)
    predicted, point, reason = None, None, None
    if isinstance(structure, str):
        reason = structure
    else:
        activation, linears = structure
        predicted = _predicted_mean_s2(activation, linears, x, out_dim / min(in_dim, out_dim))
        point = _hidden_point(activation, linears)
    return JacobianSpectrum(s, float(ms2), float(err), float(s.max()), cond,
                            float(s2.std() / s2.mean()) if s2.mean() > 0 else math.inf, method, in_dim, out_dim,
                            predicted, point, reason)


def _projected(g, flat: torch.Tensor, k: int, seed: int, rank: int):
    """Top-k singular values by randomized SVD and ||J||_F^2 / rank by Hutchinson, per example."""
    gen = torch.Generator().manual_seed(seed)
    svals, est, var = [], [], []
    for xi in flat:
        omega = torch.randn(k, xi.numel(), generator=gen, dtype=xi.dtype)
        Y = vmap(lambda v: jvp(g, (xi,), (v,))[1])(omega)            # J omega_j, (k, out)
        sq = Y.double().pow(2).sum(1) / rank
        Q = torch.linalg.qr(Y.T.double())[0].to(xi.dtype)             # (out, k)
        _, pull = vjp(g, xi)
        B = vmap(lambda u: pull(u)[0])(Q.T)                           # Q^T J, (k, in)
        svals.append(np.linalg.svd(B.double().numpy(), compute_uv=False))
        est.append(float(sq.mean()))
        var.append(float(sq.var()) / k)
    return np.stack(svals), float(np.mean(est)), float(math.sqrt(np.sum(var)) / len(est))


def _predicted_mean_s2(activation: str, linears: list[nn.Linear], x: torch.Tensor, scale: float) -> float | None:
    """out * prod_l sigma_w^2 E[phi'(h_l)^2] * sigma_out^2 / min(in, out): the layers' own measured
    sigma_w^2 and sigma_b^2, from the inputs' mean second moment."""
    points = theory.network_points(nn.Sequential(*linears))
    fans = [m.in_features for m in linears]
    vw = [p["sigma_w2"] / k for p, k in zip(points, fans)]
    vb = [p["sigma_b2"] for p in points]
    rows = theory.forward_variances(activation, fans, vw, vb, float(x.double().pow(2).mean()))
    product = math.prod(k * w * r["phi_prime_sq"] for k, w, r in zip(fans, vw, rows))
    return product * scale if math.isfinite(product) else None


# --------------------------------------------------------------------------------------------------
# the correlation map

@dataclass
class CorrelationMap:
    """Per weight layer (forward order), the mean cosine similarity of the representations of every
    pair of inputs (``measured``, and its standard deviation over the pairs), beside mean-field
    theory's c-map from each pair's own input correlation (``predicted``, averaged over the pairs;
    None with ``reason`` where no prediction applies). ``c0`` is the inputs' mean cosine similarity;
    ``c_star`` the fixed point at the hidden layers' mean (sigma_w^2, sigma_b^2) (None where q* is
    about 0, as for tanh without biases: c* is not defined there)."""

    layers: list[str]
    measured: list[float]
    measured_std: list[float]
    c0: float
    predicted: list[float] | None = None
    c_star: float | None = None
    reason: str | None = None
    skipped: list[str] = field(default_factory=list)

    def error(self) -> float | None:
        """The largest |measured - predicted| over the layers (None without a prediction)."""
        if self.predicted is None:
            return None
        return float(max(abs(m - p) for m, p in zip(self.measured, self.predicted)))

    def to_dict(self) -> dict:
        return {"layers": self.layers, "measured": self.measured, "measured_std": self.measured_std, "c0": self.c0,
                "predicted": self.predicted, "c_star": self.c_star, "reason": self.reason, "skipped": self.skipped,
                "error": self.error()}


def _cosines(rep: torch.Tensor) -> torch.Tensor:
    """The cosine similarity of every pair i < j of rows of ``rep`` (examples, features)."""
    r = rep.double()
    r = r / r.norm(dim=1, keepdim=True).clamp_min(1e-300)
    i, j = torch.triu_indices(len(r), len(r), offset=1)
    return (r @ r.T)[i, j]


def correlation_map(model: nn.Module, inputs, n: int | None = 16) -> CorrelationMap:
    """How alike the representations of two inputs become, layer by layer.

    For each weight layer's output (its preactivation, every example flattened to one vector), the
    mean over the pairs of the first ``n`` inputs of cos(h_l(x_a), h_l(x_b)); beside it, for an MLP,
    the c-map (:func:`initlab.theory.pair_map`) iterated from each pair's own layer-1 covariance,

    .. math:: q_{ab}^{1} = \\sigma_{w,1}^2 \\, x_a \\cdot x_b / n_{in} + \\sigma_{b,1}^2,

    with every layer's measured (sigma_w^2, sigma_b^2) (Poole et al. 2016, Schoenholz et al. 2017).
    In the ordered phase every pair becomes parallel (c -> c* = 1) over about xi_c layers; in the
    chaotic phase it decorrelates to c* < 1; a finite width adds O(1/sqrt(width)) noise to the
    measured cosines.

    >>> import torch, initlab
    >>> net = initlab.mlp(64, [64] * 3, 64, "relu"); _ = initlab.initialize(net, "he_normal", seed=0)
    >>> m = initlab.correlation_map(net, torch.randn(8, 64, generator=torch.Generator().manual_seed(0)))
    >>> len(m.layers), m.measured[-1] > m.c0
    (4, True)
    """
    x = _batch(inputs, n, "correlation_map")
    if len(x) < 2:
        raise InitlabError(f"correlation_map needs at least 2 inputs (a pair); got {len(x)}.")
    with _evaluating(model), torch.no_grad():
        calls, _ = trace(model, x)
    layers, measured, spread, skipped, counts = [], [], [], [], {}
    for c in calls:
        if not L.is_weight_layer(c.module):
            continue
        counts[c.name] = counts.get(c.name, 0) + 1
        name = c.name if counts[c.name] == 1 else f"{c.name}#{counts[c.name]}"
        if c.output.dim() < 1 or c.output.shape[0] != len(x):
            skipped.append(name)  # examples not on the first axis (a sequence-first RNN): no per-example vector
            continue
        cos = _cosines(c.output.reshape(len(x), -1))
        layers.append(name)
        measured.append(float(cos.mean()))
        spread.append(float(cos.std()) if cos.numel() > 1 else 0.0)
    if not layers:
        raise InitlabError("correlation_map found no weight layer whose output has the examples on its first axis.")
    flat = x.reshape(len(x), -1)
    c0 = float(_cosines(flat.float() if not flat.is_floating_point() else flat).mean())
    result = CorrelationMap(layers, measured, spread, c0, skipped=skipped)
    structure = mlp_structure(model)
    if isinstance(structure, str):
        result.reason = structure
        return result
    if not x.is_floating_point():
        result.reason = "the c-map starts from the inputs' correlation, and these inputs are not numbers"
        return result
    activation, linears = structure
    result.predicted = _predicted_correlations(activation, linears, flat)
    point = _hidden_point(activation, linears)
    if point.q_star is not None and point.q_star > Q_DEGENERATE:
        result.c_star = theory.correlation_fixed_point(activation, point.sigma_w2, point.sigma_b2, point.q_star)
    return result


def _predicted_correlations(activation: str, linears: list[nn.Linear], flat: torch.Tensor) -> list[float]:
    points = theory.network_points(nn.Sequential(*linears))
    sw, sb = [p["sigma_w2"] for p in points], [p["sigma_b2"] for p in points]
    X = flat.double()
    gram = (X @ X.T / X.shape[1]).numpy()
    q = sw[0] * gram + sb[0]
    paths = []
    for a, b in zip(*np.triu_indices(len(X), k=1)):
        c1 = q[a, b] / math.sqrt(q[a, a] * q[b, b]) if q[a, a] > 0 and q[b, b] > 0 else 1.0
        paths.append([c for _, _, c in theory.pair_map(activation, sw[1:], sb[1:], q[a, a], q[b, b], c1)])
    return [float(v) for v in np.mean(paths, axis=0)]


# --------------------------------------------------------------------------------------------------
# the empirical neural tangent kernel

@dataclass
class NTK:
    """The empirical NTK of a batch: ``kernel`` is ``(n * k, n * k)`` (example-major: row ``i * k + a``
    is example i's output a), ``eigenvalues`` descending, ``condition`` = largest / smallest (inf
    when the smallest is 0 to rounding), ``method`` "jacobian" (J J^T from the per-example
    Jacobians) or "products" (one kernel column per vjp and jvp)."""

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
        The batch (examples first); each example goes through the model alone.
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
    x = _batch(inputs, None, "ntk")
    if method not in ("auto", "jacobian", "products"):
        raise InitlabError(f"method is one of auto, jacobian, products; got {method!r}.")
    if output is not None and (not isinstance(output, int) or isinstance(output, bool) or output < 0):
        raise InitlabError(f"output is an output coordinate (an integer >= 0) or None; got {output!r}.")
    names = [k for k, p in model.named_parameters() if p.requires_grad]
    if not names:
        raise InitlabError("the model has no trainable parameters: its NTK is 0.")
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
    theta = theta.detach().double().numpy()
    theta = (theta + theta.T) / 2
    ev = np.linalg.eigvalsh(theta)[::-1].copy()
    top, low = ev[0], ev[-1]
    cond = math.inf if low <= max(top, 1e-300) * 1e-13 else float(top / low)
    return NTK(theta, ev, cond, len(x), k, count, chosen)


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
    eye = torch.eye(len(x) * k, dtype=next(iter(params.values())).dtype)
    cols = []
    for start in range(0, len(eye), chunk):
        tangents = vmap(lambda e: pull(e)[0])(eye[start:start + chunk])
        cols.append(vmap(lambda t: jvp(F, (params,), (t,))[1])(tangents))
    return torch.cat(cols).T
