"""The import graph of initlab: no cycle, and no import from a lower floor to a higher one.

Every import counts, at the top of a module or inside a function. ``from . import X`` where X is a
submodule imports X (the package's ``__init__`` has run already, as for any submodule); ``from
initlab import name`` of a name that is not a module imports the package itself, which sits on the
top floor. The floors are written out below: a new module joins one, and an arrow down the list
(a lower floor importing a higher one) fails here.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "src" / "initlab"

#: The floors, lowest first. A module may import its own floor (without a cycle) and those below it.
FLOORS = [
    ("ground", ["_version", "errors", "jsonsafe", "escaping", "tables", "metrics", "activations", "optimizers",
                "plugins", "report.text"]),
    ("core", ["config", "schemes", "datasets", "layers", "models", "checks", "outputs", "symmetry", "stack",
              "losses"]),
    ("init", ["manifest", "draws", "roles", "recipes", "init", "theory", "probe", "watchstats", "train", "ensemble", "residual",
              "watch"]),
    ("runs", ["signal", "ntk", "widths", "verdict", "diagnose", "lsuv", "experiment", "store", "results", "executors", "grid", "sweep",
              "trainability", "rerun", "audit", "lightning"]),
    ("plots", ["plots.signal", "plots", "plots.base", "plots.chapter", "plots.diagnosis", "plots.residual", "plots.sweep",
               "plots.theory", "plots.watch"]),
    ("report", ["report.signal", "report", "report.base", "report.experiment", "report.diagnosis", "report.sweep",
                "report.audit", "report.watch", "report.dispatch"]),
    ("apps", ["demo", "watchdemo", "playground", "playground.app", "playground.guard", "playground.session",
              "playground.settings", "playground.stepper", "playground.upload", "playground.export"]),
    ("cli", ["cli.signal", "cli", "cli.base", "cli.run", "cli.diagnose", "cli.theory", "cli.sweep", "cli.report",
             "cli.playground", "cli.audit", "cli.watch", "__main__", ""]),
]
#: Packages whose parts import their shared base (and the ground floor's words), never each other;
#: only the package's front (``cli/__init__.py``, ``report/dispatch.py``) gathers the parts.
PARTS = {"cli": {"base"}, "report": {"base", "text"}}
FRONTS = {"cli": {""}, "report": {"", "dispatch"}}


def modules() -> dict[str, Path]:
    """Every module of the package by its dotted name under ``initlab`` ("" is the package itself)."""
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The initlab modules that module ``name`` imports, anywhere in it."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and (node.module == "initlab" or node.module.startswith("initlab.")):
                target = node.module[len("initlab."):] if node.module != "initlab" else ""
            else:
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}".lstrip(".")
                found.add(sub if sub in known else target)  # a submodule, else a name of the module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "initlab" or alias.name.startswith("initlab."):
                    found.add(alias.name[len("initlab."):] if alias.name != "initlab" else "")
    return {m for m in found if m in known and m != name}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in edges.get(v, ()):
                out.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def floor_of() -> dict[str, int]:
    return {m: i for i, (_, names) in enumerate(FLOORS) for m in names}


def test_the_scan_sees_imports_at_the_top_and_inside_functions():
    edges = graph()
    assert "cli.base" in edges["cli.run"] and "errors" in edges["schemes"]  # at the top
    assert "plots" in edges["cli.diagnose"] and "diagnose" in edges["lsuv"]  # inside a function
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_module_is_on_a_floor():
    floors = floor_of()
    assert sorted(set(modules()) - set(floors)) == [], "add the new module to a floor in FLOORS"
    assert sorted(set(floors) - set(modules())) == [], "a module in FLOORS no longer exists"


def test_no_import_cycle():
    assert cycles(graph()) == []


def test_no_import_from_a_lower_floor_to_a_higher_one():
    floors = floor_of()
    test_every_module_is_on_a_floor()
    up = [f"{a or 'initlab'} ({FLOORS[floors[a]][0]}) imports {b or 'initlab'} ({FLOORS[floors[b]][0]})"
          for a, targets in graph().items() for b in targets if floors[b] > floors[a]]
    assert up == []


def test_the_parts_of_cli_and_report_import_their_base_never_each_other():
    crossings = []
    for name, targets in graph().items():
        package, _, part = name.partition(".")
        if package in PARTS and part not in FRONTS[package] and part not in PARTS[package]:
            crossings += [f"{name} -> {t}" for t in targets
                          if t.startswith(package + ".") and t.partition(".")[2] not in PARTS[package]]
    assert crossings == []


def _loaded_after(code: str) -> dict:
    probe = (f"import sys, runpy\n{code}\n"
             "import json; print(json.dumps({k: any(m == k or m.startswith(k + '.') for m in sys.modules)"
             " for k in ('torch', 'sklearn', 'matplotlib', 'initlab.plots', 'initlab.experiment')}))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_help_loads_neither_torch_nor_sklearn():
    code = ("sys.argv = ['initlab', '--help']\n"
            "try:\n    runpy.run_module('initlab', run_name='__main__')\nexcept SystemExit as e:\n"
            "    assert e.code in (0, None), e.code")
    loaded = _loaded_after(code)
    assert not loaded["torch"] and not loaded["sklearn"] and not loaded["matplotlib"], loaded


def test_importing_the_package_or_the_words_of_the_pages_loads_no_library():
    assert not any(_loaded_after("import initlab").values())
    assert not any(_loaded_after("import initlab.report.text").values())


def test_no_module_imports_a_name_the_package_shadows_with_a_function():
    """``initlab.schemes``, ``initlab.train``, ``initlab.recipes`` ... are functions; inside the package,
    ``from . import schemes`` would get the function, not the module. Import names from the module."""
    import initlab

    shadowed = initlab._SHADOWED
    bad = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module is None \
                    and path.parent == ROOT:
                bad += [f"{path.name}: from . import {a.name}" for a in node.names if a.name in shadowed]
    assert bad == []
