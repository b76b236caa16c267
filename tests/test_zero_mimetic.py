"""ZerO (a deterministic per-tensor scheme) and mimetic attention (a recipe): each tensor has the
structure its paper states, checked against plain reference constructions."""

from __future__ import annotations

import json
import math

import pytest
import torch
from scipy.linalg import hadamard
from torch import nn

import initlab
from initlab.errors import InitlabError
from initlab.recipes import _factor


# ---------------------------------------------------------------------------------------- zero
def zero_weight(shape, seed=0):
    w = torch.empty(*shape)
    rec = initlab.initialize(w, "zero", seed=seed).entries[0]
    return w, rec


def test_zero_is_the_identity_for_a_square_layer_and_its_bias_is_zero():
    layer = nn.Linear(16, 16)
    initlab.initialize(layer, "zero", seed=0)
    assert torch.equal(layer.weight, torch.eye(16)) and torch.equal(layer.bias, torch.zeros(16))


@pytest.mark.parametrize("shape", [(16, 16), (5, 12), (12, 5), (100, 7), (8, 8, 3, 3)])
def test_zero_is_the_same_for_any_seed_and_leaves_the_global_rng_alone(shape):
    state = torch.get_rng_state()
    first, _ = zero_weight(shape, seed=0)
    for seed in (1, 7, 2**40):
        assert torch.equal(zero_weight(shape, seed=seed)[0], first)
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("shape", [(5, 12), (1, 9), (63, 64)])
def test_zero_is_the_partial_identity_when_the_layer_narrows(shape):
    w, rec = zero_weight(shape)
    assert rec["structure"] == "partial_identity"
    assert torch.equal(w, torch.eye(*shape))


@pytest.mark.parametrize("shape", [(12, 5), (8, 3), (100, 7), (2, 1), (65, 64)])
def test_zero_is_c_times_a_hadamard_block_when_the_layer_widens(shape):
    out, inp = shape
    w, rec = zero_weight(shape)
    m = math.ceil(math.log2(out))
    c = 2 ** (-(m - 1) / 2)  # Algorithm 1's normalization
    assert rec["structure"] == "hadamard" and rec["m"] == m and rec["c"] == pytest.approx(c)
    reference = c * torch.tensor(hadamard(2**m)[:out, :inp], dtype=torch.float32)  # I* H_m I*
    assert torch.equal(w, reference)
    assert torch.equal(w.abs(), torch.full(shape, c))  # only +-c: "zeros and ones" up to the factor


def test_zero_widening_to_a_power_of_two_has_orthogonal_columns_of_squared_norm_two():
    w, rec = zero_weight((16, 5))  # m = 4, c = 2^(-3/2): W^T W = c^2 * 16 * I = 2 I
    assert torch.allclose(w.T @ w, 2 * torch.eye(5), atol=1e-6)


def test_zero_puts_the_matrix_at_a_convolution_s_centre_and_zeros_elsewhere():
    conv = nn.Conv2d(3, 6, 3)
    initlab.initialize(conv, "zero", seed=0)
    centre = conv.weight[:, :, 1, 1]
    assert torch.equal(centre, zero_weight((6, 3))[0])
    assert float(conv.weight.detach().abs().sum()) == pytest.approx(float(centre.detach().abs().sum()))


def test_zero_is_registered_and_listed():
    from click.testing import CliRunner

    from initlab.cli import main

    assert "zero" in initlab.schemes()
    rows = json.loads(CliRunner().invoke(main, ["schemes", "--json"]).output)
    row = next(r for r in rows if r["name"] == "zero")
    assert row["kind"] == "scheme" and "2^(-(m-1)/2)" in row["formula"]
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4))
    x = torch.randn(10, 4).abs()
    initlab.initialize(model, "zero", seed=3)
    assert torch.equal(model(x), x)  # identity layers, ReLU of positive inputs: the input passes unchanged


# ---------------------------------------------------------------------------------------- mimetic
def heads(mha: nn.MultiheadAttention):
    """Per head, the paper's W_q W_k^T (d x d), and the layer's W_v W_proj (d x d), from PyTorch's
    (out, in) weights: q = x W_q with W_q = in_proj_weight[q rows].T."""
    d, h, k = mha.embed_dim, mha.num_heads, mha.head_dim
    w = mha.in_proj_weight.detach().double()
    qk = [w[i * k:(i + 1) * k].T @ w[d + i * k:d + (i + 1) * k] for i in range(h)]
    vo = w[2 * d:].T @ mha.out_proj.weight.detach().double().T
    return qk, vo


def off_diagonal(a: torch.Tensor) -> torch.Tensor:
    return a[~torch.eye(a.shape[0], dtype=torch.bool)]


@pytest.mark.parametrize("seed", range(5))
def test_mimetic_value_output_product_is_its_target_minus_beta2_identity(seed):
    mha = nn.MultiheadAttention(64, 4)
    manifest = initlab.initialize(mha, "mimetic", seed=seed)
    _, vo = heads(mha)
    d, alpha2, beta2 = 64, 0.4, 0.4
    # W_v W_proj = alpha2 Z2 - beta2 I exactly (full rank): its diagonal has mean -beta2 (the mean of d
    # values of alpha2 Z2's diagonal: std alpha2 / d), and off the diagonal it is alpha2 Z2, std alpha2/sqrt(d)
    assert float(vo.diagonal().mean()) == pytest.approx(-beta2, abs=5 * alpha2 / d)
    rest = off_diagonal(vo)
    n = rest.numel()
    assert abs(float(rest.std()) - alpha2 / math.sqrt(d)) < 5 * alpha2 / math.sqrt(d) / math.sqrt(2 * n)
    assert abs(float(rest.mean())) < 5 * alpha2 / math.sqrt(d) / math.sqrt(n)
    entry = next(e for e in manifest.entries if e.get("block") == "out")
    assert entry["scheme"] == "mimetic" and entry["recipe_role"] == "value_out" and entry["target_error"] < 1e-6


def test_mimetic_with_one_head_gives_query_key_product_its_target_plus_beta1_identity():
    mha = nn.MultiheadAttention(64, 1)  # head dimension = d: the SVD is not truncated
    initlab.initialize(mha, "mimetic", seed=0)
    (qk,), _ = heads(mha)
    d, alpha1, beta1 = 64, 0.7, 0.7
    assert float(qk.diagonal().mean()) == pytest.approx(beta1, abs=5 * alpha1 / d)
    rest = off_diagonal(qk)
    assert abs(float(rest.std()) - alpha1 / math.sqrt(d)) < 5 * alpha1 / math.sqrt(d) / math.sqrt(2 * rest.numel())


@pytest.mark.parametrize("seed", range(5))
def test_mimetic_query_key_per_head_is_a_rank_head_dim_product_with_a_positive_diagonal(seed):
    mha = nn.MultiheadAttention(64, 4)
    manifest = initlab.initialize(mha, "mimetic", seed=seed)
    qk, _ = heads(mha)
    for p in qk:
        assert int(torch.linalg.matrix_rank(p)) == 16
        # the best rank-16 approximation of 0.7 Z + 0.7 I keeps about 0.31 of the 0.7 on the diagonal
        # (measured 0.307 to 0.317 at seed 0), far above the off-diagonal entries' mean
        assert 0.25 < float(p.diagonal().mean()) < 0.4
        assert abs(float(off_diagonal(p).mean())) < 0.02
    # the paper's signs: the query-key product +I, the value-output product -I (the code found swaps them)
    assert float(sum(qk).diagonal().mean()) > 0 > float(heads(mha)[1].diagonal().mean())
    # truncating a 64 x 64 target to rank 16 leaves a relative Frobenius error of about 0.66 (measured)
    errors = {e["target_error"] for e in manifest.entries if e.get("recipe_role") == "query_key"}
    assert len(errors) == 1 and 0.6 < errors.pop() < 0.72


def test_the_factoring_is_the_best_approximation_of_its_rank():
    g = torch.Generator().manual_seed(0)
    target = 0.7 * torch.randn(32, 32, generator=g, dtype=torch.float64) / math.sqrt(32) + 0.7 * torch.eye(32,
                                                                                                          dtype=torch.float64)
    singular = torch.linalg.svdvals(target)
    for rank in (4, 8, 32):
        w1, w2 = _factor(target, rank)
        assert w1.shape == w2.shape == (32, rank)
        # Eckart-Young: the error of the best rank-r approximation is the norm of the dropped singular values
        assert float((w1 @ w2.T - target).norm()) == pytest.approx(float(singular[rank:].norm()), abs=1e-10)
        assert torch.allclose(w1.norm(dim=0), w2.norm(dim=0))  # the singular values split evenly


def test_mimetic_randomness_comes_from_the_seed_only():
    def build(seed):
        torch.manual_seed(seed + 100)  # the global RNG differs every time and must not matter
        mha = nn.MultiheadAttention(32, 4)
        return mha, initlab.initialize(mha, "mimetic", seed=seed)

    a, manifest = build(0)
    b, _ = build(0)
    c, _ = build(1)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.in_proj_weight, c.in_proj_weight)
    replayed = nn.MultiheadAttention(32, 4)
    state = torch.get_rng_state()
    initlab.initialize(replayed, **initlab.Manifest.replay_args(manifest.to_json()))
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), replayed.parameters()))


class Block(nn.Module):
    def __init__(self, d=32):
        super().__init__()
        self.attn = nn.MultiheadAttention(d, 4, batch_first=True)
        self.fc1, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)


def test_mimetic_in_a_model_writes_only_the_attention_and_names_the_parameters_and_roles():
    model = nn.Sequential(Block(), Block())
    manifest = initlab.initialize(model, "mimetic", seed=0, alpha1=0.5, beta1=1.0, base="xavier_uniform")
    assert manifest.recipe["attention"] == ["0.attn", "1.attn"]
    roles = {(e["parameter"], e.get("block")): e.get("recipe_role") for e in manifest.entries}
    assert roles[("1.attn.in_proj_weight", "q")] == "query_key"
    assert roles[("1.attn.out_proj.weight", "out")] == "value_out"
    assert roles[("0.fc1.weight", None)] is None
    assert next(e for e in manifest.entries if e["parameter"] == "0.fc1.weight")["scheme"] == "xavier_uniform"
    (qk,), _ = heads(nn.MultiheadAttention(32, 1))  # a fresh layer: a default draw, not mimetic
    assert abs(float(qk.diagonal().mean())) < 0.2
    qk, _ = heads(model[0].attn)
    assert float(sum(qk).diagonal().mean()) > 0.5  # beta1 = 1.0 over 4 heads of rank 8 in d = 32


def test_mimetic_refuses_what_it_cannot_initialize():
    with pytest.raises(InitlabError, match="MultiheadAttention"):
        initlab.initialize(nn.Linear(4, 4), "mimetic", seed=0)
    with pytest.raises(InitlabError, match="kdim or vdim"):
        initlab.initialize(nn.MultiheadAttention(8, 2, kdim=4, vdim=4), "mimetic", seed=0)
    with pytest.raises(InitlabError, match="alpha1"):
        initlab.initialize(nn.MultiheadAttention(8, 2), "mimetic", seed=0, alpha1="big")


def test_a_frozen_attention_is_left_as_it_was_and_the_notes_say_so():
    mha = nn.MultiheadAttention(16, 2)
    mha.in_proj_weight.requires_grad_(False)
    before = mha.in_proj_weight.detach().clone()
    manifest = initlab.initialize(mha, "mimetic", seed=0)
    assert torch.equal(mha.in_proj_weight, before)
    assert any("left" in n for n in manifest.recipe["notes"])
