"""``Stepper``: the playground's handle on :class:`initlab.train.Trainer`, the one training loop, made
a few steps at a time, with the one per-layer probe (:class:`initlab.probe.Recorder`, through
:class:`initlab.watchstats.StepProbe`) watching the last step of each chunk and keeping what it
measures in the record :func:`initlab.watch` and ``train(track_every=)`` keep
(:class:`initlab.watchstats.WatchRecord`): the playground's run, a user's loop and initlab's own
training leave records of one format.

``Stepper(...).step(k)`` leaves the model exactly where ``train(..., steps=k)`` leaves it, because
both run the same trainer; ``tests/test_playground.py`` checks that bit for bit.
"""

from __future__ import annotations

import math

from torch import nn

from ..datasets import Dataset
from ..train import Trainer
from ..watchstats import StepProbe, WatchRecord

#: Samples the playground's record keeps per series (a run of MAX_STEPS is thinned evenly to this).
RECORD_SAMPLES = 500


class Stepper:
    """Train ``model`` on ``data`` a chunk of steps at a time; arguments are :func:`initlab.train`'s.

    ``step_count`` counts the updates made; ``diverged_step`` is set (and stepping stops) when the loss
    or a parameter becomes NaN or inf. After each chunk, :meth:`layer_stats` gives per weight layer
    the std of its output on the last batch and of the loss's gradient with respect to it (as
    :func:`initlab.diagnose` measures them at step 0).
    """

    def __init__(self, model: nn.Module, data: Dataset, *, lr: float = 0.1, optimizer: str = "sgd",
                 batch_size: int | None = None, seed: int = 0, weight_decay: float | None = None):
        self.trainer = Trainer(model, data, lr=lr, optimizer=optimizer, batch_size=batch_size, seed=seed,
                               weight_decay=weight_decay, caller="the playground")
        self.probe = StepProbe(model, histograms=False)
        self.record = WatchRecord(self.probe.layers, self.probe.kinds, every=1, max_samples=RECORD_SAMPLES,
                                  histograms=False)
        self._stats: dict | None = None

    @property
    def step_count(self) -> int:
        return self.trainer.step_count

    @property
    def diverged_step(self) -> int | None:
        return self.trainer.diverged_step

    @property
    def diverged(self) -> bool:
        return self.trainer.diverged

    def step(self, count: int = 1, measure_last: bool = True) -> int:
        """Make up to ``count`` updates (fewer if the model diverges); return how many were made.
        With ``measure_last``, the probe records the last update's forward and backward pass."""
        made = 0
        for i in range(count):
            if self.diverged:
                break
            watch = measure_last and i == count - 1
            if watch:
                self.probe.begin()
            step = self.trainer.step_count
            self.trainer.step(self.probe.recorder if watch else None)
            made += 1
            if watch:
                measured = self.probe.measure()
                self.record.add(step, float(self.trainer.last_loss), measured)
                self._stats = self._layer_rows(measured)
        return made

    def evaluate(self) -> dict[str, float]:
        """Train and test loss and accuracy now (NaN or inf losses for a diverged model)."""
        return self.trainer.evaluate()

    def _layer_rows(self, measured: dict) -> dict[str, list]:
        """The weight layers' rows of one measurement (``measured["order"]``: the layers called, in
        forward order), NaN as None."""
        rows = measured["order"]
        values = measured["values"]

        def column(key):
            return [None if math.isnan(v := float(values[key][j])) else v for j in rows]

        return {"names": [self.probe.layers[j] for j in rows], "preact_std": column("preact_std"),
                "grad_std": column("grad_std")}

    def layer_stats(self) -> dict[str, list]:
        """Per weight layer (forward order): ``names``, ``preact_std`` (std of the layer's output in the
        last measured step) and ``grad_std`` (std of the loss's gradient with respect to that output),
        named as :func:`initlab.diagnose` names them."""
        stats = self._stats or {"names": [], "preact_std": [], "grad_std": []}
        return {k: stats[k] for k in ("names", "preact_std", "grad_std")}

    def close(self) -> None:
        self.probe.close()
