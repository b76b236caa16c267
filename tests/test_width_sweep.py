"""Width sweeps (initlab.width_sweep): the slopes and the verdict on constructed data where the answer is
known, standard parametrization against muP on an MLP, and the l1 numbers against muP's own
get_coord_data on the same model and seeds."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import initlab
from initlab.errors import InitlabError
from initlab.widths import fit_slopes, verdict

WIDTHS = [64, 128, 256, 512]
BASE, LR = 64, 0.2


def _data():
    g = torch.Generator().manual_seed(1)
    return torch.randn(32, 8, generator=g), torch.randint(0, 5, (32,), generator=g)


def sp(width):
    """Standard parametrization: He-normal weights, SGD with one learning rate."""
    model = initlab.mlp(8, [width, width], 5, "relu")
    initlab.initialize(model, "he_normal", seed=int(torch.randint(0, 2**31, (1,))))
    return model


def mu(width):
    """muP for SGD (Yang et al. 2021, Table 3): the readout starts at 0 ..."""
    model = sp(width)
    nn.init.zeros_(model.out.weight)
    return model


def mu_sgd(model):
    """... and learns at lr / m; the input layer and hidden biases at lr * m, hidden weights at lr
    (m = width / base)."""
    m = model.fc2.in_features / BASE
    return torch.optim.SGD([{"params": [model.fc1.weight, model.fc1.bias, model.fc2.bias], "lr": LR * m},
                            {"params": [model.fc2.weight, model.out.bias], "lr": LR},
                            {"params": [model.out.weight], "lr": LR / m}], lr=LR)


def _frame(values: dict) -> pd.DataFrame:
    rows = [{"width": w, "module": mod, "step": 0, "seed": s, "l1": f(w, s)}
            for mod, f in values.items() for w in WIDTHS for s in (0, 1)]
    return pd.DataFrame(rows)


def test_slopes_and_verdicts_on_constructed_data():
    rng = np.random.default_rng(0)
    noise = {(w, s): math.exp(0.05 * rng.standard_normal()) for w in WIDTHS for s in (0, 1)}
    slopes = fit_slopes(_frame({"grow": lambda w, s: 3 * w**0.5, "flat": lambda w, s: 0.7 * noise[w, s],
                                "shrink": lambda w, s: 5 / w, "zero": lambda w, s: 0.0}))
    by = slopes.set_index("module")
    assert by.loc["grow", "slope"] == pytest.approx(0.5) and by.loc["grow", "trend"] == "grows"
    assert by.loc["shrink", "slope"] == pytest.approx(-1.0) and by.loc["shrink", "trend"] == "shrinks"
    assert by.loc["flat", "trend"] == "flat" and by.loc["flat", "low"] < 0 < by.loc["flat", "high"]
    assert by.loc["zero", "trend"] == "zero"
    assert verdict(slopes) == "shrinks as width^-1.00 at module shrink (step 0; 1 more module moves with width)"
    assert verdict(slopes[slopes["module"].isin(["flat", "zero"])]) == "flat in width"
    # a slope of 0.5 through points that scatter a factor 100 apart: its interval holds 0, so no trend is claimed
    noisy = fit_slopes(_frame({"noisy": lambda w, s: w**0.5 * (10.0 if s == 0 else 0.1)})).iloc[0]
    assert noisy["slope"] == pytest.approx(0.5) and noisy["low"] < 0 < noisy["high"] and noisy["trend"] == "flat"


def test_standard_parametrization_grows_after_one_step_and_mup_stays_flat():
    x, y = _data()
    s = initlab.width_sweep(sp, WIDTHS, x, steps=2, lr=LR, seeds=[0, 1], targets=y)
    assert list(s.data.columns) == ["width", "module", "step", "seed", "l1"]
    assert len(s.data) == len(WIDTHS) * 2 * 2 * 5  # widths x seeds x steps x modules (fc1, act1, fc2, act2, out)
    out = s.slopes.set_index(["module", "step"])
    assert out.loc[("out", 0), "trend"] == "flat" and out.loc[("fc2", 0), "trend"] == "flat"
    assert out.loc[("out", 1), "trend"] == "grows" and out.loc[("out", 1), "slope"] > 0.6
    assert s.verdict.startswith("grows as width^") and "at module out (step 1" in s.verdict
    m = initlab.width_sweep(mu, WIDTHS, x, steps=3, optimizer=mu_sgd, seeds=[0, 1], targets=y)
    assert m.verdict == "flat in width"
    mo = m.slopes.set_index(["module", "step"])
    assert mo.loc[("out", 0), "trend"] == "zero" and abs(mo.loc[("out", 2), "slope"]) < 0.2


def test_l1_equals_mups_get_coord_data_on_the_same_model_and_seeds():
    coord_check = pytest.importorskip("mup.coord_check")
    x, y = _data()
    factory = lambda w: initlab.mlp(8, [w, w], 5, "tanh")  # noqa: E731  (PyTorch's own init, from the global stream)
    ours = initlab.width_sweep(factory, [32, 64], x, steps=3, lr=0.1, seeds=[0, 1], targets=y).data
    frames = [coord_check.get_coord_data({w: (lambda w=w: factory(w))}, [(x, y)], optimizer="sgd", lr=0.1, mup=False,
                                         nsteps=3, nseeds=2, cuda=False, show_progress=False) for w in (32, 64)]
    theirs = pd.concat(frames)
    theirs = theirs[theirs["module"] != ""]  # the model itself: the same tensor as its last layer's output
    seed = np.repeat(np.arange(2), len(theirs) // 4).tolist() * 2  # get_coord_data runs seed 0 then 1 per width
    theirs = theirs.assign(seed=seed, step=theirs["t"] - 1)
    merged = ours.merge(theirs, on=["width", "module", "step", "seed"], suffixes=("", "_mup"))
    assert len(merged) == len(ours) == len(theirs) == 2 * 2 * 3 * 5
    np.testing.assert_allclose(merged["l1"], merged["l1_mup"], rtol=1e-6)


def test_bad_arguments_are_one_line():
    x, _ = _data()
    with pytest.raises(InitlabError, match="at least 2 different"):
        initlab.width_sweep(sp, [64], x)
    with pytest.raises(InitlabError, match="steps"):
        initlab.width_sweep(sp, [64, 128], x, steps=0)
    with pytest.raises(InitlabError, match="unknown optimizer"):
        initlab.width_sweep(sp, [64, 128], x, optimizer="sgdd")
    with pytest.raises(InitlabError, match="do not fit"):
        initlab.width_sweep(sp, [64, 128], torch.randn(4, 3))


def test_a_cnn_sweeps_by_its_channels_with_the_random_direction_loss():
    def cnn(width):
        return nn.Sequential(nn.Conv2d(2, width, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(width * 16, 3))

    x = torch.randn(6, 2, 4, 4, generator=torch.Generator().manual_seed(2))
    s = initlab.width_sweep(cnn, [4, 8, 16], x, steps=2, lr=0.05)
    assert set(s.data["module"]) == {"0", "1", "3"} and set(s.data["step"]) == {0, 1}
    assert s.slopes.set_index(["module", "step"]).loc[("0", 0), "trend"] == "flat"  # fan_in fixed: flat at init
    assert isinstance(s.verdict, str) and s.verdict
