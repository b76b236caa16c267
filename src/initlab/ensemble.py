"""``train_many()``: many same-shaped MLPs trained as one batched computation.

Every model keeps its own parameters, optimizer state, minibatch order and fate: the parameters of
all ``M`` models live in one flat buffer, each layer a ``(M, in, out)`` view of it, the forward pass
is one batched matmul per layer (``torch.baddbmm``) into scratch buffers kept across steps, the
backward pass is written out by hand into a preallocated gradient buffer of the same layout, and the
optimizer updates the whole buffer at once.
Nothing couples the models: a batched matmul computes each model's slice from that model's slice
alone, and a model whose loss or parameters become NaN or inf is recorded as diverged at that step
and dropped from the stack, so the rest train on as if it had never been there.

The plain loop :func:`initlab.train` is the reference: each model's :class:`~initlab.TrainResult`
equals what ``train`` gives that model alone, to float tolerance (``tests/test_ensemble.py``).

>>> import initlab
>>> data = initlab.datasets.make("moons", n=200, seed=0)
>>> runs = [{"scheme": "xavier_uniform", "seed": s} for s in range(3)]
>>> results = initlab.train_many(data, runs, hidden=[8, 8], activation="tanh", steps=50, lr=0.1)
>>> len(results), results[0].history["step"][-1]
(3, 50)
"""

from __future__ import annotations

import math
import time
from typing import Callable, Mapping, NamedTuple, Sequence

import torch
from torch import nn

from .checks import check_training_data, expect
from .datasets import Dataset
from .errors import InitlabError
from .activations import ACTIVATIONS
from .models import make_activation, mlp, parse_hidden
from .init import initialize
from .schemes import parse_spec
from .train import TrainResult, check_arguments, resolve_device

DTYPES = {"float32": torch.float32, "float64": torch.float64}
RUN_KEYS = {"scheme", "params", "seed", "lr"}
BETAS, EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults
ACTIVATION_BUDGET = 1 << 21      # layer outputs' elements per chunk of models (8 MB in float32; measured best)
#: On a GPU caches matter little and every kernel launch costs: chunks as large as 1 GB in float32.
GPU_ACTIVATION_BUDGET = 1 << 28
METRICS = ("train_loss", "train_accuracy", "test_loss", "test_accuracy")


# --------------------------------------------------------------------------------------------------
# the stacked network: a flat buffer, per-layer views, forward and a hand-written backward

def _views(flat: torch.Tensor, m: int, sizes: Sequence[int]) -> tuple[list, list]:
    """Per-layer ``(m, in, out)`` weight and ``(m, out)`` bias views of a layer-major flat buffer."""
    weights, biases, offset = [], [], 0
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        weights.append(flat[offset:offset + m * fan_in * fan_out].view(m, fan_in, fan_out))
        offset += m * fan_in * fan_out
        biases.append(flat[offset:offset + m * fan_out].view(m, fan_out))
        offset += m * fan_out
    return weights, biases


def _numel(m: int, sizes: Sequence[int]) -> int:
    return m * sum(i * o + o for i, o in zip(sizes[:-1], sizes[1:]))


def _activation_backward(activation: str, grad: torch.Tensor, z: torch.Tensor | None, h: torch.Tensor) -> torch.Tensor:
    """d loss / d z from d loss / d act(z), written over ``grad``: the fused kernels autograd itself
    calls (their ``out=`` forms, so no fresh tensor per layer)."""
    aten = torch.ops.aten
    if activation == "tanh":
        return aten.tanh_backward.grad_input(grad, h, grad_input=grad)
    if activation == "sigmoid":
        return aten.sigmoid_backward.grad_input(grad, h, grad_input=grad)
    if activation == "relu":
        return aten.threshold_backward.grad_input(grad, h, 0, grad_input=grad)
    if activation == "leaky_relu":
        return aten.leaky_relu_backward(grad, z, 0.01, False)
    if activation == "gelu":
        return aten.gelu_backward(grad, z)
    return grad


#: Activations whose backward needs only their output: applied in place, so the pre-activation's
#: buffer is reused (a fresh large tensor per layer costs as much as the activation itself).
_IN_PLACE = {"tanh": torch.tanh_, "sigmoid": torch.sigmoid_, "relu": torch.relu_, "identity": lambda z: z}


class _Layer(NamedTuple):
    """One layer of one chunk of models: parameter views, gradient views and scratch buffers."""
    W: torch.Tensor    # (r, in, out)
    WT: torch.Tensor   # (r, out, in)
    b: torch.Tensor    # (r, 1, out)
    z: torch.Tensor    # (r, n, out): this layer's output
    gW: torch.Tensor
    gb: torch.Tensor
    dh: torch.Tensor | None  # (r, n, in): d loss / d input, while training


class _Stack:
    """``m`` MLPs of widths ``sizes`` as one flat parameter buffer (and its optimizer state)."""

    def __init__(self, flat: torch.Tensor, sizes: list[int], activation: str):
        self.flat, self.sizes, self.activation = flat, sizes, activation
        self.act = make_activation(activation)
        self.m = flat.numel() // _numel(1, sizes)
        self.grad = torch.zeros_like(flat)
        self.state: dict[str, torch.Tensor] = {}
        self._scratch: dict = {}
        self._bind()

    def _bind(self):
        self.W, self.b = _views(self.flat, self.m, self.sizes)
        self.gW, self.gb = _views(self.grad, self.m, self.sizes)
        self._plans: dict = {}

    def keep(self, rows: torch.Tensor) -> None:
        """Keep only the models at positions ``rows`` (parameters, gradients and optimizer state)."""
        def take(buf):
            parts = [v[rows].reshape(-1) for pair in zip(*_views(buf, self.m, self.sizes)) for v in pair]
            return torch.cat(parts) if parts else buf[:0]
        self.flat = take(self.flat)
        self.state = {k: (v if k == "step" else take(v)) for k, v in self.state.items()}
        self.m = int(rows.numel())
        self.grad = torch.zeros_like(self.flat)
        self._bind()

    def model_params(self, i: int) -> list[torch.Tensor]:
        """Model ``i``'s parameters as ``nn.Linear`` holds them: ``(out, in)`` weights, biases."""
        out = []
        for W, b in zip(self.W, self.b):
            out += [W[i].t(), b[i]]
        return out

    def _plan(self, rows: slice, n: int, training: bool) -> list[_Layer]:
        """The views one chunk of models ``rows`` on ``n`` points works through, layer by layer, made
        once and kept: scratch buffers reused across steps (a fresh large tensor per layer and step
        costs page faults: about a fifth of a [64] x 10 step, measured), and slices of the parameters
        and gradients (for small networks, making them anew each step is a noticeable share of it)."""
        key = (rows.start, rows.stop, n, training)
        if key not in self._plans:
            r = len(range(*rows.indices(self.m)))
            # training keeps every layer's output for the backward pass; evaluating needs two buffers
            keys = [("layer", i) if training else ("eval", i % 2) for i in range(len(self.W))]
            need: dict = {}
            for i, (k, fan_in, fan_out) in enumerate(zip(keys, self.sizes[:-1], self.sizes[1:])):
                need[k] = max(need.get(k, 0), r * n * fan_out)
                if training and i > 0:  # d loss / d input of every layer but the first
                    need[("grad", i % 2)] = max(need.get(("grad", i % 2), 0), r * n * fan_in)
            for k, numel in need.items():
                if k not in self._scratch or self._scratch[k].numel() < numel:
                    self._scratch[k] = torch.empty(numel, dtype=self.flat.dtype, device=self.flat.device)
            plan = []
            for i, (W, b, gW, gb) in enumerate(zip(self.W, self.b, self.gW, self.gb)):
                fan_in, fan_out = W.shape[1:]
                z = self._scratch[keys[i]][:r * n * fan_out].view(r, n, fan_out)
                dh = self._scratch[("grad", i % 2)][:r * n * fan_in].view(r, n, fan_in) if training and i else None
                plan.append(_Layer(W[rows], W[rows].transpose(1, 2), b[rows].unsqueeze(1), z, gW[rows], gb[rows], dh))
            self._plans[key] = plan
        return self._plans[key]

    def forward(self, x: torch.Tensor, rows: slice = slice(None), saved: list | None = None) -> torch.Tensor:
        """Logits ``(m, n)`` of models ``rows`` on ``x`` (``(n, d)`` shared or ``(m, n, d)``); each layer's
        input and, after its activation, ``(pre-activation or None, output)`` are appended to ``saved``
        for :meth:`backward` (the pre-activation only where the activation's backward needs it). The
        result lives in a scratch buffer: use it before the next call."""
        plan = self._plan(rows, x.shape[-2], saved is not None)
        h = x if x.dim() == 3 else x.expand(plan[0].W.shape[0], *x.shape)
        last = len(plan) - 1
        for i, layer in enumerate(plan):
            z = layer.z
            if layer.W.shape[2] == 1:  # one output unit: baddbmm's copy of a width-1 bias costs more than the product
                torch.bmm(h, layer.W, out=z).add_(layer.b)
            else:
                torch.baddbmm(layer.b, h, layer.W, out=z)
            if saved is not None:
                saved.append(h)
            if i == last:
                h = z
            elif self.activation in _IN_PLACE:
                h = _IN_PLACE[self.activation](z)
            else:
                h = self.act(z)
            if saved is not None and i < last:
                saved.append((z if self.activation in ("gelu", "leaky_relu") else None, h))
        return h.squeeze(-1)

    def backward(self, dlogits: torch.Tensor, saved: list, rows: slice = slice(None)) -> None:
        """Write the gradients of models ``rows`` into ``self.grad`` from ``dloss/dlogits``."""
        plan = self._plan(rows, dlogits.shape[-1], True)
        dz = dlogits.unsqueeze(-1)
        for i in range(len(plan) - 1, -1, -1):
            if i < len(plan) - 1:
                z, h = saved.pop()
                dh = plan[i + 1].dh  # never the buffer dz lives in
                torch.bmm(dz, plan[i + 1].WT, out=dh)
                dz = _activation_backward(self.activation, dh, z, h)
            torch.bmm(saved.pop().transpose(1, 2), dz, out=plan[i].gW)
            torch.sum(dz, 1, out=plan[i].gb)

    def step(self, optimizer: str, lr: float | torch.Tensor) -> None:
        """One SGD or Adam step (PyTorch's formulas and defaults) on every model at once."""
        p, g = self.flat, self.grad
        if optimizer == "sgd":
            if isinstance(lr, torch.Tensor):
                p.sub_(g * lr)
            else:
                p.add_(g, alpha=-lr)
            return
        if not self.state:
            self.state = {"exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p),
                          "step": torch.zeros((), dtype=torch.float32, device=p.device)}
        m, v, t = self.state["exp_avg"], self.state["exp_avg_sq"], self.state["step"]
        t += 1
        if not isinstance(lr, torch.Tensor) and p.device.type in ("cpu", "cuda") and hasattr(torch, "_fused_adam_"):
            torch._fused_adam_([p], [g], [m], [v], [], [t], lr=lr, beta1=BETAS[0], beta2=BETAS[1],
                               weight_decay=0.0, eps=EPS, amsgrad=False, maximize=False)
            return
        step = float(t)
        m.lerp_(g, 1 - BETAS[0])
        v.mul_(BETAS[1]).addcmul_(g, g, value=1 - BETAS[1])
        denom = (v.sqrt() / math.sqrt(1 - BETAS[1] ** step)).add_(EPS)
        if isinstance(lr, torch.Tensor):
            p.sub_(m / denom * (lr / (1 - BETAS[0] ** step)))
        else:
            p.addcdiv_(m, denom, value=-lr / (1 - BETAS[0] ** step))

    def lr_buffer(self, lrs: torch.Tensor) -> torch.Tensor:
        """Each model's learning rate spread over its parameters, in the flat layout."""
        buf = torch.empty_like(self.flat)
        for W, b in zip(*_views(buf, self.m, self.sizes)):
            W.copy_(lrs.view(-1, 1, 1).expand_as(W))
            b.copy_(lrs.view(-1, 1).expand_as(b))
        return buf

    def finite(self) -> torch.Tensor:
        """Per model: is every parameter tensor's sum finite (the plain loop's divergence test)?"""
        sums = [t.sum(dim=tuple(range(1, t.dim()))) for pair in zip(self.W, self.b) for t in pair]
        return torch.isfinite(torch.stack(sums)).all(0)


def _bce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-model mean binary cross-entropy on logits ``(m, n)``."""
    return nn.functional.binary_cross_entropy_with_logits(logits, y.expand_as(logits),
                                                          reduction="none").mean(1)


# --------------------------------------------------------------------------------------------------
# train_many

def _check_runs(runs: Sequence[Mapping]) -> list[dict]:
    if not isinstance(runs, (list, tuple)):
        raise InitlabError(f"train_many needs runs as a list of dicts, like [{{'scheme': 'xavier_uniform', "
                           f"'seed': 0}}]; got {type(runs).__name__}.")
    if not runs:
        raise InitlabError("train_many needs at least one run.")
    checked = []
    for i, run in enumerate(runs):
        if not isinstance(run, Mapping) or "scheme" not in run:
            raise InitlabError(f"run {i} must be a dict with a 'scheme' (and 'params', 'seed', 'lr'); got {run!r}.")
        unknown = set(run) - RUN_KEYS
        if unknown:
            raise InitlabError(f"run {i} has unknown key(s) {', '.join(sorted(unknown))}; a run takes "
                               f"{', '.join(sorted(RUN_KEYS))}.")
        scheme = run["scheme"]
        spec = parse_spec(scheme if isinstance(scheme, Mapping) else
                          {"name": scheme, "params": dict(run.get("params") or {})})
        seed = run.get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise InitlabError(f"run {i}: seed must be a non-negative integer; got {seed!r}.")
        checked.append({"scheme": spec, "seed": seed, "lr": run.get("lr")})
    return checked


def train_many(data: Dataset | Sequence[Dataset], runs: Sequence[Mapping], *, hidden, activation: str = "relu",
               steps: int = 1000, lr: float = 0.1, optimizer: str = "sgd", batch_size: int | None = None,
               device: str | torch.device | None = None, eval_every: int = 10,
               dtype: str | torch.dtype = "float32", callback: Callable[[int], None] | None = None,
               return_models: bool = False):
    """Train one MLP per run, all of one architecture, as one batched computation.

    Parameters
    ----------
    data : Dataset or list of Dataset
        From :func:`initlab.datasets.make`: one that every model trains on, or one per run (of equal
        sizes: runs that differ in data seed or noise still train as one computation).
    runs : list of dict
        One per model: ``{"scheme": name or {"name", "params"}, "params": {...}, "seed": 0, "lr": None}``.
        ``seed`` seeds the initialization and the minibatch order, as in ``initlab train``; ``lr``
        overrides the shared learning rate for that model.
    hidden : list of int or str
        Hidden widths, as for :func:`initlab.mlp`.
    activation : str, default "relu"
    steps, lr, optimizer, batch_size, eval_every
        As for :func:`initlab.train`: plain SGD or Adam with PyTorch's defaults, full batch (None) or
        minibatches in each model's own seeded order.
    device : {"cpu", "cuda"}, optional
    dtype : {"float32", "float64"}, default "float32"
    callback : callable, optional
        ``callback(step)`` after every step (for progress bars).
    return_models : bool, default False
        Also return the trained models as ``nn.Sequential`` (diverged ones as they were when they
        diverged).

    Returns
    -------
    list of TrainResult
        One per run, in order, equal to what :func:`initlab.train` gives that model alone (to float
        tolerance). ``seconds`` is the group's time divided by the number of models. With
        ``return_models``, ``(results, models)``.
    """
    check_arguments(steps, lr, optimizer, batch_size, eval_every)
    _check_data(data)
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        make_activation(activation)  # raises the error with the known names
    dtype = DTYPES.get(dtype, dtype) if isinstance(dtype, str) else dtype
    if dtype not in DTYPES.values():
        raise InitlabError(f"dtype must be one of {', '.join(DTYPES)}; got {dtype!r}.")
    runs = _check_runs(runs)
    if callback is not None and not callable(callback):
        raise InitlabError(f"callback must be callable, as callback(step); got {type(callback).__name__}.")
    widths = parse_hidden(hidden)
    dev = resolve_device(device)
    X, y, X_test, y_test, data_configs = _stack_data(data, len(runs), dev, dtype)
    per_model = X.dim() == 3               # each model its own data set: (M, n, d)
    sizes = [X.shape[-1], *widths, 1]

    stack = _Stack(torch.empty(_numel(len(runs), sizes), dtype=dtype, device=dev), sizes, activation)

    def blank() -> nn.Module:  # built on the meta device: no draws from the global RNG, no work
        with torch.device("meta"):
            model = mlp(sizes[0], widths, 1, activation)
        return model.to_empty(device=dev).to(dtype)

    models, template = [], None if return_models else blank()  # the stack holds the parameters
    for j, run in enumerate(runs):  # the plain path's initialization, bitwise
        model = blank() if return_models else template
        initialize(model, run["scheme"], seed=run["seed"])  # writes every weight and bias
        for p, v in zip(model.parameters(), stack.model_params(j)):
            v.copy_(p.detach())
        if return_models:
            models.append(model)

    total = len(runs)
    alive = torch.arange(total)                        # global index of each stacked model
    alive_dev = alive.to(dev)
    lrs = [run["lr"] if run["lr"] is not None else lr for run in runs]
    for v in lrs:
        check_arguments(steps, v, optimizer, batch_size, eval_every)
    lr_of = (lambda rows: lr) if len(set(lrs)) == 1 else \
        (lambda rows: stack.lr_buffer(torch.tensor([lrs[i] for i in rows.tolist()], dtype=dtype, device=dev)))
    step_lr = lr_of(alive)
    history = [{k: [] for k in ("step", *METRICS)} for _ in runs]
    diverged_at: list[int | None] = [None] * total
    final_params: list[list[torch.Tensor] | None] = [None] * total

    budget = ACTIVATION_BUDGET if dev.type == "cpu" else GPU_ACTIVATION_BUDGET
    # both splits in one forward pass per chunk of models: train points first, then test points
    X_eval, y_eval, n_train = torch.cat([X, X_test], -2), torch.cat([y, y_test], -1), X.shape[-2]

    def evaluate(rows: torch.Tensor, step: int) -> None:
        """Record loss and accuracy on both splits for the stacked models at positions ``rows``."""
        chunk = max(1, budget // (X_eval.shape[-2] * max(sizes[1:])))  # no activations are kept
        everyone = rows.numel() == stack.m  # then chunks are slices of the stack: no copies
        parts = []
        for start in range(0, rows.numel(), chunk):
            sel = rows[start:start + chunk].to(dev)
            xs, ys = (X_eval[alive_dev[sel]], y_eval[alive_dev[sel]]) if per_model else (X_eval, y_eval)
            if everyone:
                logits = stack.forward(xs, slice(start, start + sel.numel()))
            else:
                logits = _sub_forward(stack, sel, xs)
            ys = ys.expand_as(logits)
            loss = nn.functional.binary_cross_entropy_with_logits(logits, ys, reduction="none")
            correct = (((logits > 0) == (ys > 0.5)) & ~torch.isnan(logits)).float()  # as train() counts
            parts.append(torch.stack([loss[:, :n_train].mean(1), correct[:, :n_train].mean(1),
                                      loss[:, n_train:].mean(1), correct[:, n_train:].mean(1)]))
        values = dict(zip(METRICS, torch.cat(parts, 1).tolist()))
        for j, g in enumerate(alive[rows.cpu()].tolist()):
            history[g]["step"].append(step)
            for k in METRICS:
                history[g][k].append(values[k][j])

    def drop(bad: torch.Tensor, step: int) -> None:
        nonlocal alive, alive_dev, step_lr, perms
        rows = bad.nonzero().reshape(-1)
        for j, g in zip(rows.tolist(), alive[rows].tolist()):
            diverged_at[g] = step
            if final_params[g] is None:
                final_params[g] = [p.clone() for p in stack.model_params(j)]
        keep = (~bad).nonzero().reshape(-1)
        stack.keep(keep.to(dev))
        alive = alive[keep.cpu()]
        alive_dev = alive.to(dev)
        if perms is not None:  # the survivors keep their minibatch order
            perms = perms[keep.to(perms.device)]
        step_lr = lr_of(alive)

    n = X.shape[-2]
    batch = n if batch_size is None else min(batch_size, n)
    gens = [torch.Generator().manual_seed(run["seed"]) for run in runs]
    perms, cursor = None, n
    chunk = max(1, budget // (batch * sum(sizes[1:])))

    start = time.perf_counter()
    evaluate(torch.arange(stack.m), 0)
    if callback:
        callback(0)
    for step in range(1, steps + 1):
        if stack.m == 0:
            break
        if batch == n:
            xb, yb = (X[alive_dev], y[alive_dev]) if per_model and stack.m < total else (X, y)
        else:
            if cursor + batch > n:
                order = torch.empty(len(alive), n, dtype=torch.long)  # each model's own draw, as train() makes it
                for j, g in enumerate(alive.tolist()):
                    torch.randperm(n, generator=gens[g], out=order[j])
                perms = order.to(dev)
                cursor = 0
            idx = perms[:, cursor:cursor + batch]
            cursor += batch
            flat_idx = (idx + alive_dev[:, None] * n if per_model else idx).reshape(-1)
            xb = X.reshape(-1, X.shape[-1]).index_select(0, flat_idx).view(*idx.shape, X.shape[-1])
            yb = y.reshape(-1).index_select(0, flat_idx).view(idx.shape)
        losses = []
        for c0 in range(0, stack.m, chunk):
            rows = slice(c0, min(c0 + chunk, stack.m))
            saved: list = []
            logits = stack.forward(xb if xb.dim() == 2 else xb[rows], rows, saved)
            yc = yb if yb.dim() == 1 else yb[rows]
            losses.append(_bce(logits, yc))
            dlogits = (torch.sigmoid(logits) - yc).div_(logits.shape[1])
            stack.backward(dlogits, saved, rows)
        losses = torch.cat(losses)
        bad_loss = ~torch.isfinite(losses)
        if bool(bad_loss.any()):  # the plain loop takes no step: record the model as it is
            rows = bad_loss.nonzero().reshape(-1)
            evaluate(rows, step)
            for j, g in zip(rows.tolist(), alive[rows.cpu()].tolist()):
                final_params[g] = [p.clone() for p in stack.model_params(j)]
            stack.grad[:] = torch.where(torch.isfinite(stack.grad), stack.grad, 0)
        stack.step(optimizer, step_lr)
        bad = bad_loss
        if not bool(torch.isfinite(stack.flat.sum())):
            bad = bad_loss | ~stack.finite()
            new = (bad & ~bad_loss).nonzero().reshape(-1)
            if new.numel():
                evaluate(new, step)
        if bool(bad.any()):
            drop(bad.cpu(), step)
        if stack.m and (step % eval_every == 0 or step == steps):
            evaluate(torch.arange(stack.m), step)
        if callback:
            callback(step)
    for j, g in enumerate(alive.tolist()):
        final_params[g] = [p.clone() for p in stack.model_params(j)]
    seconds = (time.perf_counter() - start) / total

    results = []
    for i, run in enumerate(runs):
        h = history[i]
        final = {k: h[k][-1] for k in ("train_loss", "test_loss", "train_accuracy", "test_accuracy")}
        config = {"steps": steps, "lr": lrs[i], "optimizer": optimizer, "batch_size": batch_size,
                  "seed": run["seed"], "device": str(dev), "dtype": str(dtype).replace("torch.", ""),
                  "scheme": run["scheme"], "hidden": widths, "activation": activation, "data": data_configs[i]}
        results.append(TrainResult(h, final, diverged_at[i] is not None, diverged_at[i], config, seconds))
    if not return_models:
        return results
    with torch.no_grad():
        for model, params in zip(models, final_params):
            for p, v in zip(model.parameters(), params):
                p.copy_(v)
    return results, models


def _check_data(data) -> None:
    """One :class:`Dataset`, or a list of them: each checked once (:func:`~initlab.checks.check_training_data`)."""
    if isinstance(data, Dataset):
        data = [data]
    elif not (isinstance(data, (list, tuple)) and data and all(isinstance(d, Dataset) for d in data)):
        expect(data, "data", "train_many", "data (one Dataset, or a list of one per run)")
    for d in {id(d): d for d in data}.values():
        check_training_data(d, who="train_many")


def _stack_data(data, m: int, dev: torch.device, dtype: torch.dtype):
    """``X, y, X_test, y_test`` on ``dev`` in ``dtype``: shared ``(n, d)``, or ``(m, n, d)`` when
    ``data`` is a list of data sets, one per run; and each run's data config."""
    if isinstance(data, Dataset):
        return (*(t.to(dev, dtype) for t in data), [data.config] * m)
    data = list(data)
    if len(data) != m:
        raise InitlabError(f"data is one Dataset or a list of one Dataset per run ({m}); got {len(data)} items.")
    shapes = {tuple(t.shape for t in d) for d in data}
    if len(shapes) > 1:
        raise InitlabError(f"the data sets of one train_many call must have equal sizes; got {sorted(shapes)}.")
    return (*(torch.stack(ts).to(dev, dtype) for ts in zip(*data)), [d.config for d in data])


def _sub_forward(stack: _Stack, rows: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Logits of the stacked models at positions ``rows`` (any subset) on inputs ``x``."""
    h = x.expand(rows.numel(), *x.shape) if x.dim() == 2 else x
    last = len(stack.W) - 1
    for i, (W, b) in enumerate(zip(stack.W, stack.b)):
        z = torch.baddbmm(b[rows].unsqueeze(1), h, W[rows])
        h = z if i == last else stack.act(z)
    return h.squeeze(-1)
