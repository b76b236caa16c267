"""Every file format initlab writes, in one place: each has a ``kind`` and a schema version, a writer
and a checked reader.

========================  ==========================  ============  ======================================
format                    main file                   version       written by
========================  ==========================  ============  ======================================
experiment (demo, train)  ``results.json``            2 (reads 1)   :func:`write_results` (``experiment.save``)
diagnose folder           ``diagnoses.json``          1             :func:`write_diagnoses`
trainability result       ``trainability.json``       1             :func:`write_trainability`
audit folder              ``audit.json``              1             :func:`write_audit`
signal folder             ``signal.json``             1             :func:`write_signal`
watch record              ``watch.json``              1             :func:`write_watch` (``Watch.save``)
results store             ``runs.db`` (SQLite)        2 (reads 1)   :class:`initlab.store.Store`
playground run record     a JSON download             2             :func:`initlab.playground.export.record`
========================  ==========================  ============  ======================================

The results store's format name and version live here too (:data:`STORE_FORMAT`,
:data:`STORE_VERSION`); its migration is in :mod:`initlab.store`. The files each folder holds are
:data:`FILES`; the CLI writes none of them itself, and the pages read them with the checks below.

The reader of each file checks it on load: ``results.json`` of a demo or train
folder, ``diagnoses.json`` of a diagnose folder. A file that does not hold what its format says (a
string where a step number goes, an accuracy of 7) is refused with one line naming the file, the
field and the value, before any page or figure is made from it.

Each check is a plain function over the parsed JSON; ``where`` is the dotted path of the field
(``results[0].diverged_step``) that the error names.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from .errors import InitlabError

#: The ``kind`` of an output folder initlab wrote: a folder holding one may be rewritten by initlab.
KINDS = ("demo", "train")
#: The results store's format name and schema version (see :mod:`initlab.store`).
STORE_FORMAT, STORE_VERSION = "initlab results store", 2
DIAGNOSES_VERSION = TRAINABILITY_VERSION = AUDIT_VERSION = 1
SIGNAL_VERSION = 1
WATCH_VERSION = 1
#: The playground's run record (its "export the run as JSON"): kind and schema version.
PLAYGROUND_RECORD_KIND, PLAYGROUND_RECORD_VERSION = "initlab playground record", 2  # 2: each run's "watch"
#: The files each kind of output folder holds (the first one marks it; see :func:`is_initlab_folder`).
FILES = {
    "experiment": ("results.json", "arrays.npz", "index.html",
                   *(f"{name}.{ext}" for name in ("contours", "curves", "scale", "symmetry") for ext in ("png", "svg"))),
    "diagnose": ("diagnoses.json", "diagnose.png", "diagnose.svg"),
    "trainability": ("trainability.json", "trainability.png", "trainability.svg"),
    "audit": ("audit.json", "index.html"),
    "signal": ("signal.json", "index.html", "spectra.png", "correlation.png"),
    "watch": ("watch.json", "index.html"),
}
#: The roles the demo's page reads, one result each.
DEMO_ROLES = ("symmetry", "default", "exercise", "variance", "vanishing", "exploding")
SIGNALS = ("none", "weak", "clear")


def _bad(file, where: str, what: str, value) -> InitlabError:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return InitlabError(f"'{file}' is not a valid initlab file: {where} must be {what}; got {shown}.")


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def number(file, where, v, low=-math.inf, high=math.inf, optional=False):
    if v is None and optional:
        return
    if not _number(v) or not low <= v <= high:
        span = "" if (low, high) == (-math.inf, math.inf) else (
            f" at least {low:g}" if high == math.inf else f" from {low:g} to {high:g}")
        raise _bad(file, where, f"a finite number{span}" + (" or null" if optional else ""), v)


def integer(file, where, v, low=0, optional=False):
    if v is None and optional:
        return
    if not isinstance(v, int) or isinstance(v, bool) or v < low:
        raise _bad(file, where, f"a whole number of at least {low}" + (" or null" if optional else ""), v)


def text(file, where, v, optional=False):
    if v is None and optional:
        return
    if not isinstance(v, str):
        raise _bad(file, where, "a string" + (" or null" if optional else ""), v)


def mapping(file, where, v, optional=False) -> dict:
    if v is None and optional:
        return {}
    if not isinstance(v, dict):
        raise _bad(file, where, "an object" + (" or null" if optional else ""), v)
    return v


def sequence(file, where, v, optional=False, nonempty=False) -> list:
    if v is None and optional:
        return []
    if not isinstance(v, list) or (nonempty and not v):
        raise _bad(file, where, ("a non-empty list" if nonempty else "a list") + (" or null" if optional else ""), v)
    return v


def numbers(file, where, v, optional_items=True):
    """A list of numbers (null allowed where ``optional_items``), or a list of such lists."""
    for i, x in enumerate(sequence(file, where, v)):
        if isinstance(x, list):
            numbers(file, f"{where}[{i}]", x, optional_items)
        else:
            number(file, f"{where}[{i}]", x, optional=optional_items)


def _scalar(file, where, v):
    if v is not None and not isinstance(v, (str, bool)) and not _number(v):
        raise _bad(file, where, "a string, a number, true, false or null", v)


# --------------------------------------------------------------------------------------------------
# results.json

def check_config(file, c) -> None:
    mapping(file, "config", c)
    for key in ("dataset", "activation", "optimizer", "dtype"):
        text(file, f"config.{key}", c.get(key))
    for key in ("n", "steps"):
        integer(file, f"config.{key}", c.get(key), low=1)
    number(file, "config.noise", c.get("noise"), low=0)
    number(file, "config.lr", c.get("lr"), low=0)
    if "hidden" in c or "depth" not in c:
        for i, w in enumerate(sequence(file, "config.hidden", c.get("hidden"), nonempty=True)):
            integer(file, f"config.hidden[{i}]", w, low=1)
    else:
        integer(file, "config.depth", c.get("depth"), low=1)
        integer(file, "config.width", c.get("width"), low=1)


def check_row(file, where, r) -> None:
    mapping(file, where, r)
    text(file, f"{where}.scheme", r.get("scheme"))
    text(file, f"{where}.role", r.get("role"), optional=True)
    spec = mapping(file, f"{where}.spec", r.get("spec"))
    text(file, f"{where}.spec.name", spec.get("name"))
    for k, v in mapping(file, f"{where}.spec.params", spec.get("params")).items():
        _scalar(file, f"{where}.spec.params.{k}", v)
    for key in ("train_accuracy", "test_accuracy"):
        number(file, f"{where}.{key}", r.get(key), 0, 1, optional=True)
    number(file, f"{where}.final_loss", r.get("final_loss"), low=0, optional=True)
    integer(file, f"{where}.steps_to_90", r.get("steps_to_90"), optional=True)
    if not isinstance(r.get("diverged"), bool):
        raise _bad(file, f"{where}.diverged", "true or false", r.get("diverged"))
    integer(file, f"{where}.diverged_step", r.get("diverged_step"), optional=not r["diverged"])
    widths = sequence(file, f"{where}.width", r.get("width"), nonempty=True)
    for i, w in enumerate(widths):
        integer(file, f"{where}.width[{i}]", w, low=1)
    effective = sequence(file, f"{where}.effective_width", r.get("effective_width"), optional=True)
    for i, w in enumerate(effective):
        integer(file, f"{where}.effective_width[{i}]", w)
    signal = mapping(file, f"{where}.output_signal", r.get("output_signal"), optional=True)
    if signal:
        if signal.get("signal") not in SIGNALS:
            raise _bad(file, f"{where}.output_signal.signal", f"one of {', '.join(SIGNALS)}", signal.get("signal"))
        for key in ("p_min", "p_max"):
            number(file, f"{where}.output_signal.{key}", signal.get(key), 0, 1)


#: results.json's schema versions this initlab reads: 1 (no ``schema_version`` key; tracked
#: statistics named ``act_std`` and ``grad_norm``) and 2 (``preact_std`` and ``weight_grad_norm``,
#: the probe's names; the config as :class:`initlab.config.RunConfig` writes it).
RESULTS_VERSION = 2
_TRACKED_V1 = {"act_std": "preact_std", "grad_norm": "weight_grad_norm"}


def _upgrade_results(doc: dict, file) -> dict:
    """A results.json of an older schema in today's names (additive: nothing is lost)."""
    version = doc.get("schema_version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _bad(file, "schema_version", "a whole number >= 1", version)
    if version > RESULTS_VERSION:
        raise InitlabError(f"{file}: schema_version {version} was written by a newer initlab (this one reads up "
                           f"to {RESULTS_VERSION}): upgrade initlab to read it.")
    if version == 1:
        for t in (doc.get("tracked") or {}).values():
            if isinstance(t, dict):
                for old, new in _TRACKED_V1.items():
                    if old in t and new not in t:
                        t[new] = t.pop(old)
        doc["schema_version"] = RESULTS_VERSION
    return doc


def check_results(doc, file: str | Path = "results.json") -> dict:
    """Check a parsed ``results.json`` of a demo or train folder (upgraded from an older schema);
    returns it, or raises one line."""
    mapping(file, "the file", doc)
    doc = _upgrade_results(doc, file)
    kind = doc.get("kind", "train")
    if kind not in KINDS:
        raise _bad(file, "kind", f"one of {', '.join(KINDS)}", kind)
    check_config(file, doc.get("config"))
    text(file, "command", doc.get("command", ""))
    for k, v in mapping(file, "environment", doc.get("environment"), optional=True).items():
        text(file, f"environment.{k}", v)
    rows = sequence(file, "results", doc.get("results"), nonempty=True)
    for i, r in enumerate(rows):
        check_row(file, f"results[{i}]", r)
    for name, h in mapping(file, "histories", doc.get("histories"), optional=True).items():
        h = mapping(file, f"histories.{name}", h)
        for key in ("step", "train_loss", "test_accuracy"):
            numbers(file, f"histories.{name}.{key}", h.get(key), optional_items=key != "step")
    for name, t in mapping(file, "tracked", doc.get("tracked"), optional=True).items():
        t = mapping(file, f"tracked.{name}", t)
        numbers(file, f"tracked.{name}.step", t.get("step"), optional_items=False)
        for i, layer in enumerate(sequence(file, f"tracked.{name}.layers", t.get("layers"))):
            text(file, f"tracked.{name}.layers[{i}]", layer)
        for key in ("preact_std", "weight_grad_norm"):
            numbers(file, f"tracked.{name}.{key}", t.get(key))
    if kind == "demo":
        roles = [r.get("role") for r in rows]
        for role in DEMO_ROLES:
            if role not in roles:
                raise _bad(file, "results", f"a list with a result of role '{role}'", roles)
        number(file, "baseline.logistic_regression_test_accuracy",
               mapping(file, "baseline", doc.get("baseline")).get("logistic_regression_test_accuracy"), 0, 1)
        sym = mapping(file, "symmetry", doc.get("symmetry"), optional=True)
        if sym:
            for i, w in enumerate(sequence(file, "symmetry.network.hidden",
                                           mapping(file, "symmetry.network", sym.get("network")).get("hidden"))):
                integer(file, f"symmetry.network.hidden[{i}]", w, low=1)
            for name, t in mapping(file, "symmetry.traces", sym.get("traces")).items():
                t = mapping(file, f"symmetry.traces.{name}", t)
                numbers(file, f"symmetry.traces.{name}.step", t.get("step"), optional_items=False)
                numbers(file, f"symmetry.traces.{name}.spread", t.get("spread"))
                for i, w in enumerate(sequence(file, f"symmetry.traces.{name}.effective_width",
                                               t.get("effective_width"))):
                    integer(file, f"symmetry.traces.{name}.effective_width[{i}]", w)
    return doc


# --------------------------------------------------------------------------------------------------
# diagnoses.json

def check_head(doc, file, kind: str, version_max: int, default_kind: str | None = None) -> dict:
    """The checks every initlab JSON file opens with: a mapping, its ``kind`` (``default_kind`` when a file
    of an early release has none), a ``schema_version`` this initlab reads (1 when missing only where
    ``default_kind`` is given), a text ``command``. Returns the document; raises one line."""
    mapping(file, "the file", doc)
    if doc.get("kind", default_kind) != kind:
        raise _bad(file, "kind", f"'{kind}'", doc.get("kind"))
    version = doc.get("schema_version", 1 if default_kind else None)
    if not isinstance(version, int) or isinstance(version, bool) or version > version_max:
        raise InitlabError(f"{file}: schema_version {version!r} is not one this initlab reads (up to "
                           f"{version_max}): upgrade initlab to read it.")
    text(file, "command", doc.get("command", ""))
    return doc


def check_diagnoses(doc, file: str | Path = "diagnoses.json") -> dict:
    """Check a parsed ``diagnoses.json`` of a diagnose folder; returns it, or raises one line."""
    check_head(doc, file, "diagnose", DIAGNOSES_VERSION, default_kind="diagnose")
    for k, v in mapping(file, "environment", doc.get("environment"), optional=True).items():
        text(file, f"environment.{k}", v)
    for i, d in enumerate(sequence(file, "diagnoses", doc.get("diagnoses"), nonempty=True)):
        where = f"diagnoses[{i}]"
        mapping(file, where, d)
        text(file, f"{where}.scheme", d.get("scheme"), optional=True)
        verdict = mapping(file, f"{where}.verdict", d.get("verdict"))
        for key in ("summary", "message"):
            text(file, f"{where}.verdict.{key}", verdict.get(key))
        for j, row in enumerate(sequence(file, f"{where}.layers", d.get("layers"))):
            for k, v in mapping(file, f"{where}.layers[{j}]", row).items():
                _scalar(file, f"{where}.layers[{j}].{k}", v)
    return doc


# --------------------------------------------------------------------------------------------------
# writers

def write_json(path: str | Path, doc: dict, kind: str, version: int) -> Path:
    """Write ``doc`` as JSON at ``path`` with its ``kind`` and ``schema_version`` first; NaN and inf
    become null. The file is written beside and renamed over, so a reader never sees half of it."""
    from .jsonsafe import json_safe

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(json_safe({"kind": kind, "schema_version": version, **doc}), indent=2))
        tmp.replace(path)
    except OSError as e:
        raise InitlabError(f"cannot write '{path}': {e.strerror}.")
    return path


def write_results(folder: str | Path, doc: dict, arrays: dict) -> Path:
    """A demo or train folder: ``results.json`` (``doc["kind"]`` says which) and ``arrays.npz`` (the
    data and each result's probability grid, ``p_i``, ``xx_i``, ``yy_i``). Returns the folder."""
    import numpy as np

    folder = Path(folder)
    kind = doc.get("kind", "train")
    write_json(folder / "results.json", {k: v for k, v in doc.items() if k != "kind"}, kind, RESULTS_VERSION)
    np.savez_compressed(folder / "arrays.npz", **arrays)
    return folder


def write_diagnoses(folder: str | Path, diagnoses: list[dict], command: str = "", environment: dict | None = None) -> Path:
    """``diagnoses.json`` of a diagnose folder: each diagnosis as :meth:`initlab.Diagnosis.to_dict`."""
    return write_json(Path(folder) / "diagnoses.json",
                      {"diagnoses": diagnoses, "command": command, "environment": environment or {}},
                      "diagnose", DIAGNOSES_VERSION)


def write_trainability(path: str | Path, result: dict) -> Path:
    """``trainability.json``: :func:`initlab.trainability.analyze`'s result."""
    return write_json(path, result, "trainability", TRAINABILITY_VERSION)


def read_results(out: str | Path) -> dict:
    """Read back what :func:`write_results` wrote: the JSON document plus ``grids`` (one per result) and
    ``points`` (the data). Both files are checked (:func:`initlab.outputs.check_results`): a field of
    the wrong type or out of range is one :class:`InitlabError` naming the file and the field."""
    import zipfile

    import numpy as np

    out = Path(out)
    if not (out / "results.json").is_file():
        raise InitlabError(f"'{out}' holds no results.json; give a folder written by 'initlab demo' "
                           f"or 'initlab train'.")
    doc = check_results(read_json(out / "results.json"), out / "results.json")
    names = ["X_train", "y_train", "X_test", "y_test",
             *(f"{a}_{i}" for i in range(len(doc["results"])) for a in ("xx", "yy", "p"))]
    try:
        with np.load(out / "arrays.npz") as z:  # never pickles: allow_pickle stays False
            missing = [k for k in names if k not in z.files]
            if missing:
                raise InitlabError(f"'{out / 'arrays.npz'}' is not a valid initlab file: it lacks {missing[0]}.")
            arrays = {k: z[k] for k in names}
    except (InitlabError, FileNotFoundError):
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:  # not an npz, or a damaged one
        raise InitlabError(f"'{out / 'arrays.npz'}' is not a valid initlab file: not a NumPy .npz archive "
                           f"of numbers ({type(e).__name__}).") from None
    for k, a in arrays.items():
        if a.dtype.kind not in "biuf":
            raise InitlabError(f"'{out / 'arrays.npz'}' is not a valid initlab file: {k} holds {a.dtype}, not numbers.")
    doc["points"] = {k: arrays[k] for k in ("X_train", "y_train", "X_test", "y_test")}
    doc["grids"] = [{"xx": arrays[f"xx_{i}"], "yy": arrays[f"yy_{i}"], "p": arrays[f"p_{i}"]}
                    for i in range(len(doc["results"]))]
    return doc


def write_audit(folder: str | Path, audit: dict, command: str = "", environment: dict | None = None) -> Path:
    """``audit.json`` of an audit folder: :meth:`initlab.audit.AuditResult.to_dict`."""
    return write_json(Path(folder) / "audit.json", {"audit": audit, "command": command,
                                                     "environment": environment or {}}, "audit", AUDIT_VERSION)


def check_audit(doc, file: str | Path = "audit.json") -> dict:
    """Check a parsed ``audit.json``; returns it, or raises one line."""
    check_head(doc, file, "audit", AUDIT_VERSION)
    a = mapping(file, "audit", doc.get("audit"))
    if not isinstance(a.get("passed"), bool):
        raise _bad(file, "audit.passed", "true or false", a.get("passed"))
    for i, g in enumerate(sequence(file, "audit.groups", a.get("groups"))):
        g = mapping(file, f"audit.groups[{i}]", g)
        for key in ("role", "layer", "tensor", "check"):
            text(file, f"audit.groups[{i}].{key}", g.get(key))
        for key in ("expected", "measured", "tolerance"):
            v = g.get(key)
            if not isinstance(v, (str, list)) and v is not None:
                number(file, f"audit.groups[{i}].{key}", v)
        if not isinstance(g.get("passed"), bool):
            raise _bad(file, f"audit.groups[{i}].passed", "true or false", g.get("passed"))
        for j, name in enumerate(sequence(file, f"audit.groups[{i}].tensors", g.get("tensors"))):
            text(file, f"audit.groups[{i}].tensors[{j}]", name)
    for key in ("failures", "untouched", "tied", "uncovered", "unchecked"):
        sequence(file, f"audit.{key}", a.get(key), optional=True)
    return doc


# --------------------------------------------------------------------------------------------------
# watch.json

def watch_file(path: str | Path) -> Path:
    """Where :func:`write_watch` writes for ``path``: ``path`` itself when it ends in ``.json``, else
    ``watch.json`` in the folder ``path``."""
    path = Path(path)
    return path if path.suffix == ".json" else path / "watch.json"


def write_watch(path: str | Path, runs: dict[str, dict], command: str = "", environment: dict | None = None) -> Path:
    """``watch.json``: one or more watched runs by name, each :meth:`initlab.watch.Watch.to_dict`
    (the layout of :meth:`initlab.watchstats.WatchRecord.to_dict`). Returns the file."""
    if environment is None:
        import platform

        import torch

        from ._version import __version__
        environment = {"initlab": __version__, "torch": torch.__version__, "python": platform.python_version()}
    return write_json(watch_file(path), {"runs": runs, "command": command, "environment": environment},
                      "watch", WATCH_VERSION)


def check_watch(doc, file: str | Path = "watch.json") -> dict:
    """Check a parsed ``watch.json``; returns it, or raises one line."""
    check_head(doc, file, "watch", WATCH_VERSION)
    runs = mapping(file, "runs", doc.get("runs"))
    if not runs:
        raise _bad(file, "runs", "an object with at least one run", runs)
    for name, r in runs.items():
        where = f"runs.{name}"
        mapping(file, where, r)
        layers = sequence(file, f"{where}.layers", r.get("layers"), nonempty=True)
        for i, layer in enumerate(layers):
            text(file, f"{where}.layers[{i}]", layer)
        steps = sequence(file, f"{where}.step", r.get("step"))
        for i, s in enumerate(steps):
            integer(file, f"{where}.step[{i}]", s)
        numbers(file, f"{where}.loss", r.get("loss"))
        for key, table in r.items():  # every statistic: one row of values per step
            if key in ("layers", "kinds", "step", "alerts") or not isinstance(table, list):
                continue
            if len(table) != len(steps):
                raise _bad(file, f"{where}.{key}", f"a list of {len(steps)} rows, one per step", f"{len(table)} rows")
            numbers(file, f"{where}.{key}", table)
        h = mapping(file, f"{where}.histograms", r.get("histograms"), optional=True)
        if h:
            for key in ("step", "output_edges", "grad_edges", "output", "grad"):
                numbers(file, f"{where}.histograms.{key}", h.get(key), optional_items=key in ("output", "grad"))
        mapping(file, f"{where}.first_loss", r.get("first_loss"), optional=True)
        for i, a in enumerate(sequence(file, f"{where}.alerts", r.get("alerts"), optional=True)):
            for key in ("kind", "message"):
                text(file, f"{where}.alerts[{i}].{key}", mapping(file, f"{where}.alerts[{i}]", a).get(key))
    return doc


def read_watch(path: str | Path) -> dict:
    """Read and check a ``watch.json`` (or the one in the folder ``path``)."""
    file = watch_file(path)
    if not file.is_file():
        raise InitlabError(f"'{path}' holds no watch.json; give a folder or file written by Watch.save or "
                           f"'initlab watch-demo'.")
    return check_watch(read_json(file), file)


# --------------------------------------------------------------------------------------------------
# signal.json

def write_signal(folder: str | Path, runs: list[dict], command: str = "", environment: dict | None = None) -> Path:
    """``signal.json`` of a signal folder: per (scheme, depth) or model, the Jacobian spectrum, the
    correlation map and the NTK (:mod:`initlab.signal`'s ``to_dict``), under ``label``."""
    return write_json(Path(folder) / "signal.json", {"runs": runs, "command": command,
                                                      "environment": environment or {}}, "signal", SIGNAL_VERSION)


def check_signal(doc, file: str | Path = "signal.json") -> dict:
    """Check a parsed ``signal.json``; returns it, or raises one line."""
    check_head(doc, file, "signal", SIGNAL_VERSION)
    for i, r in enumerate(sequence(file, "runs", doc.get("runs"), nonempty=True)):
        where = f"runs[{i}]"
        mapping(file, where, r)
        text(file, f"{where}.label", r.get("label"))
        integer(file, f"{where}.depth", r.get("depth"), optional=True)
        j = mapping(file, f"{where}.jacobian", r.get("jacobian"), optional=True)
        if j:
            numbers(file, f"{where}.jacobian.singular_values", j.get("singular_values"), optional_items=False)
            for key in ("mean_s2", "max", "spread"):
                number(file, f"{where}.jacobian.{key}", j.get(key), low=0)
            for key in ("condition", "predicted_mean_s2", "mean_s2_error"):
                number(file, f"{where}.jacobian.{key}", j.get(key), low=0, optional=True)
            text(file, f"{where}.jacobian.reason", j.get("reason"), optional=True)
        c = mapping(file, f"{where}.correlation", r.get("correlation"), optional=True)
        if c:
            layers = sequence(file, f"{where}.correlation.layers", c.get("layers"), nonempty=True)
            for k, name in enumerate(layers):
                text(file, f"{where}.correlation.layers[{k}]", name)
            for key in ("measured", "predicted"):
                values = sequence(file, f"{where}.correlation.{key}", c.get(key), optional=key == "predicted")
                if values and len(values) != len(layers):
                    raise _bad(file, f"{where}.correlation.{key}", f"a list of {len(layers)} numbers", values)
                for k, v in enumerate(values):
                    number(file, f"{where}.correlation.{key}[{k}]", v, -1.000001, 1.000001)
            number(file, f"{where}.correlation.c0", c.get("c0"), -1.000001, 1.000001)
            text(file, f"{where}.correlation.reason", c.get("reason"), optional=True)
        n = mapping(file, f"{where}.ntk", r.get("ntk"), optional=True)
        if n:
            numbers(file, f"{where}.ntk.eigenvalues", n.get("eigenvalues"), optional_items=False)
            number(file, f"{where}.ntk.condition", n.get("condition"), low=0, optional=True)
    return doc


def read_json(path: Path) -> object:
    """The parsed JSON at ``path``; a file that is not JSON is one line."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InitlabError(f"'{path}' is not a valid initlab file: it is not JSON ({e}).") from None


def is_initlab_folder(folder: Path, marker: str) -> bool:
    """Whether ``folder`` holds the output initlab wrote whose ``marker`` file is given: a
    ``results.json`` of a known kind (demo, train), a ``diagnoses.json`` with its diagnoses or an
    ``audit.json`` of kind audit. The files of that output may be rewritten by initlab; a user's file
    of the same name is never taken for one."""
    if marker not in ("results.json", "diagnoses.json", "audit.json", "watch.json", "signal.json"):  # initlab cannot tell apart
        return False
    try:
        doc = json.loads((Path(folder) / marker).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(doc, dict):
        return False
    if marker == "results.json":
        return doc.get("kind") in KINDS
    if marker == "audit.json":
        return doc.get("kind") == "audit"
    if marker == "watch.json":
        return doc.get("kind") == "watch"
    if marker == "signal.json":
        return doc.get("kind") == "signal"
    return isinstance(doc.get("diagnoses"), list)
