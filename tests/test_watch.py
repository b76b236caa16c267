"""``initlab.watch``: two lines in a plain loop give the record, the alerts and the page, for a CNN, an
LSTM and a transformer; the update-to-data ratio against a hand computation; the first-loss check;
alerts that fire on constructed bad cases and stay quiet on a good one; bounded memory."""

from __future__ import annotations

import json
import math
import tracemalloc
import warnings

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

import initlab
from initlab import InitlabError
from initlab.cli import main
from initlab.layers import is_weight_layer
from initlab.outputs import read_watch
from initlab.watch import WatchAlert, chance_loss
from initlab.watchstats import ROOT, STATS, WatchRecord


# -------------------------------------------------------------------------------------------------
# models and a plain loop


class LSTMClassifier(nn.Module):
    def __init__(self, vocab=20, d=12, classes=3):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.lstm = nn.LSTM(d, 16, batch_first=True)
        self.head = nn.Linear(16, classes)

    def forward(self, x):
        out, _ = self.lstm(self.emb(x))
        return self.head(out[:, -1])


class TinyTransformer(nn.Module):
    def __init__(self, vocab=20, d=16, classes=3, length=6):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(0.02 * torch.randn(length, d))
        layer = nn.TransformerEncoderLayer(d, 2, 32, dropout=0.0, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, classes)

    def forward(self, x):
        return self.head(self.norm(self.enc(self.emb(x) + self.pos)).mean(1))


def cnn():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.ReLU(),
                         nn.Flatten(), nn.Linear(8 * 4 * 4, 3))


def batches(kind: str, gen: torch.Generator, n: int = 16):
    y = torch.randint(0, 3, (n,), generator=gen)
    if kind == "cnn":
        return torch.randn(n, 1, 8, 8, generator=gen), y
    return torch.randint(0, 20, (n, 6), generator=gen), y


MODELS = {"cnn": cnn, "lstm": LSTMClassifier, "transformer": TinyTransformer}


def plain_loop(model, kind, steps, w=None, lr=0.05, opt=None, seed=0):
    gen = torch.Generator().manual_seed(seed)
    opt = opt or torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(steps):
        x, y = batches(kind, gen)
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        if w is not None:
            w.step(loss)
    return opt


def owners(model) -> set[str]:
    return {n.rpartition(".")[0] or ROOT for n, _ in model.named_parameters()}


def mlp(widths, activation=nn.ReLU, gain=math.sqrt(2.0), bias=0.0, seed=0):
    """Hidden layers with weight std gain / sqrt(fan_in) (He by default) and bias ``bias``; a readout
    of std 0.01 and bias 0."""
    gen = torch.Generator().manual_seed(seed)
    layers = []
    last = len(widths) - 2
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        lin = nn.Linear(a, b)
        with torch.no_grad():
            lin.weight.normal_(0, 0.01 if i == last else gain / math.sqrt(a), generator=gen)
            lin.bias.fill_(0.0 if i == last else bias)
        layers += [lin] if i == last else [lin, activation()]
    return nn.Sequential(*layers)


def mlp_loop(model, steps, w, lr=0.05, opt=None, inputs=None, seed=1, width=8):
    gen = torch.Generator().manual_seed(seed)
    opt = opt or torch.optim.SGD(model.parameters(), lr=lr)
    raised = []
    for _ in range(steps):
        x = torch.randn(64, width, generator=gen) if inputs is None else inputs
        y = torch.randint(0, 2, (64,), generator=gen)
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        raised += w.step(loss)
    return raised


# -------------------------------------------------------------------------------------------------
# two lines in a plain loop: the record and the page, for a CNN, an LSTM and a transformer


@pytest.mark.parametrize("kind", list(MODELS))
def test_two_lines_give_a_record_with_every_parameters_layer_and_a_page(kind, tmp_path):
    torch.manual_seed(0)
    model = MODELS[kind]()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WatchAlert)
        with initlab.watch(model, every=2, optimizer=opt) as w:
            plain_loop(model, kind, 7, w, opt=opt)
    rec = w.record
    assert owners(model) <= set(rec.layers)
    assert rec.steps.tolist() == [0, 2, 4, 6] and np.isfinite(rec.stat("loss")).all()
    for stat in ("weight_std", "weight_grad_std", "grad_to_weight", "update_to_data"):
        assert np.isfinite(rec.stat(stat)).all(), stat  # every layer has its parameter statistics
    modules = {n or ROOT: m for n, m in model.named_modules()}
    weight_layers = [j for j, n in enumerate(rec.layers) if is_weight_layer(modules[n])]
    # an attention's out_proj is never called as a module (its weight is used inside the attention): no output
    called = [j for j in weight_layers if not rec.layers[j].endswith("self_attn.out_proj")]
    assert len(called) >= 2 and all(np.isfinite(rec.stat("preact_std")[:, j]).all() for j in called)
    assert all(np.isfinite(rec.stat("grad_std")[:, j]).all() for j in called)
    assert np.allclose(np.nansum(rec.hists["output_hist"][0], axis=-1)[called], 1.0, atol=1e-5)
    assert np.isfinite(rec.hists["output_hist"]).any() and rec.hists.steps().tolist() == [0, 2, 4, 6]
    assert not any(h for m in model.modules() for h in m._forward_hooks.values())  # all hooks off after close
    w.save(tmp_path)
    from initlab.report import render

    page = render(tmp_path)
    html = page.read_text()
    assert "update-to-data" in html and "run" in html and "<img" in html


def test_hooks_are_on_the_model_only_on_watched_steps():
    model = mlp([8, 16, 2])
    w = initlab.watch(model, every=3)
    hooked = lambda: sum(len(m._forward_hooks) for m in model.modules() if m is not model)  # noqa: E731
    seen = []
    gen = torch.Generator().manual_seed(0)
    for step in range(7):
        seen.append(hooked())
        loss = nn.functional.cross_entropy(model(torch.randn(4, 8, generator=gen)), torch.tensor([0, 1, 0, 1]))
        loss.backward()
        w.step(loss)
    assert [s > 0 for s in seen] == [True, False, False, True, False, False, True]
    w.close()
    assert hooked() == 0 and not model._forward_hooks


# -------------------------------------------------------------------------------------------------
# the update-to-data ratio


def _linear_net():
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 2))


def watched_step(model, x, y):
    """One watched training step at learning rate 0 (the weights stay as they were measured): the watch,
    closed."""
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    w = initlab.watch(model, every=1, optimizer=opt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WatchAlert)
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        w.step(loss)
    w.close()
    return w


@pytest.mark.parametrize("pass_optimizer", [True, False])
def test_update_ratio_is_lr_times_grad_std_over_weight_std_for_sgd(pass_optimizer):
    model, lr = _linear_net(), 0.3
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    w = initlab.watch(model, every=1, optimizer=opt if pass_optimizer else None)
    gen = torch.Generator().manual_seed(0)
    expected = []
    for _ in range(3):
        x, y = torch.randn(32, 6, generator=gen), torch.randint(0, 2, (32,), generator=gen)
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        expected.append([float((lr * m.weight.grad).std() / m.weight.detach().std()) for m in (model[0], model[2])])
        opt.step()
        w.step(loss)
    got = w.record.stat("update_to_data")
    assert w.layers == ["0", "2"]
    np.testing.assert_allclose(got, np.array(expected), rtol=1e-5)


def test_update_ratio_equals_the_direct_difference_for_adam():
    model = _linear_net()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    w = initlab.watch(model, every=2, optimizer=opt)
    gen = torch.Generator().manual_seed(0)
    expected = []
    for step in range(4):
        x, y = torch.randn(32, 6, generator=gen), torch.randint(0, 2, (32,), generator=gen)
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        before = [m.weight.detach().clone() for m in (model[0], model[2])]
        opt.step()
        if step % 2 == 0:
            expected.append([float((m.weight.detach() - b).std() / b.std()) for m, b in zip((model[0], model[2]), before)])
        w.step(loss)
    np.testing.assert_allclose(w.record.stat("update_to_data"), np.array(expected), rtol=1e-5)
    # Adam's first step moves every weight by about lr: the ratio is lr / std(W), not lr * grad
    first = expected[0][0]
    assert first == pytest.approx(1e-2 / float(model[0].weight.detach().std()), rel=0.5)


def test_gradient_and_weight_statistics_match_a_hand_computation():
    model = _linear_net()
    x, y = torch.randn(16, 6, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 1] * 8)
    w = watched_step(model, x, y)
    h = model[0](x)  # lr 0: the same weights as in the step
    rec = w.record
    lin = model[0]
    assert rec.stat("weight_std")[0, 0] == pytest.approx(float(lin.weight.detach().double().std()))
    assert rec.stat("weight_grad_std")[0, 0] == pytest.approx(float(lin.weight.grad.double().std()))
    assert rec.stat("weight_grad_norm")[0, 0] == pytest.approx(float(lin.weight.grad.double().norm()))
    assert rec.stat("grad_to_weight")[0, 0] == pytest.approx(
        float(lin.weight.grad.double().std() / lin.weight.detach().double().std()))
    assert rec.stat("preact_std")[0, 0] == pytest.approx(float(h.detach().double().std()))
    assert rec.stat("preact_mean")[0, 0] == pytest.approx(float(h.detach().double().mean()))
    assert rec.stat("act_std")[0, 0] == pytest.approx(float(torch.tanh(h).detach().double().std()))
    assert rec.stat("update_to_data")[0, 0] == 0.0  # lr 0: nothing moved
    assert math.isnan(rec.stat("act_mean")[0, 1])  # the readout has no activation after it


def test_train_track_every_keeps_the_watch_record_format():
    data = initlab.datasets.make("moons", n=64, seed=0)
    model = initlab.mlp(2, [8, 8], 1)
    initlab.initialize(model, "he_normal", seed=0)
    r = initlab.train(model, data, steps=12, track_every=5)
    t = r.tracked
    assert set(STATS) <= set(t) and t["layers"] == ["fc1", "fc2", "out"]
    assert t["step"] == [0, 1, 2, 3, 4, 5, 10]
    back = WatchRecord.from_dict(t)
    assert np.isfinite(back.stat("update_to_data")).all() and np.isfinite(back.stat("loss")).all()


# -------------------------------------------------------------------------------------------------
# the first loss


def test_chance_loss_is_ln_c_the_labels_entropy_or_what_is_given():
    assert chance_loss(10) == (pytest.approx(math.log(10)), "ln 10")
    h, basis = chance_loss(3, torch.tensor([0, 0, 0, 1]))
    assert h == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25))) and "entropy" in basis
    assert chance_loss(1, torch.tensor([1.0, 0.0, 1.0, 1.0]))[0] == pytest.approx(
        -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert chance_loss(1) == (None, "") and chance_loss(1, expected=0.5) == (0.5, "given")


def test_first_loss_far_above_ln_c_is_flagged_with_the_logit_std_and_a_small_readout_is_not():
    for readout_std, flagged in ((5.0, True), (0.01, False)):
        model = mlp([8, 32, 10])
        with torch.no_grad():
            model[-1].weight.normal_(0, readout_std, generator=torch.Generator().manual_seed(0))
        w = initlab.watch(model, every=5)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            x, y = torch.randn(256, 8, generator=torch.Generator().manual_seed(1)), torch.arange(256) % 10
            logits = model(x)
            loss = nn.functional.cross_entropy(logits, y)
            loss.backward()
            w.step(loss)
        first = w.first_loss
        assert first["reference"] == pytest.approx(math.log(10)) and first["classes"] == 10
        assert first["loss"] == pytest.approx(float(loss))
        assert first["logit_std"] == pytest.approx(float(logits.detach().double().std()))
        assert first["flagged"] is flagged
        assert any("first loss" in str(c.message) for c in caught if c.category is WatchAlert) is flagged
        w.close()


@pytest.mark.parametrize("outputs", [10, 1])
def test_a_nan_first_loss_is_flagged_as_not_finite_with_its_first_layer_not_as_an_over_confident_readout(outputs):
    model = mlp([8, 32, 32, outputs])
    with torch.no_grad():
        model[2].weight[0, 0] = float("nan")  # the second hidden layer
    w = initlab.watch(model, every=1)
    x, y = torch.randn(64, 8, generator=torch.Generator().manual_seed(1)), torch.arange(64) % 10
    out = model(x)
    loss = nn.functional.cross_entropy(out, y) if outputs > 1 else out.mean()
    loss.backward()
    with pytest.warns(WatchAlert):
        raised = w.step(loss)
    first = w.first_loss
    assert math.isnan(first["loss"]) and first["flagged"]
    assert "not a finite number" in first["message"] and "layer '2'" in first["message"]
    assert "over-confident" not in first["message"] and "scale the last layer" not in first["message"]
    # one alert says it: the nonfinite one, at the layer where NaN first appears
    assert [(a["kind"], a["layer"]) for a in raised] == [("nonfinite", "2")]


def test_an_inf_loss_from_finite_outputs_is_put_on_the_loss_itself():
    model = mlp([8, 16, 3])
    w = initlab.watch(model, every=1)
    out = model(torch.randn(16, 8))
    loss = out.sum() * 0 + float("inf")  # finite layers, a broken loss
    loss.backward()
    with pytest.warns(WatchAlert):
        raised = w.step(loss)
    assert w.first_loss["flagged"] and "not a finite number" in w.first_loss["message"]
    assert "in the loss alone" in w.first_loss["message"] and "over-confident" not in w.first_loss["message"]
    assert [a["kind"] for a in raised] == ["nonfinite"]


def test_first_loss_uses_the_labels_entropy_when_targets_are_given():
    model = mlp([4, 8, 2])
    w = initlab.watch(model)
    y = torch.tensor([0] * 30 + [1] * 2)
    loss = nn.functional.cross_entropy(model(torch.randn(32, 4)), y)
    loss.backward()
    w.step(loss, targets=y)
    assert "entropy" in w.first_loss["basis"] and w.first_loss["reference"] < 0.3
    assert w.first_loss["flagged"]  # ln 2 is far above what the skewed labels' entropy allows


# -------------------------------------------------------------------------------------------------
# alerts: fire on the bad case, never on the good one


def _kinds(raised):
    return {a["kind"] for a in raised}


def test_a_good_model_raises_no_alert():
    model = mlp([8, 32, 32, 2])
    with warnings.catch_warnings():
        warnings.simplefilter("error", WatchAlert)  # any alert would fail here
        w = initlab.watch(model, every=2)
        raised = mlp_loop(model, 30, w, lr=0.01)
    assert raised == [] and w.alerts == [] and not w.first_loss["flagged"]


@pytest.mark.parametrize("case, kind, layer", [
    ("dead", "dead", "0"),
    ("saturated", "saturated", "0"),
    ("tiny_lr", "update_small", "0"),
    ("huge_lr", "update_large", None),
    ("exploding", "grad_growth", ""),
    ("nan", "nonfinite", "2"),
])
def test_each_alert_fires_on_its_constructed_case(case, kind, layer):
    lr, widths, act, gain, bias = 0.05, [8, 32, 32, 2], nn.ReLU, math.sqrt(2.0), 0.0
    if case == "dead":
        bias = -4.0
    elif case == "saturated":
        act, gain = nn.Tanh, 10.0
    elif case == "tiny_lr":
        lr = 1e-9
    elif case == "huge_lr":
        lr = 50.0
    elif case == "exploding":
        widths, gain = [8, 64, 64, 64, 64, 64, 2], 2 * math.sqrt(2.0)
    model = mlp(widths, act, gain, bias)
    if case == "nan":
        with torch.no_grad():
            model[2].weight[0, 0] = float("nan")
    w = initlab.watch(model, every=1)
    with pytest.warns(WatchAlert):
        raised = mlp_loop(model, 4, w, lr=lr)
    hits = [a for a in raised if a["kind"] == kind]
    assert hits and (layer is None or hits[0]["layer"] == layer), raised
    assert kind in w.record.alert_counts and any(a["kind"] == kind for a in w.alerts)
    if case == "nan":
        assert "first in the output of layer '2'" in hits[0]["message"]


def test_alerts_are_rate_limited_per_kind_and_layer(caplog):
    model = mlp([8, 32, 2], bias=-4.0)
    w = initlab.watch(model, every=1, quiet_steps=10)
    with warnings.catch_warnings(record=True) as caught, caplog.at_level("WARNING", logger="initlab.watch"):
        warnings.simplefilter("always")
        mlp_loop(model, 25, w, lr=0.0)
    # the same alerts reach Python's logging (logger "initlab.watch"), once each like the warnings
    logged = [r for r in caplog.records if r.name == "initlab.watch" and "dead" in r.getMessage()]
    assert [r.initlab_alert["step"] for r in logged] == [0, 10, 20]
    dead = [a for a in w.alerts if a["kind"] == "dead"]
    assert [a["step"] for a in dead] == [0, 10, 20]  # every step is dead, raised once per 10 steps
    assert w.record.alert_counts["dead"] == 25
    assert sum("dead" in str(c.message) for c in caught) == 3


def test_update_alerts_wait_for_patience_steps():
    model = mlp([8, 16, 2])
    w = initlab.watch(model, every=1, patience=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WatchAlert)
        mlp_loop(model, 6, w, lr=1e-9)
    steps = [a["step"] for a in w.alerts if a["kind"] == "update_small" and a["layer"] == "0"]
    assert steps == [3]


# -------------------------------------------------------------------------------------------------
# bounded memory


def test_a_record_of_100k_steps_holds_a_fixed_number_of_bytes():
    layers = [f"l{i}" for i in range(6)]
    rec = WatchRecord(layers, max_samples=500, max_histograms=50)
    size = rec.nbytes()
    assert size < 2_000_000
    values = {"values": {k: np.full(6, 0.5) for k in STATS}, "output_hist": np.full((6, 40), 0.025, np.float32),
              "grad_hist": np.full((6, 40), 0.025, np.float32)}
    tracemalloc.start()
    for step in range(10_000):
        rec.add(step, 1.0, values)
    at_10k = tracemalloc.get_traced_memory()[0]
    for step in range(10_000, 100_000):
        rec.add(step, 1.0, values)
    at_100k = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert rec.nbytes() == size and at_100k - at_10k < 50_000  # nothing grows with the steps
    steps = rec.steps
    assert len(steps) <= 500 and steps[0] == 0 and steps[-1] == 99_999
    assert np.all(np.diff(steps) > 0)
    gaps = np.diff(steps[:-1])
    assert (gaps == gaps[0]).all() and gaps[0] > 100  # evenly spaced over the whole run
    assert len(json.dumps(rec.to_dict())) < 3_000_000


def test_a_watched_loop_at_every_1_stays_within_its_bound():
    model = mlp([8, 16, 2])
    w = initlab.watch(model, every=1, max_samples=64, max_histograms=16)
    tracemalloc.start()
    mlp_loop(model, 300, w, lr=0.01)
    mid = tracemalloc.get_traced_memory()[0]
    mlp_loop(model, 300, w, lr=0.01)
    end = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(w.record.steps) <= 64 and w.record.steps[-1] == 599
    assert end - mid < 200_000


# -------------------------------------------------------------------------------------------------
# where the record goes


def _watched(steps=6, every=2, name="run"):
    model = mlp([8, 16, 16, 2])
    w = initlab.watch(model, every=every, name=name)
    mlp_loop(model, steps, w)
    w.close()
    return w


def test_to_dataframe_has_one_row_per_layer_step_and_statistic():
    w = _watched()
    df = w.to_dataframe()
    assert list(df.columns) == ["step", "layer", "kind", "statistic", "value"]
    n_layers, n_steps = len(w.layers), len(w.record.steps)
    assert len(df[df.statistic == "update_to_data"]) == n_layers * n_steps
    assert set(df.statistic) == {"loss", *[s for s in STATS if np.isfinite(w.record.stat(s)).any()]}
    row = df[(df.statistic == "preact_std") & (df.layer == "2") & (df.step == 4)]
    assert row.value.item() == pytest.approx(w.record.stat("preact_std")[2, 1])
    assert df.duplicated(["step", "layer", "statistic"]).sum() == 0


def test_save_reads_back_the_same_record_and_the_report_draws_it(tmp_path):
    w = _watched()
    path = w.save(tmp_path / "exp")
    assert path.name == "watch.json"
    doc = read_watch(tmp_path / "exp")
    assert doc["kind"] == "watch" and doc["schema_version"] == 1
    back = WatchRecord.from_dict(doc["runs"]["run"])
    for s in (*STATS, "loss"):
        np.testing.assert_array_equal(back.stat(s), w.record.stat(s))
    np.testing.assert_allclose(back.hists["grad_hist"], w.record.hists["grad_hist"], atol=1e-6)
    result = CliRunner().invoke(main, ["report", str(tmp_path / "exp")])
    assert result.exit_code == 0, result.output
    html = (tmp_path / "exp" / "report.html").read_text()
    assert "initlab watch" in html and "Layer x step heatmaps" in html and "Histograms over time" in html
    other = w.save(tmp_path / "named.json")
    assert CliRunner().invoke(main, ["report", str(other)]).exit_code == 0


def test_a_damaged_watch_file_is_one_line(tmp_path):
    w = _watched()
    path = w.save(tmp_path)
    doc = json.loads(path.read_text())
    doc["runs"]["run"]["preact_std"] = doc["runs"]["run"]["preact_std"][:-1]
    path.write_text(json.dumps(doc))
    with pytest.raises(InitlabError, match=r"runs\.run\.preact_std must be a list of 3 rows"):
        read_watch(tmp_path)


def test_the_plots_draw_one_or_several_runs():
    from initlab import plots

    a, b = _watched(name="a"), _watched(name="b")
    ax = plots.update_ratio({"a": a, "b": b})
    assert ax.get_yscale() == "log" and any(line.get_ydata()[0] == 1e-3 for line in ax.lines)
    assert len(ax.lines) == 2 * len(a.layers) + 1
    ax = plots.layer_heatmap(a, "preact_std")
    assert len(ax.get_yticklabels()) == 3  # the three Linear layers have outputs
    ax = plots.histogram_image(a.record, "0", "grad")
    assert ax.images and ax.get_ylabel() == "log10 |gradient|"
    with pytest.raises(InitlabError, match="no layer 'nope'"):
        plots.histogram_image(a, "nope")
    plots.plt.close("all")


def test_watch_demo_quick_writes_the_page_with_both_runs(tmp_path):
    result = CliRunner().invoke(main, ["watch-demo", "--quick", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    doc = read_watch(tmp_path)
    assert set(doc["runs"]) == {"bad init", "good init"}
    assert doc["runs"]["bad init"]["first_loss"]["flagged"] and not doc["runs"]["good init"]["first_loss"]["flagged"]
    assert (tmp_path / "index.html").is_file() and "bad init" in (tmp_path / "index.html").read_text()


# -------------------------------------------------------------------------------------------------
# bad input: one line naming what was wrong and what would be right


@pytest.mark.parametrize("kwargs, match", [
    ({"every": 0}, "every must be a whole number of at least 1"),
    ({"every": 2.5}, "every must be a whole number"),
    ({"optimizer": "sgd"}, "optimizer must be a torch.optim.Optimizer"),
    ({"dead": 2}, "dead is a share of units, from 0 to 1"),
    ({"update_low": 0.5, "update_high": 0.1}, "update_low .* must be below update_high"),
    ({"max_samples": 2}, "max_samples must be a whole number of at least 4"),
    ({"patience": 0}, "patience must be a whole number of at least 1"),
])
def test_bad_arguments_are_one_line(kwargs, match):
    with pytest.raises(InitlabError, match=match) as e:
        initlab.watch(mlp([4, 4, 2]), **kwargs)
    assert "\n" not in str(e.value)


def test_a_model_that_is_not_a_module_is_refused():
    with pytest.raises(InitlabError, match="watch needs a torch.nn.Module"):
        initlab.watch(lambda x: x)
    with pytest.raises(InitlabError, match="has no parameters to watch"):
        initlab.watch(nn.ReLU())


def test_a_loss_that_is_not_one_number_is_one_line():
    w = initlab.watch(mlp([4, 4, 2]))
    with pytest.raises(InitlabError, match=r"scalar loss; got a tensor of shape \(3,\) \(reduce it"):
        w.step(torch.ones(3))
    with pytest.raises(InitlabError, match="a tensor or a number; got str"):
        initlab.watch(mlp([4, 4, 2])).step("0.5")


def test_train_track_every_records_what_a_watch_on_the_same_plain_loop_records():
    import copy

    data = initlab.datasets.make("moons", n=64, seed=0)
    model = initlab.mlp(2, [8, 8], 1)
    initlab.initialize(model, "he_normal", seed=0)
    twin = copy.deepcopy(model)
    tracked = initlab.train(model, data, steps=4, lr=0.1, track_every=1).tracked
    w = initlab.watch(twin, every=1, histograms=False)
    opt = torch.optim.SGD(twin.parameters(), lr=0.1)
    for _ in range(4):
        opt.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(twin(data.X_train).reshape(-1), data.y_train)
        loss.backward()
        opt.step()
        w.step(loss)
    assert tracked["layers"] == w.layers and tracked["step"] == w.record.steps.tolist()
    for stat in (*STATS, "loss"):
        mine = np.array(tracked[stat], dtype=float)
        np.testing.assert_allclose(mine, w.record.stat(stat), rtol=1e-6, equal_nan=True, err_msg=stat)


# -------------------------------------------------------------------------------------------------
# measured as the pass goes: the same numbers as the probe that keeps every tensor, and an in-place
# activation does not overwrite what the layer computed


@pytest.mark.parametrize("kind", list(MODELS))
def test_a_watched_step_measures_what_the_probe_that_keeps_every_tensor_measures(kind):
    """The watch measures each output when it is made and lets it go; the reference keeps the whole
    pass (probe.trace) and reads it at the end with probe.output_stats: on the same weights and batch
    every pass statistic of every layer agrees."""
    from initlab.probe import output_stats, trace

    torch.manual_seed(0)
    model = MODELS[kind]()
    x, y = batches(kind, torch.Generator().manual_seed(5))
    w = watched_step(model, x, y)
    model.zero_grad(set_to_none=True)
    calls, grads = trace(model, x, lambda out: nn.functional.cross_entropy(out, y))
    layer_idx = [i for i, c in enumerate(calls) if is_weight_layer(c.module)]
    first = {}
    for i in layer_idx:
        first.setdefault(calls[i].name or ROOT, i)
    checked = 0
    for j, name in enumerate(w.layers):
        if name not in first:
            continue
        ref = output_stats(calls, grads, first[name], layer_idx)
        for k in ("preact_mean", "preact_std", "act_mean", "act_std", "dead_fraction", "saturated_fraction",
                  "grad_std"):
            got = w.record.stat(k)[0, j]
            if ref[k] is None:
                assert math.isnan(got), (name, k)
            else:
                assert got == pytest.approx(ref[k], rel=1e-5, abs=1e-9), (name, k)
            checked += 1
    assert checked == 7 * len(set(first) & set(w.layers)) >= 7 * 2


def _relu_net(inplace: bool):
    torch.manual_seed(4)
    return nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(inplace=inplace), nn.Conv2d(6, 6, 3, padding=1),
                         nn.ReLU(inplace=inplace), nn.Flatten(), nn.Linear(6 * 8 * 8, 3))


def test_an_inplace_relu_does_not_overwrite_the_layer_output_the_watch_measures():
    """nn.ReLU(inplace=True) (VGG, AlexNet) writes over the convolution's output: the pre-activation
    statistics must still be the convolution's, equal to the same model's with out-of-place ReLUs."""
    records = []
    for inplace in (False, True):
        model = _relu_net(inplace)
        x = torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(2))
        records.append(watched_step(model, x, torch.arange(16) % 3).record)
    for k in ("preact_mean", "preact_std", "act_std", "dead_fraction", "grad_std"):
        np.testing.assert_allclose(records[1].stat(k), records[0].stat(k), rtol=1e-6, err_msg=k)
    # the convolutions' outputs have negative values: their mean differs from the ReLU's
    assert (records[1].stat("preact_mean")[0, :2] < records[1].stat("act_mean")[0, :2]).all()


def test_a_functional_inplace_relu_is_found_and_measured_by_the_watch():
    """x.relu_() in the model's own forward: the watch measures the layer's output before it is
    overwritten and finds the ReLU after it (its mean and dead share), as on the out-of-place model."""
    from test_diagnose import _FunctionalInplace

    records = []
    for inplace in (False, True):
        torch.manual_seed(0)
        model = _FunctionalInplace(inplace)
        x = torch.randn(64, 32, generator=torch.Generator().manual_seed(2))
        records.append(watched_step(model, x, torch.arange(64) % 2).record)
    for k in ("preact_mean", "preact_std", "act_mean", "act_std", "dead_fraction", "grad_std"):
        np.testing.assert_allclose(records[1].stat(k), records[0].stat(k), rtol=1e-6, err_msg=k)
    assert np.isfinite(records[1].stat("dead_fraction")[0, :2]).all()


@pytest.mark.parametrize("evaluation", ["no_grad", "eval_mode"])
def test_an_evaluation_pass_between_steps_is_not_taken_for_the_training_step(evaluation):
    """The usual loop evaluates between training steps (under no_grad, or only switched to eval mode):
    the watch records the training step's pass, the same numbers as the loop without evaluations, and
    the first-loss check reads the training batch's logits."""
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 10, generator=gen), torch.arange(64) % 2
    x_val = 100 * torch.randn(32, 10, generator=gen)  # far larger: an evaluation pass taken for the step shows
    records = []
    for with_val in (False, True):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(10, 32), nn.Dropout(0.0), nn.ReLU(), nn.Linear(32, 2))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        w = initlab.watch(model, every=2, optimizer=opt)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", WatchAlert)
            for _ in range(5):
                model.train()
                opt.zero_grad()
                loss = nn.functional.cross_entropy(model(x), y)
                loss.backward()
                opt.step()
                w.step(loss)
                if with_val:
                    model.eval()
                    if evaluation == "no_grad":
                        with torch.no_grad():
                            model(x_val)
                    else:
                        model(x_val).sum()
        w.close()
        records.append(w)
    plain, validated = records
    for k in ("preact_std", "act_std", "grad_std", "dead_fraction", "update_to_data"):
        np.testing.assert_allclose(validated.record.stat(k), plain.record.stat(k), rtol=1e-6, err_msg=k)
    assert validated.first_loss["logit_std"] == pytest.approx(plain.first_loss["logit_std"])


def test_histograms_are_numpys_on_the_same_sample_with_the_ends_counting_what_lies_past_them():
    from initlab.watchstats import GRAD_EDGES, HISTOGRAM_SAMPLE, OUTPUT_EDGES, _prime_at_least, histogram

    gen = torch.Generator().manual_seed(0)
    t = 3 * torch.randn(64, 16, 32, 32, generator=gen)  # a tenth of the values beyond +-4
    t.view(-1)[::997] = 0.0
    k = _prime_at_least(-(-t.numel() // HISTOGRAM_SAMPLE))
    sample = t.reshape(-1)[::k].double().numpy()
    for log_abs, edges in ((False, OUTPUT_EDGES), (True, GRAD_EDGES)):
        v = np.log10(np.maximum(np.abs(sample), 10.0 ** edges[0])) if log_abs else sample
        ref = np.histogram(np.clip(v, edges[0], edges[-1]), bins=edges)[0]
        got = histogram(t, edges, log_abs=log_abs)
        np.testing.assert_allclose(got, ref / ref.sum(), atol=2 / len(sample))  # an edge value may fall either side
        assert got.sum() == pytest.approx(1.0) and got[0] > 0 and (log_abs or got[-1] > 0)
