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


# ----------------------------------------------------------- mimetic on hand-written attention layers
class SplitAttention(nn.Module):
    """Separate q/k/v/out projections, as Hugging Face's and LLaMA-style code names them."""

    def __init__(self, d=64, n_heads=4):
        super().__init__()
        self.n_heads = n_heads
        self.q_proj, self.k_proj, self.v_proj = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.o_proj = nn.Linear(d, d)
        self.mlp_fc = nn.Linear(d, 4 * d)  # not part of the attention


def products(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, o: torch.Tensor, h: int):
    """As :func:`heads`, from PyTorch's (out, in) weights of separate projections."""
    d = q.shape[0]
    kd = d // h
    q, k, v, o = (t.detach().double() for t in (q, k, v, o))
    return [q[i * kd:(i + 1) * kd].T @ k[i * kd:(i + 1) * kd] for i in range(h)], v.T @ o.T


@pytest.mark.parametrize("seed", range(3))
def test_mimetic_writes_separate_query_key_value_and_output_projections(seed):
    att = SplitAttention()
    manifest = initlab.initialize(att, "mimetic", seed=seed)
    qk, vo = products(att.q_proj.weight, att.k_proj.weight, att.v_proj.weight, att.o_proj.weight, 4)
    for p in qk:  # as nn.MultiheadAttention's: rank head_dim, a positive diagonal
        assert int(torch.linalg.matrix_rank(p)) == 16 and 0.25 < float(p.diagonal().mean()) < 0.4
    assert float(vo.diagonal().mean()) == pytest.approx(-0.4, abs=5 * 0.4 / 64)
    roles = {e["parameter"]: e.get("recipe_role") for e in manifest.entries}
    assert roles["q_proj.weight"] == roles["k_proj.weight"] == "query_key"
    assert roles["v_proj.weight"] == roles["o_proj.weight"] == "value_out"
    assert roles["mlp_fc.weight"] is None and manifest.recipe["heads"] == {"": 4}


def test_mimetic_writes_a_fused_c_attn_with_heads_given():
    from gptlike import GPT

    model = GPT(n_layer=2, d=64)
    with pytest.raises(InitlabError, match="heads=") as err:
        initlab.initialize(model, "mimetic", seed=0)
    assert "h.0.attn" in str(err.value)
    manifest = initlab.initialize(model, "mimetic", heads=4, seed=0)
    assert manifest.recipe["attention"] == ["h.0.attn", "h.1.attn"]
    for blk in model.h:
        w = blk.attn.c_attn.weight
        qk, vo = products(w[:64], w[64:128], w[128:], blk.attn.c_proj.weight, 4)
        assert all(0.25 < float(p.diagonal().mean()) < 0.4 for p in qk)
        assert float(vo.diagonal().mean()) == pytest.approx(-0.4, abs=5 * 0.4 / 64)
        # the MLP's c_proj is not an attention's output: the base draw (PyTorch's default) keeps it
        bound = 1 / math.sqrt(256)
        assert float(blk.mlp.c_proj.weight.abs().max()) <= bound
    entry = next(e for e in manifest.entries if e["parameter"] == "h.0.attn.c_attn.weight")
    assert entry["recipe_role"] == "query_key_value" and entry["value"]["target_error"] < 1e-6


def test_mimetic_refuses_projections_of_mixed_sizes_naming_them():
    att = SplitAttention()
    att.v_proj = nn.Linear(64, 32)
    with pytest.raises(InitlabError, match=r"v_proj \(32, 64\)"):
        initlab.initialize(att, "mimetic", seed=0)


# ------------------------------------------------------------------- ZerO's residual form (a recipe)
class ResBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(c, c, 3, padding=1), nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return x + self.conv2(torch.relu(self.conv1(x)))


class ResNetZ(nn.Module):
    def __init__(self, c=8, blocks=3):
        super().__init__()
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.layers = nn.Sequential(*[ResBlock(c) for _ in range(blocks)])
        self.fc = nn.Linear(c, 16)

    def forward(self, x):
        return self.fc(self.layers(self.stem(x)).mean((2, 3)))


def test_zero_residual_zeroes_each_branch_end_and_draws_the_rest_by_zero():
    model = ResNetZ()
    manifest = initlab.initialize(model, "zero_residual", seed=3)
    for blk in model.layers:
        assert torch.all(blk.conv2.weight == 0) and torch.all(blk.conv2.bias == 0)
        centre = blk.conv1.weight[:, :, 1, 1]
        assert torch.equal(centre, torch.eye(8)) and float(blk.conv1.weight.detach().abs().sum()) == 8.0
    # every block starts as the identity: the stack passes the stem's output through unchanged
    x = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    stem = model.stem(x)
    assert torch.equal(model.layers(stem), stem)
    # the readout, 16 x 8, is c H[:16, :8] with m = log2 16 = 4, c = 2^(-3/2); Sylvester's H has 1 in column 0
    assert float(model.fc.weight[8, 0]) == pytest.approx(2 ** -1.5, rel=1e-6)  # float32
    roles = {e["parameter"]: e.get("recipe_role") for e in manifest.entries}
    assert roles["layers.0.conv2.weight"] == "branch_out" and roles["stem.weight"] is None
    other = ResNetZ()
    initlab.initialize(other, "zero_residual", seed=99)  # deterministic: the seed does not matter
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), other.parameters()))
