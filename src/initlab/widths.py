"""Width sweeps in the style of muP's coordinate check, with a fitted slope and a verdict.

A parametrization transfers across widths when the size of every module's output does not depend on
the width, at initialization and after a few steps of training (Yang et al. 2021, "Tensor Programs
V: Tuning Large Neural Networks via Zero-Shot Hyperparameter Transfer", the coordinate check).
:func:`width_sweep` builds the model at each width, takes a few optimizer steps on one fixed batch
and records, before each step, every module's l1 = mean |output| (muP's ``get_coord_data`` records
the same number, at its step t = our step + 1). Then, per module and step, the slope of log l1
against log width with a 95% confidence interval, and a verdict: "flat in width", "grows as
width^0.5 at module X", "diverged" (NaN or inf), or "cannot tell" where a slope is steep but its
interval holds 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .checks import check_finite, does_not_fit
from .diagnose import build
from .errors import InitlabError
from .init import call
from .optimizers import get as get_optimizer
from .losses import default_loss
from .probe import Recorder, call_names, tensors

#: |slope| at or under this is flat in width (muP's flat curves fit about 0.05; standard
#: parametrization's output layer after one SGD step about 1).
FLAT = 0.2


@dataclass
class WidthSweep:
    """What :func:`width_sweep` measured: ``data`` (a DataFrame of width, module, step, seed, l1),
    ``slopes`` (module, step, slope, low, high, points, trend: one row per module and step; low and
    high the 95% confidence interval) and the ``verdict``."""

    data: "object"
    slopes: "object"
    verdict: str

    def to_dict(self) -> dict:
        return {"data": self.data.to_dict(orient="list"), "slopes": self.slopes.to_dict(orient="records"),
                "verdict": self.verdict}


def width_sweep(factory: Callable[[int], nn.Module], widths: Sequence[int], inputs, steps: int = 3, *,
                optimizer: str | Callable[[nn.Module], torch.optim.Optimizer] = "sgd", lr: float = 0.1,
                seeds: Sequence[int] = (0,), targets: torch.Tensor | None = None,
                loss: Callable | None = None, flat: float = FLAT) -> WidthSweep:
    """Every module's mean |output| at steps 0 .. steps - 1 of training, as the width grows.

    Parameters
    ----------
    factory : callable
        ``factory(width)`` returns a fresh model of that width; it draws from the global generator
        (as PyTorch's layers do), seeded with each seed in turn inside ``torch.random.fork_rng`` (the
        caller's stream is left as it was).
    widths : sequence of int
        At least 2 widths (3 or more for a confidence interval), e.g. ``[64, 128, 256, 512]``.
    inputs : Tensor
        One batch, used at every step.
    steps : int, default 3
        Forward passes recorded: step 0 at initialization, step s after s updates.
    optimizer : str or callable, default "sgd"
        A name of :data:`initlab.optimizers.OPTIMIZERS` (``torch.optim``'s, over every trainable
        parameter, at ``lr``), or ``optimizer(model)`` returning a ``torch.optim.Optimizer`` (per-layer
        learning rates, as muP prescribes).
    lr : float, default 0.1
        The learning rate of a named optimizer.
    seeds : sequence of int, default (0,)
        One run per seed and width.
    targets : Tensor, optional
        Class indices (cross-entropy) or float targets (mean squared error), by the rules of
        :func:`initlab.losses.default_loss`; None: the output dotted with a fixed random direction.
    loss : callable, optional
        ``loss(output, targets)`` in place of those.
    flat : float, default 0.2
        A module is flat in width when |slope| <= flat; a steeper slope whose interval holds 0 is
        "inconclusive" (more widths or seeds would tell).

    Returns
    -------
    WidthSweep
        The measurements, the slopes and the verdict.

    >>> import torch, initlab
    >>> sweep = initlab.width_sweep(lambda w: initlab.mlp(8, [w, w], 4, "relu"), [64, 256, 1024],
    ...                             torch.randn(16, 8, generator=torch.Generator().manual_seed(1)), steps=2,
    ...                             lr=0.5, seeds=[0, 1])  # standard parametrization: the readout moves
    >>> sweep.slopes.set_index(["module", "step"]).loc[[("out", 0), ("out", 1)], "trend"].tolist()
    ['flat', 'grows']
    """
    import pandas as pd

    widths = _widths(widths)
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise InitlabError(f"steps must be an integer >= 1; got {steps!r}.")
    seeds = list(seeds)
    if not seeds or any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in seeds):
        raise InitlabError(f"seeds must be non-negative integers, at least one; got {seeds!r}.")
    make = _optimizer(optimizer, lr)
    for name, t in tensors(inputs).items():  # a single tensor is named "output" there
        check_finite(t, "the input batch" if isinstance(inputs, torch.Tensor) else f"the input batch's {name}")
    if isinstance(targets, torch.Tensor):
        check_finite(targets, "the target batch")
    rows = []
    for seed in seeds:
        for width in widths:
            with torch.random.fork_rng(devices=[]):  # the factory and any dropout draw from the global stream
                torch.manual_seed(seed)
                model = build(lambda: factory(width))
                rows += [{"width": width, "seed": seed, **r} for r in _run(model, inputs, steps, _make(make, model),
                                                                            targets, loss, seed)]
    data = pd.DataFrame(rows, columns=["width", "module", "step", "seed", "l1"])
    slopes = fit_slopes(data, flat)
    return WidthSweep(data, slopes, verdict(slopes))


def _widths(widths) -> list[int]:
    widths = list(widths) if not isinstance(widths, (str, bytes)) else []
    if len(widths) < 2 or any(not isinstance(w, int) or isinstance(w, bool) or w < 1 for w in widths) \
            or len(set(widths)) != len(widths):
        raise InitlabError(f"widths must be at least 2 different integers >= 1, like [64, 128, 256]; got {widths!r}.")
    return sorted(widths)


def _optimizer(optimizer, lr: float) -> Callable[[nn.Module], torch.optim.Optimizer]:
    if callable(optimizer):
        return optimizer
    row = get_optimizer(optimizer)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr < math.inf:
        raise InitlabError(f"lr must be a positive number; got {lr!r}.")
    return lambda model: row.make([p for p in model.parameters() if p.requires_grad], lr=lr)


def _first_line(e: Exception) -> str:
    return f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}"


def _make(make, model: nn.Module) -> torch.optim.Optimizer:
    """The optimizer of ``model``; a user's factory that fails, or returns no optimizer, is one line."""
    try:
        opt = make(model)
    except Exception as e:  # the user's factory
        raise InitlabError(f"optimizer(model) failed ({_first_line(e)}); it should return a torch.optim.Optimizer "
                           f"over the model's parameters.") from None
    if not isinstance(opt, torch.optim.Optimizer):
        raise InitlabError(f"optimizer(model) should return a torch.optim.Optimizer; got {type(opt).__name__}.")
    return opt


def _loss(out: torch.Tensor, targets, loss, seed: int) -> torch.Tensor:
    try:
        value = loss(out, targets) if loss is not None else default_loss(out, targets, seed)
    except InitlabError:  # initlab's default loss says what did not fit, in one line
        raise
    except Exception as e:  # the user's loss, or targets that do not fit the output
        raise InitlabError(f"the loss failed on the model's output ({_first_line(e)}); give a loss(output, targets) "
                           f"that returns a scalar tensor, and targets that fit the output.") from None
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        raise InitlabError(f"the loss should be a scalar tensor; got {type(value).__name__}"
                           f"{tuple(value.shape) if isinstance(value, torch.Tensor) else ''}.")
    return value


def _run(model: nn.Module, inputs, steps: int, opt, targets, loss, seed: int) -> list[dict]:
    """``steps`` forward passes of ``model`` on ``inputs``, each followed by one update; before each
    update, the l1 of every weight layer's and activation's output (and the model's output)."""
    model.train()
    recorder = Recorder(model, gradients=False)
    rows = []
    try:
        for step in range(steps):
            recorder.start()
            try:
                out = call(model, inputs)
            except Exception as e:  # the user's model on the user's inputs: one line
                raise does_not_fit(e) from None
            recorder.stop()
            for c, name in zip(recorder.calls, call_names([c.name for c in recorder.calls])):
                rows.append({"module": name, "step": step, "l1": float(c.values.detach().abs().mean())})
            if isinstance(out, torch.Tensor) and not any(c.output is out for c in recorder.calls):
                rows.append({"module": "<output>", "step": step, "l1": float(out.detach().abs().mean())})
            value = _loss(out, targets, loss, seed)
            opt.zero_grad()
            try:
                value.backward()
                opt.step()
            except Exception as e:  # a loss with no graph to the parameters, an optimizer that fails
                raise InitlabError(f"the update after step {step} failed ({_first_line(e)}); the loss must depend "
                                   f"on the model's parameters, and the optimizer hold them.") from None
    finally:
        recorder.close()
    return rows


def fit_slopes(data, flat: float = FLAT):
    """Per module and step, the least-squares slope of log l1 on log width over every seed's point,
    its 95% confidence interval (Student's t, points - 2 degrees of freedom; NaN with 2 points) and
    its trend: "grows" (slope > flat, the interval above 0 or not known), "shrinks" (slope < -flat,
    the interval below 0 or not known), "flat" (|slope| <= flat), "inconclusive" (|slope| > flat but
    the interval holds 0: the points scatter too much to tell), "diverged" (NaN or inf l1 at some
    width), "zero" (0 at every width) or "unknown" (fewer than 2 widths with l1 > 0)."""
    import pandas as pd
    from scipy import stats

    out = []
    for (module, step), g in data.groupby(["module", "step"], sort=False):
        l1 = g["l1"].to_numpy(float)
        diverged = not np.isfinite(l1).all()
        zero = not diverged and bool((l1 == 0).all())  # a zero-initialized readout at step 0: 0 at every width
        g = g[g["l1"] > 0]
        x, y = np.log(g["width"].to_numpy(float)), np.log(g["l1"].to_numpy(float))
        if diverged or zero or len(np.unique(x)) < 2:
            out.append({"module": module, "step": int(step), "slope": math.nan, "low": math.nan, "high": math.nan,
                        "points": len(x), "trend": "diverged" if diverged else "zero" if zero else "unknown"})
            continue
        fit = stats.linregress(x, y)
        half = stats.t.ppf(0.975, len(x) - 2) * fit.stderr if len(x) > 2 else math.nan
        low, high = fit.slope - half, fit.slope + half
        holds_zero = bool(low <= 0 <= high)  # False with no interval (2 points)
        trend = ("flat" if abs(fit.slope) <= flat else "inconclusive" if holds_zero else
                 "grows" if fit.slope > 0 else "shrinks")
        out.append({"module": module, "step": int(step), "slope": float(fit.slope), "low": float(low),
                    "high": float(high), "points": len(x), "trend": trend})
    return pd.DataFrame(out, columns=["module", "step", "slope", "low", "high", "points", "trend"])


def _named(rows, limit: int = 3) -> str:
    """``"out (step 1), fc2 (step 0)"``, and how many more."""
    names = [f"{r['module']} (step {int(r['step'])})" for _, r in rows.iterrows()]
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def verdict(slopes) -> str:
    """"flat in width" only when every module and step is flat (or 0); else, first, where it diverged
    ("diverged (NaN or inf) at module out (step 2)"), or the steepest module that moves ("grows as
    width^0.98 at module out (step 1; 3 more modules move with width)"), or "cannot tell"; the
    modules whose slope cannot be told (inconclusive, unknown) are named after it."""
    diverged = slopes[slopes["trend"] == "diverged"]
    moving = slopes[slopes["trend"].isin(["grows", "shrinks"])]
    unclear = slopes[slopes["trend"].isin(["inconclusive", "unknown"])]
    tail = (f"; cannot tell at {_named(unclear)} (a steep slope whose interval holds 0, or too few widths with "
            f"l1 > 0: add widths or seeds)") if not unclear.empty else ""
    if not diverged.empty:
        return f"diverged (NaN or inf) at {_named(diverged)}" + tail
    if not moving.empty:
        worst = moving.loc[moving["slope"].abs().idxmax()]
        others = moving["module"].nunique() - 1
        more = f"; {others} more module{'s move' if others != 1 else ' moves'} with width" if others else ""
        return (f"{worst['trend']} as width^{worst['slope']:.2f} at module {worst['module']} "
                f"(step {int(worst['step'])}{more})" + tail)
    if not unclear.empty:
        return "no module clearly moves with width, but " + tail[2:]
    return "flat in width"
