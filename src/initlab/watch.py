"""``initlab.watch``: the first steps of any model in any training loop, two lines added to it.

::

    w = initlab.watch(model, every=10, optimizer=opt)
    for x, y in batches:
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        w.step(loss)                # after the optimizer's step
    w.save("runs/exp1")             # then: initlab report runs/exp1

or ``with initlab.watch(model, optimizer=opt) as w:`` around the loop. Every ``every`` steps it
records per layer what :mod:`initlab.watchstats` lists (output and post-activation mean and std,
dead and saturated shares, gradient std, weight std, gradient-to-weight and update-to-data ratios,
fixed-bin histograms), checks the first loss against chance, and raises rate-limited alerts
(:class:`WatchAlert` warnings, kept in the record too). Between watched steps no hook is on the
model. ``tensorboard="runs/exp1"`` also writes every value through TensorBoard's ``SummaryWriter``.
"""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import InitlabError
from .probe import first_tensor
from .watchstats import STATS, StepProbe, WatchRecord


#: Alerts also go to this logger (at WARNING), silent unless the application configures logging: a
#: library adds no handler of its own but the null one.
LOGGER = logging.getLogger("initlab.watch")
LOGGER.addHandler(logging.NullHandler())


class WatchAlert(UserWarning):
    """A warning :class:`Watch` raises while training: a layer whose updates are too small or too
    large, dead or saturated units, NaN or inf, gradients growing across layers, a first loss far
    above chance."""


def _positive(name: str, value, integer: bool = False, what: str = "") -> None:
    ok = (isinstance(value, int) if integer else isinstance(value, (int, float))) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value <= 0:
        kind = "a whole number of at least 1" if integer else "a finite number above 0"
        raise InitlabError(f"{name} must be {kind}{what}; got {value!r}.")


class Watch:
    """A watch on ``model``'s training: call :meth:`step` once per training step, after the
    optimizer's step. Made by :func:`watch`, whose parameters it takes.

    Attributes
    ----------
    record : WatchRecord
        What was measured, bounded in memory (:meth:`WatchRecord.nbytes`).
    layers : list of str
        Every layer with parameters, in module order (the model itself is ``"(model)"``).
    step_count : int
        The steps made so far.
    """

    def __init__(self, model: nn.Module, every: int = 10, optimizer: torch.optim.Optimizer | None = None, *,
                 tensorboard: str | Path | None = None, name: str = "run", max_samples: int = 2000,
                 max_histograms: int = 200, histograms: bool = True, expected_loss: float | None = None,
                 update_low: float = 1e-5, update_high: float = 1e-1, dead: float = 0.5, saturated: float = 0.5,
                 grad_growth: float = 10.0, patience: int = 3, first_loss_tolerance: float = 0.25,
                 quiet_steps: int = 1000, auto_begin: bool = True):
        if not isinstance(model, nn.Module):
            raise InitlabError(f"watch needs a torch.nn.Module as model; got {type(model).__name__}.")
        _positive("every", every, integer=True, what=" (record every k-th step; 1 records them all)")
        if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
            raise InitlabError(f"optimizer must be a torch.optim.Optimizer (the one whose step() updates the model) "
                               f"or None; got {type(optimizer).__name__}.")
        for key, value in (("update_low", update_low), ("update_high", update_high), ("grad_growth", grad_growth),
                           ("first_loss_tolerance", first_loss_tolerance)):
            _positive(key, value)
        if update_low >= update_high:
            raise InitlabError(f"update_low ({update_low:g}) must be below update_high ({update_high:g}).")
        for key, value in (("dead", dead), ("saturated", saturated)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
                raise InitlabError(f"{key} is a share of units, from 0 to 1; got {value!r}.")
        for key, value in (("patience", patience), ("quiet_steps", quiet_steps), ("max_histograms", max_histograms)):
            _positive(key, value, integer=True)
        if expected_loss is not None:
            _positive("expected_loss", expected_loss)
        self.model, self.every, self.optimizer, self.name = model, every, optimizer, str(name)
        self.limits = {"update_low": update_low, "update_high": update_high, "dead": dead, "saturated": saturated,
                       "grad_growth": grad_growth, "patience": patience, "first_loss_tolerance": first_loss_tolerance,
                       "quiet_steps": quiet_steps}
        self.expected_loss = expected_loss
        self.probe = StepProbe(model, histograms=histograms)
        self.layers = self.probe.layers
        self.record = WatchRecord(self.layers, self.probe.kinds, every, max_samples, max_histograms, histograms)
        self.step_count = 0
        self._armed = False
        self._auto = auto_begin
        self._streaks: dict[tuple[str, str], int] = {}
        self._last_warned: dict[tuple[str, str], int] = {}
        self._logits: torch.Tensor | None = None
        self._logit_hook = model.register_forward_hook(self._catch_logits)
        self._handles = []
        if optimizer is not None:
            self._handles += [optimizer.register_step_pre_hook(self._before_update),
                              optimizer.register_step_post_hook(self._after_update)]
        self._tb = _TensorBoard(tensorboard, self.layers) if tensorboard is not None else None
        if auto_begin:
            self.begin_step()

    # -- the loop ------------------------------------------------------------------------------

    def due(self, step: int) -> bool:
        """Whether step ``step`` (0 is the first) is recorded: every ``every``-th, from step 0."""
        return step % self.every == 0

    def begin_step(self) -> None:
        """Put the probe on the model when this step is due. A plain loop never calls it (:meth:`step`
        begins the next step); the Lightning callback does, so that validation passes between
        training steps are not recorded."""
        if not self._armed and self.due(self.step_count):
            self.probe.begin(snapshot=self.optimizer is None)
            self._armed = True

    @property
    def recording(self) -> bool:
        """Whether the current step is being measured (the probe is on the model)."""
        return self._armed

    def step(self, loss=None, targets: torch.Tensor | None = None) -> list[dict]:
        """End one training step; call it after the optimizer's step. On a watched step, measure it.

        Parameters
        ----------
        loss : torch.Tensor or float, optional
            The step's loss (kept in the record; at step 0 checked against chance).
        targets : torch.Tensor, optional
            The step's labels: at step 0 the uninformed loss is their entropy instead of ln C.

        Returns
        -------
        list of dict
            The alerts raised at this step (each also a :class:`WatchAlert` warning).
        """
        raised: list[dict] = []
        if self._armed:
            self._armed = False
            step = self.step_count
            value = _loss_value(loss)
            measured = self.probe.measure()
            self.record.add(step, value, measured)
            if step == 0:
                raised += self._first_loss(value, targets, measured.get("nonfinite"))
            raised += self._alerts(step, value, measured)
            if self._tb is not None:
                self._tb.write(step, value, measured)
        elif self.step_count == 0:
            self._logit_hook.remove()
        self.step_count += 1
        if self._auto:
            self.begin_step()
        return raised

    def close(self) -> None:
        """Take every hook off the model and the optimizer and close the TensorBoard writer."""
        for h in (*self._handles, self._logit_hook):
            h.remove()
        self._handles = []
        self.probe.close()
        self._armed = False
        if self._tb is not None:
            self._tb.close()

    def __enter__(self) -> "Watch":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- what it found ---------------------------------------------------------------------------

    @property
    def alerts(self) -> list[dict]:
        return self.record.alerts

    @property
    def first_loss(self) -> dict | None:
        return self.record.first_loss

    def to_dict(self) -> dict:
        return {**self.record.to_dict(), "limits": self.limits}

    def to_dataframe(self):
        """The record in long form (pandas): one row per layer x step x statistic
        (:meth:`WatchRecord.to_dataframe`)."""
        return self.record.to_dataframe()

    def save(self, path: str | Path, command: str = "") -> Path:
        """Write the record as ``watch.json`` in the folder ``path`` (or to ``path`` itself when it ends in
        ``.json``); ``initlab report path`` draws its page. Returns the file written."""
        from .outputs import write_watch

        return write_watch(path, {self.name: self.to_dict()}, command)

    def __repr__(self) -> str:
        return (f"Watch({len(self.layers)} layers, every {self.every}, {self.step_count} steps, "
                f"{len(self.record.steps)} kept, {sum(self.record.alert_counts.values())} alerts)")

    # -- checks ----------------------------------------------------------------------------------

    def _before_update(self, optimizer, args, kwargs) -> None:
        if self._armed:
            self.probe.snapshot()

    def _after_update(self, optimizer, args, kwargs) -> None:
        if self._armed:
            self.probe.update_ratios()

    def _catch_logits(self, module, args, out) -> None:
        """Step 0's model output (the logits), for the first-loss check."""
        if self._logits is None and self.probe.recorder.accept():  # not an evaluation pass
            t = first_tensor(out)
            self._logits = None if t is None else t.detach()

    def _first_loss(self, loss: float | None, targets, nonfinite: dict | None = None) -> list[dict]:
        """Step 0's loss beside an uninformed model's (ln C, the labels' entropy, or ``expected_loss``).
        A loss that is NaN or inf is flagged as such, with where NaN or inf first appear
        (``nonfinite``, from the probe): no scale of the readout explains it, and its alert is the
        ``nonfinite`` one that :meth:`_alerts` raises, not a second one here."""
        logits, self._logits = self._logits, None
        self._logit_hook.remove()
        classes = int(logits.shape[-1]) if logits is not None and logits.dim() >= 2 else 1
        reference, basis = chance_loss(classes, targets, self.expected_loss)
        logit_std = None if logits is None or logits.numel() < 2 else float(logits.double().std())
        check = {"loss": loss, "reference": reference, "basis": basis, "classes": classes, "logit_std": logit_std,
                 "flagged": False, "message": ""}
        if loss is not None and not math.isfinite(loss):
            where = (f"first in the {nonfinite['where']} of layer '{nonfinite['layer']}'" if nonfinite else
                     "in the loss alone: no layer's output or gradient has one (look at the loss function "
                     "and the targets)")
            check["flagged"] = True
            check["message"] = (f"the first loss is {loss}, not a finite number: NaN or inf {where} (see the "
                                f"nonfinite alert); it says nothing about the readout's scale")
            self.record.first_loss = check
            return []  # the nonfinite alert, raised by _alerts at this step, says it once
        if loss is None or reference is None:
            check["message"] = ("no first-loss check: " + ("no loss was given to step()" if loss is None else
                                "pass targets= to step() or expected_loss= to watch() to set what chance gives"))
            self.record.first_loss = check
            return []
        tol = self.limits["first_loss_tolerance"]
        check["flagged"] = bool(loss > reference * (1 + tol))
        std = "n/a" if logit_std is None else f"{logit_std:.3g}"
        if check["flagged"]:
            check["message"] = (f"the first loss {loss:.4g} is far above chance's {reference:.4g} ({basis}), with "
                                f"logit std {std}: the readout starts over-confident; scale the last layer's "
                                f"weights down (or zero them) so the first loss is near {reference:.4g}")
        else:
            check["message"] = f"the first loss {loss:.4g} is near chance's {reference:.4g} ({basis}); logit std {std}"
        self.record.first_loss = check
        if check["flagged"]:
            return self._raise(0, "first_loss", "", loss, check["message"])
        return []

    def _alerts(self, step: int, loss: float | None, measured: dict) -> list[dict]:
        v, lim, out = measured["values"], self.limits, []
        bad = measured.get("nonfinite")
        if bad is not None or (loss is not None and not math.isfinite(loss)):
            where = (f"first in the {bad['where']} of layer '{bad['layer']}'" if bad else "in the loss")
            out += self._raise(step, "nonfinite", bad["layer"] if bad else "", None, f"NaN or inf {where}")
        for j, layer in enumerate(self.layers):
            u = v["update_to_data"][j]
            trained = math.isfinite(v["weight_grad_std"][j])
            for kind, hit, text in (("update_small", trained and math.isfinite(u) and u < lim["update_low"],
                                     f"update-to-data ratio {u:.2g} below {lim['update_low']:g}: this layer barely "
                                     f"moves (raise its learning rate or its gradient)"),
                                    ("update_large", trained and math.isfinite(u) and u > lim["update_high"],
                                     f"update-to-data ratio {u:.2g} above {lim['update_high']:g}: each step "
                                     f"rewrites this layer (lower the learning rate)")):
                key = (kind, layer)
                self._streaks[key] = self._streaks.get(key, 0) + 1 if hit else 0
                if self._streaks[key] >= lim["patience"]:
                    out += self._raise(step, kind, layer, u, f"{text}, {lim['patience']} recorded steps running")
            d, s = v["dead_fraction"][j], v["saturated_fraction"][j]
            if math.isfinite(d) and d > lim["dead"]:
                out += self._raise(step, "dead", layer, d, f"{d:.0%} of its units are dead (0 on every sample)")
            if math.isfinite(s) and s > lim["saturated"]:
                out += self._raise(step, "saturated", layer, s, f"{s:.0%} of its activations are saturated")
        g = [v["grad_std"][j] for j in measured.get("order", [])]
        g = [x for x in g if math.isfinite(x) and x > 0]
        if len(g) >= 2 and g[0] / g[-1] > lim["grad_growth"]:
            out += self._raise(step, "grad_growth", "", g[0] / g[-1],
                               f"the gradient grows {g[0] / g[-1]:.3g}x from the last layer back to the first "
                               f"(more than {lim['grad_growth']:g}x): exploding gradients")
        return out

    def _raise(self, step: int, kind: str, layer: str, value, message: str) -> list[dict]:
        """Keep and warn an alert, at most once per ``quiet_steps`` steps for one kind and layer."""
        key = (kind, layer)
        last = self._last_warned.get(key)
        if last is not None and step - last < self.limits["quiet_steps"]:
            self.record.alert_counts[kind] = self.record.alert_counts.get(kind, 0) + 1
            return []
        self._last_warned[key] = step
        text = f"initlab.watch step {step}: " + (f"layer '{layer}': " if layer else "") + message
        alert = {"step": step, "kind": kind, "layer": layer,
                 "value": None if value is None or not math.isfinite(value) else float(value), "message": text}
        self.record.add_alert(alert)
        warnings.warn(text, WatchAlert, stacklevel=4)
        LOGGER.warning(text, extra={"initlab_alert": alert})
        return [alert]


def _loss_value(loss) -> float | None:
    if loss is None:
        return None
    if isinstance(loss, torch.Tensor):
        if loss.numel() != 1:
            raise InitlabError(f"step(loss) takes the step's scalar loss; got a tensor of shape {tuple(loss.shape)} "
                               f"(reduce it, e.g. loss.mean()).")
        return float(loss.detach())
    if isinstance(loss, (int, float)) and not isinstance(loss, bool):
        return float(loss)
    raise InitlabError(f"step(loss) takes the step's loss as a tensor or a number; got {type(loss).__name__}.")


def chance_loss(classes: int, targets: torch.Tensor | None = None,
                expected: float | None = None) -> tuple[float | None, str]:
    """What an uninformed model's cross-entropy is, and on what basis: ``expected`` when given; the
    entropy of ``targets`` (class indices, or 0/1 labels for one logit); else ln C for C >= 2 classes.
    ``(None, "")`` when it cannot be told (one output and no targets)."""
    if expected is not None:
        return float(expected), "given"
    if targets is not None:
        t = targets.detach().reshape(-1)
        if t.is_floating_point() and classes == 1:
            p = float(t.double().mean())
            h = 0.0 if p in (0.0, 1.0) else -(p * math.log(p) + (1 - p) * math.log(1 - p))
            return h, "the labels' entropy"
        if not t.is_floating_point():
            counts = torch.bincount(t.long().clamp_min(0)).double()
            p = counts[counts > 0] / counts.sum()
            return float(-(p * p.log()).sum()), "the labels' entropy"
    if classes >= 2:
        return math.log(classes), f"ln {classes}"
    return None, ""


def watch(model: nn.Module, every: int = 10, optimizer: torch.optim.Optimizer | None = None, **options) -> Watch:
    """Watch ``model`` train in your own loop: call ``.step(loss)`` after each optimizer step.

    Parameters
    ----------
    model : nn.Module
        Any model: CNNs, RNNs, transformers (every layer with parameters gets a row).
    every : int, default 10
        Record every ``every``-th step, from step 0; between them no hook is on the model.
    optimizer : torch.optim.Optimizer, optional
        With it, the parameters are copied just before its ``step()`` and compared just after it
        (the update-to-data ratio is then exactly that update); without it, they are copied when the
        step begins and compared when :meth:`Watch.step` is called.
    tensorboard : str or Path, optional
        A log directory: every statistic is also written as ``<statistic>/<layer>`` scalars (one
        chart per statistic in the Custom Scalars dashboard, one section per statistic in Scalars)
        and ``output_hist/<layer>``, ``grad_log10_hist/<layer>`` histograms. Needs ``tensorboard``.
    name : str, default "run"
        The run's name in the saved record and on the page.
    max_samples : int, default 2000
        Samples kept per series; older ones are thinned evenly past it (memory stays fixed).
    max_histograms : int, default 200
        Histogram samples kept, thinned the same way.
    histograms : bool, default True
    expected_loss : float, optional
        The loss an uninformed model gets, when it is not ln C or the labels' entropy.
    update_low, update_high : float, default 1e-5, 1e-1
        Alert when a layer's update-to-data ratio stays below / above these for ``patience`` steps.
    dead, saturated : float, default 0.5
        Alert when the share of dead units / saturated values of a layer is above these.
    grad_growth : float, default 10
        Alert when the gradient's std at the first layer is more than this times the last layer's.
    patience : int, default 3
        Recorded steps in a row before an update-ratio alert.
    first_loss_tolerance : float, default 0.25
        Alert when the first loss is more than (1 + this) times chance's.
    quiet_steps : int, default 1000
        The same alert (kind and layer) is raised again only this many steps later.
    auto_begin : bool, default True
        False: steps are begun by :meth:`Watch.begin_step` (the Lightning callback).

    Returns
    -------
    Watch
        Also a context manager: its hooks come off the model on exit.

    Examples
    --------
    >>> w = initlab.watch(model, every=10, optimizer=opt)   # doctest: +SKIP
    >>> ...; opt.step(); w.step(loss)                        # doctest: +SKIP
    """
    return Watch(model, every, optimizer, **options)


class _TensorBoard:
    """The watch's values through TensorBoard's ``SummaryWriter``: scalars ``<statistic>/<layer>``
    and ``loss``, a Custom Scalars layout with one multi-line chart per statistic, and histograms of
    the record's fixed bins."""

    def __init__(self, logdir, layers: list[str]):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise InitlabError("tensorboard= needs the tensorboard package: pip install 'initlab[watch]' "
                               "(or pip install tensorboard).") from None
        self.layers = layers
        self.writer = SummaryWriter(str(logdir))
        self.writer.add_custom_scalars({"initlab watch": {s: ["Multiline", [f"^{s}/"]] for s in STATS}})

    def write(self, step: int, loss: float | None, measured: dict) -> None:
        from .watchstats import GRAD_EDGES, OUTPUT_EDGES

        w = self.writer
        if loss is not None and math.isfinite(loss):
            w.add_scalar("loss", loss, step)
        for stat, values in measured["values"].items():
            for layer, v in zip(self.layers, values):
                if math.isfinite(v):
                    w.add_scalar(f"{stat}/{layer}", float(v), step)
        for key, tag, edges in (("output_hist", "output_hist", OUTPUT_EDGES), ("grad_hist", "grad_log10_hist", GRAD_EDGES)):
            hist = measured.get(key)
            if hist is None:
                continue
            for layer, counts in zip(self.layers, hist):
                if np.isfinite(counts).all() and counts.sum() > 0:
                    centers = (edges[:-1] + edges[1:]) / 2
                    nz = np.nonzero(counts)[0]
                    w.add_histogram_raw(f"{tag}/{layer}", min=float(edges[nz[0]]), max=float(edges[nz[-1] + 1]),
                                        num=float(counts.sum()), sum=float((counts * centers).sum()),
                                        sum_squares=float((counts * centers ** 2).sum()),
                                        bucket_limits=edges[1:].tolist(), bucket_counts=counts.tolist(), global_step=step)
        w.flush()

    def close(self) -> None:
        self.writer.close()
