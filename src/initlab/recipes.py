"""Recipes: initializations for deep residual networks and transformers that depend on each tensor's
*role* (the last layer of a residual branch, an embedding, the readout) and on the depth.

A recipe is a scheme that knows roles: ``initlab.initialize(model, "gpt2", n_layer=12)``. It finds the
roles (``roles.py``) and turns them into a :class:`Plan`, a rule for each tensor, which
:func:`initlab.initialize` draws with its usual machinery (the layer table, fans, generators from the
seed); the manifest then says which tensor got which role (``recipe_role``) and rule, and its
``recipe`` field holds what the recipe found, its notes and what it reports (DeepNet's alpha).

>>> manifest = initlab.initialize(model, "gpt2", n_layer=12, roles={"branch_out": "*.c_proj"})
>>> manifest.recipe["roles_found"]["branch_out"]
['h.0.attn.c_proj', 'h.0.mlp.c_proj', ...]
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch
from torch import nn

from . import layers as L
from .errors import InitlabError, unknown_name
from .roles import HEAD_ATTRS, ROLES, Structure, Target, attention_parts
from .schemes import check_param, gain, label_of, parse_spec, register_recipe_names


@dataclass
class Plan:
    """A recipe's rule for each tensor: ``rules`` (full parameter name, block label) -> scheme spec,
    drawn by :func:`initialize`; ``scalars`` bare parameters the recipe sets itself; ``base`` the rule of
    every other tensor."""

    base: dict
    rules: dict = field(default_factory=dict)
    role_of: dict = field(default_factory=dict)
    scalars: dict = field(default_factory=dict)  # parameter name -> (role, value)
    found: dict = field(default_factory=dict)  # role -> the modules (or parameters) that play it
    notes: list = field(default_factory=list)
    report: dict = field(default_factory=dict)
    #: Rules that draw several tensors together (mimetic's W_q W_k^T): ``write(model, generator, drawn)``
    #: -> ({(parameter, block): (role, record)}, notes), run after the base draw; ``drawn`` the keys the
    #: base drew (frozen, overridden or unreachable tensors are not in it and are not written).
    joint: list = field(default_factory=list)

    def assign(self, targets: list[Target], role: str, spec: dict) -> None:
        for t in targets:
            for key in t.keys:
                if t.param:
                    self.scalars[key[0]] = (role, spec["params"].get("value", 0.0))
                else:
                    self.rules[key] = spec
                    self.role_of[key] = role


@dataclass(frozen=True)
class Recipe:
    """A named recipe: its formula, its paper, the roles it needs (an error when one is not found) and
    uses when found, its parameters with their defaults, and the function that builds its plan."""

    name: str
    formula: str
    paper: str
    needs: tuple[str, ...]
    uses: tuple[str, ...]
    params: Mapping[str, Any]
    build: Callable[[dict, dict, Structure], Plan]


def _spec(name: str, **params) -> dict:
    return parse_spec({"name": name, "params": params})


def _depth(p: dict, s: Structure, key: str = "n_layer") -> int:
    """The depth the recipe's formula reads: the parameter, else the number of blocks found."""
    n = p.get(key)
    if n is None:
        n = len(s.blocks)
        if not n:
            raise InitlabError(f"no residual block was found to count the depth: give {key}=...")
    return n


def gpt2(found: dict, p: dict, s: Structure) -> Plan:
    """Radford et al. 2019 (GPT-2; as in nanoGPT): every Linear and Embedding weight w ~ N(0, std^2),
    biases 0, norms 1 and 0; the projection that closes each residual branch w ~ N(0, (std / sqrt(2L))^2),
    L = n_layer (two branches per block: 2L branches add to the stream)."""
    L, std = _depth(p, s), p["std"]
    plan = Plan(_spec("normal", std=std))
    plan.assign(found["embedding"], "embedding", _spec("normal", std=std))
    plan.assign(found["branch_out"], "branch_out", _spec("normal", std=std / math.sqrt(2 * L)))
    plan.report = {"n_layer": L}
    return plan


def fixup(found: dict, p: dict, s: Structure) -> Plan:
    """Zhang, Dauphin and Ma 2019 (Fixup): L residual branches of m layers each. The branch's layers but
    its last: He normal scaled by L^(-1/(2m-2)), w ~ N(0, gain^2 L^(-1/(m-1)) / fan_in); the last layer
    of each branch 0; the classifier (readout) 0, weight and bias. Fixup's scalar biases (0) and
    multiplier (1) are parts of the architecture: the model must have them; this sets neither.
    (The authors' code computes He's std from fan_out; the paper says He, and this uses fan_in.)"""
    L = p["n_branches"] or len(found["branch_out"])
    m = p["m"]
    if m is None:
        n_in, n_out = len(found["branch_in"]), len(found["branch_out"])
        if (n_in + n_out) % n_out:
            raise InitlabError(f"the branches have different numbers of layers ({n_in} + {n_out} over {n_out} "
                               f"branches): give m=...")
        m = (n_in + n_out) // n_out
    if m < 2:
        raise InitlabError(f"fixup scales branches of m >= 2 layers by L^(-1/(2m-2)); got m={m}.")
    scale = gain(p["nonlinearity"]) ** 2 * L ** (-1.0 / (m - 1))
    plan = Plan(_spec("he_normal", nonlinearity=p["nonlinearity"]))
    plan.assign(found["branch_in"], "branch_in", _spec("variance_scaling", scale=scale, mode="fan_in",
                                                       distribution="normal"))
    plan.assign(found["branch_out"], "branch_out", _spec("zeros"))
    plan.assign(found["readout"], "readout", _spec("zeros"))
    scalars = [n for b in s.blocks for n, q in s.model.get_submodule(b).named_parameters() if q.numel() == 1]
    plan.notes.append("Fixup's scalar biases (before each layer, 0) and multiplier (after the branch, 1) are "
                      "architectural: the model must have them; this recipe sets neither"
                      + (f" (one-element parameters found in blocks: {len(scalars)})" if scalars else
                         " (this model's blocks have no one-element parameter)"))
    plan.report = {"L": L, "m": m, "branch_scale": L ** (-1.0 / (2 * m - 2))}
    return plan


def _scaled_branches(found: dict, plan: Plan, scheme: str, g: float) -> None:
    """Every branch layer drawn by ``scheme`` with gain ``g``, but attention's queries and keys (gain 1)."""
    plan.assign(found["branch_in"], "branch_in", _spec(scheme, gain=g))
    plan.assign(found["branch_out"], "branch_out", _spec(scheme, gain=g))
    plan.assign(found["query_key"], "query_key", _spec(scheme, gain=1.0))


def _no_fused_query_key(recipe: str, s: Structure) -> None:
    """deepnet and t_fixup draw queries and keys apart from values: refuse a fused q-k-v projection,
    whose three parts are rows of one weight (a per-tensor rule would draw them all alike, with the
    fans of the whole (3d, d) matrix)."""
    fused = [n for n in s.fused_query_key() if any(n.startswith(b + ".") for b in s.blocks)]
    if fused:
        raise InitlabError(f"recipe '{recipe}' draws attention's queries and keys with gain 1 and its values with "
                           f"the depth's gain, but '{fused[0]}' holds all three in one weight (rows [q; k; v]), which "
                           f"it cannot draw apart: split it into q, k and v Linears, or use gpt2 or mimetic, which "
                           f"read a fused projection.")


def _stacks(s: Structure) -> dict[str, list[str]]:
    """The blocks by stack: ``"encoder"``, ``"decoder"``, or ``""`` (:func:`_stack_of`)."""
    stacks: dict[str, list[str]] = {}
    for b in s.blocks:
        stacks.setdefault(_stack_of(b) or "", []).append(b)
    return stacks


def _stack_of(block: str) -> str | None:
    """``"encoder"`` or ``"decoder"`` when a component of the block's name says so (nn.Transformer's
    ``encoder.layers.0``, a user's ``decoder.blocks.3``), else None."""
    words = {w for part in block.split(".") for w in ("encoder", "decoder") if w in part.lower()}
    return words.pop() if len(words) == 1 else None


def _in_blocks(targets: list[Target], blocks: list[str]) -> list[Target]:
    return [t for t in targets if any(t.module.startswith(b + ".") for b in blocks)]


def deepnet(found: dict, p: dict, s: Structure) -> Plan:
    """Wang et al. 2022 (DeepNet, DeepNorm): x_{l+1} = LN(alpha x_l + G(x_l)), and in each residual
    branch the feed-forward layers (fc1, fc2) and attention's value and output projections drawn
    Xavier normal with gain beta, queries and keys Xavier normal with gain 1. The constants, by the
    paper's table:

    - one stack of N layers (encoder-only or decoder-only): alpha = (2N)^(1/4), beta = (8N)^(-1/4);
    - an encoder of N layers and a decoder of M layers: the encoder's alpha = 0.81 (N^4 M)^(1/16),
      beta = 0.87 (N^4 M)^(-1/16); the decoder's alpha = (3M)^(1/4), beta = (12M)^(-1/4) (its
      cross-attention's value and output projections too).

    Here every layer of a residual branch gets its stack's beta but the queries and keys
    (``query_key``). A model is encoder-decoder when its blocks' names say ``encoder`` and ``decoder``
    (nn.Transformer's do): N and M are counted, or given as ``encoder_layers`` and ``decoder_layers``.
    alpha is architectural: reported, not applied. A fused q-k-v projection is refused."""
    _no_fused_query_key("deepnet", s)
    stacks = _stacks(s)
    plan = Plan(_spec("xavier_normal"))
    if not {"encoder", "decoder"} <= set(stacks):
        if p["encoder_layers"] is not None or p["decoder_layers"] is not None:
            raise InitlabError("deepnet's encoder_layers and decoder_layers are for an encoder-decoder model; this "
                               "model's blocks are one stack (give n_layer=..., or name its blocks with "
                               "roles={'block': [...]}, their names holding 'encoder' and 'decoder').")
        N = _depth(p, s)
        beta, alpha = (8 * N) ** -0.25, (2 * N) ** 0.25
        _scaled_branches(found, plan, "xavier_normal", beta)
        plan.report = {"n_layer": N, "alpha": alpha, "beta": beta}
        plan.notes.append(f"DeepNorm: multiply the residual by alpha = (2N)^(1/4) = {alpha:.4g} in the model "
                          f"(x = LN(alpha * x + branch(x))); initialization cannot do it")
        return plan
    if p["n_layer"] is not None:
        raise InitlabError("this model is encoder-decoder (its blocks' names hold 'encoder' and 'decoder'): give "
                           "encoder_layers=... and decoder_layers=..., not n_layer.")
    N = p["encoder_layers"] or len(stacks["encoder"])
    M = p["decoder_layers"] or len(stacks["decoder"])
    constants = {"encoder": (0.81 * (N ** 4 * M) ** (1 / 16), 0.87 * (N ** 4 * M) ** (-1 / 16)),
                 "decoder": ((3 * M) ** 0.25, (12 * M) ** -0.25)}
    for stack, (alpha, beta) in constants.items():
        part = {role: _in_blocks(ts, stacks[stack]) for role, ts in found.items()}
        _scaled_branches(part, plan, "xavier_normal", beta)
        plan.notes.append(f"DeepNorm: multiply the {stack}'s residual by alpha = {alpha:.4g} in the model; "
                          f"initialization cannot do it")
    if stacks.get(""):
        plan.notes.append(f"blocks in neither stack, left to the base (Xavier normal): {', '.join(stacks[''])}")
    plan.report = {"encoder_layers": N, "decoder_layers": M,
                   "alpha": {k: a for k, (a, _) in constants.items()}, "beta": {k: b for k, (_, b) in constants.items()}}
    return plan


def t_fixup(found: dict, p: dict, s: Structure) -> Plan:
    """Huang, Perez, Ba and Volkovs 2020 (T-Fixup), one stack of N layers. What is implemented: Xavier
    uniform for every weight; the value and output projections and the MLP weights of each block (every
    branch layer but ``query_key``) scaled by c, i.e. Xavier uniform with gain c; the input embeddings
    w ~ N(0, (c d^(-1/2))^2), d the embedding size; c = (9N)^(-1/4) for a decoder stack and
    0.67 N^(-1/4) for an encoder stack. An encoder-decoder model (its blocks' names say ``encoder`` and
    ``decoder``, as nn.Transformer's do) gets each stack's c, with N the encoder's layers and M the
    decoder's: 0.67 N^(-1/4) and (9M)^(-1/4), and both stacks' embeddings the decoder's c, as the
    paper's algorithm scales them. The paper also removes the norms and the warmup: architectural, not
    done here. A fused q-k-v projection is refused."""
    _no_fused_query_key("t_fixup", s)
    if p["stack"] not in ("decoder", "encoder"):
        raise InitlabError(f"t_fixup's stack is 'decoder' or 'encoder'; got stack={p['stack']!r}.")
    stacks = _stacks(s)
    plan = Plan(_spec("xavier_uniform"))
    if {"encoder", "decoder"} <= set(stacks):
        if p["n_layer"] is not None:
            raise InitlabError("this model is encoder-decoder (its blocks' names hold 'encoder' and 'decoder'): "
                               "t_fixup counts each stack's layers itself; leave n_layer out.")
        N, M = len(stacks["encoder"]), len(stacks["decoder"])
        scales = {"encoder": 0.67 * N ** -0.25, "decoder": (9 * M) ** -0.25}
        for stack, c in scales.items():
            _scaled_branches({role: _in_blocks(ts, stacks[stack]) for role, ts in found.items()}, plan,
                             "xavier_uniform", c)
        c = scales["decoder"]
        plan.report = {"encoder_layers": N, "decoder_layers": M, "scale": scales}
    else:
        N = _depth(p, s)
        c = (9 * N) ** -0.25 if p["stack"] == "decoder" else 0.67 * N ** -0.25
        _scaled_branches(found, plan, "xavier_uniform", c)
        plan.report = {"n_layer": N, "scale": c}
    for t in found["embedding"]:
        d = s.model.get_submodule(t.module).weight.shape[1]
        plan.assign([t], "embedding", _spec("normal", std=c * d ** -0.5))
    plan.notes.append("T-Fixup trains without layer norm and without warmup: remove them from the model")
    return plan


def zero_init_residual(found: dict, p: dict, s: Structure) -> Plan:
    """Goyal et al. 2017; torchvision's ``zero_init_residual``: the scale of the norm that closes each
    residual branch (a ResNet block's last BatchNorm) set to 0, so each block starts as the identity;
    every other tensor by ``base``."""
    plan = Plan(parse_spec(p["base"]))
    plan.assign(found["branch_norm"], "branch_norm", _spec("zeros"))
    return plan


def skipinit(found: dict, p: dict, s: Structure) -> Plan:
    """De and Smith 2020 (SkipInit): the scalar gain that multiplies each residual branch set to 0, so
    each block starts as the identity; every other tensor by ``base``. The gain is a parameter the
    model must have (``branch_gain``: found by name, or roles={'branch_gain': '*.alpha'})."""
    plan = Plan(parse_spec(p["base"]))
    plan.assign(found["branch_gain"], "branch_gain", _spec("zeros"))
    return plan


def zero_residual(found: dict, p: dict, s: Structure) -> Plan:
    """Zhao, Schaefer and Anandkumar 2021 (ZerO), its residual form: every weight by the deterministic
    ``zero`` scheme (identity, partial identity, or c H[:out, :in] from a Hadamard matrix; see
    :func:`initlab.schemes.zero`), biases 0, and the last layer of each residual branch 0, so every
    block starts as the identity and the network's start holds only zeros and (scaled) ones. The extra
    skip connections with Hadamard transforms the paper adds where a ResNet changes its width are
    architectural: the model must have them; this sets none."""
    plan = Plan(_spec("zero"))
    plan.assign(found["branch_out"], "branch_out", _spec("zeros"))
    plan.notes.append("ZerO's Hadamard skip connections at width changes are architectural: the model must have "
                      "them; this recipe only draws the weights")
    return plan


@dataclass
class Attention:
    """One attention layer's projections as mimetic writes them: ``rows[b]`` (b in q, k, v) is the
    (parameter, block label, first row) of the d rows of PyTorch's (out, in) weight that compute b, and
    ``out`` the output projection's (parameter, block label)."""

    name: str
    d: int
    heads: int
    rows: dict
    out: tuple

    def keys(self) -> list[tuple]:
        return list(dict.fromkeys([r[:2] for r in self.rows.values()] + [self.out]))


def attentions(model: nn.Module, heads: int | None = None) -> list[Attention]:
    """Every attention layer mimetic can write: ``nn.MultiheadAttention`` (q, k and v of one size), and
    a module whose nn.Linear children are named as :data:`ATTENTION_NAMES` says (separate q, k, v and
    output projections, or a fused ``c_attn``/``qkv`` and an output), its heads read from an attribute
    (:data:`HEAD_ATTRS`) or given as ``heads``. Any other size is an error that names the layer."""
    found = []
    for name, m in model.named_modules():
        pre = f"{name}." if name else ""
        if isinstance(m, nn.MultiheadAttention):
            if not m._qkv_same_embed_dim:
                raise InitlabError(f"recipe 'mimetic' needs q, k and v of one size; attention '{name}' has kdim or "
                                   f"vdim != embed_dim, so W_q W_k^T is not square.")
            d = m.embed_dim
            found.append(Attention(name, d, m.num_heads, {b: (f"{pre}in_proj_weight", b, i * d)
                                                          for i, b in enumerate("qkv")}, (f"{pre}out_proj.weight", "out")))
            continue
        parts = attention_parts(m)
        if parts is None:
            continue
        out_name, out = parts["out"]
        d = out.out_features
        if parts["qkv"] and not all(parts[b] for b in "qkv"):
            fused_name, fused = parts["qkv"]
            if fused.weight.shape != (3 * d, d) or out.weight.shape != (d, d):
                raise InitlabError(f"recipe 'mimetic': attention '{name}' has {fused_name} of shape "
                                   f"{tuple(fused.weight.shape)} and {out_name} of {tuple(out.weight.shape)}; it "
                                   f"needs (3d, d) and (d, d).")
            rows = {b: (f"{pre}{fused_name}.weight", None, i * d) for i, b in enumerate("qkv")}
        else:
            bad = [f"{parts[b][0]} {tuple(parts[b][1].weight.shape)}" for b in ("q", "k", "v", "out")
                   if parts[b][1].weight.shape != (d, d)]
            if bad:
                raise InitlabError(f"recipe 'mimetic' needs square query, key, value and output projections of one "
                                   f"size d; attention '{name}' has {', '.join(bad)}.")
            rows = {b: (f"{pre}{parts[b][0]}.weight", None, 0) for b in "qkv"}
        h = heads or next((getattr(m, a) for a in HEAD_ATTRS if isinstance(getattr(m, a, None), int)), None)
        if h is None:
            raise InitlabError(f"recipe 'mimetic' cannot tell how many heads attention '{name}' has (no attribute "
                               f"{', '.join(HEAD_ATTRS[:3])}, ...): give heads=...")
        if d % h:
            raise InitlabError(f"attention '{name}': its size {d} is not a multiple of heads={h}.")
        found.append(Attention(name, d, h, rows, (f"{pre}{out_name}.weight", None)))
    return found


def mimetic(found: dict, p: dict, s: Structure) -> Plan:
    """Trockman and Kolter 2023 (Mimetic initialization of self-attention layers), in the paper's
    row-vector convention (q = x W_q, W_q and W_k d x k per head, W_v and W_proj d x d over all heads):

    - per head, W_q W_k^T ~ alpha1 Z1 + beta1 I (d x d);
    - over the layer, W_v W_proj ~ alpha2 Z2 - beta2 I (d x d);

    Z1 (a new one per head) and Z2 with N(0, 1/d) entries. Each target T = U S V^T is factored by its
    SVD: W_q = U_k S_k^(1/2), W_k = V_k S_k^(1/2) with the k = d / heads largest singular values (so
    W_q W_k^T is T's best rank-k approximation, not T), and W_v = U S^(1/2), W_proj = S^(1/2) V^T
    (full rank: W_v W_proj = T). Defaults are the paper's for vision transformers (alpha1 = beta1 =
    0.7, alpha2 = beta2 = 0.4); the paper sees the opposite signs in GPT-2's trained weights (negative
    betas give them). Attention layers as :func:`attentions` finds them: ``nn.MultiheadAttention``,
    separate q/k/v/output nn.Linear projections, or a fused ``c_attn``/``qkv``. Every other tensor
    (biases too) by ``base``."""
    layers = attentions(s.model, p["heads"])
    if not layers:
        raise InitlabError("recipe 'mimetic' found no attention layer: it initializes nn.MultiheadAttention, or a "
                           "module with nn.Linear children q_proj/k_proj/v_proj/out_proj (or query/key/value, "
                           "wq/wk/wv/wo), or a fused c_attn/qkv with an output c_proj/proj.")
    plan = Plan(parse_spec(p["base"]))
    plan.joint.append(lambda model, g, drawn: _mimetic_write(model, g, drawn, layers, p))
    plan.report = {"attention": [a.name for a in layers], "heads": {a.name: a.heads for a in layers}}
    return plan


def _factor(target: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """W1 = U_r S_r^(1/2), W2 = V_r S_r^(1/2): W1 W2^T is the best rank-r approximation of ``target``."""
    u, sv, vh = torch.linalg.svd(target)
    root = sv[:rank].sqrt()
    return u[:, :rank] * root, vh[:rank].T * root


def _mimetic_write(model, g: torch.Generator, drawn: set, layers: list[Attention], p: dict):
    """Write each attention's q, k, v and out weights by :func:`mimetic`'s rule (a joint rule of the plan)."""
    out, notes = {}, []
    for a in layers:
        if not all(k in drawn for k in a.keys()):
            notes.append(f"mimetic left '{a.name}' to the base draw: some of its projections were not drawn by it "
                         f"(frozen, overridden or unreachable)")
            continue
        d, h = a.d, a.heads
        k = d // h
        eye = torch.eye(d, dtype=torch.float64)
        rows = {b: torch.empty(d, d, dtype=torch.float64) for b in "qkv"}  # PyTorch's (out, in) rows of each
        qk_error = []
        for head in range(h):
            target = p["alpha1"] * torch.randn(d, d, generator=g, dtype=torch.float64) / math.sqrt(d) + p["beta1"] * eye
            wq, wk = _factor(target, k)
            rows["q"][head * k:(head + 1) * k], rows["k"][head * k:(head + 1) * k] = wq.T, wk.T
            qk_error.append(float((wq @ wk.T - target).norm() / target.norm()))
        target = p["alpha2"] * torch.randn(d, d, generator=g, dtype=torch.float64) / math.sqrt(d) - p["beta2"] * eye
        wv, wo = _factor(target, d)
        rows["v"] = wv.T
        try:
            values = {}  # q, k and v may share one tensor (MultiheadAttention's, a fused c_attn)
            for b, (param, _, first) in a.rows.items():
                if param not in values:
                    values[param] = L.read(model, param).clone()
                values[param][first:first + d] = rows[b].to(values[param].dtype)
            values[a.out[0]] = wo.to(L.read(model, a.out[0]).dtype)
            for param, value in values.items():
                L.write(model, param, value)
        except L.Unreachable as e:
            notes.append(f"mimetic left '{a.name}' to the base draw: {e}")
            continue
        qk = {"distribution": "mimetic", "target": "W_q W_k^T ~ alpha1 Z1 + beta1 I per head, rank head_dim",
              "alpha": p["alpha1"], "beta": p["beta1"], "heads": h, "head_dim": k,
              "target_error": sum(qk_error) / h}
        vo = {"distribution": "mimetic", "target": "W_v W_proj ~ alpha2 Z2 - beta2 I over the heads, full rank",
              "alpha": p["alpha2"], "beta": -p["beta2"], "heads": h, "head_dim": k,
              "target_error": float((wv @ wo.T - target).norm() / target.norm())}
        if a.rows["q"][:2] == a.rows["v"][:2] and a.rows["q"][1] is None:  # one fused q, k, v tensor
            out[a.rows["q"][:2]] = ("query_key_value", {**qk, "value": vo})
        else:
            out.update({a.rows["q"][:2]: ("query_key", qk), a.rows["k"][:2]: ("query_key", qk),
                        a.rows["v"][:2]: ("value_out", vo)})
        out[a.out] = ("value_out", vo)
    return out, notes


_SCALED = ("branch_in", "query_key")
RECIPES: dict[str, Recipe] = {r.name: r for r in [
    Recipe("gpt2", "W, E ~ N(0, std^2), b = 0; branch_out ~ N(0, std^2 / (2 n_layer))", "Radford et al. 2019",
           ("branch_out",), ("embedding",), {"n_layer": None, "std": 0.02}, gpt2),
    Recipe("fixup", "branch_in ~ He * L^(-1/(2m-2)); branch_out = 0; readout = 0", "Zhang, Dauphin, Ma 2019",
           ("branch_in", "branch_out", "readout"), (), {"n_branches": None, "m": None, "nonlinearity": "relu"},
           fixup),
    Recipe("t_fixup", "Xavier; v, out, MLP gain (9N)^(-1/4) (encoder 0.67 N^(-1/4)); E ~ N(0, c^2/d)",
           "Huang et al. 2020", ("branch_out",), (*_SCALED, "embedding"), {"n_layer": None, "stack": "decoder"},
           t_fixup),
    Recipe("deepnet", "Xavier normal; fc1, fc2, v, out gain beta = (8N)^(-1/4), alpha = (2N)^(1/4) reported; "
           "encoder-decoder: encoder beta = 0.87 (N^4 M)^(-1/16), decoder beta = (12M)^(-1/4)",
           "Wang et al. 2022", ("branch_out",), _SCALED, {"n_layer": None, "encoder_layers": None,
                                                          "decoder_layers": None}, deepnet),
    Recipe("zero_init_residual", "the last norm's scale of each branch = 0; the rest by base",
           "Goyal et al. 2017", ("branch_norm",), (), {"base": "default"}, zero_init_residual),
    Recipe("skipinit", "each branch's scalar gain = 0; the rest by base", "De and Smith 2020",
           ("branch_gain",), (), {"base": "default"}, skipinit),
    Recipe("mimetic", "per head W_q W_k^T ~ a1 Z1 + b1 I (rank head_dim), W_v W_proj ~ a2 Z2 - b2 I; Z ~ N(0, 1/d); "
           "by SVD; MultiheadAttention, q/k/v/out Linear or a fused c_attn/qkv", "Trockman and Kolter 2023", (), (),
           {"alpha1": 0.7, "beta1": 0.7, "alpha2": 0.4, "beta2": 0.4, "heads": None, "base": "default"}, mimetic),
    Recipe("zero_residual", "every weight by ZerO (identity / Hadamard), biases 0; branch_out = 0",
           "Zhao, Schaefer, Anandkumar 2021", ("branch_out",), (), {}, zero_residual),
]}
#: An example pattern for each role, for the error that says how to name it.
EXAMPLES = {"branch_out": "'*.c_proj'", "branch_in": "'*.c_fc'", "readout": "'head'", "embedding": "'wte'",
            "branch_norm": "'*.bn2'", "branch_gain": "'*.alpha'", "query_key": "'*.q_proj'", "block": "'h.*'"}


def recipes() -> list[str]:
    """The names of every recipe (:func:`initlab.schemes` lists the per-tensor schemes)."""
    return sorted(RECIPES)


register_recipe_names(recipes)


def is_recipe(scheme: Any) -> bool:
    name = scheme.get("name") if isinstance(scheme, Mapping) else scheme
    return isinstance(name, str) and name in RECIPES


def parse(scheme: Any, params: dict) -> dict:
    """A recipe's spec ``{"name", "params"}``, every parameter checked."""
    if isinstance(scheme, Mapping):
        if params:
            raise InitlabError("give a recipe's parameters either in the scheme dict or as keywords, not both.")
        name, params = scheme["name"], dict(scheme.get("params") or {})
    else:
        name = scheme
    recipe = RECIPES[name]
    for key, value in params.items():
        if key not in recipe.params:
            raise InitlabError(f"recipe '{name}' takes no parameter '{key}'; it takes: {', '.join(recipe.params)}.")
        if key in ("n_layer", "n_branches", "m", "encoder_layers", "decoder_layers", "heads"):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InitlabError(f"recipe '{name}' needs {key} as a whole number >= 1; got {key}={value!r}.")
        else:
            check_param(name, key, value, recipe.params[key])
    return {"name": name, "params": dict(params)}


def patterns_of(roles: Mapping | None) -> dict[str, list[str]]:
    """The user's role patterns, each role's as a list; an unknown role is an error."""
    out = {}
    for role, pattern in (roles or {}).items():
        if role not in ROLES:
            raise unknown_name("role", role, ROLES)
        pats = [pattern] if isinstance(pattern, str) else list(pattern)
        if not pats or not all(isinstance(x, str) and x for x in pats):
            raise InitlabError(f"role '{role}' takes a name pattern or a list of them; got {pattern!r}.")
        out[role] = pats
    return out


def plan(model, spec: dict, roles: Mapping | None) -> Plan:
    """The recipe's plan for ``model``: an error naming each role it needs and did not find."""
    recipe = RECIPES[spec["name"]]
    s = Structure(model, patterns_of(roles))
    found = {role: s.find(role) for role in recipe.needs + recipe.uses}
    for role in recipe.needs:
        if not found[role]:
            raise InitlabError(f"recipe '{recipe.name}' found no tensor for role '{role}' ({ROLES[role]}); "
                               f"name it with roles={{'{role}': <pattern>}}, e.g. {EXAMPLES[role]}.")
    result = recipe.build(found, {**recipe.params, **spec["params"]}, s)
    result.found = {role: [t.keys[0][0] if t.param else t.module for t in ts] for role, ts in found.items()}
    return result


#: What a joint rule keeps of the base draw's manifest entry (the tensor it names); the rest is its own.
_ENTRY_KEYS = ("parameter", "module", "kind", "shape", "stored_in", "stored_as", "role", "block", "rows")


def _write_joint(manifest, model, plan_: Plan) -> None:
    """Run the plan's joint rules over what the base drew, from a generator of the manifest's seed (a
    stream apart from the base draw's), and rewrite the entries of the tensors they wrote."""
    digest = hashlib.sha256(f"{manifest.seed}:{manifest.scheme['name']}".encode()).digest()
    g = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)
    base = plan_.base["name"]
    entries = {(e["parameter"], e.get("block")): i for i, e in enumerate(manifest.entries) if e["scheme"] == base}
    for write in plan_.joint:
        with torch.no_grad():
            records, notes = write(model, g, set(entries))
        plan_.notes += notes
        for key, (role, rec) in records.items():
            old = manifest.entries[entries[key]]
            manifest.entries[entries[key]] = {**{k: old[k] for k in _ENTRY_KEYS if k in old},
                                              "scheme": manifest.scheme["name"], "params": {}, **rec}
            plan_.role_of[key] = role


def finish(manifest, model, plan_: Plan) -> None:
    """Mark each manifest entry with its role, set the scalars the recipe sets itself, and record what
    the recipe found, its notes and its report in ``manifest.recipe``."""
    if plan_.joint:
        _write_joint(manifest, model, plan_)
    for e in manifest.entries:
        role = plan_.role_of.get((e["parameter"], e.get("block")))
        if role:
            e["recipe_role"] = role
    for name, (role, value) in plan_.scalars.items():
        p = model.get_parameter(name)
        with torch.no_grad():
            p.fill_(value)
        manifest.left = [e for e in manifest.left if e["parameter"] != name]
        manifest.entries.append({"parameter": name, "module": name.rpartition(".")[0], "kind": "parameter",
                                 "shape": list(p.shape), "stored_in": [name], "role": "scalar", "scheme": "constant",
                                 "params": {"value": value}, "distribution": "constant", "value": float(value),
                                 "recipe_role": role})
    manifest.recipe = {"name": manifest.scheme["name"], "base": label_of(plan_.base), "roles_found": plan_.found,
                       "notes": plan_.notes, **plan_.report}
