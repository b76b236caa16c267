"""The page of a demo or a train folder (``results.json``): the chapter's story, or one run's
verdict, with its figures and the comparison table, in English or in Hebrew."""

from __future__ import annotations

from pathlib import Path

from ..escaping import esc
from ..experiment import accuracy_text, signal_text
from .base import fmt as _fmt, img as _img, ltr, page, scroll_box
from .text import RTL, TEXT, figure_file


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


def _hidden(c: dict) -> list:
    """The hidden widths a stored config holds: ``depth`` and ``width`` (a RunConfig), or an older
    file's ``hidden``. Read as stored, never validated here: a crafted value is escaped on the page."""
    return list(c["hidden"]) if "hidden" in c else [c["width"]] * int(c["depth"])


def _demo_values(doc: dict, out: Path, T: dict) -> dict:
    c = doc["config"]
    const, default, xavier = _row(doc, "symmetry"), _row(doc, "default"), _row(doc, "exercise")
    he, small, large = _row(doc, "variance"), _row(doc, "vanishing"), _row(doc, "exploding")
    sym = doc.get("symmetry", {})
    hidden = _hidden(c)
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


def render_experiment(folder: Path, target: Path, lang: str) -> Path:
    from .. import plots
    from ..experiment import load

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
