"""Layers of other libraries: a class declared with ``initlab.register_layer`` is initialized, probed
and rescaled like ``nn.Linear``; a class initlab does not know is listed as not understood and never
drawn with guessed fans."""

import math

import pytest
import torch
from scipy import stats
from torch import nn

import initlab
from initlab import InitlabError
from initlab import layers as L


class Conv1D(nn.Module):
    """As GPT-2's Conv1D in Hugging Face transformers: a Linear whose weight is stored (in, out)."""

    def __init__(self, nf, nx):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(nx, nf) * 0.02)
        self.bias = nn.Parameter(torch.zeros(nf))

    def forward(self, x):
        return x @ self.weight + self.bias


class Unknown(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.w = nn.Parameter(torch.full((n, n), 0.5))

    def forward(self, x):
        return x @ self.w


@pytest.fixture
def registered():
    L.register_layer(Conv1D, transposed=True)
    yield
    L._ADAPTERS.pop(Conv1D, None)


def net():
    return nn.Sequential(Conv1D(256, 64), nn.ReLU(), Conv1D(32, 256), nn.ReLU(), nn.Linear(32, 1))


def test_an_unknown_layer_is_not_understood_and_left_as_it_was():
    model = nn.Sequential(nn.Linear(8, 8), Unknown(8), nn.Linear(8, 1))
    manifest = initlab.initialize(model, "xavier_uniform", seed=0)
    assert torch.all(model[1].w == 0.5)
    assert "not understood" not in manifest.accounting()["0.weight"]
    assert "register_layer" in manifest.accounting()["1.w"]
    d = initlab.diagnose(model, torch.randn(16, 8))
    assert [r["name"] for r in d.rows] == ["0", "2"]
    assert d.accounting()["1.w"].startswith("not understood") and "1.w" in d.verdict["message"]


def test_a_registered_transposed_layer_gets_fans_from_the_right_axes(registered):
    model = net()
    manifest = initlab.initialize(model, "xavier_uniform", seed=0)
    first = next(e for e in manifest.entries if e["parameter"] == "0.weight")
    assert (first["fan_in"], first["fan_out"]) == (64, 256)  # stored (64, 256) = (in, out)
    bound = math.sqrt(6 / (64 + 256))
    w = model[0].weight.detach().double().flatten()
    assert float(w.abs().max()) <= bound
    assert stats.kstest(w.numpy(), stats.uniform(loc=-bound, scale=2 * bound).cdf).pvalue > 1e-3
    assert torch.all(model[0].bias == 0)


def test_a_registered_layer_has_rows_and_lsuv_reaches_it(registered):
    model = net()
    X = torch.randn(128, 64, generator=torch.Generator().manual_seed(0))
    d = initlab.diagnose(model, X)
    assert [r["kind"] for r in d.rows] == ["Conv1D", "Conv1D", "Linear"]
    assert (d.rows[0]["fan_in"], d.rows[0]["fan_out"], d.rows[0]["width"]) == (64, 256, 256)
    result = initlab.lsuv(model, X)
    assert result.reached and all(abs(r["std"] - 1) <= 0.1 for r in result.layers)


def test_register_layer_refuses_what_is_not_a_module():
    with pytest.raises(InitlabError, match="nn.Module subclass"):
        initlab.register_layer(int)
