"""An output folder -> one self-contained HTML page (``index.html``): the figures embedded as data
URIs, the CSS inline, no script and no network request. It reads the store; it never trains.
Every string that comes from a user or a run is escaped.
"""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1100px;margin:0 auto;
padding:1rem 1.2rem;line-height:1.5;color:#1d1d1f}
h1{font-size:1.7rem;margin-bottom:.2rem} h2{margin-top:2rem;border-bottom:1px solid #ddd}
img{max-width:100%;height:auto;border:1px solid #eee}
table{border-collapse:collapse;font-size:.92rem;margin:1rem 0;display:block;overflow-x:auto}
th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:right} th{background:#f4f4f6}
td:first-child,th:first-child{text-align:left}
.verdict{background:#f0f6ff;border-left:4px solid #1f3a93;padding:.6rem 1rem}
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


def results_table(rows: list[dict]) -> str:
    """The comparison table as HTML."""
    head = ("<tr><th>scheme</th><th>train accuracy</th><th>test accuracy</th><th>final loss</th>"
            "<th>step test accuracy first reached 90%</th><th>effective width per hidden layer</th>"
            "<th>diverged</th></tr>")
    body = []
    for r in rows:
        width = ("n/a (diverged)" if r["effective_width"] is None else
                 " / ".join(f"{e} of {w}" for e, w in zip(r["effective_width"], r["width"])))
        div = f"at step {r['diverged_step']}" if r["diverged"] else "no"
        body.append("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in [
            r["scheme"], _fmt(r["train_accuracy"]), _fmt(r["test_accuracy"]), _fmt(r["final_loss"], 4),
            "never" if r["steps_to_90"] is None else r["steps_to_90"], width, div]) + "</tr>")
    return f"<table>{head}{''.join(body)}</table>"


def _row(doc: dict, role: str) -> dict | None:
    return next((r for r in doc["results"] if r.get("role") == role), None)


def _demo_sections(doc: dict, out: Path) -> str:
    c = doc["config"]
    const, default, xavier = _row(doc, "symmetry"), _row(doc, "default"), _row(doc, "exercise")
    he, small, large = _row(doc, "variance"), _row(doc, "vanishing"), _row(doc, "exploding")
    baseline = doc["baseline"]["logistic_regression_test_accuracy"]
    net = " &rarr; ".join(["2", *map(str, c["hidden"]), "1"])
    sym = doc.get("symmetry", {})
    traces = sym.get("traces", {})
    t = {k: v["effective_width"] for k, v in traces.items()}
    large_txt = (f"diverges: the loss or a parameter becomes NaN or infinite at step {large['diverged_step']}"
                 if large["diverged"] else f"ends with loss {_fmt(large['final_loss'], 4)}")
    return f"""
<div class="verdict"><b>Verdict.</b> On the same data and seed, the {net} {escape(c['activation'])}
network trained from <b>PyTorch's default</b> ({_fmt(default['test_accuracy'])} test accuracy), from
<b>Xavier</b> ({_fmt(xavier['test_accuracy'])}) and from <b>He</b> ({_fmt(he['test_accuracy'])}).
From a <b>constant</b> it behaved like a single neuron ({_fmt(const['test_accuracy'])}; a straight line,
logistic regression, gets {_fmt(baseline)}). With weights too <b>small</b> the loss did not move
({_fmt(small['final_loss'], 4)}, chance is 0.6931); with weights too <b>large</b> it {large_txt}.</div>

<h2>1. Why the starting point matters</h2>
<p>Every network below is the same: {net}, {escape(c['activation'])} activations, trained with
{escape(c['optimizer'])} (learning rate {c['lr']}) for {c['steps']} steps on {c['n']} points of
<code>make_moons</code> (noise {c['noise']}), the same data and the same seed. Only the initial
parameters differ, and so does everything that follows.</p>
{_img(out / 'contours.png', 'probability contours, one panel per scheme')}
<p class="small">Each panel shows the trained network's probability that a point is black: contour lines
at 0.1, 0.2, ..., 0.9, each labelled, the thick one at 0.5 is the decision boundary.</p>

<h2>2. Symmetry</h2>
<p>With every weight and bias equal to {const['spec']['params'].get('value')}, all neurons of a layer compute
the same function, receive the same gradient and take the same step, so they stay equal for ever.
After training, initlab counts the distinct neurons per hidden layer (the <i>effective width</i>):
<b>{_fmt(const['effective_width'])}</b> out of {_fmt(const['width'])}. The deep, wide network is one
neuron per layer, and its boundary is a straight line: test accuracy {_fmt(const['test_accuracy'])},
against {_fmt(baseline)} for logistic regression.</p>
<p>Exact symmetry is a property of exact arithmetic. In float32 the CPU's matrix kernels may round some
output columns differently; plain SGD keeps such differences at the level of rounding, but Adam divides
each gradient by its own running scale and can amplify them until the symmetry breaks. The figure
trains a small {escape(' -> '.join(['2', *map(str, sym.get('network', {}).get('hidden', [])), '1']))}
tanh network from a constant with both optimizers in float32 and float64. Effective widths at the end:
{escape(', '.join(f'{k}: {v}' for k, v in t.items()))}.</p>
{_img(out / 'symmetry.png', 'largest difference between neurons over the steps')}

<h2>3. Requirement 1: break the symmetry</h2>
<p>Random initialization gives every neuron its own starting point. From PyTorch's default the same
network keeps {_fmt(default['effective_width'])} distinct neurons and draws a curved boundary
(test accuracy {_fmt(default['test_accuracy'])}).</p>

<h2>4. Scale: vanishing and exploding</h2>
<p>Random is not enough. With <code>normal(std=0.01)</code> every layer shrinks the signal, the output is
almost the same for every point, and the gradients reaching the first layers are tiny: the loss stays
at {_fmt(small['final_loss'], 4)} (it starts at log 2 = 0.6931), the vanishing gradient. With
<code>normal(std=3)</code> every layer multiplies the signal: the outputs and the gradients are huge and
the optimizer {large_txt}, the exploding gradient.</p>
{_img(out / 'curves.png', 'loss and test accuracy over the steps')}
<p>Inside the network, layer by layer (rows) and step by step (columns): with the small std each layer's
output is smaller than the one before and nothing changes over the steps (flat); with the large std
every layer multiplies the output and the gradients by a large factor, until the numbers overflow.</p>
{_img(out / 'scale.png', 'per-layer output std and gradient norm over the steps')}

<h2>5. Rules that keep the scale</h2>
<p>Xavier (Glorot and Bengio 2010) sets Var(w) = 2 / (K_in + K_out), a compromise between keeping the
forward values (1 / K_in) and the backward gradients (1 / K_out) at the same order of magnitude from layer to
layer. He et al. (2015) use 2 / K_in for ReLU, whose zeros halve the variance at every layer. Both trained here:
{_fmt(xavier['test_accuracy'])} and {_fmt(he['test_accuracy'])}.</p>

<h2>6. PyTorch's default</h2>
<p><code>nn.Linear.reset_parameters()</code> draws weights and biases from U[-1/sqrt(K_in), 1/sqrt(K_in)].
For the hidden layers of width {c['hidden'][0]} that is a bound of {1 / c['hidden'][0] ** 0.5:.3f}.</p>

<h2>7. The exercise: Xavier against the default</h2>
<p>Xavier's bound is sqrt(6) / sqrt(K_in + K_out), drawn with <code>torch.nn.init.uniform_</code>.
Default: test accuracy {_fmt(default['test_accuracy'])}, 90% reached at step
{_fmt(default['steps_to_90'])}. Xavier: {_fmt(xavier['test_accuracy'])}, 90% at step
{_fmt(xavier['steps_to_90'])}. The full comparison:</p>
{results_table(doc['results'])}
"""


def _train_sections(doc: dict, out: Path) -> str:
    r = doc["results"][0]
    c = doc["config"]
    status = (f'<span class="bad">diverged at step {r["diverged_step"]}</span>' if r["diverged"]
              else f'test accuracy <b>{_fmt(r["test_accuracy"])}</b>')
    return f"""
<div class="verdict"><b>{escape(r['scheme'])}</b> on {escape(c['dataset'])}: {status}; effective width
{escape(_fmt(r['effective_width']))} of {escape(_fmt(r['width']))}.</div>
{_img(out / 'contours.png', 'probability contours')}
{_img(out / 'curves.png', 'loss and test accuracy over the steps')}
{_img(out / 'scale.png', 'per-layer output std and gradient norm over the steps')}
{results_table(doc['results'])}
"""


def render(out: str | Path) -> Path:
    """Read the experiment stored in ``out``, draw its figures there and write its ``index.html``."""
    from . import plots
    from .experiment import load

    doc = load(out)
    plots.experiment_figures(doc, out)
    return write(out, doc)


def write(out: str | Path, doc: dict, path: str | Path | None = None) -> Path:
    """Write the page for the stored experiment ``doc`` (from :func:`initlab.experiment.load`) whose
    figures lie in ``out``; returns the page's path (``out/index.html`` unless ``path``)."""
    out = Path(out)
    demo = doc.get("kind") == "demo"
    title = "initlab demo: parameter initialization" if demo else f"initlab: {doc['results'][0]['scheme']}"
    body = _demo_sections(doc, out) if demo else _train_sections(doc, out)
    env = doc.get("environment", {})
    footer = (f"<h2>Reproduce</h2><pre>{escape(doc.get('command') or '')}</pre>"
              f"<p class='small'>initlab {escape(str(env.get('initlab')))}, torch {escape(str(env.get('torch')))}, "
              f"Python {escape(str(env.get('python')))}.</p>")
    html = (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{escape(title)}</h1>{body}{footer}</body></html>")
    path = Path(path) if path else out / "index.html"
    path.write_text(html, encoding="utf-8")
    return path
