""":class:`Manifest`: what :func:`initlab.initialize` did to every parameter of a model (drawn by which
rule, left as it was and why, or shared with which other name), as a table, JSON and HTML."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Manifest:
    """What :func:`initialize` did to every parameter of the model.

    ``entries``: one per tensor drawn (a parameter, or a block of one: Q, K, V, an LSTM gate), with the
    scheme, distribution, bound or std, fans and gain. ``left``: one per parameter left as it was, with
    the reason. ``shared``: names that are the same tensor as an earlier one (tied weights), drawn once.
    ``to_json()`` holds the scheme, parameters, overrides, roles and seed, so
    ``initialize(model, **Manifest.replay_args(json))`` draws the same parameters again."""

    scheme: dict
    seed: int
    overrides: dict = field(default_factory=dict)
    roles: dict = field(default_factory=dict)
    entries: list[dict] = field(default_factory=list)
    left: list[dict] = field(default_factory=list)
    shared: dict[str, str] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)  # every parameter name, as named_parameters() lists them
    recipe: dict = field(default_factory=dict)  # a recipe's roles found, notes and report (DeepNet's alpha)

    def to_dict(self) -> dict:
        return {"scheme": self.scheme, "seed": self.seed, "overrides": self.overrides, "roles": self.roles,
                "entries": self.entries, "left": self.left, "shared": self.shared,
                **({"recipe": self.recipe} if self.recipe else {})}

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **{"indent": 2, **kwargs})

    @staticmethod
    def replay_args(manifest: dict | str) -> dict:
        """Keyword arguments that make :func:`initialize` repeat a stored manifest exactly."""
        d = json.loads(manifest) if isinstance(manifest, str) else manifest
        return {"scheme": d["scheme"], "seed": d["seed"], "overrides": d.get("overrides") or None,
                "roles": d.get("roles") or None}

    def accounting(self) -> dict[str, str]:
        """Every parameter name of the model -> what happened to it, in one line each."""
        out: dict[str, str] = {}
        for e in self.entries:
            for name in e.get("stored_in") or [e["parameter"]]:
                out.setdefault(name, f"initialized: {e['scheme']} ({e.get('distribution')})")
        for e in self.left:
            for name in e.get("stored_in") or [e["parameter"]]:
                out.setdefault(name, f"left as it was: {e['reason']}")
        for name, owner in self.shared.items():
            out[name] = f"shared with {owner}: {out.get(owner, 'see it')}"
        return {n: out.get(n, "not accounted") for n in self.names} if self.names else out

    def table(self) -> str:
        """The manifest as a plain-text table: one row per tensor drawn, then what was left or shared."""
        cols = ["parameter", "block", "shape", "scheme", "distribution", "value", "bound", "std", "fan_in", "fan_out",
                "gain"] + (["recipe_role"] if any(e.get("recipe_role") for e in self.entries) else [])
        blank = [""] * (len(cols) - 5)
        rows = [[_fmt(e.get(c)) for c in cols] for e in self.entries]
        rows += [[e["parameter"], "", _fmt(e.get("shape")), "left", e["reason"], *blank] for e in self.left]
        rows += [[n, "", "", "shared", f"the same tensor as {o}", *blank] for n, o in self.shared.items()]
        widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(cols)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
        lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
        return "\n".join(lines)

    __str__ = table

    def __repr__(self) -> str:
        return (f"Manifest({self.scheme['name']}, seed {self.seed}: {len(self.entries)} tensors drawn, "
                f"{len(self.left)} left as they were, {len(self.shared)} shared)")

    def _repr_html_(self) -> str:
        from html import escape

        cols = ["parameter", "block", "shape", "scheme", "distribution", "bound", "std", "fan_in", "fan_out"]
        head = "".join(f"<th>{c}</th>" for c in cols)
        body = "".join("<tr>" + "".join(f"<td>{escape(_fmt(e.get(c)))}</td>" for c in cols) + "</tr>"
                       for e in self.entries)
        body += "".join(f"<tr><td>{escape(e['parameter'])}</td><td></td><td>{escape(_fmt(e.get('shape')))}</td>"
                        f"<td>left</td><td colspan='5'>{escape(e['reason'])}</td></tr>" for e in self.left)
        body += "".join(f"<tr><td>{escape(n)}</td><td></td><td></td><td>shared</td><td colspan='5'>the same tensor "
                        f"as {escape(o)}</td></tr>" for n, o in self.shared.items())
        return f"<p><b>{escape(repr(self))}</b></p><table><tr>{head}</tr>{body}</table>"


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return "x".join(map(str, v))
    return str(v)
