"""The playground against other web pages and greedy clients (issue 15): the Host check (DNS
rebinding), the Origin and content-type checks (cross-site requests), the caps on live-update streams,
an event loop that never waits on a training step, and closed sessions that leave nothing behind.

The HTTP checks go through Starlette's TestClient; what needs several connections at once (streams,
a training worker) runs uvicorn in a thread on a free loopback port; the cross-site test is Chromium
on a page served from a second port.
"""

import gc
import http.server
import threading
import time
import weakref

import pytest

from conftest import free_port, serve
from initlab.playground import Manager, create_app

testclient = pytest.importorskip("starlette.testclient")
httpx = pytest.importorskip("httpx")

SMALL = "n=100&depth=2&width=6"
JSON = {"Content-Type": "application/json"}
PORT = 8000
HERE = f"127.0.0.1:{PORT}"


@pytest.fixture
def manager():
    return Manager(max_sessions=8, idle_timeout=60)


@pytest.fixture
def client(manager):
    app = create_app(manager, start_worker=False, port=PORT)
    with testclient.TestClient(app, base_url=f"http://{HERE}") as c:
        yield c


# ------------------------------------------------------------------------------------------------
# Host: only the address served (DNS rebinding)

@pytest.mark.parametrize("host", ["evil.example", f"evil.example:{PORT}", "127.0.0.1:8001", "localhost.evil.example",
                                  "127.0.0.1.nip.io:8000", ""])
def test_a_foreign_host_is_refused_and_creates_nothing(client, manager, host):
    for method, path in (("POST", f"/api/sessions?{SMALL}"), ("GET", "/"), ("GET", "/api/catalog")):
        r = client.request(method, path, headers={**JSON, "Host": host})
        assert r.status_code == 421, (method, path, r.text)
        assert "does not answer to Host" in r.json()["error"]
    assert manager.sessions == {}


@pytest.mark.parametrize("host", [HERE, f"localhost:{PORT}", f"[::1]:{PORT}", f"LocalHost:{PORT}"])
def test_the_loopback_names_with_the_port_served_are_accepted(client, manager, host):
    assert client.get("/api/catalog", headers={"Host": host}).status_code == 200
    assert client.post(f"/api/sessions?{SMALL}", headers={**JSON, "Host": host}).status_code == 201


@pytest.mark.parametrize("served, accepted, refused", [
    ("box.lan", ["box.lan:8000", "BOX.lan:8000"], ["localhost:8000", "127.0.0.1:8000", "evil.example:8000"]),
    ("0.0.0.0", ["localhost:8000", "10.1.2.3:8000", "[fe80::1]:8000"], ["evil.example:8000", "box.lan:8000"]),
    ("::1", ["[::1]:8000", "localhost:8000"], ["evil.example:8000"]),
])
def test_another_host_accepts_its_own_name(served, accepted, refused):
    with testclient.TestClient(create_app(Manager(), start_worker=False, host=served, port=PORT)) as c:
        for host in accepted:
            assert c.get("/api/catalog", headers={"Host": host}).status_code == 200, host
        for host in refused:
            assert c.get("/api/catalog", headers={"Host": host}).status_code == 421, host


# ------------------------------------------------------------------------------------------------
# Origin and content type: no other page may change anything

@pytest.mark.parametrize("origin", ["http://evil.example", "null", f"https://{HERE}", "http://127.0.0.1:8001",
                                    f"http://{HERE}.evil.example"])
def test_a_cross_origin_request_changes_nothing(client, manager, origin):
    r = client.post(f"/api/sessions?{SMALL}", headers={**JSON, "Origin": origin})
    assert r.status_code == 403 and "may not change the playground" in r.json()["error"]
    assert manager.sessions == {}
    sid = client.post(f"/api/sessions?{SMALL}", headers=JSON).json()["session"]
    for method, path in (("POST", f"/api/sessions/{sid}/play"), ("POST", f"/api/sessions/{sid}/settings?n=50"),
                         ("POST", f"/api/sessions/{sid}/close"), ("DELETE", f"/api/sessions/{sid}")):
        assert client.request(method, path, headers={**JSON, "Origin": origin}).status_code == 403, path
    state = client.get(f"/api/sessions/{sid}", headers={"Origin": origin}).json()  # reading is not changing
    assert state["playing"] is False and state["settings"]["n"] == 100


def test_the_pages_own_origin_and_no_origin_are_accepted(client, manager):
    own = client.post(f"/api/sessions?{SMALL}", headers={**JSON, "Origin": f"http://{HERE}"})
    assert own.status_code == 201
    none = client.post(f"/api/sessions?{SMALL}", headers=JSON)  # curl, scripts: no Origin
    assert none.status_code == 201
    own_sid = own.json()["session"]
    assert client.delete(f"/api/sessions/{own_sid}", headers={"Origin": f"http://{HERE}"}).status_code == 204
    assert list(manager.sessions) == [none.json()["session"]]


@pytest.mark.parametrize("content_type", [None, "text/plain", "text/plain;charset=UTF-8",
                                          "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"])
def test_a_post_that_is_not_json_is_refused(client, manager, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    r = client.post(f"/api/sessions?{SMALL}", headers=headers, content=b"x")
    assert r.status_code == 415 and "application/json" in r.json()["error"]
    assert manager.sessions == {}
    assert client.post(f"/api/sessions?{SMALL}", headers={"Content-Type": "application/json; charset=utf-8"},
                       content=b"{}").status_code == 201


# ------------------------------------------------------------------------------------------------
# closed sessions leave nothing behind

def test_closed_and_freed_sessions_are_not_kept(client, manager):
    refs = []
    for how in ("delete", "close", "idle"):
        query = f"{SMALL}&scheme=xavier_uniform&scheme=constant"
        sid = client.post(f"/api/sessions?{query}", headers=JSON).json()["session"]
        client.post(f"/api/sessions/{sid}/step", headers=JSON)
        manager.work_once()
        refs.append(weakref.ref(manager.sessions[sid]))
        if how == "delete":
            assert client.delete(f"/api/sessions/{sid}").status_code == 204
        elif how == "close":
            assert client.post(f"/api/sessions/{sid}/close", headers=JSON).status_code == 204
        else:
            manager.sessions[sid].last_seen -= 61
            manager.work_once()
    gc.collect()
    assert manager.sessions == {} and [r() for r in refs] == [None, None, None]


# ------------------------------------------------------------------------------------------------
# a real server: streams and the event loop

@pytest.fixture(scope="module")
def live():
    """A served playground with a training worker, 2 streams per session and 5 in all."""
    port = free_port()
    manager = Manager(max_sessions=8)
    app = create_app(manager, host="127.0.0.1", port=port, streams_per_session=2, max_streams=5)
    server, thread = serve(app, port)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=JSON, timeout=10) as http:
        yield http, manager, app
    server.should_exit = True
    thread.join(timeout=10)


class Stream:
    """A live-update stream held open, read up to its first state (``status`` says if it was refused).
    Its line iterator is kept: dropping it half-read would close the connection."""

    def __init__(self, http, sid):
        self.ctx = http.stream("GET", f"/api/sessions/{sid}/stream")
        self.response = self.ctx.__enter__()
        self.status = self.response.status_code
        if self.status != 200:
            self.error = self.response.read() and self.response.json()["error"]
            self.close()
            return
        self.lines = self.response.iter_lines()
        assert any(line.startswith("event: state") for line in self.lines)

    def close(self):
        self.ctx.__exit__(None, None, None)


def _wait_for(predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_streams_are_capped_per_session_and_in_all(live):
    http, manager, app = live
    sids = [http.post(f"/api/sessions?{SMALL}").json()["session"] for _ in range(3)]
    opened = []
    try:
        for _ in range(2):
            opened.append(Stream(http, sids[0]))
            assert opened[-1].status == 200
        refused = Stream(http, sids[0])
        assert refused.status == 429 and "this session has 2 live-update streams open" in refused.error
        for sid in (sids[1], sids[1], sids[2]):
            opened.append(Stream(http, sid))
            assert opened[-1].status == 200
        refused = Stream(http, sids[2])
        assert refused.status == 429 and "the playground has 5 live-update streams open" in refused.error

        opened.pop().close()  # a stream that ends frees its place
        _wait_for(lambda: sum(app.state.streams.values()) == 4)
        opened.append(Stream(http, sids[2]))
        assert opened[-1].status == 200
    finally:
        for stream in opened:
            stream.close()
        for sid in sids:
            http.delete(f"/api/sessions/{sid}")
    _wait_for(lambda: app.state.streams == {})


def test_the_event_loop_never_waits_on_training(live):
    """While a session trains big models with streams open, the catalog answers at once; while its lock
    is held (a training step that never ends), its state, a new stream and the catalog still answer."""
    http, manager, app = live
    big = "n=2000&depth=8&width=128&speed=200&scheme=xavier_uniform&scheme=he_normal&scheme=default&scheme=lecun_normal"
    sid = http.post(f"/api/sessions?{big}").json()["session"]
    other = http.post(f"/api/sessions?{SMALL}").json()["session"]
    opened = []
    try:
        http.post(f"/api/sessions/{sid}/play")
        opened = [Stream(http, sid), Stream(http, sid), Stream(http, other)]
        assert [stream.status for stream in opened] == [200] * 3
        times = []
        for _ in range(10):
            t = time.monotonic()
            assert http.get("/api/catalog").status_code == 200
            times.append(time.monotonic() - t)
            time.sleep(0.05)
        assert max(times) < 2.0, times
        assert manager.sessions[sid].step_count > 0  # it did train meanwhile

        session = manager.sessions[sid]
        with session.lock:  # the worker now waits; the event loop must not
            for path in ("/api/catalog", f"/api/sessions/{sid}", f"/api/sessions/{sid}/points"):
                assert http.get(path, timeout=2.0).status_code == 200, path
            with http.stream("GET", f"/api/sessions/{sid}/stream", timeout=2.0) as r:
                assert r.status_code == 429  # its 2 streams are open: answered at once all the same
            with http.stream("GET", f"/api/sessions/{other}/stream", timeout=2.0) as r:
                assert r.status_code == 200
                assert any(line.startswith("event: state") for line in r.iter_lines())
    finally:
        for stream in opened:
            stream.close()
        http.delete(f"/api/sessions/{sid}")
        http.delete(f"/api/sessions/{other}")


# ------------------------------------------------------------------------------------------------
# a page from another origin, in Chromium

ATTACK = """<!doctype html><title>a page elsewhere</title><script>
window.done = (async () => {
  const target = "%s";
  const tries = [
    {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body: "{}"},
    {method: "POST", mode: "no-cors"},
    {method: "POST", headers: {"Content-Type": "application/json"}, body: "{}"},
  ];
  const out = [];
  for (const t of tries) {
    try { const r = await fetch(target + "/api/sessions?n=100", t); out.push(r.type + " " + r.status); }
    catch (e) { out.push("refused: " + e.message); }
  }
  const form = document.createElement("form");  // a plain form post, the oldest cross-site request
  form.method = "POST"; form.action = target + "/api/sessions?n=100"; form.target = "sink";
  document.body.innerHTML = '<iframe name="sink"></iframe>';
  document.body.appendChild(form);
  const loaded = new Promise((ok) => document.querySelector("iframe").onload = ok);
  form.submit();
  await loaded;
  return out;
})();
</script>"""


def test_a_page_from_another_origin_cannot_create_sessions(browser):
    port, attacker_port = free_port(), free_port()
    manager = Manager(max_sessions=4)
    server, thread = serve(create_app(manager, host="127.0.0.1", port=port), port)
    page_html = (ATTACK % f"http://127.0.0.1:{port}").encode()

    class Attacker(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(page_html)

        def log_message(self, *args):
            pass

    attacker = http.server.ThreadingHTTPServer(("127.0.0.1", attacker_port), Attacker)
    threading.Thread(target=attacker.serve_forever, daemon=True).start()
    try:
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{attacker_port}/")
        results = page.evaluate("window.done")
        assert results[0] == "opaque 0" and results[1] == "opaque 0"  # sent, refused, unreadable
        assert results[2].startswith("refused")                      # the preflight is never granted
        assert manager.sessions == {}
        # the playground's own page, at its own address, still starts a session
        page.goto(f"http://127.0.0.1:{port}/?{SMALL}")
        page.wait_for_function("document.querySelector('[data-testid=contour-0]')?.dataset.step === '0'")
        assert len(manager.sessions) == 1
        page.goto("about:blank")
        _wait_for(lambda: manager.sessions == {})  # its pagehide request freed the session
        page.close()
    finally:
        attacker.shutdown()
        server.should_exit = True
        thread.join(timeout=10)


# ------------------------------------------------------------------------------------------------
# uploads (issue 19): limits enforced before parsing, every malformed file a 4xx, nothing on disk

def _rows(n, cols=3, label=lambda i: i % 2):
    return "x1,x2,label\n" + "\n".join(",".join([f"{i * 0.01:.2f}", f"{-i * 0.02:.2f}", str(label(i))][:cols]
                                               + ["7"] * (cols - 3)) for i in range(n))


@pytest.fixture
def sid(client):
    return client.post(f"/api/sessions?{SMALL}", headers=JSON).json()["session"]


def test_an_upload_larger_than_the_limit_is_refused_before_it_is_parsed(client, sid, monkeypatch):
    from initlab.playground import upload

    parsed = []
    monkeypatch.setattr(upload, "body_text", lambda raw: parsed.append(raw) or "")
    big = b'{"csv": "' + b"1,2,0\\n" * (upload.MAX_BYTES // 6) + b'"}'
    r = client.post(f"/api/sessions/{sid}/data", headers=JSON, content=big)
    assert r.status_code == 413 and "256 KiB" in r.json()["error"]
    # announced small, sent large (a lying or missing Content-Length): cut off as it arrives
    r = client.post(f"/api/sessions/{sid}/data", headers=JSON, content=iter([big[:1000]] * 300))
    assert r.status_code == 413
    assert parsed == []
    assert client.get(f"/api/sessions/{sid}").json()["settings"]["dataset"] == "moons"  # unchanged


@pytest.mark.parametrize("csv, status, words", [
    (_rows(2001), 400, "2001 rows; the playground takes at most 2000"),
    (_rows(50, cols=4), 400, "has 4 columns"),
    ("x1,x2\n" + "\n".join(f"{i},{i}" for i in range(20)), 400, "has 2 columns"),
    (_rows(50).replace("\n0.10,", "\nabc,", 1), 400, "row 11: its x1 'abc' is not a finite number"),
    (_rows(50).replace("-0.20,0", "-0.20,nan", 1), 400, "label 'nan' is not a finite number"),
    (_rows(50, label=lambda i: i % 3), 400, "the labels take 3 values (0, 1, 2)"),
    (_rows(50, label=lambda i: 2 * (i % 2)), 400, "label each row 0 (white) or 1 (black)"),
    (_rows(50, label=lambda i: int(i == 0)), 400, "each class needs at least 3"),
    (_rows(5), 400, "needs at least 10"),
    ("", 400, "needs at least 10"),
])
def test_a_malformed_upload_gets_a_4xx_that_says_what_is_wrong(client, sid, csv, status, words):
    r = client.post(f"/api/sessions/{sid}/data", headers=JSON, json={"csv": csv})
    assert r.status_code == status, r.text
    assert words in r.json()["error"]
    assert client.get(f"/api/sessions/{sid}").json()["settings"]["dataset"] == "moons"


@pytest.mark.parametrize("body", [b"x1,x2,label\n1,2,0", b'{"data": "1,2,0"}', b"[1, 2]", b"\xff\xfe"])
def test_an_upload_that_is_not_the_json_it_should_be_is_a_400(client, sid, body):
    r = client.post(f"/api/sessions/{sid}/data", headers=JSON, content=body)
    assert r.status_code == 400 and '{"csv"' in r.json()["error"]


def test_an_upload_is_refused_from_another_origin_or_as_a_form(client, sid):
    r = client.post(f"/api/sessions/{sid}/data", headers={**JSON, "Origin": "http://evil.example"},
                    json={"csv": _rows(50)})
    assert r.status_code == 403
    r = client.post(f"/api/sessions/{sid}/data", headers={"Content-Type": "multipart/form-data; boundary=x"},
                    content=b"--x\r\n")
    assert r.status_code == 415
    assert client.get(f"/api/sessions/{sid}").json()["settings"]["dataset"] == "moons"


def test_uploaded_data_is_kept_in_memory_only(client, sid, monkeypatch, tmp_path):
    import builtins
    import os

    writes = []
    real_open, real_os_open = builtins.open, os.open

    def spy_open(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+"):
            writes.append(file)
        return real_open(file, mode, *args, **kwargs)

    def spy_os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            writes.append(path)
        return real_os_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(os, "open", spy_os_open)
    r = client.post(f"/api/sessions/{sid}/data", headers=JSON, json={"csv": _rows(300)})
    assert r.status_code == 200 and r.json()["settings"]["dataset"] == "custom"
    assert writes == []


def test_a_leading_byte_order_mark_is_skipped(client, sid, manager):
    from initlab.playground import upload

    rows = "\n".join(f"{i * 0.5:.1f},{(i * 7) % 5},{i % 2}" for i in range(30))  # no header: the BOM is on a number
    X, y = upload.parse("\ufeff" + rows)
    assert X[0].tolist() == [0.0, 0.0] and len(X) == 30
    assert upload.parse("\ufeffx1,x2,label\n" + rows)[0].tolist() == X.tolist()
    r = client.post(f"/api/sessions/{sid}/data", headers=JSON, json={"csv": "\ufeff" + rows})
    assert r.status_code == 200, r.text
    assert len(r.json()["points"]["x"]) == 30


@pytest.mark.parametrize("value, words", [("1e300", "row 4: its x1 1e300 is too large to standardize"),
                                          ("-1e101", "its x1 -1e101 is too large"),
                                          ("1e-300", "its x1 1e-300 is too small to standardize")])
def test_absurd_magnitudes_are_refused_rather_than_flattened(client, sid, value, words):
    csv = _rows(50).replace("\n0.03,", f"\n{value},", 1)
    r = client.post(f"/api/sessions/{sid}/data", headers=JSON, json={"csv": csv})
    assert r.status_code == 400 and words in r.json()["error"] and "rescale the column" in r.json()["error"]
    assert "\n" not in r.json()["error"]
    assert client.get(f"/api/sessions/{sid}").json()["settings"]["dataset"] == "moons"


def test_large_but_allowed_magnitudes_keep_every_column(client, sid, manager):
    """Up to the limit, standardizing keeps each column's spread: no column silently becomes 0."""
    import numpy as np

    rows = "\n".join(f"{(i % 7) * 1e99:g},{(i % 5) * 1e-99:g},{i % 2}" for i in range(40))
    assert client.post(f"/api/sessions/{sid}/data", headers=JSON, json={"csv": rows}).status_code == 200
    X = manager.get(sid).data.X_train.numpy()
    assert np.isfinite(X).all() and np.allclose(X.std(0), 1, atol=1e-4)
