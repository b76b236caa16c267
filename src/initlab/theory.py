"""Mean-field theory of deep random networks: how the variance of signals and gradients travels
through the layers at initialization.

Preactivations of a wide random layer are nearly Gaussian, so every layer's statistics follow from
the previous layer's through Gaussian expectations of the activation (Poole et al. 2016, "Exponential
expressivity in deep neural networks through transient chaos"; Schoenholz et al. 2017, "Deep
Information Propagation"). Expectations are computed by Gauss-Hermite quadrature, so any activation
works (tanh and gelu too, not only ReLU and linear).

Two uses:

- :func:`forward_variances` / :func:`backward_second_moments`: the per-layer recursion that
  :func:`initlab.diagnose` puts beside its measurements;
- :func:`length_fixed_point`, :func:`chi_1`, :func:`depth_scales`, :func:`phase`,
  :func:`critical_sigma_w2`: the order-to-chaos picture for (sigma_w^2, sigma_b^2);
- :func:`c_map` and :func:`pair_map`: the correlation of two inputs' preactivations layer by layer,
  which :func:`initlab.correlation_map` puts beside its measurement.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Callable, Sequence

import numpy as np
from numpy.polynomial.hermite_e import hermegauss

from .activations import ACTIVATIONS, get as get_activation
from .errors import InitlabError

# --------------------------------------------------------------------------------------------------
# input checks: once per public call, never inside the iterations

def _number(name: str, value, low: float | None = None, strict: bool = False) -> float:
    """``value`` as a float when it is a finite number (``>= low``, or ``> low`` when ``strict``)."""
    if not (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
            and math.isfinite(value)):
        raise InitlabError(f"{name} must be a finite number; got {value!r}.")
    if low is not None and (value < low or (strict and value == low)):
        raise InitlabError(f"{name} must be {'>' if strict else '>='} {low:g}; got {value!r}.")
    return float(value)


def _check_sigmas(sigma_w2, sigma_b2) -> None:
    _number("sigma_w^2", sigma_w2, 0.0)
    _number("sigma_b^2", sigma_b2, 0.0)


def activation_functions(activation: str | Callable) -> tuple[Callable, Callable, Callable]:
    """``(phi, phi', phi'')`` for a named activation; a callable gets numerical derivatives."""
    if callable(activation):
        phi, h = activation, 1e-4
        return (phi, lambda x: (phi(x + h) - phi(x - h)) / (2 * h),
                lambda x: (phi(x + h) - 2 * phi(x) + phi(x - h)) / (h * h))
    if not isinstance(activation, str):
        raise InitlabError(f"activation must be a name ({', '.join(ACTIVATIONS)}) or a callable; got "
                           f"{type(activation).__name__}.")
    row = get_activation(activation)
    return row.phi, row.dphi, row.d2phi


@lru_cache(maxsize=4)
def _nodes(n: int) -> tuple[np.ndarray, np.ndarray]:
    z, w = hermegauss(n)
    return z, w / w.sum()


def gaussian_expectation(f: Callable, variance: float, n: int = 200) -> float:
    """E[f(x)] for x ~ N(0, variance), by Gauss-Hermite quadrature with ``n`` nodes (even, so that
    no node sits on the kink of ReLU at 0)."""
    z, w = _nodes(n)
    return float(np.dot(w, f(math.sqrt(max(variance, 0.0)) * z)))


def _pair_expectation(f: Callable, g: Callable, q: float, c: float, n: int = 60, q2: float | None = None) -> float:
    """E[f(u1) g(u2)], (u1, u2) Gaussian with variances q (and ``q2`` for u2, q when None) and
    correlation c."""
    z, w = _nodes(n)
    z1, z2 = np.meshgrid(z, z, indexing="ij")
    ww = np.outer(w, w)
    c = min(max(c, -1.0), 1.0)
    s1, s2 = math.sqrt(max(q, 0.0)), math.sqrt(max(q if q2 is None else q2, 0.0))
    u1, u2 = s1 * z1, s2 * (c * z1 + math.sqrt(1 - c * c) * z2)
    return float(np.sum(ww * f(u1) * g(u2)))


# --------------------------------------------------------------------------------------------------
# the per-layer recursion (used by diagnose)

def forward_variances(activation: str | Callable, fan_ins: Sequence[int], weight_vars: Sequence[float],
                      bias_vars: Sequence[float], input_second_moment: float) -> list[dict]:
    """Predicted statistics of each layer of an MLP ``x -> W1 -> phi -> W2 -> phi ... -> WL``.

    Layer l's preactivation has variance ``q_l = fan_in_l * Var(W_l) * m_{l-1} + Var(b_l)``, where
    ``m_0`` is the inputs' mean second moment and ``m_l = E[phi(h)^2]``, ``h ~ N(0, q_l)``. Returns per
    layer ``preact_var``, ``act_mean``, ``act_var`` (of phi(h); the last layer has no activation, so
    its "activation" is its preactivation) and ``phi_prime_sq = E[phi'(h)^2]``.
    """
    phi, dphi, _ = activation_functions(activation)
    m, rows = input_second_moment, []
    for i, (k, vw, vb) in enumerate(zip(fan_ins, weight_vars, bias_vars)):
        q = k * vw * m + vb
        last = i == len(fan_ins) - 1
        if last:
            mean, second, dsq = 0.0, q, 1.0
        else:
            mean = gaussian_expectation(phi, q)
            second = gaussian_expectation(lambda x: phi(x) ** 2, q)
            dsq = gaussian_expectation(lambda x: dphi(x) ** 2, q)
        rows.append({"preact_var": q, "act_mean": mean, "act_var": max(second - mean * mean, 0.0),
                     "phi_prime_sq": dsq})
        m = second
    return rows


def backward_second_moments(forward: list[dict], fan_outs: Sequence[int], weight_vars: Sequence[float],
                            last_grad_second_moment: float) -> list[float]:
    """Predicted E[(dL/dh_l)^2] per layer, from the last layer's measured value backwards:
    ``E[g_l^2] = fan_out_{l+1} * Var(W_{l+1}) * E[phi'(h_l)^2] * E[g_{l+1}^2]``."""
    L = len(forward)
    g = [0.0] * L
    g[-1] = last_grad_second_moment
    for l in range(L - 2, -1, -1):
        g[l] = fan_outs[l + 1] * weight_vars[l + 1] * forward[l]["phi_prime_sq"] * g[l + 1]
    return g


# --------------------------------------------------------------------------------------------------
# order and chaos: fixed points, chi_1, depth scales, phases

@dataclass
class MeanField:
    """The mean-field picture of a deep network at (sigma_w^2, sigma_b^2)."""

    activation: str
    sigma_w2: float
    sigma_b2: float
    q_star: float
    c_star: float | None  # None where q* is about 0 (:func:`c_star`)
    chi_1: float
    xi_q: float
    xi_c: float
    phase: str
    critical_sigma_w2: float | None

    def to_dict(self) -> dict:
        return asdict(self)


def length_map(activation, sigma_w2: float, sigma_b2: float, q: float) -> float:
    """q -> sigma_w^2 E[phi(sqrt(q) z)^2] + sigma_b^2."""
    _check_sigmas(sigma_w2, sigma_b2)
    _number("q", q, 0.0)
    return _length_map(activation, sigma_w2, sigma_b2, q)


def _length_map(activation, sigma_w2: float, sigma_b2: float, q: float) -> float:
    phi = activation_functions(activation)[0]
    return sigma_w2 * gaussian_expectation(lambda x: phi(x) ** 2, q) + sigma_b2


def length_fixed_point(activation, sigma_w2: float, sigma_b2: float, q0: float = 1.0,
                       tol: float = 1e-10, max_iter: int = 3000) -> float:
    """q*, the fixed point of the length map, by iteration from ``q0``; an :class:`InitlabError` when
    q grows without bound (no finite fixed point, e.g. ReLU with sigma_w^2 > 2)."""
    _check_sigmas(sigma_w2, sigma_b2)
    q = _number("q0", q0, 0.0)
    _number("tol", tol, 0.0, strict=True)
    if not isinstance(max_iter, int) or isinstance(max_iter, bool) or max_iter < 1:
        raise InitlabError(f"max_iter must be an integer >= 1; got {max_iter!r}.")
    activation_functions(activation)
    for _ in range(max_iter):
        q_next = _length_map(activation, sigma_w2, sigma_b2, q)
        if not math.isfinite(q_next) or q_next > 1e12:
            raise InitlabError(f"the length map of {activation} at sigma_w^2={sigma_w2:g}, "
                               f"sigma_b^2={sigma_b2:g} has no finite fixed point: q grows without bound.")
        if abs(q_next - q) <= tol * max(1.0, q):
            return q_next
        q = q_next
    if q < q0:  # a slow, power-law approach to q* = 0 (tanh at sigma_b^2 = 0): q is within O(1/max_iter)
        return q
    raise InitlabError(f"the length map of {activation} at sigma_w^2={sigma_w2:g}, sigma_b^2={sigma_b2:g} "
                       f"did not converge in {max_iter} iterations (q={q:.3g}).")


def chi_1(activation, sigma_w2: float, sigma_b2: float, q_star: float | None = None) -> float:
    """chi_1 = sigma_w^2 E[phi'(sqrt(q*) z)^2]: the growth of a small perturbation per layer."""
    _check_sigmas(sigma_w2, sigma_b2)
    if q_star is not None:
        _number("q*", q_star, 0.0)
    q = length_fixed_point(activation, sigma_w2, sigma_b2) if q_star is None else q_star
    dphi = activation_functions(activation)[1]
    return sigma_w2 * gaussian_expectation(lambda x: dphi(x) ** 2, q)


def correlation_fixed_point(activation, sigma_w2: float, sigma_b2: float, q_star: float,
                            tol: float = 1e-9, max_iter: int = 2000) -> float:
    """c*, the fixed point of the correlation map c -> (sigma_w^2 E[phi(u1) phi(u2)] + sigma_b^2) / q*,
    by iterating :func:`pair_map` (the one c-map) from c = 0.5 with both inputs at q*. Where q* is
    about 0, or the map all but keeps c where it is, this number means nothing: :func:`c_star` says so."""
    return _iterate_c(activation, sigma_w2, sigma_b2, q_star, tol, max_iter)[0]


def _iterate_c(activation, sigma_w2, sigma_b2, q_star, tol=1e-9, max_iter=2000) -> tuple[float, bool]:
    """(c, converged): the c-map iterated from c = 0.5, three steps at a time; where the three agree on
    one geometric rate (the approach has become linear) the rest of the way is extrapolated (Aitken's
    delta squared; by at most 0.05 at a time, never onto -1 or 1), so that a slow approach near the
    critical line settles in tens of steps rather than thousands. Converged when c moves by under ``tol``."""
    _check_sigmas(sigma_w2, sigma_b2)
    _number("q*", q_star, 0.0)
    if q_star <= 0:
        return 1.0, True
    step = lambda c: pair_map(activation, [sigma_w2], [sigma_b2], q_star, q_star, c)[1][2]  # noqa: E731
    c = 0.5
    for _ in range(max_iter // 3):
        c1 = step(c)
        c2 = step(c1)
        c3 = step(c2)
        d1, d2, d3 = c1 - c, c2 - c1, c3 - c2
        if abs(d3) < tol:
            return c3, True
        r1, r2 = (d2 / d1, d3 / d2) if d1 != 0 and d2 != 0 else (0.0, 0.0)
        c_new = c3
        if 0 < r1 < 1 and 0 < r2 < 1 and abs(r2 - r1) <= 0.1 * (1 - r2):  # at most 0.05 at a time, inside (-1, 1)
            jump = d3 * r2 / (1 - r2)
            c_new = c3 + math.copysign(min(abs(jump), 0.05), jump)
            c_new = c_new if -1 < c_new < 1 else c3
        if abs(c_new - c) < tol:
            return c_new, True
        c = c_new
    return c, False


#: Under this q* (tanh with no bias: q* = 0, approached slowly) the fixed point c* is not defined:
#: near 0 the map is all but linear and keeps every correlation where it is.
Q_DEGENERATE = 1e-2


def c_star(activation, sigma_w2: float, sigma_b2: float, q_star: float | None,
           chi: float | None = None) -> float | None:
    """c*, by the one rule every caller uses: None where there is no finite q*, q* <= :data:`Q_DEGENERATE`
    or the iteration does not settle (c* is not defined, or not reached at any depth); 1 in the
    ordered phase (chi_1 < 1: every pair becomes parallel); else :func:`correlation_fixed_point`."""
    if q_star is None or q_star <= Q_DEGENERATE:
        return None
    chi = chi_1(activation, sigma_w2, sigma_b2, q_star) if chi is None else chi
    if chi < 1:
        return 1.0
    c, converged = _iterate_c(activation, sigma_w2, sigma_b2, q_star)
    return c if converged else None


#: Gauss-Hermite nodes per axis for the two-input expectations of :func:`pair_map`: exact to 1e-9 for
#: smooth activations; at ReLU's kink the error is about 0.2% of E[phi(u1) phi(u2)] (at c = 0.5).
PAIR_NODES = 100


def pair_map(activation, sigma_w2s: Sequence[float], sigma_b2s: Sequence[float], qa: float, qb: float,
             c: float) -> list[tuple[float, float, float]]:
    """Two inputs' preactivations through the layers of a deep random network: ``(q_a, q_b, c)`` at
    layer 1 (the given values) and after each further layer ``l`` with (sigma_w2s[l], sigma_b2s[l]):

    .. math::

        q_a' = \\sigma_w^2 E[\\phi(u_a)^2] + \\sigma_b^2, \\quad
        c' = \\frac{\\sigma_w^2 E[\\phi(u_a)\\phi(u_b)] + \\sigma_b^2}{\\sqrt{q_a' q_b'}},

    (u_a, u_b) Gaussian with variances (q_a, q_b) and correlation c (Poole et al. 2016, eqs. 3-5).
    Returns ``len(sigma_w2s) + 1`` triples; the expectations are 2-D Gauss-Hermite quadrature.
    """
    phi = activation_functions(activation)[0]
    for name, v in (("q_a", qa), ("q_b", qb)):
        _number(name, v, 0.0)
    _number("c", c, -1.0)
    if c > 1 + 1e-9:
        raise InitlabError(f"a correlation c must be from -1 to 1; got {c!r}.")
    sq = lambda x: phi(x) ** 2  # noqa: E731
    out = [(float(qa), float(qb), float(min(c, 1.0)))]
    for sw, sb in zip(sigma_w2s, sigma_b2s):
        _check_sigmas(sw, sb)
        na = sw * gaussian_expectation(sq, qa) + sb
        nb = sw * gaussian_expectation(sq, qb) + sb
        cross = sw * _pair_expectation(phi, phi, qa, c, n=PAIR_NODES, q2=qb) + sb
        c = min(max(cross / math.sqrt(na * nb), -1.0), 1.0) if na > 0 and nb > 0 else 1.0
        qa, qb = na, nb
        out.append((qa, qb, c))
    return out


def c_map(activation, sigma_w2: float, sigma_b2: float, c0: float, depth: int, q0: float | None = None) -> list[float]:
    """The correlation map iterated ``depth`` times from ``c0``: the correlation of two inputs'
    preactivations at layers 1, 2, ..., depth + 1 of a deep random network (``c0`` at layer 1).

    At the length fixed point (``q0=None``: both inputs start at q*, and stay there),

    .. math:: c_{l+1} = \\frac{\\sigma_w^2 E[\\phi(u_1)\\phi(u_2)] + \\sigma_b^2}{q^*},

    with (u_1, u_2) Gaussian of variance q* and correlation c_l (Poole et al. 2016; Schoenholz et al.
    2017, eq. 6); c_l approaches c* over about xi_c layers. With ``q0``, both inputs start at that
    length and the length moves layer by layer too (:func:`pair_map`).

    >>> round(c_map("relu", 2.0, 0.0, 0.5, 1, q0=1.0)[1], 3)  # the arc-cosine kernel gives 0.609
    0.61
    """
    _check_sigmas(sigma_w2, sigma_b2)
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 0:
        raise InitlabError(f"depth must be an integer >= 0; got {depth!r}.")
    q = length_fixed_point(activation, sigma_w2, sigma_b2) if q0 is None else _number("q0", q0, 0.0)
    return [c for _, _, c in pair_map(activation, [sigma_w2] * depth, [sigma_b2] * depth, q, q, c0)]


def depth_scales(activation, sigma_w2: float, sigma_b2: float, q_star: float, c_star: float) -> tuple[float, float]:
    """(xi_q, xi_c): how many layers the length and the correlation take to approach their fixed
    points (Schoenholz et al. 2017, eqs. 5 and 9). xi_c diverges where chi_1 = 1."""
    _check_sigmas(sigma_w2, sigma_b2)
    _number("q*", q_star, 0.0)
    _number("c*", c_star, -1.0)
    phi, dphi, ddphi = activation_functions(activation)
    rate_q = chi_1(activation, sigma_w2, sigma_b2, q_star) + sigma_w2 * gaussian_expectation(
        lambda x: ddphi(x) * phi(x), q_star)
    if c_star >= 1 - 1e-7:
        rate_c = chi_1(activation, sigma_w2, sigma_b2, q_star)
    else:
        rate_c = sigma_w2 * _pair_expectation(dphi, dphi, q_star, c_star)
    inv = lambda r: math.inf if r <= 0 or abs(math.log(r)) < 1e-12 else -1 / math.log(r)  # noqa: E731
    return abs(inv(rate_q)), abs(inv(rate_c))


def phase(chi: float, tol: float = 1e-3) -> str:
    """'ordered' (chi_1 < 1), 'chaotic' (chi_1 > 1) or 'critical' (|chi_1 - 1| <= tol)."""
    if not (isinstance(chi, (int, float, np.integer, np.floating)) and not isinstance(chi, bool)
            and not math.isnan(chi)):
        raise InitlabError(f"chi_1 must be a number; got {chi!r}.")
    if abs(chi - 1) <= tol:
        return "critical"
    return "ordered" if chi < 1 else "chaotic"


def critical_sigma_w2(activation, sigma_b2: float = 0.0, lo: float = 0.05, hi: float = 20.0,
                      tol: float = 1e-6) -> float | None:
    """The sigma_w^2 where chi_1 = 1 for this sigma_b^2 (bisection), or None when there is none in
    [lo, hi]."""
    _number("sigma_b^2", sigma_b2, 0.0)
    if not _number("lo", lo, 0.0, strict=True) < _number("hi", hi, 0.0, strict=True):
        raise InitlabError(f"critical_sigma_w2 needs 0 < lo < hi; got lo={lo!r}, hi={hi!r}.")
    activation_functions(activation)

    def excess(s):
        try:
            return chi_1(activation, s, sigma_b2) - 1
        except InitlabError:
            return math.inf
    f_lo, f_hi = excess(lo), excess(hi)
    if f_lo > 0 or f_hi < 0:
        return None
    for _ in range(200):
        mid = (lo + hi) / 2
        if excess(mid) < 0:
            lo = mid
        else:
            hi = mid
        if hi - lo < tol:
            break
    return (lo + hi) / 2


def _correlation_rate(activation, sigma_w2, sigma_b2, q_star, chi) -> tuple[float | None, float]:
    """(c*, xi_c): c* by :func:`c_star` (None where q* is about 0), xi_c without iterating where the
    ordered phase puts c* at 1."""
    c = c_star(activation, sigma_w2, sigma_b2, q_star, chi)
    if chi < 1:
        return c, (math.inf if chi <= 0 else -1 / math.log(chi))
    return c, depth_scales(activation, sigma_w2, sigma_b2, q_star, 1.0 if c is None else c)[1]


def phase_grid(activation: str, sigma_w2s: Sequence[float], sigma_b2s: Sequence[float]) -> dict:
    """chi_1, xi_c and q* on a grid (rows: sigma_b^2, columns: sigma_w^2), for the phase diagram;
    points with no finite fixed point get NaN."""
    activation_functions(activation)
    for s in sigma_w2s:
        _number("sigma_w^2", s, 0.0)
    for s in sigma_b2s:
        _number("sigma_b^2", s, 0.0)
    shape = (len(sigma_b2s), len(sigma_w2s))
    out = {k: np.full(shape, np.nan) for k in ("chi_1", "xi_c", "q_star")}
    for i, sb in enumerate(sigma_b2s):
        for j, sw in enumerate(sigma_w2s):
            try:
                q = length_fixed_point(activation, sw, sb, max_iter=500)
            except InitlabError:
                continue
            chi = chi_1(activation, sw, sb, q)
            out["q_star"][i, j], out["chi_1"][i, j] = q, chi
            out["xi_c"][i, j] = _correlation_rate(activation, sw, sb, q, chi)[1]
    return {"activation": activation, "sigma_w2": list(map(float, sigma_w2s)),
            "sigma_b2": list(map(float, sigma_b2s)), **{k: v.tolist() for k, v in out.items()}}


def record_variance(record: dict) -> float | None:
    """The variance of the values a scheme drew, from its manifest record (None when unknown)."""
    if record.get("variance") is not None:
        return float(record["variance"])
    dist = record.get("distribution")
    if dist == "uniform":
        return record["bound"] ** 2 / 3
    if dist == "normal":
        return record["std"] ** 2
    if dist == "constant":
        return 0.0
    if dist == "orthogonal":
        fan_in, fan_out = record["fan_in"], record["fan_out"]
        return record["gain"] ** 2 / max(fan_in, fan_out)
    return None


def scheme_sigmas(scheme: str | dict, fan_in: int, fan_out: int | None = None) -> tuple[float, float]:
    """The effective (sigma_w^2, sigma_b^2) of ``scheme`` on an ``nn.Linear(fan_in, fan_out)``:
    sigma_w^2 = fan_in * Var(W), sigma_b^2 = Var(b). Xavier on a square layer gives 1, He gives 2,
    PyTorch's default 1/3."""
    from torch import nn

    for name, fan in (("fan_in", fan_in), ("fan_out", fan_out)):
        if not (fan is None and name == "fan_out") and (not isinstance(fan, int) or isinstance(fan, bool) or fan < 1):
            raise InitlabError(f"scheme_sigmas needs {name} as an integer >= 1; got {fan!r}.")

    from .init import initialize

    layer = nn.Linear(fan_in, fan_out or fan_in)
    entries = initialize(layer, scheme, seed=0).entries
    w, b = entries[0], (entries[1] if len(entries) > 1 else {"distribution": "constant"})
    vw = record_variance(w)
    if vw is None:
        vw = float(layer.weight.detach().double().pow(2).mean())
    vb = record_variance(b) or 0.0
    return fan_in * vw, vb


def network_points(model) -> list[dict]:
    """The measured (sigma_w^2, sigma_b^2) of every Linear layer of a model: fan_in * mean(W^2), mean(b^2)."""
    from torch import nn

    points = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear):
            w = m.weight.detach().double()
            b = 0.0 if m.bias is None else float(m.bias.detach().double().pow(2).mean())
            points.append({"layer": name, "sigma_w2": m.in_features * float(w.pow(2).mean()), "sigma_b2": b})
    return points


def mean_field(activation: str, sigma_w2: float, sigma_b2: float = 0.0) -> MeanField:
    """Everything at once: q*, c*, chi_1, xi_q, xi_c, the phase and the critical sigma_w^2."""
    _number("sigma_w^2", sigma_w2, 0.0, strict=True)
    _number("sigma_b^2", sigma_b2, 0.0)
    q = length_fixed_point(activation, sigma_w2, sigma_b2)
    chi = chi_1(activation, sigma_w2, sigma_b2, q)
    c, xi_c = _correlation_rate(activation, sigma_w2, sigma_b2, q, chi)
    xi_q = depth_scales(activation, sigma_w2, sigma_b2, q, 1.0 if c is None else c)[0]
    name = activation if isinstance(activation, str) else getattr(activation, "__name__", "callable")
    return MeanField(name, sigma_w2, sigma_b2, q, c, chi, xi_q, xi_c, phase(chi),
                     critical_sigma_w2(activation, sigma_b2))
