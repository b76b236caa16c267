import torch
from torch import nn

import initlab


def test_constant_init_has_width_one_random_has_full_width():
    X = torch.randn(100, 2, generator=torch.Generator().manual_seed(0))
    model = initlab.mlp(2, [10, 6], 1, "tanh")
    initlab.initialize(model, "constant", value=0.1)
    widths = initlab.effective_width(model, X)
    assert [(w.layer, w.width, w.effective_width) for w in widths] == [("fc1", 10, 1), ("fc2", 6, 1)]
    assert all(w.max_difference == 0.0 for w in widths)
    initlab.initialize(model, "xavier_uniform", seed=0)
    assert [w.effective_width for w in initlab.effective_width(model, X)] == [10, 6]


def test_one_neuron_pulled_apart_makes_two_groups_and_reports_the_difference():
    X = torch.randn(50, 2, generator=torch.Generator().manual_seed(1))
    model = initlab.mlp(2, [8], 1, "relu")
    initlab.initialize(model, "constant", value=0.2)
    with torch.no_grad():
        model.fc1.weight[3] += 0.5
        model.fc1.weight[5] += 1e-7  # within the tolerance: still the first group
    (w,) = initlab.effective_width(model, X)
    assert w.effective_width == 2
    assert 0 < w.max_difference < 1e-5
    assert w.spread > 0.1


def test_convolution_channels_are_neurons():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 3))
    X = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    initlab.initialize(model, "constant", value=0.3)
    assert [w.effective_width for w in initlab.effective_width(model, X)] == [1]
    initlab.initialize(model, "he_normal", seed=0)
    assert [w.effective_width for w in initlab.effective_width(model, X)] == [4]


def test_an_inplace_relu_does_not_merge_dead_units_into_one():
    """Four units pushed far below 0 are distinct layer outputs but all 0 after the ReLU: the effective
    width counts the layer's own outputs (8 distinct), also when nn.ReLU(inplace=True) overwrites them."""
    X = torch.randn(50, 2, generator=torch.Generator().manual_seed(1))
    for inplace in (False, True):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(inplace=inplace), nn.Linear(8, 1))
        with torch.no_grad():
            model[0].bias[:4] = -100.0
        (w,) = initlab.effective_width(model, X)
        assert w.effective_width == 8, inplace
