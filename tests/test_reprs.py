"""Short reprs for the objects a notebook shows, and HTML tables for the ones with a table."""

import torch

import initlab


def test_short_reprs_and_html_tables():
    data = initlab.datasets.make("moons", n=200, noise=0.2, seed=0)
    assert repr(data).startswith("Dataset(moons: 140 train and 60 test points, 2 features")
    model = initlab.mlp(2, [8, 8], 1, "relu")
    manifest = initlab.initialize(model, "he_normal", seed=0)
    assert repr(manifest) == "Manifest(he_normal, seed 0: 6 tensors drawn, 0 left as they were, 0 shared)"
    assert manifest._repr_html_().count("<tr>") == 7
    d = initlab.diagnose(model, data.X_train)
    assert repr(d) == f"Diagnosis(as built, relu, 3 layers: {d.verdict['summary']})"
    assert "<table>" in d._repr_html_()
    result = initlab.train(model, data, steps=10)
    assert repr(result).startswith("TrainResult(10 steps, test accuracy 0.")
    assert "test_accuracy" in result._repr_html_()
    for r in (repr(data), repr(manifest), repr(d), repr(result)):
        assert len(r) < 120 and "\n" not in r


def test_a_diverged_result_shows_no_accuracy():
    data = initlab.datasets.make("moons", n=200, noise=0.2, seed=0)
    model = initlab.mlp(2, [32, 32, 32, 32], 1, "relu")
    initlab.initialize(model, "normal", std=3.0, seed=0)
    result = initlab.train(model, data, steps=200, lr=0.1)
    assert result.diverged
    assert repr(result).startswith(f"TrainResult(diverged at step {result.diverged_step}: no accuracy")
    assert "accuracy" not in result._repr_html_().replace("no accuracy", "")
