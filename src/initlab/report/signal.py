"""The page of a signal folder (``signal.json``): per scheme and depth, or per model, how close the
input-output Jacobian is to an isometry, how the correlation of pairs of inputs moves layer by layer
beside mean-field theory, and the NTK's condition number."""

from __future__ import annotations

from pathlib import Path

from ..escaping import esc
from ..outputs import check_signal, read_json
from ..tables import html_table
from .base import img, scroll_box, write_page

COLUMNS = ["run", "Jacobian by", "mean s^2", "± (std. error)", "predicted mean s^2", "spread of s^2", "spread ±",
           "s max", "cond(J)", "c0", "c at the last layer", "c predicted", "mean |c - predicted|", "cond(NTK)"]


def _row(r: dict) -> dict:
    j, c, k = r.get("jacobian") or {}, r.get("correlation") or {}, r.get("ntk") or {}
    predicted = c.get("predicted")
    return {"run": r["label"], "Jacobian by": j.get("method"), "mean s^2": j.get("mean_s2"),
            "± (std. error)": j.get("mean_s2_error"), "predicted mean s^2": j.get("predicted_mean_s2"),
            "spread of s^2": j.get("spread"), "spread ±": j.get("spread_error"), "s max": j.get("max"),
            "cond(J)": j.get("condition"), "c0": c.get("c0"), "c at the last layer": (c.get("measured") or [None])[-1],
            "c predicted": predicted[-1] if predicted else None, "mean |c - predicted|": c.get("error"),
            "cond(NTK)": k.get("condition")}


def signal_body(runs: list[dict], folder: Path) -> tuple[str, str]:
    """The verdict (which run is closest to an isometry) and the body of a signal page."""
    measured = [r for r in runs if r.get("jacobian")]
    # only exact spectra are ranked: an estimate from projections carries an error the exact ones do not
    spreads = [(r["jacobian"]["spread"], r["label"]) for r in measured if r["jacobian"].get("method", "exact") == "exact"]
    estimated = [r["label"] for r in measured if r["jacobian"].get("method", "exact") != "exact"]
    unranked = (f" Not ranked (estimated by random projections, with the standard errors in the table): "
                f"{esc(', '.join(estimated))}." if estimated else "")
    if spreads:
        best, worst = min(spreads), max(spreads)
        verdict = (f"<b>Closest to dynamical isometry:</b> {esc(best[1])} (spread of s^2 {best[0]:.3g}); "
                   f"farthest: {esc(worst[1])} ({worst[0]:.3g}). A spread near 0 means every singular value of "
                   f"the Jacobian is alike: gradients reach every layer in every direction at the same scale."
                   + unranked)
    elif estimated:
        verdict = "<b>No exact Jacobian to rank</b>." + unranked
    else:
        verdict = ("<b>No input-output Jacobian</b> (the inputs are not numbers); the correlation map and the NTK "
                   "follow.")
    parts = [r.get(k) or {} for r in runs for k in ("jacobian", "correlation")]
    reasons = sorted({p.get("reason") for p in parts} - {None})
    caveats = sorted({p.get("note") for p in parts} - {None})
    notes = "".join(f"<p class='small'>No mean-field prediction: {esc(x)}.</p>" for x in reasons)
    notes += "".join(f"<p class='small'>Note on the prediction: {esc(x)}.</p>" for x in caveats)
    body = (f"<h2>The Jacobian's singular values</h2>"
            f"{img(folder / 'spectra.png', 'histograms of the singular values of the input-output Jacobian')}"
            f"<p class='small'>Spread: std(s^2) / mean(s^2) over every singular value, 0 for a perfect isometry "
            f"(estimated, with its standard error, where the Jacobian is too large to build: its histogram is then "
            f"dashed and shows only the top singular values). Predicted mean s^2: mean-field "
            f"theory's product over the layers of sigma_w^2 E[phi'(h)^2] (chi_1^L at the fixed point).</p>"
            f"<h2>The correlation map</h2>"
            f"{img(folder / 'correlation.png', 'mean cosine similarity of pairs of inputs per layer')}"
            f"<p class='small'>Solid: measured (the band: one std over the pairs). Dashed: the mean-field c-map "
            f"from each pair's own input correlation. Dotted: its fixed point c*.</p>{notes}"
            f"<h2>The numbers</h2>{scroll_box(html_table(COLUMNS, [_row(r) for r in runs]))}"
            f"<p class='small'>mean |c - predicted|: the mean over the layers of the gap between the measured and "
            f"the predicted correlation.</p>"
            f"<p class='small'>cond(NTK): largest over smallest eigenvalue of the empirical neural tangent kernel "
            f"of the first output on the inputs (blank: a zero eigenvalue).</p>")
    return verdict, body


def render_signal(folder: Path, page_path: Path) -> Path:
    """Write the page of the signal folder ``folder`` to ``page_path``."""
    stored = check_signal(read_json(folder / "signal.json"), folder / "signal.json")
    verdict, body = signal_body(stored["runs"], folder)
    return write_page(page_path, "initlab signal", verdict, body, stored)
