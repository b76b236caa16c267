"""Every kind of report, opened in a real browser (Debian's chromium, driven by Playwright), on a desk
and on a phone (390 x 844): nothing wider than the screen but what scrolls in its own box, and no
figure shrunk until its text cannot be read.

Screenshots go to ``$INITLAB_SCREENSHOTS`` (default: the tests' temporary folder) so they can be looked at.
"""

import base64
import io
import os
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from initlab import report
from initlab.cli import main

DESK = {"width": 1100, "height": 900}
PHONE = {"width": 390, "height": 844}
#: Figures label their legends, cells and contours in 8-point text; on screen it must stay this tall.
FIGURE_TEXT_PT, READABLE_PX = 8, 8.0



@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("reports")
    run = CliRunner().invoke
    assert run(main, ["demo", "--quick", "--no-progress", "--out", str(root / "demo")]).exit_code == 0
    assert run(main, ["train", "--scheme", "normal", "--param", "std=0.5", "--hidden", "8,8", "--steps", "30",
                      "--n", "100", "--no-progress", "--name", "<script>alert(1)</script>", "--out", str(root / "train")]
               ).exit_code == 0
    assert run(main, ["diagnose", "--hidden", "32x12", "--scheme", "xavier_uniform,he_normal", "--batch", "64",
                      "--out", str(root / "diag")]).exit_code == 0
    assert run(main, ["sweep", "--scheme", "default,constant", "--depth", "2", "--width", "8", "--seeds", "3",
                      "--steps", "100", "--n", "200", "--noise", "0.1", "--optimizer", "adam", "--lr", "0.05",
                      "--name", "tiny-sweep", "--no-progress", "--out", str(root / "sweep")]).exit_code == 0
    # shaped like the trainability preset (tanh, sigma_w^2 x depth), small enough to train in seconds
    assert run(main, ["sweep", "--scheme", "variance_scaling", "--param", "scale=0.5,2", "--param", "bias_std=0.2236",
                      "--activation", "tanh", "--dataset", "circles", "--noise", "0.1", "--depth", "2,24",
                      "--width", "16", "--steps", "150", "--n", "200", "--seeds", "3", "--name", "tiny-trainability",
                      "--no-progress", "--out", str(root / "trainability")]).exit_code == 0
    return root


def open_page(browser, path: Path, javascript: bool = True, viewport=DESK):
    """Load ``path``; return the page with the console errors, failed and outside requests it saw."""
    context = browser.new_context(java_script_enabled=javascript, viewport=viewport,
                                  is_mobile=viewport["width"] < 600, device_scale_factor=1)
    page = context.new_page()
    seen = {"errors": [], "failed": [], "outside": []}
    page.on("console", lambda m: m.type == "error" and seen["errors"].append(m.text))
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.on("requestfailed", lambda r: seen["failed"].append(r.url))
    page.on("request", lambda r: r.url.split(":")[0] not in ("file", "data") and seen["outside"].append(r.url))
    page.goto(path.resolve().as_uri())
    page.wait_for_load_state("load")
    return page, seen


def shots(outputs: Path) -> Path:
    folder = Path(os.environ.get("INITLAB_SCREENSHOTS") or outputs / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def figure_text_px(page) -> dict[str, float]:
    """Each figure's alt -> how tall its 8-point text is on screen, in CSS px: the point size at the
    PNG's own dots per inch (read from the PNG by Pillow), times its displayed over its natural width."""
    from PIL import Image

    images = page.evaluate("Array.from(document.images).map(i => [i.alt, i.src, i.naturalWidth, "
                           "i.clientWidth])")
    sizes = {}
    for alt, src, natural, shown in images:
        png = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        dpi = png.info["dpi"][0]
        assert png.size[0] == natural
        sizes[alt] = FIGURE_TEXT_PT * dpi / 72 * shown / natural
    return sizes


#: Elements that stick out of the screen on the right, unless a box around them scrolls sideways.
OUTSIDE = """() => {
  const inner = window.innerWidth, out = [];
  const scrolls = (e) => { for (let p = e.parentElement; p; p = p.parentElement) {
      const o = getComputedStyle(p).overflowX;
      if ((o === 'auto' || o === 'scroll') && p !== document.documentElement && p !== document.body)
        { const b = p.getBoundingClientRect(); return b.right <= inner + 0.5 && b.left >= -0.5; } }
    return false; };
  for (const e of document.body.querySelectorAll('*')) {
    const r = e.getBoundingClientRect();
    if (r.width && (r.right > inner + 0.5 || r.left < -0.5) && !scrolls(e)) out.push(e.tagName + '.' + e.className);
  }
  return out;
}"""


def check_layout(page, where: str):
    """No sideways scrolling of the page; every figure readable; tables and wide figures in boxes that scroll."""
    assert page.evaluate("document.documentElement.scrollWidth") <= page.evaluate("window.innerWidth"), where
    assert page.evaluate(OUTSIDE) == [], where
    for alt, px in figure_text_px(page).items():
        assert px >= READABLE_PX - 0.05, f"{where}: the 8-pt text of '{alt}' is {px:.1f} CSS px tall"
    shown = page.evaluate("Array.from(document.images).map(i => i.clientWidth / i.naturalWidth)")
    assert all(s <= 1.001 for s in shown), f"{where}: a figure is drawn larger than its pixels: {shown}"
    boxes = page.evaluate("Array.from(document.querySelectorAll('table')).map(t => "
                          "getComputedStyle(t.parentElement).overflowX)")
    assert all(b == "auto" for b in boxes), f"{where}: a table outside a scrolling box: {boxes}"


def assert_no_missing_values(text: str):
    """No Python or pandas placeholder reaches a reader: nan, None, NaT, <NA>, inf."""
    found = re.findall(r".{0,40}(?:\bnan\b|\bNone\b|\bNaT\b|<NA>|\binf\b).{0,20}", text)
    assert not found, found


def check_page(browser, path: Path, verdict_words: list[str], shot: Path):
    page, seen = open_page(browser, path)
    assert seen == {"errors": [], "failed": [], "outside": []}
    widths = page.evaluate("Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0)")
    assert widths and all(w > 0 for w in widths), widths
    verdict = page.inner_text(".verdict")
    for word in verdict_words:
        assert word in verdict
    assert_no_missing_values(page.inner_text("body"))
    check_layout(page, f"{path.name} on a desk")
    page.screenshot(path=str(shot), full_page=True)
    import matplotlib.image as mpimg

    pixels = mpimg.imread(shot)
    assert pixels.shape[0] > 900 and np.std(pixels[..., :3]) > 0.05  # a page with content, not blank
    page.context.close()
    # readable without JavaScript: the same verdict with scripts off
    page, _ = open_page(browser, path, javascript=False)
    assert page.inner_text(".verdict") == verdict
    page.context.close()
    # and on a phone: the same checks at 390 px
    phone, seen = open_page(browser, path, viewport=PHONE)
    assert seen["errors"] == []
    check_layout(phone, f"{path.name} on a phone")
    phone.screenshot(path=str(shot.with_name(shot.stem + "-phone.png")), full_page=True)
    phone.context.close()


def test_demo_page_in_a_browser(browser, outputs):
    check_page(browser, outputs / "demo" / "index.html", ["PyTorch's default", "constant"],
               shots(outputs) / "demo.png")


def test_hebrew_demo_page_is_right_to_left(browser, outputs):
    page_path = report.render(outputs / "demo", outputs / "demo" / "he.html", lang="he")
    check_page(browser, page_path, ["Xavier"], shots(outputs) / "demo-he.png")
    page, _ = open_page(browser, page_path)
    assert page.get_attribute("html", "dir") == "rtl"
    assert re.search("[\u0590-\u05ff]{4,}", page.inner_text("body"))
    assert page.eval_on_selector("pre", "e => getComputedStyle(e).direction") == "ltr"
    page.context.close()
    # a figure reads left to right: on a phone its box shows the figure's left edge (its first panel) first
    phone, _ = open_page(browser, page_path, viewport=PHONE)
    lefts = phone.evaluate("Array.from(document.querySelectorAll('.figure')).map(f => "
                           "f.querySelector('img').getBoundingClientRect().left - f.getBoundingClientRect().left)")
    assert lefts and all(abs(v) < 1 for v in lefts), lefts
    phone.context.close()


def test_train_page_escapes_a_hostile_run_name(browser, outputs):
    page_path = report.render(outputs / "train")
    html = page_path.read_text()
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    check_page(browser, page_path, ["<script>alert(1)</script>"], shots(outputs) / "train.png")


def test_diagnose_page_in_a_browser(browser, outputs):
    check_page(browser, report.render(outputs / "diag"), ["xavier_uniform", "vanishing", "he_normal"],
               shots(outputs) / "diag.png")


def test_sweep_page_in_a_browser(browser, outputs):
    page_path = report.render(outputs / "sweep" / "runs.db")
    assert page_path == outputs / "sweep" / "report.html"
    assert "initlab sweep: tiny-sweep" in page_path.read_text()
    check_page(browser, page_path, ["Best cell", "Did not train"], shots(outputs) / "sweep.png")


def test_trainability_page_in_a_browser(browser, outputs):
    page_path = report.render(outputs / "trainability" / "runs.db")
    check_page(browser, page_path, ["Depth limit 6 xi_c", "well within it", "sigma_w^2 = "],
               shots(outputs) / "trainability.png")
    page, _ = open_page(browser, page_path)
    alts = page.evaluate("Array.from(document.images).map(i => i.alt)")
    assert any("depth limit 6 xi_c" in a for a in alts), alts
    assert "variance_scaling(" not in page.inner_text(".verdict")  # cells named by what varies
    rerun = page.inner_text("pre").splitlines()[0]
    assert rerun.startswith("initlab sweep --name tiny-trainability --scheme variance_scaling")
    page.context.close()
