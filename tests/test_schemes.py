import json
import math

import pytest
import torch
from scipy import stats
from torch import nn

import initlab
from initlab import InitlabError
from initlab.schemes import fans, variance_scaling


def draw(scheme, shape=(300, 200), seed=0, **params):
    w = torch.empty(*shape)
    rec = initlab.initialize(w, scheme, seed=seed, **params).entries[0]
    return w, rec


def test_every_named_scheme_is_listed():
    names = set(initlab.schemes())
    assert {"constant", "zeros", "normal", "uniform", "default", "xavier_uniform", "xavier_normal",
            "he_uniform", "he_normal", "lecun_uniform", "lecun_normal", "orthogonal"} <= names


def test_default_linear_stays_within_one_over_sqrt_fan_in():
    layer = nn.Linear(64, 300)
    initlab.initialize(layer, "default", seed=3)
    bound = 1 / math.sqrt(64)
    for t in (layer.weight, layer.bias):
        assert t.abs().max() <= bound
        assert t.abs().max() > 0.95 * bound  # it fills the interval, not a corner of it
    # a uniform on [-b, b] has variance b^2 / 3 (19200 samples: a 5-standard-error band)
    var = layer.weight.var().item()
    assert abs(var - bound**2 / 3) < 5 * (bound**2 / 3) * math.sqrt(0.8 / layer.weight.numel())


def test_xavier_uniform_uses_the_chapters_bound_and_uniform_():
    w, rec = draw("xavier_uniform", shape=(300, 200), seed=11)
    bound = math.sqrt(6) / math.sqrt(200 + 300)
    assert math.isclose(rec["bound"], bound, rel_tol=1e-12)
    assert w.abs().max() <= bound
    # exactly what torch.nn.init.uniform_ draws with that bound and the same generator
    expected = torch.nn.init.uniform_(torch.empty(300, 200), -rec["bound"], rec["bound"],
                                      generator=torch.Generator().manual_seed(11))
    assert torch.equal(w, expected)


def test_xavier_uniform_is_distributed_as_torch_xavier_uniform():
    ours, _ = draw("xavier_uniform", shape=(200, 100), seed=1)
    torchs = torch.nn.init.xavier_uniform_(torch.empty(200, 100), generator=torch.Generator().manual_seed(2))
    assert stats.ks_2samp(ours.flatten().numpy(), torchs.flatten().numpy()).pvalue > 0.01
    # the test has power: he_uniform on the same layer is a wider distribution and is told apart
    he, _ = draw("he_uniform", shape=(200, 100), seed=1)
    assert stats.ks_2samp(he.flatten().numpy(), torchs.flatten().numpy()).pvalue < 1e-6


@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg"])
@pytest.mark.parametrize("distribution", ["uniform", "normal", "truncated_normal"])
def test_variance_scaling_has_the_variance_it_promises(mode, distribution):
    w = torch.empty(400, 250)
    scale = 2.0
    rec = variance_scaling(w, scale, mode, distribution, generator=torch.Generator().manual_seed(5))
    n = {"fan_in": 250, "fan_out": 400, "fan_avg": 325}[mode]
    target = scale / n
    # standard error of a sample variance is about var * sqrt(kurtosis term / N); 2/N bounds all three
    se = target * math.sqrt(2 / w.numel())
    assert abs(w.var().item() - target) < 5 * se
    assert abs(w.mean().item()) < 5 * math.sqrt(target / w.numel())
    if distribution == "uniform":
        assert w.abs().max() <= rec["bound"] == pytest.approx(math.sqrt(3 * target))
    if distribution == "truncated_normal":
        assert w.abs().max() <= rec["bound"]


def test_he_and_lecun_scale_with_fan_in_and_gain():
    _, he = draw("he_normal", shape=(64, 100))
    assert he["std"] == pytest.approx(math.sqrt(2) / 10)
    _, he_tanh = draw("he_normal", shape=(64, 100), nonlinearity="tanh")
    assert he_tanh["std"] == pytest.approx(5 / 3 / 10)
    _, lecun = draw("lecun_uniform", shape=(64, 100))
    assert lecun["bound"] == pytest.approx(math.sqrt(3 / 100))


def test_he_takes_the_gain_from_the_models_activation():
    model = initlab.mlp(2, [50], 1, "tanh")
    entries = initlab.initialize(model, "he_normal", seed=0).entries
    assert entries[0]["nonlinearity"] == "tanh"
    assert entries[0]["gain"] == pytest.approx(5 / 3)


def test_orthogonal_has_all_singular_values_equal_to_gain():
    w, _ = draw("orthogonal", shape=(40, 60), gain=1.5)
    assert torch.allclose(w @ w.T, 1.5**2 * torch.eye(40), atol=1e-4)


@pytest.mark.parametrize("layer, expected", [
    (nn.Linear(7, 5), (7, 5)),
    (nn.Conv1d(3, 8, 5), (15, 40)),
    (nn.Conv2d(3, 8, 5), (75, 200)),
    (nn.Conv3d(2, 4, (3, 3, 2)), (36, 72)),
    (nn.Conv2d(4, 8, 3, groups=2), (18, 72)),
    (nn.ConvTranspose2d(3, 8, 5), (200, 75)),
])
def test_fans_are_computed_as_pytorch_computes_them(layer, expected):
    assert fans(layer.weight) == expected
    assert fans(layer.weight) == nn.init._calculate_fan_in_and_fan_out(layer.weight)


def test_conv_layers_get_their_scheme_and_zero_biases():
    model = nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU(), nn.ConvTranspose2d(16, 4, 3))
    manifest = initlab.initialize(model, "he_uniform", seed=0)
    conv, tconv = model[0], model[2]
    assert conv.weight.abs().max() <= math.sqrt(2) * math.sqrt(3 / 27)
    assert tconv.weight.abs().max() <= math.sqrt(2) * math.sqrt(3 / (4 * 9))
    assert torch.count_nonzero(conv.bias) == 0 and torch.count_nonzero(tconv.bias) == 0
    assert [e["parameter"] for e in manifest.entries] == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_bias_param_and_constant_biases():
    model = initlab.mlp(2, [8], 1)
    initlab.initialize(model, "xavier_normal", seed=0, bias=0.1)
    assert torch.all(model.fc1.bias == 0.1)
    initlab.initialize(model, "constant", value=0.05)
    for p in model.parameters():
        assert torch.all(p == 0.05)
    initlab.initialize(model, "zeros")
    assert all(torch.count_nonzero(p) == 0 for p in model.parameters())


def test_embeddings_are_left_and_norms_set_to_one_and_zero_and_reported():
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 4), nn.LayerNorm(4))
    with torch.no_grad():
        model[2].weight.fill_(3.0)
        model[2].bias.fill_(-1.0)
    before = model[0].weight.clone()
    manifest = initlab.initialize(model, "xavier_uniform", seed=0)
    assert [e["kind"] for e in manifest.left] == ["Embedding"]
    assert "roles={'embedding'" in manifest.left[0]["reason"]
    assert torch.equal(before, model[0].weight)
    assert torch.all(model[2].weight == 1) and torch.all(model[2].bias == 0)
    assert {e["parameter"]: e["role"] for e in manifest.entries}["2.weight"] == "norm_scale"
    assert "left" in manifest.table()
    assert set(manifest.accounting()) == {n for n, _ in model.named_parameters()}


def test_override_by_module_name_pattern():
    model = initlab.mlp(2, [16, 16], 1, "relu")
    manifest = initlab.initialize(model, "he_normal", seed=0, overrides={"out": "xavier_uniform"})
    schemes = {e["parameter"]: e["scheme"] for e in manifest.entries}
    assert schemes["fc1.weight"] == "he_normal" and schemes["out.weight"] == "xavier_uniform"
    assert model.out.weight.abs().max() <= math.sqrt(6 / 17)
    with pytest.raises(InitlabError, match="matches no layer or parameter; layers: fc1, fc2, out"):
        initlab.initialize(model, "he_normal", overrides={"ouput": "xavier_uniform"})


@pytest.mark.parametrize("scheme", ["default", "xavier_uniform", "orthogonal", "normal"])
def test_same_seed_same_parameters_and_global_rng_untouched(scheme):
    a, b, c = (initlab.mlp(2, [16, 16], 1) for _ in range(3))
    state = torch.get_rng_state()
    initlab.initialize(a, scheme, seed=7)
    initlab.initialize(b, scheme, seed=7)
    initlab.initialize(c, scheme, seed=8)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))
    assert torch.equal(state, torch.get_rng_state())


def test_manifest_json_replays_the_same_parameters():
    a, b = initlab.mlp(2, [16, 16], 1), initlab.mlp(2, [16, 16], 1)
    manifest = initlab.initialize(a, "normal", std=0.3, overrides={"out": "zeros"})  # seed drawn fresh
    text = manifest.to_json()
    doc = json.loads(text)
    assert doc["entries"][0]["std"] == 0.3 and doc["entries"][0]["distribution"] == "normal"
    assert {"fan_in", "fan_out", "scheme"} <= set(doc["entries"][0])
    initlab.initialize(b, **initlab.Manifest.replay_args(text))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_unknown_scheme_lists_known_ones_with_the_closest_match():
    with pytest.raises(InitlabError) as e:
        initlab.initialize(initlab.mlp(2, [4], 1), "xavier_unifrom")
    msg = str(e.value)
    assert "Did you mean 'xavier_uniform'?" in msg and "he_normal" in msg and "\n" not in msg


@pytest.mark.parametrize("call, match", [
    (lambda: initlab.initialize(initlab.mlp(2, [4], 1), "normal", std=-1.0), "std >= 0"),
    (lambda: initlab.initialize(nn.Linear(3, 0), "xavier_uniform"), "zero-size weight"),
    (lambda: initlab.initialize(torch.empty(5), "xavier_uniform"), "at least 2 dimensions"),
    (lambda: initlab.initialize(initlab.mlp(2, [4], 1), "normal", sd=0.1), "takes no parameter 'sd'"),
    (lambda: initlab.initialize(initlab.mlp(2, [4], 1), "he_normal", nonlinearity="relux"),
     "Did you mean 'relu'"),
    (lambda: initlab.initialize(initlab.mlp(2, [4], 1), "xavier_uniform", seed=-1), "seed"),
])
def test_bad_input_is_a_clear_error(call, match):
    with pytest.raises(InitlabError, match=match):
        call()


def test_bias_std_draws_normal_biases_reproducibly():
    a, b = initlab.mlp(2, [2000], 1), initlab.mlp(2, [2000], 1)
    initlab.initialize(a, "variance_scaling", scale=1.5, bias_std=0.2, seed=3)
    initlab.initialize(b, "variance_scaling", scale=1.5, bias_std=0.2, seed=3)
    assert torch.equal(a.fc1.bias, b.fc1.bias)
    assert a.fc1.bias.std().item() == pytest.approx(0.2, rel=0.1)
    with pytest.raises(InitlabError, match="not both"):
        initlab.initialize(a, "he_normal", bias=0.1, bias_std=0.1)
