"""The playground end to end in a real browser: Debian's chromium driven by Playwright (never a
downloaded browser). The server runs in this process with uvicorn on a free loopback port.

Screenshots go to ``$INITLAB_SCREENSHOTS`` (default: pytest's tmp folder) so they can be looked at.
"""

import os
import re
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

CHROMIUM = "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip(f"no {CHROMIUM}: install Debian's chromium (apt-get install chromium) for the browser test",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
uvicorn = pytest.importorskip("uvicorn")

from conftest import free_port, serve  # noqa: E402
from initlab.playground import Manager, create_app  # noqa: E402

WIDTH = 8


@pytest.fixture(scope="module")
def server():
    port = free_port()
    srv, thread = serve(create_app(Manager(max_sessions=4)), port)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def page(server):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                                          "--disable-background-networking", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        yield page
        browser.close()
        assert not errors, f"JavaScript errors on the page: {errors}"


def _shots() -> Path:
    folder = Path(os.environ.get("INITLAB_SCREENSHOTS", "initlab-out/playground-screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _widths(page, i=0) -> list[int]:
    text = page.get_by_test_id(f"eff-{i}").inner_text()
    return [int(v) for v in re.findall(r"\d+", text.split("of")[0])]


def _train_until(page, predicate, timeout=30):
    page.click("#play")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            break
        page.wait_for_timeout(200)
    page.click("#play")  # pause
    page.wait_for_function("document.querySelector('#play').textContent.includes('play')")
    return predicate()


def test_constant_stays_one_neuron_and_xavier_uses_the_width(server, page):
    page.goto(f"{server}/?depth=3&width={WIDTH}&n=200&speed=60&scheme=constant(value=0.05)")
    contour = page.get_by_test_id("contour-0")
    page.wait_for_function("document.querySelector('[data-testid=contour-0]')?.dataset.step === '0'")
    assert page.locator("#scheme-0").input_value() == "constant"
    assert "symmetric" in page.locator("#run-0 .verdict").inner_text().lower()
    assert page.locator("#scheme-0-value").input_value() == "0.05"

    # play: the contours update with the steps, and every layer stays one neuron
    assert _train_until(page, lambda: int(contour.get_attribute("data-step")) >= 40)
    assert int(page.get_by_test_id("step").inner_text()) >= 40
    assert _widths(page) == [1, 1, 1]
    page.screenshot(path=str(_shots() / "playground-constant.png"), full_page=True)

    # switch to xavier_uniform: a fresh start whose layers use their whole width
    page.select_option("#scheme-0", "xavier_uniform")
    page.wait_for_function("document.querySelector('#run-0 .label').textContent === 'xavier_uniform'")
    assert "scheme=xavier_uniform" in page.url
    assert _train_until(page, lambda: int(contour.get_attribute("data-step")) >= 40)
    assert _widths(page) == [WIDTH] * 3
    assert "step 0: ok" in page.locator("#run-0 .verdict").inner_text().lower()

    # change a setting: the URL carries it, and the URL reproduces the run
    page.select_option("#activation", "tanh")
    page.wait_for_function("location.search.includes('activation=tanh')")
    page.wait_for_function("document.querySelector('#net-text').textContent.includes('tanh')")
    settings = parse_qs(urlparse(page.url).query)
    assert settings["activation"] == ["tanh"] and settings["depth"] == ["3"] and settings["width"] == [str(WIDTH)]

    # a hidden tab pauses its training, and plays again when it is shown
    page.click("#play")
    page.wait_for_function("document.querySelector('#play').textContent.includes('pause')")
    visibility = ("Object.defineProperty(document, 'hidden', {value: %s, configurable: true});"
                  "document.dispatchEvent(new Event('visibilitychange'))")
    page.evaluate(visibility % "true")
    page.wait_for_function("document.querySelector('#play').textContent.includes('play')")
    page.evaluate(visibility % "false")
    page.wait_for_function("document.querySelector('#play').textContent.includes('pause')")
    page.click("#play")


def test_compare_mode_side_by_side_and_a_bad_link(server, page):
    page.goto(f"{server}/?depth=4&width=32&n=300&speed=60&scheme=constant(value=0.05)&scheme=default"
              "&scheme=xavier_uniform&scheme=normal(std=3)")
    page.wait_for_function("document.querySelectorAll('.run').length === 4")
    assert _train_until(page, lambda: int(page.get_by_test_id("step").inner_text()) >= 150)
    steps = {page.get_by_test_id(f"contour-{i}").get_attribute("data-step") for i in range(3)}
    assert len(steps) == 1  # lockstep
    assert "diverged" in page.locator("#run-3 .acc").inner_text()
    page.screenshot(path=str(_shots() / "playground-compare.png"), full_page=True)

    page.goto(f"{server}/?depth=99")
    page.wait_for_selector("#error:not([hidden])")
    assert "depth must lie between 1 and 8" in page.locator("#error").inner_text()
    page.wait_for_function("document.querySelectorAll('.run').length === 1")


#: Canvas text is drawn 20-22 px tall in the canvas's own pixels; on screen it must stay this tall.
CANVAS_FONT_PX, READABLE_PX = 20, 8.0


def test_a_phone_gets_the_playground_in_one_column(server, page):
    """At 390 x 844 nothing sticks out sideways but the shared charts, each in a box that scrolls; the
    runs are as wide as the screen; no canvas is shrunk until its text cannot be read."""
    context = page.context.browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                               device_scale_factor=2)
    phone = context.new_page()
    phone.goto(f"{server}/?depth=3&width=8&n=200&speed=60&scheme=constant(value=0.05)&scheme=xavier_uniform")
    phone.wait_for_function("document.querySelectorAll('.run').length === 2 && "
                            "document.querySelector('[data-testid=contour-1]').dataset.step === '0'")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    outside = phone.evaluate("""() => Array.from(document.body.querySelectorAll('*')).filter(e => {
        const r = e.getBoundingClientRect();
        if (!r.width || r.right <= innerWidth + 0.5) return false;
        for (let p = e.parentElement; p && p !== document.body; p = p.parentElement)
          if (['auto', 'scroll'].includes(getComputedStyle(p).overflowX))
            return p.getBoundingClientRect().right > innerWidth + 0.5;
        return true; }).map(e => e.tagName + '#' + e.id + '.' + e.className)""")
    assert outside == []
    # one column: the controls above the runs, each run below the other
    aside, first, second = (phone.locator(s).bounding_box() for s in ("aside", "#run-0", "#run-1"))
    assert aside["y"] + aside["height"] <= first["y"] and first["y"] + first["height"] <= second["y"]
    assert first["width"] >= 300
    scales = phone.evaluate("Array.from(document.querySelectorAll('canvas')).map(c => [c.id || c.className, "
                            "c.clientWidth / c.width])")
    for name, scale in scales:
        assert CANVAS_FONT_PX * scale >= READABLE_PX, f"{name}: its text is {CANVAS_FONT_PX * scale:.1f} CSS px"
    phone.screenshot(path=str(_shots() / "playground-phone.png"), full_page=True)
    context.close()
