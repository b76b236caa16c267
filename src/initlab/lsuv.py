"""Layer-sequential unit-variance initialization (Mishkin and Matas 2016, "All you need is a good
init"), on any model: an orthonormal initialization, then, layer by layer in forward order, the layer's
weights are divided by ``std(output) / target_std`` until the std of its output on a batch is within
``tol`` of the target.

Every weight layer is reached: Linear and convolutions, attention (rescaled through its output
projection, as the PyPI ``lsuv`` package does), recurrent layers (their input weights) and
parametrized layers (through the parametrization). A layer that cannot reach the target (a bounded
output, a weight shared with a layer rescaled after it, a parametrization that normalizes the
weight) is reported as such, never as ok. The model's buffers, train/eval modes and the global RNG are
exactly as they were afterwards; if anything fails, its parameters are too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from . import layers as L
from .checks import to_model
from .errors import InitlabError
from .init import Manifest, call, initialize
from .schemes import register_data_scheme

MODES = ("eval", "train")


@dataclass
class LSUVResult:
    """What :func:`lsuv` did: the diagnosis before and after, each layer's std and iterations, whether
    it reached the target (and why not), and the manifest of every parameter."""

    before: object
    after: object
    iterations: dict[str, int]
    layers: list[dict] = field(default_factory=list)
    manifest: Manifest | None = None

    @property
    def reached(self) -> bool:
        return all(r["reached"] for r in self.layers)


def _scaled_blocks(module: nn.Module) -> list[str]:
    """The parameters lsuv divides to rescale a layer's output: its weights, but an attention's Q, K, V
    (whose scale changes the softmax's temperature, not the output's) and an RNN's recurrent weights."""
    if isinstance(module, nn.RNNBase) and getattr(module, "proj_size", 0):
        # the output is the last layer's projection: linear in it, and only in it
        last = module.num_layers - 1
        return [f"weight_hr_l{last}{s}" for s in ("", "_reverse")[: 2 if module.bidirectional else 1]]
    blocks = [b for b in L.adapter_for(module).blocks(module) if b.role == "weight" and b.label not in ("q", "k", "v")]
    return list(dict.fromkeys(b.param for b in blocks))


def _divide(module: nn.Module, factor: float, scaled: dict[int, float]) -> None:
    """Divide the layer's scaled weights by ``factor``; ``scaled`` keeps each parameter's total factor."""
    for path in _scaled_blocks(module):
        L.write(module, path, L.read(module, path) / factor)
        for p in L.underlying(module, path):
            scaled[id(p)] = scaled.get(id(p), 1.0) / factor


def _frozen(module: nn.Module) -> bool:
    held = [p for path in _scaled_blocks(module) for p in L.underlying(module, path)]
    return bool(held) and not any(p.requires_grad for p in held)


def lsuv(model: nn.Module, inputs, target_std: float = 1.0, tol: float = 0.1, max_iter: int = 10, seed: int = 0,
         mode: str = "eval") -> LSUVResult:
    """Layer-sequential unit-variance initialization of ``model`` on the batch ``inputs``, in place.

    Parameters
    ----------
    model : nn.Module
        Any model; every weight layer initlab knows is rescaled (see the module's docstring).
    inputs : Tensor, tuple or dict
        A batch the model accepts (integer token ids are passed as they are).
    target_std, tol, max_iter : float, float, int
        Each layer's output std is brought within ``tol`` of ``target_std``, in at most ``max_iter``
        rescalings.
    seed : int
        Seed of the orthonormal pre-initialization.
    mode : "eval" or "train"
        The mode the statistics are measured in (eval: dropout off, BatchNorm on its running
        statistics). The model's own modes and buffers are restored either way.

    Returns
    -------
    LSUVResult
    """
    from .diagnose import _diagnose, diagnose

    _check_args(model, target_std, tol, max_iter, mode)
    param = next((p for p in model.parameters()), None)
    if param is None:
        raise InitlabError(f"{type(model).__name__} has no parameters: nothing for lsuv to rescale.")
    inputs = to_model(inputs, param)
    before = diagnose(model, inputs)  # checks that the inputs fit, before anything is written
    with _Restoring(model) as restoring:
        ortho = initialize(model, "orthogonal", seed=seed)
        restoring.disable_fastpath()  # fused attention kernels skip the hooks of the layers inside them
        with torch.random.fork_rng(devices=restoring.devices), torch.no_grad():
            model.train(mode == "train")
            layer_rows, iterations, scaled = _rescale(model, inputs, target_std, tol, max_iter)
    after = _diagnose(model, inputs, None, None, 1e-3, "lsuv")
    _note_missed(after.verdict, layer_rows, target_std, tol)
    return LSUVResult(before, after, iterations, layer_rows, _manifest(model, ortho, layer_rows, scaled, seed))


def _check_args(model, target_std, tol, max_iter, mode) -> None:
    if not (isinstance(target_std, (int, float)) and math.isfinite(target_std) and target_std > 0
            and isinstance(tol, (int, float)) and math.isfinite(tol) and tol > 0
            and isinstance(max_iter, int) and max_iter >= 1):
        raise InitlabError(f"lsuv needs target_std > 0, tol > 0 and an integer max_iter >= 1; got "
                           f"target_std={target_std!r}, tol={tol!r}, max_iter={max_iter!r}.")
    if mode not in MODES:
        raise InitlabError(f"lsuv's mode is 'eval' or 'train'; got {mode!r}.")
    if not isinstance(model, nn.Module):
        raise InitlabError(f"lsuv needs an nn.Module; got {type(model).__name__}.")


class _Restoring:
    """Around lsuv's writes: if anything fails, the model's parameters as they were; either way, its
    train/eval modes, its buffers (BatchNorm's running statistics) and attention's fast path."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.saved = {k: v.detach().clone() for k, v in model.state_dict(keep_vars=True).items()}
        self.modes = {m: m.training for m in model.modules()}
        self.devices = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
        self.fastpath = torch.backends.mha.get_fastpath_enabled() if hasattr(torch.backends, "mha") else None

    def disable_fastpath(self) -> None:
        if self.fastpath is not None:
            torch.backends.mha.set_fastpath_enabled(False)

    def __enter__(self) -> "_Restoring":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is not None:
                with torch.no_grad():
                    self.model.load_state_dict(self.saved)
        finally:
            if self.fastpath is not None:
                torch.backends.mha.set_fastpath_enabled(self.fastpath)
            for m, t in self.modes.items():
                m.training = t
            with torch.no_grad():  # BatchNorm's running statistics, and every other buffer, as they were
                for k, v in self.model.named_buffers():
                    if k in self.saved and v.shape == self.saved[k].shape:
                        v.copy_(self.saved[k])


def _note_missed(verdict: dict, layer_rows: list[dict], target_std: float, tol: float) -> None:
    """Add to the verdict after lsuv the layers it could not bring to the target, and why."""
    missed = [r for r in layer_rows if not r["reached"]]
    if missed:
        verdict["labels"].append("lsuv: target not reached")
        verdict["summary"] = ", ".join(verdict["labels"])
        verdict["lsuv_missed"] = [r["name"] for r in missed]
        verdict["message"] = (f"lsuv could not bring {len(missed)} layer(s) to std {target_std:g} "
                              f"+- {tol:g}: " + "; ".join(f"{r['name']} at {r['std']:.3g} ({r['reason']})"
                                                          for r in missed[:3]) + ". " + verdict["message"])


class _Outputs:
    """A forward hook for the weight layers: each layer's latest output, the order in which layers
    first gave one, and how many times each was called."""

    def __init__(self):
        self.latest: dict[nn.Module, torch.Tensor] = {}
        self.order: list[nn.Module] = []
        self.counts: dict[nn.Module, int] = {}

    def __call__(self, module, _args, out) -> None:
        from .probe import first_tensor

        t = first_tensor(out)
        if t is None:
            return
        if module not in self.latest and module not in self.order:
            self.order.append(module)
        self.latest[module] = t.detach().clone()  # a copy: an in-place activation after the layer would overwrite it
        self.counts[module] = self.counts.get(module, 0) + 1

    def std(self, layer: nn.Module) -> float:
        return float(self.latest[layer].double().std())


def _rescale(model, inputs, target_std, tol, max_iter):
    outputs = _Outputs()
    names = {m: n for n, m in model.named_modules()}
    owners: dict[int, set] = {}
    for m in model.modules():
        for p in m.parameters(recurse=False):
            owners.setdefault(id(p), set()).add(m)
    handles = [m.register_forward_hook(outputs) for m in model.modules() if L.is_weight_layer(m)]
    iterations, notes, scaled, at_turn = {}, {}, {}, {}
    try:
        call(model, inputs)
        calls = dict(outputs.counts)
        for layer in list(outputs.order):
            name = names[layer]
            note = _why_left(layer, calls[layer], outputs.order, owners, names)
            if note is not None:
                notes[name], iterations[name] = note, 0
                continue
            iterations[name], note = _rescale_layer(model, inputs, layer, outputs, scaled, target_std, tol, max_iter)
            if note is not None:
                notes[name] = note
            at_turn[name] = outputs.std(layer)
        outputs.latest.clear()
        call(model, inputs)  # every layer once more: a later rescaling can move an earlier layer
        broken = [names[m] for m in outputs.order
                  if m in outputs.latest and not bool(torch.isfinite(outputs.latest[m]).all())]
        if broken:
            raise InitlabError(f"lsuv made the output of layer '{broken[0]}' non-finite; the model is left as it was.")
    finally:
        for h in handles:
            h.remove()
    rows = [_layer_row(layer, names[layer], outputs, iterations, notes, at_turn, target_std, tol)
            for layer in outputs.order]
    return rows, iterations, scaled


def _why_left(layer: nn.Module, calls: int, order: list[nn.Module], owners: dict[int, set],
              names: dict[nn.Module, str]) -> str | None:
    """Why ``layer`` is not to be rescaled at all (None: it is)."""
    if calls > 1:
        return (f"called {calls} times in one forward pass (weights shared across depth or time): one scale "
                f"cannot set every call, so it is left after the orthogonal pre-initialization")
    if _frozen(layer):
        return "frozen (requires_grad=False): left as it was"
    tied = _tied_before(layer, order, owners)
    if tied:
        return (f"its weight is shared with {', '.join(names[m] for m in tied)}, which runs before it: "
                f"rescaling it would undo the layers already set (tied weights), so it is left")
    return None


def _rescale_layer(model, inputs, layer: nn.Module, outputs: _Outputs, scaled: dict[int, float],
                   target_std: float, tol: float, max_iter: int) -> tuple[int, str | None]:
    """Divide ``layer``'s weights until its output's std is within ``tol`` of the target; the number
    of iterations, and a note when it had to stop short (a rescaling it could not make, or undid)."""
    for it in range(max_iter + 1):
        std = outputs.std(layer)
        if abs(std - target_std) <= tol or not math.isfinite(std) or std == 0 or it == max_iter:
            break
        saved = {path: L.read(layer, path).clone() for path in _scaled_blocks(layer)}
        saved_scale = dict(scaled)
        try:
            _divide(layer, std / target_std, scaled)
        except L.Unreachable as e:
            return it, str(e)
        call(model, inputs)
        new = outputs.std(layer)
        if not (math.isfinite(new) and abs(new - target_std) <= 0.1 * target_std + tol):
            # not linear in its weights' scale (a bounded or normalized output): undo, never wreck it
            for path, value in saved.items():
                L.write(layer, path, value)
            scaled.clear()
            scaled.update(saved_scale)
            call(model, inputs)
            return it, (f"its output does not follow its weights' scale: x{target_std / std:.3g} moved its "
                        f"std from {std:.3g} to {new:.3g}, not to {target_std:g} (a bounded or normalized "
                        f"output), so that rescaling was undone")
    return it, None


def _layer_row(layer: nn.Module, name: str, outputs: _Outputs, iterations: dict, notes: dict, at_turn: dict,
               target_std: float, tol: float) -> dict:
    """One layer's line of the result: its output's std after every rescaling, and why it missed."""
    std = outputs.std(layer) if layer in outputs.latest else float("nan")
    reached = math.isfinite(std) and abs(std - target_std) <= tol
    reason = None
    if not reached:
        turn = at_turn.get(name)
        if name in notes:
            reason = notes[name]
        elif turn is not None and abs(turn - target_std) <= tol:
            reason = (f"it reached {turn:.3g}, then rescaling a later layer moved it (a later layer's weight "
                      f"is shared with something before this one)")
        elif std == 0 or not math.isfinite(std):
            reason = "its output is constant or not finite: nothing to rescale"
        elif not _scaled_blocks(layer):
            reason = "it has no weight lsuv can rescale"
        else:
            reason = (f"after {iterations[name]} rescalings its output does not follow its weights' scale "
                      f"(a bounded, normalized or clipped output)")
    return {"name": name, "kind": type(layer).__name__, "std": std, "iterations": iterations.get(name, 0),
            "reached": reached, "reason": reason}


def _tied_before(layer: nn.Module, order: list[nn.Module], owners: dict[int, set]) -> list[nn.Module]:
    """Modules other than ``layer`` (and its own sublayers) that hold one of the weights lsuv would
    rescale for it and run before it (or are not weight layers, as a tied embedding)."""
    mine = set(layer.modules())
    later = set(order[order.index(layer) + 1:])
    found = []
    for path in _scaled_blocks(layer):
        for p in L.underlying(layer, path):
            found += [m for m in owners.get(id(p), ()) if m not in mine and m not in later and m not in found]
    return found


def _manifest(model: nn.Module, ortho: Manifest, layer_rows: list[dict], scaled: dict[int, float],
              seed: int) -> Manifest:
    """The orthogonal pre-initialization's manifest, with what the rescaling did to each tensor: a
    tensor the pre-initialization left (a tied embedding) but a rescaling reached is said to be."""
    by_name = {r["name"]: r for r in layer_rows}
    by_param = dict(model.named_parameters(remove_duplicate=False))
    factor_of = {n: scaled[id(p)] for n, p in by_param.items() if id(p) in scaled}
    m = Manifest(scheme={"name": "lsuv", "params": {}}, seed=seed, shared=ortho.shared, names=ortho.names)
    for e in ortho.entries:
        r = by_name.get(e["module"])
        entry = {**e, "scheme": "lsuv"}
        factor = next((factor_of[n] for n in e.get("stored_in") or [] if n in factor_of), None)
        if e["role"] in ("weight", "recurrent"):
            entry["distribution"] = f"orthogonal, rescaled x{factor:.3g}" if factor else "orthogonal"
        if r:
            entry.update(iterations=r["iterations"], output_std=r["std"], reached=r["reached"])
            if r["reason"]:
                entry["reason"] = r["reason"]
        m.entries.append(entry)
    for e in ortho.left:
        factor = next((factor_of[n] for n in e.get("stored_in") or [e["parameter"]] if n in factor_of), None)
        if factor is None:
            m.left.append(e)
        else:  # left by the pre-initialization, reached by a rescaling through a tied layer
            m.entries.append({**e, "scheme": "lsuv", "distribution": f"as it was, rescaled x{factor:.3g} (through a "
                              f"layer that shares it)", "reason": None})
    return m


#: lsuv's own parameters, with their defaults (as a scheme: ``{"name": "lsuv", "params": {...}}``).
PARAMS = {"target_std": 1.0, "tol": 0.1, "max_iter": 10}


def register() -> None:
    """Register ``lsuv`` as a data-dependent scheme (the ``initlab.schemes`` entry point ``lsuv``), so
    that ``initialize(model, "lsuv", inputs=X)``, sweeps and ``initlab diagnose --scheme lsuv`` reach
    it by name while :mod:`initlab.schemes` and :mod:`initlab.init` never import this module."""
    register_data_scheme("lsuv", "orthogonal, then each layer rescaled in forward order until std(output) = "
                         "target_std on data (needs inputs)", PARAMS, lsuv)
