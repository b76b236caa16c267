"""The audit: does a model hold what its recipe (or scheme) says each tensor should get?

``initlab.audit(model, "gpt2", n_layer=12)`` reads what the recipe would give every tensor (by
initializing a scratch copy of the model: the same plan, layer table and fans as
:func:`initlab.initialize`, so the audit and the draw cannot disagree about a rule), then measures the
model's own tensors, in groups of one role and one kind of layer (``branch_out`` x ``Linear`` x weight):

- a random rule (normal, uniform, truncated normal, PyTorch's default): the group's std beside the
  expected one, within a statistical tolerance (see :func:`std_tolerance`); every tensor of the group
  also alone, so one wrong tensor in a large group is found and named;
- a constant (zero biases, Fixup's zero branches, a norm's scale 1): every value exactly;
- orthogonal and delta-orthogonal: the Gram matrix is gain^2 times the identity; identity: the values.

It also lists the tensors that fail and look untouched (their std is that of PyTorch's own
``reset_parameters``, U[-1/sqrt(fan_in), 1/sqrt(fan_in)] for Linear and convolutions), the tied tensors
(one tensor under several names, drawn once by the rule of the name :func:`initlab.initialize` met first:
measured once, and measured again against the rule of each other name whose rule it did not get), and
the tensors no rule covers (left as they were).

>>> result = initlab.audit(model, "gpt2", n_layer=12)
>>> result.passed, print(result.table())
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch
from torch import nn

from . import layers as L
from .draws import default_record, default_values
from .errors import InitlabError
from .init import initialize
from .jsonsafe import json_safe
from .recipes import RECIPES, attentions
from .schemes import label_of
from .tables import html_table, significant, text_table

#: The group table's columns.
COLUMNS = ("role", "layer", "tensor", "tensors", "n", "check", "expected", "measured", "tolerance", "result")


def std_tolerance(std: float, n: int, sigmas: float = 5.0, floor: float = 0.01) -> float:
    """How far the sample std of ``n`` iid values may be from ``std`` and still pass:
    ``sigmas`` standard errors plus a relative ``floor``, |s_n - std| <= sigmas * std / sqrt(2 (n - 1)) +
    floor * std. The standard error std / sqrt(2 (n - 1)) is a normal's; a uniform's is smaller
    (std / sqrt(5 (n - 1)) roughly), so the bound is a little loose for uniform draws, never tight."""
    return sigmas * std / math.sqrt(2 * max(n - 1, 1)) + floor * std


@dataclass
class _Tensor:
    """One tensor drawn as a unit (a parameter, or a block of its rows), its rule and its values."""

    name: str
    module: str
    path: str
    kind: str
    role: str
    recipe_role: str | None
    rows: tuple | None
    record: dict
    values: torch.Tensor = field(repr=False)
    label: str | None = None

    @property
    def title(self) -> str:
        return f"{self.name}[{self.label}]" if self.label else self.name


# ------------------------------------------------------------------------------- expectations
def _random(rec: dict) -> dict | None:
    """A random rule's expected std and mean, or None when the record says neither."""
    if rec.get("distribution") in ("uniform", "PyTorch default") and rec.get("bound"):
        return {"check": "std", "std": rec["bound"] / math.sqrt(3), "mean": 0.0}
    if rec.get("std"):
        return {"check": "std", "std": float(rec["std"]), "mean": float(rec.get("mean") or 0.0)}
    return None


def _expect_default(rec: dict) -> dict:
    """PyTorch's own reset: U[-b, b] for Linear and convolutions, else the std it gave the scratch copy
    (or, for a deterministic reset, the scratch copy's values themselves)."""
    return _random(rec) or {"check": "as built", "distribution": "PyTorch default"}


#: Each distribution a manifest record can name -> what the audit expects of the tensor.
EXPECT: dict[str, Callable[[dict], dict | None]] = {
    "normal": _random,
    "uniform": _random,
    "truncated_normal": _random,
    "PyTorch default": _expect_default,
    "constant": lambda rec: {"check": "value", "value": float(rec.get("value", 0.0))},
    "orthogonal": lambda rec: {"check": "orthogonal", "gain": float(rec.get("gain", 1.0))},
    "delta_orthogonal": lambda rec: {"check": "delta_orthogonal", "gain": float(rec.get("gain", 1.0))},
    "identity": lambda rec: {"check": "identity", "gain": float(rec.get("gain", rec.get("value", 1.0)))},
    # ZerO is deterministic: the tensor must equal what the rule builds (the scratch copy's values)
    "zero": lambda rec: {"check": "as built", "distribution": "zero"},
}


def _expected_label(e: dict) -> Any:
    if e["check"] == "std":
        return e["std"]
    if e["check"] == "value":
        return e["value"]
    if e["check"] in ("orthogonal", "delta_orthogonal", "identity"):
        return f"{e['check']} x {significant(e['gain'])}"
    return e["check"]


def _key(e: dict) -> tuple:
    return tuple(sorted((k, round(v, 12) if isinstance(v, float) else v) for k, v in e.items()))


# ------------------------------------------------------------------------------------ measures
def _moments(values: torch.Tensor) -> tuple[int, float, float]:
    v = values.detach().double().reshape(-1)
    return v.numel(), float(v.sum()), float((v * v).sum())


def _std_of(n: int, s: float, ss: float) -> tuple[float, float]:
    mean = s / n
    var = max(ss - s * s / n, 0.0) / max(n - 1, 1)
    return math.sqrt(var), mean


def _std_ok(std: float, mean: float, n: int, e: dict, sigmas: float, floor: float) -> bool:
    tol = std_tolerance(e["std"], n, sigmas, floor)
    return abs(std - e["std"]) <= tol and abs(mean - e["mean"]) <= sigmas * e["std"] / math.sqrt(n) + floor * e["std"]


def _gram_error(w: torch.Tensor, gain: float) -> float:
    """max |G / gain^2 - I| over the smaller Gram matrix of ``w`` flattened to (rows, columns)."""
    m = w.detach().double().reshape(w.shape[0], -1)
    g = m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m
    if gain == 0:
        return float(g.abs().max())
    return float((g / gain ** 2 - torch.eye(g.shape[0], dtype=g.dtype, device=g.device)).abs().max())


def _exact_error(t: _Tensor, e: dict, scratch: _Tensor | None) -> tuple[float, float, Any]:
    """(error, tolerance, what was measured) of a deterministic check on one tensor."""
    x = t.values
    if e["check"] == "value":
        target = torch.full_like(x, e["value"])
        dev = (x.double() - target.double()).abs()
        worst = float(x.reshape(-1)[int(dev.argmax())]) if x.numel() else e["value"]
        return float((x != target).sum() > 0) * float(dev.max()), 0.0, worst
    eps = torch.finfo(x.dtype).eps if x.is_floating_point() else 0.0
    if e["check"] == "as built":
        ref = scratch.values.to(x.dtype) if scratch is not None else x
        err = float((x.double() - ref.double()).abs().max()) if x.numel() else 0.0
        return err, 0.0, f"off by {significant(err)}"
    if e["check"] == "identity":
        m = x.double().reshape(x.shape[0], -1)
        err = float((m - e["gain"] * torch.eye(*m.shape, dtype=m.dtype, device=m.device)).abs().max())
        tol = 10 * eps * max(abs(e["gain"]), 1.0)
        return err, tol, f"off by {significant(err)}"
    if e["check"] == "delta_orthogonal" and x.dim() > 2:
        centre = (slice(None), slice(None), *(k // 2 for k in x.shape[2:]))
        rest = x.detach().clone()
        rest[centre] = 0
        err = max(_gram_error(x[centre], e["gain"]), float(rest.abs().max()))
    else:
        err = _gram_error(x, e["gain"])
    tol = min(0.05, max(1e-4, 100 * eps * math.sqrt(min(x.shape[0], x[0].numel()))))
    return err, tol, f"off by {significant(err)}"


# ------------------------------------------------------------------------------------ the result
@dataclass
class AuditResult:
    """The audit of one model against one recipe (or scheme).

    ``groups``: one row per group of tensors (role x layer kind x tensor x expectation): the check
    (``std``, ``value``, ``orthogonal``, ``identity``...), expected, measured, tolerance, whether it
    passed, its tensors and those that failed. ``untouched``: failing tensors whose std is PyTorch's
    default instead. ``tied``: tensors under several names (see :func:`_tied`): the rule that drew each
    (``rule``, ``by``) and the other names' rules it did not get (``not_applied``, each measured in a
    group of its own role). ``uncovered``: tensors no rule covers (left as they were, with the reason).
    ``unchecked``: tensors whose distribution the audit has no check for. ``passed``: every group
    passed."""

    recipe: dict
    groups: list[dict]
    untouched: list[dict]
    tied: list[dict]
    uncovered: list[dict]
    unchecked: list[dict]
    sigmas: float
    floor: float

    @property
    def passed(self) -> bool:
        return all(g["passed"] for g in self.groups)

    @property
    def failures(self) -> list[str]:
        """One line per failing group, naming its failing tensors."""
        out = []
        for g in self.groups:
            if not g["passed"]:
                names = g["failing"] or g["tensors"]
                shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
                out.append(f"{g['role']} {g['layer']} {g['tensor']}: expected {significant(g['expected'])}, "
                           f"measured {significant(g['measured'])} (tolerance {significant(g['tolerance'])}): {shown}")
        return out

    def rows(self) -> list[dict]:
        return [{**{c: g.get(c) for c in COLUMNS}, "tensors": len(g["tensors"]),
                 "result": "pass" if g["passed"] else "FAIL"} for g in self.groups]

    def _notes(self) -> list[str]:
        lines = [f"FAIL {f}" for f in self.failures]
        lines += [f"untouched: {untouched_text(u)}" for u in self.untouched]
        lines += [f"tied: {tied_text(t)}" for t in self.tied]
        lines += [f"no rule: {uncovered_text(u)}" for u in self.uncovered]
        lines += [f"not checked: {unchecked_text(u)}" for u in self.unchecked]
        return lines

    def table(self) -> str:
        head = (f"audit of {label_of(self.recipe)}: " + ("every group passes" if self.passed else
                f"{sum(not g['passed'] for g in self.groups)} of {len(self.groups)} groups fail")
                + f" (std within {significant(self.sigmas)} standard errors + {significant(self.floor * 100)}%)")
        return "\n".join([head, text_table(COLUMNS, self.rows()), *self._notes()])

    __str__ = table

    def __repr__(self) -> str:
        state = "all pass" if self.passed else f"{sum(not g['passed'] for g in self.groups)} fail"
        return f"AuditResult({self.recipe['name']}: {len(self.groups)} groups, {state})"

    def _repr_html_(self) -> str:
        from .escaping import esc

        notes = "".join(f"<li>{esc(n)}</li>" for n in self._notes())
        return (f"<p><b>{esc(repr(self))}</b></p>" + html_table(COLUMNS, self.rows())
                + (f"<ul>{notes}</ul>" if notes else ""))

    def to_dict(self) -> dict:
        return json_safe({"recipe": self.recipe, "passed": self.passed, "groups": self.groups,
                          "failures": self.failures, "untouched": self.untouched, "tied": self.tied,
                          "uncovered": self.uncovered, "unchecked": self.unchecked,
                          "tolerance": {"sigmas": self.sigmas, "floor": self.floor}})


# ---------------------------------------------------------------------------------------- audit
def audit(model: nn.Module, recipe: Any, roles: Mapping | None = None, *, sigmas: float = 5.0,
          floor: float = 0.01, **params) -> AuditResult:
    """Check that ``model``'s tensors hold what ``recipe`` says each should get.

    Parameters
    ----------
    model : nn.Module
        The model as it is now (it is only read).
    recipe : str or dict
        A recipe (``"gpt2"``, ``"fixup"``...; see :data:`initlab.recipes.RECIPES`) or a per-tensor scheme,
        by name or as ``{"name": ..., "params": {...}}``.
    roles : dict, optional
        The recipe's role patterns, as for :func:`initlab.initialize` (``{"branch_out": "*.c_proj"}``).
    sigmas : float, default 5.0
        A random group passes when its sample std is within ``sigmas`` standard errors of the expected
        std s, plus ``floor``: |measured - s| <= sigmas * s / sqrt(2 (n - 1)) + floor * s, n the number of
        values (the normal's standard error; a uniform's is smaller, so the bound is loose for it). Its
        mean must be within sigmas * s / sqrt(n) + floor * s of the expected mean. Each tensor is
        checked alone by the same bound with its own n. Constants are checked exactly; orthogonal and
        identity rules to a tolerance of the dtype's rounding.
    floor : float, default 0.01
        The relative part of the tolerance.
    **params
        The recipe's parameters (``n_layer=12``, ``std=0.02``).

    Returns
    -------
    AuditResult
        ``.passed``, ``.table()``, ``.failures``, ``.to_dict()``.

    Examples
    --------
    >>> initlab.initialize(model, "gpt2", n_layer=12, seed=0)
    >>> initlab.audit(model, "gpt2", n_layer=12).passed
    True
    """
    if not isinstance(model, nn.Module):
        raise InitlabError(f"audit reads a model's tensors: give an nn.Module, not {type(model).__name__}.")
    for name, value in (("sigmas", sigmas), ("floor", floor)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
            raise InitlabError(f"audit's {name} is a number >= 0; got {name}={value!r}.")
    scratch = copy.deepcopy(model)
    manifest = initialize(scratch, recipe, roles=roles, seed=0, **params)
    spec = manifest.scheme
    alone, alone_manifest = _untied(model, manifest, recipe, roles, params)
    tied = _tied(manifest, alone_manifest)
    mine, theirs, uncovered, unchecked = [], {}, [], []
    _expect(model, scratch, manifest.entries, mine, theirs, uncovered, unchecked)
    missed = {(m["name"], m.get("block")) for t in tied for m in t.get("not_applied", [])}
    if missed:  # each tied name whose rule the tensor did not get: measured against that rule too
        _expect(model, alone, [e for e in alone_manifest.entries if (e["parameter"], e.get("block")) in missed],
                mine, theirs, uncovered, unchecked)
    uncovered += [{"tensor": e["parameter"], "reason": e["reason"]} for e in manifest.left]
    groups, untouched = _groups(model, mine, theirs, sigmas, floor)
    if any(e.get("distribution") == "mimetic" for e in manifest.entries):
        groups += _mimetic_groups(model, scratch, {**RECIPES["mimetic"].params, **spec["params"]}, sigmas, floor)
    return AuditResult(spec, groups, untouched, tied, uncovered, unchecked, float(sigmas), float(floor))


def _expect(model, scratch, entries, mine, theirs, uncovered, unchecked) -> None:
    """What each manifest entry says its tensor should hold: appended to ``mine`` (the model's tensor and
    its expectation), ``theirs`` (the scratch copy's tensor, by title), or ``uncovered``/``unchecked``."""
    for e in entries:
        if e.get("distribution") == "mimetic":
            continue  # checked as products of the attention's tensors: _mimetic_groups
        if e.get("distribution") == "left as it was":
            uncovered.append({"tensor": e["parameter"], "reason": e.get("reason")})
            continue
        t, s = _read(model, e), _read(scratch, e)
        expect = EXPECT.get(e.get("distribution"), lambda rec: None)(e)
        if expect is None:
            unchecked.append({"tensor": t.title, "distribution": e.get("distribution")})
            continue
        mine.append((t, expect))
        theirs[t.title] = s


def _read(model: nn.Module, e: dict) -> _Tensor:
    """The manifest entry's tensor in ``model``: its rows of the parameter, a padding row left out."""
    module_name, name = e.get("module") or "", e["parameter"]
    path = name[len(module_name) + 1:] if module_name else name
    module = model.get_submodule(module_name)
    values = L.read(module, path)
    rows = e.get("rows")
    if rows:
        values = values[rows[0]:rows[1]]
    pad = getattr(module, "padding_idx", None) if e.get("role") == "embedding" else None
    if pad is not None and values.dim() >= 1:
        values = torch.cat([values[:pad], values[pad + 1:]])
    return _Tensor(name, module_name, path, e.get("kind") or type(module).__name__, e.get("role") or "-",
                   e.get("recipe_role"), tuple(rows) if rows else None, e, values, e.get("block"))


def _groups(model, mine, theirs, sigmas, floor) -> tuple[list[dict], list[dict]]:
    by_key: dict[tuple, list] = {}
    for t, e in mine:
        by_key.setdefault((t.recipe_role or "base", t.kind, t.role, _key(e)), []).append((t, e))
    groups, untouched, defaults = [], [], {}
    for (role, kind, tensor, _), members in by_key.items():
        e = members[0][1]
        row = {"role": role, "layer": kind, "tensor": tensor, "check": e["check"], "expected": _expected_label(e),
               "tensors": [t.title for t, _ in members], "failing": []}
        if e["check"] == "std":
            n = s = ss = 0
            for t, _ in members:
                tn, ts, tss = _moments(t.values)
                n, s, ss = n + tn, s + ts, ss + tss
                t_std, t_mean = _std_of(tn, ts, tss)
                if not _std_ok(t_std, t_mean, tn, e, sigmas, floor):
                    row["failing"].append(t.title)
                    u = _untouched(model, t, t_std, e, sigmas, floor, defaults)
                    if u:
                        untouched.append(u)
            std, mean = _std_of(n, s, ss)
            row.update(n=n, measured=std, mean=mean, tolerance=std_tolerance(e["std"], n, sigmas, floor),
                       passed=_std_ok(std, mean, n, e, sigmas, floor) and not row["failing"])
        else:
            worst_err, worst, tol_all = -1.0, None, 0.0
            for t, _ in members:
                err, tol, measured = _exact_error(t, e, theirs.get(t.title))
                tol_all = max(tol_all, tol)
                if err > worst_err:
                    worst_err, worst = err, measured
                if err > tol:
                    row["failing"].append(t.title)
                    u = _untouched(model, t, None, e, sigmas, floor, defaults)
                    if u:
                        untouched.append(u)
            row.update(n=sum(t.values.numel() for t, _ in members), measured=worst, tolerance=tol_all,
                       passed=not row["failing"])
        groups.append(row)
    return groups, untouched


def _products(model: nn.Module, a) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Per head W_q W_k^T, and W_v W_proj, in the paper's row-vector convention, of one attention."""
    def rows(b):
        param, _, first = a.rows[b]
        return L.read(model, param).double()[first:first + a.d]

    q, k, v = rows("q"), rows("k"), rows("v")
    o = L.read(model, a.out[0]).double()
    kd = a.d // a.heads
    return [q[i * kd:(i + 1) * kd].T @ k[i * kd:(i + 1) * kd] for i in range(a.heads)], v.T @ o.T


def _diag_off(m: torch.Tensor) -> tuple[float, float]:
    off = m[~torch.eye(m.shape[0], dtype=torch.bool, device=m.device)]
    return float(m.diagonal().mean()), float(off.std())


def _mimetic_groups(model, scratch, p: dict, sigmas: float, floor: float) -> list[dict]:
    """Mimetic's products, per attention. W_v W_proj = alpha2 Z2 - beta2 I exactly, Z2 ~ N(0, 1/d): its
    diagonal's mean is -beta2 within sigmas * alpha2 / d, its off-diagonal std alpha2 / sqrt(d) within
    :func:`std_tolerance`. W_q W_k^T per head is a rank-head_dim truncation of alpha1 Z1 + beta1 I, whose
    statistics have no closed form: its heads' mean diagonal and off-diagonal std are compared with a
    reference drawn by the same rule (the scratch copy), within sigmas standard errors of the mean over
    heads plus 10%."""
    mine, ref = attentions(model, p["heads"]), {a.name: a for a in attentions(scratch, p["heads"])}
    rows = {key: {"role": role, "layer": "attention", "tensor": tensor, "check": "mimetic", "tensors": [],
                  "failing": [], "expected": [], "measured": [], "tolerance": [], "n": 0}
            for key, role, tensor in (("vo_diag", "value_out", "diag(W_v W_proj) mean"),
                                      ("vo_off", "value_out", "W_v W_proj off-diagonal std"),
                                      ("qk_diag", "query_key", "diag(W_q W_k^T) mean over heads"),
                                      ("qk_off", "query_key", "W_q W_k^T off-diagonal std over heads"))}
    for a in mine:
        qk, vo = _products(model, a)
        qk_ref, _ = _products(scratch, ref[a.name])
        d, h = a.d, a.heads
        diag, off = _diag_off(vo)
        s_off = p["alpha2"] / math.sqrt(d)
        checks = {"vo_diag": (-p["beta2"], diag, sigmas * p["alpha2"] / d + floor * abs(p["beta2"])),
                  "vo_off": (s_off, off, std_tolerance(s_off, d * d - d, sigmas, floor))}
        for key, stat in (("qk_diag", 0), ("qk_off", 1)):
            got = torch.tensor([_diag_off(m)[stat] for m in qk], dtype=torch.float64)
            want = torch.tensor([_diag_off(m)[stat] for m in qk_ref], dtype=torch.float64)
            spread = float(want.std()) if h > 1 else 0.0
            checks[key] = (float(want.mean()), float(got.mean()),
                           sigmas * spread / math.sqrt(h) + 0.1 * abs(float(want.mean())))
        for key, (want, got, tol) in checks.items():
            row = rows[key]
            row["tensors"].append(a.name or "(the model)")
            row["expected"].append(want)
            row["measured"].append(got)
            row["tolerance"].append(tol)
            row["n"] += d * d
            if not abs(got - want) <= tol:
                row["failing"].append(a.name or "(the model)")
    out = []
    for row in rows.values():
        worst = max(range(len(row["measured"])), key=lambda i: abs(row["measured"][i] - row["expected"][i]))
        out.append({**row, "expected": row["expected"][worst], "measured": row["measured"][worst],
                    "tolerance": row["tolerance"][worst], "passed": not row["failing"]})
    return out


def _untouched(model, t: _Tensor, std: float | None, e: dict, sigmas: float, floor: float, cache: dict) -> dict | None:
    """A failing tensor whose std is its layer's PyTorch default (U[-1/sqrt(fan_in), 1/sqrt(fan_in)] for
    Linear and convolutions, as ``default`` draws it), where that std differs from the recipe's."""
    if t.record.get("scheme") == "default" or t.values.numel() < 2:
        return None
    module = model.get_submodule(t.module)
    if L.adapter_for(module) is None:
        return None
    if t.module not in cache:
        cache[t.module] = default_values(module, 0, in_place=False)
    values = cache[t.module]
    if values is None or t.path not in values:
        return None
    ref = values[t.path] if t.rows is None else values[t.path][t.rows[0]:t.rows[1]]
    rec = default_record(module, L.Block(t.path, t.role), ref)
    d = _random({**rec, "distribution": "PyTorch default"})
    if d is None:
        return None
    n = t.values.numel()
    if std is None:
        std = _std_of(*_moments(t.values))[0]
    tol = std_tolerance(d["std"], n, sigmas, floor)
    expected = e.get("std", e.get("value", 0.0) if e["check"] == "value" else None)
    if abs(std - d["std"]) > tol or (expected is not None and abs(expected - d["std"]) <= tol):
        return None
    return {"tensor": t.title, "measured": std, "default_std": d["std"], "expected": _expected_label(e)}


#: A tied tensor's rule when no rule drew it.
LEFT = "left as it was"


def _untied(model, manifest, recipe, roles, params):
    """A copy of ``model`` in which every name the manifest shares with another (tied weights) holds a
    tensor of its own, initialized as the model was: what :func:`initialize` gives each name alone. None,
    None when nothing is tied. A name that is not a plain parameter (a parametrization) stays tied."""
    if not manifest.shared:
        return None, None
    alone = copy.deepcopy(model)
    for name in manifest.shared:
        module_name, _, attr = name.rpartition(".")
        module = alone.get_submodule(module_name)
        p = getattr(module, attr, None)
        if isinstance(p, nn.Parameter):
            setattr(module, attr, nn.Parameter(p.detach().clone(), requires_grad=p.requires_grad))
    return alone, initialize(alone, recipe, roles=roles, seed=0, **params)


def _rules_of(entries, name: str) -> dict:
    """block label -> the label of the rule that drew ``name`` (LEFT when an entry left it)."""
    return {e.get("block"): LEFT if e.get("distribution") == LEFT else label_of({"name": e["scheme"],
                                                                                "params": e.get("params") or {}})
            for e in entries if e["parameter"] == name}


def _tied(manifest, alone) -> list[dict]:
    """Tensors under several names, as :func:`initialize` drew them: once, by the rule of the name it met
    first (``by``, ``rule``), or by no rule (``rule`` is LEFT, with the ``reason``). ``alone`` (the
    manifest of the model with its ties broken, :func:`_untied`) gives what each other name's own rule
    is: ``not_applied`` lists those the tensor did not get (name, block, role, rule). ``roles``: the
    recipe's role of each name that has one."""
    owners: dict[str, list[str]] = {}
    for name, owner in manifest.shared.items():
        owners.setdefault(owner, [owner]).append(name)
    out = []
    for owner, names in owners.items():
        item: dict = {"tensor": owner, "names": names}
        by = next((n for n in names if _rules_of(manifest.entries, n)), None)
        drawn = _rules_of(manifest.entries, by) if by else {}
        labels = set(drawn.values())
        if by is None or labels == {LEFT}:
            left = next((e for e in manifest.left if e["parameter"] in names), {})
            item.update(rule=LEFT, by=None, reason=left.get("reason"))
        else:
            item.update(by=by, rule=labels.pop() if len(labels) == 1 else
                        "; ".join(f"{b}: {r}" for b, r in drawn.items()))
        if alone is not None:
            own = [e for e in alone.entries if e["parameter"] in names]
            roles = {e["parameter"]: e["recipe_role"] for e in own if e.get("recipe_role")}
            if roles:
                item["roles"] = roles
            missed = []
            for n in names:
                if n == by:
                    continue
                for block, rule in _rules_of(own, n).items():
                    got = drawn.get(block, drawn.get(None, LEFT) if len(drawn) <= 1 else LEFT)
                    if rule != LEFT and rule != got:
                        role = next(e.get("recipe_role") or "base" for e in own  # its group's role
                                    if e["parameter"] == n and e.get("block") == block)
                        missed.append({"name": n, "block": block, "role": role, "rule": rule})
            if missed:
                item["not_applied"] = missed
        out.append(item)
    return out


# ------------------------------------------------------------------------- sentences for people
def tied_text(t: dict) -> str:
    """One tied tensor (an item of :attr:`AuditResult.tied`) as a sentence."""
    head = f"{t.get('tensor')} = {', '.join((t.get('names') or [])[1:])}: one tensor"
    if "rule" not in t:  # written before the audit said which rule drew it
        return head + (f"; {t['note']}" if t.get("note") else "")
    missed = t.get("not_applied") or []
    if t["rule"] == LEFT:
        text = head + ", which no rule drew: " + LEFT + (f" ({t['reason']})" if t.get("reason") else "")
    else:
        text = head + f", drawn once by {t['by']}'s rule, {t['rule']}" + ("" if missed else ", and measured once")
    for m in missed:
        name = f"{m['name']}[{m['block']}]" if m.get("block") else m["name"]
        text += f"; NOT APPLIED: {name}'s rule ({m['role']}: {m['rule']}), which its {m['role']} group measures"
    return text


def untouched_text(u: dict) -> str:
    """A failing tensor that looks untouched (an item of :attr:`AuditResult.untouched`) as a sentence."""
    return (f"{u.get('tensor')} (std {significant(u.get('measured'))} is PyTorch's default "
            f"{significant(u.get('default_std'))}; the recipe says {significant(u.get('expected'))})")


def uncovered_text(u: dict) -> str:
    """A tensor no rule covers (an item of :attr:`AuditResult.uncovered`) as a sentence."""
    return f"{u.get('tensor')}" + (f" ({u['reason']})" if u.get("reason") else "")


def unchecked_text(u: dict) -> str:
    """A tensor the audit has no check for (an item of :attr:`AuditResult.unchecked`) as a sentence."""
    return f"{u.get('tensor')}: the audit has no check for its distribution, '{u.get('distribution')}'"
