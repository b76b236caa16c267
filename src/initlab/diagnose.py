"""A report card for any model at initialization: how activations and gradients scale from layer to
layer, measured on a batch, next to what mean-field theory predicts, with a verdict and a fix.

``diagnose(model, inputs)`` runs one forward and one backward pass through the per-layer probe
(``probe.py``: any model, statistics along each layer's feature axis) and leaves the model's
parameters, buffers, gradients and the caller's RNG state exactly as they were. The verdict is code
that judges those rows; it is tested on constructed cases, including those where it must not fire.
The data-dependent fix is :func:`initlab.lsuv` (``lsuv.py``).
"""

from __future__ import annotations

import contextlib

import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from . import layers as L
from . import probe, residual, theory
from .checks import check_finite, to_model
from .errors import InitlabError
from .init import _materialize, call, initialize
from .escaping import esc
from .jsonsafe import json_safe
from .losses import default_loss
from .plugins import find
from .recipes import is_recipe, parse as parse_recipe
from .schemes import get, parse_spec
from .tables import html_table, text_table
from .verdict import FACTOR, FLAG_TESTS, STREAM_BLOCKS, verdict

__all__ = ["COLUMNS", "FACTOR", "TABLE_COLUMNS", "Diagnosis", "build", "compare", "diagnose", "load_factory", "verdict"]

COLUMNS = ["name", "kind", "activation", "fan_in", "fan_out", "weight_std", "sigma_w2", "preact_std", "act_mean",
           "act_std", "grad_std", "weight_grad_std", "grad_to_weight", "dead_fraction", "saturated_fraction",
           "effective_width", "width", "predicted_preact_std", "predicted_act_std", "predicted_grad_std"]
#: The columns a diagnosis shows as a table (terminal and report page): measured beside predicted.
TABLE_COLUMNS = ["name", "kind", "fan_in", "fan_out", "preact_std", "predicted_preact_std", "act_std", "grad_std",
                 "predicted_grad_std", "dead_fraction", "saturated_fraction", "effective_width"]


#: The seed of the default loss's random direction (:func:`initlab.losses.direction_loss`): a stream no
#: scheme seed uses.
DIRECTION_SEED = 0x10_55_D1A6


def _loss(out, targets, loss_fn):
    """The scalar diagnose differentiates: ``loss_fn``'s, else initlab's default loss
    (:func:`initlab.losses.default_loss`)."""
    if loss_fn is not None:
        return loss_fn(out, targets) if targets is not None else loss_fn(out)
    return default_loss(out, targets, DIRECTION_SEED)


@dataclass
class Diagnosis:
    """Per-layer statistics at initialization, the theory's predictions and a verdict.

    ``rows`` (one dict per layer with parameters, in forward order; see :data:`COLUMNS`) and
    ``verdict`` (``labels``, ``summary``, ``forward``, ``backward``, ``suggestion``, ``message``)."""

    rows: list[dict]
    verdict: dict
    activation: str = "unknown"
    scheme: str | None = None
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return json_safe({"scheme": self.scheme, "activation": self.activation, "layers": self.rows,
                          "verdict": self.verdict, "parameters": self.accounting()})

    def accounting(self) -> dict[str, str]:
        """Every parameter name -> the row that measured its layer, or why it has no row."""
        return dict(self.meta.get("parameters") or {})

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **{"indent": 2, **kwargs})

    def table(self) -> str:
        return text_table(TABLE_COLUMNS, self.rows) + f"\nverdict: {self.verdict['summary']}. {self.verdict['message']}"

    __str__ = table

    def __repr__(self) -> str:
        return (f"Diagnosis({self.scheme or 'as built'}, {self.activation}, {len(self.rows)} layers: "
                f"{self.verdict['summary']})")

    def _repr_html_(self) -> str:
        return (f"<p><b>verdict: {esc(self.verdict['summary'])}</b>. {esc(self.verdict['message'])}</p>"
                + html_table([c for c in COLUMNS if c != "width"], self.rows))

    def plot(self, ax=None):
        """Std per layer on a log scale, forward and backward; measured solid, predicted dashed. Drawn by
        :func:`initlab.plots.diagnosis_plot`, found by name (the ``initlab.plots`` entry point
        ``diagnosis``): a diagnosis measures, and this module imports no plotting code."""
        return find("initlab.plots", "diagnosis")(self.to_dict(), ax=ax)


def _track(inputs):
    """Float inputs as leaves that require a gradient (a recurrent first layer's gradient through time)."""
    if isinstance(inputs, torch.Tensor):
        return inputs.detach().requires_grad_() if inputs.is_floating_point() else inputs
    if isinstance(inputs, dict):
        return {k: _track(v) for k, v in inputs.items()}
    return type(inputs)(_track(v) for v in inputs)


def _check_finite(inputs) -> None:
    for name, t in probe.tensors(inputs).items():  # a single tensor is named "output" there
        check_finite(t, "the batch" if isinstance(inputs, torch.Tensor) else f"the batch's {name}")


def diagnose(model: nn.Module, inputs, targets: torch.Tensor | None = None, loss_fn: Callable | None = None,
             scheme: str | dict | None = None, seed: int = 0, rtol: float = 1e-3) -> Diagnosis:
    """Measure how activations and gradients scale through ``model`` on ``inputs``, predict them from
    theory where the model is an MLP of a known activation, and judge.

    Parameters
    ----------
    model : nn.Module
        Any module with weight layers initlab knows: Linear, convolutions, attention, LSTM/GRU/RNN,
        parametrized layers, and classes declared with :func:`initlab.register_layer`.
    inputs : Tensor, tuple or dict
        A batch the model accepts; integer token ids are passed as they are.
    targets, loss_fn : optional
        The loss to differentiate: ``loss_fn(output, targets)`` (or ``loss_fn(output)``). Without
        ``loss_fn``, the loss reads the output's first tensor of dimension >= 1: integer targets give
        cross-entropy (over the last axis when they have the output's shape without it: a sequence
        model's (N, T, V) logits against (N, T) tokens), one float target per sample against one
        output unit binary cross-entropy, other float targets of the output's shape mean squared
        error; targets that fit none of these are an error. Without either, the model's own loss when
        it returns one (a dict with a 0-dim ``"loss"``, as a HuggingFace model given labels), else a
        fixed random unit-scale direction at the output, so the backward statistics show the network
        alone.
    scheme : str or dict, optional
        Diagnose a copy of ``model`` initialized with this scheme or recipe (``seed``), as
        :func:`initlab.initialize` reads it: ``"xavier_uniform"``, ``"gpt2"`` (a recipe's depth is found
        from the model's blocks) or ``{"name": "gpt2", "params": {"n_layer": 12}}``. The model is not
        touched.
    rtol : float
        Two units count as one (effective width) when they agree within ``rtol`` of the layer's scale.
    """
    if not isinstance(model, nn.Module):
        raise InitlabError(f"diagnose needs an nn.Module; got {type(model).__name__}.")
    if scheme is not None:
        spec = scheme_spec(scheme)
        model = L.copy_module(model)
        initialize(model, spec, seed=seed, inputs=inputs)
        return _diagnose(model, inputs, targets, loss_fn, rtol, spec["name"])
    return _diagnose(model, inputs, targets, loss_fn, rtol, None)


def scheme_spec(scheme: Any) -> dict:
    """``scheme`` (a name, ``{"name", "params"}`` or ``(name, params)``) as a checked spec, a recipe's
    (``recipes.py``) or a per-tensor scheme's, before any model is copied; an unknown name lists the
    schemes and the recipes."""
    if isinstance(scheme, (tuple, list)) and len(scheme) == 2:
        scheme = {"name": scheme[0], "params": scheme[1]}
    if is_recipe(scheme):
        return parse_recipe(scheme, {})
    return parse_spec(scheme)  # an unknown name: schemes.get's error lists the schemes and the recipes


def _diagnose(model, inputs, targets, loss_fn, rtol, label) -> Diagnosis:
    if L.lazy_layers(model):
        _materialize(model, inputs)
    if not any(L.is_weight_layer(m) for m in model.modules()):
        raise InitlabError(f"{type(model).__name__} has no layer initlab can diagnose (Linear, convolutions, "
                           f"MultiheadAttention, LSTM/GRU/RNN, or a class declared with initlab.register_layer).")
    for name, m in model.named_modules():
        if L.adapter_for(m) is not None:
            L.check(name, m)
    param = next(model.parameters())
    inputs = to_model(inputs, param)
    _check_finite(inputs)
    first = next(iter(probe.tensors(inputs).values()), None)
    if first is None or first.numel() == 0 or first.dim() == 0:
        raise InitlabError("the inputs are empty: a diagnosis needs a batch of at least 2 samples.")
    if first.dim() <= 2 and first.shape[0] < 2:
        raise InitlabError(f"a batch of {first.shape[0]} sample has no spread to measure: give at least 2 "
                           f"(a few hundred for stable statistics).")
    inputs = _track(inputs)
    params = list(model.parameters())
    trained = any(p.grad is not None for p in params)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    saved = [(p, p.grad, p.requires_grad) for p in params]
    devices = [param.device.index or 0] if param.device.type == "cuda" else []
    try:
        for p in params:  # a frozen model still has gradients to measure
            p.grad = None
            p.requires_grad_(True)
        stream_probe = _stream_probe(model)
        with torch.random.fork_rng(devices=devices), torch.enable_grad(), stream_probe or contextlib.nullcontext():
            calls, grads = probe.trace(model, inputs, lambda out: _loss(out, targets, loss_fn))
        rows = probe.rows(calls, grads, rtol)
        accounted = probe.accounting(model, rows)
        stream = _stream(model, stream_probe)
    finally:
        with torch.no_grad():
            model.load_state_dict(state)
        for p, g, r in saved:
            p.requires_grad_(r)
            p.grad = g
    _parting(model, inputs, targets, loss_fn, rtol, rows)
    activation = _model_activation(rows)
    _predict(rows, [c.module for c in calls if L.is_weight_layer(c.module)], calls, activation)
    v = verdict(rows, activation, label, stream)
    unseen = {n: s for n, s in accounted.items() if s.startswith(("not understood", "no row: layer"))}
    if unseen:
        v["unmeasured"] = unseen
        v["message"] += (f". Not measured: {len(unseen)} parameter(s), e.g. {next(iter(unseen))}: "
                         f"{next(iter(unseen.values()))}")
    if trained:
        v["labels"].append("trained")
        v["summary"] = ", ".join(v["labels"])
        v["message"] = ("this model's parameters hold gradients: it has been trained (or through a backward "
                        "pass), so these are the statistics of its current weights, not of an initialization. "
                        + v["message"])
    return Diagnosis(rows, v, activation, label, {"parameters": accounted})


#: The SGD steps (and their learning rate) a copy of the model takes before units that are copies at the
#: start are called a symmetric start.
PARTING_STEPS, PARTING_LR = 3, 0.1


def _parting(model: nn.Module, inputs, targets, loss_fn, rtol: float, rows: list[dict]) -> None:
    """Units that are copies at the start stay copies under every update when the start is symmetric
    (a constant: their gradients are copies too), and part within a few updates when they are copies
    only because their weights are 0 (the last layer of a residual branch under Fixup, SkipInit or ZerO:
    the gradient reaching it differs per unit once the layers after it have moved). For each row the
    symmetric flag would raise, a copy of the model takes up to :data:`PARTING_STEPS` SGD steps on the
    same batch and loss; a row whose units are then distinct gets ``parts_at_step``, and is not called
    symmetric. The model itself is not touched."""
    suspects = {r["name"]: r for r in rows if dict(FLAG_TESTS)["symmetric"](r)}
    if not suspects:
        return
    twin = L.copy_module(model)
    for p in twin.parameters():
        p.requires_grad_(True)
    opt = torch.optim.SGD(twin.parameters(), lr=PARTING_LR)
    param = next(twin.parameters())
    devices = [param.device.index or 0] if param.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.enable_grad():
        for step in range(1, PARTING_STEPS + 1):
            opt.zero_grad()
            _loss(call(twin, inputs), targets, loss_fn).backward()
            opt.step()
            calls, _ = probe.trace(twin, inputs)
            for r in probe.rows(calls, {}, rtol):
                s = suspects.get(r["name"])
                if s is not None and "parts_at_step" not in s and (r["effective_width"] or 0) > r["width"] / 2:
                    s["parts_at_step"] = step
            if all("parts_at_step" in s for s in suspects.values()):
                break


def _stream_probe(model: nn.Module) -> residual.StreamProbe | None:
    """Hooks that measure the residual stream (and its gradient) on diagnose's own pass, when the model
    has a stack of at least STREAM_BLOCKS same-typed blocks; None otherwise."""
    found = residual.candidates(model)
    if not found or len(found[0][1]) < STREAM_BLOCKS:
        return None
    return residual.StreamProbe(model, found[0][1], found[0][0])


def _stream(model: nn.Module, stream_probe: residual.StreamProbe | None) -> dict | None:
    """What the stream probe measured, with the branches' output ratio; None without one, or when the
    stack's blocks turned out not to map the stream to itself (no stream to judge)."""
    if stream_probe is None:
        return None
    from .roles import branch_out_ratio

    try:
        stream = stream_probe.stream().to_dict()
    except InitlabError:
        return None
    stream["branch_out_ratio"] = branch_out_ratio(model)
    return stream


def _model_activation(rows: list[dict]) -> str:
    """The network's activation: the one every hidden layer is followed by (most of them at least: a
    transformer whose feed-forward ReLU follows a third of its layers is not a ReLU network)."""
    hidden = rows[:-1] if len(rows) > 1 else rows
    kinds = {r["activation"] for r in hidden if r["activation"]}
    with_act = sum(1 for r in hidden if r["activation"])
    return kinds.pop() if len(kinds) == 1 and with_act * 2 > len(hidden) else "unknown"


def _chain(calls: list[probe.Call]) -> bool:
    """An MLP: plain Linear layers, each fed by the previous one's output through an activation alone."""
    layer_calls = [c for c in calls if L.is_weight_layer(c.module)]
    return bool(layer_calls) and all(type(c.module) is nn.Linear for c in layer_calls) and all(
        b.input is not None and probe.derived_from(b.input, a.output) for a, b in zip(layer_calls, layer_calls[1:]))


def _predict(rows: list[dict], mods: list[nn.Module], calls, activation: str) -> None:
    """Fill ``predicted_act_std`` and ``predicted_grad_std`` for an MLP of a known activation."""
    for r in rows:
        r["predicted_preact_std"] = r["predicted_act_std"] = r["predicted_grad_std"] = None
    first = next((c for c in calls if L.is_weight_layer(c.module)), None)
    if activation in ("unknown", None) or not _chain(calls) or first is None or first.input is None \
            or first.input.dim() != 2:
        return
    wvar = [float(m.weight.detach().double().pow(2).mean()) for m in mods]
    # a bias shifts a single-unit layer by a constant: across the batch it adds no variance
    bvar = [0.0 if m.bias is None or m.out_features == 1 else float(m.bias.detach().double().pow(2).mean())
            for m in mods]
    m0 = float(first.input.detach().double().pow(2).mean())
    fwd = theory.forward_variances(activation, [m.in_features for m in mods], wvar, bvar, m0)
    for r, f in zip(rows, fwd):
        r["predicted_preact_std"] = math.sqrt(f["preact_var"])
        r["predicted_act_std"] = math.sqrt(f["act_var"] if r["activation"] else f["preact_var"])
    last = rows[-1]["grad_second_moment"]
    if last is not None:
        g = theory.backward_second_moments(fwd, [m.out_features for m in mods], wvar, last)
        for r, v in zip(rows, g):
            r["predicted_grad_std"] = math.sqrt(v)


def load_factory(path: str) -> Callable[[], nn.Module]:
    """``"package.module:factory"`` -> the factory (a callable returning an ``nn.Module``)."""
    import importlib
    import sys
    from pathlib import Path

    if ":" not in path:
        raise InitlabError(f"a model is given as package.module:factory; got '{path}'.")
    module_name, attr = path.split(":", 1)
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # any import failure is the user's module's: one line
        raise InitlabError(f"cannot import '{module_name}': {type(e).__name__}: {e}") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise InitlabError(f"'{module_name}' has no callable '{attr}'.")
    return factory


def build(factory: Callable[[], nn.Module]) -> nn.Module:
    """Call a model factory and check that it gave a module with parameters."""
    try:
        model = factory()
    except Exception as e:
        raise InitlabError(f"the model factory failed: {type(e).__name__}: {e}") from None
    if not isinstance(model, nn.Module):
        raise InitlabError(f"the model factory returned {type(model).__name__}, not an nn.Module.")
    if not any(True for _ in model.parameters()):
        raise InitlabError("the model has no parameters: nothing to initialize or diagnose.")
    return model


def compare(factory: Callable[[], nn.Module], inputs, schemes: list[str | None], seed: int = 0) -> list[Diagnosis]:
    """Diagnose a fresh model from ``factory`` under each scheme or recipe (None: as the factory built it)."""
    results = []
    for scheme in schemes:
        model = build(factory)
        spec = None if scheme is None else scheme_spec(scheme)
        apply = None if spec is None or is_recipe(spec) else get(spec["name"]).apply
        if apply is not None:  # a data-dependent scheme (lsuv): its own verdict keeps the layers it could not reach
            after = getattr(apply(model, inputs, seed=seed, **spec["params"]), "after", None)
            results.append(after if after is not None else _diagnose(model, inputs, None, None, 1e-3, spec["name"]))
            continue
        if spec is not None:
            initialize(model, spec, seed=seed, inputs=inputs)
        results.append(_diagnose(model, inputs, None, None, 1e-3, scheme or "as built"))
    return results
