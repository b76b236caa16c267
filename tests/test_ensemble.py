"""train_many against its oracle, the plain loop: each model's result equals its solo run."""

import math

import pytest
import torch

import initlab
from initlab import InitlabError, train_many
from initlab.activations import ACTIVATIONS
from initlab.optimizers import OPTIMIZERS

HIDDEN = [8, 8]
RUNS = [{"scheme": "xavier_uniform", "seed": 0},
        {"scheme": "normal", "params": {"std": 0.5}, "seed": 3},
        {"scheme": "default", "seed": 5},
        {"scheme": {"name": "he_normal", "params": {"bias": 0.1}}, "seed": 7}]


def solo(data, run, *, hidden=HIDDEN, activation="tanh", dtype=torch.float64, **kw):
    """The oracle: one model built, initialized and trained by the plain path."""
    model = initlab.mlp(2, hidden, 1, activation).to(dtype)
    scheme = run["scheme"]
    spec = scheme if isinstance(scheme, dict) else {"name": scheme, "params": run.get("params", {})}
    initlab.initialize(model, spec, seed=run["seed"])
    return model, initlab.train(model, data, seed=run["seed"], **kw)


def assert_same(result, ref, rtol):
    assert result.history["step"] == ref.history["step"]
    assert (result.diverged, result.diverged_step) == (ref.diverged, ref.diverged_step)
    for key, values in ref.history.items():
        nan = float("nan")  # a diverged model's accuracy is None from its divergence on, in both
        a = torch.tensor([nan if v is None else v for v in result.history[key]], dtype=torch.float64)
        b = torch.tensor([nan if v is None else v for v in values], dtype=torch.float64)
        assert torch.allclose(a, b, rtol=rtol, atol=rtol, equal_nan=True), key


@pytest.mark.parametrize("optimizer, batch_size, activation", [
    ("sgd", None, "tanh"), ("sgd", 32, "relu"), ("adam", None, "gelu"), ("adam", 32, "leaky_relu"),
    ("adam", 64, "sigmoid")])
def test_each_model_equals_its_plain_loop_run(small_moons, optimizer, batch_size, activation):
    kw = dict(steps=30, lr=0.05 if optimizer == "sgd" else 0.01, optimizer=optimizer, batch_size=batch_size)
    results, models = train_many(small_moons, RUNS, hidden=HIDDEN, activation=activation, dtype="float64",
                                 return_models=True, **kw)
    for run, result, model in zip(RUNS, results, models):
        ref_model, ref = solo(small_moons, run, activation=activation, **kw)
        assert_same(result, ref, rtol=1e-10)
        for p, q in zip(model.parameters(), ref_model.parameters()):
            assert torch.allclose(p, q, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("optimizer, settings", [("rmsprop", {}), ("adamw", {}), ("adamw", {"weight_decay": 0.3})])
@pytest.mark.parametrize("batch_size", [None, 32])
def test_every_optimizer_of_the_table_equals_its_plain_loop_run(small_moons, optimizer, settings, batch_size):
    kw = dict(steps=25, lr=0.01, optimizer=optimizer, batch_size=batch_size, **settings)
    runs = RUNS[:2] + [{**RUNS[2], "lr": 0.03}]  # one learning rate per model, too
    results, models = train_many(small_moons, runs, hidden=HIDDEN, activation="tanh", dtype="float64",
                                 return_models=True, **kw)
    for run, result, model in zip(runs, results, models):
        ref_model, ref = solo(small_moons, run, **{**kw, "lr": run.get("lr", kw["lr"])})
        assert_same(result, ref, rtol=1e-10)
        assert result.config.get("weight_decay") == settings.get("weight_decay")
        for p, q in zip(model.parameters(), ref_model.parameters()):
            assert torch.allclose(p, q, rtol=1e-10, atol=1e-12)


def test_the_tests_cover_every_optimizer():
    covered = {"sgd", "adam", "rmsprop", "adamw"}  # the parametrizations above
    assert covered == set(OPTIMIZERS), "a new optimizer needs its train_many test"


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_every_activation_of_the_table_equals_its_plain_loop_run(small_moons, activation, optimizer):
    kw = dict(steps=15, lr=0.05 if optimizer == "sgd" else 0.01, optimizer=optimizer, batch_size=64)
    results, models = train_many(small_moons, RUNS[:2], hidden=HIDDEN, activation=activation, dtype="float64",
                                 return_models=True, **kw)
    for run, result, model in zip(RUNS[:2], results, models):
        ref_model, ref = solo(small_moons, run, activation=activation, **kw)
        assert_same(result, ref, rtol=1e-10)
        assert result.history["train_loss"][-1] != result.history["train_loss"][0]  # it trained
        for p, q in zip(model.parameters(), ref_model.parameters()):
            assert torch.allclose(p, q, rtol=1e-10, atol=1e-12)


def test_an_unknown_optimizer_is_an_error_that_lists_the_known_ones(small_moons):
    with pytest.raises(InitlabError) as err:
        train_many(small_moons, RUNS[:1], hidden=[4], steps=1, optimizer="lbfgs")
    assert all(name in str(err.value) for name in OPTIMIZERS)


@pytest.mark.parametrize("optimizer, batch_size", [("sgd", None), ("adam", 50)])
def test_float32_matches_to_float_tolerance(small_moons, optimizer, batch_size):
    kw = dict(steps=30, lr=0.01, optimizer=optimizer, batch_size=batch_size)
    results = train_many(small_moons, RUNS, hidden=HIDDEN, activation="tanh", **kw)
    for run, result in zip(RUNS, results):
        assert_same(result, solo(small_moons, run, dtype=torch.float32, **kw)[1], rtol=1e-4)


def test_initial_parameters_are_bitwise_the_plain_paths(small_moons):
    _, models = train_many(small_moons, RUNS, hidden=HIDDEN, activation="relu", steps=0, return_models=True)
    for run, model in zip(RUNS, models):
        ref, _ = solo(small_moons, run, activation="relu", dtype=torch.float32, steps=0)
        assert all(torch.equal(p, q) for p, q in zip(model.parameters(), ref.parameters()))


@pytest.mark.parametrize("optimizer, batch_size", [("sgd", None), ("sgd", 32)])
def test_a_diverging_model_is_frozen_and_never_reaches_the_others(small_moons, optimizer, batch_size):
    kw = dict(hidden=[32, 32, 32], activation="relu", steps=40, lr=0.1, optimizer=optimizer, dtype="float64",
              batch_size=batch_size)
    calm = [{"scheme": "xavier_uniform", "seed": s} for s in range(3)]
    std, seed = (30.0, 1) if batch_size is None else (100.0, 2)
    wild = {"scheme": "normal", "params": {"std": std}, "seed": seed}
    mixed = train_many(small_moons, calm[:1] + [wild] + calm[1:], **kw)
    alone = train_many(small_moons, calm, **kw)
    blown = mixed[1]
    assert blown.diverged and 1 <= blown.diverged_step < 40
    assert blown.history["step"][-1] == blown.diverged_step
    ref = solo(small_moons, wild, hidden=kw["hidden"], activation="relu", steps=40, lr=0.1, optimizer=optimizer,
               batch_size=batch_size)[1]
    assert blown.diverged_step == ref.diverged_step
    for result, without in zip(mixed[:1] + mixed[2:], alone):
        assert not result.diverged
        assert result.history == without.history  # bit for bit: a model's slice is its own
        assert all(math.isfinite(v) for vs in result.history.values() for v in vs)


def test_a_model_whose_loss_is_not_finite_is_recorded_without_a_step(small_moons):
    runs = [{"scheme": "normal", "params": {"std": 1e30}, "seed": 0}, {"scheme": "xavier_uniform", "seed": 0}]
    kw = dict(steps=5, lr=0.1, optimizer="adam")
    results, models = train_many(small_moons, runs, hidden=[4, 4], activation="relu", return_models=True, **kw)
    assert results[0].diverged_step == 1 and not math.isfinite(results[0].final["train_loss"])
    for run, result, model in zip(runs, results, models):
        ref_model, ref = solo(small_moons, run, hidden=[4, 4], activation="relu", dtype=torch.float32, **kw)
        assert_same(result, ref, rtol=1e-4)
        for p, q in zip(model.parameters(), ref_model.parameters()):
            assert torch.allclose(p, q, rtol=1e-4, atol=1e-5)  # the diverged one: as before its step


def test_learning_rate_per_run(small_moons):
    runs = [{**RUNS[0], "lr": 0.01}, {**RUNS[1], "lr": 0.2}]
    results = train_many(small_moons, runs, hidden=HIDDEN, activation="tanh", steps=20, lr=0.1,
                         optimizer="adam", batch_size=40, dtype="float64")
    for run, result in zip(runs, results):
        ref = solo(small_moons, run, steps=20, lr=run["lr"], optimizer="adam", batch_size=40)[1]
        assert_same(result, ref, rtol=1e-9)
        assert result.config["lr"] == run["lr"]


def test_callback_and_result_config(small_moons):
    seen = []
    results = train_many(small_moons, RUNS[:2], hidden="4x2", steps=12, eval_every=5, callback=seen.append)
    assert seen == list(range(13))
    assert results[0].history["step"] == [0, 5, 10, 12]
    assert results[1].config["scheme"] == {"name": "normal", "params": {"std": 0.5}}


@pytest.mark.parametrize("runs, kw, message", [
    ([], {}, "at least one run"),
    ([{"seed": 1}], {}, "'scheme'"),
    ([{"scheme": "xavier_uniform", "sed": 1}], {}, "unknown key"),
    ([{"scheme": "xavier_unifrom"}], {}, "Did you mean"),
    ([{"scheme": "normal", "seed": -1}], {}, "seed"),
    ([{"scheme": "normal"}], {"dtype": "float16"}, "dtype"),
    ([{"scheme": "normal"}], {"optimizer": "adamx"}, "Did you mean 'adam'"),
    ([{"scheme": "normal"}], {"optimizer": "sgd", "weight_decay": 0.1}, "optimizer 'sgd' takes no weight_decay"),
    ([{"scheme": "normal"}], {"optimizer": "adamw", "weight_decay": -1}, "weight_decay must be"),
    ([{"scheme": "normal", "lr": -1}], {}, "lr must be"),
])
def test_bad_input_is_an_initlab_error(small_moons, runs, kw, message):
    with pytest.raises(InitlabError, match=message):
        train_many(small_moons, runs, hidden=[4], steps=1, **kw)


@pytest.mark.parametrize("batch_size", [None, 32])
def test_each_run_may_have_its_own_data(batch_size):
    datas = [initlab.datasets.make("moons", n=120, noise=noise, seed=s) for s, noise in ((0, 0.1), (1, 0.3), (2, 0.2))]
    runs = [{"scheme": "xavier_uniform", "seed": 0}, {"scheme": "xavier_uniform", "seed": 0},
            {"scheme": "normal", "params": {"std": 30.0}, "seed": 0}]  # diverges with minibatches
    kw = dict(steps=25, lr=0.5, optimizer="sgd", batch_size=batch_size)
    results = train_many(datas, runs, hidden=[32, 32, 32], activation="relu", dtype="float64", **kw)
    assert results[0].history != results[1].history and results[1].config["data"]["noise"] == 0.3
    assert results[2].diverged == (batch_size is not None) and not results[0].diverged
    for run, data, result in zip(runs, datas, results):
        assert_same(result, solo(data, run, hidden=[32, 32, 32], activation="relu", **kw)[1], rtol=1e-10)
    with pytest.raises(InitlabError, match="equal sizes"):
        train_many([datas[0], initlab.datasets.make("moons", n=100)], runs[:2], hidden=[4], steps=1)


def test_models_trained_in_chunks_equal_their_solo_runs(small_moons, monkeypatch):
    monkeypatch.setattr(initlab.ensemble, "ACTIVATION_BUDGET", 2000)  # a few models per chunk
    kw = dict(steps=12, lr=0.01, optimizer="adam", batch_size=32, eval_every=4)
    results = train_many(small_moons, RUNS * 2, hidden=HIDDEN, activation="tanh", dtype="float64", **kw)
    for run, result in zip(RUNS * 2, results):
        assert_same(result, solo(small_moons, run, **kw)[1], rtol=1e-10)


def test_the_optimizer_steps_in_slices_and_survives_a_dropped_model(small_moons, monkeypatch):
    monkeypatch.setattr(initlab.stack, "STEP_SLICE", 97)  # slices that cut across layers and models
    wild = {**RUNS[2], "lr": 1e300}  # diverges after its first step, once the optimizer has state
    runs = [RUNS[0], wild, {**RUNS[1], "lr": 0.03}]
    kw = dict(steps=20, lr=0.01, optimizer="adamw", batch_size=32, weight_decay=0.1)
    results = train_many(small_moons, runs, hidden=[32, 32, 32], activation="relu", dtype="float64", **kw)
    assert results[1].diverged
    for run, result in zip(runs, results):
        ref = solo(small_moons, run, hidden=[32, 32, 32], activation="relu", **{**kw, "lr": run.get("lr", 0.01)})[1]
        assert_same(result, ref, rtol=1e-10)


@pytest.mark.parametrize("return_models", [False, True])
def test_the_global_rng_is_never_touched(small_moons, return_models):
    state = torch.random.get_rng_state()
    runs = [{"scheme": "default", "seed": 1}, {"scheme": "xavier_uniform", "seed": 2}]
    train_many(small_moons, runs, hidden=[8], steps=5, batch_size=32, return_models=return_models)
    assert torch.equal(state, torch.random.get_rng_state())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("optimizer, batch_size", [("sgd", None), ("adam", 50)])
def test_on_cuda_each_model_equals_its_plain_loop_run(small_moons, optimizer, batch_size):
    kw = dict(steps=30, lr=0.01, optimizer=optimizer, batch_size=batch_size, device="cuda")
    results = train_many(small_moons, RUNS, hidden=HIDDEN, activation="tanh", dtype="float64", **kw)
    for run, result in zip(RUNS, results):
        assert result.config["device"].startswith("cuda")
        assert_same(result, solo(small_moons, run, **kw)[1], rtol=1e-10)
