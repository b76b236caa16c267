"""What one watched training step measures, per layer, and the bounded record that keeps it.

:class:`StepProbe` measures a step through the one per-layer probe (:class:`initlab.probe.Recorder`
and :func:`initlab.probe.output_stats`); :class:`WatchRecord` keeps the measurements with at most a
fixed number of samples per series. :func:`initlab.watch` (a user's loop), :func:`initlab.train`'s
``track_every`` and the Lightning callback all record through these two, so every record has the
same layout: ``{"layers", "step", "loss", <statistic>: [[one value per layer] per step], ...}``.

The statistics (:data:`STATS`), per layer:

==================  =================================================================================
``preact_mean``     mean of the layer's output
``preact_std``      std of the layer's output
``act_mean``        mean after the activation that follows it (None when none does)
``act_std``         std after that activation (the output's when none follows)
``dead_fraction``   share of units 0 or below on every sample of the batch (ReLU-like activations)
``saturated_fraction``  share of values in the saturated range (tanh, sigmoid)
``grad_std``        std of the loss's gradient with respect to the layer's output
``weight_std``      std of the layer's weights
``weight_grad_std`` std of the gradient of the parameters holding them
``weight_grad_norm`` norm of that gradient
``grad_to_weight``  ``weight_grad_std / std(weights)``
``update_to_data``  std of the step's actual change of those parameters over their std before it
==================  =================================================================================

A layer is every weight layer initlab knows (:func:`initlab.layers.is_weight_layer`) and every other
module that holds parameters of its own (a norm, an embedding table, a model's own position table):
every parameter's module has a row. A module that is not a weight layer has only the parameter
statistics. Histograms (fixed bins, the same at every step: :data:`OUTPUT_EDGES` over the layer's
output, :data:`GRAD_EDGES` over log10 of the magnitude of the gradient reaching it) are kept in a
series of their own, with its own bound.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from . import layers as L
from .errors import InitlabError
from .probe import Call, Recorder, activation_stats, std_mean

STATS = ("preact_mean", "preact_std", "act_mean", "act_std", "dead_fraction", "saturated_fraction", "grad_std",
         "weight_std", "weight_grad_std", "weight_grad_norm", "grad_to_weight", "update_to_data")
#: The statistics measured from the forward and backward pass (the rest from the parameters).
PASS_STATS = STATS[:7]
#: Histogram bins: the layer's output over [-4, 4] (values beyond count in the end bins) ...
OUTPUT_EDGES = np.linspace(-4.0, 4.0, 41)
#: ... and log10 |gradient| over [-12, 0] (zeros and smaller values count in the first bin).
GRAD_EDGES = np.linspace(-12.0, 0.0, 41)
ROOT = "(model)"


def layers_of(model: nn.Module) -> list[tuple[str, nn.Module, list[torch.Tensor]]]:
    """``(name, module, parameters)`` of every layer :class:`StepProbe` measures, in module order:
    the weight layers with their weight matrices (every parameter of their own but the biases: an
    LSTM's input and recurrent weights, an attention's in-projection; the parameters holding a
    parametrized weight), and every other module with parameters of its own with all of those.
    Every parameter's module is one of them."""
    out = []
    for name, m in model.named_modules():
        own = list(m.parameters(recurse=False))
        if L.is_weight_layer(m):
            weights = [p for n, p in m.named_parameters(recurse=False) if "bias" not in n]
            out.append((name or ROOT, m, weights or L.weight_params(m) or own))
        elif own:
            out.append((name or ROOT, m, own))
    return out


def _std(t: torch.Tensor | None) -> float:
    std = std_mean(t)[0]
    return math.nan if std is None else std


def _flat(tensors) -> torch.Tensor | None:
    """The tensors as one flat float32 (or float64) tensor: a copy, never a view of a parameter."""
    tensors = [t.detach().reshape(-1) for t in tensors if t is not None]
    if not tensors:
        return None
    flat = torch.cat(tensors)
    return flat if flat.dtype in (torch.float32, torch.float64) else flat.float()


def param_stats(params: list[torch.Tensor]) -> dict[str, float]:
    """``weight_std``, ``weight_grad_std``, ``weight_grad_norm`` and ``grad_to_weight`` of ``params``
    taken together (NaN where there is no gradient)."""
    held = _flat(params)
    grad = _flat([p.grad for p in params])
    wstd, gstd = _std(held), _std(grad)
    return {"weight_std": wstd, "weight_grad_std": gstd,
            "weight_grad_norm": math.nan if grad is None else float(grad.norm()),
            "grad_to_weight": gstd / wstd if wstd > 0 else math.nan}


#: Values a histogram is drawn from, at most: an evenly strided sample of a larger tensor.
HISTOGRAM_SAMPLE = 1 << 13


def histogram(t: torch.Tensor, edges: np.ndarray, log_abs: bool = False) -> np.ndarray:
    """The share of ``t``'s finite values in each bin of ``edges`` (fixed, equal bins); values past
    the ends count in the end bins. ``log_abs``: of log10 |t| (zeros in the first bin). A tensor of
    more than :data:`HISTOGRAM_SAMPLE` values is sampled evenly: every k-th value, k a prime, so that
    the sample does not fall on one channel or one pixel column of a power-of-two layout."""
    t = t.detach().reshape(-1)
    t = t[::_prime_at_least(-(-t.numel() // HISTOGRAM_SAMPLE))].float().contiguous()  # one gather, then dense work
    if not bool(torch.isfinite(t).all()):
        t = t[torch.isfinite(t)]
    if t.numel() == 0:
        return np.full(len(edges) - 1, np.nan, dtype=np.float32)
    if log_abs:
        t = t.abs().clamp_min(10.0 ** edges[0]).log10()
    lo, hi, bins = float(edges[0]), float(edges[-1]), len(edges) - 1
    # equal bins by index (torch.histc's rule, without its thread pool: 10x slower on 8k values, 2 threads)
    idx = ((t.clamp(lo, hi) - lo) * (bins / (hi - lo))).long().clamp_(0, bins - 1)
    counts = torch.bincount(idx, minlength=bins).double()
    return (counts / counts.sum()).numpy().astype(np.float32)


def _prime_at_least(k: int) -> int:
    if k <= 2:
        return max(k, 1)
    while any(k % d == 0 for d in range(2, int(k ** 0.5) + 1)):
        k += 1
    return k


class StepProbe:
    """Measure chosen training steps of ``model``: :meth:`begin` before the step's forward pass,
    :meth:`measure` after its optimizer step. Between them the probe's hooks are on the model;
    outside, the model runs without any.

    The update-to-data ratio is measured by differencing: :meth:`snapshot` copies the parameters
    (:meth:`begin` does, or an optimizer's step pre-hook, just before the update), and
    :meth:`update_ratios` compares them with the parameters after the update, whatever the optimizer.
    """

    def __init__(self, model: nn.Module, histograms: bool = True):
        self.model = model
        self.histograms = histograms
        # measured as the pass goes: no output or gradient is kept past its use (a kept tensor would
        # make the allocator fetch fresh memory for the rest of the pass, the watch's main cost)
        self.recorder = Recorder(model, on_call=self._on_call, on_grad=self._on_grad, copy_inplace=False)
        # a training step's pass only: not an evaluation made between two steps (under no_grad, or with
        # the model switched out of the mode it trains in)
        self.recorder.accept = lambda: torch.is_grad_enabled() and self.model.training == self._training
        self._training = model.training
        found = layers_of(model)
        if not found:
            raise InitlabError(f"the model ({type(model).__name__}) has no parameters to watch; give a model "
                               f"with layers, like nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).")
        self.layers = [n for n, _, _ in found]
        self.kinds = [type(m).__name__ for _, m, _ in found]
        self._modules = [m for _, m, _ in found]
        self._params = [ps for _, _, ps in found]
        self._weight_layer = [L.is_weight_layer(m) for m in self._modules]
        self._before: list[torch.Tensor | None] | None = None
        self._update: np.ndarray | None = None
        self._forget()

    def _forget(self) -> None:
        """Start a step's measurement afresh."""
        self._first: dict[str, int] = {}     # a weight layer's name -> its first call's index
        self._layer_idx: list[int] = []      # the weight-layer calls so far
        self._out: dict[int, dict] = {}      # a first call's index -> its output's statistics

    def _on_call(self, i: int) -> None:
        """A call was recorded: measure a weight layer's output now, before anything can overwrite it
        in place; the call before it is then complete (its activation, if any, has run)."""
        c = self.recorder.calls[i]
        if not L.is_weight_layer(c.module):
            return
        if self._layer_idx:
            self._finish(self._layer_idx[-1], i)
        self._layer_idx.append(i)
        if self._first.setdefault(c.name, i) == i:
            std, mean = std_mean(c.output)
            self._out[i] = {"preact_std": std, "preact_mean": mean,
                            "output_hist": histogram(c.output, OUTPUT_EDGES) if self.histograms else None}

    def _finish(self, p: int, end: int) -> None:
        """Weight-layer call ``p``'s activation statistics (read from the calls up to ``end``), then
        the tensors of those calls are let go."""
        calls = self.recorder.calls
        if p in self._out:
            self._out[p].update(activation_stats(calls, p, self._layer_idx + [end] if end < len(calls) else
                                                 self._layer_idx, self._out[p]["preact_std"]))
        for j in range(p, end):
            calls[j] = Call(calls[j].name, calls[j].module, None, None)
        if end < len(calls):
            calls[end].input = None

    def _on_grad(self, key, g: torch.Tensor) -> dict | None:
        """What is kept of the gradient reaching a first call's output: its std and histogram."""
        if key not in self._out:
            return None
        return {"std": std_mean(g)[0],
                "hist": histogram(g, GRAD_EDGES, log_abs=True) if self.histograms else None}

    def begin(self, snapshot: bool = True) -> None:
        """Record the next forward and backward pass (and copy the parameters, unless ``snapshot``
        is False: an optimizer's pre-hook will)."""
        self._forget()
        self._training = self.model.training
        self.recorder.start()
        self._update = None
        if snapshot:
            self.snapshot()

    def snapshot(self) -> None:
        """Copy the parameters as they are before this step's update."""
        with torch.no_grad():
            self._before = [_flat(ps) for ps in self._params]

    def update_ratios(self) -> np.ndarray | None:
        """Per layer, std(parameters now - the snapshot) / std(the snapshot); the snapshot is then
        dropped. None without a snapshot."""
        if self._before is None:
            return self._update
        with torch.no_grad():
            out = np.array([math.nan if b is None else (_std(_flat(ps) - b) / s if (s := _std(b)) > 0 else math.nan)
                            for ps, b in zip(self._params, self._before)])
        self._before, self._update = None, out
        return out

    def measure(self) -> dict:
        """The step's measurements, then the recorded pass is forgotten: ``values`` (statistic ->
        array over layers), ``output_hist`` and ``grad_hist`` (layers x bins; None without
        histograms) and ``nonfinite`` (None, or where NaN or inf first appear: ``{"where":
        "output" or "gradient", "layer"}``)."""
        self.recorder.stop()
        if self._layer_idx:
            self._finish(self._layer_idx[-1], len(self.recorder.calls))
        grads = self.recorder.grads
        n = len(self.layers)
        values = {k: np.full(n, np.nan) for k in STATS}
        hists = ({"output_hist": np.full((n, len(OUTPUT_EDGES) - 1), np.nan, dtype=np.float32),
                  "grad_hist": np.full((n, len(GRAD_EDGES) - 1), np.nan, dtype=np.float32)}
                 if self.histograms else {"output_hist": None, "grad_hist": None})
        bad_output, bad_grad = set(), set()
        for j, (name, params) in enumerate(zip(self.layers, self._params)):
            for k, v in param_stats(params).items():
                values[k][j] = v
            i = self._first.get("" if name == ROOT else name)
            if i is None:
                continue
            stats, grad = self._out[i], grads.get(i)
            stats["grad_std"] = None if grad is None else grad["std"]
            for k in PASS_STATS:
                values[k][j] = math.nan if stats.get(k) is None else stats[k]
            # a single NaN or inf makes the mean (or the std) NaN or inf
            if stats["preact_mean"] is not None and not math.isfinite(stats["preact_mean"]):
                bad_output.add(j)
            if stats["grad_std"] is not None and not math.isfinite(stats["grad_std"]):
                bad_grad.add(j)
            if self.histograms:
                hists["output_hist"][j] = stats["output_hist"]
                if grad is not None:
                    hists["grad_hist"][j] = grad["hist"]
        update = self.update_ratios()
        if update is not None:
            values["update_to_data"] = update
        index = {n: j for j, n in enumerate(self.layers)}
        order = [index[n or ROOT] for n in self._first if (n or ROOT) in index]
        out = {"values": values, **hists, "order": order, "nonfinite": _first_nonfinite(bad_output, bad_grad, order, self.layers)}
        self.recorder.clear()
        self._forget()
        self._update = None
        return out

    def close(self) -> None:
        self.recorder.close()
        self._before = None


def _first_nonfinite(bad_output: set, bad_grad: set, order: list[int], layers: list[str]) -> dict | None:
    """Where NaN or inf first appear: the first layer (forward order) whose output has one, else the
    first from the loss back (backward order) whose gradient has one."""
    for j in order:
        if j in bad_output:
            return {"where": "output", "layer": layers[j]}
    for j in reversed(order):
        if j in bad_grad:
            return {"where": "gradient", "layer": layers[j]}
    return None


class Series:
    """Named arrays sampled at steps, holding at most ``capacity`` samples, evenly spaced over the
    whole run: when full, every other sample is dropped and from then on only every other sample is
    kept (the stride doubles), so the memory never grows past ``capacity`` samples. The first sample
    (step 0) is always kept, and the newest one always stands last (it is replaced by the next one
    when it is off the stride)."""

    def __init__(self, capacity: int, shapes: dict[str, tuple], dtypes: dict[str, type] | None = None):
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 4:
            raise InitlabError(f"max_samples must be a whole number of at least 4; got {capacity!r}.")
        dtypes = dtypes or {}
        self.capacity, self.count, self.seen, self.stride = capacity, 0, 0, 1
        self.step = np.zeros(capacity, dtype=np.int64)
        self.seq = np.zeros(capacity, dtype=np.int64)  # which append each sample was
        self.data = {k: np.full((capacity, *s), np.nan, dtype=dtypes.get(k, np.float64)) for k, s in shapes.items()}

    def append(self, step: int, values: dict) -> None:
        n, self.seen = self.seen, self.seen + 1
        if self.count and self.seq[self.count - 1] % self.stride:  # the newest was off the stride: replace it
            i = self.count - 1
        else:
            if self.count == self.capacity:
                self._thin()
            i, self.count = self.count, self.count + 1
        self.step[i], self.seq[i] = step, n
        for k, a in self.data.items():
            v = values.get(k)
            a[i] = np.nan if v is None else v

    def _thin(self) -> None:
        self.stride *= 2
        seq = self.seq[:self.count]
        keep = np.flatnonzero(seq % self.stride == 0)
        n = len(keep)
        for a in (self.step, self.seq, *self.data.values()):
            a[:n] = a[keep]
            a[n:] = 0 if a.dtype.kind == "i" else np.nan
        self.count = n

    def steps(self) -> np.ndarray:
        return self.step[:self.count]

    def __getitem__(self, key: str) -> np.ndarray:
        return self.data[key][:self.count]

    def nbytes(self) -> int:
        return self.step.nbytes + self.seq.nbytes + sum(a.nbytes for a in self.data.values())


def _list(a: np.ndarray) -> list:
    return [None if isinstance(x, float) and not math.isfinite(x) else x for x in a.tolist()] if a.ndim == 1 \
        else [_list(r) for r in a]


class WatchRecord:
    """What a watch keeps: per layer and statistic a :class:`Series` of at most ``max_samples``
    samples (and of the loss), histograms in one of at most ``max_histograms``, the first-loss
    check and the alerts raised. Its memory is fixed when it is made (:meth:`nbytes`)."""

    def __init__(self, layers: list[str], kinds: list[str] | None = None, every: int = 1,
                 max_samples: int = 2000, max_histograms: int = 200, histograms: bool = True):
        self.layers, self.kinds, self.every = list(layers), list(kinds or []), every
        n = len(self.layers)
        self.scalars = Series(max_samples, {"loss": (), **{k: (n,) for k in STATS}})
        self.hists = (Series(max_histograms, {"output_hist": (n, len(OUTPUT_EDGES) - 1),
                                              "grad_hist": (n, len(GRAD_EDGES) - 1)},
                             {"output_hist": np.float32, "grad_hist": np.float32}) if histograms else None)
        self.first_loss: dict | None = None
        self.alerts: list[dict] = []
        self.alert_counts: dict[str, int] = {}
        self.max_alerts = 200

    def add(self, step: int, loss: float | None, measured: dict) -> None:
        """Keep one step's :meth:`StepProbe.measure` (and its loss)."""
        self.scalars.append(step, {"loss": loss, **measured["values"]})
        if self.hists is not None and measured.get("output_hist") is not None:
            self.hists.append(step, measured)

    def add_alert(self, alert: dict) -> None:
        key = alert["kind"]
        self.alert_counts[key] = self.alert_counts.get(key, 0) + 1
        if len(self.alerts) < self.max_alerts:
            self.alerts.append(alert)

    @property
    def steps(self) -> np.ndarray:
        return self.scalars.steps()

    def stat(self, name: str) -> np.ndarray:
        """Steps x layers of statistic ``name`` (NaN where not measured)."""
        if name not in STATS and name != "loss":
            from .errors import unknown_name

            raise unknown_name("statistic", name, (*STATS, "loss"))
        return self.scalars[name]

    def nbytes(self) -> int:
        """The bytes the record's arrays hold (fixed when it is made)."""
        return self.scalars.nbytes() + (self.hists.nbytes() if self.hists is not None else 0)

    def to_dict(self) -> dict:
        """JSON-ready, NaN as None: ``layers``, ``kinds``, ``every``, ``step``, ``loss``, each statistic as
        ``[[value per layer] per step]``, ``histograms`` (``step``, ``output_edges``, ``grad_edges``,
        ``output`` and ``grad`` as ``[step][layer][bin]``), ``first_loss``, ``alerts``, ``alert_counts``."""
        out = {"layers": self.layers, "kinds": self.kinds, "every": self.every,
               "max_samples": self.scalars.capacity, "step": self.steps.tolist(), "loss": _list(self.scalars["loss"])}
        out.update({k: _list(self.scalars[k]) for k in STATS})
        if self.hists is not None:
            out["histograms"] = {"max_samples": self.hists.capacity, "step": self.hists.steps().tolist(),
                                 "output_edges": OUTPUT_EDGES.tolist(), "grad_edges": GRAD_EDGES.tolist(),
                                 "output": _list(np.round(self.hists["output_hist"].astype(np.float64), 6)),
                                 "grad": _list(np.round(self.hists["grad_hist"].astype(np.float64), 6))}
        out.update(first_loss=self.first_loss, alerts=self.alerts, alert_counts=self.alert_counts)
        return out

    @classmethod
    def from_dict(cls, doc: dict) -> "WatchRecord":
        """A record from :meth:`to_dict` (as :func:`initlab.outputs.read_watch` checked it)."""
        steps = doc["step"]
        h = doc.get("histograms")
        rec = cls(doc["layers"], doc.get("kinds"), doc.get("every", 1), max(4, doc.get("max_samples", 0), len(steps)),
                  max(4, len(h["step"]) if h else 4, h.get("max_samples", 0) if h else 0), histograms=bool(h))
        for i, s in enumerate(steps):
            rec.scalars.append(s, {"loss": doc["loss"][i], **{k: _array(doc[k][i]) for k in STATS if k in doc}})
        if h:
            for i, s in enumerate(h["step"]):
                rec.hists.append(s, {"output_hist": _array(h["output"][i]), "grad_hist": _array(h["grad"][i])})
        rec.first_loss = doc.get("first_loss")
        rec.alerts = list(doc.get("alerts") or [])
        rec.alert_counts = dict(doc.get("alert_counts") or {})
        return rec

    def to_dataframe(self):
        """A pandas DataFrame in long form, one row per layer x step x statistic: columns ``step``,
        ``layer``, ``kind``, ``statistic``, ``value`` (the loss has layer ``""``; NaN rows, a statistic
        a layer does not have, are left out)."""
        import pandas as pd

        steps, n = self.steps, len(self.layers)
        frames = [pd.DataFrame({"step": steps, "layer": "", "kind": "", "statistic": "loss",
                                "value": self.scalars["loss"]})]
        kinds = np.array(self.kinds if len(self.kinds) == n else [""] * n, dtype=object)
        for k in STATS:
            a = self.scalars[k]
            frames.append(pd.DataFrame({"step": np.repeat(steps, n), "layer": np.tile(np.array(self.layers, dtype=object),
                                                                                     len(steps)),
                                        "kind": np.tile(kinds, len(steps)), "statistic": k, "value": a.reshape(-1)}))
        df = pd.concat(frames, ignore_index=True)
        return df[np.isfinite(df["value"].to_numpy(dtype=float))].reset_index(drop=True)


def _array(rows) -> np.ndarray:
    return np.array([[math.nan if v is None else v for v in r] if isinstance(r, list) else
                     (math.nan if r is None else r) for r in rows], dtype=np.float64)
