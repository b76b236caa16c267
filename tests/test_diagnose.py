import json
import math

import pytest
import torch
from torch import nn

import initlab
from initlab import InitlabError, diagnose, lsuv

WIDTH = 512


def batch(n=256, d=WIDTH, seed=123):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def var_ratios(d, key):
    s = [r[key] ** 2 for r in d.rows[:-1]]
    return [b / a for a, b in zip(s, s[1:])]


def ratio_ok(ratios, expected, rel=0.15):
    mean = sum(ratios) / len(ratios)
    return abs(mean - expected) <= rel * expected


def test_linear_net_with_third_variance_shrinks_by_a_third_per_layer():
    model = initlab.mlp(WIDTH, [WIDTH] * 6, 1, "identity")
    initlab.initialize(model, "normal", std=math.sqrt(1 / (3 * WIDTH)), seed=1)
    d = diagnose(model, batch())
    assert ratio_ok(var_ratios(d, "preact_std"), 1 / 3)
    # backward: each layer's gradient variance is a third of the next one's
    g = [r["grad_std"] ** 2 for r in d.rows[:-1]]
    assert ratio_ok([a / b for a, b in zip(g, g[1:])], 1 / 3)
    for r in d.rows:
        assert r["preact_std"] == pytest.approx(r["predicted_preact_std"], rel=0.1)


@pytest.mark.parametrize("scheme, expected", [("xavier_normal", 0.5), ("he_normal", 1.0)])
def test_relu_halves_with_xavier_and_keeps_with_he(scheme, expected):
    model = initlab.mlp(WIDTH, [WIDTH] * 8, 1, "relu")
    initlab.initialize(model, scheme, seed=2)
    d = diagnose(model, batch())
    assert ratio_ok(var_ratios(d, "preact_std"), expected)
    g = [r["grad_std"] ** 2 for r in d.rows[:-1]]
    assert ratio_ok([a / b for a, b in zip(g, g[1:])], expected)
    for r in d.rows[:-1]:
        assert r["grad_std"] == pytest.approx(r["predicted_grad_std"], rel=0.2)


def test_tanh_predicted_and_measured_agree_at_depth_10():
    model = initlab.mlp(WIDTH, [WIDTH] * 10, 1, "tanh")
    initlab.initialize(model, "xavier_uniform", seed=3, bias=0.0)
    d = diagnose(model, batch())
    assert d.activation == "tanh"
    tenth = d.rows[9]
    assert tenth["act_std"] == pytest.approx(tenth["predicted_act_std"], rel=0.05)
    assert tenth["grad_std"] == pytest.approx(tenth["predicted_grad_std"], rel=0.1)


def test_verdict_deep_relu_xavier_vanishes_he_is_ok():
    X = batch(256, 256)
    verdicts = {}
    for scheme in ("xavier_uniform", "he_normal"):
        model = initlab.mlp(256, [256] * 30, 1, "relu")
        initlab.initialize(model, scheme, seed=0)
        verdicts[scheme] = diagnose(model, X, scheme=scheme).verdict
    assert verdicts["xavier_uniform"]["forward"]["status"] == "vanishing"
    assert "use he_normal" in verdicts["xavier_uniform"]["message"]
    assert verdicts["he_normal"]["summary"] == "ok"


def test_dead_and_saturated_fractions_on_constructed_layers():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 1))
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.copy_(torch.tensor([-1.0, -1, -1, 1, 1, 1, 1, 1]))  # 3 of 8 never active
        model[2].weight.zero_()
        model[2].bias.copy_(torch.tensor([5.0, 5, -5, -5, -5, 5, 0.1, 0]))  # 6 of 8 beyond 0.99
    d = diagnose(model, batch(32, 4))
    assert d.rows[0]["dead_fraction"] == pytest.approx(3 / 8)
    assert d.rows[1]["saturated_fraction"] == pytest.approx(6 / 8)
    assert "saturated" in d.verdict["labels"]


def test_constant_init_is_flagged_symmetric():
    model = initlab.mlp(8, [16, 16], 1, "tanh")
    initlab.initialize(model, "constant", value=0.1)
    d = diagnose(model, batch(64, 8))
    assert [r["effective_width"] for r in d.rows[:-1]] == [1, 1]
    assert "symmetric" in d.verdict["labels"]


class Residual(nn.Module):
    def __init__(self, d=32):
        super().__init__()
        self.inp, self.f1, self.f2, self.head = nn.Linear(8, d), nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, 1)

    def forward(self, x):
        h = torch.relu(self.inp(x))  # functional activations: taken from the next layer's input
        h = h + self.f2(torch.relu(self.f1(h)))
        return self.head(h)


def test_any_module_cnn_residual_and_functional_activations():
    cnn = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.ReLU(), nn.Flatten(),
                        nn.Linear(8 * 6 * 6, 10))
    d = diagnose(cnn, torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0)))
    assert [r["kind"] for r in d.rows] == ["Conv2d", "Conv2d", "Linear"]
    assert d.rows[0]["fan_in"] == 27 and d.rows[0]["width"] == 8 and d.rows[0]["activation"] == "relu"
    res = diagnose(Residual(), batch(64, 8))
    assert [r["name"] for r in res.rows] == ["inp", "f1", "f2", "head"]
    assert res.rows[0]["activation"] == "relu" and res.rows[0]["dead_fraction"] is not None  # F.relu, read from autograd
    assert all(r["grad_std"] > 0 for r in res.rows)


def test_parameters_grads_and_rng_are_left_as_they_were():
    model = nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.5), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 1))
    X = batch(32, 8)
    model(X).sum().backward()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    grads = [p.grad.clone() for p in model.parameters()]
    rng = torch.get_rng_state()
    diagnose(model, X, targets=torch.ones(32), loss_fn=lambda out, y: ((out.squeeze(1) - y) ** 2).mean())
    assert torch.equal(rng, torch.get_rng_state())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(torch.equal(g, p.grad) for g, p in zip(grads, model.parameters()))


def test_outputs_json_html_table_and_plot():
    model = initlab.mlp(16, [16, 16], 1, "relu")
    d = diagnose(model, batch(64, 16))
    doc = json.loads(d.to_json())
    assert len(doc["layers"]) == 3 and "summary" in doc["verdict"]
    assert "<table>" in d._repr_html_() and "verdict" in d.table()
    ax = d.plot()
    assert ax.get_yscale() == "log" and len(ax.lines) == 4  # measured and predicted, both directions


def test_lsuv_reaches_unit_std_in_every_layer_of_deep_relu_mlp_and_cnn():
    model = initlab.mlp(64, [64] * 20, 1, "relu")
    result = lsuv(model, batch(256, 64), tol=0.1)
    assert all(abs(r["preact_std"] - 1) <= 0.1 for r in result.after.rows)
    # PyTorch's default, 20 ReLU layers: the bias holds the forward std, the gradient vanishes toward the input
    assert result.before.verdict["backward"]["status"] == "vanishing"
    cnn = nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU(), nn.Conv2d(16, 16, 3), nn.ReLU(), nn.Flatten(),
                        nn.Linear(16 * 4 * 4, 5))
    result = lsuv(cnn, torch.randn(16, 3, 8, 8, generator=torch.Generator().manual_seed(1)))
    assert all(abs(r["preact_std"] - 1) <= 0.1 for r in result.after.rows)


def test_lsuv_as_a_scheme_name_needs_data():
    model = initlab.mlp(2, [16, 16], 1)
    with pytest.raises(InitlabError, match="needs data"):
        initlab.initialize(model, "lsuv")
    manifest = initlab.initialize(model, "lsuv", inputs=batch(100, 2))
    assert {e["scheme"] for e in manifest.entries} == {"lsuv"}


def test_bad_inputs_are_clear_errors():
    with pytest.raises(InitlabError, match="do not fit"):
        diagnose(initlab.mlp(4, [8], 1), batch(8, 5))
    with pytest.raises(InitlabError, match="no layer initlab can diagnose"):
        diagnose(nn.Sequential(nn.ReLU()), batch(8, 4))


def test_an_inplace_relu_leaves_the_diagnosis_as_it_is():
    """nn.ReLU(inplace=True) overwrites the layer's output after the layer ran: the probe copies it
    first, so the pre-activation std, the effective width and the verdict are those of the same
    model with out-of-place ReLUs (they used to be the ReLU's: a third smaller)."""
    found = []
    for inplace in (False, True):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(inplace=inplace), nn.Linear(64, 64),
                              nn.ReLU(inplace=inplace), nn.Linear(64, 2))
        found.append(diagnose(model, torch.randn(256, 32, generator=torch.Generator().manual_seed(1))))
    plain, inplace = found
    for a, b in zip(plain.rows, inplace.rows):
        for k in ("preact_std", "act_std", "grad_std", "dead_fraction", "effective_width"):
            assert (b[k] is None) if a[k] is None else b[k] == pytest.approx(a[k], rel=1e-6), k
    assert inplace.rows[0]["preact_std"] > 1.2 * inplace.rows[0]["act_std"]
    assert inplace.verdict["summary"] == plain.verdict["summary"]


def test_lsuv_scales_the_layer_output_not_what_an_inplace_relu_made_of_it():
    """With nn.ReLU(inplace=True) after each layer, lsuv still brings each layer's own output to std 1
    (it used to bring the ReLU's to 1, leaving the layer's near 1.7), and ends with the same weights
    as on the out-of-place model."""
    weights = []
    for inplace in (False, True):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(inplace=inplace), nn.Linear(64, 64),
                              nn.ReLU(inplace=inplace), nn.Linear(64, 2))
        x = torch.randn(256, 32, generator=torch.Generator().manual_seed(1))
        result = lsuv(model, x, tol=0.05)
        assert all(abs(r["preact_std"] - 1) <= 0.05 for r in result.after.rows)
        with torch.no_grad():
            h = model[0](x)
        assert float(h.std()) == pytest.approx(1.0, abs=0.05)
        weights.append([p.detach().clone() for p in model.parameters()])
    for a, b in zip(*weights):
        torch.testing.assert_close(b, a)


class _FunctionalInplace(nn.Module):
    """Older model code: the activation written over the layer's output by the forward itself."""

    def __init__(self, inplace: bool):
        super().__init__()
        self.inplace = inplace
        self.fc1, self.fc2, self.fc3 = nn.Linear(32, 64), nn.Linear(64, 64), nn.Linear(64, 2)

    def forward(self, x):
        x = self.fc1(x)
        x = x.relu_() if self.inplace else torch.relu(x)
        x = torch.nn.functional.relu(self.fc2(x), inplace=self.inplace)
        return self.fc3(x)


def test_a_functional_inplace_relu_in_the_models_own_code_leaves_the_diagnosis_as_it_is():
    """x.relu_() and F.relu(x, inplace=True) write over the layer's output: the probe sees it by the
    tensor's version counter and measures again, copying the outputs, so every row (the ReLU after each
    layer found, its dead share measured) is the out-of-place model's."""
    found = []
    for inplace in (False, True):
        torch.manual_seed(0)
        found.append(diagnose(_FunctionalInplace(inplace), torch.randn(256, 32, generator=torch.Generator().manual_seed(1))))
    plain, inplace = found
    assert [r["activation"] for r in inplace.rows] == [r["activation"] for r in plain.rows] == ["relu", "relu", None]
    for a, b in zip(plain.rows, inplace.rows):
        for k in ("preact_std", "act_std", "grad_std", "weight_grad_std", "dead_fraction", "effective_width"):
            assert (b[k] is None) if a[k] is None else b[k] == pytest.approx(a[k], rel=1e-6), k
    assert inplace.verdict["summary"] == plain.verdict["summary"]


def test_leaky_relu_units_below_zero_are_not_called_dead_and_relu_units_are():
    """A unit below 0 on every sample is dead after a ReLU (no gradient reaches its weights) and alive
    after a LeakyReLU (its slope passes one): the dead share and the verdict say so."""
    found = {}
    for act in (nn.ReLU, lambda: nn.LeakyReLU(0.2)):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(20, 64), act(), nn.Linear(64, 64), act(), nn.Linear(64, 1))
        with torch.no_grad():
            model[0].bias.fill_(-30.0)
        x = torch.randn(128, 20, generator=torch.Generator().manual_seed(1))
        d = diagnose(model, x)
        model.zero_grad()
        model(x).sum().backward()
        silent = float((model[0].weight.grad.abs().sum(1) == 0).double().mean())
        found[type(model[1]).__name__] = (d.rows[0]["dead_fraction"], silent, d.verdict["labels"])
    assert found["ReLU"][0] == 1.0 and found["ReLU"][1] == 1.0 and "dead" in found["ReLU"][2]
    assert found["LeakyReLU"][0] is None and found["LeakyReLU"][1] == 0.0 and "dead" not in found["LeakyReLU"][2]


class _ConvBlock(nn.Module):
    def __init__(self, c=16):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(c, c, 3, padding=1), nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return torch.relu(self.conv2(torch.relu(self.conv1(x))) + x)


def _zero_branch_net(recipe: str | None):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), *[_ConvBlock() for _ in range(3)],
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    if recipe == "fixup":
        initlab.initialize(model, "fixup", seed=0)
    else:
        for block in model[2:5]:
            nn.init.zeros_(block.conv2.weight)
            nn.init.zeros_(block.conv2.bias)
    return model


@pytest.mark.parametrize("recipe", [None, "fixup"])
def test_a_zeroed_residual_branch_is_not_a_symmetric_start(recipe):
    """The last layer of each branch set to 0 (Fixup, SkipInit, ZerO) gives 16 equal output channels,
    but the gradients reaching them differ, so they part at the first step: not the constant start the
    symmetric verdict is for (it told these models to use a random scheme). A constant start, whose
    gradients are copies too, still is."""
    model = _zero_branch_net(recipe)
    x = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    d = diagnose(model, x, targets=torch.arange(8) % 10)
    zeroed = [r for r in d.rows if r["name"].endswith("conv2")]
    # Fixup's zero classifier stops every gradient at step 0: the branches part at the second step
    steps = 2 if recipe == "fixup" else 1
    assert len(zeroed) == 3 and all(r["effective_width"] == 1 and r["parts_at_step"] == steps for r in zeroed)
    assert "symmetric" not in d.verdict["labels"], d.verdict["message"]
    # and so they do: after that many steps the channels are distinct
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), torch.arange(8) % 10).backward()
        opt.step()
    assert all(r["effective_width"] == 16 for r in diagnose(model, x).rows if r["name"].endswith("conv2"))
    constant = initlab.mlp(8, [16, 16], 1, "tanh")
    initlab.initialize(constant, "constant", value=0.1)
    for value in (0.1, 0.0):  # zero too: the chapter's first example
        initlab.initialize(constant, "constant", value=value)
        d = diagnose(constant, batch(64, 8))
        assert [r["effective_width"] for r in d.rows[:-1]] == [1, 1] and "symmetric" in d.verdict["labels"]


class _Checkpointed(nn.Module):
    def __init__(self, reentrant: bool | None, d=32):
        super().__init__()
        self.reentrant = reentrant
        self.inp, self.out = nn.Linear(8, d), nn.Linear(d, 1)
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(d, 2 * d), nn.ReLU(), nn.Linear(2 * d, d)) for _ in range(3))

    def forward(self, x):
        from torch.utils.checkpoint import checkpoint

        x = self.inp(x)
        for b in self.blocks:
            x = x + (b(x) if self.reentrant is None else checkpoint(b, x, use_reentrant=self.reentrant))
        return self.out(x)


def test_layers_no_gradient_reached_are_said_not_measured_never_called_ok():
    """A reentrant torch.utils.checkpoint runs its forward without autograd: no gradient reaches the
    hooks of the layers inside. The verdict says the backward pass was not judged there (it said
    'forward and backward std stay within 10x'); without the checkpoint, or non-reentrant, all is measured."""
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
    verdicts = {}
    for reentrant in (None, True, False):
        torch.manual_seed(0)
        verdicts[reentrant] = diagnose(_Checkpointed(reentrant), x).verdict
    hidden = verdicts[True]
    assert "gradient not measured" in hidden["labels"] and len(hidden["unmeasured_gradient"]) == 6
    assert "no gradient reached 6 of 8 layers (first 'blocks.0.0')" in hidden["message"]
    assert "use_reentrant=False" in hidden["message"] and "backward std stay" not in hidden["message"]
    for reentrant in (None, False):
        assert verdicts[reentrant]["unmeasured_gradient"] == [] and verdicts[reentrant]["summary"] == "ok"


def test_the_activation_after_a_batchnorm_is_the_layers_activation():
    """conv -> BatchNorm -> ReLU (ResNets, MobileNets): the ReLU after the norm is the convolution's
    activation (its std and dead share measured on the ReLU's output, by hand below); a convolution
    followed by a norm and no activation (a linear bottleneck) has none."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
                          nn.Conv2d(8, 8, 1), nn.BatchNorm2d(8),
                          nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.Flatten(), nn.Linear(8 * 8 * 8, 4))
    x = torch.randn(16, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    d = diagnose(model, x)
    assert [r["activation"] for r in d.rows] == ["relu", None, "relu", None]
    with torch.no_grad():
        h = model[2](model[1](model[0](x)))
    assert d.rows[0]["act_std"] == pytest.approx(float(h.double().std()), rel=1e-5)
    assert d.rows[0]["preact_std"] == pytest.approx(float(model[0](x).double().std()), rel=1e-5)
    assert d.rows[0]["dead_fraction"] == 0.0 and d.rows[1]["dead_fraction"] is None
    assert d.activation == "relu"


class _Tagger(nn.Module):
    """A per-step model (a tagger or a language model): the loss reads every step of the sequence."""

    def __init__(self, recurrent_scale: float | None):
        super().__init__()
        torch.manual_seed(0)
        self.rnn, self.head = nn.RNN(8, 32, num_layers=2), nn.Linear(32, 3)
        with torch.no_grad():
            for k in ("weight_hh_l0", "weight_hh_l1"):
                if recurrent_scale is None:  # orthogonal: a signal kept through time
                    nn.init.orthogonal_(getattr(self.rnn, k), generator=torch.Generator().manual_seed(2))
                else:
                    getattr(self.rnn, k).mul_(recurrent_scale)

    def forward(self, x):
        return self.head(self.rnn(x)[0])


def test_through_time_is_judged_from_the_last_step_even_when_the_loss_reads_every_step():
    """With the recurrent weights scaled by 0.3, nothing at step 0 reaches step 100 (by hand: the
    gradient of the last output with respect to the first input is 0). The loss reading every step gave
    step 0 a term of its own (ratio 0.63: 'ok'); the reach is now measured from the last step alone."""
    x = torch.randn(100, 4, 8, generator=torch.Generator().manual_seed(1))  # (T, N, features)
    weak, strong = _Tagger(0.3), _Tagger(None)
    xg = x.clone().requires_grad_()
    weak(xg)[-1].sum().backward()
    assert float(xg.grad[0].abs().max()) < 1e-12
    d = diagnose(weak, x)
    row = next(r for r in d.rows if r["name"] == "rnn")
    assert row["first_step_grad_ratio"] < 1e-6 and "vanishing (through time)" in d.verdict["labels"]
    kept = diagnose(strong, x[:20])
    assert next(r for r in kept.rows if r["name"] == "rnn")["first_step_grad_ratio"] > 0.01
    assert "vanishing (through time)" not in kept.verdict["labels"]


class _TinyMoE(nn.Module):
    """Two ReLU experts; the second is given only the last token."""

    def __init__(self):
        super().__init__()
        self.cls = nn.Parameter(torch.zeros(1, 16))  # a parameter the model's own code uses
        self.inp = nn.Linear(16, 16)
        self.experts = nn.ModuleList(nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 16)) for _ in range(2))
        self.head = nn.Linear(16, 2)

    def forward(self, x):
        h = self.inp(x) + self.cls
        return self.head(self.experts[0](h[:-1]).sum(0) + self.experts[1](h[-1:]).sum(0))


def test_a_layer_called_on_too_few_samples_has_no_dead_share_and_a_models_own_parameter_is_not_misread():
    """An expert given one token has about half its ReLU units at 0 by chance: with fewer than
    DEAD_SAMPLES samples no unit is called dead (20 seeds called it 'dead' 5 times). A parameter the
    model's forward uses itself (a class token) is not 'not understood ... register_layer'."""
    from initlab.probe import DEAD_SAMPLES

    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(1))
    for seed in range(20):
        torch.manual_seed(seed)
        d = diagnose(_TinyMoE(), x)
        one = next(r for r in d.rows if r["name"] == "experts.1.0")
        many = next(r for r in d.rows if r["name"] == "experts.0.0")
        assert one["dead_fraction"] is None and many["dead_fraction"] is not None
        assert "dead" not in d.verdict["labels"]
    assert DEAD_SAMPLES >= 16
    assert d.accounting()["cls"].startswith("no row: 'cls' is a parameter the model (_TinyMoE) uses in its own code")
    assert "cls" not in d.verdict.get("unmeasured", {})
