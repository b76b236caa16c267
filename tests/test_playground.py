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
    record = client.get(f"/api/sessions/{sid}/export/record").json()
    assert record["kind"] == "initlab playground record" and record["schema_version"] == 1
    assert [r["label"] for r in record["runs"]] == ["orthogonal(gain=1.5)", "lsuv"]
    assert record["query"] == client.get(f"/api/sessions/{sid}").json()["query"]
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
