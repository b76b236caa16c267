"""``initlab.watch(model, tensorboard=logdir)``: the event files, read back with tbparse, hold the
record's values: one scalar tag ``<statistic>/<layer>`` per value (TensorBoard groups them by
statistic), the loss, and histograms of the record's fixed bins."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch
from tbparse import SummaryReader
from torch import nn

import initlab
from initlab import InitlabError
from initlab.watchstats import GRAD_EDGES, OUTPUT_EDGES, STATS


def _run(logdir, steps=5, every=2):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(1)
    with initlab.watch(model, every=every, optimizer=opt, tensorboard=logdir) as w:
        for _ in range(steps):
            x, y = torch.randn(32, 6, generator=gen), torch.randint(0, 3, (32,), generator=gen)
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            w.step(loss)
    return w


def test_the_scalars_read_back_equal_the_record(tmp_path):
    w = _run(tmp_path / "tb")
    df = SummaryReader(str(tmp_path / "tb")).scalars
    rec = w.record
    got = {(t, int(s)): v for t, s, v in zip(df["tag"], df["step"], df["value"])}
    expected = {}
    for stat in STATS:
        values = rec.stat(stat)
        for i, step in enumerate(rec.steps):
            for j, layer in enumerate(rec.layers):
                if math.isfinite(values[i, j]):
                    expected[(f"{stat}/{layer}", int(step))] = values[i, j]
    expected.update({("loss", int(s)): v for s, v in zip(rec.steps, rec.stat("loss"))})
    assert set(got) == set(expected)
    for key, v in expected.items():
        assert got[key] == pytest.approx(v, rel=1e-6, abs=1e-12), key
    # one group per statistic, one tag per layer in it
    groups = {t.split("/")[0] for t in df["tag"] if "/" in t}
    assert groups == {s for s in STATS if np.isfinite(rec.stat(s)).any()}
    assert {t.split("/", 1)[1] for t in df["tag"] if t.startswith("preact_std/")} == {"0", "2", "4"}


def test_the_histograms_read_back_equal_the_record(tmp_path):
    w = _run(tmp_path / "tb")
    df = SummaryReader(str(tmp_path / "tb"), pivot=False).histograms
    rec = w.record
    assert set(df["tag"]) == {f"{k}/{layer}" for k in ("output_hist", "grad_log10_hist") for layer in ("0", "2", "4")}
    for _, row in df.iterrows():
        kind, layer = row["tag"].split("/")
        key, edges = ("output_hist", OUTPUT_EDGES) if kind == "output_hist" else ("grad_hist", GRAD_EDGES)
        i = list(rec.hists.steps()).index(int(row["step"]))
        j = rec.layers.index(layer)
        np.testing.assert_allclose(np.asarray(row["counts"], dtype=float), rec.hists[key][i, j], atol=1e-6)
        np.testing.assert_allclose(np.asarray(row["limits"], dtype=float), edges[1:], atol=1e-9)


def test_the_custom_scalars_layout_has_one_chart_per_statistic(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.custom_scalar import layout_pb2, metadata

    _run(tmp_path / "tb", steps=1)
    acc = EventAccumulator(str(tmp_path / "tb"), size_guidance={"tensors": 0})
    acc.Reload()
    raw = acc.Tensors(metadata.CONFIG_SUMMARY_TAG)[0].tensor_proto.string_val[0]
    layout = layout_pb2.Layout.FromString(raw)
    charts = {c.title: list(c.multiline.tag) for cat in layout.category for c in cat.chart}
    assert set(charts) == set(STATS) and charts["update_to_data"] == ["^update_to_data/"]


def test_without_tensorboard_installed_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(InitlabError, match=r"pip install 'initlab\[watch\]'"):
        initlab.watch(nn.Linear(2, 2), tensorboard="runs/x")
