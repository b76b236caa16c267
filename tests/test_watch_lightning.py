"""``initlab.lightning.WatchCallback``: a small LightningModule fitted on CPU for a few steps logs
the watch's values through the Trainer's logger, at the watched steps."""

from __future__ import annotations

import importlib
import math
import sys

import pandas as pd
import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from initlab import InitlabError
from initlab.lightning import WatchCallback
from initlab.watchstats import STATS


class Lit(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


def _data(n=64):
    gen = torch.Generator().manual_seed(0)
    ds = TensorDataset(torch.randn(n, 1, 6, 6, generator=gen), torch.randint(0, 3, (n,), generator=gen))
    return DataLoader(ds, batch_size=8)


def test_the_callback_logs_every_statistic_per_layer_at_the_watched_steps(tmp_path):
    torch.manual_seed(0)
    model, cb = Lit(), WatchCallback(every=2)
    trainer = pl.Trainer(max_steps=7, accelerator="cpu", logger=CSVLogger(tmp_path, name="lit"), callbacks=[cb],
                         enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False,
                         limit_val_batches=2, val_check_interval=4, num_sanity_val_steps=1)
    trainer.fit(model, _data(), _data(16))
    rec = cb.watch.record
    assert rec.layers == ["net.0", "net.3"] and rec.steps.tolist() == [0, 2, 4, 6]
    assert all(math.isfinite(v) for v in rec.stat("update_to_data").reshape(-1))
    metrics = pd.read_csv(next(tmp_path.rglob("metrics.csv")))
    watched = metrics.dropna(subset=["initlab/loss"])
    assert watched["step"].tolist() == [0, 2, 4, 6]
    for stat in ("preact_std", "act_std", "dead_fraction", "grad_std", "update_to_data", "grad_to_weight"):
        assert f"initlab/{stat}/net.0" in metrics.columns, stat
    assert {c.split("/")[1] for c in metrics.columns if c.startswith("initlab/") and c != "initlab/loss"} <= set(STATS)
    # the logged values are the record's
    first = watched.iloc[0]
    assert first["initlab/preact_std/net.0"] == rec.stat("preact_std")[0, 0]
    assert first["initlab/loss"] == rec.stat("loss")[0]
    # after training no probe is left on the model
    assert not cb.watch.recording and not any(h for m in model.modules() for h in m._forward_hooks.values())


def test_without_lightning_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pytorch_lightning", None)
    monkeypatch.setitem(sys.modules, "lightning", None)
    monkeypatch.delitem(sys.modules, "initlab.lightning")
    with pytest.raises(InitlabError, match=r"needs PyTorch Lightning: pip install 'initlab\[watch\]'"):
        importlib.import_module("initlab.lightning")


def test_every_must_be_a_whole_number():
    with pytest.raises(InitlabError, match="every must be a whole number of at least 1"):
        WatchCallback(every=0)
