"""The per-layer probe: one forward (and backward) pass of any model with hooks, and the statistics of
every weight layer's output along its feature axis.

Any model: Linear and convolution layers, attention and recurrent layers (rows like any layer, their
tuple outputs read by name), parametrized layers, integer token inputs passed as they are. A unit is
one feature of the layer's output: the last axis for Linear, attention and RNN outputs (every token
and sequence position is a sample), the channel axis for convolutions (every pixel is a sample).

Used by :func:`initlab.diagnose` (one pass, with gradients), :func:`initlab.lsuv` (forward only) and
:func:`initlab.watch` (chosen steps of a training loop, through :mod:`initlab.watchstats`).
"""

from __future__ import annotations

import math

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from . import layers as L
from .checks import does_not_fit
from .activations import ACTIVATIONS, BY_NODE, of_module
from .errors import InitlabError
from .init import call
from .losses import tensors
from .symmetry import count_distinct

#: Samples used to count distinct units (enough to tell copies apart, cheap on long sequences).
WIDTH_SAMPLES = 1024


@dataclass
class Call:
    """One call of a weight layer or an activation module, in forward order."""

    name: str
    module: nn.Module
    input: torch.Tensor | None
    output: torch.Tensor                 # the primary output: the first tensor of a tuple, list or dict
    outputs: dict[str, torch.Tensor] = field(default_factory=dict)  # every tensor of the output, named
    before: torch.Tensor | None = None   # a copy of the output made before an in-place activation overwrote it
    version: int = 0                     # the output's version counter when the layer returned it
    grad_fn: object = None               # the autograd node that made it (an in-place op replaces the tensor's)

    @property
    def overwritten(self) -> bool:
        """Whether something wrote over the output in place after the layer returned it (``x.relu_()``,
        ``F.relu(x, inplace=True)``), with no copy taken before."""
        return self.before is None and self.output is not None and self.output._version != self.version

    @property
    def values(self) -> torch.Tensor:
        """The output's values as the layer computed them (``output`` itself may since have been
        overwritten in place, by ``nn.ReLU(inplace=True)``: then the copy taken just before)."""
        return self.output if self.before is None else self.before


def first_tensor(obj) -> torch.Tensor | None:
    found = tensors(obj)
    return next(iter(found.values()), None)


def units(t: torch.Tensor, axis: int) -> torch.Tensor:
    """``(samples, units)``: the feature axis last, every other axis counted as samples."""
    t = t.detach()
    if t.dim() == 0:
        return t.reshape(1, 1)
    if t.dim() == 1:
        return t.reshape(-1, 1) if axis != 0 else t.reshape(1, -1)
    return t.movedim(axis, -1).reshape(-1, t.shape[axis])


class Recorder:
    """The per-layer probe's hooks: while :attr:`active`, every call of a weight layer or an activation
    module of ``model`` is kept as a :class:`Call` (in forward order), and, when ``gradients``, the
    gradient that later reaches each weight layer's primary output (by call index) and, for a
    recurrent layer, the gradient reaching its input sequence (by ``("input", index)``): an RNN's depth
    is time.

    :func:`trace` (what :func:`initlab.diagnose` measures at step 0), :func:`initlab.train`'s
    ``track_every`` and the playground all record through this one class, and read it with
    :func:`rows` (every statistic) or :func:`output_stats` (one layer's, as a watched training step
    measures it: :class:`initlab.watchstats.StepProbe`).
    """

    def __init__(self, model: nn.Module, gradients: bool = True, on_call: Callable | None = None,
                 on_grad: Callable | None = None, copy_inplace: bool = True, copy_all: bool = False):
        self.gradients = gradients
        self.active = False
        self.calls: list[Call] = []
        self.grads: dict = {}
        #: ``on_call(i)``, after call ``i`` is kept: a reader that measures as the pass goes (and may
        #: drop the tensors it has read, so that none outlives its use).
        self.on_call = on_call
        #: ``on_grad(key, gradient)`` -> what :attr:`grads` keeps for it (default: the gradient itself).
        self.on_grad = on_grad
        #: ``accept()`` -> whether to record the calls made now (default: every call while active).
        self.accept: Callable[[], bool] | None = None
        self._names = {m: n for n, m in model.named_modules()}
        self._watched = [m for m in model.modules() if L.is_weight_layer(m) or of_module(m) is not None]
        # activation modules that overwrite their input (nn.ReLU(inplace=True)): the layer output they
        # overwrite is copied first, else its statistics would be the activation's
        # (a reader that measures each output as it is made, through on_call, needs no copy)
        self._inplace = [m for m in self._watched if copy_inplace and getattr(m, "inplace", False) is True]
        # every weight layer's output copied as it is made: for a model whose own code writes over them
        # (what :func:`trace` falls back to when :attr:`Call.overwritten` shows it did)
        self.copy_all = copy_all
        self._handles: list = []

    def _keep_grad(self, grads: dict, key, g: torch.Tensor) -> None:
        g = g.detach()
        grads[key] = g if self.on_grad is None else self.on_grad(key, g)

    def _hook(self, module, args, out):
        if not self.active or (self.accept is not None and not self.accept()):
            return
        primary = first_tensor(out)
        if primary is None or not primary.is_floating_point():
            return
        arg = next((a for a in args if isinstance(a, torch.Tensor)), None)
        self.calls.append(Call(self._names[module], module, arg, primary, tensors(out), version=primary._version,
                               grad_fn=primary.grad_fn))
        i = len(self.calls) - 1
        if self.copy_all and L.is_weight_layer(module):
            self.calls[i].before = primary.detach().clone()
        if self.gradients and L.is_weight_layer(module) and primary.requires_grad:
            grads = self.grads
            primary.register_hook(lambda g, i=i: self._keep_grad(grads, i, g))
            if isinstance(module, nn.RNNBase) and arg is not None and arg.requires_grad and arg.dim() == 3:
                arg.register_hook(lambda g, i=i: self._keep_grad(grads, ("input", i), g))
        if self.on_call is not None:
            self.on_call(i)

    def _before_inplace(self, module, args):
        """Before an in-place activation runs: copy the recorded layer output it is about to overwrite."""
        if not self.active:
            return
        x = next((a for a in args if isinstance(a, torch.Tensor)), None)
        for c in reversed(self.calls[-8:]):
            if c.output is x and c.before is None and L.is_weight_layer(c.module):
                c.before = x.detach().clone()
                return

    def start(self) -> None:
        """Forget what was recorded and record the next passes. The hooks are on the model only from
        here to :meth:`stop`: between recorded steps the model runs with no hook at all."""
        self.calls, self.grads, self.active = [], {}, True
        if not self._handles:
            self._handles = [m.register_forward_hook(self._hook) for m in self._watched]
            self._handles += [m.register_forward_pre_hook(self._before_inplace) for m in self._inplace]

    def stop(self) -> None:
        """Record nothing more (the gradients of passes already recorded still arrive)."""
        self.active = False
        self._remove_hooks()

    def _remove_hooks(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def clear(self) -> None:
        self.calls, self.grads = [], {}

    def close(self) -> None:
        self._remove_hooks()
        self.calls, self.grads, self.active = [], {}, False


def trace(model: nn.Module, inputs, loss: Callable | None = None) -> tuple[list[Call], dict]:
    """Run ``model`` on ``inputs`` through a :class:`Recorder`; with ``loss`` (output -> scalar) also
    backward. Returns the calls in order and the gradients. The caller restores parameters,
    gradients and RNG.

    When the model's own code wrote over a layer's output in place (``F.relu(x, inplace=True)``,
    ``x.relu_()``: :attr:`Call.overwritten`), the pass is made again from the same random state,
    copying every layer's output as it is made, so that no statistic reads the overwritten values."""
    rng = torch.random.get_rng_state()
    calls, grads = _trace(model, inputs, loss, copy_all=False)
    if any(c.overwritten for c in calls if L.is_weight_layer(c.module)):
        for p in model.parameters():
            p.grad = None
        torch.random.set_rng_state(rng)
        calls, grads = _trace(model, inputs, loss, copy_all=True)
    return calls, grads


def _trace(model: nn.Module, inputs, loss: Callable | None, copy_all: bool) -> tuple[list[Call], dict]:
    recorder = Recorder(model, gradients=loss is not None, copy_all=copy_all)
    recorder.start()
    try:
        try:
            out = call(model, inputs)
        except Exception as e:  # the user's model on the user's inputs: one line
            raise does_not_fit(e) from None
        recorder.stop()
        if loss is not None:
            try:
                value = loss(out)
            except InitlabError:  # a one-line error of its own (initlab's default loss): as it is
                raise
            except Exception as e:
                raise InitlabError(f"the loss could not be computed from the model's output (check targets= and "
                                   f"loss_fn=): {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
            reach = _reach_through_time(recorder.calls)  # before backward frees the graph
            value.backward()
            recorder.grads.update(reach)
        return recorder.calls, recorder.grads
    finally:
        recorder.close()


def _std(t: torch.Tensor | None) -> float | None:
    return None if t is None or t.numel() < 2 else float(t.detach().double().std())


#: Autograd nodes of elementwise, one-input steps: activations, dropout, a scaling by a constant.
ELEMENTWISE = {"ReluBackward0", "TanhBackward0", "SigmoidBackward0", "GeluBackward0", "LeakyReluBackward0",
               "LeakyReluBackward1", "EluBackward0", "SiluBackward0", "HardtanhBackward0", "NativeDropoutBackward0",
               "MulBackward0", "DivBackward0", "SinBackward0"}


#: Autograd nodes of a normalization over features (BatchNorm, LayerNorm, GroupNorm): between a layer
#: and its activation (conv -> BatchNorm -> ReLU, as ResNets and MobileNets are built), never a layer of
#: their own; :func:`following_activation` looks through them, :func:`derived_from` does not.
NORMS = {"NativeBatchNormBackward0", "CudnnBatchNormBackward0", "MiopenBatchNormBackward0",
         "NativeLayerNormBackward0", "NativeGroupNormBackward0"}


def elementwise_chain(x: torch.Tensor, y: torch.Tensor, depth: int = 4) -> list[str] | None:
    """The names of the autograd steps that computed ``x`` from ``y`` alone, when they are a short
    chain of elementwise one-input steps (an activation, a dropout, a constant factor): not through a
    residual sum, a norm or another layer. None when ``x`` was not computed so."""
    if x is y:
        return []
    return _chain(x.grad_fn, y.grad_fn, depth)


def _chain(node, target, depth: int = 4, through: set[str] = ELEMENTWISE) -> list[str] | None:
    """The one-input autograd steps (of the kinds ``through``, elementwise by default) from ``node``
    back to ``target`` (see :func:`elementwise_chain`), or None."""
    chain = []
    for _ in range(depth):
        if node is None or target is None or type(node).__name__ not in through:
            return None
        chain.append(type(node).__name__)
        # inputs that need no gradient show as None: a sum with the block's input counts as two inputs
        nxt = [f for f, _ in node.next_functions if type(f).__name__ != "AccumulateGrad"]
        if len(nxt) != 1 or nxt[0] is None:
            return None
        node = nxt[0]
        if node is target:
            return chain
    return None


def derived_from(x: torch.Tensor, y: torch.Tensor, depth: int = 4) -> bool:
    """Whether ``x`` was computed from ``y`` alone by elementwise one-input steps (see
    :func:`elementwise_chain`)."""
    return elementwise_chain(x, y, depth) is not None


def following_activation(calls: list[Call], i: int, layer_idx: list[int]):
    """The activation after weight-layer call ``i``: an activation module called on its output before
    the next layer, else (a functional activation) the next layer's input when the autograd graph
    shows it computed from this output alone. ``(kind, tensor)`` or ``(None, None)``."""
    out = calls[i].output
    made = calls[i].grad_fn if calls[i].grad_fn is not None else out.grad_fn  # the node before any in-place step
    nxt = next((j for j in layer_idx if j > i), None)
    end = nxt if nxt is not None else len(calls)
    for j in range(i + 1, end):
        kind = of_module(calls[j].module)
        x = calls[j].input
        if kind is not None and x is not None and x.shape == out.shape \
                and (x is out or _chain(x.grad_fn, made, 6, ELEMENTWISE | NORMS) is not None or out.grad_fn is None):
            return kind, calls[j].output
    if nxt is not None:
        x = calls[nxt].input
        if x is None or x.shape != out.shape or (x is out and x.grad_fn is made):
            chain = None
        else:  # computed from the output by elementwise steps and norms (x.relu_() in place: the same tensor)
            chain = _chain(x.grad_fn, made, 6, ELEMENTWISE | NORMS)
        if chain is not None:
            kinds = {BY_NODE[n] for n in chain if n in BY_NODE}
            if not kinds and NORMS & set(chain):
                return None, None  # a norm and no activation (MobileNet's linear bottleneck)
            return (kinds.pop() if len(kinds) == 1 else "unknown"), x
    return None, None


def _weights(module: nn.Module, roles=("weight",)) -> tuple[list[torch.Tensor], list[L.Block]]:
    adapter = L.adapter_for(module)
    blocks = [b for b in adapter.blocks(module) if b.role in roles]
    values = []
    for b in blocks:
        w = L.read(module, b.param)
        values.append(w if b.rows is None else w[b.rows[0]:b.rows[1]])
    return values, blocks


def weight_stats(module: nn.Module) -> dict:
    """Fans of the layer's first weight block, the std of all its weights, sigma_w^2 = fan_in * Var(W)
    of the first block, and the gradient-to-weight ratio of the parameters that hold the weights."""
    values, blocks = _weights(module)
    if not values:
        return {"fan_in": None, "fan_out": None, "weight_std": None, "sigma_w2": None, "weight_grad_std": None,
                "grad_to_weight": None}
    first = values[0]
    fan_in, fan_out = blocks[0].fans or (L.block_fans(first.shape, blocks[0].transposed) if first.dim() >= 2
                                         else (None, None))
    flat = torch.cat([v.detach().double().reshape(-1) for v in values])
    under = [p for b in blocks for p in L.underlying(module, b.param)]
    under = list({id(p): p for p in under}.values())
    grads = [p.grad.detach().double().reshape(-1) for p in under if p.grad is not None]
    held = torch.cat([p.detach().double().reshape(-1) for p in under]) if under else None
    gstd = _std(torch.cat(grads)) if grads else None
    hstd = _std(held)
    return {"fan_in": fan_in, "fan_out": fan_out, "weight_std": _std(flat),
            "sigma_w2": None if fan_in is None else float(first.double().pow(2).mean()) * fan_in,
            "weight_grad_std": gstd, "grad_to_weight": None if not hstd or gstd is None else gstd / hstd}


def output_stats(calls: list[Call], grads: dict, i: int, layer_idx: list[int]) -> dict:
    """The statistics of weight-layer call ``i``'s output, the one definition :func:`rows`,
    :mod:`initlab.watchstats` (a watched step; the playground's charts) share:

    ``activation`` (the kind that follows the layer, :func:`following_activation`), ``preact_mean``
    and ``preact_std`` (of the layer's output), ``act_mean`` (after the activation; None when none
    follows) and ``act_std`` (after the activation; the output's when none follows), ``grad_std``
    (of the loss's gradient with respect to the output), ``dead_fraction`` (the share of units that
    are 0 or below on every sample, after an activation that can die) and ``saturated_fraction``
    (the share of values in the saturated range of an activation that saturates: tanh, sigmoid)."""
    preact_std, preact_mean = std_mean(calls[i].values)
    return {"preact_mean": preact_mean, "preact_std": preact_std, "grad_std": std_mean(grads.get(i))[0],
            **activation_stats(calls, i, layer_idx, preact_std)}


def activation_stats(calls: list[Call], i: int, layer_idx: list[int], preact_std: float | None) -> dict:
    """The part of :func:`output_stats` that reads what follows weight-layer call ``i`` (the calls up
    to the next weight layer's): ``activation``, ``act_mean``, ``act_std`` (``preact_std`` when no
    activation follows), ``dead_fraction`` and ``saturated_fraction``."""
    kind, act = following_activation(calls, i, layer_idx)
    act_std, act_mean = std_mean(act) if act is not None else (preact_std, None)
    out = {"activation": kind, "act_mean": act_mean, "act_std": act_std, "dead_fraction": None,
           "saturated_fraction": None}
    if act is not None:
        a = act.detach()
        known = ACTIVATIONS.get(kind)
        axis = L.feature_axis(calls[i].module)
        samples = a.numel() // max(a.shape[axis % a.dim()], 1) if a.dim() >= 2 else (1 if axis == 0 else a.numel())
        if samples >= DEAD_SAMPLES and ((known is not None and known.can_die)
                                        or (kind == "unknown" and bool((a >= 0).all()))):
            out["dead_fraction"] = dead_share(a, L.feature_axis(calls[i].module))
        elif known is not None and known.saturated is not None:
            out["saturated_fraction"] = float(known.saturated(a).float().mean())
    return out


#: Samples a unit needs before it can be called dead: a living unit (0 or below half the time) looks
#: dead on k samples with probability 2^-k, a coin toss on one (a mixture-of-experts expert given one
#: token). With fewer, the dead share is not measured.
DEAD_SAMPLES = 16


def dead_share(t: torch.Tensor, axis: int) -> float:
    """The share of units (features along ``axis``, see :func:`units`) that are 0 or below on every
    sample: a unit's largest value over the samples is <= 0 (one pass, no copy of ``t``)."""
    t = t.detach()
    if t.numel() == 0:
        return float("nan")
    if t.dim() <= 1:
        return float((units(t, axis) <= 0).all(0).double().mean())
    axis = axis % t.dim()
    largest = t.amax(dim=[d for d in range(t.dim()) if d != axis])
    return float((largest <= 0).double().mean())


#: From this many values on, :func:`std_mean` reduces by a sum and a dot product (about 6x faster than
#: ``Tensor.std`` on CPU; where the mean dominates, by the deviations' dot product instead), within
#: about 1e-5 of float64.
FAST_STD_AT = 1 << 16


def std_mean(t: torch.Tensor | None) -> tuple[float | None, float | None]:
    """``(std, mean)`` of ``t`` (None where ``t`` has too few values), reduced in the tensor's own
    precision when it is float32 or float64 (no float64 copy of a large activation: PyTorch's
    reductions are pairwise, within about 1e-6 of float64 in float32), else in float32. A tensor of
    :data:`FAST_STD_AT` values or more: from its sum and sum of squares when the variance is at least a
    tenth of the mean square (no cancellation), else from the deviations' dot product (what every
    watched step of :func:`initlab.watch` pays for, on every layer's output and gradient)."""
    if t is None or t.numel() < 1:
        return None, None
    t = t.detach()
    t = t if t.dtype in (torch.float32, torch.float64) else t.float()
    n = t.numel()
    if n >= FAST_STD_AT:
        flat = t.reshape(-1)
        total, squares = float(flat.sum()), float(torch.dot(flat, flat))
        mean = total / n
        var = (squares - total * mean) / (n - 1)
        if var >= 0.1 * squares / n:  # no cancellation to speak of: one pass each for the sums
            return math.sqrt(var), mean
        dev = flat - mean  # the mean dominates the values: the deviations' own dot product
        return float(torch.dot(dev, dev).div(n - 1).sqrt()), mean
    return (float(t.std()) if n > 1 else None), float(t.mean())


def call_names(names: list[str]) -> list[str]:
    """The name of each call of a forward pass: a module's name when it is called once, and
    ``name#1``, ``name#2``, ... when it is called k times (a loop, a cell over time, weights shared
    across depth)."""
    total: dict[str, int] = {}
    for n in names:
        total[n] = total.get(n, 0) + 1
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if total[n] == 1 else f"{n}#{seen[n]}")
    return out


def rows(calls: list[Call], grads: dict[int, torch.Tensor], rtol: float = 1e-3) -> list[dict]:
    """One row of statistics per weight-layer call, in forward order."""
    layer_idx = [i for i, c in enumerate(calls) if L.is_weight_layer(c.module)]
    total = {}
    for i in layer_idx:
        total[calls[i].name] = total.get(calls[i].name, 0) + 1
    names = call_names([calls[i].name for i in layer_idx])
    seen: dict[str, int] = {}
    out = []
    for i, name in zip(layer_idx, names):
        c = calls[i]
        seen[c.name] = seen.get(c.name, 0) + 1
        # a layer called k times (a loop, a cell over time, weights shared across depth) is k rows: its depth
        axis = L.feature_axis(c.module)
        u = units(c.values, axis)
        grad = grads.get(i)
        stats = output_stats(calls, grads, i, layer_idx)
        row = {"name": name, "module": c.name,
               "call": seen[c.name], "calls": total[c.name],
               "kind": type(c.module).__name__, "activation": stats["activation"], **weight_stats(c.module),
               **{k: stats[k] for k in ("preact_std", "act_mean", "act_std", "grad_std", "dead_fraction",
                                        "saturated_fraction")}, "width": u.shape[1],
               "grad_second_moment": None if grad is None else float(grad.double().pow(2).mean()),
               "outputs": {k: _std(v) for k, v in c.outputs.items()} if len(c.outputs) > 1 else None}
        row.update(_through_time(c, grads.get(("reach", i), grads.get(("input", i)))))
        sample = u[:: max(1, u.shape[0] // WIDTH_SAMPLES)]
        finite = bool(torch.isfinite(sample).all())
        scale = float(sample.abs().max()) if finite and sample.numel() else 0.0
        row["effective_width"] = count_distinct(sample, rtol * scale + 1e-30)[0] if finite else None
        out.append(row)
    return out


#: The seed of the random direction read at a recurrent layer's last step (its own stream).
REACH_SEED = 0x7E_AC_11


def _reach_through_time(calls: list[Call]) -> dict:
    """For each recurrent layer: the gradient reaching each step of its input sequence from its output at
    the last step alone (a fixed random direction there), ``("reach", i)``. The loss's own gradient is
    not what tells how far back a recurrence carries a signal: a loss read at every step (a language
    model, or diagnose's random direction) gives step 0 a term of its own, whatever the recurrence does."""
    out = {}
    for i, c in enumerate(calls):
        x, y = c.input, c.output
        if not (isinstance(c.module, nn.RNNBase) and isinstance(x, torch.Tensor) and x.dim() == 3
                and x.requires_grad and y is not None and y.requires_grad and y.dim() == 3):
            continue
        last = y.select(1 if getattr(c.module, "batch_first", False) else 0, -1)
        gen = torch.Generator(device=last.device).manual_seed(REACH_SEED)
        r = torch.randn(last.shape, generator=gen, device=last.device, dtype=last.dtype)
        (g,) = torch.autograd.grad((last * r).sum(), x, retain_graph=True, allow_unused=True)
        if g is not None:
            out[("reach", i)] = g.detach()
    return out


def _through_time(c: Call, g: torch.Tensor | None) -> dict:
    """For a recurrent layer: the norm of the gradient reaching each step of its input sequence from the
    last step's output (:func:`_reach_through_time`; the loss's, where that was not measured), as the
    first step's share of the largest: how far back in time the recurrence carries a signal."""
    if g is None:
        return {}
    time_axis = 1 if getattr(c.module, "batch_first", False) else 0
    per_step = g.double().movedim(time_axis, 0).reshape(g.shape[time_axis], -1).norm(dim=1)
    top = float(per_step.max())
    out = {"steps": int(per_step.numel()), "first_step_grad_ratio": float(per_step[0]) / top if top > 0 else None}
    if _orthogonal_recurrence(c.module):
        out["recurrent_fix"] = ("the recurrent weights are already orthogonal (and an LSTM's forget bias is 1), so the "
                                "initialization is not the cause: the sequence is longer than this RNN carries a "
                                "gradient; shorten it or add attention")
    return out


def _orthogonal_recurrence(m: nn.Module) -> bool:
    """Every recurrent gate block (semi-)orthogonal up to a gain, and an LSTM's forget-gate bias >= 0.9."""
    ok = True
    for b in L.adapter_for(m).blocks(m):
        if b.role == "recurrent":
            w = L.read(m, b.param)[b.rows[0]:b.rows[1]].double()
            gram = w @ w.T
            ok &= bool(torch.allclose(gram, torch.eye(len(gram), dtype=gram.dtype) * gram.diagonal().mean(),
                                      atol=1e-3 * float(gram.diagonal().mean())))
    if isinstance(m, nn.LSTM) and m.bias:
        h = m.hidden_size
        f = m.bias_ih_l0.detach()[h:2 * h] + m.bias_hh_l0.detach()[h:2 * h]
        ok &= bool(f.mean() >= 0.9)
    return ok


def accounting(model: nn.Module, rows: list[dict]) -> dict[str, str]:
    """Every parameter name of ``model`` -> where its effect was measured, or why it has no row of its own."""
    measured = {r.get("module", r["name"]) for r in rows}
    names_of: dict[int, list[str]] = {}
    for n, p in model.named_parameters(remove_duplicate=False):
        names_of.setdefault(id(p), []).append(n)
    status: dict[int, str] = {}
    for name, module in model.named_modules():
        adapter = L.adapter_for(module)
        if adapter is None:
            continue
        for b in adapter.blocks(module):
            for p in L.underlying(module, b.param):
                if id(p) in status and status[id(p)].startswith("measured"):
                    continue
                if name in measured:
                    status[id(p)] = f"measured in row '{name}'"
                elif adapter.weight_layer:
                    status.setdefault(id(p), f"no row: layer '{name}' was not called in the forward pass")
                else:
                    what = b.role.replace("_", " ")
                    status.setdefault(id(p), f"no row: the {what} of {type(module).__name__} '{name}' (its effect "
                                             f"shows in the rows of the layers after it)")
    for name, module in model.named_modules():
        for pname, p in module.named_parameters(recurse=False):
            owner = f"{type(module).__name__} '{name}'" if name else f"the model ({type(module).__name__})"
            if any(True for _ in module.children()):  # a model's or a block's own tensor, used by its code
                status.setdefault(id(p), f"no row: '{pname}' is a parameter {owner} uses in its own code (a class "
                                         f"token, a position table, a scale); its effect shows in the rows of "
                                         f"the layers after it")
            status.setdefault(id(p), f"not understood: {owner} is not a layer initlab knows; declare it with "
                                     f"initlab.register_layer(...)")
    return {n: status[id(p)] for n, p in model.named_parameters(remove_duplicate=False)}
