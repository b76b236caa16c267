"""Recipes: each role's tensors get the distribution the paper states, found from the structure or from
name patterns, and a role that cannot be found is an error that says how to name it."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gptlike import GPT
import initlab
from initlab.errors import InitlabError


def close_std(t: torch.Tensor, std: float, k: float = 5.0) -> bool:
    """The sample std of n iid N(0, std^2) values is within k standard errors (std / sqrt(2(n-1)))."""
    n = t.numel()
    return abs(float(t.detach().double().std()) - std) <= k * std / math.sqrt(2 * (n - 1))


# ---------------------------------------------------------------------------------------- models
# GPT: GPT-2's layout, from tests/gptlike.py


class BasicBlock(nn.Module):
    def __init__(self, c_in, c, alpha=False):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.relu = nn.ReLU()
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.downsample = nn.Sequential(nn.Conv2d(c_in, c, 1, bias=False), nn.BatchNorm2d(c)) if c_in != c else None
        if alpha:
            self.alpha = nn.Parameter(torch.ones(()))


class ResNet(nn.Module):
    def __init__(self, blocks=3, c=32, alpha=False):
        super().__init__()
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.layer1 = nn.Sequential(BasicBlock(c, 2 * c, alpha), *[BasicBlock(2 * c, 2 * c, alpha)
                                                                   for _ in range(blocks - 1)])
        self.fc = nn.Linear(2 * c, 10)


class MHABlock(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d, 4, batch_first=True)
        self.fc1, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)


class Encoder(nn.Module):
    def __init__(self, n=6, d=64, vocab=100):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList([MHABlock(d) for _ in range(n)])
        self.out = nn.Linear(d, vocab)


def entry(manifest, name, block=None):
    return next(e for e in manifest.entries if e["parameter"] == name and e.get("block") == block)


# ---------------------------------------------------------------------------------------- gpt2
def test_gpt2_scales_the_branch_projections_and_nothing_else():
    model = GPT(n_layer=4)
    manifest = initlab.initialize(model, "gpt2", n_layer=4, std=0.02, seed=0)
    small = 0.02 / math.sqrt(8)
    for name, p in model.named_parameters():
        if name.endswith("c_proj.weight"):
            assert close_std(p, small), name
            assert entry(manifest, name)["recipe_role"] == "branch_out"
        elif name.endswith((".bias",)) and not name.startswith(("h.0.ln", "ln_f")) and ".ln_" not in name:
            assert torch.all(p == 0), name
        elif "ln" in name:
            assert torch.all(p == (1.0 if name.endswith("weight") else 0.0)), name
        else:  # c_attn, c_fc, wte, wpe, head
            assert close_std(p, 0.02), name
    assert manifest.recipe["roles_found"]["branch_out"] == [f"h.{i}.{b}.c_proj" for i in range(4)
                                                             for b in ("attn", "mlp")]
    assert manifest.recipe["roles_found"]["embedding"] == ["wte", "wpe"]
    assert entry(manifest, "wte.weight")["recipe_role"] == "embedding"
    assert "recipe_role" not in entry(manifest, "h.0.attn.c_attn.weight")


def test_gpt2_counts_the_blocks_when_n_layer_is_not_given():
    a, b = GPT(n_layer=3), GPT(n_layer=3)
    initlab.initialize(a, "gpt2", seed=1)
    initlab.initialize(b, "gpt2", n_layer=3, seed=1)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


def test_the_same_seed_gives_the_same_model_and_the_global_rng_is_untouched():
    a, b = GPT(), GPT()
    state = torch.random.get_rng_state()
    initlab.initialize(a, "gpt2", seed=3)
    initlab.initialize(b, "gpt2", seed=3)
    assert torch.equal(state, torch.random.get_rng_state())
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("pattern", ["*.c_proj", "c_proj", "c_proj.weight", "h.*.mlp.c_proj"])
def test_role_patterns_match_the_full_name_or_its_suffix(pattern):
    model = GPT(n_layer=2)
    manifest = initlab.initialize(model, "gpt2", n_layer=2, seed=0, roles={"branch_out": pattern})
    marked = {e["parameter"] for e in manifest.entries if e.get("recipe_role") == "branch_out"}
    assert "h.1.mlp.c_proj.weight" in marked
    assert close_std(model.h[1].mlp.c_proj.weight, 0.02 / 2)
    assert ("h.0.attn.c_proj.weight" in marked) == (pattern != "h.*.mlp.c_proj")


def test_a_role_that_is_not_found_is_an_error_that_says_how_to_name_it():
    mlp = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    with pytest.raises(InitlabError, match=r"role 'branch_out'.*roles=\{'branch_out'"):
        initlab.initialize(mlp, "gpt2", n_layer=2, seed=0)
    with pytest.raises(InitlabError, match="matches no layer"):
        initlab.initialize(GPT(), "gpt2", seed=0, roles={"branch_out": "*.o_proj"})
    with pytest.raises(InitlabError, match="unknown role"):
        initlab.initialize(GPT(), "gpt2", seed=0, roles={"branch_output": "*.c_proj"})
    with pytest.raises(InitlabError, match="n_layer"):
        initlab.initialize(GPT(), "gpt2", n_layer=0, seed=0)


def test_a_recipe_manifest_replays():
    a, b = GPT(n_layer=2), GPT(n_layer=2)
    manifest = initlab.initialize(a, "gpt2", n_layer=2, seed=5, roles={"branch_out": "*.c_proj"})
    initlab.initialize(b, **initlab.Manifest.replay_args(manifest.to_json()))
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


# ---------------------------------------------------------------------------------------- fixup
def test_fixup_zeroes_each_branch_end_and_the_classifier_and_scales_the_rest():
    model = ResNet(blocks=4)
    manifest = initlab.initialize(model, "fixup", seed=0)
    L, m = 4, 2
    for blk in model.layer1:
        assert torch.all(blk.conv2.weight == 0)
        fan_in = blk.conv1.in_channels * 9
        assert close_std(blk.conv1.weight, math.sqrt(2 / fan_in) * L ** (-1 / (2 * m - 2)))
    assert torch.all(model.fc.weight == 0) and torch.all(model.fc.bias == 0)
    assert close_std(model.stem.weight, math.sqrt(2 / 27), k=6)  # He, unscaled, outside the blocks
    found = manifest.recipe["roles_found"]
    assert found["branch_out"] == [f"layer1.{i}.conv2" for i in range(4)]
    assert found["readout"] == ["fc"] and not any("downsample" in n for n in found["branch_in"])
    assert manifest.recipe["L"] == 4 and manifest.recipe["m"] == 2
    assert any("architectural" in n for n in manifest.recipe["notes"])
    assert entry(manifest, "layer1.0.downsample.0.weight").get("recipe_role") is None


def test_fixup_refuses_one_layer_branches():
    with pytest.raises(InitlabError, match="m >= 2"):
        initlab.initialize(ResNet(), "fixup", m=1, seed=0)


# ---------------------------------------------------------------------------------------- zero_init_residual, skipinit
def test_zero_init_residual_zeroes_the_last_norm_of_each_block_only():
    model = ResNet(blocks=3)
    manifest = initlab.initialize(model, "zero_init_residual", seed=0)
    for blk in model.layer1:
        assert torch.all(blk.bn2.weight == 0) and torch.all(blk.bn1.weight == 1)
        assert torch.all(blk.bn2.bias == 0)
    assert torch.all(model.layer1[0].downsample[1].weight == 1)
    assert manifest.recipe["roles_found"]["branch_norm"] == [f"layer1.{i}.bn2" for i in range(3)]


def test_zero_init_residual_does_not_fire_on_pre_norm_blocks():
    with pytest.raises(InitlabError, match="branch_norm"):  # ln_1/ln_2 open the branches, none closes one
        initlab.initialize(GPT(), "zero_init_residual", seed=0)


def test_skipinit_sets_each_branch_gain_to_zero():
    model = ResNet(blocks=3, alpha=True)
    manifest = initlab.initialize(model, "skipinit", base="he_normal", seed=0)
    assert all(float(b.alpha) == 0.0 for b in model.layer1)
    assert {e["parameter"] for e in manifest.entries if e.get("recipe_role") == "branch_gain"} == \
        {f"layer1.{i}.alpha" for i in range(3)}
    assert not any(e["parameter"].endswith("alpha") for e in manifest.left)
    with pytest.raises(InitlabError, match="branch_gain"):
        initlab.initialize(ResNet(), "skipinit", seed=0)


# ---------------------------------------------------------------------------------------- deepnet, t_fixup
def test_deepnet_scales_values_outputs_and_ffn_by_beta_not_queries_and_keys():
    n, d = 6, 64
    model = Encoder(n=n, d=d)
    manifest = initlab.initialize(model, "deepnet", seed=0)
    beta = (8 * n) ** -0.25
    xavier = math.sqrt(2 / (d + d))
    for blk in model.layers:
        w = blk.self_attn.in_proj_weight
        assert close_std(w[:d], xavier) and close_std(w[d:2 * d], xavier)
        assert close_std(w[2 * d:], beta * xavier)
        assert close_std(blk.self_attn.out_proj.weight, beta * xavier)
        assert close_std(blk.fc1.weight, beta * math.sqrt(2 / (5 * d)))
        assert close_std(blk.fc2.weight, beta * math.sqrt(2 / (5 * d)))
    assert close_std(model.out.weight, math.sqrt(2 / (d + 100)))
    assert manifest.recipe["alpha"] == pytest.approx((2 * n) ** 0.25)
    assert entry(manifest, "layers.0.self_attn.in_proj_weight", "v")["recipe_role"] == "branch_in"
    assert entry(manifest, "layers.0.self_attn.in_proj_weight", "q")["recipe_role"] == "query_key"
    assert entry(manifest, "layers.0.self_attn.out_proj.weight", "out")["recipe_role"] == "branch_out"


def test_deepnet_on_an_encoder_decoder_uses_each_stacks_constants():
    n, m, d = 3, 2, 64
    model = nn.Transformer(d_model=d, nhead=4, num_encoder_layers=n, num_decoder_layers=m, dim_feedforward=2 * d,
                           batch_first=True)
    manifest = initlab.initialize(model, "deepnet", seed=0)
    beta = {"encoder": 0.87 * (n ** 4 * m) ** (-1 / 16), "decoder": (12 * m) ** -0.25}
    xavier, ffn = math.sqrt(2 / (2 * d)), math.sqrt(2 / (3 * d))
    for stack, layers in (("encoder", model.encoder.layers), ("decoder", model.decoder.layers)):
        b = beta[stack]
        for blk in layers:
            attentions = [blk.self_attn] + ([blk.multihead_attn] if stack == "decoder" else [])
            for att in attentions:  # the decoder's cross-attention too
                w = att.in_proj_weight
                assert close_std(w[:d], xavier) and close_std(w[d:2 * d], xavier)  # q, k: gain 1
                assert close_std(w[2 * d:], b * xavier) and close_std(att.out_proj.weight, b * xavier)
            assert close_std(blk.linear1.weight, b * ffn) and close_std(blk.linear2.weight, b * ffn)
    assert manifest.recipe["alpha"] == pytest.approx({"encoder": 0.81 * (n ** 4 * m) ** (1 / 16),
                                                      "decoder": (3 * m) ** 0.25})
    assert (manifest.recipe["encoder_layers"], manifest.recipe["decoder_layers"]) == (n, m)
    # the encoder's beta sits between the two one-stack values it interpolates: not the decoder's
    assert beta["encoder"] != pytest.approx(beta["decoder"], rel=0.05)
    with pytest.raises(InitlabError, match="encoder_layers"):
        initlab.initialize(model, "deepnet", n_layer=5, seed=0)
    with pytest.raises(InitlabError, match="one stack"):
        initlab.initialize(Encoder(n=2), "deepnet", encoder_layers=2, decoder_layers=2, seed=0)


@pytest.mark.parametrize("stack", ["decoder", "encoder"])
def test_t_fixup_scales_branches_and_embeddings(stack):
    n, d = 6, 64
    model = Encoder(n=n, d=d)
    initlab.initialize(model, "t_fixup", stack=stack, seed=0)
    c = (9 * n) ** -0.25 if stack == "decoder" else 0.67 * n ** -0.25
    assert close_std(model.embed.weight, c * d ** -0.5)
    blk = model.layers[2]
    assert close_std(blk.fc1.weight, c * math.sqrt(2 / (5 * d)))
    assert close_std(blk.self_attn.in_proj_weight[2 * d:], c * math.sqrt(2 / (2 * d)))
    assert close_std(blk.self_attn.in_proj_weight[:d], math.sqrt(2 / (2 * d)))
    assert torch.all(blk.fc1.bias == 0)


# ---------------------------------------------------------------------------------------- delta_orthogonal
def test_delta_orthogonal_is_zero_but_an_orthogonal_centre():
    w = torch.empty(32, 16, 3, 5)
    initlab.initialize(w, "delta_orthogonal", gain=2.0, seed=0)
    centre = w[:, :, 1, 2]
    mask = torch.ones_like(w, dtype=torch.bool)
    mask[:, :, 1, 2] = False
    assert torch.all(w[mask] == 0)
    assert torch.allclose(centre.T @ centre, 4.0 * torch.eye(16), atol=1e-4)


def test_delta_orthogonal_draws_a_model_s_convolutions():
    model = nn.Sequential(nn.Conv2d(8, 16, 3), nn.ReLU(), nn.Conv2d(16, 16, 3))
    initlab.initialize(model, "delta_orthogonal", seed=0)
    k = model[2].weight[:, :, 1, 1]
    assert torch.allclose(k @ k.T, torch.eye(16), atol=1e-4)
    assert float(model[2].weight.abs().sum()) == pytest.approx(float(k.abs().sum()))


# ---------------------------------------------------------------------------------------- the CLI
def test_schemes_lists_recipes_apart_with_their_roles():
    import json

    from click.testing import CliRunner

    from initlab.cli import main

    rows = json.loads(CliRunner().invoke(main, ["schemes", "--json"]).output)
    recipes = {r["name"]: r for r in rows if r["kind"] == "recipe"}
    assert set(recipes) == {"gpt2", "fixup", "t_fixup", "deepnet", "zero_init_residual", "skipinit",
                            "mimetic", "zero_residual"}
    assert recipes["fixup"]["needs"] == ["branch_in", "branch_out", "readout"]
    assert "delta_orthogonal" in {r["name"] for r in rows if r["kind"] == "scheme"}
    out = CliRunner().invoke(main, ["schemes"]).output
    assert "initlab recipes" in " ".join(out.split()) and "Zhang," in out and "branch_norm" in out


# ---------------------------------------------------------------------------------------- roles on other layouts
class OPTAttention(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.num_heads = 4
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))


class OPTLayer(nn.Module):
    """OPT's and BART's layout: the attention a child module, the feed-forward Linears the layer's own."""

    def __init__(self, d):
        super().__init__()
        self.self_attn, self.self_attn_layer_norm = OPTAttention(d), nn.LayerNorm(d)
        self.fc1, self.fc2, self.final_layer_norm = nn.Linear(d, 4 * d), nn.Linear(4 * d, d), nn.LayerNorm(d)


class BertLayer(nn.Module):
    """BERT's layout: attention.self.{query,key,value}, attention.output.dense, intermediate.dense (d -> 4d),
    output.dense (4d -> d)."""

    def __init__(self, d):
        super().__init__()
        self.attention = nn.Module()
        self.attention.self = nn.Module()
        for k in ("query", "key", "value"):
            setattr(self.attention.self, k, nn.Linear(d, d))
        self.attention.output = nn.Module()
        self.attention.output.dense, self.attention.output.LayerNorm = nn.Linear(d, d), nn.LayerNorm(d)
        self.intermediate = nn.Module()
        self.intermediate.dense = nn.Linear(d, 4 * d)
        self.output = nn.Module()
        self.output.dense, self.output.LayerNorm = nn.Linear(4 * d, d), nn.LayerNorm(d)


class Stack(nn.Module):
    def __init__(self, layer, n=4, d=64):
        super().__init__()
        self.embed = nn.Embedding(100, d)
        self.layers = nn.ModuleList(layer(d) for _ in range(n))
        self.head = nn.Linear(d, 100)


@pytest.mark.parametrize("layer, outs, ins", [
    (OPTLayer, ("self_attn.out_proj", "fc2"), ("self_attn.q_proj", "self_attn.v_proj", "fc1")),
    (BertLayer, ("attention.output.dense", "output.dense"),
     ("attention.self.query", "attention.self.value", "intermediate.dense"))])
def test_gpt2_finds_two_branches_per_layer_in_opt_and_bert_layouts(layer, outs, ins):
    """Each layer has two branches, attention and feed-forward: their output projections get
    0.02/sqrt(2L), everything else 0.02 (an OPT attention as a child module was read as one branch with
    the MLP; BERT's d -> 4d intermediate.dense was taken for a branch's last layer)."""
    n = 4
    model = Stack(layer, n=n)
    manifest = initlab.initialize(model, "gpt2", seed=0)
    assert manifest.recipe["n_layer"] == n
    for i, blk in enumerate(model.layers):
        for name in outs:
            assert close_std(blk.get_submodule(name).weight, 0.02 / math.sqrt(2 * n)), name
        for name in ins:
            assert close_std(blk.get_submodule(name).weight, 0.02), name
    assert sorted(manifest.recipe["roles_found"]["branch_out"]) == sorted(f"layers.{i}.{o}" for i in range(n)
                                                                          for o in outs)
    fixup = initlab.initialize(Stack(layer, n=n), "fixup", seed=0)
    assert fixup.recipe["L"] == 2 * n


@pytest.mark.parametrize("norm_first", [False, True])
def test_zero_init_residual_never_zeroes_a_transformers_layernorm(norm_first):
    """nn.TransformerEncoderLayer's norm2 is on the stream (post-norm: zeroing it made every layer's
    output exactly 0) or at the feed-forward branch's input (pre-norm): neither closes a branch. The
    recipe finds no branch norm and says how to name one; the model is left as it was."""
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True,
                                                           norm_first=norm_first), 4, enable_nested_tensor=False)
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    with pytest.raises(InitlabError, match="branch_norm"):
        initlab.initialize(enc, "zero_init_residual", seed=0)
    assert all(torch.equal(before[k], v) for k, v in enc.state_dict().items())


@pytest.mark.parametrize("recipe", ["deepnet", "t_fixup"])
def test_deepnet_and_t_fixup_refuse_a_fused_query_key_value(recipe):
    """Their queries and keys get gain 1 and their values the depth's gain; nanoGPT's c_attn holds all
    three in one weight, which a per-tensor rule drew alike (all at the values' std, with the fans of
    the whole (3d, d) matrix): refused, naming the projection."""
    with pytest.raises(InitlabError, match=r"'h\.0\.attn\.c_attn' holds all three in one weight"):
        initlab.initialize(GPT(), recipe, seed=0)


def test_t_fixup_on_an_encoder_decoder_uses_each_stacks_scale():
    """nn.Transformer: the encoder's branches by 0.67 N^(-1/4), the decoder's (cross-attention too) by
    (9M)^(-1/4), queries and keys at gain 1 (they were all scaled as one stack of N + M layers)."""
    n, m, d = 6, 4, 32
    model = nn.Transformer(d_model=d, nhead=4, num_encoder_layers=n, num_decoder_layers=m, dim_feedforward=2 * d,
                           batch_first=True)
    manifest = initlab.initialize(model, "t_fixup", seed=0)
    scale = {"encoder": 0.67 * n ** -0.25, "decoder": (9 * m) ** -0.25}
    assert manifest.recipe["scale"] == pytest.approx(scale)
    xavier, ffn = math.sqrt(2 / (2 * d)), math.sqrt(2 / (3 * d))
    for stack, layers in (("encoder", model.encoder.layers), ("decoder", model.decoder.layers)):
        c = scale[stack]
        for blk in layers:
            for att in [blk.self_attn] + ([blk.multihead_attn] if stack == "decoder" else []):
                w = att.in_proj_weight
                assert close_std(w[:2 * d], xavier) and close_std(w[2 * d:], c * xavier)
                assert close_std(att.out_proj.weight, c * xavier)
            assert close_std(blk.linear1.weight, c * ffn) and close_std(blk.linear2.weight, c * ffn)
    with pytest.raises(InitlabError, match="leave n_layer out"):
        initlab.initialize(model, "t_fixup", n_layer=10, seed=0)
