"""A sweep's page: read the results store, draw its figures, summarize across seeds, judge.

It reads ``runs.db`` and never trains. :func:`initlab.report.render` calls :func:`sweep_page`; the command that reruns the sweep is
:func:`initlab.rerun.rerun_command`.
A cell is named by what varies between cells (``sigma_w^2 = 1.5, depth = 16``); what every run
shares is stated once. A trainability sweep (tanh networks, ``variance_scaling`` over sigma_w^2 and
depth) also shows its heatmap with mean-field theory's depth limit 6 xi_c drawn over it. The page ends
with the command that reruns the sweep.
"""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path

from ..errors import InitlabError
from ..escaping import esc
from ..experiment import environment
from ..metrics import MIN_RUNS, interval_text
from ..rerun import rerun_command
from ..results import AXES, load, summarize, swept_axes
from .base import img as _img, page, scroll_box

#: A run "trained" when its test accuracy reaches this (the trainability sweep uses its own, 0.8).
THRESHOLD = 0.9

_SUMMARY_NOTE = esc(
    "A diverged run has no accuracy: it is left out of the mean and counts as a failure in the success rate. "
    "The mean's interval is a percentile bootstrap (4000 resamples, fixed seed), the success rate's a Wilson "
    f"interval: both stay inside [0, 1]. With fewer than {MIN_RUNS} runs neither is meaningful, and none is given.")


# --------------------------------------------------------------------------------------------------
# names: values, schemes and cells by what varies

def value_text(key: str, value) -> str:
    """One setting's value as the page writes it: ``full`` for a whole-data batch, ``1.5`` for 1.5."""
    if value is None or (isinstance(value, float) and value != value):
        return "full" if key == "batch_size" else "n/a"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _spec_text(name: str, params: dict) -> str:
    inside = ", ".join(f"{k}={value_text(k, v)}" for k, v in params.items())
    return f"{name}({inside})" if inside else name


def scheme_axis(df):
    """Name each run's scheme by what varies between the sweep's schemes.

    Returns ``(df, axis, shared)``. One scheme with one numeric parameter varying: a numeric column named
    after it (``sigma_w^2`` for ``variance_scaling``'s ``scale`` in ``fan_in`` mode, which is what it
    is; else the parameter's name), and ``shared`` the scheme with the parameters every run has
    (``variance_scaling(bias_std=0.2236, distribution=normal, mode=fan_in)``). Otherwise ``scheme``
    holds short labels, a name and the parameters that vary (``normal(std=0.1)``), and ``shared`` the
    parameters all schemes share, or None. ``axis`` is None when the sweep has one scheme."""
    specs = list({json.dumps(c["scheme"], sort_keys=True): c["scheme"] for c in df["config"]}.values())
    names = list(dict.fromkeys(s["name"] for s in specs))
    keys = list(dict.fromkeys(k for s in specs for k in s["params"]))
    first = specs[0]["params"]
    shared = {k: first[k] for k in keys if all(k in s["params"] and s["params"][k] == first[k] for s in specs)}
    varying = [k for k in keys if k not in shared]
    if len(specs) == 1:
        return df, None, _spec_text(names[0], shared)
    values = [s["params"].get(k) for s in specs for k in varying]
    if len(names) == 1 and len(varying) == 1 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        key = varying[0]
        column = "sigma_w^2" if (names[0], key, shared.get("mode", "fan_in")) == (
            "variance_scaling", "scale", "fan_in") else key
        if column in df:  # a parameter named like a setting (n, width ...): keep it apart
            column = f"{names[0]} {key}"
        df = df.assign(**{column: [float(c["scheme"]["params"][key]) for c in df["config"]]})
        return df, column, f"{_spec_text(names[0], shared)}, {column} varied"
    label = {json.dumps(s, sort_keys=True): _spec_text(s["name"], {k: v for k, v in s["params"].items()
                                                                   if k in varying}) for s in specs}
    df = df.assign(scheme=[label[json.dumps(c["scheme"], sort_keys=True)] for c in df["config"]])
    return df, "scheme", (f"every scheme with {_spec_text('', shared).strip('()')}" if shared else None)


def _runs(n: int) -> str:
    return f"{n} run{'s' if n != 1 else ''}"


def _cell(row: dict, axes: list[str]) -> str:
    return ", ".join(f"{a} = {value_text(a, row[a])}" for a in axes)


def check_rows(df, db) -> None:
    """Check the store's rows before a page is made from them: each run's config an object with a
    scheme (a name and parameters of plain values), its settings plain values, its seed a whole number,
    its accuracies numbers within [0, 1] (NaN: none), its status and sweep name strings. Raises one
    :class:`InitlabError` naming the store, the run and the field."""
    from .. import outputs

    for i, r in enumerate(df.to_dict("records")):
        where = f"run {r.get('run_id', i)}"
        config = outputs.mapping(db, f"{where}: config", r.get("config"))
        spec = outputs.mapping(db, f"{where}: config.scheme", config.get("scheme"))
        outputs.text(db, f"{where}: config.scheme.name", spec.get("name"))
        for k, v in outputs.mapping(db, f"{where}: config.scheme.params", spec.get("params")).items():
            outputs._scalar(db, f"{where}: config.scheme.params.{k}", v)
        for k in AXES:
            if k != "scheme":
                outputs._scalar(db, f"{where}: config.{k}", config.get(k))
        outputs.integer(db, f"{where}: config.seed", config.get("seed"))
        for k in ("status", "sweep"):
            outputs.text(db, f"{where}: {k}", r.get(k), optional=k == "sweep")
        for k in ("train_accuracy", "test_accuracy"):
            v = r.get(k)
            outputs.number(db, f"{where}: {k}", None if v is None or v != v else v, 0, 1, optional=True)


# --------------------------------------------------------------------------------------------------
# judgements

def _verdict(summary, axes: list[str], threshold: float) -> str:
    """The best cell among those where some seed reached ``threshold`` (never also listed under "did
    not train"), the cells where none did, and the cells where some diverged."""
    rows = summary.to_dict("records")
    measured = [r for r in rows if r["mean"] == r["mean"]]
    trained = [r for r in measured if r["success_rate"] > 0]
    failed = [r for r in rows if r["success_rate"] == 0]
    diverged = [r for r in rows if r.get("diverged", 0) > 0]
    parts = []
    if trained:
        best = max(trained, key=lambda r: r["mean"])
        ci = (f", 95% CI {_interval(best, 'ci')}" if best["measured"] >= MIN_RUNS else "")
        parts.append(f"<b>Best cell</b>: {esc(_cell(best, axes))}, mean test accuracy {best['mean']:.3f}{ci}; "
                     f"{round(best['success_rate'] * best['runs'])} of its {_runs(best['runs'])} reached "
                     f"{threshold:g}.")
    elif measured:
        best = max(measured, key=lambda r: r["mean"])
        parts.append(f"<b>No cell trained</b>: no run reached test accuracy {threshold:g}; the highest mean "
                     f"test accuracy is {best['mean']:.3f}, at {esc(_cell(best, axes))}.")
    else:
        parts.append("<b>No cell has an accuracy</b>: every run diverged.")
    if failed and trained:
        names = "; ".join(esc(_cell(r, axes)) for r in failed[:8])
        more = f" and {len(failed) - 8} more" if len(failed) > 8 else ""
        parts.append(f"<b>Did not train</b> (no run reached test accuracy {threshold:g}): {names}{more}.")
    if diverged:
        names = "; ".join(f"{esc(_cell(r, axes))} ({r['diverged']:.0%} of runs)" for r in diverged[:8])
        more = f" and {len(diverged) - 8} more" if len(diverged) > 8 else ""
        parts.append(f"<b>Diverged</b>: {names}{more}.")
    if not failed and not diverged:
        parts.append("Every cell trained.")
    return " ".join(parts)


def _interval(row: dict, prefix: str) -> str:
    """The 95% interval ``ci`` (of the mean) or ``success`` (Wilson) of a summary row, or why there is none."""
    runs = row["measured"] if prefix == "ci" else row["runs"]
    return esc(interval_text(row[f"{prefix}_low"], row[f"{prefix}_high"], runs))


def trainability_result(df) -> dict | None:
    """:func:`initlab.trainability.analyze` of ``df`` when it is a trainability sweep, else None: tanh
    networks, one ``variance_scaling`` (fan_in, no constant bias) over several sigma_w^2 and several
    depths, nothing else varied. sigma_b^2 is the stored ``bias_std`` squared."""
    from ..trainability import analyze

    def one(column, default):
        values = {default if v is None or v != v else v for v in df[column]} if column in df else {default}
        return values.pop() if len(values) == 1 else None

    if "param_scale" not in df or set(df["scheme_name"]) != {"variance_scaling"} or one("activation", None) != "tanh":
        return None
    varied = set(swept_axes(df)) - {"scheme", "depth"}
    scheme_keys = {k for c in df["config"] for k in c["scheme"]["params"]} - {"scale"}
    if varied or df["depth"].nunique() < 2 or df["param_scale"].nunique() < 2 or \
            any(one(f"param_{k}", None) is None for k in scheme_keys):
        return None
    bias_std = one("param_bias_std", 0.0)
    if one("param_mode", "fan_in") != "fan_in" or one("param_bias", 0.0) != 0.0:
        return None
    return analyze(df, sigma_b2=float(bias_std) ** 2)


def _share_text(part: dict) -> str:
    """``86% of 7 runs trained, 95% Wilson interval 0.487 to 0.974`` (no interval below 3 runs)."""
    if not part["runs"]:
        return "no run lies there"
    text = f"{part['trained']:.0%} of {_runs(part['runs'])} trained"
    if part["runs"] < MIN_RUNS or part["ci_low"] is None:
        return f"{text}, too few for an interval"
    return f"{text}, 95% Wilson interval {interval_text(part['ci_low'], part['ci_high'], part['runs'])}"


def _limit_text(value: float) -> str:
    return "no limit (the critical point)" if not math.isfinite(value) or value > 1e6 else f"{value:.3g}"


def _trainability_section(result: dict, stem: Path) -> str:
    from .. import plots

    png = plots.save_trainability(result, stem, formats=("png",))[0]
    head = "".join(f"<th>depth {esc(d)}</th>" for d in result["depth"])
    rows = []
    for j, sw in enumerate(result["sigma_w2"]):
        shares = [result["trained"][i][j] for i in range(len(result["depth"]))]
        cells = "".join(f"<td>{'no runs' if s is None or s != s else format(s, '.0%')}</td>" for s in shares)
        rows.append(f"<tr><td>{esc(format(sw, 'g'))}</td><td>{esc(_limit_text(result['limit'][j]))}</td>{cells}</tr>")
    table = (f"<table><tr><th>sigma_w^2</th><th>6 xi_c (layers)</th>{head}</tr>{''.join(rows)}</table>")
    return (
        "<h2>Which networks train: mean-field theory's depth limit</h2>"
        "<p>Schoenholz et al. (2017): a deep tanh network trains only while its depth stays below about "
        "6 xi_c, the depth over which two inputs' signals still differ at its (sigma_w^2, sigma_b^2). Each cell "
        f"is the share of seeds whose test accuracy reached {result['threshold']:g}; the black line is 6 xi_c "
        f"at sigma_b^2 = {result['sigma_b2']:.3g}.</p>"
        + _img(png, "share of seeds that trained per sigma_w^2 and depth, with the depth limit 6 xi_c over it")
        + f"<p>Well within the limit (depth at most 6 xi_c / 1.5): {_share_text(result['within'])}. "
        f"Well beyond it (depth at least 1.5 x 6 xi_c): {_share_text(result['beyond'])}.</p>"
        + scroll_box(table))


def _trainability_verdict(result: dict) -> str:
    return (f"<b>Depth limit 6 xi_c</b>: well within it, {_share_text(result['within'])}; well beyond it, "
            f"{_share_text(result['beyond'])}. ")


# --------------------------------------------------------------------------------------------------
# tables

def _summary_table(summary, axes: list[str], threshold: float) -> str:
    """One row per cell. The interval columns are left out when no cell has the runs they need."""
    rows = summary.to_dict("records")
    intervals = any(r["runs"] >= MIN_RUNS for r in rows)
    columns = ["runs", "mean \u00b1 std", "95% CI of the mean", f"reached {threshold:g}", "95% CI of that share",
               f"steps to {threshold:g}", "diverged"]
    columns = [c for c in columns if intervals or "CI" not in c]
    head = "".join(f"<th>{esc(c)}</th>" for c in axes + columns)
    num = lambda v, f=".3f": "n/a" if v != v else format(v, f)  # noqa: E731  (v != v: NaN)
    body = []
    for r in rows:
        spread = "" if r["std"] != r["std"] else f" \u00b1 {num(r['std'])}"
        steps = "never" if r["steps_to_threshold"] != r["steps_to_threshold"] else num(r["steps_to_threshold"], ".0f")
        cells = [esc(value_text(a, r[a])) for a in axes] + [esc(r["runs"]), f"{num(r['mean'])}{spread}"] + (
            [_interval(r, "ci")] if intervals else []) + [f"{r['success_rate']:.0%}"] + (
            [_interval(r, "success")] if intervals else []) + [steps, f"{r['diverged']:.0%}"]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    most = max(r["runs"] for r in rows)
    note = "" if intervals else (f"<p class='small'>95% intervals: {interval_text(math.nan, math.nan, most)} in "
                                 f"every cell, so the table gives none.</p>")
    return scroll_box(f"<table class='numbers'><tr>{head}</tr>{''.join(body)}</table>") + note


def _config_table(df, axes: list[str], shared_scheme: str | None) -> str:
    """What every run shares, stated once, then what varies."""
    same, varied = [], []
    if shared_scheme:
        same.append(("scheme", shared_scheme))
    for a in [*AXES, *[a for a in axes if a not in AXES], "seed"]:
        if a not in df or (a == "scheme" and shared_scheme and "scheme" not in axes):
            continue
        values = sorted(df[a].tolist(), key=lambda v: (isinstance(v, str), -math.inf if v is None or v != v else v))
        texts = list(dict.fromkeys(value_text(a, v) for v in values))
        (varied if len(texts) > 1 else same).append((a, ", ".join(texts)))
    status = ", ".join(f"{k}: {v}" for k, v in df["status"].value_counts().items())
    row = lambda k, v: f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>"  # noqa: E731
    rows = [row("runs", f"{len(df)} ({status})"), "<tr><th colspan='2'>the same in every run</th></tr>",
            *(row(k, v) for k, v in same)]
    if varied:
        rows += ["<tr><th colspan='2'>varied</th></tr>", *(row(k, v) for k, v in varied)]
    return scroll_box(f"<table class='settings'>{''.join(rows)}</table>")


# --------------------------------------------------------------------------------------------------

def _figures(df, folder: Path, prefix: str, axes: list[str]) -> dict[str, Path]:
    """:func:`initlab.plots.sweep_figures`, drawn aside and moved to ``folder / (prefix + name).png``:
    only files named after the page are written."""
    import os
    import tempfile

    from .. import plots

    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".initlab-") as aside:
        drawn = plots.sweep_figures(df, aside, axes=axes)
        placed = {name: folder / f"{prefix}{name}.png" for name in drawn}
        for name, path in drawn.items():
            os.replace(path, placed[name])
    return placed


def sweep_page(db: Path, folder: Path, prefix: str = "") -> str:
    """The whole page for the sweep stored in ``db``; its figures are written into ``folder`` as
    ``prefix + name + .png`` (``report-heatmap.png`` for the page ``report.html``)."""
    df = load(db)
    if df.empty:
        raise InitlabError(f"the store '{db}' holds no runs yet: run the sweep first.")
    check_rows(df, db)
    trainability = trainability_result(df)
    threshold = trainability["threshold"] if trainability else THRESHOLD
    df, scheme, shared = scheme_axis(df)
    axes = [scheme if a == "scheme" else a for a in swept_axes(df)] or [scheme or "scheme"]
    figures = _figures(df, Path(folder), prefix, axes)
    summary = summarize(df, by=axes, threshold=threshold)
    name = str(df["sweep"].iloc[0]) if "sweep" in df else db.stem
    body = (
        (_trainability_section(trainability, Path(folder) / f"{prefix}trainability") if trainability else "")
        + "<h2>Figures</h2>"
        + _img(figures["heatmap"], "heatmap of the mean test accuracy over two swept axes")
        + _img(figures["curves"], "test accuracy over the steps, mean and 95% bootstrap band")
        + (_img(figures["thumbnails"], "probability contours, one per cell") if "thumbnails" in figures else "")
        + "<h2>Summary across seeds</h2>" + _summary_table(summary, axes, threshold)
        + f"<p class='small'>{_SUMMARY_NOTE}</p>"
        + "<h2>The sweep's configuration</h2>" + _config_table(df, axes, shared)
    )
    verdict = (_trainability_verdict(trainability) if trainability else "") + _verdict(summary, axes, threshold)
    rerun = rerun_command(df, db.parent)
    command = (f"{rerun}\ninitlab report {shlex.quote(str(db))}" if rerun else
               f"# no single sweep command reruns every run in this store (did several sweeps write into it?)\n"
               f"initlab report {shlex.quote(str(db))}")
    env = environment()
    stored = [v for v in df.get("initlab", []) if isinstance(v, str)]
    env["initlab"] = stored[0] if stored else env["initlab"]  # the version that trained, when stored
    return page(f"initlab sweep: {name}", verdict, body, command, env)
