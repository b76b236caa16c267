"""Initialization schemes: fans, gains, one general ``variance_scaling``, the named schemes over it,
a registry by name, and :func:`initialize`, which applies a scheme to a whole model and returns a
:class:`Manifest` of what it drew.

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

import fnmatch
import functools
import inspect
import json
import math
import secrets
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch
from torch import nn

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
    if weight.dim() < 2:
        raise InitlabError(
            f"fan_in and fan_out need a weight with at least 2 dimensions; got shape "
            f"{tuple(weight.shape)} (a 1-D tensor is a bias or a norm's scale: use 'constant')."
        )
    receptive = math.prod(weight.shape[2:])
    return int(weight.shape[1] * receptive), int(weight.shape[0] * receptive)


def _leaky_relu_gain(negative_slope: float = 0.01) -> float:
    return math.sqrt(2.0 / (1.0 + negative_slope**2))


#: The recommended gain of each nonlinearity: the factor that keeps the second moment of a layer's
#: output equal to its input's (He et al. 2015 for ReLU; PyTorch's values elsewhere). GELU has no
#: closed form; ReLU's sqrt(2) is used, as GELU behaves like ReLU away from zero.
GAINS: dict[str, Callable[..., float]] = {
    "identity": lambda: 1.0,
    "linear": lambda: 1.0,
    "sigmoid": lambda: 1.0,
    "tanh": lambda: 5.0 / 3.0,
    "relu": lambda: math.sqrt(2.0),
    "gelu": lambda: math.sqrt(2.0),
    "leaky_relu": _leaky_relu_gain,
    "selu": lambda: 0.75,
}


def gain(nonlinearity: str = "relu", negative_slope: float | None = None) -> float:
    """The recommended gain for ``nonlinearity`` (``leaky_relu`` takes ``negative_slope``, 0.01)."""
    if nonlinearity not in GAINS:
        raise unknown_name("nonlinearity", nonlinearity, GAINS)
    if nonlinearity == "leaky_relu" and negative_slope is not None:
        return GAINS[nonlinearity](negative_slope)
    return GAINS[nonlinearity]()


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
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise InitlabError(f"variance_scaling needs a positive finite scale; got {scale!r}.")
    if mode not in MODES:
        raise unknown_name("mode", mode, MODES)
    if distribution not in DISTRIBUTIONS:
        raise unknown_name("distribution", distribution, DISTRIBUTIONS)
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
    with torch.no_grad():
        weight.fill_(value)
    return {"distribution": "constant", "value": float(value)}


def normal(weight, generator=None, std: float = 0.01, mean: float = 0.0) -> dict:
    """w ~ N(mean, std^2), a fixed std whatever the layer's size (the chapter's scale section)."""
    if not std >= 0:
        raise InitlabError(f"normal needs std >= 0; got std={std!r}.")
    with torch.no_grad():
        nn.init.normal_(weight, mean, std, generator=generator)
    return {"distribution": "normal", "std": float(std), "mean": float(mean)}


def uniform(weight, generator=None, bound: float = 0.05) -> dict:
    """w ~ U[-bound, bound], a fixed bound whatever the layer's size."""
    if not bound >= 0:
        raise InitlabError(f"uniform needs bound >= 0; got bound={bound!r}.")
    with torch.no_grad():
        nn.init.uniform_(weight, -bound, bound, generator=generator)
    return {"distribution": "uniform", "bound": float(bound)}


def xavier_uniform(weight, generator=None, gain: float = 1.0) -> dict:
    """Glorot and Bengio 2010: w ~ U[-b, b], b = gain * sqrt(6) / sqrt(K_in + K_out).

    The chapter's exercise: the bound keeps forward and backward variances at the same order, drawn
    with ``torch.nn.init.uniform_``. Distributed as ``torch.nn.init.xavier_uniform_``."""
    return {**variance_scaling(weight, gain**2, "fan_avg", "uniform", generator), "gain": gain}


def xavier_normal(weight, generator=None, gain: float = 1.0) -> dict:
    """Glorot and Bengio 2010: w ~ N(0, std^2), std = gain * sqrt(2 / (K_in + K_out)), untruncated."""
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
    fan_in, fan_out = fans(weight)
    with torch.no_grad():
        nn.init.orthogonal_(weight, gain=gain, generator=generator)
    return {"distribution": "orthogonal", "gain": float(gain), "fan_in": fan_in, "fan_out": fan_out}


def _default_layer_bound(weight: torch.Tensor) -> float:
    return 1.0 / math.sqrt(fans(weight)[0])


@dataclass(frozen=True)
class Scheme:
    """A named scheme: its function, its formula in one line, and the aliases' fixed parameters."""

    name: str
    formula: str
    fn: Callable[..., dict] | None  # None: the module's own reset_parameters()
    fixed: Mapping[str, Any] = field(default_factory=dict)
    alias_of: str | None = None

    def params(self) -> dict[str, Any]:
        """The parameters this scheme accepts, with their defaults (``bias`` is accepted by all
        but ``default``)."""
        if self.fn is None:
            return {}
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
    Scheme("lsuv", "orthogonal, then each layer rescaled in forward order until std(output) = "
           "target_std on data (needs inputs)", None),
]}
_ALIASES = {"glorot_uniform": "xavier_uniform", "glorot_normal": "xavier_normal",
            "kaiming_uniform": "he_uniform", "kaiming_normal": "he_normal"}


def schemes() -> list[str]:
    """The names of every scheme initlab knows (aliases such as ``zeros`` included)."""
    return sorted(_REGISTRY)


def get(name: str) -> Scheme:
    """The :class:`Scheme` called ``name`` (an alias such as ``glorot_uniform`` works too)."""
    name = _ALIASES.get(name, name)
    if name not in _REGISTRY:
        raise unknown_name("scheme", name, list(_REGISTRY) + list(_ALIASES))
    return _REGISTRY[name]


# --------------------------------------------------------------------------------------------------
# applying a scheme to a model

LAYER_TYPES = (nn.Linear, nn.modules.conv._ConvNd)


def parse_spec(spec: Any) -> dict:
    """Normalize a scheme spec (a name, ``{"name", "params"}`` or ``(name, params)``) to a dict,
    checking the name and the parameters now, before anything is written."""
    if isinstance(spec, str):
        name, params = spec, {}
    elif isinstance(spec, Mapping) and "name" in spec:
        name, params = spec["name"], dict(spec.get("params") or {})
    elif isinstance(spec, (tuple, list)) and len(spec) == 2:
        name, params = spec[0], dict(spec[1])
    else:
        raise InitlabError(f"a scheme is a name, {{'name': ..., 'params': {{...}}}} or (name, params); "
                           f"got {spec!r}.")
    scheme = get(name)
    accepted = scheme.params()
    if scheme.name == "lsuv":
        accepted = {"target_std": 1.0, "tol": 0.1, "max_iter": 10}
    elif scheme.fn is not None:
        accepted.update(bias=0.0, bias_std=0.0)
    for key, value in params.items():
        if key not in accepted:
            raise InitlabError(f"scheme '{scheme.name}' takes no parameter '{key}'; it takes: "
                               f"{', '.join(accepted) or 'none'}.")
        if key == "bias" and not isinstance(value, (int, float)):
            raise InitlabError(f"bias must be a number; got bias={value!r}.")
        if key == "bias_std" and not (isinstance(value, (int, float)) and value >= 0):
            raise InitlabError(f"bias_std must be a number >= 0; got bias_std={value!r}.")
    if "bias" in params and "bias_std" in params:
        raise InitlabError("give biases either a constant (bias=) or a normal spread (bias_std=), not both.")
    return {"name": scheme.name, "params": params}


def _nonlinearity_of(model: nn.Module) -> str | None:
    return getattr(model, "initlab_activation", None)


@dataclass
class Manifest:
    """What :func:`initialize` drew: one entry per parameter and the layers it left alone.

    ``to_json()`` holds the scheme, its parameters, the overrides and the seed, so
    ``initialize(model, **Manifest.replay_args(json))`` draws the same parameters again."""

    scheme: dict
    seed: int
    overrides: dict = field(default_factory=dict)
    entries: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"scheme": self.scheme, "seed": self.seed, "overrides": self.overrides,
                "entries": self.entries, "skipped": self.skipped}

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **{"indent": 2, **kwargs})

    @staticmethod
    def replay_args(manifest: dict | str) -> dict:
        """Keyword arguments that make :func:`initialize` repeat a stored manifest exactly."""
        d = json.loads(manifest) if isinstance(manifest, str) else manifest
        return {"scheme": d["scheme"], "seed": d["seed"], "overrides": d.get("overrides") or None}

    def table(self) -> str:
        """The manifest as a plain-text table, one row per parameter."""
        cols = ["parameter", "shape", "scheme", "distribution", "bound", "std", "fan_in", "fan_out",
                "gain"]
        rows = [[_fmt(e.get(c)) for c in cols] for e in self.entries]
        rows += [[s["module"], "-", "skipped", s["reason"], "", "", "", "", ""] for s in self.skipped]
        widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c)
                  for i, c in enumerate(cols)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
        lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in rows]
        return "\n".join(lines)

    __str__ = table


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return "x".join(map(str, v))
    return str(v)


def _fill_bias(bias: torch.Tensor | None, value: float) -> dict | None:
    if bias is None:
        return None
    with torch.no_grad():
        bias.fill_(value)
    return {"distribution": "constant", "value": float(value)}


def _reset_default(module: nn.Module, seed: int) -> tuple[dict, dict | None]:
    """Run the module's own ``reset_parameters()`` on a private copy of the global RNG seeded with
    ``seed``; the caller's global RNG state is restored afterwards."""
    devices = sorted({p.device.index or 0 for p in module.parameters() if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        module.reset_parameters()
    bound = _default_layer_bound(module.weight)
    fan_in, fan_out = fans(module.weight)
    w = {"distribution": "uniform", "bound": bound, "fan_in": fan_in, "fan_out": fan_out,
         "via": "reset_parameters()"}
    b = None if module.bias is None else {"distribution": "uniform", "bound": bound,
                                          "via": "reset_parameters()"}
    return w, b


class _Generators:
    """One generator per device, each seeded with the same seed, so draws never touch global RNG."""

    def __init__(self, seed: int):
        self.seed, self._by_device = seed, {}

    def __call__(self, device: torch.device) -> torch.Generator:
        if device not in self._by_device:
            self._by_device[device] = torch.Generator(device=device).manual_seed(self.seed)
        return self._by_device[device]


def initialize(model: nn.Module | torch.Tensor, scheme: Any = "default", *, seed: int | None = None,
               overrides: Mapping[str, Any] | None = None, inputs: torch.Tensor | None = None,
               **params) -> Manifest:
    """Initialize every ``nn.Linear`` and convolution of ``model`` with ``scheme``, in place.

    Parameters
    ----------
    model : nn.Module or Tensor
        The model (every Linear, Conv1d/2d/3d and ConvTranspose layer), or a single weight tensor.
    scheme : str or dict, default "default"
        A name from :func:`schemes`, or ``{"name": ..., "params": {...}}``.
    seed : int, optional
        The same seed gives bitwise-identical parameters. None draws a fresh one, recorded in the
        manifest. The global RNG is never touched.
    overrides : dict, optional
        ``{module-name pattern: scheme}``, e.g. ``{"out": "xavier_uniform"}``; fnmatch patterns, first
        match wins. A pattern that matches no layer is an error.
    inputs : Tensor, optional
        A batch of data, for the data-dependent scheme ``lsuv`` (see :func:`initlab.lsuv`).
    **params
        The scheme's parameters (``std=0.01``, ``gain=2.0`` ...) and, for the biases, ``bias=`` (a
        constant: 0 by default; ``constant`` uses its ``value``) or ``bias_std=`` (b ~ N(0, bias_std^2),
        the sigma_b of mean-field theory).

    Returns
    -------
    Manifest
        One entry per parameter (scheme, distribution, bound or std, fan_in, fan_out, gain), and the
        modules with parameters that were left as they were (norms, embeddings ...), as ``skipped``.
    """
    if isinstance(scheme, str):
        scheme = {"name": scheme, "params": params}
    elif params:
        raise InitlabError("give a scheme's parameters either in the scheme dict or as keywords, not both.")
    spec = parse_spec(scheme)
    override_specs = {str(p): parse_spec(s) for p, s in (overrides or {}).items()}
    if seed is None:
        seed = secrets.randbits(62)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise InitlabError(f"seed must be a non-negative integer; got {seed!r}.")
    manifest = Manifest(scheme=spec, seed=seed, overrides=override_specs)
    if "lsuv" in [spec["name"], *(s["name"] for s in override_specs.values())]:
        return _lsuv(model, spec, override_specs, seed, inputs, manifest)
    generators = _Generators(seed)

    if isinstance(model, torch.Tensor):
        if model.numel() == 0:
            raise InitlabError(f"cannot initialize a zero-size tensor (shape {tuple(model.shape)}).")
        if spec["name"] == "default":
            raise InitlabError("'default' is a layer's own reset_parameters(); give a module, not a tensor.")
        record = _draw(model, spec, generators(model.device), None)
        manifest.entries.append({"parameter": "tensor", "shape": list(model.shape), **record})
        return manifest

    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, LAYER_TYPES)]
    for pattern in override_specs:
        if not any(fnmatch.fnmatchcase(n, pattern) for n, _ in layers):
            raise InitlabError(f"override pattern '{pattern}' matches no layer; layers: "
                               f"{', '.join(n for n, _ in layers) or 'none'}.")
    for name, module in layers:
        if module.weight is None or module.weight.numel() == 0:
            raise InitlabError(f"layer '{name}' has a zero-size weight (shape "
                               f"{tuple(module.weight.shape)}); every layer needs at least one unit.")
    nonlinearity = _nonlinearity_of(model)

    for name, module in layers:
        layer_spec = next((s for p, s in override_specs.items() if fnmatch.fnmatchcase(name, p)), spec)
        gen = generators(module.weight.device)
        if layer_spec["name"] == "default":
            sub_seed = int(torch.randint(0, 2**62, (1,), generator=generators(torch.device("cpu"))))
            w_rec, b_rec = _reset_default(module, sub_seed)
        else:
            w_rec = _draw(module.weight, layer_spec, gen, nonlinearity)
            p = {**get(layer_spec["name"]).fixed, **layer_spec["params"]}
            if p.get("bias_std") and module.bias is not None:  # b ~ N(0, bias_std^2): mean-field's sigma_b
                b_rec = normal(module.bias, gen, std=p["bias_std"])
            else:
                bias_value = p.get("bias", p.get("value", 0.0) if layer_spec["name"] == "constant" else 0.0)
                b_rec = _fill_bias(module.bias, bias_value)
        for pname, rec in (("weight", w_rec), ("bias", b_rec)):
            if rec is not None:
                manifest.entries.append(_entry(name, pname, module, layer_spec, rec))

    handled = {id(m) for _, m in layers}
    for name, module in model.named_modules():
        if id(module) not in handled and any(True for _ in module.parameters(recurse=False)):
            manifest.skipped.append({"module": name or type(module).__name__, "kind": type(module).__name__,
                                     "reason": f"{type(module).__name__} is not a layer initlab "
                                               f"initializes; left as it was"})
    return manifest


def _entry(name: str, pname: str, module: nn.Module, spec: dict, record: dict) -> dict:
    """One manifest entry: which parameter, of which layer, drawn by which scheme, and how."""
    return {"parameter": f"{name}.{pname}" if name else pname, "module": name, "kind": type(module).__name__,
            "shape": list(getattr(module, pname).shape), "scheme": spec["name"], "params": spec["params"], **record}


def _lsuv(model, spec, override_specs, seed, inputs, manifest) -> Manifest:
    """``lsuv`` is data-dependent: delegate to :func:`initlab.diagnose.lsuv` (imported here, lazily,
    since diagnosing sits above initializing)."""
    if override_specs or not isinstance(model, nn.Module):
        raise InitlabError("'lsuv' initializes a whole model at once: give a module and no overrides.")
    if inputs is None:
        raise InitlabError("'lsuv' needs data: initialize(model, 'lsuv', inputs=X), or initlab.lsuv(model, X).")
    from .diagnose import lsuv

    result = lsuv(model, inputs, seed=seed, **spec["params"])
    for name, module in model.named_modules():
        if isinstance(module, LAYER_TYPES):
            fan_in, fan_out = fans(module.weight)
            manifest.entries.append(_entry(name, "weight", module, spec, {
                "distribution": "orthogonal, rescaled", "fan_in": fan_in, "fan_out": fan_out,
                "std": float(module.weight.detach().std()), "iterations": result.iterations.get(name)}))
    return manifest


def _draw(weight: torch.Tensor, spec: dict, generator: torch.Generator, nonlinearity: str | None) -> dict:
    scheme = get(spec["name"])
    params = {**scheme.fixed, **{k: v for k, v in spec["params"].items() if k not in ("bias", "bias_std")}}
    fan = dict(zip(("fan_in", "fan_out"), fans(weight))) if weight.dim() >= 2 else {}
    if nonlinearity and "nonlinearity" in scheme.params() and "nonlinearity" not in params:
        if nonlinearity in GAINS:
            params["nonlinearity"] = nonlinearity
    return {**fan, **scheme.fn(weight, generator=generator, **params)}
