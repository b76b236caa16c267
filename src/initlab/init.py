""":func:`initialize`: a scheme applied to a whole model, and the :class:`Manifest` that accounts for
every parameter: drawn by which rule, left as it was and why, or shared with which other name.

The layers it knows (``nn.Linear``, convolutions, ``nn.MultiheadAttention``, ``nn.LSTM``/``GRU``/``RNN``,
``nn.Embedding``, norms, and what :func:`initlab.register_layer` declares) are read from the table in
``layers.py``. Weights are drawn in float32 (or float64) and cast, written through parametrizations
(weight norm) where they let the values through, and never guessed for a layer initlab does not know.
"""

from __future__ import annotations

import fnmatch
import secrets
from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import nn

from . import layers as L
from .recipes import finish as finish_recipe, is_recipe, parse as parse_recipe, patterns_of
from .recipes import plan as recipe_plan
from .draws import Generators, buffer_dtype, copy_default, default_values, draw_tensor, draw_weight, fill_bias
from .errors import InitlabError
from .manifest import Manifest
from .schemes import get, parse_spec

#: Roles whose rule can be chosen apart from the scheme: ``roles={"recurrent": "orthogonal"}``.
CHOOSABLE_ROLES = ("recurrent", "embedding")


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
    if is_recipe(scheme):
        return _initialize_recipe(model, scheme, params, seed, overrides, roles, inputs, include_frozen)
    spec, override_specs, role_specs = _parse_rules(scheme, params, overrides, roles)
    seed = _check_seed(seed)
    manifest = Manifest(scheme=spec, seed=seed, overrides=override_specs, roles=role_specs)
    data_dependent = [s["name"] for s in [spec, *override_specs.values(), *role_specs.values()] if get(s["name"]).apply]
    if data_dependent:  # a registered data-dependent scheme (lsuv): the whole model at once, from a batch
        return _apply_data_scheme(data_dependent[0], model, spec, inputs, seed, bool(override_specs or role_specs))
    generators = Generators(seed)
    if isinstance(model, torch.Tensor):
        return _initialize_tensor(model, spec, generators, manifest)
    if not isinstance(model, nn.Module):
        raise InitlabError(f"initialize needs an nn.Module or a tensor; got {type(model).__name__}.")
    _build_lazy_layers(model, inputs)
    return _initialize_module(model, spec, override_specs, role_specs, generators, manifest, include_frozen)


def _initialize_recipe(model, scheme, params, seed, overrides, roles, inputs, include_frozen) -> Manifest:
    """A recipe (``recipes.py``): its plan gives each role's tensors their rule, drawn as any scheme's."""
    spec = parse_recipe(scheme, params)
    if not isinstance(model, nn.Module):
        raise InitlabError(f"recipe '{spec['name']}' initializes a model by the roles of its layers: give an "
                           f"nn.Module, not {type(model).__name__}.")
    override_specs = {str(p): parse_spec(s) for p, s in (overrides or {}).items()}
    patterns = patterns_of(roles)
    _build_lazy_layers(model, inputs)
    plan = recipe_plan(model, spec, patterns)
    manifest = Manifest(scheme=spec, seed=_check_seed(seed), overrides=override_specs, roles=patterns)
    _initialize_module(model, plan.base, override_specs, {}, Generators(manifest.seed), manifest, include_frozen,
                       plan.rules)
    finish_recipe(manifest, model, plan)
    return manifest


def _parse_rules(scheme, params: dict, overrides, roles) -> tuple[dict, dict, dict]:
    """The scheme's spec, the overrides' specs by pattern and the roles' specs by role, each checked."""
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
    return spec, override_specs, role_specs


def _apply_data_scheme(name: str, model, spec: dict, inputs, seed: int, has_rules: bool) -> Manifest:
    """A registered data-dependent scheme (lsuv) on the whole model at once, from a batch; ``has_rules``:
    overrides or roles were given, which such a scheme cannot follow."""
    if has_rules or not isinstance(model, nn.Module):
        raise InitlabError(f"'{name}' initializes a whole model at once: give a module, and no overrides or roles.")
    if inputs is None:
        raise InitlabError(f"'{name}' needs data: initialize(model, '{name}', inputs=X).")
    return get(name).apply(model, inputs, seed=seed, **spec["params"]).manifest


def _build_lazy_layers(model: nn.Module, inputs) -> None:
    """Give the model's Lazy layers their parameters from ``inputs`` (an error without them)."""
    lazy = L.lazy_layers(model)
    if lazy:
        if inputs is None:
            raise InitlabError(f"layer '{lazy[0]}' is Lazy ({type(model.get_submodule(lazy[0])).__name__}) and has "
                               f"no parameters yet: pass inputs= (a batch) so initlab can build it, or run one "
                               f"forward pass first.")
        _materialize(model, inputs)


def _initialize_tensor(t: torch.Tensor, spec: dict, generators: Generators, manifest: Manifest) -> Manifest:
    if t.numel() == 0:
        raise InitlabError(f"cannot initialize a zero-size tensor (shape {tuple(t.shape)}).")
    if spec["name"] == "default":
        raise InitlabError("'default' is a layer's own reset_parameters(); give a module, not a tensor.")
    with torch.no_grad():
        record = draw_tensor(t, spec, generators(t.device))
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


def _full_name(layer: _Layer, path: str) -> str:
    """A tensor's name in the model: the layer's name, then the tensor's path in it."""
    return f"{layer.name}.{path}" if layer.name else path


def _initialize_module(model, spec, override_specs, role_specs, generators, manifest, include_frozen,
                       plan: dict | None = None) -> Manifest:
    found, claimed = _layers(model)
    names_of: dict[int, list[str]] = {}
    for n, p in model.named_parameters(remove_duplicate=False):
        names_of.setdefault(id(p), []).append(n)
    manifest.names = [n for n, _ in model.named_parameters(remove_duplicate=False)]
    if not manifest.names:
        raise InitlabError(f"{type(model).__name__} has no parameters: there is nothing to initialize.")
    _check_overrides_match(found, override_specs)
    _check_no_empty_weight(found)
    run = _ModuleInit(spec, override_specs, role_specs, generators, manifest, include_frozen, names_of,
                      nonlinearity=getattr(model, "initlab_activation", None), plan=plan)
    for layer in found:
        run.initialize_layer(layer)
    run.leave_unknown_parameters(model, claimed)
    return run.finish(model)


def _check_overrides_match(found: list[_Layer], override_specs: dict) -> None:
    all_names = [x.name for x in found] + [_full_name(x, b.param) for x in found for b in x.blocks]
    for pattern in override_specs:
        if not any(fnmatch.fnmatchcase(n, pattern) for n in all_names):
            raise InitlabError(f"override pattern '{pattern}' matches no layer or parameter; layers: "
                               f"{', '.join(x.name for x in found) or 'none'}.")


def _check_no_empty_weight(found: list[_Layer]) -> None:
    for x in found:
        for b in x.blocks:
            t = L.read(x.module, b.param)
            if b.role in ("weight", "recurrent") and t.numel() == 0:
                raise InitlabError(f"layer '{x.name}' has a zero-size weight (shape {tuple(t.shape)}); every layer "
                                   f"needs at least one unit.")


class _ModuleInit:
    """One :func:`initialize` of a module: the rules, and what has been written or left so far.

    ``written``: id of an underlying parameter -> the name that drew it; ``left``: id -> the manifest's
    entry saying why it was left as it was."""

    def __init__(self, spec, override_specs, role_specs, generators, manifest, include_frozen, names_of,
                 nonlinearity, plan: dict | None = None):
        self.spec, self.override_specs, self.role_specs = spec, override_specs, role_specs
        self.generators, self.manifest, self.include_frozen = generators, manifest, include_frozen
        self.names_of, self.nonlinearity = names_of, nonlinearity
        self.plan = plan or {}  # a recipe's rules: (parameter name, block label) -> spec
        self.written: dict[int, str] = {}
        self.left: dict[int, dict] = {}

    def rule(self, layer: _Layer, block: L.Block, layer_spec: dict):
        return _rule(layer, block, layer_spec, self.override_specs, self.role_specs, self.plan)

    def initialize_layer(self, layer: _Layer) -> None:
        layer_spec = _match(self.override_specs, layer.name) or self.spec
        by_param: dict[str, list[L.Block]] = {}
        for b in layer.blocks:
            by_param.setdefault(b.param, []).append(b)
        defaults = self._defaults(layer, layer_spec)
        for path, blocks in by_param.items():
            self._initialize_parameter(layer, path, blocks, layer_spec, defaults)

    def _defaults(self, layer: _Layer, layer_spec: dict) -> dict[str, torch.Tensor] | None:
        """PyTorch's own values for the layer, when a block of it is to get them (else None)."""
        if not any(self.rule(layer, b, layer_spec)[0] == "default" for b in layer.blocks):
            return None
        sub_seed = int(torch.randint(0, 2**62, (1,), generator=self.generators(torch.device("cpu"))))
        held = [p for b in layer.blocks for p in L.underlying(layer.module, b.param)]
        keep = any(id(p) in self.written for p in held) or (
            not self.include_frozen and any(not p.requires_grad for p in held))
        return default_values(layer.module, sub_seed, in_place=not keep)  # a tied or frozen tensor must stay

    def _initialize_parameter(self, layer: _Layer, path: str, blocks: list[L.Block], layer_spec: dict,
                              defaults) -> None:
        module = layer.module
        pname = _full_name(layer, path)
        under = L.underlying(module, path)
        info = {"parameter": pname, "module": layer.name, "kind": type(module).__name__,
                "shape": list(L.read(module, path).shape),
                "stored_in": [n for u in under for n in self.names_of.get(id(u), [])]}
        stored = L.how_stored(module, path)
        if stored:
            info["stored_as"] = stored
        reason = None
        if under and all(id(u) in self.written for u in under):
            return  # a tied tensor, drawn by the name that came first (the manifest's shared)
        if not self.include_frozen and under and not any(u.requires_grad for u in under):
            reason = "frozen (requires_grad=False); include_frozen=True draws it too"
        rules = [(b, *self.rule(layer, b, layer_spec)) for b in blocks]
        if reason is None and all(r[1] is None for r in rules):
            reason = rules[0][2]
        if reason is not None:
            self._leave(under, info, blocks[0].role, reason)
            return
        current = L.read(module, path)
        work = current.to(buffer_dtype(current.dtype)).clone()
        with torch.no_grad():
            records = [(b, rule, self._fill_block(module, path, b, rule, why, work, defaults))
                       for b, rule, why in rules]
            try:
                L.write(module, path, work.to(current.dtype))
            except L.Unreachable as e:
                self._leave(under, info, blocks[0].role, f"{e}; choose a plain layer to initialize it")
                return
        self._mark_written(under, pname)
        for b, rule, rec in records:
            self.manifest.entries.append(_entry(info, b, rule, rec))

    def _leave(self, under: list, info: dict, role: str, reason: str) -> None:
        for u in under:
            self.left.setdefault(id(u), {**info, "role": role, "reason": reason})

    def _fill_block(self, module: nn.Module, path: str, b: L.Block, rule, why: str | None, work: torch.Tensor,
                    defaults) -> dict:
        """Write ``b``'s rows of ``work`` (the parameter's float copy) by ``rule``; the manifest's record."""
        target = work if b.rows is None else work[b.rows[0]:b.rows[1]]
        if rule is None:
            return {"distribution": "left as it was", "reason": why}
        if rule == "default":
            return copy_default(module, path, b, target, defaults)
        if b.role in ("norm_scale", "norm_shift") and isinstance(rule, dict):  # a recipe's constant
            s = get(rule["name"])
            return s.fn(target, generator=self.generators(work.device), **{**s.fixed, **rule["params"]})
        if rule == "norm":
            target.fill_(1.0 if b.role == "norm_scale" else 0.0)
            return {"distribution": "constant", "value": 1.0 if b.role == "norm_scale" else 0.0,
                    "note": "a norm's scale is 1 and its shift 0"}
        if b.role == "bias":
            return fill_bias(target, rule, self.generators(work.device), b)
        rec = draw_weight(target, b.transposed, rule, self.generators(work.device),
                          self.nonlinearity if b.role == "weight" else None, b.fans)
        pad = getattr(module, "padding_idx", None) if b.role == "embedding" else None
        if pad is not None:  # the padding token's row gets no gradient: it stays 0, as PyTorch
            target[pad].zero_()
            rec["note"] = f"row {pad} (padding_idx) kept at 0"
        return rec

    def _mark_written(self, under: list, pname: str) -> None:
        """Record who drew each underlying tensor; its other names (tied weights) are shared with it."""
        for u in under:
            names = self.names_of.get(id(u), [])
            writer = pname if pname in names else (names[0] if names else pname)
            self.written[id(u)] = writer
            self.left.pop(id(u), None)
            for n in names:
                if n != writer and not n.startswith(f"{pname.rsplit('.', 1)[0]}.parametrizations."):
                    self.manifest.shared[n] = writer

    def leave_unknown_parameters(self, model: nn.Module, claimed: set[int]) -> None:
        """Whatever no known layer claimed: not understood, never drawn with guessed fans."""
        for name, module in model.named_modules():
            for pname, p in module.named_parameters(recurse=False):
                if id(p) in claimed or id(p) in self.written or id(p) in self.left:
                    continue
                owner = "the model itself" if not name else f"{type(module).__name__} '{name}'"
                self.left[id(p)] = {"parameter": f"{name}.{pname}" if name else pname, "module": name,
                                    "kind": type(module).__name__, "shape": list(p.shape), "role": None,
                                    "reason": f"a parameter of {owner}, a module initlab does not know: declare it "
                                              f"with initlab.register_layer(...) to initialize it"}

    def finish(self, model: nn.Module) -> Manifest:
        """The manifest with what was left; an error when nothing at all could be drawn."""
        for pid, e in self.left.items():
            if pid not in self.written:
                self.manifest.left.append(e)
                for n in self.names_of.get(pid, [])[1:]:
                    self.manifest.shared[n] = self.names_of[pid][0]
        if not self.written:
            reasons = sorted({e["reason"] for e in self.manifest.left})
            raise InitlabError(f"nothing in {type(model).__name__} could be initialized with '{self.spec['name']}': "
                               + "; ".join(reasons[:3]) + ".")
        return self.manifest


def _entry(info: dict, b: L.Block, rule, rec: dict) -> dict:
    """The manifest's entry for one block drawn (or left) by ``rule``."""
    name = rule["name"] if isinstance(rule, dict) else ("default" if rule == "default" else "norm")
    entry = {**info, "role": b.role, "scheme": name, "params": rule["params"] if isinstance(rule, dict) else {}, **rec}
    if b.rows is not None or b.label:
        entry["block"] = b.label
        entry["rows"] = list(b.rows) if b.rows else None
        if b.rows is not None:
            entry["shape"] = [b.rows[1] - b.rows[0], *info["shape"][1:]]
    if rec.get("distribution") == "left as it was":
        entry["scheme"] = "left"
    return entry


def _rule(layer: _Layer, block: L.Block, layer_spec: dict, override_specs: dict, role_specs: dict,
          plan: dict | None = None):
    """The rule that draws ``block``: a scheme spec, "default", "norm", or None with the reason. A
    recipe's ``plan`` gives rules by (parameter name, block label); an override comes first."""
    pname = _full_name(layer, block.param)
    planned = (plan or {}).get((pname, block.label))
    by_param = _match(override_specs, pname) or planned
    if block.role in ("norm_scale", "norm_shift"):
        return (planned or "norm"), None
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
