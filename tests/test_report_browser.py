"""Every kind of report, opened in a real browser (Debian's chromium, driven by Playwright)."""

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from initlab import report
from initlab.cli import main

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it): browser tests skipped")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


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
    assert run(main, ["sweep", "--scheme", "default,constant", "--depth", "2", "--width", "8", "--seeds", "2",
                      "--steps", "30", "--n", "200", "--name", "tiny-sweep", "--out", str(root / "sweep")]
               ).exit_code == 0
    return root


def open_page(browser, path: Path, javascript: bool = True):
    """Load ``path``; return the page with the console errors, failed and outside requests it saw."""
    context = browser.new_context(java_script_enabled=javascript, viewport={"width": 1100, "height": 900})
    page = context.new_page()
    seen = {"errors": [], "failed": [], "outside": []}
    page.on("console", lambda m: m.type == "error" and seen["errors"].append(m.text))
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.on("requestfailed", lambda r: seen["failed"].append(r.url))
    page.on("request", lambda r: r.url.split(":")[0] not in ("file", "data") and seen["outside"].append(r.url))
    page.goto(path.resolve().as_uri())
    page.wait_for_load_state("load")
    return page, seen


def check_page(browser, path: Path, verdict_words: list[str], shot: Path):
    page, seen = open_page(browser, path)
    assert seen == {"errors": [], "failed": [], "outside": []}
    widths = page.evaluate("Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0)")
    assert widths and all(w > 0 for w in widths), widths
    verdict = page.inner_text(".verdict")
    for word in verdict_words:
        assert word in verdict
    page.screenshot(path=str(shot), full_page=True)
    import matplotlib.image as mpimg

    pixels = mpimg.imread(shot)
    assert pixels.shape[0] > 900 and np.std(pixels[..., :3]) > 0.05  # a page with content, not blank
    page.context.close()
    # readable without JavaScript: the same verdict with scripts off
    page, _ = open_page(browser, path, javascript=False)
    assert page.inner_text(".verdict") == verdict
    page.context.close()
    # and on a phone: nothing wider than the screen but what scrolls in its own box (wide tables)
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    phone = context.new_page()
    phone.goto(path.resolve().as_uri())
    assert phone.evaluate("document.documentElement.scrollWidth") <= 391
    assert phone.evaluate("Math.max(...Array.from(document.images).map(i => i.getBoundingClientRect().width))") <= 390
    context.close()


def test_demo_page_in_a_browser(browser, outputs):
    check_page(browser, outputs / "demo" / "index.html", ["PyTorch's default", "constant"],
               outputs / "demo.png")


def test_hebrew_demo_page_is_right_to_left(browser, outputs):
    page_path = report.render(outputs / "demo", outputs / "demo" / "he.html", lang="he")
    check_page(browser, page_path, ["Xavier"], outputs / "demo-he.png")
    page, _ = open_page(browser, page_path)
    assert page.get_attribute("html", "dir") == "rtl"
    assert re.search("[\u0590-\u05ff]{4,}", page.inner_text("body"))
    assert page.eval_on_selector("pre", "e => getComputedStyle(e).direction") == "ltr"
    page.context.close()


def test_train_page_escapes_a_hostile_run_name(browser, outputs):
    page_path = report.render(outputs / "train")
    html = page_path.read_text()
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    check_page(browser, page_path, ["<script>alert(1)</script>"], outputs / "train.png")


def test_diagnose_page_in_a_browser(browser, outputs):
    check_page(browser, report.render(outputs / "diag"), ["xavier_uniform", "vanishing", "he_normal"],
               outputs / "diag.png")


def test_sweep_page_in_a_browser(browser, outputs):
    page_path = report.render(outputs / "sweep" / "runs.db")
    assert page_path == outputs / "sweep" / "report.html"
    assert "initlab sweep: tiny-sweep" in page_path.read_text()
    check_page(browser, page_path, ["Best cell", "Did not train"], outputs / "sweep.png")
