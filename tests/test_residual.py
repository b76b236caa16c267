"""The residual stream (``initlab.residual_stream``) on a pre-norm transformer built from plain torch.nn,
and the verdict of ``diagnose`` that names a depth recipe where one is the fix, and never where not."""

import math

import pytest
import torch
from torch import nn

import initlab
from gptlike import CausalSelfAttention as Attention
from initlab import InitlabError, diagnose
from initlab.verdict import verdict

D, HEADS, VOCAB = 64, 4, 50


class Block(nn.Module):
    """Pre-norm: x = x + attn(ln_1(x)); x = x + mlp(ln_2(x))."""

    def __init__(self, d=D):
        super().__init__()
        self.ln_1, self.attn, self.ln_2 = nn.LayerNorm(d), Attention(d), nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, n_layer, d=D):
        super().__init__()
        self.wte = nn.Embedding(VOCAB, d)
        self.h = nn.ModuleList(Block(d) for _ in range(n_layer))
        self.ln_f, self.head = nn.LayerNorm(d), nn.Linear(d, VOCAB)

    def forward(self, ids):
        x = self.wte(ids)
        for block in self.h:
            x = block(x)
        return self.head(self.ln_f(x))


def gpt(n_layer, embedding_std=1.0, scaled=False, seed=0):
    """PyTorch's default init; the embedding drawn normal(0, embedding_std); with ``scaled`` the two
    Linears that close each branch (attn.c_proj, mlp.2) redrawn with PyTorch's default std / sqrt(2L)."""
    torch.manual_seed(seed)  # PyTorch's own init draws from the global generator
    model = GPT(n_layer)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        nn.init.normal_(model.wte.weight, 0.0, embedding_std, generator=g)
        if scaled:
            for block in model.h:
                for lin in (block.attn.c_proj, block.mlp[2]):
                    nn.init.normal_(lin.weight, 0.0, 1 / math.sqrt(3 * lin.in_features) / math.sqrt(2 * n_layer),
                                    generator=g)
    return model


def ids(n=8, t=16, seed=1):
    return torch.randint(0, VOCAB, (n, t), generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------ the measurement

def test_default_init_grows_linearly_and_matches_the_prediction():
    s = initlab.residual_stream(gpt(24), ids())
    assert s.container == "h" and len(s.rows) == 24 and [r["block"] for r in s.rows] == list(range(1, 25))
    assert s.slope > 0 and s.variance[-1] > 1.5 * s.variance[0]
    assert s.fit_error < 0.15, (s.fit_error, s.variance, s.predicted)
    assert s.residual and all(r["grad_std"] > 0 for r in s.rows)


def test_branches_scaled_by_one_over_sqrt_2l_keep_the_stream_flat():
    default, scaled = (initlab.residual_stream(gpt(24, scaled=k), ids()) for k in (False, True))
    assert scaled.rows[-1]["stream_std"] / scaled.rows[0]["stream_std"] < 1.5
    assert scaled.branch_variance < default.branch_variance / 5 and scaled.fit_error < 0.15


def test_the_prediction_is_initial_plus_depth_times_the_mean_branch_variance():
    s = initlab.residual_stream(gpt(6), ids())
    b = sum(r["branch_std"] ** 2 for r in s.rows) / 6
    assert s.predicted == pytest.approx([s.rows[0]["input_std"] ** 2 + k * b for k in range(1, 7)])
    assert [r["predicted_std"] ** 2 for r in s.rows] == pytest.approx(s.predicted)
    # branch = output - input, measured on the same tensors
    assert s.rows[1]["input_std"] == pytest.approx(s.rows[0]["stream_std"])


def test_blocks_by_path_by_list_and_found_agree():
    model, x = gpt(4), ids()
    found = initlab.residual_stream(model, x)
    by_path = initlab.residual_stream(model, x, blocks="h")
    by_list = initlab.residual_stream(model, x, blocks=list(model.h)[:2])
    assert [r["stream_std"] for r in found.rows] == [r["stream_std"] for r in by_path.rows]
    assert [r["stream_std"] for r in by_list.rows] == [r["stream_std"] for r in found.rows[:2]]


def test_leaves_the_model_gradients_mode_and_rng_as_they_were():
    model, x = gpt(4), ids()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    s = initlab.residual_stream(model, x, seed=3)
    assert all(p.grad is None for p in model.parameters()) and model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(rng, torch.get_rng_state())
    assert [r["grad_std"] for r in s.rows] == [r["grad_std"] for r in initlab.residual_stream(model, x, seed=3).rows]


def test_a_given_loss_and_float_inputs_to_the_first_block():
    blocks = nn.Sequential(*(Block() for _ in range(3)))
    x = torch.randn(4, 8, D, generator=torch.Generator().manual_seed(0))
    s = initlab.residual_stream(blocks, x, loss_fn=lambda out: out.pow(2).sum())
    assert s.container == "" and all(r["grad_std"] > 0 for r in s.rows) and not x.requires_grad


def test_no_blocks_and_blocks_that_change_shape_are_errors():
    with pytest.raises(InitlabError, match="same-typed blocks"):
        initlab.residual_stream(nn.Sequential(nn.Linear(4, 4), nn.ReLU()), torch.randn(2, 4))
    with pytest.raises(InitlabError, match="keeps the shape"):
        initlab.residual_stream(nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 8)), torch.randn(2, 4))
    with pytest.raises(InitlabError, match="no module 'nope'"):
        initlab.residual_stream(gpt(2), ids(), blocks="nope")


# ---------------------------------------------------------------------------- the verdict names a recipe

def test_deep_default_residual_stack_whose_stream_grows_is_told_gpt2():
    v = diagnose(gpt(24, embedding_std=0.2), ids()).verdict
    assert "growing (residual stream)" in v["labels"] and v["recipe"] == "gpt2"
    assert v["residual_stream"]["growth"] > 3
    assert "use initialize(model, 'gpt2', n_layer=24) (or fixup)" in v["message"], v["message"]


@pytest.mark.parametrize("case", ["scaled", "shallow", "post_norm", "plain_mlp", "same_shape_not_residual"])
def test_no_recipe_where_it_is_not_the_fix(case):
    if case == "scaled":  # deep, but the branches are scaled by the depth: the stream stays flat
        model, x = gpt(24, embedding_std=0.2, scaled=True), ids()
    elif case == "shallow":  # grows, but 4 blocks
        model, x = gpt(4, embedding_std=0.05), ids()
    elif case == "post_norm":  # 8 blocks whose LayerNorm follows the sum: nothing builds up
        torch.manual_seed(0)
        model = nn.TransformerEncoder(nn.TransformerEncoderLayer(D, HEADS, 2 * D, dropout=0.0, batch_first=True),
                                      8, enable_nested_tensor=False)
        x = torch.randn(4, 8, D, generator=torch.Generator().manual_seed(0))
    elif case == "plain_mlp":
        model = initlab.mlp(32, [32] * 20, 1, "relu")
        x = torch.randn(64, 32, generator=torch.Generator().manual_seed(0))
    else:  # a ModuleList of 12 same-shaped Linears, chained without a skip
        model = nn.Sequential(*(nn.Sequential(nn.Linear(32, 32), nn.Tanh()) for _ in range(12)))
        x = torch.randn(64, 32, generator=torch.Generator().manual_seed(0))
    v = diagnose(model, x).verdict
    assert v["recipe"] is None and "residual stream" not in v["summary"]
    assert not any(name in v["message"] for name in ("gpt2", "fixup")), v["message"]


def _stream(stds, correlation=0.9):
    rows = [{"stream_std": s, "correlation": correlation} for s in stds]
    return {"rows": rows, "residual": correlation > 0.5, "growth": stds[-1] / stds[0], "container": "h"}


def test_the_verdict_on_constructed_streams():
    rows = [{"kind": "Linear", "name": f"l{i}", "preact_std": 1.0, "grad_std": 1.0, "effective_width": None,
             "width": 8, "dead_fraction": 0, "saturated_fraction": 0} for i in range(3)]
    grows = _stream([1.0 + i for i in range(8)])  # 8x over 8 blocks
    assert verdict(rows, stream=grows)["recipe"] == "gpt2"
    assert verdict(rows, stream=_stream([1.0 + i for i in range(7)]))["recipe"] is None  # 7 blocks
    assert verdict(rows, stream=_stream([1.0 + 0.25 * i for i in range(8)]))["recipe"] is None  # 2.75x
    assert verdict(rows, stream=_stream([1.0 + i for i in range(8)], correlation=0.1))["recipe"] is None
    in_use = verdict(rows, scheme="gpt2", stream=grows)  # a recipe in use is never suggested again
    assert in_use["recipe"] is None and "use initialize" not in in_use["message"]
    assert "gpt2 is in use already" in in_use["message"]
    assert verdict(rows, stream=None)["recipe"] is None


def test_the_figure_draws_measured_and_predicted_lines_per_initialization():
    import matplotlib

    matplotlib.use("Agg")
    from initlab import plots

    results = {"default": [initlab.residual_stream(gpt(n), ids()) for n in (2, 4)],
               "scaled": [initlab.residual_stream(gpt(n, scaled=True), ids()).to_dict() for n in (2, 4)]}
    fig, ax = plots.plt.subplots()
    plots.residual_stream_plot(results, ax=ax)
    assert len(ax.lines) == 4 and list(ax.lines[0].get_xdata()) == [2, 4]
    assert list(ax.lines[1].get_ydata()) == pytest.approx([s.predicted[-1] for s in results["default"]])
    plots.residual_stream_plot(results, ax=ax, quantity="gradient", log=True)
    with pytest.raises(InitlabError, match="unknown quantity"):
        plots.residual_stream_plot(results, ax=ax, quantity="nope")
    plots.plt.close(fig)


def test_a_trend_in_a_growing_residual_stack_is_fixed_by_the_recipe_the_verdict_names():
    """PyTorch's own pre-norm TransformerEncoder, 24 layers at its default init: the gradient explodes
    toward the input and the stream grows; the message's fix is the recipe the verdict names, never
    another rule beside it."""
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(64, 4, 256, dropout=0.0, batch_first=True, norm_first=True)
    enc = nn.TransformerEncoder(layer, 24, enable_nested_tensor=False)
    v = initlab.diagnose(enc, torch.randn(8, 16, 64) * 0.2).verdict
    assert "growing (residual stream)" in v["labels"] and v["recipe"] == "gpt2"
    assert "initialize(model, 'gpt2', n_layer=24)" in v["message"] and "lsuv" not in v["message"]


@pytest.mark.parametrize("n", [12, 32])
def test_a_model_built_by_the_gpt2_recipe_gets_a_clean_verdict(n):
    """GPT-2's own init (embedding std 0.02, branches' last layers 0.02/sqrt(2L)): the stream grows from
    its small start, and the gradient with it, but neither is a depth problem and the verdict says so
    (it once read the small branch projections as vanishing and told the user to use gpt2 again)."""
    model = gpt(n)
    manifest = initlab.initialize(model, "gpt2", n_layer=n, seed=0)
    assert manifest.recipe["roles_found"]["branch_out"]
    v = diagnose(model, ids()).verdict
    assert v["summary"] == "ok", v["message"]
    assert v["recipe"] is None and v["residual_stream"]["branch_out_ratio"] < 1 / math.sqrt(n)
    assert "stay within" in v["message"] and "initialize(" not in v["message"]
    broken = gpt(n)  # GPT-2's std everywhere, the depth scaling left out: the ratio is 1 or more
    initlab.initialize(broken, "normal", std=0.02, seed=0)
    assert diagnose(broken, ids()).verdict["residual_stream"]["branch_out_ratio"] >= 1


def test_the_branch_ratio_reads_parametrized_weights():
    """A residual stack whose layers are weight-normalized (a parametrization: ``weight`` is no
    parameter) is measured through its effective weights, not refused with AttributeError."""
    from torch.nn.utils.parametrizations import weight_norm

    from initlab.roles import branch_out_ratio

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = weight_norm(nn.Linear(16, 16)), weight_norm(nn.Linear(16, 16))

    torch.manual_seed(0)
    model = nn.Sequential(*[Block() for _ in range(4)])
    before = branch_out_ratio(model)
    assert 0.5 < before < 2  # one depth-blind rule for both layers
    with torch.no_grad():
        for block in model:
            block.fc2.parametrizations.weight.original0.mul_(0.1)  # g: the effective weight 10x smaller
    assert branch_out_ratio(model) == pytest.approx(0.01 * before, rel=1e-5)


def test_diagnose_measures_the_stream_on_its_own_pass_as_residual_stream_measures_it():
    """diagnose hooks the stream onto the one forward and backward pass it makes (the model is called
    once), and finds what residual_stream finds in a pass of its own with the same loss."""
    from initlab.diagnose import DIRECTION_SEED
    from initlab.losses import direction_loss

    model, x = gpt(12, embedding_std=0.2), ids()
    forwards = []
    handle = model.register_forward_pre_hook(lambda m, a: forwards.append(1))
    d = diagnose(model, x)
    handle.remove()
    assert len(forwards) == 1
    got = d.verdict["residual_stream"]
    alone = initlab.residual_stream(model, x, loss_fn=lambda out: direction_loss(out, DIRECTION_SEED))
    assert got["status"] == "growing" and got["blocks"] == 12
    assert got["growth"] == pytest.approx(alone.growth, rel=1e-6)
    assert got["first"] == pytest.approx(alone.rows[0]["stream_std"], rel=1e-6)
    assert got["last"] == pytest.approx(alone.rows[-1]["stream_std"], rel=1e-6)
    grads = [r["grad_std"] for r in alone.rows]
    assert got["gradient"]["ratio"] == pytest.approx(grads[0] / grads[-1], rel=1e-5)


@pytest.mark.parametrize("n", [2, 4, 6])
def test_a_shallow_gpt2_start_with_a_sequential_mlp_is_not_called_vanishing(n):
    """Below the residual stack's 8 blocks the verdict compares each place of a block across blocks: an
    nn.Sequential MLP's Linears (h.i.mlp.0, h.i.mlp.2) are two places, not one, so the branch's small last
    layer under gpt2 is never compared with the block's first (it was: 'vanishing, use lsuv')."""
    model = gpt(n)
    initlab.initialize(model, "gpt2", seed=0)
    v = diagnose(model, ids()).verdict
    assert v["summary"] == "ok", v["message"]
