"""The verdict on a diagnosis: code that judges the per-layer rows of :func:`initlab.diagnose`
(forward and backward trends along the depth, through time, symmetric, dead and saturated units) and
suggests a fix that is never the rule already in use. Tested on constructed cases, including those
where it must not fire."""

from __future__ import annotations

import math
import statistics

from .activations import ACTIVATIONS, UNKNOWN_SUGGESTED

#: A std more than this factor below (above) the first comparable layer's is vanishing (exploding).
FACTOR = 10.0
#: A residual stack of at least this many blocks whose stream's std grows more than STREAM_FACTOR from the
#: first block's output to the last's is a case for a depth recipe (each branch scaled by the depth).
STREAM_BLOCKS, STREAM_FACTOR = 8, 3.0
#: Recipes that scale residual branches by the depth: when one is in use, it is not suggested again.
DEPTH_RECIPES = ("gpt2", "fixup", "t_fixup", "deepnet", "skipinit", "zero_init_residual")
#: The flags a verdict raises, each with the test a hidden layer's row fails.
FLAG_TESTS = (("symmetric", lambda r: r["effective_width"] is not None and r["width"] > 1
               and r["effective_width"] <= r["width"] / 2
               # copies that part within a few updates (a zeroed layer, diagnose's look-ahead) are not a symmetric start
               and not r.get("parts_at_step")),
              ("dead", lambda r: (r["dead_fraction"] or 0) > 0.5),
              ("saturated", lambda r: (r["saturated_fraction"] or 0) > 0.5))


def _position(row: dict) -> str | None:
    """A layer's place within its repeated block: its name after the last index of a ModuleList or
    Sequential that is not the name's end (``h.3.attn.c_proj`` -> ``attn.c_proj``, ``layer2.1.conv2``
    -> ``conv2``, ``h.0.mlp.2`` -> ``mlp.2``: an index that ends the name is the layer's own place in a
    Sequential inside the block), or after the only index (``features.6`` -> ``""``); None when its
    name has no index."""
    parts = str(row.get("module") or row["name"]).split(".")
    idx = [i for i, p in enumerate(parts) if p.isdigit()]
    if not idx:
        return None
    inner = [i for i in idx if i < len(parts) - 1]
    return ".".join(parts[(inner or idx)[-1] + 1:])


def _series(rows: list[dict]) -> list[list[int]]:
    """Groups of rows whose stds can be compared along depth: the layers at one place in a repeated
    block (every block's ``attn.c_proj``, every block's ``conv2``, an nn.Sequential MLP's Linears), and
    the other hidden layers by kind (an MLP's fc1, fc2, fc3; a VGG's convolutions whatever their widths:
    a rule that keeps the variance keeps it across widths), in forward order. Comparing one place across
    blocks, never a block's layers with each other, keeps a residual branch's last layer (small by
    design under gpt2, fixup, zero_init_residual) from reading as a vanishing signal; attention rows
    stay apart from Linears, as attention averages over the sequence by construction. The readout (the
    last layer) is never in a group: its scale is set by its width, often one unit, not by the depth."""
    groups: dict[tuple, list[int]] = {}
    for i in range(len(rows) - 1):
        groups.setdefault((rows[i]["kind"], _position(rows[i])), []).append(i)
    merged: dict[tuple, list[int]] = {}
    for (kind, pos), idx in groups.items():  # a place met once is no series: back with its kind
        key = (kind, pos) if pos is not None and len(idx) >= 2 else (kind, None)
        merged.setdefault(key, []).extend(idx)
    return [sorted(g) for g in merged.values() if len(g) >= 2]


def _trend(values: list[float | None], idx: list[int], reverse: bool = False) -> dict:
    """'vanishing' or 'exploding' when a std in the group (read in the direction of travel) is FACTOR
    below or above the group's first; the layer where it first crossed, and the extreme ratio."""
    idx = [i for i in (idx[::-1] if reverse else idx) if values[i] is not None]
    ok = {"status": "ok", "layer": None, "ratio": None, "base": None, "extreme": None, "steps": 0}
    if len(idx) < 2 or not values[idx[0]]:
        return ok
    base = values[idx[0]]
    ratios = [(i, values[i] / base) for i in idx[1:]]
    hit = next(((i, r) for i, r in ratios if not math.isfinite(r) or r > FACTOR or r < 1 / FACTOR), None)
    if hit is None:
        return {**ok, "ratio": ratios[-1][1]}
    status = "exploding" if not math.isfinite(hit[1]) or hit[1] > FACTOR else "vanishing"
    pick = max if status == "exploding" else min
    ext_i, ext_r = pick(ratios, key=lambda t: t[1] if math.isfinite(t[1]) else math.inf)
    return {"status": status, "layer": hit[0], "ratio": ext_r, "base": idx[0], "extreme": ext_i,
            "steps": abs(idx.index(ext_i))}


def _worst(rows: list[dict], key: str, reverse: bool, skip: str | None = None) -> dict:
    """The worst trend of ``key`` over the series; rows whose module starts with ``skip`` (the blocks of a
    residual stack whose stream was measured) are left to the stream's judgement."""
    values = [r[key] for r in rows]
    series = _series(rows)
    if skip is not None:
        series = [[i for i in g if not str(rows[i].get("module") or rows[i]["name"]).startswith(skip)] for g in series]
        series = [g for g in series if len(g) >= 2]
    found = [_trend(values, g, reverse) for g in series]
    bad = [t for t in found if t["status"] != "ok"]
    if not bad:
        return found[0] if found else {**_trend(values, []), "judged": False}
    return max(bad, key=lambda t: abs(math.log(t["ratio"])) if t["ratio"] and math.isfinite(t["ratio"]) else math.inf)


def _through_time(rows: list[dict]) -> dict:
    """A recurrent layer whose first input step gets less than 1/FACTOR^2 of the gradient of its
    largest step (or more than FACTOR^2): the loss cannot reach back in time (or blows up)."""
    for r in rows:
        ratio = r.get("first_step_grad_ratio")
        if ratio is None or r.get("steps", 0) < 2:
            continue
        if ratio < 1 / FACTOR**2 or ratio > FACTOR**2:
            status = "vanishing" if ratio < 1 / FACTOR**2 else "exploding"
            fix = (r.get("recurrent_fix") or "initialize the recurrent weights orthogonal "
                   "(roles={'recurrent': 'orthogonal'}) and, for an LSTM, forget_bias=1.0")
            return {"status": status, "name": r["name"], "ratio": ratio, "steps": r["steps"], "fix": fix}
    return {"status": "ok"}


def _rule_in_use(rows: list[dict], activation: str) -> bool:
    """Whether the hidden layers' weights already follow the rule suggested for ``activation``:
    the median of sigma_w^2 = fan_in * Var(W) within 25% of what that rule gives."""
    target = ACTIVATIONS[activation].sigma_w2 if activation in ACTIVATIONS else None
    s = [r["sigma_w2"] for r in rows[:-1] if r.get("sigma_w2")]
    return target is not None and bool(s) and abs(statistics.median(s) / target - 1) <= 0.25


def verdict(rows: list[dict], activation: str = "unknown", scheme: str | None = None,
            stream: dict | None = None) -> dict:
    """Judge a diagnosis: forward and backward trends, symmetry, dead and saturated units, the residual
    stream (``stream``: :meth:`initlab.residual.ResidualStream.to_dict`, when measured), and a fix that
    is never the rule already in use."""
    skip = _stack(stream)
    fwd = _worst(rows, "preact_std", reverse=False, skip=skip)
    bwd = _worst(rows, "grad_std", reverse=True, skip=skip)
    for t in (fwd, bwd):
        _name_layers(t, rows)
    labels = [f"{t['status']} ({d})" for t, d in ((fwd, "forward"), (bwd, "backward")) if t["status"] != "ok"]
    flags = _flags(rows)
    labels += [key for key, name in flags.items() if name is not None]
    time = _through_time(rows)
    if time["status"] != "ok":
        labels.append(f"{time['status']} (through time)")
    unreached = [r["name"] for r in rows if r.get("grad_std") is None]
    if unreached:
        labels.append("gradient not measured")
    residual = _residual(stream, scheme)
    if residual["status"] != "ok":
        labels.append(f"{residual['status']} (residual stream)")
    if skip is not None:
        residual["gradient"] = _stream_gradient(stream)
        if residual["gradient"]["status"] != "ok":
            labels.append(f"{residual['gradient']['status']} (stream gradient)")
    suggestion = ACTIVATIONS[activation].suggested if activation in ACTIVATIONS else UNKNOWN_SUGGESTED
    right_rule = _rule_in_use(rows, activation) or (scheme is not None and scheme == suggestion)
    net = "network" if activation == "unknown" else f"{activation} network"
    who = f"this {net}" if not scheme else f"this {net} as built" if scheme == "as built" else f"this {net} with {scheme}"
    fix = _fix(activation, suggestion, right_rule)
    return {"labels": labels, "summary": ", ".join(labels) if labels else "ok", "forward": fwd, "backward": bwd,
            "through_time": time, "residual_stream": residual, "recipe": residual.get("recipe"),
            **{f"{k}_layer": v for k, v in flags.items()}, "suggestion": None if right_rule else suggestion,
            "unmeasured_gradient": unreached,
            "message": _message(who, fwd, bwd, time, flags, suggestion, fix, residual, unreached, len(rows))}


def _trend_fix(fix: str, residual: dict) -> str:
    """The fix for a trend along the depth: in a residual stack whose stream grows, the depth recipe
    (or why it is not the cause), which is what ``recipe`` names; else the scheme's ``fix``."""
    return residual["fix"] if residual["status"] != "ok" else fix


def _stack(stream: dict | None) -> str | None:
    """The name prefix of a measured residual stack's blocks (``"h."``; ``""``: the model is the stack),
    whose layers the stream judges along the depth instead of one another: inside a pre-norm block a
    layer's output is set by its norm and its gradient by the stream's scale at that block, so comparing
    one block's layers with another's reads the stream's growth twice, or a small start (GPT-2's
    embedding) as exploding gradients. None when no stack of STREAM_BLOCKS residual blocks was measured."""
    if not stream or not stream.get("residual") or len(stream.get("rows") or []) < STREAM_BLOCKS:
        return None
    return f"{stream['container']}." if stream.get("container") else ""


def _stream_gradient(stream: dict) -> dict:
    """The gradient along the stream: its std at the first block's input over its std at the last's,
    'exploding' above FACTOR, 'vanishing' below 1/FACTOR (measured when the stream's gradients were)."""
    grads = [r.get("grad_std") for r in stream["rows"]]
    if not grads or grads[0] is None or not grads[-1]:
        return {"status": "ok"}
    ratio = grads[0] / grads[-1]
    status = ("exploding" if not math.isfinite(ratio) or ratio > FACTOR else
              "vanishing" if ratio < 1 / FACTOR else "ok")
    return {"status": status, "ratio": ratio, "blocks": len(grads)}


def _residual(stream: dict | None, scheme: str | None) -> dict:
    """'growing' when a residual stack of at least STREAM_BLOCKS blocks has a stream whose std grows more
    than STREAM_FACTOR from the first block's output to the last's: each branch adds a variance that
    does not shrink with the depth, which is what the depth recipes fix (named, unless one is in use).
    Not when the branches' last layers are drawn smaller than their others by more than sqrt(L) in std
    (``branch_out_ratio`` < 1/sqrt(L), :func:`initlab.roles.branch_out_ratio`): a depth scaling is in use,
    whatever the scheme's name, and the growth is from a small start (a GPT-2's embedding), not depth."""
    if not stream or not stream.get("residual") or len(stream["rows"]) < STREAM_BLOCKS:
        return {"status": "ok"}
    rows = stream["rows"]
    growth, ratio = stream["growth"], stream.get("branch_out_ratio")
    if not (growth > STREAM_FACTOR):
        return {"status": "ok", "growth": growth, "blocks": len(rows), "branch_out_ratio": ratio}
    if ratio is not None and ratio < 1 / math.sqrt(len(rows)):
        # the branches' last layers are drawn smaller with the depth (gpt2, fixup): the stream's variance is
        # bounded in the depth, and what it grows from is a small start (GPT-2's embedding std 0.02)
        return {"status": "ok", "growth": growth, "blocks": len(rows), "branch_out_ratio": ratio,
                "note": f"from a small start, and not from the depth: each "
                        f"branch's last layer is drawn {1 / math.sqrt(ratio) if ratio else math.inf:.3g}x smaller "
                        f"than its others, a scaling by the depth that keeps what the branches add bounded"}
    in_use = scheme is not None and scheme.split("(")[0] in DEPTH_RECIPES
    return {"status": "growing", "growth": growth, "blocks": len(rows), "branch_out_ratio": ratio,
            "container": stream.get("container", ""),
            "first": rows[0]["stream_std"], "last": rows[-1]["stream_std"], "recipe": None if in_use else "gpt2",
            "fix": (f"{scheme} is in use already, so the recipe is not the cause: look at the branches' own layers"
                    if in_use else f"use initialize(model, 'gpt2', n_layer={len(rows)}) (or fixup), which scale each "
                    f"branch by the depth")}


def _name_layers(trend: dict, rows: list[dict]) -> None:
    """Name the trend's layers (``layer_name``...) and count them from 1, as a person counts layers."""
    for k in ("layer", "base", "extreme"):
        if trend.get(k) is not None:
            trend[f"{k}_name"] = f"{rows[trend[k]]['kind']} '{rows[trend[k]]['name']}'"
            trend[k] += 1


def _flags(rows: list[dict]) -> dict[str, str | None]:
    """For each flag of :data:`FLAG_TESTS`, the first hidden layer that raises it (None: none does)."""
    flags = {}
    for key, test in FLAG_TESTS:
        hit = next((i for i, r in enumerate(rows[:-1] if len(rows) > 1 else rows) if test(r)), None)
        flags[key] = None if hit is None else rows[hit]["name"]
    return flags


def _fix(activation: str, suggestion: str, right_rule: bool) -> str:
    """The fix to suggest: the rule for the activation, or, when it is in use already, not the scheme."""
    architecture = "look at the depth, pooling, or add normalization or residual connections"
    if right_rule and activation in ACTIVATIONS:
        return (f"the weights already follow {suggestion}'s rule (fan_in * Var(W) = "
                f"{ACTIVATIONS[activation].sigma_w2:g}), so the scheme is not the cause: {architecture}")
    if right_rule:
        return f"the model was already initialized with {suggestion}, so the scheme is not the cause: {architecture}"
    return f"use {suggestion}"


def _message(who: str, fwd: dict, bwd: dict, time: dict, flags: dict, suggestion: str, fix: str,
             residual: dict, unreached: list[str] = (), layers: int = 0) -> str:
    """The verdict in one sentence: the first problem found (forward, backward, through time, the
    residual stream, symmetry, dead or saturated units), or that there is none."""
    trend_fix = _trend_fix(fix, residual)
    if fwd["status"] != "ok":
        r = fwd["ratio"]
        per = r ** (2 / max(fwd["steps"], 1)) if r and math.isfinite(r) else math.inf
        change = "shrinks" if fwd["status"] == "vanishing" else "grows"
        return (f"{who}: activation variance {change} by a factor {per:.2g} per layer, the std at layer "
                f"{fwd['extreme']} ({fwd['extreme_name']}) is {r:.2g} of layer {fwd['base']} "
                f"({fwd['base_name']}); {trend_fix}")
    if bwd["status"] != "ok":
        return (f"{who}: the gradient std at layer {bwd['extreme']} ({bwd['extreme_name']}) is "
                f"{bwd['ratio']:.2g} of layer {bwd['base']} ({bwd['base_name']}), {bwd['status']} toward the "
                f"input; {trend_fix}")
    if time["status"] != "ok":
        return (f"{who}: the gradient reaching the first of {time['steps']} steps of '{time['name']}' is "
                f"{time['ratio']:.2g} of the largest step's, {time['status']} through time; {time['fix']}")
    if residual["status"] != "ok":
        where = f" of '{residual['container']}'" if residual["container"] else ""
        return (f"{who}: the residual stream's std grows {residual['growth']:.2g}x over {residual['blocks']} blocks"
                f"{where} ({residual['first']:.2g} after block 1, {residual['last']:.2g} after block "
                f"{residual['blocks']}): each block adds a branch whose variance does not shrink with the depth; "
                f"{residual['fix']}")
    grad = residual.get("gradient") or {"status": "ok"}
    if grad["status"] != "ok":
        return (f"{who}: the gradient along the residual stream is {grad['ratio']:.2g}x larger at the first "
                f"block's input than at the last's ({grad['blocks']} blocks), {grad['status']} toward the input; "
                f"{trend_fix}")
    if flags["symmetric"]:
        return (f"{who}: units of layer '{flags['symmetric']}' are copies of each other (a constant or "
                f"repeated initialization); use a random scheme ({suggestion})")
    if flags["dead"] or flags["saturated"]:
        which = "dead" if flags["dead"] else "saturated"
        return f"{who}: most units of layer '{flags[which]}' are {which}; {fix}"
    if unreached:
        return (f"{who}: the forward std stays within {FACTOR:g}x, but no gradient reached {len(unreached)} of "
                f"{layers} layers (first '{unreached[0]}'), so the backward pass was not judged there: a layer "
                f"whose output does not reach the loss, or a forward run without autograd, as a reentrant "
                f"torch.utils.checkpoint runs it (use use_reentrant=False to measure it)")
    if "gradient" in residual:
        why = residual.get("note") or f"under the {STREAM_FACTOR:g}x that would call for a depth recipe"
        return (f"{who}: the residual stream's std grows {residual['growth']:.2g}x over its {residual['blocks']} "
                f"blocks ({why}), and its gradient and the layers outside the blocks stay within {FACTOR:g}x")
    if fwd.get("judged") is False:
        return (f"{who}: no two hidden layers of one kind to compare, so no trend along the depth was judged; "
                f"nothing else is wrong")
    return f"{who}: forward and backward std stay within {FACTOR:g}x along the depth"
