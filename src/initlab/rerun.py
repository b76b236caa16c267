"""The command that reruns a stored sweep: from the runs in a results store back to ``initlab sweep``
flags, a ``--preset``, or a sweep file, each checked to build exactly the stored runs. The sweep page
prints it; a rerun skips the runs already stored, so the same command completes an interrupted sweep.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import tomllib
from collections import Counter
from pathlib import Path

from .errors import InitlabError
from .store import run_id

_WORD = re.compile(r"[A-Za-z_][\w.-]*")


def _flag_value(v) -> str | None:
    """``v`` as the sweep command's flags read it back unchanged, or None when they would not."""
    if v is None:
        return "full"
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return repr(v) if math.isfinite(v) else None
    return v if isinstance(v, str) and _WORD.fullmatch(v) and v != "full" else None


def _toml_value(v) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if v is None:
        return '"full"'
    if isinstance(v, bool):
        return "true" if v else "false"
    return json.dumps(v) if isinstance(v, str) else repr(v)


def _runs_of(settings: dict) -> set[str] | None:
    from .sweep import build

    def fail(key, message, _index):
        raise InitlabError(message)
    try:
        return {run_id(r) for r in build(settings, fail).runs()}
    except InitlabError:
        return None


def rerun_command(df, folder: Path) -> str | None:
    """The command that reruns the sweep stored in ``df`` into ``folder`` (the runs already stored are
    skipped, so it also completes an interrupted sweep): a ``--preset`` when the runs are a preset's,
    else the flags, else a sweep file written by a shell here-document. Each is checked: the sweep it
    builds has exactly the stored runs. None when no one grid holds them (several sweeps wrote there)."""
    from .grid import DEFAULTS
    from .schemes import get

    stored = set(df["run_id"])
    names = Counter(n for n in df.get("sweep", []) if isinstance(n, str))
    name = names.most_common(1)[0][0] if names else "sweep"
    out = f"--out {shlex.quote(str(folder))}"
    preset = _preset_command(stored, name, out)
    if preset is not None:
        return preset
    configs = list(df["config"])
    specs = list({json.dumps(c["scheme"], sort_keys=True): c["scheme"] for c in configs}.values())
    axes = {k: sorted({c.get(k, DEFAULTS[k]) for c in configs}, key=lambda v: (v is None, str(type(v)), v or 0))
            for k in DEFAULTS}
    axes = {k: v for k, v in axes.items() if v != [DEFAULTS[k]]}
    seeds = sorted({c["seed"] for c in configs})
    scheme_names = list(dict.fromkeys(s["name"] for s in specs))
    try:
        found = [get(n) for n in scheme_names]
    except InitlabError:  # a scheme this version does not know: no flags, and no file, build it
        return None
    flags = _flags_command(stored, name, out, specs, list(zip(scheme_names, found)), axes, seeds)
    return flags if flags is not None else _file_command(stored, name, out, specs, axes, seeds)


def _preset_command(stored: set, name: str, out: str) -> str | None:
    """``initlab sweep --preset trainability --size S`` when the stored runs are exactly a preset's."""
    from .trainability import SIZES, preset

    for size in SIZES:
        settings = preset(size)
        if _runs_of(settings) == stored:
            named = "" if name == settings["name"] else f" --name {shlex.quote(name)}"
            return f"initlab sweep --preset trainability --size {size}{named} {out}"
    return None


def _flags_command(stored: set, name: str, out: str, specs: list, found: list[tuple], axes: dict,
                   seeds: list) -> str | None:
    """The flags' form, when flags can say it: ``--param KEY=V1,V2`` gives every scheme that takes KEY
    all its values, so it holds only when that grid is exactly what is stored."""
    from .schemes import BIAS_PARAMS

    grids: dict[str, set] = {}
    for s in specs:
        for k, v in s["params"].items():
            grids.setdefault(k, set()).add(v)
    try:
        grids_sorted = {k: sorted(v) for k, v in grids.items()}
    except TypeError:
        return None
    names = [n for n, _ in found]
    if not all(_WORD.fullmatch(n) for n in names):
        return None
    entries = []
    for n, scheme in found:
        accepted = set(scheme.params()) | (set(BIAS_PARAMS) if scheme.fn is not None else set())
        entries.append({"name": n, **{k: v for k, v in grids_sorted.items() if k in accepted}})
    texts = [[_flag_value(v) for v in values] for values in [*axes.values(), *grids_sorted.values()]]
    settings = {"name": name, **axes, "seeds": seeds, "scheme": entries}
    if not all(t is not None for values in texts for t in values) or _runs_of(settings) != stored:
        return None
    words = ["initlab", "sweep", "--name", name, "--scheme", ",".join(names)]
    for k, values in grids_sorted.items():
        words += ["--param", f"{k}={','.join(_flag_value(v) for v in values)}"]
    for k, values in axes.items():
        words += [f"--{k.replace('_', '-')}", ",".join(_flag_value(v) for v in values)]
    counted = seeds == list(range(len(seeds)))
    words += ["--seeds", str(len(seeds)) if counted else ",".join(map(str, seeds)) + ("," * (len(seeds) == 1))]
    return " ".join(shlex.quote(w) for w in words) + f" {out}"


def _file_command(stored: set, name: str, out: str, specs: list, axes: dict, seeds: list) -> str | None:
    """A sweep file, one ``[[scheme]]`` table per scheme as stored, written by a here-document."""
    lines = [f"name = {_toml_value(name)}", *(f"{k} = {_toml_value(v)}" for k, v in axes.items()),
             f"seeds = {_toml_value(seeds)}"]
    for s in specs:
        lines += ["", "[[scheme]]", f"name = {_toml_value(s['name'])}",
                  *(f"{k} = {_toml_value(v)}" for k, v in s["params"].items())]
    text = "\n".join(lines)
    try:
        settings = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return None
    if _runs_of(settings) != stored:
        return None
    file = f"{name}.toml"
    return f"cat > {shlex.quote(file)} <<'EOF'\n{text}\nEOF\ninitlab sweep {shlex.quote(file)} {out}"
