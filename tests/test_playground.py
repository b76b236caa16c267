"""The playground's server: the stepper against train(), settings validation, and the HTTP API through
Starlette's TestClient (the worker thread is stepped by hand, so nothing here depends on timing)."""

import json
import time

import pytest
import torch
from click.testing import CliRunner

import initlab
from initlab.cli import main
from initlab.playground import Manager, Stepper, create_app, settings
from initlab.schemes import get

testclient = pytest.importorskip("starlette.testclient")

SMALL = "n=100&depth=2&width=6"


@pytest.fixture
def manager():
    return Manager(max_sessions=3, idle_timeout=60)


@pytest.fixture
def client(manager):
    # as the page talks to it: at the address served, each POST saying it is JSON (test_playground_security.py
    # checks that other requests are refused)
    with testclient.TestClient(create_app(manager, start_worker=False, port=8000), base_url="http://127.0.0.1:8000",
                               headers={"Content-Type": "application/json"}) as c:
        yield c


def _model(scheme="xavier_uniform", hidden=(8, 8), activation="tanh", **params):
    model = initlab.mlp(2, list(hidden), 1, activation)
    initlab.initialize(model, scheme, seed=3, **params)
    return model


# ------------------------------------------------------------------------------------------------
# the stepper is train(), cut into steps

@pytest.mark.parametrize("optimizer, batch_size", [("sgd", None), ("adam", 32)])
def test_stepper_matches_train_bit_for_bit(small_moons, optimizer, batch_size):
    reference, stepped = _model(), _model()
    initlab.train(reference, small_moons, steps=23, lr=0.05, optimizer=optimizer, batch_size=batch_size, seed=5)
    stepper = Stepper(stepped, small_moons, lr=0.05, optimizer=optimizer, batch_size=batch_size, seed=5)
    for chunk in (1, 7, 15):  # in uneven chunks, with measuring on
        stepper.step(chunk)
    assert stepper.step_count == 23
    for a, b in zip(reference.parameters(), stepped.parameters()):
        assert torch.equal(a, b)
    stats = stepper.layer_stats()
    assert stats["names"] == ["fc1", "fc2", "out"]
    assert all(v is not None and v > 0 for v in stats["preact_std"] + stats["grad_std"])


def test_stepper_stops_at_the_same_divergence_as_train(small_moons):
    deep = {"hidden": [32] * 4, "activation": "relu", "std": 3.0}  # the README's exploding network
    result = initlab.train(_model("normal", **deep), small_moons, steps=50, lr=0.1)
    stepper = Stepper(_model("normal", **deep), small_moons, lr=0.1)
    made = stepper.step(50)
    assert result.diverged and stepper.diverged
    assert stepper.diverged_step == result.diverged_step == made
    assert stepper.step(5) == 0


# ------------------------------------------------------------------------------------------------
# settings: URL in, URL out, every bad value a clear error

def test_settings_round_trip_through_the_query():
    q = ("dataset=spiral&noise=0.1&n=300&data_seed=2&depth=3&width=12&activation=tanh&scheme=constant(value=0.1)"
         "&scheme=he_normal(nonlinearity=tanh)&optimizer=adam&lr=0.003&batch_size=32&seed=7&speed=50")
    s = settings.parse([tuple(p.split("=", 1)) for p in q.split("&")])
    assert s.query() == q
    assert s.hidden == [12, 12, 12] and s.batch_size == 32
    assert s.schemes == [{"name": "constant", "params": {"value": 0.1}},
                         {"name": "he_normal", "params": {"nonlinearity": "tanh"}}]
    assert settings.parse({}).query() == settings.Settings().query()


def test_catalog_lists_every_registry_scheme_with_its_parameters():
    cat = settings.catalog()
    assert [s["name"] for s in cat["schemes"]] == initlab.schemes()
    for row in cat["schemes"]:
        expected = settings.scheme_params(row["name"])
        assert [p["name"] for p in row["params"]] == list(expected)
        if row["name"] != "lsuv":
            assert expected == get(row["name"]).params()
    normal = next(s for s in cat["schemes"] if s["name"] == "normal")
    assert {"name": "std", "default": 0.01, "kind": "number", "min": 0.0, "max": 100.0} in normal["params"]
    assert set(cat["datasets"]) == {"moons", "circles", "xor", "spiral", "blobs"}


BAD = {
    "depth=9": "depth must lie between 1 and 8",
    "width=0": "width must lie between 1 and 128",
    "n=100000": "n must lie between 20 and 2000",
    "speed=5000": "speed must lie between 1 and 200",
    "lr=inf": "lr must lie between",
    "lr=abc": "lr must be a number",
    "noise=-1": "noise must lie between",
    "seed=1.5": "seed must be an integer",
    "dataset=/etc/passwd": "unknown dataset '/etc/passwd'",
    "activation=__import__('os')": "unknown activation",
    "optimizer=lbfgs": "unknown optimizer 'lbfgs'",
    "scheme=xavier": "unknown scheme 'xavier'. Did you mean",
    "scheme=normal(std=-1)": "normal's std must lie between 0 and 100",
    "scheme=normal(gain=2)": "scheme 'normal' takes no parameter 'gain'",
    "scheme=variance_scaling(mode=fan_sideways)": "unknown mode 'fan_sideways'",
    "scheme=normal(std)": "a scheme parameter is key=value",
    "scheme=exec(open('x'))": "a scheme is NAME or NAME(key=value,...)",
    "scheme=normal(std=1))": "a scheme is NAME or NAME(key=value,...)",
    "bogus=1": "unknown setting 'bogus'",
    "depth=2&depth=3": "setting 'depth' is given twice",
    "scheme=zeros&scheme=zeros&scheme=zeros&scheme=zeros&scheme=zeros": "compare at most 4 schemes",
    "noise=" + "1" * 3000: "longer than 2000 characters",
}


@pytest.mark.parametrize("query", list(BAD))
def test_bad_settings_get_a_4xx_with_a_clear_message(client, query):
    r = client.post(f"/api/sessions?{query}")
    assert r.status_code == 400, r.text
    assert BAD[query] in r.json()["error"]


# ------------------------------------------------------------------------------------------------
# the API

def test_page_catalog_and_static_assets_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and "initlab playground" in page.text
    assert client.get("/api/catalog").json()["max_schemes"] == settings.MAX_SCHEMES
    for asset in ("playground.js", "charts.js", "playground.css"):
        assert client.get(f"/static/{asset}").status_code == 200
    for path in ("/static/../app.py", "/static/%2e%2e/app.py", "/static/../../../../etc/passwd"):
        r = client.get(path)
        assert r.status_code == 404 and "import" not in r.text


def test_compare_mode_trains_schemes_in_lockstep_and_shows_symmetry(client, manager):
    r = client.post(f"/api/sessions?{SMALL}&scheme=constant(value=0.1)&scheme=xavier_uniform")
    assert r.status_code == 201
    doc = r.json()
    sid = doc["session"]
    assert len(doc["points"]["x"]) == 100 and doc["points"]["grid"] == 48
    constant, xavier = doc["runs"]
    assert [w["effective"] for w in constant["widths"]] == [1, 1]
    assert [w["effective"] for w in xavier["widths"]] == [6, 6]
    assert constant["diagnosis"]["summary"] == "symmetric" and "copies" in constant["diagnosis"]["message"]
    assert len(constant["grid"]) == 48 * 48 and all(0 <= p <= 1 for p in constant["grid"])
    assert constant["layers"]["names"] == ["fc1", "fc2", "out"]

    assert client.post(f"/api/sessions/{sid}/play").json()["playing"] is True
    session = manager.get(sid)
    session._last_tick -= 1.0  # one second of training at 30 steps per second is owed
    manager.work_once()
    state = client.get(f"/api/sessions/{sid}").json()
    steps = [run["step"] for run in state["runs"]]
    assert steps[0] == steps[1] == 30
    assert state["runs"][0]["history"]["step"] == state["runs"][1]["history"]["step"]
    assert [w["effective"] for w in state["runs"][0]["widths"]] == [1, 1]  # a constant stays one neuron

    paused = client.post(f"/api/sessions/{sid}/pause").json()
    assert paused["playing"] is False and paused["step"] == 30
    client.post(f"/api/sessions/{sid}/step")
    manager.work_once()
    assert client.get(f"/api/sessions/{sid}").json()["step"] == 31
    reset = client.post(f"/api/sessions/{sid}/reset").json()
    assert reset["step"] == 0 and reset["runs"][1]["history"]["step"] == [0]


def test_the_session_trains_the_model_train_would(client, manager, small_moons):
    sid = client.post(f"/api/sessions?{SMALL}&dseed=4&scheme=he_normal&lr=0.2&batch=16&seed=9").json()["session"]
    client.post(f"/api/sessions/{sid}/play")
    manager.get(sid)._last_tick -= 1.0
    manager.work_once()
    run = manager.get(sid).runs[0]
    data = initlab.datasets.make("moons", n=100, noise=0.2, seed=4)
    model = initlab.mlp(2, [6, 6], 1, "relu")
    initlab.initialize(model, "he_normal", seed=9)
    initlab.train(model, data, steps=run.stepper.step_count, lr=0.2, batch_size=16, seed=9)
    for a, b in zip(model.parameters(), run.model.parameters()):
        assert torch.equal(a, b)


def test_new_settings_restart_and_the_query_reproduces_them(client):
    sid = client.post(f"/api/sessions?{SMALL}").json()["session"]
    doc = client.post(f"/api/sessions/{sid}/settings?{SMALL}&dataset=xor&scheme=normal(std=3)").json()
    assert doc["settings"]["dataset"] == "xor" and doc["settings"]["schemes"] == ["normal(std=3)"]
    again = client.post(f"/api/sessions?{doc['query']}").json()
    assert again["points"] == doc["points"] and again["runs"][0]["grid"] == doc["runs"][0]["grid"]
    bad = client.post(f"/api/sessions/{sid}/settings?depth=0")
    assert bad.status_code == 400
    assert client.get(f"/api/sessions/{sid}").json()["settings"]["dataset"] == "xor"  # unchanged


def test_a_diverging_run_is_reported_not_an_error(client, manager):
    sid = client.post("/api/sessions?n=100&depth=4&width=32&scheme=normal(std=3)&scheme=xavier_uniform").json()["session"]
    client.post(f"/api/sessions/{sid}/play")
    manager.get(sid)._last_tick -= 1.0
    manager.work_once()
    state = client.get(f"/api/sessions/{sid}").json()
    assert state["runs"][0]["diverged"] and state["runs"][0]["grid"] is None
    assert state["runs"][0]["widths"] is None and not state["runs"][1]["diverged"]
    json.dumps(state, allow_nan=False)  # strict JSON: no NaN reaches the page


def test_unknown_sessions_actions_and_the_session_limit(client, manager):
    assert client.get("/api/sessions/nope").status_code == 404
    assert "reload the page" in client.post("/api/sessions/nope/play").json()["error"]
    sids = [client.post(f"/api/sessions?{SMALL}").json()["session"] for _ in range(3)]
    r = client.post(f"/api/sessions?{SMALL}")
    assert r.status_code == 429 and "limit" in r.json()["error"]
    assert client.post(f"/api/sessions/{sids[0]}/explode").status_code == 404
    assert client.delete(f"/api/sessions/{sids[0]}").status_code == 204
    assert client.post(f"/api/sessions/{sids[1]}/close").status_code == 204
    assert client.get(f"/api/sessions/{sids[0]}").status_code == 404
    assert len(manager.sessions) == 1


def test_idle_sessions_are_freed(client, manager):
    sid = client.post(f"/api/sessions?{SMALL}").json()["session"]
    manager.sessions[sid].last_seen = time.monotonic() - 61
    manager.work_once()
    assert sid not in manager.sessions


def test_the_stream_sends_the_state(client, manager):
    sid = client.post(f"/api/sessions?{SMALL}").json()["session"]
    with client.stream("GET", f"/api/sessions/{sid}/stream") as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = r.iter_lines()
        event = next(line for line in lines if line.startswith("event:"))
        data = json.loads(next(lines)[len("data: "):])
        assert event == "event: state" and data["session"] == sid
        manager.close(sid)  # ends the stream
        assert "event: closed" in list(lines)


# ------------------------------------------------------------------------------------------------
# the command

def test_cli_playground_help_and_bad_input():
    runner = CliRunner()
    assert "--no-open" in runner.invoke(main, ["playground", "--help"]).output
    r = runner.invoke(main, ["playground", "--port", "70000", "--no-open"])
    assert r.exit_code == 2 and "port" in r.output
    r = runner.invoke(main, ["playground", "--settings", "depth=99", "--no-open"])
    assert r.exit_code == 2 and "depth must lie between 1 and 8" in r.output


# ------------------------------------------------------------------------------------------------
# your own data, the network taken home, a refused link's nearest settings (issue 19)

def _csv(n=200, header=True, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2)) * [3.0, 0.5] + [10.0, -4.0]
    rows = [f"{a:.4f},{b:.4f},{int(a > 10)}" for a, b in X]
    return ("x1,x2,label\n" if header else "") + "\n".join(rows) + "\n"


def test_an_uploaded_csv_is_standardized_like_a_built_in_and_trains(client, manager):
    sid = client.post(f"/api/sessions?{SMALL}&scheme=he_normal&batch_size=16").json()["session"]
    r = client.post(f"/api/sessions/{sid}/data", json={"csv": _csv()})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["settings"]["dataset"] == "custom" and "dataset=custom" in doc["query"]
    assert doc["points"]["custom"] is True and len(doc["points"]["x"]) == 200 and doc["step"] == 0
    data = manager.get(sid).data
    assert data.X_train.mean(0).abs().max() < 1e-5 and (data.X_train.std(0, unbiased=False) - 1).abs().max() < 1e-4
    # it is what datasets.split makes of the same points: one home for the standardization
    from initlab.playground import upload
    X, y = upload.parse(_csv())
    same = initlab.datasets.split(X, y, __import__("numpy").random.default_rng(0))
    assert torch.equal(same.X_train, data.X_train) and torch.equal(same.y_test, data.y_test)
    client.post(f"/api/sessions/{sid}/play")
    manager.get(sid)._last_tick -= 1.0
    manager.work_once()
    state = client.get(f"/api/sessions/{sid}").json()
    assert state["step"] == 30 and state["settings"]["dataset"] == "custom"
    # a change of settings keeps the uploaded points; a built-in dataset and back again too
    again = client.post(f"/api/sessions/{sid}/settings?{doc['query'].replace('depth=2', 'depth=3')}").json()
    assert again["points"]["x"] == doc["points"]["x"] and again["settings"]["depth"] == 3
    assert client.post(f"/api/sessions/{sid}/settings?{SMALL}&dataset=xor").json()["settings"]["dataset"] == "xor"
    assert client.post(f"/api/sessions/{sid}/settings?{doc['query']}").json()["points"]["x"] == doc["points"]["x"]


def test_a_link_cannot_carry_uploaded_data(client):
    r = client.post(f"/api/sessions?{SMALL}&dataset=custom")
    assert r.status_code == 400 and "a link cannot carry uploaded data" in r.json()["error"]
    near = client.get("/api/settings/nearest?n=100&dataset=custom&depth=99&width=7").json()
    assert near["settings"]["dataset"] == "moons" and near["settings"]["depth"] == 8 and near["settings"]["width"] == 7
    assert {(x["setting"], x["nearest"]) for x in near["refused"]} == {("dataset", "moons"), ("depth", "8")}


@pytest.mark.parametrize("query, refused, kept", [
    ("depth=99&width=8&activation=tanh", {"depth": "8"}, {"width": 8, "activation": "tanh"}),
    ("lr=0&seed=7", {"lr": "1e-05"}, {"seed": 7}),
    ("activation=swish&n=300", {"activation": None}, {"n": 300, "activation": "relu"}),
    ("scheme=xavier&scheme=he_normal", {"scheme": None}, {"schemes": ["he_normal"]}),
    ("optimizer=sgd&weight_decay=0.1&speed=30", {"weight_decay": None}, {"speed": 30}),
])
def test_a_refused_link_keeps_the_rest_and_names_the_nearest_allowed(client, query, refused, kept):
    near = client.get(f"/api/settings/nearest?{query}").json()
    assert {x["setting"]: x["nearest"] for x in near["refused"]} == refused
    for key, value in kept.items():
        assert near["settings"][key] == value
    assert client.post(f"/api/sessions?{near['query']}").status_code == 201


def test_the_snippet_rebuilds_the_initial_weights_exactly(client, manager):
    import io

    query = f"{SMALL}&activation=tanh&scheme=orthogonal(gain=1.5)&scheme=lsuv&seed=11&data_seed=3&dataset=circles"
    sid = client.post(f"/api/sessions?{query}").json()["session"]
    for run in (0, 1):
        text = client.get(f"/api/sessions/{sid}/export/snippet?run={run}").text
        space = {}
        exec(compile(text, "snippet", "exec"), space)
        weights = torch.load(io.BytesIO(client.get(f"/api/sessions/{sid}/export/weights?run={run}").content))
        rebuilt = space["model"].state_dict()
        assert list(rebuilt) == list(weights)
        assert all(torch.equal(rebuilt[k], weights[k]) for k in weights), run
    for _ in range(3):
        client.post(f"/api/sessions/{sid}/step")
        manager.work_once()
    record = client.get(f"/api/sessions/{sid}/export/record").json()
    assert record["kind"] == "initlab playground record" and record["schema_version"] == 2
    assert [r["label"] for r in record["runs"]] == ["orthogonal(gain=1.5)", "lsuv"]
    assert record["query"] == client.get(f"/api/sessions/{sid}").json()["query"]
    # each run's measured steps in the record format initlab.watch and train(track_every=) keep
    run = manager.get(sid).runs[0]
    watch = record["runs"][0]["watch"]
    assert set(watch) >= {"layers", "step", "loss", "preact_std", "grad_std", "update_to_data"}
    assert watch["layers"] == ["fc1", "fc2", "out"] and len(watch["step"]) >= 1
    shown = run.stepper.layer_stats()  # the chart's numbers are the record's last row
    assert watch["preact_std"][-1] == pytest.approx(shown["preact_std"], rel=1e-9)
    assert all(v is not None and v > 0 for v in watch["update_to_data"][-1])
    assert client.get(f"/api/sessions/{sid}/export/snippet?run=5").status_code == 400
    assert client.get(f"/api/sessions/{sid}/export/bogus").status_code == 404


def test_rewind_restores_the_same_start_and_the_same_data_order(client, manager):
    sid = client.post(f"/api/sessions?{SMALL}&batch_size=8&optimizer=adam&lr=0.01").json()["session"]
    model = lambda: {k: v.clone() for k, v in manager.get(sid).runs[0].model.state_dict().items()}  # noqa: E731
    start = model()
    for _ in range(5):
        client.post(f"/api/sessions/{sid}/step")
        manager.work_once()
    after5 = model()
    assert not torch.equal(after5["fc1.weight"], start["fc1.weight"])
    client.post(f"/api/sessions/{sid}/reset")
    assert all(torch.equal(v, start[k]) for k, v in model().items())
    for _ in range(5):
        client.post(f"/api/sessions/{sid}/step")
        manager.work_once()
    assert all(torch.equal(v, after5[k]) for k, v in model().items())


def test_neuron_lines_coincide_for_a_constant_start_and_units_of_later_layers(client):
    doc = client.post(f"/api/sessions?{SMALL}&scheme=constant(value=0.05)&scheme=xavier_uniform").json()
    constant, xavier = (r["neurons"] for r in doc["runs"])
    assert len(constant["w"]) == 6 and len({tuple(w) + (b,) for w, b in zip(constant["w"], constant["b"])}) == 1
    assert len({tuple(w) for w in xavier["w"]}) == 6
    units = client.get(f"/api/sessions/{doc['session']}/units?run=1&layer=2").json()
    assert units["layer"] == 2 and len(units["units"]) == 6 and len(units["units"][0]) == units["grid"] ** 2
    assert client.get(f"/api/sessions/{doc['session']}/units?run=1&layer=3").status_code == 400
    assert client.get(f"/api/sessions/{doc['session']}/units?run=x").status_code == 400


@pytest.mark.parametrize("activation", ["gelu", "silu", "elu", "leaky_relu", "sigmoid", "sine"])
def test_every_activation_trains_with_its_theory_at_step_0(client, manager, activation):
    doc = client.post(f"/api/sessions?{SMALL}&activation={activation}").json()
    assert activation in settings.catalog()["activations"]
    layers = doc["runs"][0]["initial_layers"]
    assert all(v is not None and v > 0 for v in layers["predicted_preact_std"] + layers["predicted_grad_std"])
    client.post(f"/api/sessions/{doc['session']}/step")
    manager.work_once()
    assert client.get(f"/api/sessions/{doc['session']}").json()["step"] == 1


def test_the_achieved_rate_is_reported_when_playing(client, manager):
    sid = client.post(f"/api/sessions?{SMALL}&speed=200").json()["session"]
    client.post(f"/api/sessions/{sid}/play")
    session = manager.get(sid)
    session._last_tick -= 0.2
    session._rate_since -= 2.0  # two seconds in which only the steps made were made
    manager.work_once()
    state = client.get(f"/api/sessions/{sid}").json()
    assert state["rate"] is not None and state["rate"] < 200 * 0.9


def test_the_achieved_rate_falls_below_the_asked_rate_when_steps_are_slow(client, manager, monkeypatch):
    """On the real clock: each step made to take 10 ms allows at most 100 steps/s, so the rate reported
    for 200 asked is below it (generous bounds: a slow machine only lowers it further)."""
    from initlab.playground import stepper

    step = stepper.Stepper.step

    def slow(self, count=1, measure_last=True):
        time.sleep(0.01 * count)
        return step(self, count, measure_last)

    monkeypatch.setattr(stepper.Stepper, "step", slow)
    sid = client.post(f"/api/sessions?{SMALL}&speed=200").json()["session"]
    assert client.post(f"/api/sessions/{sid}/play").json()["rate"] is None
    deadline = time.monotonic() + 20
    while client.get(f"/api/sessions/{sid}").json()["rate"] is None:
        assert time.monotonic() < deadline, "no rate reported after 20 s of playing"
        manager.work_once()
    state = client.get(f"/api/sessions/{sid}").json()
    assert 0 < state["rate"] <= 110 and state["rate"] < 0.9 * 200, state["rate"]  # the page's "cannot keep up"
    assert state["step"] > 0 and state["settings"]["speed"] == 200


def test_a_rebuild_holds_up_no_other_session(client, manager, monkeypatch):
    """An upload (or new settings, or a rewind) builds its runs outside the session's lock: while one
    session's runs are being built, the worker trains the others, and the session's own lock is free."""
    import threading

    from initlab.playground import session as session_mod

    playing = client.post(f"/api/sessions?{SMALL}").json()["session"]
    busy = client.post(f"/api/sessions?{SMALL}&scheme=he_normal").json()["session"]
    client.post(f"/api/sessions/{playing}/play")
    entered, release = threading.Event(), threading.Event()
    real_run = session_mod.Run

    class SlowRun(real_run):
        def __init__(self, *args, **kwargs):
            entered.set()
            assert release.wait(20), "the test never released the build"
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(session_mod, "Run", SlowRun)
    done = {}
    builders = [threading.Thread(target=lambda: done.setdefault("upload", client.post(
        f"/api/sessions/{busy}/data", json={"csv": _csv()}).status_code))]
    builders[0].start()
    try:
        assert entered.wait(10)
        session = manager.get(busy)
        assert session.lock.acquire(timeout=2), "the session's lock is held while its runs are built"
        session.lock.release()
        worker = threading.Thread(target=lambda: [manager.work_once() for _ in range(3)])
        manager.get(playing)._last_tick -= 1.0
        worker.start()
        worker.join(timeout=10)
        assert not worker.is_alive(), "the worker waited for another session's rebuild"
        assert manager.get(playing).step_count > 0
        assert client.get(f"/api/sessions/{busy}").json()["settings"]["dataset"] == "moons"  # not yet swapped
    finally:
        release.set()
        builders[0].join(timeout=30)
    assert done["upload"] == 200
    assert client.get(f"/api/sessions/{busy}").json()["settings"]["dataset"] == "custom"
    # a rewind too: built outside the lock, swapped in paused at step 0
    entered.clear(), release.clear()
    rewind = threading.Thread(target=lambda: client.post(f"/api/sessions/{playing}/reset"))
    rewind.start()
    try:
        assert entered.wait(10)
        assert manager.get(playing).lock.acquire(timeout=2)
        manager.get(playing).lock.release()
    finally:
        release.set()
        rewind.join(timeout=30)
    state = client.get(f"/api/sessions/{playing}").json()
    assert state["step"] == 0 and state["playing"] is False


def test_the_page_reads_the_upload_limits_from_the_server(client):
    from importlib import resources

    from initlab.playground import upload

    limits = client.get("/api/catalog").json()["upload"]
    assert limits["max_bytes"] == upload.MAX_BYTES and limits["max_rows"] == upload.MAX_ROWS
    static = resources.files("initlab.playground") / "static"
    for name in ("playground.js", "index.html"):
        text = (static / name).read_text(encoding="utf-8")
        assert "catalog.upload" in text or "upload-limits" in text, name
        assert f"{upload.MAX_BYTES // 1024} KiB" not in text and f"{upload.MAX_ROWS} rows" not in text, name
        assert "256 * 1024" not in text, name


def test_no_mean_field_prediction_for_a_constant_start_and_why(client):
    doc = client.post(f"/api/sessions?{SMALL}&scheme=constant(value=0.05)&scheme=zeros&scheme=xavier_uniform").json()
    constant, zeros, xavier = (r["initial_layers"] for r in doc["runs"])
    for layers in (constant, zeros):
        assert layers["predicted_preact_std"] == [None] * 3 and layers["predicted_grad_std"] == [None] * 3
        assert "assumes independent random weights" in layers["theory_note"] and "\n" not in layers["theory_note"]
    assert xavier["theory_note"] is None
    assert all(v is not None and v > 0 for v in xavier["predicted_preact_std"] + xavier["predicted_grad_std"])
    # it is not a trait of the name: a random scheme with a zero std is constant too, and judged the same
    doc = client.post(f"/api/sessions?{SMALL}&scheme=normal(std=0)&scheme=normal(std=1)").json()
    assert [r["initial_layers"]["theory_note"] is None for r in doc["runs"]] == [False, True]


# ------------------------------------------------------------------------------------------------
# the snippet for uploaded data (a data-dependent scheme needs the CSV: it reads it from a path)

def test_the_snippet_for_uploaded_data_reads_the_csv_and_rebuilds_lsuv_in_another_process(client, tmp_path):
    import subprocess
    import sys

    from initlab.playground import export

    sid = client.post(f"/api/sessions?{SMALL}&scheme=lsuv&scheme=xavier_uniform&seed=4&data_seed=7").json()["session"]
    text = "\ufeff" + _csv(seed=3)  # as a spreadsheet saves it, byte-order mark and all
    assert client.post(f"/api/sessions/{sid}/data", json={"csv": text}).status_code == 200
    path = tmp_path / "my data.csv"
    path.write_text(text, encoding="utf-8")
    for run, needs_csv in ((0, True), (1, False)):
        code = client.get(f"/api/sessions/{sid}/export/snippet?run={run}").text
        assert any(line.startswith(f"CSV = {export.CSV_PLACEHOLDER!r}") for line in code.splitlines()) is needs_csv
        out = tmp_path / f"run{run}.pt"
        script = tmp_path / f"run{run}.py"
        script.write_text(code.replace(repr(export.CSV_PLACEHOLDER), repr(str(path)))
                          + "\nimport sys, torch\ntorch.save(model.state_dict(), sys.argv[1])\n")
        done = subprocess.run([sys.executable, str(script), str(out)], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        import io
        weights = torch.load(io.BytesIO(client.get(f"/api/sessions/{sid}/export/weights?run={run}").content))
        rebuilt = torch.load(out)
        assert list(rebuilt) == list(weights) and all(torch.equal(rebuilt[k], weights[k]) for k in weights), run
    # without the path filled in, the lsuv snippet says what it misses rather than "'lsuv' needs data"
    script = tmp_path / "unfilled.py"
    script.write_text(client.get(f"/api/sessions/{sid}/export/snippet?run=0").text)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode != 0 and export.CSV_PLACEHOLDER in done.stderr and "needs data" not in done.stderr


def test_a_session_closed_after_the_worker_listed_it_does_not_stop_the_worker(client, manager):
    """The worker lists the sessions, then steps each: one closed in between (a tab's unload request)
    with a press still owed is skipped, and the others go on training."""
    closing = client.post(f"/api/sessions?{SMALL}").json()["session"]
    other = client.post(f"/api/sessions?{SMALL}").json()["session"]
    client.post(f"/api/sessions/{closing}/step")  # owed, and the snapshot due
    client.post(f"/api/sessions/{other}/step")
    session = manager.get(closing)
    real_reap = manager._reap
    manager._reap = lambda: (real_reap(), session.close())  # closed just after it was listed
    assert manager.work_once() is True
    assert manager.get(other).step_count == 1 and session.runs == []
