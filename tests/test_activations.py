"""The activation table: each row's numpy function and derivatives (what theory uses) agree with its
torch function and autograd (what models and the batched trainer use), its module is its function,
and its gain is torch.nn.init.calculate_gain's where torch has one."""

import numpy as np
import pytest
import torch

from initlab import activations as A
from initlab.errors import InitlabError

X = torch.linspace(-4, 4, 801, dtype=torch.float64)[torch.linspace(-4, 4, 801).abs() > 1e-3]


@pytest.mark.parametrize("name", A.names())
def test_numpy_function_and_derivatives_match_torch_autograd(name):
    row = A.get(name)
    x = X.clone().requires_grad_(True)
    y = row.function(x)
    (d1,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    d2 = torch.autograd.grad(d1.sum(), x)[0] if d1.requires_grad else torch.zeros_like(x)
    xs = X.numpy()
    np.testing.assert_allclose(row.phi(xs), y.detach().numpy(), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(row.dphi(xs), d1.detach().numpy(), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(row.d2phi(xs), d2.numpy(), rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(row.make()(X), row.function(X))
    assert A.of_module(row.make()) == name


@pytest.mark.parametrize("name", A.names())
def test_each_function_leaves_the_autograd_node_the_table_names(name):
    row = A.get(name)
    y = row.function(torch.randn(5, requires_grad=True))
    if row.nodes:
        assert y.grad_fn.name() in row.nodes and A.BY_NODE[y.grad_fn.name()] == name


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "tanh", "sigmoid", "selu", "identity"])
def test_gain_is_torch_calculate_gain(name):
    torch_name = "linear" if name == "identity" else name
    assert A.get(name).gain() == pytest.approx(torch.nn.init.calculate_gain(torch_name))


def test_unknown_activation_lists_the_known_ones_and_linear_is_identity():
    with pytest.raises(InitlabError, match="unknown activation 'tahn'.*Did you mean 'tanh'"):
        A.get("tahn")
    assert A.get("linear") is A.get("identity")
    assert A.of_module(torch.nn.Softplus()) is None
