"""Roles of a model's tensors, for the recipes (``recipes.py``): residual blocks, their branches, the
last layer of each branch, embeddings, the readout, attention's queries and keys.

A role is found from the model's structure where it can be, and from a name pattern where the user
gives one (``roles={"branch_out": "*.c_proj"}``). A pattern matches a module's (or a parameter's)
fully qualified name or any dotted suffix of it, so ``"c_proj"`` and ``"*.c_proj"`` both find
``h.0.attn.c_proj``. What each role means and how it is found is :data:`ROLES`.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Iterable, Mapping

from torch import nn

from . import layers as L
from .errors import InitlabError

#: Each role -> how it is found when no pattern names it.
ROLES: dict[str, str] = {
    "block": "a residual block: the outermost entry of a ModuleList/Sequential that holds weight layers and "
             "is neither a known layer nor a plain container (roles={'block': 'h.*'} or a class name declares it)",
    "branch_in": "the weight layers of a residual branch before its last one",
    "branch_out": "the last weight layer of each residual branch (a block's child holding weight layers is a "
                  "branch; when the block holds its layers itself, each attention is a branch and the other "
                  "layers one more; children named downsample/shortcut/skip are the shortcut)",
    "branch_norm": "the last BatchNorm or GroupNorm of a branch, after its last weight layer (a ResNet block's "
                   "bn2 or bn3; a transformer's LayerNorms are on the stream or at a branch's input, never taken)",
    "branch_gain": "a one-element parameter of a block whose name holds 'gain' or 'alpha'",
    "query_key": "attention's queries and keys: MultiheadAttention's q and k, Linear layers named q_proj, "
                 "k_proj, query or key",
    "embedding": "every Embedding layer",
    "readout": "the last weight layer outside every block",
}
SHORTCUT_NAMES = ("downsample", "shortcut", "skip", "proj_shortcut")
QUERY_KEY_NAMES = ("q_proj", "k_proj", "query", "key", "wq", "wk")
GAIN_WORDS = ("gain", "alpha")
#: Child names of a hand-written attention: its query, key, value and output projections (nn.Linear),
#: or one fused query-key-value projection whose rows are [q; k; v], each head's rows together (nanoGPT's
#: and GPT-2's ``c_attn``, timm's ``qkv``). GPT-NeoX's ``query_key_value`` interleaves heads: not here.
ATTENTION_NAMES = {"q": ("q_proj", "q", "query", "wq", "q_lin"), "k": ("k_proj", "k", "key", "wk", "k_lin"),
                   "v": ("v_proj", "v", "value", "wv", "v_lin"), "qkv": ("c_attn", "qkv", "qkv_proj", "wqkv"),
                   "out": ("out_proj", "o_proj", "c_proj", "proj", "wo", "o", "out", "dense", "out_lin")}
#: Attributes where a hand-written attention keeps its number of heads.
HEAD_ATTRS = ("num_heads", "n_head", "n_heads", "nhead", "heads", "num_attention_heads")
#: Norms that can close a residual branch (a ResNet block's bn2 or bn3, before the sum). A transformer's
#: LayerNorm sits on the stream (post-norm: after the sum, where a zero scale zeroes the block's output)
#: or at a branch's input (pre-norm): never found as a branch's last norm, only named (roles=).
BRANCH_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm)


def _child(module: nn.Module, names: tuple) -> tuple[str, nn.Module] | None:
    children = dict(module.named_children())
    hit = next((n for n in names if isinstance(children.get(n), nn.Linear)), None)
    return None if hit is None else (hit, children[hit])


def attention_parts(module: nn.Module) -> dict | None:
    """A hand-written attention's projections, ``{"q", "k", "v", "qkv", "out"}`` -> ``(child name,
    nn.Linear)`` or None, when ``module`` has an output projection and either a fused q-k-v projection
    or all three of q, k and v (:data:`ATTENTION_NAMES`); None for any other module."""
    parts = {b: _child(module, ATTENTION_NAMES[b]) for b in ATTENTION_NAMES}
    if parts["out"] is None or not (parts["qkv"] or all(parts[b] for b in "qkv")):
        return None
    return parts


def _width(module: nn.Module) -> int | None:
    """The width a layer writes: a Linear's out_features, a convolution's out_channels, an attention's
    embed_dim (None for other layers)."""
    for attr in ("out_features", "out_channels", "embed_dim"):
        if isinstance(getattr(module, attr, None), int):
            return getattr(module, attr)
    return None


@dataclass(frozen=True)
class Target:
    """Tensors that play a role: a layer's weight blocks (``labels``: all of them when None) or one
    parameter of a module initlab does not know (``param``)."""

    module: str
    kind: str
    keys: tuple[tuple[str, str | None], ...]  # (full parameter name, block label)
    param: bool = False  # a bare parameter, set by the recipe itself


def matches(pattern: str, name: str) -> bool:
    """``pattern`` matches ``name`` or any of its dotted suffixes (``"c_proj.weight"`` matches
    ``h.0.attn.c_proj.weight``)."""
    return fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(name, "*." + pattern)


def _full(module: str, path: str) -> str:
    return f"{module}.{path}" if module else path


class Structure:
    """The layers, blocks and branches of one model, read once."""

    def __init__(self, model: nn.Module, patterns: Mapping[str, Iterable[str]]):
        self.model, self.patterns = model, patterns
        self.layers: dict[str, tuple[nn.Module, list[L.Block]]] = {}
        attention: list[str] = []
        for name, m in model.named_modules():
            if L.adapter_for(m) is None or any(name.startswith(a + ".") for a in attention):
                continue
            if isinstance(m, nn.MultiheadAttention):
                attention.append(name)
            self.layers[name] = (m, L.check(name, m))
        self.order = list(self.layers)
        self.blocks = self._find_blocks()

    # -- kinds of layer
    def _has(self, name: str, role: str) -> bool:
        return any(b.role == role for b in self.layers[name][1])

    def weight_layers(self, names: Iterable[str] | None = None) -> list[str]:
        return [n for n in (self.order if names is None else names) if self._has(n, "weight")]

    def target(self, name: str, labels: tuple | None = None) -> Target:
        module, blocks = self.layers[name]
        keys = tuple((_full(name, b.param), b.label) for b in blocks
                     if b.role in ("weight", "bias", "embedding", "norm_scale")
                     and (labels is None or b.label in labels))
        return Target(name, type(module).__name__, keys)

    # -- blocks and branches
    def _find_blocks(self) -> list[str]:
        """The outermost modules that are an entry of a ModuleList or Sequential, hold a weight layer, and
        are neither a layer initlab knows nor a plain container (a stage of blocks is not a block): a GPT's
        ``h.i``, a ResNet's blocks inside ``layer1``..``layer4``, and both stacks of an encoder-decoder
        (``encoder.layers.i`` and ``decoder.layers.i``); the heads of a hand-written multi-head attention
        sit inside a block and are not blocks."""
        pattern = self.patterns.get("block")
        mods = dict(self.model.named_modules())
        if pattern:
            found = [n for n, m in mods.items() if n and any(matches(p, n) or type(m).__name__ == p for p in pattern)]
        else:
            found = [_full(n, k) for n, m in mods.items() if isinstance(m, (nn.ModuleList, nn.Sequential))
                     for k, c in m.named_children()
                     if L.adapter_for(c) is None and not isinstance(c, (nn.ModuleList, nn.Sequential))
                     and any(L.adapter_for(x) for x in c.modules())]
        return [n for n in found if not any(n.startswith(o + ".") for o in found)]

    def inside(self, block: str) -> list[str]:
        """The layers of ``block`` but its shortcut, in order."""
        out = []
        for n in self.order:
            if n.startswith(block + "."):
                rest = n[len(block) + 1:].split(".")
                if not any(part in SHORTCUT_NAMES for part in rest):
                    out.append(n)
        return out

    def branches(self, block: str) -> list[list[str]]:
        """The layers of each residual branch of ``block``, in order. When the block holds weight layers
        itself (nn.TransformerEncoderLayer, OPT's and BART's layers), each attention among its children
        (nn.MultiheadAttention, or a module with q/k/v and output projections) is a branch and its other
        layers one more; else each child holding weight layers is a branch (a GPT block's attn and mlp),
        and a child whose last layer does not write the stream's width (BERT's d -> 4d ``intermediate``)
        is joined to the next: what it writes cannot be added back to the stream."""
        inside = self.inside(block)
        depth = block.count(".") + 1
        direct = [n for n in inside if n.count(".") == depth]
        groups: dict[str, list[str]] = {}
        for n in inside:
            groups.setdefault(n.split(".")[depth], []).append(n)
        mods = dict(self.model.get_submodule(block).named_children())
        if self.weight_layers(direct):
            attention = [g for k, g in groups.items() if isinstance(mods.get(k), nn.MultiheadAttention)
                         or (mods.get(k) is not None and attention_parts(mods[k]) is not None)]
            rest = [n for n in inside if not any(n in g for g in attention)]
            return attention + ([rest] if self.weight_layers(rest) else [])
        found = [g for g in groups.values() if self.weight_layers(g)]
        stream = _width(self.layers[self.weight_layers(found[-1])[-1]][0]) if found else None
        out: list[list[str]] = []
        carry: list[str] = []
        for g in found:
            carry += g
            last = _width(self.layers[self.weight_layers(g)[-1]][0])
            if stream is None or last is None or last == stream:
                out.append(carry)
                carry = []
        if carry:
            out.append(carry)
        return out

    # -- the roles
    def find(self, role: str) -> list[Target]:
        if role in self.patterns and role != "block":
            return self._by_pattern(role)
        return getattr(self, "_" + role)()

    def _by_pattern(self, role: str) -> list[Target]:
        out = []
        for p in self.patterns[role]:
            hits = [self.target(n) for n in self.order if n and matches(p, n)]
            if not hits:
                hits = [self._parameter(n) for n, _ in self.model.named_parameters() if matches(p, n)]
            if not hits:
                raise InitlabError(f"role pattern {role}='{p}' matches no layer or parameter; layers: "
                                   f"{', '.join(self.order[:12]) or 'none'}.")
            out += hits
        return out

    def _parameter(self, name: str) -> Target:
        """A parameter named by a pattern: the block of a known layer that holds it, else the bare parameter."""
        for layer in self.order:
            t = self.target(layer)
            if any(k[0] == name for k in t.keys):
                return Target(layer, t.kind, tuple(k for k in t.keys if k[0] == name))
        return Target(name.rpartition(".")[0], "parameter", ((name, None),), True)

    def _split(self, branch: list[str]) -> tuple[list[Target], Target]:
        """A branch's layers before its last, and its last (an attention's out_proj)."""
        weights = self.weight_layers(branch)
        last = weights[-1]
        if isinstance(self.layers[last][0], nn.MultiheadAttention):
            return [self.target(last, ("q", "k", "v"))], self.target(last, ("out",))
        return [self.target(n) for n in weights[:-1]], self.target(last)

    def _branch_in(self) -> list[Target]:
        return [t for b in self.blocks for br in self.branches(b) for t in self._split(br)[0]]

    def _branch_out(self) -> list[Target]:
        return [self._split(br)[1] for b in self.blocks for br in self.branches(b)]

    def _branch_norm(self) -> list[Target]:
        out = []
        for b in self.blocks:
            for br in self.branches(b):
                last = self.order.index(self.weight_layers(br)[-1])
                norms = [n for n in br if self._has(n, "norm_scale") and self.order.index(n) > last
                         and isinstance(self.layers[n][0], BRANCH_NORMS)]
                if norms:
                    out.append(self.target(norms[-1]))
        return out

    def _branch_gain(self) -> list[Target]:
        out = []
        for b in self.blocks:
            for n, p in self.model.get_submodule(b).named_parameters():
                leaf = n.rpartition(".")[2].lower()
                if p.numel() == 1 and any(w in leaf for w in GAIN_WORDS):
                    full = _full(b, n)
                    out.append(Target(full.rpartition(".")[0], "parameter", ((full, None),), True))
        return out

    def _query_key(self) -> list[Target]:
        out = []
        for n in self.weight_layers():
            if isinstance(self.layers[n][0], nn.MultiheadAttention):
                out.append(self.target(n, ("q", "k")))
            elif n.rpartition(".")[2].lower() in QUERY_KEY_NAMES + ATTENTION_NAMES["q"] + ATTENTION_NAMES["k"]:
                out.append(self.target(n))
        return out

    def fused_query_key(self) -> list[str]:
        """Fused q-k-v projections (a ``c_attn`` or ``qkv`` of a hand-written attention): their queries and
        keys are rows of one weight, which a per-tensor rule cannot draw apart from the values."""
        return [_full(n, parts["qkv"][0]) for n, m in self.model.named_modules()
                if (parts := attention_parts(m)) is not None and parts["qkv"] and not all(parts[b] for b in "qkv")]

    def _embedding(self) -> list[Target]:
        return [self.target(n) for n in self.order if self._has(n, "embedding")]

    def _readout(self) -> list[Target]:
        outside = [n for n in self.weight_layers() if not any(n.startswith(b + ".") for b in self.blocks)]
        return [self.target(outside[-1])] if outside else []


def branch_out_ratio(model: nn.Module) -> float | None:
    """How much smaller the last layer of each residual branch is drawn than the branch's other layers:
    the median over branches of sigma_w^2(branch_out) / median sigma_w^2(branch_in), sigma_w^2 = fan_in
    * mean(w^2). About 1 for a depth-blind rule (PyTorch's default, Xavier), about 1/(2L) to 2/L under
    GPT-2's scaling, 0 under Fixup's zero branches; None without a branch of two layers or more."""
    s = Structure(model, {})

    def sigma_w2(t: Target) -> float | None:
        vals = []
        for name, label in t.keys:
            w = L.read(s.model, name).double()  # the effective tensor: a parametrized weight too
            if w.dim() < 2:
                continue
            if label in ("q", "k", "v"):
                d = w.shape[0] // 3
                w = w["qkv".index(label) * d:("qkv".index(label) + 1) * d]
            vals.append(float(w.pow(2).mean()) * w[0].numel())
        return sum(vals) / len(vals) if vals else None

    ratios = []
    for b in s.blocks:
        for br in s.branches(b):
            ins, out = s._split(br)
            before = sorted(x for x in (sigma_w2(t) for t in ins) if x)
            last = sigma_w2(out)
            if before and last is not None:
                ratios.append(last / before[len(before) // 2])
    return sorted(ratios)[len(ratios) // 2] if ratios else None

