"""A report card for any model at initialization: how activations and gradients scale from layer to
layer, measured on a batch, next to what mean-field theory predicts, with a verdict and a fix.

``diagnose(model, inputs)`` runs one forward and one backward pass with hooks and leaves the model's
parameters, buffers, gradients and the caller's RNG state exactly as they were. ``lsuv(model,
inputs)`` is the data-dependent fix (Mishkin and Matas 2015).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from html import escape
from typing import Callable

import torch
from torch import nn

from . import theory
from .errors import InitlabError
from .jsonsafe import json_safe
from .schemes import LAYER_TYPES, fans, initialize
from .symmetry import count_distinct

#: Activation modules initlab recognizes, by the name theory knows them by.
ACTIVATION_MODULES = {nn.ReLU: "relu", nn.LeakyReLU: "leaky_relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid",
                      nn.GELU: "gelu", nn.Identity: "identity"}
#: The scheme that keeps the variance for each activation (He for the ReLU family, Xavier otherwise).
SUGGESTED = {"relu": "he_normal", "leaky_relu": "he_normal", "gelu": "he_normal", "tanh": "xavier_uniform",
             "sigmoid": "xavier_uniform", "identity": "xavier_uniform", "unknown": "lsuv"}
#: A std more than this factor below (above) the first layer's is vanishing (exploding).
FACTOR = 10.0
COLUMNS = ["name", "kind", "activation", "fan_in", "fan_out", "weight_std", "preact_std", "act_mean", "act_std",
           "grad_std", "weight_grad_std", "grad_to_weight", "dead_fraction", "saturated_fraction",
           "effective_width", "width", "predicted_preact_std", "predicted_act_std", "predicted_grad_std"]
#: The columns a diagnosis shows as a table (terminal and report page): measured beside predicted.
TABLE_COLUMNS = ["name", "kind", "fan_in", "fan_out", "preact_std", "predicted_preact_std", "act_std", "grad_std",
                 "predicted_grad_std", "dead_fraction", "saturated_fraction", "effective_width"]


def _std(t: torch.Tensor | None) -> float | None:
    return None if t is None or t.numel() < 2 else float(t.detach().double().std())


def _units(t: torch.Tensor) -> torch.Tensor:
    """(samples, units): a convolution's channels are its units, positions count as samples."""
    t = t.detach()
    if t.dim() > 2:
        return t.transpose(0, 1).reshape(t.shape[1], -1).T
    return t.reshape(t.shape[0], -1)


def _default_loss(out: torch.Tensor) -> torch.Tensor:
    """Without targets: a fixed random direction, so the gradient reaching the output has unit scale
    per sample whatever the output's scale (drawn from its own generator, never the global one)."""
    gen = torch.Generator(device=out.device).manual_seed(0x10_55_D1A6)  # a stream no scheme seed uses
    r = torch.randn(out.shape, generator=gen, device=out.device, dtype=out.dtype)
    return (out * r).sum() / out.shape[0]


def _loss(out, targets, loss_fn):
    if loss_fn is not None:
        return loss_fn(out, targets) if targets is not None else loss_fn(out)
    if targets is None:
        return _default_loss(out)
    if targets.dtype in (torch.long, torch.int):
        return nn.functional.cross_entropy(out, targets)
    if out.dim() == 2 and out.shape[1] == 1 and targets.dim() == 1:
        return nn.functional.binary_cross_entropy_with_logits(out.reshape(-1), targets.to(out.dtype))
    return nn.functional.mse_loss(out, targets.to(out.dtype))


@dataclass
class _Call:
    name: str
    module: nn.Module
    input: torch.Tensor | None
    output: torch.Tensor


def _trace(model: nn.Module, inputs, targets, loss_fn):
    """One forward and backward pass; every leaf module's call in order and each layer's output grad."""
    calls: list[_Call] = []
    grads: dict[int, torch.Tensor] = {}
    names = {m: n for n, m in model.named_modules()}

    def hook(module, args, out):
        if not isinstance(out, torch.Tensor):
            return
        calls.append(_Call(names[module], module, args[0] if args and isinstance(args[0], torch.Tensor) else None, out))
        if isinstance(module, LAYER_TYPES) and out.requires_grad:
            i = len(calls) - 1
            out.register_hook(lambda g, i=i: grads.__setitem__(i, g.detach()))

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        out = model(inputs)
        _loss(out, targets, loss_fn).backward()
    finally:
        for h in handles:
            h.remove()
    return calls, grads


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
                          "verdict": self.verdict})

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **{"indent": 2, **kwargs})

    def table(self) -> str:
        cols = TABLE_COLUMNS
        cells = [[_fmt(r.get(c)) for c in cols] for r in self.rows]
        widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
        lines = ["  ".join(c.rjust(w) for c, w in zip(cols, widths))]
        lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
        return "\n".join(lines + [f"verdict: {self.verdict['summary']}. {self.verdict['message']}"])

    __str__ = table

    def _repr_html_(self) -> str:
        return (f"<p><b>verdict: {escape(self.verdict['summary'])}</b>. {escape(self.verdict['message'])}</p>"
                + layers_html(self.rows, [c for c in COLUMNS if c != "width"]))

    def plot(self, ax=None):
        """Std per layer on a log scale, forward and backward; measured solid, predicted dashed."""
        from .plots import diagnosis_plot
        return diagnosis_plot(self.to_dict(), ax=ax)


def _fmt(v) -> str:
    """Three significant digits: a diagnosis spans many orders of magnitude."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def layers_html(rows: list[dict], columns: list[str] = TABLE_COLUMNS) -> str:
    """A diagnosis's rows as an HTML table, every cell escaped."""
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{escape(_fmt(r.get(c)))}</td>" for c in columns) + "</tr>"
                   for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _following_activation(calls: list[_Call], i: int, layer_idx: list[int]):
    """The activation after layer call ``i``: a module called before the next layer, else (a functional
    call) the next layer's input."""
    nxt = next((j for j in layer_idx if j > i), None)
    end = nxt if nxt is not None else len(calls)
    for j in range(i + 1, end):
        kind = ACTIVATION_MODULES.get(type(calls[j].module))
        if kind is not None and calls[j].input is not None and calls[j].input.shape == calls[i].output.shape:
            return kind, calls[j].output
    if nxt is not None and calls[nxt].input is not None and calls[nxt].input is not calls[i].output \
            and calls[nxt].input.shape == calls[i].output.shape:
        return "unknown", calls[nxt].input
    return None, None


def diagnose(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None = None,
             loss_fn: Callable | None = None, scheme: str | None = None, rtol: float = 1e-3) -> Diagnosis:
    """Measure how activations and gradients scale through ``model`` on ``inputs`` at its current
    parameters, predict them from theory where the model is an MLP of a known activation, and judge.

    Parameters
    ----------
    model : nn.Module
        Any module with Linear or convolution layers (MLPs, CNNs, residual blocks, functional
        activations).
    inputs : Tensor
        A batch the model accepts.
    targets, loss_fn : optional
        The loss to differentiate. Without them, the gradient at the output is a fixed random unit-scale
        direction, so the backward statistics show the network alone.
    scheme : str, optional
        The scheme's name, for the verdict's message.
    """
    layers = [m for m in model.modules() if isinstance(m, LAYER_TYPES)]
    if not layers:
        raise InitlabError("the model has no Linear or convolution layer to diagnose.")
    if not isinstance(inputs, torch.Tensor):
        raise InitlabError(f"inputs must be a tensor; got {type(inputs).__name__}.")
    param = next(model.parameters())
    inputs = inputs.to(param.device, param.dtype) if inputs.is_floating_point() else inputs.to(param.device)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    saved_grads = [(p, None if p.grad is None else p.grad.clone()) for p in model.parameters()]
    for p, _ in saved_grads:
        p.grad = None
    devices = [param.device.index or 0] if param.device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            try:
                calls, grads = _trace(model, inputs, targets, loss_fn)
            except RuntimeError as e:
                raise InitlabError(f"the inputs do not fit the model: {str(e).splitlines()[0]}") from None
        rows = _rows(calls, grads, rtol)
    finally:
        model.load_state_dict(state)
        for p, g in saved_grads:
            p.grad = g
    activation = _model_activation(rows)
    _predict(rows, calls, activation)
    return Diagnosis(rows, verdict(rows, activation, scheme), activation, scheme)


def _rows(calls: list[_Call], grads: dict, rtol: float) -> list[dict]:
    layer_idx = [i for i, c in enumerate(calls) if isinstance(c.module, LAYER_TYPES)]
    rows = []
    for i in layer_idx:
        c = calls[i]
        w = c.module.weight
        fan_in, fan_out = fans(w)
        kind, act = _following_activation(calls, i, layer_idx)
        out_units = _units(c.output)
        grad = grads.get(i)
        wstd = _std(w)
        wgstd = _std(w.grad)
        row = {"name": c.name, "kind": type(c.module).__name__, "activation": kind, "fan_in": fan_in,
               "fan_out": fan_out, "weight_std": wstd, "preact_std": _std(c.output),
               "act_mean": None if act is None else float(act.detach().double().mean()),
               "act_std": _std(act) if act is not None else _std(c.output),
               "grad_std": _std(grad), "weight_grad_std": wgstd,
               "grad_to_weight": None if not wstd or wgstd is None else wgstd / wstd,
               "dead_fraction": None, "saturated_fraction": None, "width": out_units.shape[1],
               "grad_second_moment": None if grad is None else float(grad.double().pow(2).mean())}
        if act is not None:
            a = _units(act)
            if kind in ("relu", "leaky_relu") or (kind == "unknown" and bool((a >= 0).all())):
                row["dead_fraction"] = float((a <= 0).all(0).double().mean())
            elif kind == "tanh":
                row["saturated_fraction"] = float((a.abs() > 0.99).double().mean())
            elif kind == "sigmoid":
                row["saturated_fraction"] = float(((2 * a - 1).abs() > 0.99).double().mean())
        finite = bool(torch.isfinite(out_units).all())
        scale = float(out_units.abs().max()) if finite and out_units.numel() else 0.0
        row["effective_width"] = count_distinct(out_units, rtol * scale + 1e-30)[0] if finite else None
        rows.append(row)
    return rows


def _model_activation(rows: list[dict]) -> str:
    kinds = {r["activation"] for r in rows[:-1] if r["activation"]}
    return kinds.pop() if len(kinds) == 1 else "unknown"


def _predict(rows: list[dict], calls: list[_Call], activation: str) -> None:
    """Fill ``predicted_act_std`` and ``predicted_grad_std`` for an MLP of a known activation."""
    for r in rows:
        r["predicted_preact_std"] = r["predicted_act_std"] = r["predicted_grad_std"] = None
    layer_calls = [c for c in calls if isinstance(c.module, LAYER_TYPES)]
    chain = all(isinstance(c.module, nn.Linear) for c in layer_calls) and all(
        a.module.out_features == b.module.in_features for a, b in zip(layer_calls, layer_calls[1:]))
    if activation in ("unknown", None) or not chain or layer_calls[0].input is None:
        return
    mods = [c.module for c in layer_calls]
    wvar = [float(m.weight.detach().double().pow(2).mean()) for m in mods]
    # a bias shifts a single-unit layer by a constant: across the batch it adds no variance
    bvar = [0.0 if m.bias is None or m.out_features == 1 else float(m.bias.detach().double().pow(2).mean())
            for m in mods]
    m0 = float(layer_calls[0].input.detach().double().pow(2).mean())
    fwd = theory.forward_variances(activation, [m.in_features for m in mods], wvar, bvar, m0)
    for r, f in zip(rows, fwd):
        r["predicted_preact_std"] = math.sqrt(f["preact_var"])
        r["predicted_act_std"] = math.sqrt(f["act_var"] if r["activation"] else f["preact_var"])
    last = rows[-1]["grad_second_moment"]
    if last is not None:
        g = theory.backward_second_moments(fwd, [m.out_features for m in mods], wvar, last)
        for r, v in zip(rows, g):
            r["predicted_grad_std"] = math.sqrt(v)


def _trend(values: list[float | None], reverse: bool = False) -> dict:
    """'vanishing' or 'exploding' with the first layer (counted in the direction of travel) whose std
    is FACTOR below or above the starting layer's; 'ok' otherwise."""
    idx = list(range(len(values)))[::-1] if reverse else list(range(len(values)))
    idx = [i for i in idx if values[i] is not None]
    if len(idx) < 2 or not values[idx[0]]:
        return {"status": "ok", "layer": None, "ratio": None}
    base = values[idx[0]]
    ratios = {i: values[i] / base for i in idx}
    end = ratios[idx[-1]]
    for i in idx[1:]:
        if not math.isfinite(ratios[i]) or ratios[i] > FACTOR:
            return {"status": "exploding", "layer": i, "ratio": end}
        if ratios[i] < 1 / FACTOR:
            return {"status": "vanishing", "layer": i, "ratio": end}
    return {"status": "ok", "layer": None, "ratio": end}


def verdict(rows: list[dict], activation: str = "unknown", scheme: str | None = None) -> dict:
    """Judge a diagnosis: forward and backward trends, symmetry, dead and saturated units."""
    fwd = _trend([r["preact_std"] for r in rows])
    # backward from the last hidden layer: the output layer's width (often 1) changes the gradient's
    # scale once, by its shape, not through depth
    hidden_grads = [r["grad_std"] for r in rows]
    if len(rows) > 2:
        hidden_grads[-1] = None
    bwd = _trend(hidden_grads, reverse=True)
    for t in (fwd, bwd):
        if t["layer"] is not None:
            t["layer_name"] = rows[t["layer"]]["name"]
            t["layer"] += 1  # 1-based, as a person counts layers
    labels = []
    if fwd["status"] != "ok":
        labels.append(f"{fwd['status']} (forward)")
    if bwd["status"] != "ok":
        labels.append(f"{bwd['status']} (backward)")
    flags = {}
    for key, test in (("symmetric", lambda r: r["effective_width"] is not None and r["width"] > 1
                       and r["effective_width"] <= r["width"] / 2),
                      ("dead", lambda r: (r["dead_fraction"] or 0) > 0.5),
                      ("saturated", lambda r: (r["saturated_fraction"] or 0) > 0.5)):
        hit = next((i for i, r in enumerate(rows[:-1]) if test(r)), None)
        flags[key] = None if hit is None else rows[hit]["name"]
        if hit is not None:
            labels.append(key)
    suggestion = SUGGESTED.get(activation, "lsuv")
    who = f"{activation} with {scheme}" if scheme else f"this {activation} network"
    n = len(rows)
    if fwd["status"] != "ok":
        per_layer = fwd["ratio"] ** (2 / max(n - 1, 1)) if fwd["ratio"] and math.isfinite(fwd["ratio"]) else math.inf
        change = "shrinks" if fwd["status"] == "vanishing" else "grows"
        message = (f"{who}: activation variance {change} by a factor {per_layer:.2g} per layer, the std at layer "
                   f"{n} is {fwd['ratio']:.2g} of layer 1; use {suggestion}")
    elif bwd["status"] != "ok":
        message = (f"{who}: the gradient std at layer 1 is {bwd['ratio']:.2g} of the last layer's "
                   f"({bwd['status']}); use {suggestion}")
    elif flags["symmetric"]:
        message = f"{who}: neurons of layer {flags['symmetric']} are copies of each other; use a random scheme ({suggestion})"
    elif flags["dead"] or flags["saturated"]:
        which = "dead" if flags["dead"] else "saturated"
        message = f"{who}: most units of layer {flags[which]} are {which}; use {suggestion}"
    else:
        message = f"{who}: forward and backward std stay within {FACTOR:g}x of the first layer's"
    return {"labels": labels, "summary": ", ".join(labels) if labels else "ok", "forward": fwd, "backward": bwd,
            **{f"{k}_layer": v for k, v in flags.items()}, "suggestion": suggestion, "message": message}


@dataclass
class LSUVResult:
    """What :func:`lsuv` did: the diagnosis before and after, and the iterations per layer."""

    before: Diagnosis
    after: Diagnosis
    iterations: dict[str, int]


def lsuv(model: nn.Module, inputs: torch.Tensor, target_std: float = 1.0, tol: float = 0.1, max_iter: int = 10,
         seed: int = 0) -> LSUVResult:
    """Layer-sequential unit-variance initialization (Mishkin and Matas 2015, "All you need is a good
    init"): an orthogonal initialization, then, layer by layer in forward order, the weights are
    divided by ``std(output) / target_std`` until the output's std is within ``tol`` of the target
    (at most ``max_iter`` times per layer). In place; returns the diagnosis before and after."""
    if target_std <= 0 or tol <= 0 or max_iter < 1:
        raise InitlabError(f"lsuv needs target_std > 0, tol > 0, max_iter >= 1; got {target_std}, {tol}, {max_iter}.")
    before = diagnose(model, inputs)
    initialize(model, "orthogonal", seed=seed)
    param = next(model.parameters())
    inputs = inputs.to(param.device, param.dtype)
    order, outputs = [], {}

    def record(module, _args, out):
        if module not in outputs:
            order.append(module)
        outputs[module] = out.detach()

    layers = [m for m in model.modules() if isinstance(m, LAYER_TYPES)]
    names = {m: n for n, m in model.named_modules()}
    handles = [m.register_forward_hook(record) for m in layers]
    iterations = {}
    try:
        with torch.no_grad():
            model(inputs)
            for layer in list(order):
                for it in range(max_iter + 1):
                    std = float(outputs[layer].double().std())
                    if abs(std - target_std) <= tol or std == 0 or not math.isfinite(std) or it == max_iter:
                        break
                    layer.weight.div_(std / target_std)
                    model(inputs)
                iterations[names[layer]] = it
    finally:
        for h in handles:
            h.remove()
    return LSUVResult(before, diagnose(model, inputs, scheme="lsuv"), iterations)


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


def compare(factory: Callable[[], nn.Module], inputs: torch.Tensor, schemes: list[str | None],
            seed: int = 0) -> list[Diagnosis]:
    """Diagnose a fresh model from ``factory`` under each scheme (None: as the factory built it)."""
    results = []
    for scheme in schemes:
        model = build(factory)
        if scheme is not None:
            initialize(model, scheme, seed=seed, inputs=inputs)
        results.append(diagnose(model, inputs, scheme=scheme or "as built"))
    return results
