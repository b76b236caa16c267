"""The residual stream at initialization: its std after each residual block, the gradient's std at
each block's input, and the simple prediction that explains the depth recipes.

A residual block adds a branch to the stream, ``x_l = x_{l-1} + f_l(x_{l-1})``. When the branch's
output is uncorrelated with the stream (as at a random initialization), variances add:

    Var(x_L) = Var(x_0) + sum_l Var(f_l)  ~=  Var(x_0) + L * mean_l Var(f_l)

so with branches of a fixed scale (PyTorch's default) the stream's variance grows linearly in the
depth L; GPT-2 scales the layer that closes each branch by 1/sqrt(2L) (two branches per block), which
keeps the sum, and so the stream, the same at any depth. :func:`residual_stream` measures ``x_l`` and
``f_l = x_l - x_{l-1}`` with forward hooks and sets the prediction beside them.

    >>> stream = residual_stream(model, ids)          # blocks found from the model's structure
    >>> stream.table(); stream.predicted               # measured per block; predicted variance
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import nn

from .errors import InitlabError
from .init import call
from .losses import default_loss
from .tables import text_table

__all__ = ["ResidualStream", "StreamProbe", "find_blocks", "residual_stream"]

#: A stack is residual when the median correlation of a block's output with its input is above this
#: (a block that adds a branch keeps its input; a plain layer of the same shape does not).
RESIDUAL_CORRELATION = 0.5
COLUMNS = ["block", "name", "input_std", "stream_std", "predicted_std", "branch_std", "correlation", "grad_std"]


@dataclass
class ResidualStream:
    """The residual stream of a model on a batch, one row per block in forward order.

    ``rows``: ``block`` (counted from 1), ``name``, ``input_std`` (the stream entering the block),
    ``stream_std`` (leaving it), ``branch_std`` (the std of output - input: what the block added),
    ``correlation`` (of the block's output with its input), ``grad_std`` (the gradient's std at the
    block's input) and ``predicted_std``. Stds are over every entry of the tensor."""

    rows: list[dict]
    container: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def initial_variance(self) -> float:
        """The variance of the stream entering the first block."""
        return self.rows[0]["input_std"] ** 2

    @property
    def branch_variance(self) -> float:
        """The mean over blocks of Var(output - input)."""
        return sum(r["branch_std"] ** 2 for r in self.rows) / len(self.rows)

    @property
    def variance(self) -> list[float]:
        """The measured variance of the stream after each block."""
        return [r["stream_std"] ** 2 for r in self.rows]

    @property
    def predicted(self) -> list[float]:
        """The predicted variance after block l: initial variance + l x the mean branch variance."""
        return [self.initial_variance + (i + 1) * self.branch_variance for i in range(len(self.rows))]

    @property
    def growth(self) -> float:
        """The stream's std after the last block over its std after the first."""
        first = self.rows[0]["stream_std"]
        return self.rows[-1]["stream_std"] / first if first > 0 else math.inf

    @property
    def slope(self) -> float:
        """The least-squares slope of the measured variance against the block index (per block)."""
        n = len(self.rows)
        if n < 2:
            return 0.0
        xs, ys = range(1, n + 1), self.variance
        mx, my = (n + 1) / 2, sum(ys) / n
        return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)

    @property
    def fit_error(self) -> float:
        """The largest relative gap between measured and predicted variance, over the blocks."""
        return max(abs(m - p) / p if p > 0 else math.inf for m, p in zip(self.variance, self.predicted))

    @property
    def residual(self) -> bool:
        """Whether the blocks keep their input (median correlation above :data:`RESIDUAL_CORRELATION`)."""
        c = sorted(r["correlation"] for r in self.rows if r["correlation"] is not None)
        return bool(c) and c[len(c) // 2] > RESIDUAL_CORRELATION

    def to_dict(self) -> dict:
        return {"container": self.container, "rows": self.rows, "initial_variance": self.initial_variance,
                "branch_variance": self.branch_variance, "predicted": self.predicted, "growth": self.growth,
                "slope": self.slope, "fit_error": self.fit_error, "residual": self.residual, **self.meta}

    def table(self) -> str:
        return text_table(COLUMNS, self.rows)

    __str__ = table

    def __repr__(self) -> str:
        return (f"ResidualStream({len(self.rows)} blocks of '{self.container}', std {self.rows[0]['stream_std']:.3g}"
                f" -> {self.rows[-1]['stream_std']:.3g}, branch variance {self.branch_variance:.3g})")


def _first(args: tuple, kwargs: dict) -> torch.Tensor | None:
    for v in (*args, *kwargs.values()):
        if isinstance(v, torch.Tensor):
            return v
    return None


def _output(out) -> torch.Tensor | None:
    """A block's output: the tensor, or a tuple's first (a block that also returns its attention)."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    return None


def candidates(model: nn.Module) -> list[tuple[str, list[nn.Module]]]:
    """``nn.ModuleList`` or ``nn.Sequential`` containers of at least 2 modules all of one type, most
    modules first (the shape test needs a forward pass: :func:`find_blocks`)."""
    found = []
    for name, m in model.named_modules():
        if isinstance(m, (nn.ModuleList, nn.Sequential)):
            children = list(m.children())
            if len(children) >= 2 and len({type(c) for c in children}) == 1 and any(
                    True for _ in children[0].parameters()):
                found.append((name, children))
    return sorted(found, key=lambda t: -len(t[1]))


def find_blocks(model: nn.Module, blocks=None) -> tuple[str, list[nn.Module]]:
    """The residual blocks: ``blocks`` as a module path (``"transformer.h"``) or a list of modules, or
    found from the structure (the largest container of same-typed modules)."""
    if blocks is None:
        found = candidates(model)
        if not found:
            raise InitlabError(f"{type(model).__name__} has no nn.ModuleList or nn.Sequential of same-typed blocks; "
                               f"give them: blocks='path.to.blocks' or a list of modules.")
        return found[0]
    if isinstance(blocks, str):
        try:
            container = model.get_submodule(blocks)
        except AttributeError:
            raise InitlabError(f"{type(model).__name__} has no module '{blocks}'.") from None
        mods = list(container.children())
        if not mods:
            raise InitlabError(f"'{blocks}' has no blocks inside it.")
        return blocks, mods
    mods = list(blocks)
    own = {id(m) for m in model.modules()}
    if not mods or not all(isinstance(m, nn.Module) and id(m) in own for m in mods):
        raise InitlabError("blocks must be a module path or a non-empty list of the model's own modules.")
    return "", mods


def _std(t: torch.Tensor) -> float:
    return float(t.detach().double().std(unbiased=False))


def _correlation(a: torch.Tensor, b: torch.Tensor) -> float | None:
    a, b = a.detach().double().flatten(), b.detach().double().flatten()
    a, b = a - a.mean(), b - b.mean()
    den = float(a.norm() * b.norm())
    return float(a @ b) / den if den > 0 else None


def residual_stream(model: nn.Module, inputs, blocks: str | Sequence[nn.Module] | None = None,
                    loss_fn: Callable | None = None, gradients: bool = True, seed: int = 0) -> ResidualStream:
    """Measure the residual stream of ``model`` on ``inputs``: the std after each block, what each block
    added, and the gradient's std at each block's input, beside the linear prediction.

    Parameters
    ----------
    model : nn.Module
        A model with residual blocks whose output has the shape of their input.
    inputs : Tensor, tuple or dict
        A batch the model accepts (token ids are passed as they are).
    blocks : str or list of nn.Module, optional
        The blocks: a module path (``"transformer.h"``) whose children are the blocks, or a list of
        modules. Default: the largest ``nn.ModuleList``/``nn.Sequential`` of same-typed modules.
    loss_fn : callable, optional
        output -> scalar to differentiate. Default (:func:`initlab.losses.default_loss`): the model's own loss when its
        output is a dict with a 0-dim ``"loss"``, else its first tensor of dimension >= 1 dotted with a
        fixed random direction drawn from ``seed``, so the gradient has unit scale per sample there.
    gradients : bool
        Whether to run the backward pass (``grad_std`` is None without it).
    seed : int
        Seeds the direction and any randomness of the forward pass (dropout), in a forked RNG: the
        caller's RNG state is left as it was.

    The model's parameters, buffers, gradients and train/eval mode are left as they were.
    """
    if not isinstance(model, nn.Module):
        raise InitlabError(f"residual_stream needs an nn.Module; got {type(model).__name__}.")
    container, mods = find_blocks(model, blocks)
    probe = StreamProbe(model, mods, container, gradients)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    param = next(model.parameters(), None)
    devices = [param.device.index or 0] if param is not None and param.device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices), torch.enable_grad(), probe:
            torch.manual_seed(seed)
            out = call(model, inputs)
            probe.stream()  # the forward's rows first: a block that is not one fails before the backward
            wanted = probe.inputs_with_grad()
            if gradients and wanted:
                value = loss_fn(out) if loss_fn is not None else default_loss(out, None, seed)
                torch.autograd.grad(value, wanted, allow_unused=True)  # the block inputs' hooks keep what reaches them
    finally:
        with torch.no_grad():
            model.load_state_dict(state)
    return probe.stream()


class StreamProbe:
    """Hooks on the residual blocks ``mods`` of ``model`` that keep each block's input and output during
    a forward pass and, with ``gradients``, the gradient that reaches each block's input in the backward
    pass that follows (whichever loss it is of). Used as a context manager around the pass:
    :func:`residual_stream` makes its own pass; :func:`initlab.diagnose` puts the probe on the pass it
    makes anyway, so the stream costs no pass of its own. :meth:`stream` reads what was kept."""

    def __init__(self, model: nn.Module, mods: list[nn.Module], container: str = "", gradients: bool = True):
        self.mods, self.container, self.gradients = list(mods), container, gradients
        self.names = {id(m): n for n, m in model.named_modules()}
        self.seen: dict[int, list] = {}
        self.grads: dict[int, torch.Tensor] = {}
        self._handles: list = []

    def _pre(self, module, args, kwargs):
        x = _first(args, kwargs)
        if self.gradients and x is not None and x.is_floating_point() and not x.requires_grad and torch.is_grad_enabled():
            tracked = x.detach().requires_grad_()  # nothing upstream needs a gradient: the stream starts here
            args = tuple(tracked if a is x else a for a in args)
            kwargs = {k: tracked if v is x else v for k, v in kwargs.items()}
            x = tracked
        key = id(module)
        self.seen[key] = [x, None]  # a new pass replaces what an earlier one kept
        self.grads.pop(key, None)
        if self.gradients and x is not None and x.requires_grad:
            x.register_hook(lambda g, key=key: self.grads.__setitem__(key, g.detach()))
        return args, kwargs

    def _post(self, module, args, kwargs, out):
        if id(module) in self.seen:
            self.seen[id(module)][1] = _output(out)

    def __enter__(self) -> "StreamProbe":
        self.seen, self.grads = {}, {}
        self._handles = [h for m in self.mods for h in (m.register_forward_pre_hook(self._pre, with_kwargs=True),
                                                        m.register_forward_hook(self._post, with_kwargs=True))]
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def inputs_with_grad(self) -> list[torch.Tensor]:
        """The blocks' inputs a backward pass can reach."""
        return [v[0] for v in self.seen.values() if v[0] is not None and v[0].requires_grad]

    def stream(self) -> ResidualStream:
        """The rows of the pass kept (``grad_std`` from the backward pass, when one reached the blocks),
        with the prediction. Raises InitlabError when a block was not called with a tensor or changes
        its shape: then the modules are not residual blocks."""
        rows = _rows(self.mods, self.seen, self.names)
        for r, m in zip(rows, self.mods):
            g = self.grads.get(id(m))
            r["grad_std"] = None if g is None else _std(g)
        return _predict(ResidualStream(rows, self.container))


def _rows(mods, seen, names) -> list[dict]:
    rows = []
    for i, m in enumerate(mods):
        x, y = seen.get(id(m), (None, None))
        if x is None or y is None:
            raise InitlabError(f"block {i + 1} ('{names.get(id(m), type(m).__name__)}') was not called with a tensor "
                               f"and did not return one: it is not a residual block.")
        if x.shape != y.shape:
            raise InitlabError(f"block {i + 1} ('{names.get(id(m), type(m).__name__)}') maps shape {tuple(x.shape)} "
                               f"to {tuple(y.shape)}: a residual block keeps the shape of its input.")
        rows.append({"block": i + 1, "name": names.get(id(m), type(m).__name__), "input_std": _std(x),
                     "stream_std": _std(y), "branch_std": _std(y.detach() - x.detach()),
                     "correlation": _correlation(x, y), "grad_std": None, "predicted_std": None})
    return rows


def _predict(stream: ResidualStream) -> ResidualStream:
    for r, v in zip(stream.rows, stream.predicted):
        r["predicted_std"] = math.sqrt(v)
    return stream
