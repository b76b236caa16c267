""":func:`initialize`: a scheme applied to a whole model, and the :class:`Manifest` that accounts for
every parameter: drawn by which rule, left as it was and why, or shared with which other name.

The layers it knows (``nn.Linear``, convolutions, ``nn.MultiheadAttention``, ``nn.LSTM``/``GRU``/``RNN``,
``nn.Embedding``, norms, and what :func:`initlab.register_layer` declares) are read from the table in
``layers.py``. Weights are drawn in float32 (or float64) and cast, written through parametrizations
(weight norm) where they let the values through, and never guessed for a layer initlab does not know.
"""

from __future__ import annotations

import fnmatch
import json
import math
import secrets
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
from torch import nn

from . import layers as L
from .errors import InitlabError
from .schemes import GAINS, fans, get, normal, parse_spec

#: Roles whose rule can be chosen apart from the scheme: ``roles={"recurrent": "orthogonal"}``.
CHOOSABLE_ROLES = ("recurrent", "embedding")


@dataclass
class Manifest:
    """What :func:`initialize` did to every parameter of the model.

    ``entries``: one per tensor drawn (a parameter, or a block of one: Q, K, V, an LSTM gate), with the
    scheme, distribution, bound or std, fans and gain. ``left``: one per parameter left as it was, with
    the reason. ``shared``: names that are the same tensor as an earlier one (tied weights), drawn once.
    ``to_json()`` holds the scheme, parameters, overrides, roles and seed, so
    ``initialize(model, **Manifest.replay_args(json))`` draws the same parameters again."""

    scheme: dict
    seed: int
    overrides: dict = field(default_factory=dict)
    roles: dict = field(default_factory=dict)
    entries: list[dict] = field(default_factory=list)
    left: list[dict] = field(default_factory=list)
    shared: dict[str, str] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)  # every parameter name, as named_parameters() lists them

    def to_dict(self) -> dict:
        return {"scheme": self.scheme, "seed": self.seed, "overrides": self.overrides, "roles": self.roles,
                "entries": self.entries, "left": self.left, "shared": self.shared}

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **{"indent": 2, **kwargs})

    @staticmethod
    def replay_args(manifest: dict | str) -> dict:
        """Keyword arguments that make :func:`initialize` repeat a stored manifest exactly."""
        d = json.loads(manifest) if isinstance(manifest, str) else manifest
        return {"scheme": d["scheme"], "seed": d["seed"], "overrides": d.get("overrides") or None,
                "roles": d.get("roles") or None}

    def accounting(self) -> dict[str, str]:
        """Every parameter name of the model -> what happened to it, in one line each."""
        out: dict[str, str] = {}
        for e in self.entries:
            for name in e.get("stored_in") or [e["parameter"]]:
                out.setdefault(name, f"initialized: {e['scheme']} ({e.get('distribution')})")
        for e in self.left:
            for name in e.get("stored_in") or [e["parameter"]]:
                out.setdefault(name, f"left as it was: {e['reason']}")
        for name, owner in self.shared.items():
            out[name] = f"shared with {owner}: {out.get(owner, 'see it')}"
        return {n: out.get(n, "not accounted") for n in self.names} if self.names else out

    def table(self) -> str:
        """The manifest as a plain-text table: one row per tensor drawn, then what was left or shared."""
        cols = ["parameter", "block", "shape", "scheme", "distribution", "value", "bound", "std", "fan_in", "fan_out",
                "gain"]
        blank = [""] * (len(cols) - 5)
        rows = [[_fmt(e.get(c)) for c in cols] for e in self.entries]
        rows += [[e["parameter"], "", _fmt(e.get("shape")), "left", e["reason"], *blank] for e in self.left]
        rows += [[n, "", "", "shared", f"the same tensor as {o}", *blank] for n, o in self.shared.items()]
        widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(cols)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
        lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
        return "\n".join(lines)

    __str__ = table

    def __repr__(self) -> str:
        return (f"Manifest({self.scheme['name']}, seed {self.seed}: {len(self.entries)} tensors drawn, "
                f"{len(self.left)} left as they were, {len(self.shared)} shared)")

    def _repr_html_(self) -> str:
        from html import escape

        cols = ["parameter", "block", "shape", "scheme", "distribution", "bound", "std", "fan_in", "fan_out"]
        head = "".join(f"<th>{c}</th>" for c in cols)
        body = "".join("<tr>" + "".join(f"<td>{escape(_fmt(e.get(c)))}</td>" for c in cols) + "</tr>"
                       for e in self.entries)
        body += "".join(f"<tr><td>{escape(e['parameter'])}</td><td></td><td>{escape(_fmt(e.get('shape')))}</td>"
                        f"<td>left</td><td colspan='5'>{escape(e['reason'])}</td></tr>" for e in self.left)
        body += "".join(f"<tr><td>{escape(n)}</td><td></td><td></td><td>shared</td><td colspan='5'>the same tensor "
                        f"as {escape(o)}</td></tr>" for n, o in self.shared.items())
        return f"<p><b>{escape(repr(self))}</b></p><table><tr>{head}</tr>{body}</table>"


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return "x".join(map(str, v))
    return str(v)


class _Generators:
    """One generator per device, each seeded with the same seed, so draws never touch global RNG."""

    def __init__(self, seed: int):
        self.seed, self._by_device = seed, {}

    def __call__(self, device: torch.device) -> torch.Generator:
        if device not in self._by_device:
            self._by_device[device] = torch.Generator(device=device).manual_seed(self.seed)
        return self._by_device[device]


def _buffer_dtype(dtype: torch.dtype) -> torch.dtype:
    """Draws happen in float64 for float64 parameters and in float32 for every other type (half
    precision has no QR, and bfloat16's 8 bits of mantissa would coarsen a uniform's bound)."""
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def _draw_weight(target: torch.Tensor, transposed: bool, spec: dict, generator, nonlinearity: str | None,
                 layer_fans: tuple[int, int] | None = None) -> dict:
    """Fill ``target`` (a view of a parameter's float copy) with the scheme's draw, in the weight's
    canonical (out, in, *kernel) orientation. Where the layer's fans differ from what the shape says
    (grouped and transposed convolutions), a variance-scaling draw is multiplied by
    sqrt(n_shape / n_layer): U[-b, b] becomes U[-cb, cb] and N(0, s^2) N(0, (cs)^2), the same family
    with the variance the layer's fans ask for."""
    scheme = get(spec["name"])
    params = {**scheme.fixed, **{k: v for k, v in spec["params"].items() if k not in ("bias", "bias_std", "forget_bias")}}
    if nonlinearity and "nonlinearity" in scheme.params() and "nonlinearity" not in params and nonlinearity in GAINS:
        params["nonlinearity"] = nonlinearity
    canonical = target.T if transposed else target
    buf = torch.empty(canonical.shape, dtype=target.dtype, device=target.device)
    if buf.dim() < 2:
        raise InitlabError(f"'{spec['name']}' draws weights of at least 2 dimensions; got shape {tuple(buf.shape)}.")
    record = {**dict(zip(("fan_in", "fan_out"), fans(buf))), **scheme.fn(buf, generator=generator, **params)}
    if layer_fans is not None and tuple(layer_fans) != (record["fan_in"], record["fan_out"]):
        mode = record.get("mode")
        if mode in ("fan_in", "fan_out", "fan_avg"):
            n = {"fan_in": lambda a, b: a, "fan_out": lambda a, b: b, "fan_avg": lambda a, b: (a + b) / 2}[mode]
            c = math.sqrt(n(record["fan_in"], record["fan_out"]) / n(*layer_fans))
            buf.mul_(c)
            record["variance"] = record["variance"] * c * c
            for key in ("bound", "std"):
                if record.get(key) is not None:
                    record[key] = record[key] * c
        record["fan_in"], record["fan_out"] = layer_fans
        record["fans_from"] = "the layer (groups, stride), not the weight's shape"
    canonical.copy_(buf)
    return record


def _fill_bias(target: torch.Tensor, spec: dict, generator, block: L.Block) -> dict:
    p = {**get(spec["name"]).fixed, **spec["params"]}
    if p.get("forget_bias") is not None and block.label == "f" and block.param.startswith("bias_"):
        # Jozefowicz et al. 2015: the forget gate's bias at 1 (the sum of bias_ih and bias_hh)
        value = float(p["forget_bias"]) if block.param.startswith("bias_ih") else 0.0
        target.fill_(value)
        return {"distribution": "constant", "value": value, "note": "forget-gate bias"}
    if p.get("bias_std"):  # b ~ N(0, bias_std^2): mean-field's sigma_b
        return normal(target, generator, std=p["bias_std"])
    value = p.get("bias", p.get("value", 0.0) if spec["name"] == "constant" else 0.0)
    target.fill_(value)
    return {"distribution": "constant", "value": float(value)}


def _default_values(module: nn.Module, seed: int, in_place: bool) -> dict[str, torch.Tensor] | None:
    """PyTorch's own initialization of ``module``: its reset methods, children first (as when it was
    built), on a private copy of the global RNG seeded with ``seed``. Runs on the layer itself when
    ``in_place`` (every tensor of it is to be written), else on a plain copy (a parametrization would
    undo it, or a frozen tensor must stay); returns the values it gave (None: it has no reset)."""
    adapter = L.adapter_for(module)
    if adapter.reset is None or not callable(getattr(module, adapter.reset, None)):
        return None
    blocks = adapter.blocks(module)
    plain = in_place and not any(L.how_stored(module, b.param) for b in blocks)
    target = module if plain else L.scratch_copy(module)
    devices = sorted({p.device.index or 0 for p in target.parameters() if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for m in reversed(list(target.modules())):  # children first: out_proj, then the attention
            a = L.adapter_for(m)
            if a is not None and a.reset is not None and callable(getattr(m, a.reset, None)):
                getattr(m, a.reset)()
    return {b.param: L.read(target, b.param) for b in blocks}


def _default_record(module: nn.Module, block: L.Block, value: torch.Tensor) -> dict:
    rec = {"distribution": "PyTorch default", "via": f"{L.adapter_for(module).reset or 'reset_parameters'}()"}
    if isinstance(module, L.LAYER_TYPES) and block.param in ("weight", "bias"):
        bound = 1.0 / math.sqrt(fans(module.weight)[0]) if module.weight.dim() >= 2 else None
        rec.update(distribution="uniform", bound=bound)
    else:
        rec["std"] = float(value.double().std()) if value.numel() > 1 else None
    return rec


def _materialize(model: nn.Module, inputs) -> None:
    """Run one forward pass so that Lazy modules create their parameters (eval mode, no gradient, the
    global RNG and every buffer as they were)."""
    was = {m: m.training for m in model.modules()}
    buffers = {k: v.detach().clone() for k, v in model.named_buffers()}
    try:
        with torch.random.fork_rng(), torch.no_grad():
            model.eval()
            call(model, inputs)
    except Exception as e:  # the user's model: one line
        raise InitlabError(f"the Lazy layers could not be built from the inputs: {type(e).__name__}: "
                           f"{str(e).splitlines()[0] if str(e) else ''}") from None
    finally:
        for m, t in was.items():
            m.training = t
        with torch.no_grad():
            for k, v in model.named_buffers():
                if k in buffers and v.shape == buffers[k].shape:
                    v.copy_(buffers[k])


def call(model: nn.Module, inputs):
    """``model(inputs)``; a tuple or list is passed as positional arguments, a dict as keywords."""
    if isinstance(inputs, dict):
        return model(**inputs)
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)


def _check_seed(seed):
    if seed is None:
        seed = secrets.randbits(62)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise InitlabError(f"seed must be a non-negative integer; got {seed!r}.")
    return seed


def initialize(model: nn.Module | torch.Tensor, scheme: Any = "default", *, seed: int | None = None,
               overrides: Mapping[str, Any] | None = None, roles: Mapping[str, Any] | None = None,
               inputs=None, include_frozen: bool = False, **params) -> Manifest:
    """Initialize every layer of ``model`` that initlab knows with ``scheme``, in place.

    Parameters
    ----------
    model : nn.Module or Tensor
        The model, or a single weight tensor. Known layers: Linear, Conv1d/2d/3d and transposed
        convolutions (fans as PyTorch computes them), MultiheadAttention (Q, K and V drawn as three
        blocks with their own fans, and the output projection), LSTM/GRU/RNN (each gate's block
        apart; the recurrent weights by ``roles["recurrent"]``), Embedding (only with
        ``roles["embedding"]``, or under ``default``), norms (scale 1, shift 0), and the classes
        declared with :func:`initlab.register_layer`. Parametrized weights (weight norm) are written
        through the parametrization; a parametrization that would change the drawn values (spectral
        norm, orthogonal) leaves the weight as it was, and the manifest says so.
    scheme : str or dict, default "default"
        A name from :func:`initlab.schemes`, or ``{"name": ..., "params": {...}}``.
    seed : int, optional
        The same seed gives bitwise-identical parameters. None draws a fresh one, recorded in the
        manifest. The global RNG is never touched.
    overrides : dict, optional
        ``{pattern: scheme}``: fnmatch patterns of module names (``"out"``) or parameter names
        (``"*.weight_hh_*"``); first match wins. A pattern that matches nothing is an error.
    roles : dict, optional
        ``{"recurrent": scheme, "embedding": scheme}``, e.g. ``{"recurrent": "orthogonal",
        "embedding": ("normal", {"std": 0.02})}``. Recurrent weights follow ``scheme`` unless set here;
        embeddings are left as they were unless set here (or the scheme is ``default``).
    inputs : Tensor, tuple or dict, optional
        A batch, for ``lsuv`` and to build Lazy layers.
    include_frozen : bool, default False
        Also draw parameters with ``requires_grad=False`` (left as they were by default).
    **params
        The scheme's parameters (``std=0.01``, ``gain=2.0`` ...) and, for the biases, ``bias=`` (a
        constant: 0 by default; ``constant`` uses its ``value``), ``bias_std=`` (b ~ N(0, bias_std^2),
        the sigma_b of mean-field theory) or ``forget_bias=`` (an LSTM's forget gate, usually 1).

    Returns
    -------
    Manifest
        Every parameter accounted for (see :class:`Manifest`).
    """
    if isinstance(scheme, str):
        scheme = {"name": scheme, "params": params}
    elif params:
        raise InitlabError("give a scheme's parameters either in the scheme dict or as keywords, not both.")
    spec = parse_spec(scheme)
    override_specs = {str(p): parse_spec(s) for p, s in (overrides or {}).items()}
    role_specs = {}
    for role, s in (roles or {}).items():
        if role not in CHOOSABLE_ROLES:
            raise InitlabError(f"unknown role '{role}'; roles with a rule of their own: {', '.join(CHOOSABLE_ROLES)}.")
        role_specs[role] = parse_spec(s)
    seed = _check_seed(seed)
    manifest = Manifest(scheme=spec, seed=seed, overrides=override_specs, roles=role_specs)
    data_dependent = [s["name"] for s in [spec, *override_specs.values(), *role_specs.values()] if get(s["name"]).apply]
    if data_dependent:  # a registered data-dependent scheme (lsuv): the whole model at once, from a batch
        name = data_dependent[0]
        if override_specs or role_specs or not isinstance(model, nn.Module):
            raise InitlabError(f"'{name}' initializes a whole model at once: give a module, and no overrides or roles.")
        if inputs is None:
            raise InitlabError(f"'{name}' needs data: initialize(model, '{name}', inputs=X).")
        return get(name).apply(model, inputs, seed=seed, **spec["params"]).manifest
    generators = _Generators(seed)

    if isinstance(model, torch.Tensor):
        return _initialize_tensor(model, spec, generators, manifest)
    if not isinstance(model, nn.Module):
        raise InitlabError(f"initialize needs an nn.Module or a tensor; got {type(model).__name__}.")
    lazy = L.lazy_layers(model)
    if lazy:
        if inputs is None:
            raise InitlabError(f"layer '{lazy[0]}' is Lazy ({type(model.get_submodule(lazy[0])).__name__}) and has "
                               f"no parameters yet: pass inputs= (a batch) so initlab can build it, or run one "
                               f"forward pass first.")
        _materialize(model, inputs)
    return _initialize_module(model, spec, override_specs, role_specs, generators, manifest, include_frozen)


def _initialize_tensor(t: torch.Tensor, spec: dict, generators: _Generators, manifest: Manifest) -> Manifest:
    if t.numel() == 0:
        raise InitlabError(f"cannot initialize a zero-size tensor (shape {tuple(t.shape)}).")
    if spec["name"] == "default":
        raise InitlabError("'default' is a layer's own reset_parameters(); give a module, not a tensor.")
    with torch.no_grad():
        work = t.detach().to(_buffer_dtype(t.dtype)).clone()
        record = _draw_weight(work, False, spec, generators(t.device), None) if t.dim() >= 2 \
            else get(spec["name"]).fn(work, generator=generators(t.device),
                                      **{**get(spec["name"]).fixed, **spec["params"]})
        t.copy_(work)
    manifest.entries.append({"parameter": "tensor", "shape": list(t.shape), "scheme": spec["name"],
                             "params": spec["params"], **record})
    return manifest


@dataclass
class _Layer:
    name: str
    module: nn.Module
    adapter: L.Adapter
    blocks: list[L.Block]


def _layers(model: nn.Module) -> tuple[list[_Layer], set[int]]:
    """The modules initlab knows, in order, each claiming its tensors (an attention claims its
    ``out_proj``); and the ids of every parameter claimed."""
    found, claimed = [], set()
    for name, module in model.named_modules():
        adapter = L.adapter_for(module)
        if adapter is None:
            continue
        blocks = L.check(name, module)
        ids = {id(p) for b in blocks for p in L.underlying(module, b.param)}
        own = {id(p) for p in module.parameters(recurse=False)}
        if ids and ids <= claimed and own <= claimed:
            continue  # every tensor of it belongs to a layer above (MultiheadAttention's out_proj)
        claimed |= ids
        found.append(_Layer(name, module, adapter, blocks))
    return found, claimed


def _match(pattern_specs: dict, *names: str) -> dict | None:
    return next((s for p, s in pattern_specs.items() if any(fnmatch.fnmatchcase(n, p) for n in names)), None)


def _initialize_module(model, spec, override_specs, role_specs, generators, manifest, include_frozen) -> Manifest:
    found, claimed = _layers(model)
    names_of: dict[int, list[str]] = {}
    for n, p in model.named_parameters(remove_duplicate=False):
        names_of.setdefault(id(p), []).append(n)
    manifest.names = [n for n, _ in model.named_parameters(remove_duplicate=False)]
    if not manifest.names:
        raise InitlabError(f"{type(model).__name__} has no parameters: there is nothing to initialize.")

    def full(layer: _Layer, path: str) -> str:
        return f"{layer.name}.{path}" if layer.name else path

    all_names = [x.name for x in found] + [full(x, b.param) for x in found for b in x.blocks]
    for pattern in override_specs:
        if not any(fnmatch.fnmatchcase(n, pattern) for n in all_names):
            raise InitlabError(f"override pattern '{pattern}' matches no layer or parameter; layers: "
                               f"{', '.join(x.name for x in found) or 'none'}.")
    for x in found:
        for b in x.blocks:
            t = L.read(x.module, b.param)
            if b.role in ("weight", "recurrent") and t.numel() == 0:
                raise InitlabError(f"layer '{x.name}' has a zero-size weight (shape {tuple(t.shape)}); every layer "
                                   f"needs at least one unit.")
    nonlinearity = getattr(model, "initlab_activation", None)
    written: dict[int, str] = {}   # id of an underlying parameter -> the name that drew it
    left: dict[int, dict] = {}

    for layer in found:
        module = layer.module
        layer_spec = _match(override_specs, layer.name) or spec
        by_param: dict[str, list[L.Block]] = {}
        for b in layer.blocks:
            by_param.setdefault(b.param, []).append(b)
        defaults = None
        if any(_rule(layer, b, layer_spec, override_specs, role_specs, full)[0] == "default" for b in layer.blocks):
            sub_seed = int(torch.randint(0, 2**62, (1,), generator=generators(torch.device("cpu"))))
            held = [p for b in layer.blocks for p in L.underlying(module, b.param)]
            keep = any(id(p) in written for p in held) or (not include_frozen and any(not p.requires_grad for p in held))
            defaults = _default_values(module, sub_seed, in_place=not keep)  # a tied or frozen tensor must stay
        for path, blocks in by_param.items():
            pname = full(layer, path)
            under = L.underlying(module, path)
            info = {"parameter": pname, "module": layer.name, "kind": type(module).__name__,
                    "shape": list(L.read(module, path).shape),
                    "stored_in": [n for u in under for n in names_of.get(id(u), [])]}
            stored = L.how_stored(module, path)
            if stored:
                info["stored_as"] = stored
            reason = None
            if under and all(id(u) in written for u in under):
                continue  # a tied tensor, drawn by the name that came first (the manifest's shared)
            if not include_frozen and under and not any(u.requires_grad for u in under):
                reason = "frozen (requires_grad=False); include_frozen=True draws it too"
            rules = [(b, *_rule(layer, b, layer_spec, override_specs, role_specs, full)) for b in blocks]
            if reason is None and all(r[1] is None for r in rules):
                reason = rules[0][2]
            if reason is not None:
                for u in under:
                    left.setdefault(id(u), {**info, "role": blocks[0].role, "reason": reason})
                continue
            current = L.read(module, path)
            work = current.to(_buffer_dtype(current.dtype)).clone()
            records = []
            with torch.no_grad():
                for b, rule, why in rules:
                    target = work if b.rows is None else work[b.rows[0]:b.rows[1]]
                    if rule is None:
                        rec = {"distribution": "left as it was", "reason": why}
                    elif rule == "default":
                        if defaults is None or path not in defaults:
                            rec = {"distribution": "left as it was", "reason": f"{type(module).__name__} has no "
                                   f"reset_parameters(): its default is whatever built it"}
                        else:
                            src = defaults[path].to(work.dtype)
                            target.copy_(src if b.rows is None else src[b.rows[0]:b.rows[1]])
                            rec = _default_record(module, b, target)
                    elif rule == "norm":
                        target.fill_(1.0 if b.role == "norm_scale" else 0.0)
                        rec = {"distribution": "constant", "value": 1.0 if b.role == "norm_scale" else 0.0,
                               "note": "a norm's scale is 1 and its shift 0"}
                    elif b.role == "bias":
                        rec = _fill_bias(target, rule, generators(work.device), b)
                    else:
                        rec = _draw_weight(target, b.transposed, rule, generators(work.device),
                                           nonlinearity if b.role == "weight" else None, b.fans)
                        pad = getattr(module, "padding_idx", None) if b.role == "embedding" else None
                        if pad is not None:  # the padding token's row gets no gradient: it stays 0, as PyTorch
                            target[pad].zero_()
                            rec["note"] = f"row {pad} (padding_idx) kept at 0"
                    records.append((b, rule, rec))
                try:
                    L.write(module, path, work.to(current.dtype))
                except L.Unreachable as e:
                    for u in under:
                        left.setdefault(id(u), {**info, "role": blocks[0].role,
                                                "reason": f"{e}; choose a plain layer to initialize it"})
                    continue
            for u in under:
                names = names_of.get(id(u), [])
                writer = pname if pname in names else (names[0] if names else pname)
                written[id(u)] = writer
                left.pop(id(u), None)
                for n in names:
                    if n != writer and not n.startswith(f"{pname.rsplit('.', 1)[0]}.parametrizations."):
                        manifest.shared[n] = writer
            for b, rule, rec in records:
                name = rule["name"] if isinstance(rule, dict) else ("default" if rule == "default" else "norm")
                entry = {**info, "role": b.role, "scheme": name,
                         "params": rule["params"] if isinstance(rule, dict) else {}, **rec}
                if b.rows is not None or b.label:
                    entry["block"] = b.label
                    entry["rows"] = list(b.rows) if b.rows else None
                    if b.rows is not None:
                        entry["shape"] = [b.rows[1] - b.rows[0], *info["shape"][1:]]
                if rec.get("distribution") == "left as it was":
                    entry["scheme"] = "left"
                manifest.entries.append(entry)

    # whatever no known layer claimed: not understood, never drawn with guessed fans
    for name, module in model.named_modules():
        for pname, p in module.named_parameters(recurse=False):
            if id(p) in claimed or id(p) in written or id(p) in left:
                continue
            owner = "the model itself" if not name else f"{type(module).__name__} '{name}'"
            left[id(p)] = {"parameter": f"{name}.{pname}" if name else pname, "module": name,
                           "kind": type(module).__name__, "shape": list(p.shape), "role": None,
                           "reason": f"a parameter of {owner}, a module initlab does not know: declare it with "
                                     f"initlab.register_layer(...) to initialize it"}
    for pid, e in left.items():
        if pid not in written:
            manifest.left.append(e)
            for n in names_of.get(pid, [])[1:]:
                manifest.shared[n] = names_of[pid][0]
    if not written:
        reasons = sorted({e["reason"] for e in manifest.left})
        raise InitlabError(f"nothing in {type(model).__name__} could be initialized with '{spec['name']}': "
                           + "; ".join(reasons[:3]) + ".")
    return manifest


def _rule(layer: _Layer, block: L.Block, layer_spec: dict, override_specs: dict, role_specs: dict, full):
    """The rule that draws ``block``: a scheme spec, "default", "norm", or None with the reason."""
    pname = full(layer, block.param)
    by_param = _match(override_specs, pname)
    if block.role in ("norm_scale", "norm_shift"):
        return "norm", None
    if block.role == "embedding":
        chosen = by_param or role_specs.get("embedding") or (layer_spec if layer_spec["name"] == "default" else None)
        if chosen is None:
            return None, ("an embedding gets a rule only when you choose one: roles={'embedding': 'normal'} "
                          "(N(0, 1), as PyTorch) or ('normal', {'std': 0.02})")
        return ("default" if chosen["name"] == "default" else chosen), None
    if block.role == "recurrent":
        chosen = by_param or role_specs.get("recurrent") or layer_spec
    else:
        chosen = by_param or layer_spec
    return ("default" if chosen["name"] == "default" else chosen), None
