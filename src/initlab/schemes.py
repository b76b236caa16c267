"""Initialization schemes: fans, gains, one general ``variance_scaling``, the named schemes over it,
and a registry by name. :func:`initlab.initialize` (in ``init.py``) applies a scheme to a whole model.

Every scheme is a small function ``scheme(weight, generator=None, **params) -> record`` that fills
``weight`` in place, draws only from the ``generator`` it is given, and returns a dict describing the
distribution it used (so that a run can be printed, stored and replayed).

Example
-------
>>> import initlab
>>> model = initlab.mlp(2, [16, 16], 1, "tanh")
>>> manifest = initlab.initialize(model, "xavier_uniform", seed=0)
>>> manifest.entries[0]["bound"]  # sqrt(6) / sqrt(2 + 16)
0.5773502691896257
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch
from torch import nn

from .activations import ACTIVATIONS, ALIASES, get as get_activation
from .errors import InitlabError, unknown_name

# --------------------------------------------------------------------------------------------------
# fans and gains

def fans(weight: torch.Tensor) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight, computed as PyTorch computes them.

    For a weight of shape ``(d0, d1, *kernel)``: ``fan_in = d1 * prod(kernel)`` and
    ``fan_out = d0 * prod(kernel)``. For ``nn.Linear`` (``out x in``) that is ``(K_in, K_out)``; for a
    convolution ``(C_out, C_in/groups, *k)`` it is ``(C_in/groups * k, C_out * k)``; for a transposed
    convolution, whose weight is ``(C_in, C_out/groups, *k)``, PyTorch's rule gives
    ``(C_out/groups * k, C_in * k)``, and so does this function.
    """
    if not isinstance(weight, torch.Tensor):
        raise InitlabError(f"fans needs a weight tensor; got {type(weight).__name__}.")
    if weight.dim() < 2:
        raise InitlabError(
            f"fan_in and fan_out need a weight with at least 2 dimensions; got shape "
            f"{tuple(weight.shape)} (a 1-D tensor is a bias or a norm's scale: use 'constant')."
        )
    receptive = math.prod(weight.shape[2:])
    return int(weight.shape[1] * receptive), int(weight.shape[0] * receptive)


#: The nonlinearities a gain is known for: the rows of :data:`initlab.activations.ACTIVATIONS` (He et
#: al. 2015 for the ReLU family; PyTorch's ``calculate_gain`` values elsewhere) and their aliases.
GAINS: tuple[str, ...] = (*ACTIVATIONS, *ALIASES)


def gain(nonlinearity: str = "relu", negative_slope: float | None = None) -> float:
    """The recommended gain for ``nonlinearity`` (``leaky_relu`` takes ``negative_slope``, 0.01)."""
    if not isinstance(nonlinearity, str) or nonlinearity not in GAINS:
        raise unknown_name("nonlinearity", nonlinearity, GAINS)
    row = get_activation(nonlinearity)
    if negative_slope is not None and not (isinstance(negative_slope, numbers.Real) and
                                           not isinstance(negative_slope, bool) and math.isfinite(negative_slope)):
        raise InitlabError(f"gain needs negative_slope as a finite number; got negative_slope={negative_slope!r}.")
    if nonlinearity == "leaky_relu" and negative_slope is not None:
        return row.gain(negative_slope)
    return row.gain()


# --------------------------------------------------------------------------------------------------
# the one general scheme and the named ones over it

MODES = ("fan_in", "fan_out", "fan_avg")
DISTRIBUTIONS = ("uniform", "normal", "truncated_normal")
# std of a standard normal truncated to [-2, 2]; dividing by it gives the truncated draw the std asked
_TRUNCATED_STD = 0.87962566103423978


def variance_scaling(weight: torch.Tensor, scale: float = 1.0, mode: str = "fan_in",
                     distribution: str = "normal", generator: torch.Generator | None = None) -> dict:
    """Fill ``weight`` with zero-mean values of variance ``scale / n``, in place.

    ``n`` is ``fan_in``, ``fan_out`` or ``(fan_in + fan_out) / 2`` by ``mode``. The distribution is:

    - ``uniform``: U[-b, b] with b = sqrt(3 * scale / n), drawn by ``torch.nn.init.uniform_``;
    - ``normal``: N(0, std^2) with std = sqrt(scale / n), untruncated (as PyTorch's ``*_normal_``);
    - ``truncated_normal``: a normal cut at +-2 of its own std, whose std is corrected so the
      truncated values still have variance scale / n (as ``jax.nn.initializers``).

    Glorot is scale 1 with fan_avg, He is scale 2 with fan_in, LeCun is scale 1 with fan_in.
    Returns the record of the draw (distribution, bound or std, fans, scale, mode).

    >>> w = torch.empty(16, 2)
    >>> variance_scaling(w, 1.0, "fan_avg", "uniform")["bound"]   # Xavier's sqrt(6/(2+16))
    0.5773502691896257
    """
    check_param("variance_scaling", "scale", scale, 1.0)
    check_param("variance_scaling", "mode", mode, "fan_in")
    check_param("variance_scaling", "distribution", distribution, "normal")
    fan_in, fan_out = fans(weight)
    n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
    variance = scale / n
    record = {"distribution": distribution, "fan_in": fan_in, "fan_out": fan_out,
              "scale": float(scale), "mode": mode, "variance": variance}
    with torch.no_grad():
        if distribution == "uniform":
            bound = math.sqrt(3.0 * variance)
            nn.init.uniform_(weight, -bound, bound, generator=generator)
            record["bound"] = bound
        elif distribution == "normal":
            std = math.sqrt(variance)
            nn.init.normal_(weight, 0.0, std, generator=generator)
            record["std"] = std
        else:
            std = math.sqrt(variance) / _TRUNCATED_STD
            nn.init.trunc_normal_(weight, 0.0, std, -2 * std, 2 * std, generator=generator)
            record["std"] = math.sqrt(variance)
            record["bound"] = 2 * std
    return record


def constant(weight, generator=None, value: float = 0.0) -> dict:
    """Every entry equal to ``value``: w = value. Breaks nothing and learns little: every neuron of a
    layer computes the same function and gets the same gradient (the chapter's symmetry problem)."""
    check_param("constant", "value", value, 0.0)
    with torch.no_grad():
        weight.fill_(value)
    return {"distribution": "constant", "value": float(value)}


def normal(weight, generator=None, std: float = 0.01, mean: float = 0.0) -> dict:
    """w ~ N(mean, std^2), a fixed std whatever the layer's size (the chapter's scale section)."""
    check_param("normal", "std", std, 0.01)
    check_param("normal", "mean", mean, 0.0)
    with torch.no_grad():
        nn.init.normal_(weight, mean, std, generator=generator)
    return {"distribution": "normal", "std": float(std), "mean": float(mean)}


def uniform(weight, generator=None, bound: float = 0.05) -> dict:
    """w ~ U[-bound, bound], a fixed bound whatever the layer's size."""
    check_param("uniform", "bound", bound, 0.05)
    with torch.no_grad():
        nn.init.uniform_(weight, -bound, bound, generator=generator)
    return {"distribution": "uniform", "bound": float(bound)}


def xavier_uniform(weight, generator=None, gain: float = 1.0) -> dict:
    """Glorot and Bengio 2010: w ~ U[-b, b], b = gain * sqrt(6) / sqrt(K_in + K_out).

    The chapter's exercise: the bound keeps forward and backward variances at the same order, drawn
    with ``torch.nn.init.uniform_``. Distributed as ``torch.nn.init.xavier_uniform_``."""
    check_param("xavier_uniform", "gain", gain, 1.0)
    return {**variance_scaling(weight, gain**2, "fan_avg", "uniform", generator), "gain": gain}


def xavier_normal(weight, generator=None, gain: float = 1.0) -> dict:
    """Glorot and Bengio 2010: w ~ N(0, std^2), std = gain * sqrt(2 / (K_in + K_out)), untruncated."""
    check_param("xavier_normal", "gain", gain, 1.0)
    return {**variance_scaling(weight, gain**2, "fan_avg", "normal", generator), "gain": gain}


def _he(weight, generator, nonlinearity, negative_slope, distribution):
    g = gain(nonlinearity, negative_slope)
    return {**variance_scaling(weight, g**2, "fan_in", distribution, generator), "gain": g,
            "nonlinearity": nonlinearity}


def he_uniform(weight, generator=None, nonlinearity: str = "relu",
               negative_slope: float | None = None) -> dict:
    """He et al. 2015: w ~ U[-b, b], b = gain * sqrt(3 / K_in); gain from the nonlinearity
    (sqrt(2) for ReLU). As ``torch.nn.init.kaiming_uniform_`` with mode fan_in."""
    return _he(weight, generator, nonlinearity, negative_slope, "uniform")


def he_normal(weight, generator=None, nonlinearity: str = "relu",
              negative_slope: float | None = None) -> dict:
    """He et al. 2015: w ~ N(0, std^2), std = gain / sqrt(K_in); gain from the nonlinearity
    (sqrt(2) for ReLU). As ``torch.nn.init.kaiming_normal_`` with mode fan_in."""
    return _he(weight, generator, nonlinearity, negative_slope, "normal")


def lecun_uniform(weight, generator=None) -> dict:
    """LeCun et al. 1998 (Efficient BackProp): w ~ U[-b, b], b = sqrt(3 / K_in), variance 1/K_in."""
    return variance_scaling(weight, 1.0, "fan_in", "uniform", generator)


def lecun_normal(weight, generator=None) -> dict:
    """LeCun et al. 1998: w ~ N(0, 1/K_in), untruncated (JAX's lecun_normal truncates; this does not)."""
    return variance_scaling(weight, 1.0, "fan_in", "normal", generator)


def orthogonal(weight, generator=None, gain: float = 1.0) -> dict:
    """Saxe et al. 2014: the weight (flattened to rows x columns) is gain times a random
    (semi-)orthogonal matrix, so every singular value equals gain."""
    check_param("orthogonal", "gain", gain, 1.0)
    fan_in, fan_out = fans(weight)
    with torch.no_grad():
        nn.init.orthogonal_(weight, gain=gain, generator=generator)
    return {"distribution": "orthogonal", "gain": float(gain), "fan_in": fan_in, "fan_out": fan_out}


def delta_orthogonal(weight, generator=None, gain: float = 1.0) -> dict:
    """Xiao et al. 2018 (dynamical isometry for CNNs): a convolution's kernel is 0 everywhere but its
    spatial centre (index k // 2 along each kernel axis), where it is gain times a random
    (semi-)orthogonal (C_out x C_in) matrix; a 2-D weight is plain orthogonal.

    >>> w = torch.empty(16, 8, 3, 3); delta_orthogonal(w)["distribution"]
    'delta_orthogonal'
    """
    check_param("delta_orthogonal", "gain", gain, 1.0)
    fan_in, fan_out = fans(weight)
    centre = torch.empty(weight.shape[:2], dtype=weight.dtype, device=weight.device)
    with torch.no_grad():
        nn.init.orthogonal_(centre, gain=gain, generator=generator)
        weight.zero_()
        weight[(slice(None), slice(None), *(k // 2 for k in weight.shape[2:]))] = centre
    return {"distribution": "delta_orthogonal", "gain": float(gain), "fan_in": fan_in, "fan_out": fan_out}


def hadamard(n: int) -> torch.Tensor:
    """Sylvester's Hadamard matrix of order n = 2^m: H_1 = [1], H_2k = [[H_k, H_k], [H_k, -H_k]]."""
    h = torch.ones(1, 1, dtype=torch.float64)
    while h.shape[0] < n:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h


def zero(weight, generator=None) -> dict:
    """Zhao, Schaefer and Anandkumar 2021 (ZerO: initializing neural networks with only zeros and ones),
    their Algorithm 1; deterministic (``generator`` is not read). For a weight of P_out x P_in:

    - P_out = P_in: W = I;
    - P_out < P_in: W = I*, the partial identity (W_ij = 1 where i = j, else 0);
    - P_out > P_in: W = c I* H_m I* = c H[:P_out, :P_in], H Sylvester's Hadamard matrix of order 2^m,
      m = ceil(log2 P_out), c = 2^(-(m-1)/2) as the paper writes it (the authors' MNIST notebook divides
      by 2^(m/2) instead, an orthonormal H: sqrt(2) smaller);
    - a convolution (P_out, P_in, *k): 0 everywhere but its spatial centre (index k // 2 on each kernel
      axis), which is the matrix above, as the paper does for convolutions.

    >>> w = torch.empty(8, 3); zero(w)["structure"], float(w[0, 0])   # c = 2^(-(3-1)/2)
    ('hadamard', 0.5)
    """
    fan_in, fan_out = fans(weight)
    n_out, n_in = weight.shape[:2]
    record = {"distribution": "zero", "fan_in": fan_in, "fan_out": fan_out}
    if n_out <= n_in:
        matrix = torch.eye(n_out, n_in, dtype=torch.float64)
        record["structure"] = "identity" if n_out == n_in else "partial_identity"
    else:
        m = math.ceil(math.log2(n_out))
        c = 2.0 ** (-(m - 1) / 2)
        matrix = c * hadamard(2**m)[:n_out, :n_in]
        record.update(structure="hadamard", m=m, c=c)
    with torch.no_grad():
        weight.zero_()
        weight[(slice(None), slice(None), *(k // 2 for k in weight.shape[2:]))] = matrix.to(weight.device, weight.dtype)
    return record


@dataclass(frozen=True)
class Scheme:
    """A named scheme: its function, its formula in one line, and the aliases' fixed parameters."""

    name: str
    formula: str
    fn: Callable[..., dict] | None  # None: a whole-model scheme (default, or a data-dependent one)
    fixed: Mapping[str, Any] = field(default_factory=dict)
    alias_of: str | None = None
    whole_model_params: Mapping[str, Any] = field(default_factory=dict)  # for fn None: its parameters
    #: A data-dependent scheme (:func:`register_data_scheme`): ``apply(model, inputs, seed=, **params)``.
    apply: Callable[..., Any] | None = None

    def params(self) -> dict[str, Any]:
        """The parameters this scheme accepts, with their defaults (``bias`` is accepted by all
        but ``default`` and ``lsuv``)."""
        if self.fn is None:
            return dict(self.whole_model_params)
        return {k: v for k, v in _signature_defaults(self.fn) if k not in self.fixed}


@functools.cache
def _signature_defaults(fn: Callable) -> tuple:
    """``(name, default)`` of a scheme function's parameters, but the weight and the generator (read
    once per function: every layer of every model asks)."""
    return tuple((k, p.default) for k, p in inspect.signature(fn).parameters.items()
                 if k not in ("weight", "generator"))


_REGISTRY: dict[str, Scheme] = {s.name: s for s in [
    Scheme("default", "each layer's own reset_parameters(); nn.Linear: U[-1/sqrt(K_in), 1/sqrt(K_in)], "
           "bias too", None),
    Scheme("constant", "w = value, b = value", constant),
    Scheme("zeros", "w = 0, b = 0", constant, {"value": 0.0}, "constant"),
    Scheme("normal", "w ~ N(mean, std^2)", normal),
    Scheme("uniform", "w ~ U[-bound, bound]", uniform),
    Scheme("variance_scaling", "Var(w) = scale / n, n = fan_in | fan_out | (fan_in+fan_out)/2",
           variance_scaling),
    Scheme("xavier_uniform", "w ~ U[-b, b], b = gain*sqrt(6)/sqrt(K_in+K_out)", xavier_uniform),
    Scheme("xavier_normal", "w ~ N(0, gain^2 * 2/(K_in+K_out))", xavier_normal),
    Scheme("he_uniform", "w ~ U[-b, b], b = gain*sqrt(3/K_in), gain from nonlinearity", he_uniform),
    Scheme("he_normal", "w ~ N(0, gain^2/K_in), gain from nonlinearity", he_normal),
    Scheme("lecun_uniform", "w ~ U[-b, b], b = sqrt(3/K_in)", lecun_uniform),
    Scheme("lecun_normal", "w ~ N(0, 1/K_in)", lecun_normal),
    Scheme("orthogonal", "w = gain * Q, Q (semi-)orthogonal", orthogonal),
    Scheme("delta_orthogonal", "conv kernel 0 but its centre = gain * Q, Q (semi-)orthogonal", delta_orthogonal),
    Scheme("zero", "ZerO: w = I; partial I if out < in; c*H[:out, :in], c = 2^(-(m-1)/2), m = ceil(log2 out) "
           "if out > in; conv: the centre only", zero),
]}
_ALIASES = {"glorot_uniform": "xavier_uniform", "glorot_normal": "xavier_normal",
            "kaiming_uniform": "he_uniform", "kaiming_normal": "he_normal"}


#: The entry-point group whose functions register data-dependent schemes (initlab's own: ``lsuv``).
PLUGINS = "initlab.schemes"
_plugins_loaded = False


def register_data_scheme(name: str, formula: str, params: Mapping[str, Any], apply: Callable[..., Any]) -> None:
    """Add a data-dependent scheme: one that initializes a whole model from a batch. ``apply(model,
    inputs, seed=, **params)`` initializes ``model`` in place and returns an object whose ``manifest``
    accounts for every parameter (and whose ``after``, when it has one, is its own diagnosis of the
    result). ``params`` are its parameters with their defaults. :mod:`initlab.lsuv` registers itself so,
    through the ``initlab.schemes`` entry point; another package may add its own the same way."""
    _REGISTRY[name] = Scheme(name, formula, None, whole_model_params=dict(params), apply=apply)


def _load_plugins() -> None:
    """Run every ``initlab.schemes`` entry point once (each registers its schemes)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from .plugins import entries

    for entry in entries(PLUGINS).values():
        entry.load()()


def schemes() -> list[str]:
    """The names of every scheme initlab knows (aliases such as ``zeros`` and registered data-dependent
    schemes such as ``lsuv`` included)."""
    _load_plugins()
    return sorted(_REGISTRY)


def get(name: str) -> Scheme:
    """The :class:`Scheme` called ``name`` (an alias such as ``glorot_uniform`` works too)."""
    name = _ALIASES.get(name, name)
    if name not in _REGISTRY:
        _load_plugins()
    if name not in _REGISTRY:
        raise _unknown_scheme(name)
    return _REGISTRY[name]


#: Where a recipe is taken instead of a per-tensor scheme (said by the unknown-name error).
RECIPE_PLACES = "initialize(model, 'gpt2'), initlab init/diagnose --scheme, initlab audit --recipe"


#: The recipes' names, for that error: recipes (``recipes.py``) build on this module, so they hand
#: their names in when they are imported (:func:`register_recipe_names`) rather than being imported here.
_RECIPE_NAMES: list[Callable[[], list[str]]] = []


def register_recipe_names(names: Callable[[], list[str]]) -> None:
    """Called by ``initlab.recipes`` on import, with the function that lists the recipes."""
    _RECIPE_NAMES[:] = [names]


def _unknown_scheme(name) -> InitlabError:
    """An unknown scheme's error: the schemes, and the recipes with where they are taken (here, perhaps,
    they are not: an override or a sweep takes per-tensor schemes only). A recipe's name says so."""
    names = sorted([*_REGISTRY, *_ALIASES])
    recipe_names = _RECIPE_NAMES[0]() if _RECIPE_NAMES else []  # initialize and the CLI import the recipes
    if not recipe_names:
        return unknown_name("scheme", name, names)
    if name in recipe_names:
        return InitlabError(f"'{name}' is a recipe, which initializes a whole model by its layers' roles "
                            f"({RECIPE_PLACES}), not a per-tensor scheme; give a scheme here: {', '.join(names)}.")
    close = unknown_name("scheme", name, [*names, *recipe_names]).args[0].partition(" Known:")[0]
    return InitlabError(f"{close} Known schemes: {', '.join(names)}. Recipes, which initialize a whole model "
                        f"by its layers' roles ({RECIPE_PLACES}): {', '.join(recipe_names)}.")


# --------------------------------------------------------------------------------------------------
# a scheme as given by a user: checked before anything is written

#: Parameters every per-tensor scheme takes besides its own: the biases' rule and an LSTM's forget gate.
BIAS_PARAMS = {"bias": 0.0, "bias_std": 0.0, "forget_bias": None}


#: Lower limits of parameters, by name: (limit, strict). Everything else numeric may be any finite number.
LIMITS: dict[str, tuple[float, bool]] = {"std": (0, False), "bound": (0, False), "scale": (0, True),
                                         "bias_std": (0, False), "target_std": (0, True), "tol": (0, True),
                                         "max_iter": (1, False)}
#: Parameters that name one of a few choices.
CHOICES: dict[str, Any] = {"nonlinearity": GAINS, "mode": MODES, "distribution": DISTRIBUTIONS}


def check_param(scheme: str, key: str, value: Any, default: Any) -> None:
    """Refuse ``value`` for parameter ``key`` of ``scheme`` unless it has the type its ``default``
    tells (a name for a string default, a whole number for an integer one, else a number, or None
    where the default is None), is finite, lies within :data:`LIMITS` and is one of :data:`CHOICES`."""
    got = f"got {key}={value!r}."
    if isinstance(default, str) or key in CHOICES:
        if not isinstance(value, str):
            choices = f", one of {', '.join(CHOICES[key])}" if key in CHOICES else ""
            raise InitlabError(f"scheme '{scheme}' needs {key} as a name{choices}; {got}")
        if key in CHOICES and value not in CHOICES[key]:
            raise unknown_name(key, value, CHOICES[key])
        return
    if value is None and default is None:
        return
    whole = isinstance(default, int) and not isinstance(default, bool)
    kind = numbers.Integral if whole else numbers.Real
    if not isinstance(value, kind) or isinstance(value, bool) or not math.isfinite(value):
        raise InitlabError(f"scheme '{scheme}' needs {key} as a {'whole' if whole else 'finite'} number; {got}")
    if key in LIMITS:
        limit, strict = LIMITS[key]
        if value < limit or (strict and value == limit):
            raise InitlabError(f"scheme '{scheme}' needs {key} {'>' if strict else '>='} {limit:g}; {got}")


def parse_spec(spec: Any) -> dict:
    """Normalize a scheme spec (a name, ``{"name", "params"}`` or ``(name, params)``) to a dict,
    checking the name and every parameter now (:func:`check_param`), before anything is written."""
    if isinstance(spec, str):
        name, params = spec, {}
    elif isinstance(spec, Mapping) and "name" in spec:
        name, params = spec["name"], spec.get("params") or {}
    elif isinstance(spec, (tuple, list)) and len(spec) == 2:
        name, params = spec
    else:
        raise InitlabError(f"a scheme is a name, {{'name': ..., 'params': {{...}}}} or (name, params); "
                           f"got {spec!r}.")
    if not isinstance(name, str):
        raise InitlabError(f"a scheme's name is a string, like 'xavier_uniform'; got {name!r}.")
    if not isinstance(params, Mapping):
        raise InitlabError(f"a scheme's params are a dict, like {{'std': 0.01}}; got {params!r}.")
    params = dict(params)
    scheme = get(name)
    accepted = scheme.params()
    if scheme.fn is not None:
        accepted.update(BIAS_PARAMS)
    for key, value in params.items():
        if key not in accepted:
            raise InitlabError(f"scheme '{scheme.name}' takes no parameter '{key}'; it takes: "
                               f"{', '.join(map(str, accepted)) or 'none'}.")
        check_param(scheme.name, key, value, accepted[key])
    if "bias" in params and "bias_std" in params:
        raise InitlabError("give biases either a constant (bias=) or a normal spread (bias_std=), not both.")
    return {"name": scheme.name, "params": params}


def label_of(spec: dict, sep: str = ", ") -> str:
    """A scheme spec as text: ``normal(std=0.01)``, ``xavier_uniform``; floats in their shortest form.
    With ``sep=","`` it is the form the playground's URL and :func:`parse_spec`'s text form read."""
    params = sep.join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in spec["params"].items())
    return f"{spec['name']}({params})" if params else spec["name"]

