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
    # a slope of 0.5 through points that scatter a factor 100 apart: its interval holds 0, so neither a trend
    # nor flatness is claimed, and the verdict names the module it cannot tell
    noisy = fit_slopes(_frame({"noisy": lambda w, s: w**0.5 * (10.0 if s == 0 else 0.1)}))
    row = noisy.iloc[0]
    assert row["slope"] == pytest.approx(0.5) and row["low"] < 0 < row["high"] and row["trend"] == "inconclusive"
    assert verdict(noisy).startswith("no module clearly moves with width, but cannot tell at noisy (step 0")
    both = pd.concat([slopes, noisy])
    assert verdict(both).startswith("shrinks as width^-1.00 at module shrink") and "cannot tell at noisy" in verdict(both)


def test_nan_or_inf_is_diverged_never_flat_and_an_unknown_module_is_named():
    bad = fit_slopes(_frame({"nan": lambda w, s: math.nan if w == 512 else 1.0,
                             "inf": lambda w, s: math.inf if w >= 256 else 1.0, "flat": lambda w, s: 1.0,
                             "once": lambda w, s: 1.0 if w == 64 else 0.0}))
    by = bad.set_index("module")
    assert by.loc["nan", "trend"] == "diverged" and by.loc["inf", "trend"] == "diverged"
    assert by.loc["once", "trend"] == "unknown" and by.loc["flat", "trend"] == "flat"
    v = verdict(bad)
    assert v.startswith("diverged (NaN or inf) at nan (step 0), inf (step 0)") and "cannot tell at once" in v
    assert verdict(bad[bad["module"].isin(["flat", "once"])]).startswith("no module clearly moves")


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
    with pytest.raises(InitlabError, match="the input batch holds NaN or inf"):
        initlab.width_sweep(sp, [64, 128], torch.full((4, 8), math.nan))
    with pytest.raises(InitlabError, match="the target batch holds NaN or inf"):
        initlab.width_sweep(sp, [64, 128], x, targets=torch.full((32, 5), math.inf))
    # the user's loss, optimizer factory and targets that do not fit: one line each, never a traceback
    with pytest.raises(InitlabError, match=r"the loss failed on the model's output \(IndexError"):
        initlab.width_sweep(sp, [64, 128], x, loss=lambda out, t: out[:, 99].sum())
    with pytest.raises(InitlabError, match=r"the loss could not be computed from the model.s output of shape \(32, 5\) and targets of shape \(32,\).*IndexError"):
        initlab.width_sweep(sp, [64, 128], x, targets=torch.full((32,), 7))
    with pytest.raises(InitlabError, match=r"the loss should be a scalar tensor; got Tensor\(32, 5\)"):
        initlab.width_sweep(sp, [64, 128], x, loss=lambda out, t: out)
    with pytest.raises(InitlabError, match=r"optimizer\(model\) failed \(AttributeError"):
        initlab.width_sweep(sp, [64, 128], x, optimizer=lambda m: torch.optim.SGD(m.no_such_part.parameters(), lr=1))
    with pytest.raises(InitlabError, match=r"should return a torch.optim.Optimizer; got list"):
        initlab.width_sweep(sp, [64, 128], x, optimizer=lambda m: [])
    with pytest.raises(InitlabError, match="the update after step 0 failed"):
        initlab.width_sweep(sp, [64, 128], x, loss=lambda out, t: torch.ones((), requires_grad=False))


def test_a_cnn_sweeps_by_its_channels_with_the_random_direction_loss():
    def cnn(width):
        return nn.Sequential(nn.Conv2d(2, width, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(width * 16, 3))

    x = torch.randn(6, 2, 4, 4, generator=torch.Generator().manual_seed(2))
    s = initlab.width_sweep(cnn, [4, 8, 16], x, steps=2, lr=0.05)
    assert set(s.data["module"]) == {"0", "1", "3"} and set(s.data["step"]) == {0, 1}
    by = s.slopes.set_index(["module", "step"])
    assert by.loc[("0", 0), "trend"] == "flat"  # fan_in fixed: flat at init
    # the verdict is the slopes' own: "flat in width" exactly when every module and step is flat (or 0)
    assert s.verdict == verdict(s.slopes)
    assert (s.verdict == "flat in width") == bool(s.slopes["trend"].isin(["flat", "zero"]).all())


def test_repeated_calls_are_named_as_the_probe_names_them():
    class Twice(nn.Module):
        def __init__(self, width):
            super().__init__()
            self.inp, self.mid, self.out = nn.Linear(8, width), nn.Linear(width, width), nn.Linear(width, 2)

        def forward(self, x):
            return self.out(self.mid(torch.tanh(self.mid(self.inp(x)))))

    x, _ = _data()
    s = initlab.width_sweep(Twice, [8, 16], x, steps=1)
    assert list(dict.fromkeys(s.data["module"])) == ["inp", "mid#1", "mid#2", "out"]
    m = initlab.correlation_map(Twice(8), x[:4])
    assert m.layers == ["inp", "mid#1", "mid#2", "out"]
    assert [r["name"] for r in initlab.diagnose(Twice(8), x[:4]).rows][:3] == ["inp", "mid#1", "mid#2"]
