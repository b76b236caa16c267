"""A sweep's page: read the results store, draw its figures, summarize across seeds, judge.

It reads ``runs.db`` and never trains. :func:`initlab.report.render` calls :func:`sweep_page`.
"""

from __future__ import annotations

import math
from html import escape
from pathlib import Path

from .experiment import environment
from .report import _img, page
from .metrics import MIN_RUNS, interval_text
from .store import AXES, load, summarize, swept_axes


_SUMMARY_NOTE = escape(
    "A diverged run has no accuracy: it is left out of the mean and counts as a failure in the success rate. "
    "The mean's interval is a percentile bootstrap (4000 resamples, fixed seed), the success rate's a Wilson "
    f"interval: both stay inside [0, 1]. With fewer than {MIN_RUNS} runs neither is meaningful, and none is given.")


def _cell(row: dict, axes: list[str]) -> str:
    return ", ".join(f"{a}={row[a]}" for a in axes)


def _verdict(summary, axes: list[str]) -> str:
    rows = summary.to_dict("records")
    best = max(rows, key=lambda r: -math.inf if r["mean"] != r["mean"] else r["mean"])
    failed = [r for r in rows if r["success_rate"] == 0]
    diverged = [r for r in rows if r.get("diverged", 0) > 0]
    if best["mean"] == best["mean"]:
        parts = [f"<b>Best cell</b>: {escape(_cell(best, axes))}, mean test accuracy {best['mean']:.3f} "
                 f"(95% CI {_interval(best, 'ci')}, {best['measured']} of {best['runs']} runs measured)."]
    else:
        parts = ["<b>No cell has an accuracy</b>: every run diverged."]
    if failed:
        names = "; ".join(escape(_cell(r, axes)) for r in failed[:8])
        more = f" and {len(failed) - 8} more" if len(failed) > 8 else ""
        parts.append(f"<b>Did not train</b> (no seed reached the threshold): {names}{more}.")
    if diverged:
        names = "; ".join(f"{escape(_cell(r, axes))} ({r['diverged']:.0%} of seeds)" for r in diverged[:8])
        parts.append(f"<b>Diverged</b>: {names}.")
    if not failed and not diverged:
        parts.append("Every cell trained.")
    return " ".join(parts)


def _interval(row: dict, prefix: str) -> str:
    """The 95% interval ``ci`` (of the mean) or ``success`` (Wilson) of a summary row, or why there is none."""
    runs = row["measured"] if prefix == "ci" else row["runs"]
    return escape(interval_text(row[f"{prefix}_low"], row[f"{prefix}_high"], runs))


def _summary_table(summary, axes: list[str]) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in axes + [
        "runs", "mean \u00b1 std", "95% CI of the mean", "success", "95% CI of success", "steps to threshold",
        "diverged"])
    num = lambda v, f=".3f": "n/a" if v != v else format(v, f)  # noqa: E731  (v != v: NaN)
    body = []
    for r in summary.to_dict("records"):
        cells = [escape(str(r[a])) for a in axes] + [
            str(r["runs"]), f"{num(r['mean'])} \u00b1 {num(r['std'])}", _interval(r, "ci"),
            f"{r['success_rate']:.0%}", _interval(r, "success"), num(r["steps_to_threshold"], ".0f"),
            f"{r['diverged']:.0%}"]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _config_table(df) -> str:
    rows = []
    for a in AXES + ("seed",):
        if a in df:
            values = sorted({str(v) for v in df[a].tolist()})
            rows.append(f"<tr><td>{escape(a)}</td><td>{escape(', '.join(values))}</td></tr>")
    status = ", ".join(f"{k}: {v}" for k, v in df["status"].value_counts().items())
    rows.append(f"<tr><td>runs</td><td>{len(df)} ({escape(status)})</td></tr>")
    return f"<table><tr><th>setting</th><th>values</th></tr>{''.join(rows)}</table>"


def sweep_page(db: Path, folder: Path) -> str:
    """The whole page for the sweep stored in ``db``; its figures are written into ``folder``."""
    from . import plots

    df = load(db)
    axes = swept_axes(df) or ["scheme"]
    figures = plots.sweep_figures(df, folder, axes=axes)
    summary = summarize(df, by=axes)
    name = str(df["sweep"].iloc[0]) if "sweep" in df and len(df) else db.stem
    body = (
        "<h2>Figures</h2>"
        + _img(figures["heatmap"], "heatmap of the mean test accuracy over two swept axes")
        + _img(figures["curves"], "test accuracy over the steps, mean and 95% bootstrap band")
        + (_img(figures["thumbnails"], "probability contours, one per cell") if "thumbnails" in figures else "")
        + "<h2>Summary across seeds</h2>" + _summary_table(summary, axes)
        + f"<p class='small'>{_SUMMARY_NOTE}</p>"
        + "<h2>The sweep's configuration</h2>" + _config_table(df)
    )
    env = {**environment(), "initlab": str(df["initlab"].iloc[0]) if "initlab" in df else environment()["initlab"]}
    return page(f"initlab sweep: {name}", _verdict(summary, axes), body, f"initlab report {db}", env)
