import math

import pytest
import torch

from initlab import InitlabError, theory


def test_gaussian_expectations_of_known_moments():
    assert theory.gaussian_expectation(lambda x: x**2, 2.0) == pytest.approx(2.0)
    assert theory.gaussian_expectation(lambda x: x**4, 1.0) == pytest.approx(3.0)
    relu = theory.ACTIVATIONS["relu"].phi
    assert theory.gaussian_expectation(lambda x: relu(x) ** 2, 3.0) == pytest.approx(1.5)
    # the kink at 0 costs quadrature a little accuracy on the mean (not on even moments)
    assert theory.gaussian_expectation(relu, 1.0) == pytest.approx(1 / math.sqrt(2 * math.pi), rel=5e-3)


def test_critical_sigma_w2_relu_is_2_and_tanh_is_1():
    assert theory.critical_sigma_w2("relu", 0.0) == pytest.approx(2.0, abs=1e-4)
    assert theory.critical_sigma_w2("tanh", 0.0) == pytest.approx(1.0, abs=1e-2)
    assert theory.mean_field("relu", 2.0, 0.0).phase == "critical"
    assert theory.mean_field("tanh", 0.5, 0.05).phase == "ordered"
    assert theory.mean_field("tanh", 3.0, 0.05).phase == "chaotic"


def test_q_star_agrees_with_a_simulated_wide_random_network():
    sigma_w2, sigma_b2, width, depth = 1.5, 0.05, 1000, 30
    q_star = theory.length_fixed_point("tanh", sigma_w2, sigma_b2)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(16, width, generator=gen, dtype=torch.float64)
    qs = []
    for _ in range(depth):
        W = torch.randn(width, width, generator=gen, dtype=torch.float64) * math.sqrt(sigma_w2 / width)
        b = torch.randn(width, generator=gen, dtype=torch.float64) * math.sqrt(sigma_b2)
        h = x @ W.T + b
        x = torch.tanh(h)
        qs.append(h.pow(2).mean().item())
    assert qs[0] == pytest.approx(sigma_w2 + sigma_b2, rel=0.05)  # far from q* at the first layer
    # one layer's q fluctuates by about sqrt(2/width) around q*; the mean over layers 10..30 by ~2.5%
    measured = sum(qs[10:]) / len(qs[10:])
    assert measured == pytest.approx(q_star, rel=0.06)


def test_xi_c_grows_without_bound_near_the_critical_line():
    crit = theory.critical_sigma_w2("tanh", 0.05)
    xis = [theory.mean_field("tanh", crit - d, 0.05).xi_c for d in (0.5, 0.1, 0.01, 0.001)]
    assert all(a < b for a, b in zip(xis, xis[1:]))
    assert xis[-1] > 50 * xis[0]


def test_no_finite_fixed_point_is_a_clear_error():
    with pytest.raises(InitlabError, match="no finite fixed point"):
        theory.length_fixed_point("relu", 3.0, 0.1)


def test_forward_recursion_for_relu_halves_with_xavier_keeps_with_he():
    n = 100
    xav = theory.forward_variances("relu", [n] * 5, [1 / n] * 5, [0.0] * 5, 1.0)
    assert [r["preact_var"] for r in xav] == pytest.approx([1, 0.5, 0.25, 0.125, 0.0625])
    he = theory.forward_variances("relu", [n] * 5, [2 / n] * 5, [0.0] * 5, 1.0)
    assert [r["preact_var"] for r in he] == pytest.approx([2.0] * 5)


def test_effective_sigmas_of_schemes():
    assert theory.scheme_sigmas("xavier_uniform", 128) == pytest.approx((1.0, 0.0))
    assert theory.scheme_sigmas("he_normal", 128) == pytest.approx((2.0, 0.0))
    sw, sb = theory.scheme_sigmas("default", 100)
    assert sw == pytest.approx(1 / 3) and sb == pytest.approx(1 / 300)
    import initlab

    model = initlab.mlp(300, [300, 300], 1, "tanh")
    initlab.initialize(model, "he_normal", seed=0)
    pts = theory.network_points(model)
    assert [p["layer"] for p in pts] == ["fc1", "fc2", "out"]
    assert pts[1]["sigma_w2"] == pytest.approx((5 / 3) ** 2, rel=0.02)  # he_normal picks tanh's gain


def test_theory_cli_prints_the_numbers_and_draws_the_diagram(tmp_path):
    import json

    from click.testing import CliRunner

    from initlab.cli import main

    runner = CliRunner()
    res = runner.invoke(main, ["theory", "--activation", "relu", "--sigma-b2", "0", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["critical_sigma_w2"] == pytest.approx(2.0, abs=1e-3) and doc["phase"] == "critical"
    res = runner.invoke(main, ["theory", "--activation", "tanh", "--sigma-w2", "1.5", "--scheme", "xavier_uniform",
                               "--plot", str(tmp_path / "phase.png")])
    assert res.exit_code == 0 and "ordered" in res.output
    assert (tmp_path / "phase.png").stat().st_size > 10_000
    bad = runner.invoke(main, ["theory", "--activation", "tahn"])
    assert bad.exit_code == 2 and "Did you mean 'tanh'?" in bad.output
