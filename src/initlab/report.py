"""An output folder -> one self-contained HTML page (``index.html``): the figures embedded as data
URIs, the CSS inline, no script and no network request. It reads the store; it never trains.
Every string that comes from a user or a run is escaped.
"""

from __future__ import annotations

import base64
import math
from pathlib import Path

from .errors import InitlabError
from .escaping import esc
from .experiment import accuracy_text, signal_text
from .outputs import check_diagnoses, read_json
from .report_text import RTL, TEXT, figure_file

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1100px;margin:0 auto;
padding:1rem 1.2rem;line-height:1.5;color:#1d1d1f;overflow-wrap:break-word}
h1{font-size:1.7rem;margin-bottom:.2rem} h2{margin-top:2rem;border-bottom:1px solid #ddd}
img{max-width:100%;height:auto}
.figure{overflow-x:auto;margin:1rem 0;direction:ltr} .figure img{display:block;border:1px solid #eee}
[dir=rtl] .figure img{margin-left:auto}
[dir=rtl] span[dir=ltr],[dir=rtl] code[dir=ltr]{display:inline-block;max-width:100%}
.scroll{overflow-x:auto;margin:1rem 0} table{border-collapse:collapse;font-size:.92rem}
th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:end} th{background:#f4f4f6}
td:first-child,th:first-child{text-align:start} .settings td{text-align:start}
.numbers td{white-space:nowrap}
.verdict{background:#f0f6ff;border-inline-start:4px solid #1f3a93;padding:.6rem 1rem}
.bad{color:#a00000} .good{color:#116611}
code,pre{background:#f6f6f6;padding:.1rem .3rem;border-radius:3px}
pre{padding:.6rem;overflow-x:auto;white-space:pre-wrap;overflow-wrap:anywhere} .small{color:#666;font-size:.85rem}
@media (max-width:600px){body{padding:.6rem .7rem} h1{font-size:1.35rem} h2{font-size:1.2rem}
table{font-size:.85rem} th,td{padding:.25rem .4rem}}
"""

#: Every page says it is initlab's, so a command may rewrite a page it wrote and refuse anyone else's file.
GENERATOR = '<meta name="generator" content="initlab">'

#: A figure is never shown smaller than one CSS pixel per point it was drawn at: its 8-point labels
#: (legends, cell values, contour labels) stay at least 8 CSS px tall. Where that is wider than the
#: screen (a phone), the figure scrolls sideways in its own box; the page itself never does.
CSS_PX_PER_POINT = 1.0


def png_size(data: bytes) -> tuple[int, int, float]:
    """A PNG's width and height in pixels and its dots per inch (its ``pHYs`` chunk; 96 without one)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise InitlabError("not a PNG image.")
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    at = data.find(b"pHYs", 8, max(data.find(b"IDAT"), 8))
    if at < 0 or data[at + 12] != 1:  # unit 1: pixels per metre
        return width, height, 96.0
    return width, height, int.from_bytes(data[at + 4:at + 8], "big") * 0.0254


def scroll_box(table_html: str) -> str:
    """A table in a box of its own that scrolls sideways when the table is wider than the screen."""
    return f'<div class="scroll">{table_html}</div>'


def _img(path: Path, alt: str) -> str:
    """The PNG at ``path`` embedded in a figure box: as wide as the page allows, never narrower than
    :data:`CSS_PX_PER_POINT` per point it was drawn at (then its box scrolls sideways)."""
    if not path.is_file():
        return ""
    raw = path.read_bytes()
    width, height, dpi = png_size(raw)
    least = math.ceil(width * 72 / dpi * CSS_PX_PER_POINT)
    data = base64.b64encode(raw).decode("ascii")
    return (f'<div class="figure"><img src="data:image/png;base64,{data}" alt="{esc(alt)}" width="{width}" '
            f'height="{height}" style="min-width:{min(least, width)}px"></div>')


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
    head = "<tr>" + "".join(f"<th>{esc(c)}</th>" for c in T["columns"]) + "</tr>"
    body = []
    for r in rows:
        width = (T["na_diverged"] if r["effective_width"] is None else
                 " / ".join(f"{e} {T['of']} {w}" for e, w in zip(r["effective_width"], r["width"])))
        div = T["at_step"].format(step=r["diverged_step"]) if r["diverged"] else T["no"]
        scheme = ltr(r["scheme"]) if lang in RTL else esc(r["scheme"])
        cells = [scheme] + [accuracy_text(r, split, words=T, number=ltr)
                                              for split in ("train", "test")] + [
            ltr(_fmt(r["final_loss"], 4)) if r["final_loss"] is not None else esc(T["accuracy"]["missing"]),
            _steps(r["steps_to_90"], T), esc(width), esc(div)]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"<table>{head}{''.join(body)}</table>"


def _steps(step: int | None, T: dict) -> str:
    return esc(T["never"]) if step is None else ltr(step)


def _row(doc: dict, role: str) -> dict | None:
    return next((r for r in doc["results"] if r.get("role") == role), None)


def ltr(value) -> str:
    """A number, formula or code kept left to right inside a right-to-left page (and escaped)."""
    return f'<span dir="ltr">{esc(value)}</span>'


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
        "sym_widths": ", ".join(ltr(f"{k}: {v['effective_width']}") for k, v in sym.get("traces", {}).items()),
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
    img = lambda name: _img(out / f"{figure_file(name, lang)}.png", T["alt"][name])  # noqa: E731
    body = f"""
<h2>{T['s1_title']}</h2><p>{f('s1')}</p>
{img('contours')}<p class="small">{T['s1_caption']}</p>
<h2>{T['s2_title']}</h2><p>{f('s2')}</p><p>{f('s2_precision')}</p>
{img('symmetry')}
<h2>{T['s3_title']}</h2><p>{f('s3')}</p>
<h2>{T['s4_title']}</h2><p>{f('s4')}</p>
{img('curves')}
<p>{f('s4_inside')}</p>{img('scale')}
<h2>{T['s5_title']}</h2><p>{f('s5')}</p>
<h2>{T['s6_title']}</h2><p>{f('s6')}</p>
<h2>{T['s7_title']}</h2><p>{f('s7')}</p>
{scroll_box(results_table(doc['results'], lang))}
"""
    return f('verdict'), body


def _train_body(doc: dict, out: Path, lang: str = "en") -> tuple[str, str]:
    T = TEXT[lang]
    mark = ltr if lang in RTL else (lambda v: esc(v))  # names and numbers left to right
    r = doc["results"][0]
    c = doc["config"]
    status = (T["train_diverged"].format(step=mark(r["diverged_step"])) if r["diverged"]
              else T["train_accuracy"].format(acc=accuracy_text(r, words=T, number=ltr)))
    width = mark(_fmt(r["effective_width"])) if r["effective_width"] is not None else T["accuracy"]["missing"]
    verdict = T["train_verdict"].format(scheme=mark(r["scheme"]), dataset=mark(c["dataset"]), status=status,
                                        width=width, widths=mark(_fmt(r["width"])))
    img = lambda name, alt: _img(out / f"{figure_file(name, lang)}.png", T["alt"][alt])  # noqa: E731
    body = f"""
{img('contours', 'contours_one')}
{img('curves', 'curves')}
{img('scale', 'scale')}
{scroll_box(results_table(doc['results'], lang))}
"""
    return verdict, body


def _diagnose_body(docs: list[dict], out: Path) -> tuple[str, str]:
    items = "".join(f"<li><b>{esc(d.get('scheme'))}</b>: {esc(d['verdict']['summary'])}. "
                    f"{esc(d['verdict']['message'])}</li>" for d in docs)
    from .diagnose import layers_html

    tables = [f"<h3>{esc(d.get('scheme'))}</h3>{scroll_box(layers_html(d['layers']))}" for d in docs]
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
    direction = ' dir="rtl"' if lang in RTL else ""
    return (f'<!doctype html><html lang="{esc(lang)}"{direction}><head><meta charset="utf-8">{GENERATOR}'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{esc(title)}</h1><div class=\"verdict\">{verdict}</div>{body}"
            f"<h2>{T['reproduce']}</h2><pre dir=\"ltr\">{esc(command or '')}</pre>"
            f"<p class='small'>{versions}</p></body></html>")


def target(path: str | Path, out: str | Path | None = None) -> Path:
    """The page :func:`render` writes for ``path``: ``out`` when given, else ``report.html`` beside
    what is read."""
    path = Path(path)
    return Path(out) if out else (path if path.is_dir() else path.parent) / "report.html"


def written_by_initlab(page_path: str | Path) -> bool:
    """Whether the file at ``page_path`` is a page initlab wrote (its head names initlab as generator)."""
    try:
        with open(page_path, "rb") as f:
            return GENERATOR.encode() in f.read(4096)
    except OSError:
        return False


def asset(page_path: Path, name: str) -> Path:
    """Where a page's figure ``name`` goes: beside the page, named after it (``notes/page-heatmap.png``
    for ``notes/page.html``), so a page never writes over files that are not its own."""
    return page_path.with_name(f"{page_path.stem}-{name}.png")


def render(path: str | Path, out: str | Path | None = None, lang: str = "en") -> Path:
    """Write the page for what ``path`` holds and return the page's path.

    ``path`` is a demo or train output folder (``results.json``), a diagnose output (a folder with
    ``diagnoses.json``, or that file), or a sweep's database (``runs.db`` or its folder). The page is
    ``out`` when given, else ``report.html`` beside what was read (:func:`target`). What is read is
    checked first (:mod:`initlab.outputs`): a field of the wrong type is one :class:`InitlabError`.
    ``lang="he"``: a demo or train folder's page in Hebrew, with its figures drawn in Hebrew beside the
    English ones (``contours-he.png``); anything else is refused. A sweep's figures are written beside
    the page under names derived from it (:func:`asset`)."""
    path = Path(path)
    if lang not in TEXT:
        raise InitlabError(f"unknown language '{lang}'; use one of {', '.join(TEXT)}.")
    folder = path if path.is_dir() else path.parent
    page_path = target(path, out)
    if (folder / "results.json").is_file() and (path.is_dir() or path.name == "results.json"):
        return _render_experiment(folder, page_path, lang)
    if lang != "en":
        raise InitlabError(f"--lang {lang} is for the demo's report and a train folder's; this is neither.")
    if path.name == "diagnoses.json" or (path.is_dir() and (path / "diagnoses.json").is_file()):
        stored = check_diagnoses(read_json(folder / "diagnoses.json"), folder / "diagnoses.json")
        verdict, body = _diagnose_body(stored["diagnoses"], folder)
        page_path.write_text(page("initlab diagnose", verdict, body, stored.get("command", ""),
                                  stored.get("environment")), encoding="utf-8")
        return page_path
    db = path if path.suffix == ".db" else path / "runs.db"
    if db.is_file():
        from .sweep_report import sweep_page

        html = sweep_page(db, page_path.parent, prefix=f"{page_path.stem}-")
        page_path.write_text(html, encoding="utf-8")
        return page_path
    raise InitlabError(f"'{path}' is not something initlab can report on: give a demo or train folder "
                       f"(results.json), a diagnose folder (diagnoses.json) or a sweep database (runs.db).")


def _render_experiment(folder: Path, target: Path, lang: str) -> Path:
    from . import plots
    from .experiment import load

    doc = load(folder)
    plots.experiment_figures(doc, folder, lang)
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
        verdict, body = _train_body(doc, out, lang)
    path = Path(path) if path else out / "index.html"
    path.write_text(page(title, verdict, body, doc.get("command", ""), doc.get("environment"), lang),
                    encoding="utf-8")
    return path
