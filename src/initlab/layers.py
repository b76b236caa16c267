"""What initlab knows about each kind of layer: which of its tensors are weights (and in which
blocks, with which fan axes), which are biases, norm scales or embeddings, and along which axis its
output's features lie. One table, read by :func:`initlab.initialize`, the per-layer probe and
:func:`initlab.lsuv`.

A layer from another library that is a Linear or a convolution in all but name is declared in one
line, and is then initialized, probed and rescaled like ``nn.Linear``::

    initlab.register_layer(transformers.pytorch_utils.Conv1D, transposed=True)  # weight stored (in, out)

A parameter of a module type that is neither built in nor registered is reported as not understood
and never initialized with guessed fans.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.nn.utils import parametrize

from .errors import InitlabError

#: Roles a tensor can play. A role decides which rule draws it (see :func:`initlab.initialize`).
ROLES = ("weight", "recurrent", "bias", "embedding", "norm_scale", "norm_shift")


@dataclass(frozen=True)
class Block:
    """One tensor initlab draws as a unit: a whole parameter, or a block of its rows (one of Q, K, V;
    one gate of an LSTM).

    ``param`` is the attribute path on the layer (``"weight"``, ``"in_proj_weight"``,
    ``"out_proj.weight"``); ``rows`` a ``(start, stop)`` slice of its first axis; ``transposed`` says
    the weight is stored ``(in, out)`` rather than PyTorch's ``(out, in)``, so fans are swapped;
    ``fans`` overrides what the shape says (grouped and transposed convolutions)."""

    param: str
    role: str
    rows: tuple[int, int] | None = None
    label: str | None = None
    transposed: bool = False
    fans: tuple[int, int] | None = None  # (fan_in, fan_out) when the layer defines them apart from the shape


@dataclass(frozen=True)
class Adapter:
    """How initlab reads one layer type: its blocks, its output's feature axis, and how PyTorch's
    own default initialization is run (``reset``: the method name, or None when it has none)."""

    blocks: Callable[[nn.Module], list[Block]]
    feature_axis: int = -1
    reset: str | None = "reset_parameters"
    weight_layer: bool = True  # a layer whose output lsuv rescales and diagnose gives a row


def _plain(weight: str = "weight", bias: str = "bias", transposed: bool = False):
    def blocks(m: nn.Module) -> list[Block]:
        out = [Block(weight, "weight", transposed=transposed)]
        if getattr(m, bias, None) is not None:
            out.append(Block(bias, "bias"))
        return out
    return blocks


def conv_fans(m: nn.modules.conv._ConvNd) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a convolution as the signal sees them: the inputs that reach one output
    (``C_in/groups * k``; for a transposed convolution ``C_in/groups * k / stride``, as each output
    position gathers only the taps its stride lets through) and the outputs one input reaches
    (``C_out/groups * k``). PyTorch's rule, read from the weight's shape alone, gives a depthwise
    convolution fan_out ``C_out * k`` and a transposed one the fans of the forward convolution."""
    k = math.prod(m.kernel_size)
    cin, cout, g = m.in_channels, m.out_channels, m.groups
    if m.transposed:
        return max(1, round(cin // g * k / math.prod(m.stride))), cout // g * k
    return cin // g * k, cout // g * k


def _conv_blocks(m: nn.modules.conv._ConvNd) -> list[Block]:
    out = [Block("weight", "weight", fans=conv_fans(m))]
    if m.bias is not None:
        out.append(Block("bias", "bias"))
    return out


def _attention_blocks(m: nn.MultiheadAttention) -> list[Block]:
    e = m.embed_dim
    if m.in_proj_weight is not None:
        out = [Block("in_proj_weight", "weight", (i * e, (i + 1) * e), label) for i, label in enumerate("qkv")]
    else:
        out = [Block(f"{label}_proj_weight", "weight", label=label) for label in "qkv"]
    if m.in_proj_bias is not None:
        out += [Block("in_proj_bias", "bias", (i * e, (i + 1) * e), label) for i, label in enumerate("qkv")]
    for name in ("bias_k", "bias_v"):
        if getattr(m, name) is not None:
            out.append(Block(name, "bias", label=name))
    out.append(Block("out_proj.weight", "weight", label="out"))
    if m.out_proj.bias is not None:
        out.append(Block("out_proj.bias", "bias", label="out"))
    return out


#: Gates of the recurrent layers and cells, in PyTorch's order along the first axis of their weights.
GATES = {nn.LSTM: "ifgo", nn.GRU: "rzn", nn.RNN: "h", nn.LSTMCell: "ifgo", nn.GRUCell: "rzn", nn.RNNCell: "h"}


def _gated(m: nn.Module, tag: str) -> list[Block]:
    """The per-gate blocks of one layer (or cell): input weights, recurrent weights and both biases,
    named ``weight_ih{tag}`` and so on."""
    gates = next(g for t, g in GATES.items() if isinstance(m, t))
    h = m.hidden_size
    kinds = [("weight_ih", "weight"), ("weight_hh", "recurrent")] + ([("bias_ih", "bias"), ("bias_hh", "bias")]
                                                                     if m.bias else [])
    return [Block(f"{name}{tag}", role, (i * h, (i + 1) * h), g) for name, role in kinds for i, g in enumerate(gates)]


def _rnn_blocks(m: nn.RNNBase) -> list[Block]:
    out = []
    for layer in range(m.num_layers):
        for suffix in ("", "_reverse")[: 2 if m.bidirectional else 1]:
            out += _gated(m, f"_l{layer}{suffix}")
            if getattr(m, "proj_size", 0):
                out.append(Block(f"weight_hr_l{layer}{suffix}", "weight", label="proj"))
    return out


def _cell_blocks(m: nn.RNNCellBase) -> list[Block]:
    return _gated(m, "")


def _norm_blocks(m: nn.Module) -> list[Block]:
    out = []
    if getattr(m, "weight", None) is not None:
        out.append(Block("weight", "norm_scale"))
    if getattr(m, "bias", None) is not None:
        out.append(Block("bias", "norm_shift"))
    return out


def _embedding_blocks(m: nn.Module) -> list[Block]:
    return [Block("weight", "embedding")]


_NORMS = tuple(t for t in (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._NormBase, getattr(nn, "RMSNorm", None))
               if t is not None)

#: The table: layer type -> adapter. Looked up by the most specific registered type (the MRO).
_ADAPTERS: dict[type, Adapter] = {
    nn.Linear: Adapter(_plain(), -1),
    nn.modules.conv._ConvNd: Adapter(_conv_blocks, 1),
    nn.MultiheadAttention: Adapter(_attention_blocks, -1, "_reset_parameters"),
    nn.RNNBase: Adapter(_rnn_blocks, -1),
    nn.RNNCellBase: Adapter(_cell_blocks, -1),
    nn.Embedding: Adapter(_embedding_blocks, -1, weight_layer=False),
    nn.EmbeddingBag: Adapter(_embedding_blocks, -1, weight_layer=False),
    **{t: Adapter(_norm_blocks, 1 if t is not nn.LayerNorm and t.__name__ != "RMSNorm" else -1, None,
                  weight_layer=False) for t in _NORMS},
}

#: The plain layers of initlab's own MLPs and CNNs (the stacked trainer and the playground use these).
LAYER_TYPES = (nn.Linear, nn.modules.conv._ConvNd)


def register_layer(cls: type, weight: str = "weight", bias: str = "bias", transposed: bool = False,
                   feature_axis: int = -1, reset: str | None = "reset_parameters") -> None:
    """Declare a layer class of another library that computes ``x @ W.T + b`` (or a convolution).

    Parameters
    ----------
    cls : type
        The ``nn.Module`` subclass.
    weight, bias : str
        The names of its weight and bias parameters (``bias`` may be absent on an instance).
    transposed : bool
        True when the weight is stored ``(in, out)`` (as Hugging Face's GPT-2 ``Conv1D``), so fans are
        read from the other axes.
    feature_axis : int
        The axis of the layer's output that holds its units: -1 for a Linear, 1 for a convolution.
    reset : str or None
        The method that runs the library's own initialization ("default"), or None.

    >>> class MyLinear(nn.Module): ...
    >>> register_layer(MyLinear, transposed=True)
    """
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise InitlabError(f"register_layer needs an nn.Module subclass; got {cls!r}.")
    _ADAPTERS[cls] = Adapter(_plain(weight, bias, transposed), feature_axis, reset)


def register_adapter(cls: type, adapter: Adapter) -> None:
    """Declare a layer whose tensors need more than :func:`register_layer` says (several blocks)."""
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)) or not isinstance(adapter, Adapter):
        raise InitlabError("register_adapter needs an nn.Module subclass and an initlab.layers.Adapter.")
    _ADAPTERS[cls] = adapter


def adapter_for(module: nn.Module) -> Adapter | None:
    """The adapter of ``module``'s most specific registered type, or None when initlab does not know it."""
    for t in type(module).__mro__:
        if t in _ADAPTERS:
            return _ADAPTERS[t]
    return None


def is_weight_layer(module: nn.Module) -> bool:
    """A layer with weights whose output the probe measures and lsuv rescales."""
    a = adapter_for(module)
    return a is not None and a.weight_layer and not _is_lazy(module)


def feature_axis(module: nn.Module) -> int:
    a = adapter_for(module)
    return -1 if a is None else a.feature_axis


def _is_lazy(module: nn.Module) -> bool:
    return any(isinstance(p, nn.parameter.UninitializedParameter) for p in module.parameters(recurse=False))


def check(name: str, module: nn.Module) -> list[Block]:
    """The layer's blocks, after checking that every parameter its adapter names exists (a class
    declared with :func:`register_layer` and the wrong names is one clear error, not an AttributeError)."""
    blocks = adapter_for(module).blocks(module)
    for b in blocks:
        try:
            owner, attr = _resolve(module, b.param)
            if not (attr in owner._parameters or parametrize.is_parametrized(owner, attr) or attr in owner.__dict__
                    or _old_hook(owner, attr) or _old_hook(owner, attr, "SpectralNorm")):
                raise AttributeError(attr)
        except AttributeError:
            raise InitlabError(f"layer '{name}' ({type(module).__name__}) has no parameter '{b.param}', which its "
                               f"adapter names; check initlab.register_layer(...) for this class.") from None
    return blocks


def lazy_layers(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if _is_lazy(m)]


def block_fans(shape: torch.Size | tuple, transposed: bool = False) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight block as PyTorch computes them (shape ``(out, in, *kernel)``),
    with the first two axes swapped when the weight is stored ``(in, out)``."""
    receptive = math.prod(shape[2:])
    a, b = int(shape[0] * receptive), int(shape[1] * receptive)
    return (a, b) if transposed else (b, a)


# --------------------------------------------------------------------------------------------------
# reading and writing a layer's tensors, through parametrizations where there are any

def _resolve(module: nn.Module, path: str) -> tuple[nn.Module, str]:
    *parents, name = path.split(".")
    for p in parents:
        module = getattr(module, p)
    return module, name


def _old_hook(module: nn.Module, name: str, kind: str = "WeightNorm"):
    """The hook of the old ``torch.nn.utils.weight_norm`` (``kind="WeightNorm"``) or ``spectral_norm``
    (``"SpectralNorm"``) on ``module.name``, or None."""
    for hook in module._forward_pre_hooks.values():
        if type(hook).__name__ == kind and getattr(hook, "name", None) == name:
            return hook
    return None


def _old_weight_norm(module: nn.Module, name: str):
    return _old_hook(module, name, "WeightNorm")


def how_stored(module: nn.Module, path: str) -> str | None:
    """How the tensor at ``path`` is stored: None (a plain parameter), or the name of the
    parametrization(s) or wrapper that computes it from other parameters."""
    owner, name = _resolve(module, path)
    if parametrize.is_parametrized(owner, name):
        return "+".join(type(p).__name__.lstrip("_") for p in owner.parametrizations[name])
    if _old_weight_norm(owner, name) is not None:
        return "weight_norm (torch.nn.utils.weight_norm)"
    if _old_hook(owner, name, "SpectralNorm") is not None:
        return "spectral_norm (torch.nn.utils.spectral_norm)"
    return None


def underlying(module: nn.Module, path: str) -> list[torch.Tensor]:
    """The parameters that hold the tensor at ``path`` (itself, or a parametrization's originals)."""
    owner, name = _resolve(module, path)
    if parametrize.is_parametrized(owner, name):
        return list(owner.parametrizations[name].parameters())
    hook = _old_weight_norm(owner, name)
    if hook is not None:
        return [getattr(owner, f"{name}_g"), getattr(owner, f"{name}_v")]
    if _old_hook(owner, name, "SpectralNorm") is not None:
        return [getattr(owner, f"{name}_orig")]
    p = getattr(owner, name)
    return [p] if isinstance(p, nn.Parameter) else []


def weight_params(module: nn.Module) -> list[torch.Tensor]:
    """The parameters holding a weight layer's weight blocks, each once ([] for any other module)."""
    if not is_weight_layer(module):
        return []
    found = [p for b in adapter_for(module).blocks(module) if b.role == "weight" for p in underlying(module, b.param)]
    return list({id(p): p for p in found}.values())


def read(module: nn.Module, path: str) -> torch.Tensor:
    """The effective tensor at ``path`` (what the forward pass uses), detached."""
    owner, name = _resolve(module, path)
    hook = _old_weight_norm(owner, name)
    with torch.no_grad():
        if hook is not None:
            return hook.compute_weight(owner).detach()
        sn = _old_hook(owner, name, "SpectralNorm")
        if sn is not None:
            return sn.compute_weight(owner, do_power_iteration=False).detach()
        if parametrize.is_parametrized(owner, name):  # in eval mode: spectral norm's power iteration must not run
            plist = owner.parametrizations[name]
            modes = {m: m.training for m in plist.modules()}
            plist.eval()
            try:
                return getattr(owner, name).detach()
            finally:
                for m, t in modes.items():
                    m.training = t
        return getattr(owner, name).detach()


class Unreachable(Exception):
    """The effective tensor cannot be given the requested values (a parametrization constrains it)."""


def write(module: nn.Module, path: str, value: torch.Tensor) -> None:
    """Make the effective tensor at ``path`` equal ``value``: a plain copy, the parametrization's
    ``right_inverse``, or the old weight norm's g and v. Raises :class:`Unreachable`, with the
    module's tensors as they were, when the forward pass would not see ``value``."""
    owner, name = _resolve(module, path)
    with torch.no_grad():
        if parametrize.is_parametrized(owner, name):
            plist = owner.parametrizations[name]
            saved = [t.detach().clone() for t in [*plist.parameters(), *plist.buffers()]]
            try:
                setattr(owner, name, value.to(read(module, path).dtype))
            except (NotImplementedError, RuntimeError, ValueError) as e:
                _restore(plist, saved)
                raise Unreachable(f"{how_stored(module, path)} has no inverse: {str(e).splitlines()[0]}") from None
            got = getattr(owner, name)
            if not torch.allclose(got.double(), value.double(), rtol=1e-3, atol=1e-5 * float(value.abs().max() or 1)):
                _restore(plist, saved)
                raise Unreachable(f"{how_stored(module, path)} computes the weight from its parameters so "
                                  f"that no drawn values reach the forward pass as drawn")
            return
        if _old_hook(owner, name, "SpectralNorm") is not None:
            raise Unreachable("spectral_norm (torch.nn.utils.spectral_norm) divides the weight by its largest "
                              "singular value at every forward pass, so no drawn values reach it as drawn")
        hook = _old_weight_norm(owner, name)
        if hook is not None:
            g, v = getattr(owner, f"{name}_g"), getattr(owner, f"{name}_v")
            v.copy_(value)
            g.copy_(_norm_except(v, hook.dim))
            setattr(owner, name, hook.compute_weight(owner))
            return
        getattr(owner, name).copy_(value)


def _norm_except(v: torch.Tensor, dim: int) -> torch.Tensor:
    if dim == -1:
        return v.norm()
    dims = [d for d in range(v.dim()) if d != dim]
    return v.norm(dim=dims, keepdim=True)


def _restore(plist: nn.Module, saved: list[torch.Tensor]) -> None:
    for t, s in zip([*plist.parameters(), *plist.buffers()], saved):
        t.copy_(s)


def _is_old_weight_norm(hook) -> bool:
    return type(hook).__name__ == "WeightNorm"


def copy_module(module: nn.Module) -> nn.Module:
    """``copy.deepcopy`` that also copies layers under the old ``torch.nn.utils.weight_norm`` (whose
    computed weight, a non-leaf tensor, deepcopy refuses): it is set aside, and recomputed in the copy."""
    stash = []
    for sub in module.modules():
        for hook in sub._forward_pre_hooks.values():
            if _is_old_weight_norm(hook) and hook.name in sub.__dict__:
                stash.append((sub, hook.name, sub.__dict__.pop(hook.name)))
    try:
        copied = copy.deepcopy(module)
    finally:
        for sub, name, value in stash:
            sub.__dict__[name] = value
    for sub in copied.modules():
        for hook in sub._forward_pre_hooks.values():
            if _is_old_weight_norm(hook):
                with torch.no_grad():
                    sub.__dict__[hook.name] = hook.compute_weight(sub)
    return copied


def scratch_copy(module: nn.Module) -> nn.Module:
    """A copy of ``module`` with plain parameters, holding the effective values, in place of every
    parametrization and weight norm: for running PyTorch's own ``reset_parameters`` where the real
    layer's forward would undo it. The original (and the class PyTorch made for it) is not touched."""
    m = copy_module(module)
    with torch.no_grad():
        for sub in list(m.modules()):
            if parametrize.is_parametrized(sub):
                values = {name: getattr(sub, name).detach().clone() for name in sub.parametrizations}
                del sub._modules["parametrizations"]
                sub.__class__ = type(sub).__bases__[0]  # the layer's own class, not the shared Parametrized one
                for name, v in values.items():
                    sub.register_parameter(name, nn.Parameter(v))
            for key, hook in list(sub._forward_pre_hooks.items()):
                if _is_old_weight_norm(hook):
                    v = hook.compute_weight(sub).detach().clone()
                    del sub._forward_pre_hooks[key]
                    for suffix in ("_g", "_v"):
                        del sub._parameters[hook.name + suffix]
                    sub.__dict__.pop(hook.name, None)
                    sub.register_parameter(hook.name, nn.Parameter(v))
    return m
