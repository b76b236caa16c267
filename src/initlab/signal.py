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

The empirical neural tangent kernel, measured the same way, is :func:`initlab.ntk.ntk`.

Every function measures the model as it stands, in eval mode (no dropout; batch norm with its running
statistics), with its parameters unchanged, on inputs moved to its device; the mean-field prediction
is given for an MLP of Linear layers with random, zero-mean weights and one known activation in the
table's form, and is None, with the reason, for any other model (with a note where the layers are
narrow).
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
from .activations import non_default, of_module
from .checks import FIT_ERRORS, check_finite, does_not_fit, to_model
from .errors import InitlabError
from .probe import call_names, first_tensor, trace

#: Above this many numbers (examples x inputs x outputs) the Jacobian is not built: random projections
#: estimate it.
MAX_JACOBIAN = 20_000_000
#: Under this hidden width the mean-field prediction comes with a note: it is a large-width limit.
NARROW = 32
#: The random projections' directions come from ``seed ^ PROBE_STREAM``: a stream no scheme seed uses
#: (a generator seeded with ``seed`` itself is the one :func:`initlab.initialize` and
#: ``torch.manual_seed`` draw weights from, and its probes would be copies of the first layer's rows).
PROBE_STREAM = 0x9E37_79B9_7F4A_7C15  # 2^64 / the golden ratio, splitmix64's increment
#: Subspace (power) iterations of the randomized SVD that gives the projections' top singular values
#: (Halko, Martinsson and Tropp 2011, algorithm 4.4): each costs one JVP and one VJP per probe.
POWER_ITERATIONS = 2


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


def _batch(inputs, n: int | None, what: str, model: nn.Module | None = None) -> torch.Tensor:
    """The first ``n`` of ``inputs``, checked finite and moved to ``model``'s device (and float dtype)."""
    if not isinstance(inputs, torch.Tensor) or inputs.dim() < 1:
        raise InitlabError(f"{what} takes a batch of inputs as one tensor (examples first); got "
                           f"{type(inputs).__name__}.")
    if n is not None:
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise InitlabError(f"n must be an integer >= 1; got {n!r}.")
        inputs = inputs[:n]
    check_finite(inputs, "the input batch")
    param = next(iter(model.parameters()), None) if model is not None else None
    return inputs if param is None else to_model(inputs, param)


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().cpu().numpy()


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


@contextmanager
def _composite_attention():
    """Attention as plain differentiable operations for the measurement: no fused fast path in
    nn.MultiheadAttention / nn.TransformerEncoderLayer and the math kernel of
    scaled_dot_product_attention (the fused kernels have no forward-mode derivative); the fast path's
    setting restored after (as :func:`initlab.lsuv` does)."""
    mha = getattr(torch.backends, "mha", None)
    fastpath = mha.get_fastpath_enabled() if mha is not None else None
    try:
        if mha is not None:
            mha.set_fastpath_enabled(False)
        with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
            yield
    finally:
        if mha is not None:
            mha.set_fastpath_enabled(fastpath)


def _one_line(e: Exception) -> InitlabError:
    if isinstance(e, InitlabError):
        return e
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    if isinstance(e, NotImplementedError):  # an operation with no derivative, not inputs that do not fit
        return InitlabError(f"the model uses an operation torch.func cannot run or differentiate: "
                            f"NotImplementedError: {first}")
    if "vmap" in first or "functorch" in first:  # .item(), a branch on a tensor's value, an in-place input
        return InitlabError(f"the model cannot run under torch.func's vmap, which measures each example: {first} "
                            f"(write its forward without .item() or Python branches on tensor values).")
    return does_not_fit(e) if isinstance(e, FIT_ERRORS) else InitlabError(f"{type(e).__name__}: {first}")


def mlp_structure(model: nn.Module) -> tuple[str, list[nn.Linear]] | str:
    """``(activation, linears)`` when ``model`` is an MLP that mean-field theory describes: an
    ``nn.Sequential`` of Linear layers with one known activation module, in the form the activation
    table describes (its default parameters), between each two (and none after the last), every
    weight random with mean about 0; else the reason it is not, as one sentence."""
    if not isinstance(model, nn.Sequential):
        kinds = sorted({type(m).__name__ for m in model.modules() if L.is_weight_layer(m)} - {"Linear"})
        has = f" (it has {', '.join(kinds)})" if kinds else ""
        return (f"the mean-field prediction is for an MLP (an nn.Sequential of Linear layers and one activation); "
                f"this model is a {type(model).__name__}{has}")
    # every entry in order, a module used twice twice (children() would list a shared ReLU once)
    children = [m for m in model if not isinstance(m, (nn.Dropout, nn.Identity))]
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
    for m in acts:
        changed = non_default(m)
        if changed:
            return (f"the mean-field prediction uses the table's {type(m).__name__} with its default parameters; "
                    f"this model's has {', '.join(changed)}")
    where = {id(m): name for name, m in model.named_children()}
    for m in linears:
        weak = _not_random(m.weight)
        if weak:
            return f"the mean-field prediction is for random, zero-mean weights; layer {where[id(m)]}'s {weak}"
    return (names.pop() if names else "identity"), linears


def _not_random(weight: torch.Tensor) -> str | None:
    """Why ``weight`` is not a random, zero-mean draw (all equal; a mean large beside its spread), or None."""
    w = weight.detach().double().reshape(-1)
    if w.numel() < 2:
        return None
    if not bool(torch.isfinite(w).all()):
        return "weights hold NaN or inf"
    std, mean = float(w.std()), float(w.mean())
    if std == 0:
        return f"weights are all {mean:.3g} (std 0)"
    if abs(mean) > max(0.5, 4 / math.sqrt(w.numel())) * std:
        return f"weights have mean {mean:.3g}, large beside their std {std:.3g}"
    return None


def _narrow(linears: list[nn.Linear]) -> str | None:
    """A note where the narrowest hidden layer is under :data:`NARROW` units."""
    hidden = [m.out_features for m in linears[:-1]]
    if hidden and min(hidden) < NARROW:
        w = min(hidden)
        return (f"hidden width {w} is under {NARROW}: mean-field theory is the wide-layer limit; expect the "
                f"measurement to differ from it by about 1/sqrt({w}) = {1 / math.sqrt(w):.2f} (relative)")
    return None


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
    ``method == "exact"``; with projections, only the k largest, estimated by randomized SVD with
    :data:`POWER_ITERATIONS` subspace iterations (each at most the true one: lower bounds, tight for
    the largest where the spectrum decays). ``mean_s2`` is the mean squared singular value
    (||J||_F^2 / min(in, out), averaged over the examples) and ``mean_s2_error`` its standard error;
    ``spread`` = std(s^2) / mean(s^2) over every singular value of every example (0 at perfect isometry) and
    ``spread_error`` its standard error (both errors 0 when exact; with projections, Hutchinson's
    estimates of sum s^2 and sum s^4, the spread's error by the jackknife over the probes).
    ``condition`` is the median over examples of s_max / s_min (None with projections).
    ``predicted_mean_s2``: mean-field theory's mean s^2, the product over the layers of
    sigma_w^2 E[phi'(h_l)^2] from the inputs' own second moment (None, with ``reason``, where no
    prediction applies; ``note`` where it applies with a caveat); ``point`` the hidden layers'
    mean-field point (chi_1 at q*).
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
    spread_error: float = 0.0
    note: str | None = None

    def to_dict(self) -> dict:
        return {"singular_values": self.singular_values.tolist(), "mean_s2": self.mean_s2,
                "mean_s2_error": self.mean_s2_error, "max": self.max, "condition": self.condition,
                "spread": self.spread, "spread_error": self.spread_error, "method": self.method,
                "in_dim": self.in_dim, "out_dim": self.out_dim, "predicted_mean_s2": self.predicted_mean_s2,
                "reason": self.reason, "note": self.note,
                "point": None if self.point is None else dict(vars(self.point))}


def jacobian_spectrum(model: nn.Module, inputs: torch.Tensor, n: int | None = 8, *,
                      max_numbers: int = MAX_JACOBIAN, probes: int = 64, seed: int = 0) -> JacobianSpectrum:
    """The singular values of d model(x) / dx at the first ``n`` of ``inputs``, with mean-field
    theory's mean s^2 beside them for an MLP.

    Parameters
    ----------
    model : nn.Module
        Any model of float inputs; its first output tensor is the output.
    inputs : Tensor
        A batch, examples first, finite; each example's Jacobian is taken alone (a batch of one).
    n : int or None, default 8
        How many of the inputs (None: all).
    max_numbers : int, default 20,000,000
        When the Jacobians of the sample (examples x inputs x outputs numbers) would hold more than
        this, they are not built: ``probes`` random Gaussian directions per example give ||J||_F^2
        and sum s^4 (Hutchinson's estimator, with standard errors) and the top singular values
        (randomized SVD with :data:`POWER_ITERATIONS` subspace iterations, Halko, Martinsson and
        Tropp 2011: each value a lower bound on the true one). That costs (2 + 2 x
        POWER_ITERATIONS) x ``probes`` forward- or reverse-mode passes per example.
    probes : int, default 64
        Random directions per example in that case.
    seed : int, default 0
        Seed of the random directions' own generator, which draws from ``seed ^``
        :data:`PROBE_STREAM`: a stream apart from the one ``initialize(..., seed=seed)`` or
        ``torch.manual_seed(seed)`` drew the weights from (directions equal to the weights' rows
        would not be random to the model).

    Notes
    -----
    For an MLP ``x -> W_1 -> phi -> ... -> W_L -> phi -> W_out`` mean-field theory gives
    E||J||_F^2 = out * prod_l sigma_{w,l}^2 E[phi'(h_l)^2] * sigma_{w,out}^2, the preactivation
    variances h_l following the length map from the inputs' mean second moment; at the fixed point q*
    this is chi_1^L times the readout's sigma_w^2 (Pennington et al. 2017, eq. 6).

    Attention is measured as plain operations (nn.MultiheadAttention's fused fast path off, the math
    kernel of scaled_dot_product_attention; the fast path's setting restored after). Forward mode
    (J v) is used where it is cheaper; where an operation has no forward-mode derivative, reverse
    mode (J^T u, and J v as the derivative of that linear map) measures the same numbers.

    >>> import torch, initlab
    >>> net = initlab.mlp(16, [16] * 4, 16, "tanh"); _ = initlab.initialize(net, "orthogonal", seed=0)
    >>> s = initlab.jacobian_spectrum(net, 0.1 * torch.randn(4, 16, generator=torch.Generator().manual_seed(0)))
    >>> s.singular_values.shape, round(s.max, 1)
    ((4, 16), 1.0)
    """
    x = _batch(inputs, n, "jacobian_spectrum", model)
    if not x.is_floating_point():
        raise InitlabError("the input-output Jacobian needs float inputs; these are "
                           f"{str(x.dtype).replace('torch.', '')} (token ids have no derivative: measure from "
                           "the embedding's output with a model that starts after it).")
    if not isinstance(probes, int) or isinstance(probes, bool) or probes < 2:
        raise InitlabError(f"probes must be an integer >= 2; got {probes!r}.")
    if not isinstance(max_numbers, int) or isinstance(max_numbers, bool) or max_numbers < 1:
        raise InitlabError(f"max_numbers must be an integer >= 1; got {max_numbers!r}.")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise InitlabError(f"seed must be an integer; got {seed!r}.")
    with _evaluating(model), _composite_attention():
        try:
            state, f = _state(model), _single(model)
            g = lambda xi: f(state, xi.reshape(x.shape[1:]))  # noqa: E731  (one example, flattened in and out)
            flat = x.reshape(len(x), -1)
            in_dim, out_dim = flat.shape[1], g(flat[0]).numel()
            rank = min(in_dim, out_dim)
            if len(x) * in_dim * out_dim <= max_numbers:
                J = _forward_else_reverse(lambda: vmap(jacfwd(g))(flat), lambda: vmap(jacrev(g))(flat),
                                          forward=out_dim > in_dim)
                s = np.linalg.svd(_numpy(J), compute_uv=False)
                s2 = s**2
                ms2, err, spread, spread_err = float(np.mean(s2.sum(1) / rank)), 0.0, _spread(s2), 0.0
                method = "exact"
                cond = float(np.median(s[:, 0] / np.maximum(s[:, -1], 1e-300)))
            else:
                s, ms2, err, spread, spread_err = _projected(g, flat, probes, seed, rank)
                method, cond = f"projections (top {s.shape[1]} of {rank} singular values, {probes} probes)", None
        except Exception as e:  # the user's model on the user's inputs: one line
            raise _one_line(e) from None
    structure = mlp_structure(model)
    predicted, point, reason, note = None, None, None, None
    if isinstance(structure, str):
        reason = structure
    else:
        activation, linears = structure
        predicted = _predicted_mean_s2(activation, linears, x, out_dim / rank)
        point = _hidden_point(activation, linears)
        note = _narrow(linears)
    return JacobianSpectrum(s, ms2, float(err), float(s.max()), cond, spread, method, in_dim, out_dim,
                            predicted, point, reason, float(spread_err), note)


def _spread(s2: np.ndarray) -> float:
    mean = float(s2.mean())
    return float(s2.std() / mean) if mean > 0 else math.inf


def _spread_of(m2: float, m4: float) -> float:
    """std(s^2) / mean(s^2) from the means of s^2 and s^4."""
    return math.sqrt(max(m4 - m2 * m2, 0.0)) / m2 if m2 > 0 else math.inf


def _forward_else_reverse(forward_fn, reverse_fn, forward: bool = True):
    """``forward_fn()`` (forward mode), and ``reverse_fn()`` where an operation has no forward-mode
    derivative (it raises NotImplementedError) or ``forward`` is False."""
    if forward:
        try:
            return forward_fn()
        except NotImplementedError:
            pass
    return reverse_fn()


def _probe_generator(seed: int) -> torch.Generator:
    """The projections' own stream: ``seed ^`` :data:`PROBE_STREAM` (as a 64-bit seed)."""
    return torch.Generator().manual_seed((seed ^ PROBE_STREAM) & 0xFFFF_FFFF_FFFF_FFFF)


def _orth(A: torch.Tensor) -> torch.Tensor:
    """An orthonormal basis of the columns of ``A`` (QR in float64, back in ``A``'s dtype)."""
    return torch.linalg.qr(A.double())[0].to(A.dtype)


def _projected(g, flat: torch.Tensor, k: int, seed: int, rank: int):
    """Per example, ``k`` Gaussian probes w (from :func:`_probe_generator`): ||J w||^2 / rank and
    ||J^T J w||^2 / rank, unbiased for mean(s^2) and mean(s^4) (Hutchinson), and the top-k singular
    values by randomized SVD with :data:`POWER_ITERATIONS` subspace iterations (Halko et al. 2011,
    algorithm 4.4; the rows J^T J w span J^T orth(J w), the first half of the first iteration).
    Returns (singular values, mean s^2, its standard error, spread, its jackknife standard error)."""
    gen = _probe_generator(seed)
    svals, m2, m4 = [], [], []
    for xi in flat:
        omega = torch.randn(k, xi.numel(), generator=gen, dtype=xi.dtype).to(xi.device)
        out, pull = vjp(g, xi)
        pull_rows = lambda U: vmap(lambda u: pull(u)[0])(U)  # noqa: E731  (rows u -> rows J^T u)

        def by_reverse(V):  # J v as the derivative of the linear map u -> J^T u (reverse over reverse)
            _, push_t = vjp(lambda u: pull(u)[0], torch.zeros_like(out))
            return vmap(lambda v: push_t(v)[0])(V)

        push_rows = lambda V: _forward_else_reverse(  # noqa: E731  (rows v -> rows J v)
            lambda: vmap(lambda v: jvp(g, (xi,), (v,))[1])(V), lambda: by_reverse(V))
        Y = push_rows(omega)                                          # J w_j, (k, out)
        Z = pull_rows(Y)                                              # J^T J w_j, (k, in)
        m2.append((_numpy(Y) ** 2).sum(1) / rank)
        m4.append((_numpy(Z) ** 2).sum(1) / rank)
        B = Z if POWER_ITERATIONS else pull_rows(_orth(Y.T).T)        # rows spanning (J^T Q)^T, Q = orth(J omega)
        for _ in range(POWER_ITERATIONS):                             # Q^T J, Q = orth((J J^T)^i J omega)
            B = pull_rows(_orth(push_rows(_orth(B.T).T).T).T)
        svals.append(np.linalg.svd(_numpy(B), compute_uv=False))
    m2, m4 = np.array(m2), np.array(m4)                               # (examples, k)
    err = math.sqrt(float(np.sum(m2.var(axis=1, ddof=1) / k))) / len(m2)
    spread = _spread_of(float(m2.mean()), float(m4.mean()))
    keep = ~np.eye(k, dtype=bool)
    leave_one = np.array([_spread_of(float(m2[:, keep[j]].mean()), float(m4[:, keep[j]].mean())) for j in range(k)])
    spread_err = math.sqrt((k - 1) / k * float(np.sum((leave_one - leave_one.mean()) ** 2)))
    return np.stack(svals), float(m2.mean()), err, spread, spread_err


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
    about 0, as for tanh without biases: c* is not defined there; :func:`initlab.theory.c_star`);
    ``note`` a caveat on the prediction (narrow layers)."""

    layers: list[str]
    measured: list[float]
    measured_std: list[float]
    c0: float
    predicted: list[float] | None = None
    c_star: float | None = None
    reason: str | None = None
    skipped: list[str] = field(default_factory=list)
    note: str | None = None

    def error(self) -> float | None:
        """The mean over the layers of |measured - predicted| (None without a prediction): the one
        summary of the fit, in the page, the README and the example."""
        if self.predicted is None:
            return None
        return float(np.mean(np.abs(np.subtract(self.measured, self.predicted))))

    def to_dict(self) -> dict:
        return {"layers": self.layers, "measured": self.measured, "measured_std": self.measured_std, "c0": self.c0,
                "predicted": self.predicted, "c_star": self.c_star, "reason": self.reason, "skipped": self.skipped,
                "error": self.error(), "note": self.note}


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
    x = _batch(inputs, n, "correlation_map", model)
    if len(x) < 2:
        raise InitlabError(f"correlation_map needs at least 2 inputs (a pair); got {len(x)}.")
    with _evaluating(model), torch.no_grad():
        calls, _ = trace(model, x)
    calls = [c for c in calls if L.is_weight_layer(c.module)]
    layers, measured, spread, skipped = [], [], [], []
    for c, name in zip(calls, call_names([c.name for c in calls])):
        if c.values.dim() < 1 or c.values.shape[0] != len(x):
            skipped.append(name)  # examples not on the first axis (a sequence-first RNN): no per-example vector
            continue
        cos = _cosines(c.values.reshape(len(x), -1))
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
    result.note = _narrow(linears)
    point = _hidden_point(activation, linears)
    result.c_star = theory.c_star(activation, point.sigma_w2, point.sigma_b2, point.q_star, point.chi_1)
    return result


def _predicted_correlations(activation: str, linears: list[nn.Linear], flat: torch.Tensor) -> list[float]:
    points = theory.network_points(nn.Sequential(*linears))
    sw, sb = [p["sigma_w2"] for p in points], [p["sigma_b2"] for p in points]
    X = flat.double()
    gram = _numpy(X @ X.T / X.shape[1])
    q = sw[0] * gram + sb[0]
    paths = []
    for a, b in zip(*np.triu_indices(len(X), k=1)):
        c1 = q[a, b] / math.sqrt(q[a, a] * q[b, b]) if q[a, a] > 0 and q[b, b] > 0 else 1.0
        paths.append([c for _, _, c in theory.pair_map(activation, sw[1:], sb[1:], q[a, a], q[b, b], c1)])
    return [float(v) for v in np.mean(paths, axis=0)]
