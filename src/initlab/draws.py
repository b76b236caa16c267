"""How :func:`initlab.initialize` fills one tensor: a scheme's draw of a weight (with the layer's fans),
a bias, a layer's own PyTorch default, each from generators that never touch the global RNG."""

from __future__ import annotations

import math

import torch
from torch import nn

from . import layers as L
from .errors import InitlabError
from .schemes import GAINS, fans, get, normal


class Generators:
    """One generator per device, each seeded with the same seed, so draws never touch global RNG."""

    def __init__(self, seed: int):
        self.seed, self._by_device = seed, {}

    def __call__(self, device: torch.device) -> torch.Generator:
        if device not in self._by_device:
            self._by_device[device] = torch.Generator(device=device).manual_seed(self.seed)
        return self._by_device[device]


def buffer_dtype(dtype: torch.dtype) -> torch.dtype:
    """Draws happen in float64 for float64 parameters and in float32 for every other type (half
    precision has no QR, and bfloat16's 8 bits of mantissa would coarsen a uniform's bound)."""
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def draw_weight(target: torch.Tensor, transposed: bool, spec: dict, generator, nonlinearity: str | None,
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


def fill_bias(target: torch.Tensor, spec: dict, generator, block: L.Block) -> dict:
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


def default_values(module: nn.Module, seed: int, in_place: bool) -> dict[str, torch.Tensor] | None:
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


def default_record(module: nn.Module, block: L.Block, value: torch.Tensor) -> dict:
    rec = {"distribution": "PyTorch default", "via": f"{L.adapter_for(module).reset or 'reset_parameters'}()"}
    if isinstance(module, L.LAYER_TYPES) and block.param in ("weight", "bias"):
        bound = 1.0 / math.sqrt(fans(module.weight)[0]) if module.weight.dim() >= 2 else None
        rec.update(distribution="uniform", bound=bound)
    else:
        rec["std"] = float(value.double().std()) if value.numel() > 1 else None
    return rec


def copy_default(module: nn.Module, path: str, block: L.Block, target: torch.Tensor, defaults) -> dict:
    """The layer's PyTorch default into ``target`` (``block``'s rows), or why there is none."""
    if defaults is None or path not in defaults:
        return {"distribution": "left as it was", "reason": f"{type(module).__name__} has no "
                f"reset_parameters(): its default is whatever built it"}
    src = defaults[path].to(target.dtype)
    target.copy_(src if block.rows is None else src[block.rows[0]:block.rows[1]])
    return default_record(module, block, target)


def draw_tensor(t: torch.Tensor, spec: dict, generator) -> dict:
    """Draw a lone tensor ``t`` by ``spec`` (a weight's draw from 2 dimensions, the scheme's own below);
    the manifest's record."""
    work = t.detach().to(buffer_dtype(t.dtype)).clone()
    record = draw_weight(work, False, spec, generator, None) if t.dim() >= 2 \
        else get(spec["name"]).fn(work, generator=generator, **{**get(spec["name"]).fixed, **spec["params"]})
    t.copy_(work)
    return record
