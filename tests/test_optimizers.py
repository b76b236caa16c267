"""Every row of the optimizer table: its stacked step moves each model's slice as torch.optim moves
that model alone, with one learning rate per model; bad names and hyperparameters are one line."""

import pytest
import torch

from initlab.errors import InitlabError
from initlab.optimizers import OPTIMIZERS, get


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_the_stacked_step_equals_torch_optim_per_model(name):
    gen = torch.Generator().manual_seed(0)
    models, steps = 3, 5
    lrs = torch.tensor([0.1, 0.01, 0.003], dtype=torch.float64)
    start = torch.randn(models, 4, 3, generator=gen, dtype=torch.float64)
    grads = [torch.randn(models, 4, 3, generator=gen, dtype=torch.float64) for _ in range(steps)]
    row = get(name)
    settings = row.settings({"weight_decay": 0.05} if "weight_decay" in row.params else {})
    stacked, state = start.clone(), {}
    for t, g in enumerate(grads, start=1):
        row.step(stacked, g, state, lrs.view(-1, 1, 1), t, **settings)
    for i in range(models):
        p = torch.nn.Parameter(start[i].clone())
        opt = row.make([p], lr=float(lrs[i]), **settings)
        for g in grads:
            p.grad = g[i].clone()
            opt.step()
        torch.testing.assert_close(stacked[i], p.detach(), rtol=1e-12, atol=1e-12)
        assert not torch.equal(p.detach(), start[i])


def test_unknown_optimizer_and_hyperparameters_are_one_line():
    with pytest.raises(InitlabError, match="unknown optimizer 'lbfgs'.*sgd"):
        get("lbfgs")
    with pytest.raises(InitlabError, match="optimizer 'sgd' takes no weight_decay"):
        get("sgd").settings({"weight_decay": 0.1})
    with pytest.raises(InitlabError, match="weight_decay must be a non-negative number"):
        get("adamw").settings({"weight_decay": -1})
    assert get("adamw").settings() == {"weight_decay": 0.01}


@pytest.mark.parametrize("name", [n for n, row in OPTIMIZERS.items() if row.uniform_step is not None])
def test_the_fused_uniform_step_equals_the_stacked_step(name):
    gen = torch.Generator().manual_seed(1)
    row = get(name)
    settings = row.settings()
    start = torch.randn(1000, generator=gen)
    grads = [torch.randn(1000, generator=gen) for _ in range(6)]
    a, b, sa, sb = start.clone(), start.clone(), {}, {}
    for t, g in enumerate(grads, start=1):
        row.step(a, g, sa, torch.tensor(0.01), t, **settings)
        row.uniform_step(b, g, sb, 0.01, t, **settings)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(sa["v"], sb["v"], rtol=1e-5, atol=1e-7)
