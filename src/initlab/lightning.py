"""``WatchCallback``: :func:`initlab.watch` for a PyTorch Lightning ``Trainer``.

::

    from initlab.lightning import WatchCallback

    cb = WatchCallback(every=10)
    pl.Trainer(callbacks=[cb]).fit(model, data)
    cb.watch.save("runs/exp1")          # then: initlab report runs/exp1

Every watched step's values go to the Trainer's loggers as ``initlab/<statistic>/<layer>`` (and
``initlab/loss``), at the watch's step number. It works with ``pytorch_lightning`` (preferred when
both are installed) or ``lightning``; installing the ``watch`` extra gets it
(``pip install 'initlab[watch]'``).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Mapping

from .errors import InitlabError
from .watch import Watch


def _lightning():
    for name in ("pytorch_lightning", "lightning.pytorch"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise InitlabError("initlab.lightning needs PyTorch Lightning: pip install 'initlab[watch]' "
                       "(or pip install pytorch-lightning).")


_pl = _lightning()


class WatchCallback(_pl.Callback):
    """A :class:`~initlab.watch.Watch` on the LightningModule, begun with training.

    Parameters
    ----------
    every : int, default 10
        Record every ``every``-th training batch, from the first.
    log : bool, default True
        Send each watched step's values to the Trainer's loggers.
    **options
        Any other parameter of :func:`initlab.watch` (``tensorboard``, ``max_samples``, thresholds).

    Attributes
    ----------
    watch : Watch or None
        The watch (from the start of training; its record stays after the end).
    """

    def __init__(self, every: int = 10, log: bool = True, **options):
        super().__init__()
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise InitlabError(f"every must be a whole number of at least 1 (record every k-th batch); got {every!r}.")
        self.every, self.log, self.options = every, log, options
        self.watch: Watch | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        optimizers = list(trainer.optimizers)
        self.watch = Watch(pl_module, self.every, optimizers[0] if len(optimizers) == 1 else None,
                           auto_begin=False, **self.options)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.watch is not None:
            self.watch.begin_step()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.watch is None:
            return
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        step, recorded = self.watch.step_count, self.watch.recording
        self.watch.step(loss)
        if self.log and recorded:
            metrics = self.metrics(-1)
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=step)

    def metrics(self, index: int = -1) -> dict[str, float]:
        """The record's sample ``index`` as logger metrics: ``initlab/<statistic>/<layer>`` and
        ``initlab/loss`` (values that were not measured are left out)."""
        from .watchstats import STATS

        record = self.watch.record
        out = {}
        loss = record.stat("loss")[index]
        if math.isfinite(loss):
            out["initlab/loss"] = float(loss)
        for stat in STATS:
            for layer, v in zip(record.layers, record.stat(stat)[index]):
                if math.isfinite(v):
                    out[f"initlab/{stat}/{layer}"] = float(v)
        return out

    def on_train_end(self, trainer, pl_module) -> None:
        if self.watch is not None:
            self.watch.close()
