"""An output folder -> one self-contained HTML page (``index.html``): the figures embedded as data
URIs, the CSS inline, no script and no network request. It reads the store; it never trains.
Every string that comes from a user or a run is escaped.
"""

from __future__ import annotations

import base64
import json
from html import escape
from pathlib import Path

from .errors import InitlabError
from .experiment import accuracy_text, signal_text
from .report_text import TEXT

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1100px;margin:0 auto;
padding:1rem 1.2rem;line-height:1.5;color:#1d1d1f}
h1{font-size:1.7rem;margin-bottom:.2rem} h2{margin-top:2rem;border-bottom:1px solid #ddd}
img{max-width:100%;height:auto;border:1px solid #eee}
table{border-collapse:collapse;font-size:.92rem;margin:1rem 0;display:block;overflow-x:auto}
th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:end} th{background:#f4f4f6}
td:first-child,th:first-child{text-align:start}
.verdict{background:#f0f6ff;border-inline-start:4px solid #1f3a93;padding:.6rem 1rem}
.bad{color:#a00000} .good{color:#116611}
code,pre{background:#f6f6f6;padding:.1rem .3rem;border-radius:3px}
pre{padding:.6rem;overflow-x:auto} .small{color:#666;font-size:.85rem}
"""


def _img(path: Path, alt: str) -> str:
    if not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{escape(alt)}">'


def _fmt(v, digits: int = 3) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    if isinstance(v, list):
        return ", ".join(map(str, v))
    return str(v)


def results_table(rows: list[dict], lang: str = "en") -> str:
    """The comparison table as HTML: a diverged run shows no accuracy, a flat output's is marked
    (see :func:`initlab.experiment.accuracy_text`)."""
    T = TEXT[lang]
    head = "<tr>" + "".join(f"<th>{escape(c)}</th>" for c in T["columns"]) + "</tr>"
    body = []
    for r in rows:
        width = (T["na_diverged"] if r["effective_width"] is None else
                 " / ".join(f"{e} {T['of']} {w}" for e, w in zip(r["effective_width"], r["width"])))
        div = T["at_step"].format(step=r["diverged_step"]) if r["diverged"] else T["no"]
        cells = [escape(str(r["scheme"]))] + [accuracy_text(r, split, words=T, number=ltr)
                                              for split in ("train", "test")] + [
            ltr(_fmt(r["final_loss"], 4)), _steps(r["steps_to_90"], T), escape(width), escape(div)]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"<table>{head}{''.join(body)}</table>"


def _steps(step: int | None, T: dict) -> str:
    return escape(T["never"]) if step is None else ltr(step)


def _row(doc: dict, role: str) -> dict | None:
    return next((r for r in doc["results"] if r.get("role") == role), None)


def ltr(value) -> str:
    """A number, formula or code kept left to right inside a right-to-left page (and escaped)."""
    return f'<span dir="ltr">{escape(str(value))}</span>'


def _demo_values(doc: dict, out: Path, T: dict) -> dict:
    c = doc["config"]
    const, default, xavier = _row(doc, "symmetry"), _row(doc, "default"), _row(doc, "exercise")
    he, small, large = _row(doc, "variance"), _row(doc, "vanishing"), _row(doc, "exploding")
    sym = doc.get("symmetry", {})
    hidden = c["hidden"]
    acc = lambda row: accuracy_text(row, words=T, number=ltr)  # noqa: E731
    large_txt = (T["large_diverged"].format(step=ltr(large["diverged_step"])) if large["diverged"]
                 else T["large_finished"].format(loss=ltr(_fmt(large["final_loss"], 4))))
    return {
        "net": ltr(" -> ".join(["2", *map(str, hidden), "1"])), "act": ltr(c["activation"]),
        "opt": ltr(c["optimizer"]), "lr": ltr(c["lr"]), "steps": ltr(c["steps"]), "n": ltr(c["n"]),
        "noise": ltr(c["noise"]), "log2": ltr("0.6931"),
        "default_acc": acc(default), "xavier_acc": acc(xavier), "he_acc": acc(he), "const_acc": acc(const),
        "small_signal": (signal_text(small["output_signal"], "data", T, ltr) if small.get("output_signal")
                         else acc(small)),
        "baseline": ltr(_fmt(doc["baseline"]["logistic_regression_test_accuracy"])),
        "small_loss": ltr(_fmt(small["final_loss"], 4)), "large_txt": large_txt,
        "const_value": ltr(const["spec"]["params"].get("value")),
        "const_width": ltr(_fmt(const["effective_width"])), "widths": ltr(_fmt(const["width"])),
        "default_width": ltr(_fmt(default["effective_width"])),
        "sym_net": ltr(" -> ".join(["2", *map(str, sym.get("network", {}).get("hidden", [])), "1"])),
        "sym_widths": ", ".join(f"{ltr(k)}: {ltr(v['effective_width'])}" for k, v in sym.get("traces", {}).items()),
        "xavier_var": ltr("Var(w) = 2 / (K_in + K_out)"), "fwd_var": ltr("1 / K_in"), "bwd_var": ltr("1 / K_out"),
        "he_var": ltr("2 / K_in"), "default_rule": ltr("U[-1/sqrt(K_in), 1/sqrt(K_in)]"),
        "hidden0": ltr(hidden[0]), "bound": ltr(f"{1 / hidden[0] ** 0.5:.3f}"),
        "xavier_bound": ltr("sqrt(6) / sqrt(K_in + K_out)"),
        "default_90": _steps(default["steps_to_90"], T), "xavier_90": _steps(xavier["steps_to_90"], T),
    }


def _demo_body(doc: dict, out: Path, lang: str) -> tuple[str, str]:
    T = TEXT[lang]
    v = _demo_values(doc, out, T)
    f = lambda key: T[key].format(**v)  # noqa: E731
    img = lambda name, alt: _img(out / f"{name}.png", alt)  # noqa: E731
    body = f"""
<h2>{T['s1_title']}</h2><p>{f('s1')}</p>
{img('contours', 'probability contours, one panel per scheme')}<p class="small">{T['s1_caption']}</p>
<h2>{T['s2_title']}</h2><p>{f('s2')}</p><p>{f('s2_precision')}</p>
{img('symmetry', 'largest difference between neurons over the steps')}
<h2>{T['s3_title']}</h2><p>{f('s3')}</p>
<h2>{T['s4_title']}</h2><p>{f('s4')}</p>
{img('curves', 'loss and test accuracy over the steps')}
<p>{f('s4_inside')}</p>{img('scale', 'per-layer output std and gradient norm over the steps')}
<h2>{T['s5_title']}</h2><p>{f('s5')}</p>
<h2>{T['s6_title']}</h2><p>{f('s6')}</p>
<h2>{T['s7_title']}</h2><p>{f('s7')}</p>
{results_table(doc['results'], lang)}
"""
    return f('verdict'), body


def _train_body(doc: dict, out: Path) -> tuple[str, str]:
    r = doc["results"][0]
    c = doc["config"]
    status = (f'<span class="bad">diverged at step {r["diverged_step"]}: no accuracy</span>' if r["diverged"]
              else f'test accuracy <b>{accuracy_text(r, number=ltr)}</b>')
    verdict = (f"<b>{escape(r['scheme'])}</b> on {escape(c['dataset'])}: {status}; effective width "
               f"{escape(_fmt(r['effective_width']))} of {escape(_fmt(r['width']))}.")
    body = f"""
{_img(out / 'contours.png', 'probability contours')}
{_img(out / 'curves.png', 'loss and test accuracy over the steps')}
{_img(out / 'scale.png', 'per-layer output std and gradient norm over the steps')}
{results_table(doc['results'])}
"""
    return verdict, body


def _diagnose_body(docs: list[dict], out: Path) -> tuple[str, str]:
    items = "".join(f"<li><b>{escape(str(d.get('scheme')))}</b>: {escape(d['verdict']['summary'])}. "
                    f"{escape(d['verdict']['message'])}</li>" for d in docs)
    from .diagnose import layers_html

    tables = [f"<h3>{escape(str(d.get('scheme')))}</h3>{layers_html(d['layers'])}" for d in docs]
    body = (f"{_img(out / 'diagnose.png', 'std per layer, forward and backward, measured and predicted')}"
            f"<p class='small'>Solid: measured on the batch. Dashed: mean-field theory's prediction.</p>"
            f"{''.join(tables)}")
    return f"<b>Verdict.</b><ul>{items}</ul>", body


def page(title: str, verdict: str, body: str, command: str = "", env: dict | None = None,
         lang: str = "en") -> str:
    """A whole self-contained page: the verdict first, then the body (figures, tables), then the
    command that reproduces it and the versions."""
    T = TEXT.get(lang, TEXT["en"])
    env = env or {}
    versions = T["versions"].format(**{k: ltr(env.get(k, "?")) for k in ("initlab", "torch", "python")})
    direction = ' dir="rtl"' if lang == "he" else ""
    return (f'<!doctype html><html lang="{lang}"{direction}><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{escape(title)}</h1><div class=\"verdict\">{verdict}</div>{body}"
            f"<h2>{T['reproduce']}</h2><pre dir=\"ltr\">{escape(command or '')}</pre>"
            f"<p class='small'>{versions}</p></body></html>")


def render(path: str | Path, out: str | Path | None = None, lang: str = "en") -> Path:
    """Write the page for what ``path`` holds and return the page's path.

    ``path`` is a demo or train output folder (``results.json``), a diagnose output (a folder with
    ``diagnoses.json``, or that file), or a sweep's database (``runs.db`` or its folder). The page is
    ``out`` when given, else ``report.html`` beside what was read. ``lang="he"``: the demo in Hebrew."""
    path = Path(path)
    if lang not in TEXT:
        raise InitlabError(f"unknown language '{lang}'; use one of {', '.join(TEXT)}.")
    folder = path if path.is_dir() else path.parent
    target = Path(out) if out else folder / "report.html"
    if (folder / "results.json").is_file() and (path.is_dir() or path.name == "results.json"):
        return _render_experiment(folder, target, lang)
    if lang != "en":
        raise InitlabError(f"--lang {lang} is for the demo's report; this is not a demo folder.")
    if path.name == "diagnoses.json" or (path.is_dir() and (path / "diagnoses.json").is_file()):
        stored = json.loads((folder / "diagnoses.json").read_text())
        verdict, body = _diagnose_body(stored["diagnoses"], folder)
        target.write_text(page("initlab diagnose", verdict, body, stored.get("command", ""),
                               stored.get("environment")), encoding="utf-8")
        return target
    db = path if path.suffix == ".db" else path / "runs.db"
    if db.is_file():
        from .sweep_report import sweep_page

        target.write_text(sweep_page(db, target.parent), encoding="utf-8")
        return target
    raise InitlabError(f"'{path}' is not something initlab can report on: give a demo or train folder "
                       f"(results.json), a diagnose folder (diagnoses.json) or a sweep database (runs.db).")


def _render_experiment(folder: Path, target: Path, lang: str) -> Path:
    from . import plots
    from .experiment import load

    doc = load(folder)
    plots.experiment_figures(doc, folder)
    return write(folder, doc, target, lang)


def write(out: str | Path, doc: dict, path: str | Path | None = None, lang: str = "en") -> Path:
    """Write the page for the stored experiment ``doc`` (from :func:`initlab.experiment.load`) whose
    figures lie in ``out``; returns the page's path (``out/index.html`` unless ``path``)."""
    out = Path(out)
    if doc.get("kind") == "demo":
        title = TEXT[lang]["title"]
        verdict, body = _demo_body(doc, out, lang)
    else:
        title = f"initlab: {doc['results'][0]['scheme']}"
        verdict, body = _train_body(doc, out)
    path = Path(path) if path else out / "index.html"
    path.write_text(page(title, verdict, body, doc.get("command", ""), doc.get("environment"), lang),
                    encoding="utf-8")
    return path
