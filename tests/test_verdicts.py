"""Every verdict label of ``diagnose`` on constructed cases where the right answer is known, and the
cases where it must NOT fire: a verdict is a judgement, tested like a measurement."""

import copy
import math

import pytest
import torch
from torch import nn

import initlab
from initlab import InitlabError, diagnose


def gen(seed):
    return torch.Generator().manual_seed(seed)


def randn(*shape, seed=1):
    return torch.randn(*shape, generator=gen(seed))


@pytest.fixture(scope="module")
def moons_X():
    return initlab.datasets.make("moons", n=256, noise=0.2, seed=0).X_train


# ---------------------------------------------------------------------------------------------- fires

def test_vanishing_forward_relu_with_xavier_suggests_he():
    model = initlab.mlp(64, [64] * 30, 1, "relu")
    initlab.initialize(model, "xavier_uniform", seed=0)
    v = diagnose(model, randn(128, 64)).verdict
    assert "vanishing (forward)" in v["labels"] and v["forward"]["extreme"] == 30
    assert v["suggestion"] == "he_normal" and v["message"].endswith("use he_normal")


def test_exploding_forward_relu_with_too_large_a_std():
    model = initlab.mlp(64, [64] * 10, 1, "relu")
    initlab.initialize(model, "normal", std=3 / 8, seed=0)  # sigma_w^2 = 9: x4.5 in variance per layer
    v = diagnose(model, randn(128, 64)).verdict
    assert v["forward"]["status"] == "exploding" and "grows by a factor" in v["message"]
    assert v["forward"]["ratio"] > 10


def test_vanishing_backward_with_pytorch_default_on_a_deep_relu_mlp():
    """The biases hold the forward std up, but the gradient shrinks ~sqrt(6)x per layer toward the input."""
    model = initlab.mlp(64, [64] * 20, 1, "relu")
    initlab.initialize(model, "default", seed=0)
    v = diagnose(model, randn(128, 64)).verdict
    assert v["backward"]["status"] == "vanishing" and v["backward"]["extreme"] == 1
    assert "toward the input; use he_normal" in v["message"]


def test_exploding_backward_in_the_chaotic_phase_of_tanh():
    """tanh with sigma_w^2 = 4: activations saturate (bounded) while gradients grow by chi_1 > 1 per layer."""
    model = initlab.mlp(64, [64] * 30, 1, "tanh")
    initlab.initialize(model, "normal", std=2 / 8, seed=0)
    v = diagnose(model, randn(128, 64)).verdict
    assert v["forward"]["status"] == "ok" and v["backward"]["status"] == "exploding"
    assert v["backward"]["ratio"] > 10


def test_symmetric_under_constant_init_and_not_under_random():
    model = initlab.mlp(8, [16, 16, 16], 1, "tanh")
    initlab.initialize(model, "constant", value=0.1)
    v = diagnose(model, randn(64, 8)).verdict
    assert "symmetric" in v["labels"] and "copies of each other" in v["message"]
    initlab.initialize(model, "xavier_uniform", seed=0)
    assert "symmetric" not in diagnose(model, randn(64, 8)).verdict["labels"]


def test_dead_when_most_relu_units_never_fire():
    model = initlab.mlp(16, [32, 32], 1, "relu")
    initlab.initialize(model, "he_normal", seed=0)
    with torch.no_grad():
        model.fc1.bias[:24] = -100.0  # 24 of 32 units below zero for every input
    v = diagnose(model, randn(64, 16)).verdict
    assert "dead" in v["labels"] and v["dead_layer"] == "fc1"


def test_saturated_when_tanh_units_sit_at_plus_minus_one():
    model = initlab.mlp(16, [32, 32], 1, "tanh")
    initlab.initialize(model, "normal", std=5.0, seed=0)
    v = diagnose(model, randn(64, 16)).verdict
    assert "saturated" in v["labels"]


def test_trained_model_gets_its_own_label():
    data = initlab.datasets.make("moons", n=200, noise=0.2, seed=0)
    model = initlab.mlp(2, [16, 16], 1, "tanh")
    initlab.initialize(model, "xavier_uniform", seed=0)
    assert "trained" not in diagnose(model, data.X_train).verdict["labels"]
    initlab.train(model, data, steps=20, lr=0.1, optimizer="sgd")
    v = diagnose(model, data.X_train).verdict
    assert "trained" in v["labels"] and "not of an initialization" in v["message"]


def test_inputs_with_nan_are_their_own_error():
    X = randn(16, 8)
    X[3, 2] = float("nan")
    with pytest.raises(InitlabError, match="NaN or inf"):
        diagnose(initlab.mlp(8, [8], 1), X)


# ---------------------------------------------------------------------------------------- must not fire

@pytest.mark.parametrize("seed", range(4))
def test_he_relu_30x256_on_real_inputs_is_ok_on_every_seed(seed, moons_X):
    """The one-unit readout's spread over the batch says nothing about depth: it is not read."""
    model = initlab.mlp(2, [256] * 30, 1, "relu")
    initlab.initialize(model, "he_normal", seed=seed)
    assert diagnose(model, moons_X).verdict["summary"] == "ok"


@pytest.mark.parametrize("norm_first", [False, True])
def test_pytorch_default_transformer_is_ok(norm_first):
    torch.manual_seed(0)
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(64, 4, 256, dropout=0.0, batch_first=True,
                                                           norm_first=norm_first), 4, enable_nested_tensor=False)
    d = diagnose(enc, randn(8, 16, 64))
    assert len(d.rows) == 12 and d.verdict["summary"] == "ok", d.verdict["message"]


def _cnn(depth=8):
    layers, c = [], 3
    for _ in range(depth):
        layers += [nn.Conv2d(c, 16, 3, padding=1), nn.ReLU()]
        c = 16
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))


def test_cnn_with_he_is_ok_and_as_built_is_told_to_use_he():
    images = randn(32, 3, 16, 16)
    torch.manual_seed(0)
    built = _cnn()
    he = copy.deepcopy(built)
    initlab.initialize(he, "he_normal", seed=0)
    assert diagnose(he, images).verdict["summary"] == "ok"
    v = diagnose(built, images).verdict
    assert v["summary"] != "ok" and v["suggestion"] == "he_normal"


class ScaledRelu(nn.Module):
    """He-initialized layers whose forward multiplies every activation by 2: the scheme is right, the
    architecture explodes."""

    def __init__(self, width=64, depth=12):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
        self.act = nn.ReLU()
        self.out = nn.Linear(width, 1)

    def forward(self, x):
        for layer in self.layers:
            x = 2 * self.act(layer(x))
        return self.out(x)


def test_the_suggested_fix_is_never_the_rule_already_in_use():
    model = ScaledRelu()
    initlab.initialize(model, "he_normal", seed=0)
    v = diagnose(model, randn(128, 64)).verdict
    assert v["forward"]["status"] == "exploding"
    assert v["suggestion"] is None and "use he_normal" not in v["message"]
    assert "already follow he_normal's rule" in v["message"]


# ------------------------------------------------------------------------------------- scheme= is real

def test_scheme_argument_diagnoses_an_initialized_copy_and_leaves_the_model():
    model = initlab.mlp(64, [64] * 20, 1, "relu")
    initlab.initialize(model, "xavier_uniform", seed=0)
    before = [p.detach().clone() for p in model.parameters()]
    X = randn(128, 64)
    as_is = diagnose(model, X)
    with_he = diagnose(model, X, scheme="he_normal")
    assert as_is.verdict["forward"]["status"] == "vanishing"
    assert with_he.verdict["summary"] == "ok" and with_he.scheme == "he_normal"
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    he_model = copy.deepcopy(model)
    initlab.initialize(he_model, "he_normal", seed=0)
    assert with_he.rows[5]["preact_std"] == pytest.approx(diagnose(he_model, X).rows[5]["preact_std"], rel=1e-12)
    assert math.isclose(with_he.rows[3]["sigma_w2"], 2.0, rel_tol=0.1)
