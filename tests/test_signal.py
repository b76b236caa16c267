"""Signal propagation (initlab.signal, theory.pair_map / c_map, `initlab signal`): each number against an
independent computation (plain autograd, numpy's SVD, explicit gradient dot products, Monte Carlo and
closed-form Gaussian integrals), and Pennington et al.'s qualitative result on dynamical isometry."""

import json
import math
import sys

import numpy as np
import pytest
import torch
from torch import nn

import initlab
from initlab import theory
from initlab.errors import InitlabError


def _x(n, *shape, std=1.0, seed=12345):
    """Inputs from their own stream (never the scheme's seed: W would copy X)."""
    return std * torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed))


def _net(width, depth, activation="tanh", scheme="orthogonal", seed=0, in_features=None, out_features=None, **params):
    net = initlab.mlp(in_features or width, [width] * depth, out_features or width, activation)
    initlab.initialize(net, scheme, seed=seed, **params)
    return net


def _autograd_singular_values(model, x):
    model.eval()
    out = []
    for xi in x:
        J = torch.autograd.functional.jacobian(lambda v: model(v.reshape(1, *x.shape[1:])).reshape(-1), xi.reshape(-1))
        out.append(np.linalg.svd(J.double().numpy(), compute_uv=False))
    return np.stack(out)


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 5 * 5, 6)

    def forward(self, x):
        return self.fc(torch.tanh(self.conv(x)).flatten(1))


def _encoder(d=16, t=5):
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(d, 2, dim_feedforward=32, dropout=0.1, batch_first=True)
    return nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)


# --------------------------------------------------------------------------------------------------
# the Jacobian

@pytest.mark.parametrize("case", ["mlp_wide_out", "mlp_narrow_out", "cnn"])
def test_singular_values_equal_plain_autograd_and_numpy(case):
    if case == "cnn":
        torch.manual_seed(0)
        model, x = SmallCNN(), _x(3, 2, 5, 5)
    else:
        model = _net(12, 3, in_features=10, out_features=15 if case == "mlp_wide_out" else 7, scheme="xavier_normal")
        x = _x(3, 10)
    s = initlab.jacobian_spectrum(model, x, n=None)
    expected = _autograd_singular_values(model, x)
    assert s.method == "exact" and s.singular_values.shape == expected.shape
    np.testing.assert_allclose(s.singular_values, expected, rtol=1e-4, atol=1e-6)
    assert s.mean_s2 == pytest.approx(np.mean(np.sum(expected**2, 1) / expected.shape[1]), rel=1e-5)
    assert s.max == pytest.approx(expected.max(), rel=1e-5)
    assert s.condition == pytest.approx(np.median(expected[:, 0] / expected[:, -1]), rel=1e-4)
    assert (s.predicted_mean_s2 is None) == (case == "cnn")
    if case == "cnn":
        assert "SmallCNN" in s.reason and "Conv2d" in s.reason


def test_random_projections_stay_within_their_stated_error():
    model, x = _net(48, 3, scheme="xavier_normal"), _x(2, 48, std=0.5)
    exact = initlab.jacobian_spectrum(model, x, n=None)
    est = initlab.jacobian_spectrum(model, x, n=None, max_exact=16, probes=40, seed=3)
    assert est.method.startswith("projections") and est.condition is None and est.mean_s2_error > 0
    assert abs(est.mean_s2 - exact.mean_s2) < 4 * est.mean_s2_error
    top_true, top_est = exact.singular_values[:, 0], est.singular_values[:, 0]
    assert np.all(top_est <= top_true * (1 + 1e-4)) and np.all(top_est >= 0.8 * top_true)  # randomized SVD: from below


def test_mean_squared_singular_value_is_the_mean_field_product():
    for scheme in ("orthogonal", "xavier_normal"):
        s = initlab.jacobian_spectrum(_net(256, 6, scheme=scheme), _x(4, 256, std=0.7), n=None)
        assert s.mean_s2 == pytest.approx(s.predicted_mean_s2, rel=0.12), scheme
        assert s.point.chi_1 == pytest.approx(theory.chi_1("tanh", s.point.sigma_w2, s.point.sigma_b2), rel=1e-6)


def test_pennington_orthogonal_tanh_keeps_the_spectrum_concentrated_gaussian_and_relu_do_not():
    """tanh on the critical line (chi_1 = 1) with a small q* (sigma_b^2 = 1e-5: q* = 0.02, the inputs
    starting there): orthogonal weights keep the singular values near 1 at depths 32 and 128, Gaussian
    ones (the same sigma_w^2 and mean s^2) spread, more with depth, and ReLU (He-orthogonal, also
    chi_1 = 1) cannot reach isometry."""
    sb2 = 1e-5
    sw2 = theory.critical_sigma_w2("tanh", sb2)
    q = theory.length_fixed_point("tanh", sw2, sb2)
    x = _x(4, 64, std=math.sqrt((q - sb2) / sw2))
    spectra = {}
    for depth in (32, 128):
        for scheme in ("orthogonal", "xavier_normal"):
            net = _net(64, depth, scheme=scheme, gain=math.sqrt(sw2), bias_std=math.sqrt(sb2))
            spectra[scheme, depth] = initlab.jacobian_spectrum(net, x)
    spread = {k: v.spread for k, v in spectra.items()}
    assert spectra["orthogonal", 128].point.chi_1 == pytest.approx(1.0, abs=2e-3)
    assert spectra["orthogonal", 128].mean_s2 == pytest.approx(spectra["orthogonal", 128].predicted_mean_s2, rel=0.1)
    assert spread["orthogonal", 32] < 0.5 and spread["orthogonal", 128] < 1.0
    assert spread["xavier_normal", 32] > 4 and spread["xavier_normal", 128] > spread["xavier_normal", 32]
    relu = initlab.jacobian_spectrum(_net(64, 32, "relu", "orthogonal", gain=math.sqrt(2)), x)
    assert relu.point.chi_1 == pytest.approx(1.0, abs=1e-3) and relu.spread > 2


def test_jacobian_of_a_transformer_has_no_mean_field_prediction_and_tokens_have_no_jacobian():
    model = _encoder()
    s = initlab.jacobian_spectrum(model, _x(2, 5, 16), n=None)
    assert s.singular_values.shape == (2, 80) and s.predicted_mean_s2 is None and "TransformerEncoder" in s.reason
    assert model.training  # measured in eval mode, its mode given back
    with pytest.raises(InitlabError, match="needs float inputs"):
        initlab.jacobian_spectrum(nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 2)), torch.tensor([[1, 2], [3, 4]]))


# --------------------------------------------------------------------------------------------------
# the c-map

def test_pair_map_equals_monte_carlo_for_tanh_and_the_arc_cosine_kernel_for_relu():
    rng = np.random.default_rng(0)
    qa, qb, c, sw, sb = 0.8, 1.3, 0.4, 1.7, 0.1
    z1, z2 = rng.standard_normal((2, 2_000_000))
    ua, ub = math.sqrt(qa) * z1, math.sqrt(qb) * (c * z1 + math.sqrt(1 - c * c) * z2)
    na, nb = sw * np.mean(np.tanh(ua) ** 2) + sb, sw * np.mean(np.tanh(ub) ** 2) + sb
    mc = (sw * np.mean(np.tanh(ua) * np.tanh(ub)) + sb) / math.sqrt(na * nb)
    (_, _, _), (qa1, qb1, c1) = theory.pair_map("tanh", [sw], [sb], qa, qb, c)
    assert qa1 == pytest.approx(na, rel=2e-3) and qb1 == pytest.approx(nb, rel=2e-3)
    assert c1 == pytest.approx(mc, abs=2e-3)
    for c0 in (0.0, 0.3, 0.8):  # ReLU, sigma_w^2 = 2: c' = (sqrt(1 - c^2) + (pi - arccos c) c) / pi
        exact = (math.sqrt(1 - c0 * c0) + (math.pi - math.acos(c0)) * c0) / math.pi
        assert theory.c_map("relu", 2.0, 0.0, c0, 1, q0=1.0)[1] == pytest.approx(exact, abs=3e-3)


def test_c_map_at_the_fixed_point_is_the_textbook_iteration_and_reaches_c_star():
    sw, sb = 2.5, 0.05
    q = theory.length_fixed_point("tanh", sw, sb)
    path = theory.c_map("tanh", sw, sb, 0.9, 200)
    z, w = np.polynomial.hermite_e.hermegauss(80)
    w = w / w.sum()
    c = 0.9
    for l in range(3):  # c_{l+1} = (sigma_w^2 E[phi(u1) phi(u2)] + sigma_b^2) / q*, by our own 2-D quadrature
        u1 = math.sqrt(q) * z[:, None]
        u2 = math.sqrt(q) * (c * z[:, None] + math.sqrt(1 - c * c) * z[None, :])
        c = (sw * np.sum(np.outer(w, w) * np.tanh(u1) * np.tanh(u2)) + sb) / q
        assert path[l + 1] == pytest.approx(c, abs=1e-7)
    assert path[-1] == pytest.approx(theory.correlation_fixed_point("tanh", sw, sb, q), abs=5e-3)
    assert theory.c_map("tanh", 0.5, 0.05, 0.1, 40)[-1] > 0.999  # ordered: every pair becomes parallel
    with pytest.raises(InitlabError, match="depth"):
        theory.c_map("tanh", 1.0, 0.0, 0.5, -1)


def test_correlation_map_measures_the_cosines_and_follows_the_c_map_better_when_wider():
    x = _x(8, 64)
    net = _net(64, 4, scheme="xavier_normal", gain=1.2, bias_std=0.2)
    m = initlab.correlation_map(net, x)
    h, expected = x, []
    with torch.no_grad():  # the cosines by hand, layer by layer
        for layer in net:
            h = layer(h)
            if isinstance(layer, nn.Linear):
                u = (h / h.norm(dim=1, keepdim=True)).double()
                cos = u @ u.T
                expected.append(float(cos[np.triu_indices(8, 1)].mean()))
    np.testing.assert_allclose(m.measured, expected, rtol=1e-6, atol=1e-7)
    assert m.layers == ["fc1", "fc2", "fc3", "fc4", "out"] and len(m.predicted) == 5
    errors = {}
    for width in (64, 1024):
        xs = _x(12, width)
        errors[width] = np.mean([np.mean(np.abs(np.subtract(initlab.correlation_map(
            _net(width, 8, scheme="xavier_normal", seed=s, gain=math.sqrt(1.5), bias_std=0.3), xs).measured,
            initlab.correlation_map(_net(width, 8, scheme="xavier_normal", seed=s, gain=math.sqrt(1.5), bias_std=0.3),
                                    xs).predicted))) for s in range(2)])
    assert errors[1024] < 0.03 and errors[1024] < errors[64]


def test_correlation_map_of_a_transformer_and_a_cnn_measures_without_a_prediction():
    m = initlab.correlation_map(_encoder(), _x(4, 5, 16))
    assert m.predicted is None and "TransformerEncoder" in m.reason and len(m.layers) >= 4
    torch.manual_seed(0)
    c = initlab.correlation_map(SmallCNN(), _x(4, 2, 5, 5))
    assert c.layers == ["conv", "fc"] and c.predicted is None and c.error() is None
    with pytest.raises(InitlabError, match="at least 2 inputs"):
        initlab.correlation_map(SmallCNN(), _x(1, 2, 5, 5))


# --------------------------------------------------------------------------------------------------
# the NTK

def _explicit_ntk(model, x):
    """Theta[(i, a), (j, b)] = <d f_a(x_i) / d theta, d f_b(x_j) / d theta>, one backward per output."""
    model.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    rows = []
    for xi in x:
        out = model(xi.unsqueeze(0)).reshape(-1)
        for a in range(out.numel()):
            g = torch.autograd.grad(out[a], params, retain_graph=True)
            rows.append(torch.cat([t.reshape(-1) for t in g]).double())
    G = torch.stack(rows)
    return (G @ G.T).numpy()


def test_ntk_equals_explicit_gradient_dot_products_by_both_methods():
    model, x = _net(16, 2, in_features=5, out_features=3, scheme="xavier_normal"), _x(4, 5)
    expected = _explicit_ntk(model, x)
    for method in ("jacobian", "products"):
        k = initlab.ntk(model, x, method=method)
        assert k.method == method and k.kernel.shape == (12, 12) and k.outputs == 3
        np.testing.assert_allclose(k.kernel, expected, rtol=1e-4, atol=1e-5)
    ev = np.linalg.eigvalsh(expected)
    assert k.condition == pytest.approx(ev[-1] / ev[0], rel=1e-3)
    one = initlab.ntk(model, x, output=2)
    np.testing.assert_allclose(one.kernel, expected[2::3, 2::3], rtol=1e-4, atol=1e-5)
    with pytest.raises(InitlabError, match="past the model's 3 outputs"):
        initlab.ntk(model, x, output=3)


def test_ntk_on_a_cnn_and_on_token_ids():
    torch.manual_seed(0)
    k = initlab.ntk(SmallCNN(), _x(3, 2, 5, 5))
    assert k.kernel.shape == (18, 18) and k.parameters == sum(p.numel() for p in SmallCNN().parameters())
    torch.manual_seed(0)
    lm = nn.Sequential(nn.Embedding(10, 8), nn.Flatten(), nn.Linear(16, 1))
    t = initlab.ntk(lm, torch.tensor([[1, 2], [3, 4], [1, 4]]))
    assert t.kernel.shape == (3, 3) and np.all(t.eigenvalues > 0)


# --------------------------------------------------------------------------------------------------
# the command and its page

def test_signal_command_writes_json_figures_and_a_page_that_report_renders(tmp_path):
    from click.testing import CliRunner

    from initlab.cli import main
    from initlab.outputs import check_signal

    out = tmp_path / "sig"
    res = CliRunner().invoke(main, ["signal", "--quick", "--critical", "--sigma-b2", "1e-5", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "orthogonal, depth 8" in res.output and "cond(NTK)" in res.output
    doc = check_signal(json.loads((out / "signal.json").read_text()))
    assert [r["label"] for r in doc["runs"]] == ["orthogonal, depth 4", "xavier_normal, depth 4",
                                                 "orthogonal, depth 8", "xavier_normal, depth 8"]
    spread = {r["label"]: r["jacobian"]["spread"] for r in doc["runs"]}
    assert spread["orthogonal, depth 8"] < 0.5 < 2 < spread["xavier_normal, depth 8"]
    for r in doc["runs"]:  # on the critical line, inputs at q*: mean s^2 = chi_1^L x the readout's sigma_w^2
        assert r["jacobian"]["point"]["chi_1"] == pytest.approx(1.0, abs=2e-3)
        assert abs(r["correlation"]["c0"] - 0.5) < 0.2  # --input-correlation 0.5
    for name in ("spectra.png", "correlation.png", "index.html"):
        assert (out / name).stat().st_size > 5_000
    again = CliRunner().invoke(main, ["report", str(out), "--out", str(tmp_path / "page.html")])
    assert again.exit_code == 0, again.output
    assert "Closest to dynamical isometry" in (tmp_path / "page.html").read_text()


def test_signal_command_on_a_users_model(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from initlab.cli import main

    (tmp_path / "sigmodels.py").write_text(
        "from torch import nn\n"
        "def make_cnn():\n"
        "    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))\n")
    monkeypatch.chdir(tmp_path)
    try:
        res = CliRunner().invoke(main, ["signal", "--model", "sigmodels:make_cnn", "--input-shape", "2,6,6",
                                        "--scheme", "default,he_normal", "--inputs", "3", "--json"])
    finally:
        sys.modules.pop("sigmodels", None)
    assert res.exit_code == 0, res.output
    runs = json.loads(res.output)["runs"]
    assert [r["label"] for r in runs] == ["default", "he_normal"]
    assert runs[0]["jacobian"]["predicted_mean_s2"] is None and "Conv2d" in runs[0]["correlation"]["reason"]
    bad = CliRunner().invoke(main, ["signal", "--model", "sigmodels:make_cnn", "--depth", "4",
                                    "--input-shape", "2,6,6"])
    assert bad.exit_code == 2 and "--depth is for the built-in MLP" in bad.output
    bad = CliRunner().invoke(main, ["signal", "--depth", "4,x"])
    assert bad.exit_code == 2 and "comma-separated" in bad.output
    bad = CliRunner().invoke(main, ["signal", "--critical", "--input-std", "0.1"])
    assert bad.exit_code == 2 and "leave --input-std out" in bad.output


def test_a_damaged_signal_file_is_one_line(tmp_path):
    from initlab.outputs import check_signal, write_signal

    path = write_signal(tmp_path, [{"label": "a", "depth": 2, "correlation": {
        "layers": ["fc1", "out"], "measured": [0.1, 0.2], "predicted": [0.1], "c0": 0.0}}])
    with pytest.raises(InitlabError, match=r"runs\[0\]\.correlation\.predicted must be a list of 2 numbers"):
        check_signal(json.loads(path.read_text()), path)
    doc = json.loads(path.read_text())
    doc["schema_version"] = 9
    with pytest.raises(InitlabError, match="newer|upgrade initlab"):
        check_signal(doc, path)
