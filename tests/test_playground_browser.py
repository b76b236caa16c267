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


def _settled(page, expression, quiet_s=1.5, timeout=15):
    """The value of a page expression once it has stayed the same for ``quiet_s`` seconds (read in one
    call each time, so a render between two reads cannot mix two snapshots)."""
    deadline = time.monotonic() + timeout
    value, since = page.evaluate(expression), time.monotonic()
    while time.monotonic() < deadline:
        page.wait_for_timeout(250)
        now = page.evaluate(expression)
        if now != value:
            value, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return value
    raise AssertionError(f"the page kept changing for {timeout} s: last {value}")


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
    # lockstep: once paused, every run's map shows the same step. The last snapshot made before the pause
    # may still be on its way, so read the three maps in one call until they stop changing.
    steps = _settled(page, "[0, 1, 2].map(i => document.querySelector(`[data-testid=contour-${i}]`).dataset.step)")
    assert len(set(steps)) == 1 and int(steps[0]) >= 150
    assert "diverged" in page.locator("#run-3 .acc").inner_text()
    page.screenshot(path=str(_shots() / "playground-compare.png"), full_page=True)

    # a refused link keeps the rest: what was refused, the nearest allowed value, the other settings as given
    page.goto(f"{server}/?depth=99&width=8&activation=tanh&scheme=he_normal&lr=0.03")
    page.wait_for_selector("#error:not([hidden])")
    message = page.locator("#error").inner_text()
    assert "depth must lie between 1 and 8" in message and "using 8" in message and "rest of it is kept" in message
    page.wait_for_function("document.querySelectorAll('.run').length === 1")
    settings = parse_qs(urlparse(page.url).query)
    assert settings["depth"] == ["8"] and settings["width"] == ["8"] and settings["activation"] == ["tanh"]
    assert settings["scheme"] == ["he_normal"] and settings["lr"] == ["0.03"]


#: Canvas text is drawn 20-22 px tall in the canvas's own pixels; on screen it must stay this tall.
CANVAS_FONT_PX, READABLE_PX = 20, 8.0


def test_a_phone_gets_the_playground_in_one_column(server, page):
    """At 390 x 844 nothing sticks out sideways; the controls fold into a drawer; the runs and charts
    are as wide as the screen; no canvas is shrunk until its text cannot be read."""
    context = page.context.browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                               device_scale_factor=2)
    phone = context.new_page()
    phone.goto(f"{server}/?depth=3&width=8&n=200&speed=60&scheme=constant(value=0.05)&scheme=xavier_uniform")
    phone.wait_for_function("document.querySelectorAll('.run').length === 2 && "
                            "document.querySelector('[data-testid=contour-1]').dataset.step === '0'")
    # the controls are in a drawer, closed: off the screen until the settings button opens it
    assert phone.locator("aside").bounding_box()["x"] + phone.locator("aside").bounding_box()["width"] <= 0
    phone.click("#drawer-toggle")
    phone.wait_for_function("document.querySelector('aside').getBoundingClientRect().left >= 0")
    box = phone.locator("aside").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390
    phone.check("#lines")
    phone.click("#drawer-close")
    phone.wait_for_function("document.querySelector('aside').getBoundingClientRect().right <= 0")
    phone.wait_for_function("document.querySelector('[data-testid=contour-0]').dataset.lines === '1'")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    outside = phone.evaluate("""() => Array.from(document.body.querySelectorAll('*')).filter(e => {
        const r = e.getBoundingClientRect();
        if (!r.width || r.right <= innerWidth + 0.5) return false;
        for (let p = e.parentElement; p && p !== document.body; p = p.parentElement)
          if (['auto', 'scroll'].includes(getComputedStyle(p).overflowX))
            return p.getBoundingClientRect().right > innerWidth + 0.5;
        return true; }).map(e => e.tagName + '#' + e.id + '.' + e.className)""")
    assert outside == []
    # one column: each run below the other and as wide as the screen allows, the charts too
    first, second, depth = (phone.locator(s).bounding_box() for s in ("#run-0", "#run-1", "figure.depth"))
    assert first["y"] + first["height"] <= second["y"] and second["y"] + second["height"] <= depth["y"]
    assert first["width"] >= 360 and depth["width"] >= 360
    scales = phone.evaluate("Array.from(document.querySelectorAll('canvas')).map(c => [c.id || c.className, "
                            "c.clientWidth / c.width])")
    for name, scale in scales:
        assert CANVAS_FONT_PX * scale >= READABLE_PX, f"{name}: its text is {CANVAS_FONT_PX * scale:.1f} CSS px"
    phone.screenshot(path=str(_shots() / "playground-phone.png"), full_page=True)
    context.close()


# ------------------------------------------------------------------------------------------------
# issue 19: your own data, the network taken home, rewind, each neuron's line

def _weights(page, i=0):
    import io

    import torch

    href = page.get_by_test_id(f"weights-{i}").get_attribute("href")
    response = page.request.get(page.url.split("/?")[0] + href)
    assert response.ok, response.text()
    return torch.load(io.BytesIO(response.body()))


def _same(a, b) -> bool:
    import torch

    return list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


def _step_to(page, count):
    for k in range(count):
        before = int(page.get_by_test_id("step").inner_text())
        page.click("#step")
        page.wait_for_function(f"+document.querySelector('[data-testid=step]').textContent === {before + 1}")


def test_upload_a_csv_and_train_on_it(server, page, tmp_path):
    page.goto(f"{server}/?depth=2&width={WIDTH}&n=200&speed=60&scheme=he_normal")
    page.wait_for_function("document.querySelector('[data-testid=contour-0]')?.dataset.step === '0'")
    # the limits shown are the server's
    from initlab.playground import upload
    assert page.get_by_test_id("upload-limits").inner_text() == \
        f"at most {upload.MAX_ROWS} rows ({upload.MAX_BYTES // 1024} KiB)"
    # a space typed in the paste box is a space, not play/pause
    page.click(".upload summary")
    page.click("#upload-text")
    page.keyboard.type("0 1")
    page.wait_for_timeout(500)
    assert page.locator("#upload-text").input_value() == "0 1"
    assert page.evaluate("[state.playing, wantPlaying]") == [False, False] and "play" in page.inner_text("#play")
    assert page.get_by_test_id("step").inner_text() == "0"
    # a malformed paste is refused with what is wrong, and nothing changes
    page.fill("#upload-text", "x1,x2,label\n" + "\n".join(f"{i},{i},{i % 3}" for i in range(30)))
    page.click("#upload-paste")
    page.wait_for_selector("#error:not([hidden])")
    assert "the labels take 3 values" in page.locator("#error").inner_text()
    assert page.locator("#dataset").input_value() == "moons"
    # a good file: a ring of black inside white, far from the origin and on another scale
    import math
    rows = ["x1,x2,label"] + [f"{100 + r * math.cos(t):.3f},{-50 + 0.1 * r * math.sin(t):.4f},{int(r < 2)}"
                              for k in range(240) for r, t in [((k % 4) + 0.5, k * 0.7)]]
    csv = tmp_path / "ring.csv"
    csv.write_text("\n".join(rows) + "\n")
    page.set_input_files("#upload-file", str(csv))
    page.wait_for_function("location.search.includes('dataset=custom')")
    assert page.locator("#dataset").input_value() == "custom"
    assert page.locator("#custom-note").is_visible() or page.locator("#custom-note").get_attribute("hidden") is None
    assert "cannot carry" in page.locator("#custom-note").inner_text()
    page.wait_for_function("document.querySelector('[data-testid=contour-0]').dataset.step === '0'")
    assert _train_until(page, lambda: int(page.get_by_test_id("contour-0").get_attribute("data-step")) >= 60)
    state = page.evaluate("state")
    assert state["settings"]["dataset"] == "custom" and state["runs"][0]["final"]["train_loss"] is not None
    assert len(page.evaluate("points").get("x")) == 240
    # its snippet says where the user's CSV goes (the data is not in it)
    page.get_by_test_id("snippet-0").click()
    page.wait_for_function("document.querySelector('#snippet-text').textContent.includes('run 0')")
    assert page.get_by_test_id("snippet-note").is_visible()
    assert "# CSV = 'your-data.csv'" in page.get_by_test_id("snippet").inner_text()  # he_normal: not needed
    page.click("#snippet-close")


def test_the_exported_snippet_rebuilds_the_initial_weights_in_another_process(server, page, tmp_path):
    import subprocess
    import sys

    import torch

    page.goto(f"{server}/?depth=3&width={WIDTH}&n=200&activation=tanh&scheme=orthogonal&scheme=he_normal&seed=42")
    page.wait_for_function("document.querySelector('[data-testid=contour-1]')?.dataset.step === '0'")
    for i in (0, 1):
        page.get_by_test_id(f"snippet-{i}").click()
        page.wait_for_function(f"document.querySelector('#snippet-text').textContent.includes('run {i}')")
        code = page.get_by_test_id("snippet").inner_text()
        assert page.get_by_test_id("snippet-note").is_hidden()  # a built-in dataset is in the snippet
        assert "initlab.mlp(2, [8, 8, 8], 1, 'tanh')" in code and "seed=42" in code
        out = tmp_path / f"run{i}.pt"
        script = tmp_path / f"run{i}.py"
        script.write_text(code + "\nimport sys, torch\ntorch.save(model.state_dict(), sys.argv[1])\n")
        subprocess.run([sys.executable, str(script), str(out)], check=True, timeout=120,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert _same(torch.load(out), _weights(page, i)), f"run {i}: the snippet's weights differ"
    record = page.request.get(f"{server}" + page.locator("#record-link").get_attribute("href")).json()
    assert record["kind"] == "initlab playground record" and len(record["runs"]) == 2


def test_rewind_gives_the_same_start_and_new_seed_another(server, page):
    page.goto(f"{server}/?depth=2&width={WIDTH}&n=200&scheme=xavier_uniform&batch_size=8&optimizer=adam&lr=0.01&seed=5")
    page.wait_for_function("document.querySelector('[data-testid=contour-0]')?.dataset.step === '0'")
    first = _weights(page)
    _step_to(page, 5)
    after5 = _weights(page)
    assert not _same(first, after5)
    page.click("#reset")
    page.wait_for_function("document.querySelector('[data-testid=step]').textContent === '0'")
    assert _same(_weights(page), first)              # the same initial weights
    _step_to(page, 5)
    assert _same(_weights(page), after5)             # and the same data order
    # an answer older than what the page shows (a step's answer overtaken by the stream) changes nothing
    page.evaluate("render({...state, version: state.version - 1, step: 0})")
    assert page.get_by_test_id("step").inner_text() == "5"
    page.click("#new-seed")
    page.wait_for_function("!location.search.includes('seed=5&')")
    page.wait_for_function("document.querySelector('[data-testid=step]').textContent === '0'")
    page.wait_for_timeout(300)
    assert not _same(_weights(page), first)


def test_neuron_lines_coincide_for_a_constant_start_and_fan_out_for_xavier(server, page):
    page.goto(f"{server}/?depth=3&width={WIDTH}&n=200&scheme=constant(value=0.05)&scheme=xavier_uniform")
    page.wait_for_function("document.querySelector('[data-testid=contour-1]')?.dataset.step === '0'")
    lines = "[0, 1].map(i => document.querySelector(`[data-testid=contour-${i}]`).dataset.lines)"
    assert page.evaluate(lines) == ["", ""]
    page.check("#lines")
    page.wait_for_function(f"{lines}.every(v => v !== '')")
    assert page.evaluate(lines) == ["1", str(WIDTH)]  # one distinct line for the constant start
    page.screenshot(path=str(_shots() / "playground-lines.png"), full_page=True)
    # a later layer: each unit's curve where its pre-activation is 0 (a constant ReLU start's units are
    # all the same and positive everywhere: at most one curve, none here; Xavier's fan out)
    page.select_option("#lines-layer", "2")
    page.wait_for_function("Object.keys(units).length === 2 && units[0].layer === 2")
    page.wait_for_function(f"+{lines}[0] <= 1 && +{lines}[1] > 1")
    page.select_option("#lines-layer", "1")
    page.uncheck("#lines")
    page.wait_for_function(f"{lines}.every(v => v === '')")


def test_a_zero_start_says_why_its_log_charts_have_no_points(server, page):
    page.goto(f"{server}/?depth=2&width={WIDTH}&n=200&scheme=zeros&scheme=xavier_uniform")
    page.wait_for_function("document.querySelector('[data-testid=contour-1]')?.dataset.step === '0'")
    # at step 0 a zero start's hidden layers have output and gradient std 0 (only the output's gradient is not)
    layers = page.locator("#run-0 canvas.layers")
    assert layers.get_attribute("data-zero") == "fc1,fc2" and layers.get_attribute("data-empty") == ""
    assert page.locator("#run-1 canvas.layers").get_attribute("data-zero") == ""
    # initialization by depth: no dashed prediction for the zero start, and one line that says why
    assert page.get_by_test_id("depth-out").get_attribute("data-predicted") == "0,1"
    note = page.get_by_test_id("depth-note")
    assert note.is_visible() and note.inner_text().startswith("zeros: no mean-field prediction: it assumes")
    assert len(note.inner_text().splitlines()) == 1
    # an empty chart says why: a diverged run's NaN, not a constant start's zeros
    why = page.evaluate("""() => [[null, null], [0, 0]].map((values, k) => {
        const c = document.createElement('canvas'); c.width = 600; c.height = 240;
        drawLayers(c, {layers: {names: ['fc1', 'out'], preact_std: values, grad_std: values},
                       diverged: k === 0, diverged_step: k === 0 ? 17 : null}, '#000');
        return c.dataset.empty; })""")
    assert why == ["diverged", "zero"]
    text = page.evaluate("emptyWhy([null, null], {diverged: true, diverged_step: 17}).lines.join(' ')")
    assert text.startswith("diverged at step 17: ") and "constant" not in text
    # a constant start alone: no prediction drawn, the note names it
    page.goto(f"{server}/?depth=2&width={WIDTH}&n=200&scheme=constant(value=0.05)")
    page.wait_for_function("document.querySelector('[data-testid=contour-0]')?.dataset.step === '0'")
    assert page.get_by_test_id("depth-out").get_attribute("data-predicted") == "0"
    assert page.get_by_test_id("depth-note").inner_text().startswith("constant(value=0.05): no mean-field prediction")
