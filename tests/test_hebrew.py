"""The Hebrew pages and figures, checked as a Hebrew reader reads them.

On the page: every piece of code, formula and number reads left to right inside the right-to-left
text, checked by where chromium puts each glyph (the DOM's text alone would read right even when the
screen shows ``_torch.nn.init.uniform``); nothing is left in English but names. In the figures:
every word is Hebrew, drawn in reading order (right to left, with code and numbers left to right),
in a font that has the letters. A train folder's page is Hebrew throughout; a folder with no Hebrew
page is refused in one line.
"""

import base64
import re
import unicodedata
import warnings
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from initlab import demo, plots, report
from initlab.cli import main
from initlab.errors import InitlabError
from initlab.experiment import load
from initlab.report.text import RTL, TEXT, figure_file, visual_order

HE, EN = TEXT["he"], TEXT["en"]
#: The code spans of the Hebrew demo page, as the source writes them.
CODE = ["make_moons", "normal(std=0.01)", "normal(std=3)", "nn.Linear.reset_parameters()", "torch.nn.init.uniform_"]
#: Names a Hebrew text keeps in Latin letters without isolating them (one word, no punctuation in it).
NAMES = {"Adam", "He", "NaN", "PyTorch", "ReLU", "SGD", "Xavier", "initlab", "tanh"}
#: English words of the figures that must not be in a Hebrew figure.
ENGLISH_FIGURE_WORDS = ["step", "layer", "Loss", "loss", "accuracy", "diverged", "effective width", "difference",
                        "Probability", "white", "black", "std of", "gradient", "log scale", "symmetric"]


def hebrew(text: str) -> bool:
    return any(unicodedata.bidirectional(c) in ("R", "AL") for c in text)


# ---------------------------------------------------------------------------------------------------
# a small demo, trained once (about 10 s): the real runs, shorter


@pytest.fixture(scope="module")
def mini_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    threads = torch.get_num_threads()
    cfg = demo.config(quick=True, steps=40, n=200)
    records, extra = demo.run(cfg)
    torch.set_num_threads(threads)
    demo.write(out, cfg, records, extra, command="initlab demo --quick")
    page = report.render(out, out / "he.html", lang="he")
    return {"out": out, "doc": load(out), "page": page}


@pytest.fixture(scope="module")
def train_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    run = CliRunner().invoke
    result = run(main, ["train", "--scheme", "normal", "--param", "std=3", "--depth", "4", "--width", "32",
                        "--steps", "30", "--n", "100", "--no-progress", "--out", str(root / "train")])
    assert result.exit_code == 0, result.output
    result = run(main, ["diagnose", "--depth", "3", "--width", "16", "--input-batch", "32", "--out",
                        str(root / "diag")])
    assert result.exit_code == 0, result.output
    return root


# ---------------------------------------------------------------------------------------------------
# the words


def _keys(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_keys(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def test_every_english_text_has_a_hebrew_one_with_the_same_placeholders():
    en, he = _keys(EN), _keys(HE)
    assert en.keys() == he.keys()
    for key, text in en.items():
        if isinstance(text, str):
            fields = lambda t: sorted(re.findall(r"{(\w+)}", t))  # noqa: E731
            assert fields(text) == fields(he[key]), key


def test_every_piece_of_code_in_a_hebrew_template_is_marked_left_to_right():
    for key, text in _keys(HE).items():
        if isinstance(text, str):
            assert "<code>" not in text, key
            assert text.count("<code") == text.count('<code dir="ltr">'), key


def test_only_a_right_to_left_language_is_reordered():
    assert RTL == {"he"}
    assert figure_file("contours") == "contours" and figure_file("contours", "he") == "contours-he"
    assert visual_order("normal(std=3) (diverged)") == "normal(std=3) (diverged)"


@pytest.mark.parametrize("text, drawn", [
    ("אב גד", "דג בא"),
    ("normal(std=3) (בצעד 4)", "(4 דעצב) normal(std=3)"),            # brackets mirrored, code kept whole
    ("מתחיל ב-log 2 = 0.6931.", ".log 2 = 0.6931-ב ליחתמ"),          # a formula with its spaces
    ("הגיע ל-90%", "90%-ל עיגה"),                                  # a hyphen after a letter is not a sign
    ("ערך -0.5 כאן", "ןאכ -0.5 ךרע"),                              # a sign before a number is
    ("רוחב 7, 7 בסוף", "ףוסב 7, 7 בחור"),
    ("p = 0.500 ± 9e-08 על הנתונים", "םינותנה לע p = 0.500 ± 9e-08"),
    ("שאלה?\nשורה abc.", "?הלאש\n.abc הרוש"),                       # line by line
])
def test_visual_order_draws_hebrew_from_the_right(text, drawn):
    """Where matplotlib draws glyphs in the order it is given them (before 3.11)."""
    assert visual_order(text) == drawn


def test_rtl_text_gives_matplotlib_what_it_needs(monkeypatch):
    monkeypatch.setattr(plots, "draws_bidi", lambda: True)
    assert plots.rtl_text("normal(std=3) (בצעד 4)") == "\u200fnormal(std=3) (בצעד 4)"
    assert plots.rtl_text("א\nב") == "\u200fא\n\u200fב"
    assert plots.rtl_text("fc1") == "fc1"
    monkeypatch.setattr(plots, "draws_bidi", lambda: False)
    assert plots.rtl_text("normal(std=3) (בצעד 4)") == "(4 דעצב) normal(std=3)"


# ---------------------------------------------------------------------------------------------------
# the figures


def drawn_order(text: str) -> str:
    """The characters of ``text`` from left to right as matplotlib places them on the figure."""
    if not plots.draws_bidi():
        return text.replace("\u200f", "")
    from matplotlib import font_manager, ft2font

    font = ft2font.FT2Font(font_manager.findfont(plots.RTL_FONT))
    font.set_size(12, 72)
    lines = []
    for line in text.split("\n"):
        glyphs = sorted(font._layout(line, ft2font.LoadFlags.NO_HINTING), key=lambda g: g.x)
        lines.append("".join(g.char for g in glyphs).replace("\u200f", ""))
    return "\n".join(lines)


def assert_reads_right_to_left(source: str, shown: str) -> None:
    """``shown`` (what matplotlib was given) is drawn so that a Hebrew reader reads ``source``: its
    Hebrew letters from the right in the source's order, each Latin or numeric token left to right."""
    for src_line, line in zip(source.split("\n"), drawn_order(shown).split("\n")):
        assert [c for c in reversed(line) if hebrew(c)] == [c for c in src_line if hebrew(c)], (src_line, line)
        for token in re.findall(r"[A-Za-z0-9_.=]+", src_line):
            assert token in line, (token, line)


def figure_texts(fig) -> list:
    from matplotlib.text import Text

    return [t for t in fig.findobj(Text) if t.get_text().strip() and t.get_visible()]


def hebrew_figures(doc) -> dict:
    figs = {"contours": plots.contour_panels(doc, lang="he")}
    fig = plots.plt.figure(figsize=(12, 4.6))
    plots.training_curves(doc["histories"], fig.subplots(1, 2), lang="he",
                          diverged={r["scheme"]: r["diverged_step"] for r in doc["results"]},
                          signals={r["scheme"]: r.get("output_signal") for r in doc["results"]})
    figs["curves"] = fig
    fig = plots.plt.figure(figsize=(7.5, 4.8))
    plots.symmetry_trace(doc["symmetry"]["traces"], fig.gca(), lang="he")
    figs["symmetry"] = fig
    fig = plots.plt.figure(figsize=(12, 3.6))
    plots.tracking_heatmaps(doc["tracked"]["normal(std=0.01)"], fig.subplots(1, 2), title="normal(std=0.01)",
                            lang="he")
    figs["scale"] = fig
    return figs


def test_the_hebrew_figures_have_no_english_word(mini_demo):
    for name, fig in hebrew_figures(mini_demo["doc"]).items():
        for t in figure_texts(fig):
            text = t.get_text()
            for word in ENGLISH_FIGURE_WORDS:
                assert word not in text, (name, text)
        for ax in fig.axes:
            for label in (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()):
                assert not label or hebrew(label) or re.fullmatch(r"[\w().=]+", label), (name, label)


def test_the_hebrew_figures_read_from_the_right(mini_demo):
    """Every title, axis label, legend entry and note: drawn so that its Hebrew reads from the right
    and its code (``normal(std=3)``) and numbers from the left."""
    checked = 0
    for name, fig in hebrew_figures(mini_demo["doc"]).items():
        for t in figure_texts(fig):
            shown = t.get_text()
            if hebrew(shown):
                source = shown.replace("\u200f", "") if plots.draws_bidi() else None
                if source is not None:
                    assert_reads_right_to_left(source, shown)
                checked += 1
    assert checked >= 15


def test_the_hebrew_figures_are_drawn_in_a_font_with_hebrew_letters(mini_demo, tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        paths = plots.experiment_figures(mini_demo["doc"], tmp_path, lang="he")
    assert not [w for w in caught if "missing from font" in str(w.message)]
    assert sorted(p.name for p in paths.values()) == ["contours-he.png", "curves-he.png", "scale-he.png",
                                                      "symmetry-he.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths.values())  # no English


def test_a_hebrew_legend_reads_from_the_right(mini_demo):
    fig = plots.plt.figure(figsize=(12, 4.6))
    _, acc_ax = plots.training_curves(mini_demo["doc"]["histories"], fig.subplots(1, 2), lang="he")
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    legend = acc_ax.get_legend()
    names = list(mini_demo["doc"]["histories"])
    entries = {t.get_text(): (t.get_window_extent(r), h.get_window_extent(r))
               for t, h in zip(legend.get_texts(), legend.legend_handles) if t.get_text()}
    for text_box, line_box in entries.values():
        assert line_box.x0 >= text_box.x1  # the line after the words
    first, fourth = entries[names[0]][0], entries[names[3]][0]  # 6 entries in 2 columns: 0-2 right, 3-5 left
    assert first.x0 > fourth.x1 and abs(first.y0 - fourth.y0) < 3


def test_the_english_figures_stay_english(mini_demo):
    out = mini_demo["out"]
    for name in ("contours", "curves", "scale", "symmetry"):
        assert (out / f"{name}.png").is_file() and (out / f"{name}.svg").is_file()
        assert (out / f"{name}-he.png").is_file()  # the Hebrew page's, beside them
    fig = plots.contour_panels(mini_demo["doc"])
    assert not any(hebrew(t.get_text()) for t in figure_texts(fig))


# ---------------------------------------------------------------------------------------------------
# the pages, as HTML


def test_the_hebrew_demo_page_embeds_the_hebrew_figures(mini_demo):
    html = mini_demo["page"].read_text(encoding="utf-8")
    out = mini_demo["out"]
    for name in ("contours", "curves", "scale", "symmetry"):
        data = base64.b64encode((out / f"{name}-he.png").read_bytes()).decode("ascii")
        assert data in html, name
        assert f'alt="{HE["alt"][name]}"' in html
    assert 'alt="probability' not in html


def test_a_train_folder_s_page_is_hebrew_throughout(train_folder):
    page = report.render(train_folder / "train", train_folder / "train" / "he.html", lang="he")
    html = page.read_text(encoding="utf-8")
    assert '<html lang="he" dir="rtl">' in html
    verdict = re.search(r'<div class="verdict">(.*?)</div>', html, re.S).group(1)
    assert "התבדר בצעד" in verdict and "רוחב אפקטיבי" in verdict
    for english in ("diverged at step", "test accuracy", "effective width", " on ", "n/a", "no accuracy"):
        assert english not in re.sub(r"<pre.*?</pre>", "", html, flags=re.S), english
    assert base64.b64encode((train_folder / "train" / "curves-he.png").read_bytes()).decode("ascii") in html


def test_a_folder_without_a_hebrew_page_is_refused_in_one_line(train_folder):
    with pytest.raises(InitlabError, match=r"--lang he is for the demo's report and a train folder's") as e:
        report.render(train_folder / "diag", lang="he")
    assert "\n" not in str(e.value)
    result = CliRunner().invoke(main, ["report", str(train_folder / "diag"), "--lang", "he"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


# ---------------------------------------------------------------------------------------------------
# the pages, in a browser, read by where the glyphs are


#: For each element: its text, and its glyphs read as a screen shows them (lines top to bottom, each
#: left to right), spaces left out; computed direction and bidi isolation.
READ = """
sel => Array.from(document.querySelectorAll(sel)).map(e => {
  const glyphs = [], walker = document.createTreeWalker(e, NodeFilter.SHOW_TEXT);
  let n;
  while ((n = walker.nextNode())) {
    for (let i = 0; i < n.length; i++) {
      if (/\\s/.test(n.data[i])) continue;
      const r = document.createRange(); r.setStart(n, i); r.setEnd(n, i + 1);
      const b = r.getBoundingClientRect();
      glyphs.push([Math.round(b.top + b.height / 2), b.left, n.data[i]]);
    }
  }
  const lines = [];
  for (const g of glyphs) {
    let line = lines.find(l => Math.abs(l.y - g[0]) < 4);
    if (!line) { line = {y: g[0], glyphs: []}; lines.push(line); }
    line.glyphs.push(g);
  }
  lines.sort((a, b) => a.y - b.y);
  const shown = lines.map(l => l.glyphs.sort((a, b) => a[1] - b[1]).map(g => g[2]).join("")).join("");
  const style = getComputedStyle(e);
  return {text: e.textContent, shown: shown, direction: style.direction, bidi: style.unicodeBidi};
})
"""
OUTSIDE_ISOLATES = """
() => { const c = document.body.cloneNode(true);
  c.querySelectorAll('code, pre, [dir=ltr], h1').forEach(e => e.remove());
  return c.innerText; }
"""



def open_page(browser, path: Path, width: int = 1100):
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.goto(path.resolve().as_uri())
    page.wait_for_load_state("load")
    return page


@pytest.mark.parametrize("width", [1100, 390])
def test_a_hebrew_reader_reads_the_code_as_written(browser, mini_demo, width):
    page = open_page(browser, mini_demo["page"], width)
    assert page.get_attribute("html", "dir") == "rtl"
    codes = page.evaluate(READ, "code")
    assert [c["text"] for c in codes] == CODE  # what the DOM holds
    for c in codes:  # and what the screen shows, glyph by glyph
        assert c["shown"] == c["text"], c
        assert c["direction"] == "ltr" and c["bidi"] == "isolate", c
    page.context.close()


@pytest.mark.parametrize("width", [1100, 390])
def test_every_formula_and_number_reads_left_to_right(browser, mini_demo, width):
    page = open_page(browser, mini_demo["page"], width)
    spans = page.evaluate(READ, "[dir=ltr]")
    assert len(spans) > 40
    for s in spans:
        assert s["shown"] == re.sub(r"\s", "", s["text"]), s
        assert s["direction"] == "ltr" and s["bidi"] in ("isolate", "embed", "plaintext"), s
    texts = [s["text"] for s in spans]
    assert "2 -> 32 -> 32 -> 32 -> 32 -> 1" in texts and "log 2 = 0.6931" in texts
    assert "U[-1/sqrt(K_in), 1/sqrt(K_in)]" in texts and "Var(w) = 2 / (K_in + K_out)" in texts
    # the footer: the versions read as one left-to-right phrase
    footer = page.evaluate(READ, "p.small:last-of-type [dir=ltr]")[0]
    assert re.fullmatch(r"initlab \S+, torch \S+, Python \S+", footer["text"])
    assert footer["shown"] == re.sub(r"\s", "", footer["text"])
    page.context.close()


def test_nothing_but_names_is_left_in_english(browser, mini_demo, train_folder):
    train_page = report.render(train_folder / "train", train_folder / "train" / "he.html", lang="he")
    for path in (mini_demo["page"], train_page):
        page = open_page(browser, path)
        words = set(re.findall(r"[A-Za-z][A-Za-z0-9_./]*", page.evaluate(OUTSIDE_ISOLATES)))
        assert words <= NAMES, (path.name, words - NAMES)
        assert re.search("[\u0590-\u05ff]{4,}", page.inner_text(".verdict"))
        page.context.close()
