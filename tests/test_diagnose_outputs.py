"""diagnose and residual_stream on the outputs real models return: a dict (HuggingFace style), the model's
own loss beside its logits, a sequence model's (N, T, V) logits against (N, T) tokens; and diagnose of a
copy initialized by a recipe."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import initlab
from gptlike import CausalSelfAttention as Attention
from initlab import InitlabError, diagnose, residual_stream
from initlab.diagnose import compare

D, HEADS, VOCAB, N_LAYER = 32, 4, 40, 8


class MLP(nn.Module):
    def __init__(self, d=D):
        super().__init__()
        self.c_fc, self.c_proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, d=D):
        super().__init__()
        self.ln_1, self.attn, self.ln_2, self.mlp = nn.LayerNorm(d), Attention(d), nn.LayerNorm(d), MLP(d)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """GPT-2's layout; ``returns``: "tensor" (the logits), "dict" ({"logits"}, and {"loss", "logits"} when
    given labels, as a HuggingFace model returns), "tuple" ((a 0-dim auxiliary loss, logits))."""

    def __init__(self, n_layer=N_LAYER, returns="tensor"):
        super().__init__()
        self.returns = returns
        self.wte = nn.Embedding(VOCAB, D)
        self.h = nn.ModuleList(Block() for _ in range(n_layer))
        self.ln_f, self.head = nn.LayerNorm(D), nn.Linear(D, VOCAB)

    def forward(self, ids, labels=None):
        x = self.wte(ids)
        for block in self.h:
            x = block(x)
        logits = self.head(self.ln_f(x))
        if self.returns == "tuple":
            return logits.pow(2).mean(), logits
        if self.returns == "dict":
            if labels is None:
                return {"logits": logits}
            return {"loss": F.cross_entropy(logits.reshape(-1, VOCAB), labels.reshape(-1)), "logits": logits}
        return logits


def gpt(returns="tensor", seed=0):
    torch.manual_seed(seed)  # PyTorch's own init draws from the global generator
    return GPT(returns=returns)


def ids(n=6, t=12, seed=1):
    return torch.randint(0, VOCAB, (n, t), generator=torch.Generator().manual_seed(seed))


def same_rows(a, b, rel=1e-6):
    """Two lists of rows agree: every number within ``rel``, everything else equal."""
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys()
        for k in ra:
            x, y = ra[k], rb[k]
            if isinstance(x, float) and isinstance(y, float):
                assert x == pytest.approx(y, rel=rel, abs=1e-12, nan_ok=True), (ra["name"], k)
            else:
                assert x == y, (ra["name"], k)


def one_line(e):
    assert "\n" not in str(e.value) and "Traceback" not in str(e.value)
    return str(e.value)


# ------------------------------------------------------------------------------------ dict outputs

def test_a_dict_output_is_read_as_its_logits_by_residual_stream_and_diagnose():
    """A HuggingFace-style {"logits": ...} output measures exactly as the same model returning the tensor."""
    x = ids()
    as_dict, as_tensor = gpt("dict"), gpt("tensor")
    assert len(as_dict.h) >= 8
    stream = residual_stream(as_dict, x)
    assert len(stream.rows) == N_LAYER and all(r["grad_std"] is not None and r["grad_std"] > 0 for r in stream.rows)
    same_rows(stream.rows, residual_stream(as_tensor, x).rows)
    d = diagnose(as_dict, x)
    same_rows(d.rows, diagnose(as_tensor, x).rows)
    assert d.verdict["residual_stream"] is not None


def test_an_output_with_no_tensor_is_a_one_line_error():
    class Words(GPT):
        def forward(self, ids, labels=None):
            super().forward(ids)
            return {"text": "no tensor here"}

    torch.manual_seed(0)
    model = Words()
    for run in (lambda: residual_stream(model, ids()), lambda: diagnose(model, ids())):
        with pytest.raises(InitlabError) as e:
            run()
        assert "no tensor" in one_line(e) and "loss_fn=" in str(e.value)


# ------------------------------------------------------------------------------------ the default loss

def test_a_sequence_models_integer_targets_are_cross_entropy_over_the_last_axis():
    """(N, T, V) logits against (N, T) tokens: the default loss is the flattened cross-entropy."""
    model, x, y = gpt(), ids(), ids(seed=2)
    got = diagnose(model, x, targets=y)
    want = diagnose(model, x, targets=y,
                    loss_fn=lambda out, t: F.cross_entropy(out.reshape(-1, VOCAB), t.reshape(-1)))
    same_rows(got.rows, want.rows)
    assert got.rows[-1]["grad_std"] > 0
    # not the random direction: the gradient at the output is the cross-entropy's
    assert got.rows[-1]["grad_std"] != pytest.approx(diagnose(model, x).rows[-1]["grad_std"], rel=0.01)


def test_a_models_own_0_dim_loss_is_the_loss_without_targets():
    """{"loss": 0-dim, "logits"} from a model given labels: that loss is differentiated, the same as the
    default loss on the logits against those labels."""
    x, y = ids(), ids(seed=2)
    own = diagnose(gpt("dict"), {"ids": x, "labels": y})
    same_rows(own.rows, diagnose(gpt("tensor"), x, targets=y).rows)
    stream = residual_stream(gpt("dict"), {"ids": x, "labels": y})
    want = residual_stream(gpt("tensor"), x, loss_fn=lambda out: F.cross_entropy(out.reshape(-1, VOCAB), y.reshape(-1)))
    same_rows(stream.rows, want.rows)


def test_otherwise_the_first_tensor_of_dimension_one_or_more_is_the_output():
    """A 0-dim tensor first in a tuple (not named loss) is not the output: the logits are. With targets, a
    dict's loss is not taken either: the targets are compared with the logits."""
    x, y = ids(), ids(seed=2)
    same_rows(diagnose(gpt("tuple"), x).rows, diagnose(gpt("tensor"), x).rows)
    same_rows(residual_stream(gpt("tuple"), x).rows, residual_stream(gpt("tensor"), x).rows)
    with_targets = diagnose(gpt("dict"), {"ids": x, "labels": ids(seed=3)}, targets=y)
    same_rows(with_targets.rows, diagnose(gpt("tensor"), x, targets=y).rows)


@pytest.mark.parametrize("targets, shape, dtype", [
    (torch.randn(8, 5), "(8, 5)", "float32"),           # mse of another width
    (torch.randn(3), "(3,)", "float32"),                # mse would broadcast: a wrong loss, not an error
    (torch.randint(0, 3, (7,)), "(7,)", "int64"),       # another batch size
    (torch.randint(3, 5, (8,)), "(8,)", "int64"),       # classes the output does not have
])
def test_targets_that_do_not_fit_the_output_are_a_one_line_error_naming_both_shapes(targets, shape, dtype):
    with pytest.raises(InitlabError) as e:
        diagnose(nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3)), torch.randn(8, 4), targets=targets)
    msg = one_line(e)
    assert msg.startswith("the loss could not be computed") and "default loss" in msg
    assert f"output of shape (8, 3) and targets of shape {shape} ({dtype})" in msg
    assert "loss_fn=" in msg


def test_targets_that_fit_keep_their_default_losses():
    """Classification (N, C) against (N,), one logit against (N,) floats, regression of the output's shape."""
    model, x = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3)), torch.randn(8, 4)
    y = torch.randint(0, 3, (8,))
    same_rows(diagnose(model, x, targets=y).rows, diagnose(model, x, targets=y, loss_fn=F.cross_entropy).rows)
    r = torch.randn(8, 3)
    same_rows(diagnose(model, x, targets=r).rows, diagnose(model, x, targets=r, loss_fn=F.mse_loss).rows)
    one = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
    b = (torch.rand(8) > 0.5).float()
    same_rows(diagnose(one, x, targets=b).rows, diagnose(one, x, targets=b, loss_fn=lambda o, t: (
        F.binary_cross_entropy_with_logits(o.reshape(-1), t))).rows)


# ------------------------------------------------------------------------------------ recipes

@pytest.mark.parametrize("scheme", ["gpt2", {"name": "gpt2", "params": {"n_layer": N_LAYER}},
                                    ("gpt2", {"n_layer": N_LAYER})])
def test_diagnose_under_a_recipe_initializes_a_copy_by_the_recipe(scheme):
    model, x = gpt(), ids()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    d = diagnose(model, x, scheme=scheme)
    assert d.scheme == "gpt2" and repr(d).startswith("Diagnosis(gpt2,")
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # the caller's model untouched
    reference = gpt()
    initlab.initialize(reference, "gpt2", n_layer=N_LAYER, seed=0)
    same_rows(d.rows, diagnose(reference, x).rows)
    std = {r["name"]: r["weight_std"] for r in d.rows}
    assert std["h.0.attn.c_proj"] == pytest.approx(0.02 / math.sqrt(2 * N_LAYER), rel=0.15)
    assert std["h.0.mlp.c_proj"] == pytest.approx(0.02 / math.sqrt(2 * N_LAYER), rel=0.15)
    assert std["h.0.mlp.c_fc"] == pytest.approx(0.02, rel=0.1) and std["head"] == pytest.approx(0.02, rel=0.1)


def test_compare_takes_a_recipe_and_an_unknown_name_lists_schemes_and_recipes():
    x = ids()
    as_built, recipe = compare(gpt, x, [None, "gpt2"])
    same_rows(as_built.rows, diagnose(gpt(), x).rows)
    reference = gpt()
    initlab.initialize(reference, "gpt2", seed=0)
    same_rows(recipe.rows, diagnose(reference, x).rows)
    with pytest.raises(InitlabError) as e:
        diagnose(gpt(), x, scheme="gtp2")
    msg = one_line(e)
    assert "unknown scheme 'gtp2'" in msg and "Did you mean 'gpt2'" in msg
    assert all(name in msg for name in ("xavier_uniform", "orthogonal", "gpt2", "fixup", "deepnet"))
    with pytest.raises(InitlabError, match="takes no parameter 'depth'"):
        diagnose(gpt(), x, scheme={"name": "gpt2", "params": {"depth": 3}})


def test_a_conv1d_with_as_many_channels_as_steps_gets_cross_entropy_over_its_channels():
    """(N, C, T) logits with C == T against (N, T) targets fit both rules; F.cross_entropy's own layout
    (classes on axis 1) wins, as for any (N, C, d1, ...) output."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(4, 16, 3, padding=1), nn.ReLU(), nn.Conv1d(16, 16, 3, padding=1))
    x = torch.randn(8, 4, 16, generator=torch.Generator().manual_seed(1))
    t = torch.randint(0, 16, (8, 16), generator=torch.Generator().manual_seed(2))
    got = diagnose(model, x, targets=t).rows
    ref = diagnose(model, x, targets=t, loss_fn=lambda out, y: F.cross_entropy(out, y)).rows
    assert [r["grad_std"] for r in got] == pytest.approx([r["grad_std"] for r in ref], rel=1e-6)
