"""Input checks shared by the library's entry points, run once before any work.

- :func:`expect` refuses the wrong kind of object (a string for a model, a tuple for a dataset);
- :func:`does_not_fit` is the one error for inputs a model cannot take, and :func:`call_fitting`
  runs a model with it;
- :func:`check_finite` refuses NaN or inf in inputs;
- :func:`check_training_data` is the one check of training data, called by :func:`initlab.train`,
  :func:`initlab.train_many` (and so the sweeps) and the playground: binary labels, one output, finite
  inputs, matching widths and shapes. Each problem has one message, whichever entry point finds it.
"""

from __future__ import annotations

import torch
from torch import nn

from .datasets import Dataset
from .errors import InitlabError

#: What each kind of object :func:`expect` asks for is, in the words of its error message.
KINDS = {
    "model": (nn.Module, "a torch nn.Module, e.g. initlab.mlp(2, [16, 16], 1)"),
    "data": (Dataset, "an initlab Dataset: initlab.datasets.make('moons'), or "
                      "Dataset(X_train, y_train, X_test, y_test) of tensors"),
    "tensor": (torch.Tensor, "a torch.Tensor"),
}
SPLITS = ("train", "test")


def _got(obj) -> str:
    """``str 'abc'``, ``tuple of 4``: what was given, in a few words."""
    name = type(obj).__name__
    if isinstance(obj, (str, int, float)):
        text = repr(obj)
        return f"{name} {text if len(text) <= 40 else text[:37] + '...'}"
    if isinstance(obj, (tuple, list, dict)):
        return f"{name} of {len(obj)}"
    return name


def expect(obj, kind: str, who: str, what: str | None = None):
    """``obj`` when it is a ``kind`` (one of :data:`KINDS`); else an :class:`InitlabError` that says
    ``who`` needs ``what`` (the argument's name, default ``kind``) as which type, and what it got."""
    cls, described = KINDS[kind]
    if not isinstance(obj, cls):
        raise InitlabError(f"{who} needs {what or kind} as {described}; got {_got(obj)}.")
    return obj


def does_not_fit(e: Exception) -> InitlabError:
    """The error for inputs that ``model(inputs)`` refused with ``e`` (its first line kept)."""
    first = str(e).splitlines()[0] if str(e) else ""
    return InitlabError(f"the inputs do not fit the model: {type(e).__name__}: {first}")


#: What a model's forward pass raises on inputs of the wrong shape or type.
FIT_ERRORS = (RuntimeError, ValueError, TypeError, IndexError)


def check_finite(x: torch.Tensor, name: str = "X") -> None:
    """Refuse NaN or inf in ``x``: a model cannot be judged (or trained) on non-finite inputs, and the
    result would blame the initialization."""
    if x.is_floating_point() or x.is_complex():
        bad = int((~torch.isfinite(x)).sum())
        if bad:
            raise InitlabError(f"{name} holds NaN or inf ({bad} of {x.numel()} values): initlab needs finite "
                               f"inputs; clean the data first.")


def to_model(inputs, param: torch.Tensor):
    """Inputs on the model's side: float tensors to the device and dtype of ``param`` (one of the
    model's parameters), integer ones (token ids) to its device only, through tuples, lists and dicts."""
    if isinstance(inputs, torch.Tensor):
        return inputs.to(param.device, param.dtype) if inputs.is_floating_point() else inputs.to(param.device)
    if isinstance(inputs, dict):
        return {k: to_model(v, param) for k, v in inputs.items()}
    if isinstance(inputs, (tuple, list)):
        return type(inputs)(to_model(v, param) for v in inputs)
    raise InitlabError(f"inputs must be a tensor, or a tuple or dict of tensors; got {type(inputs).__name__}.")


def check_training_data(data, model: nn.Module | None = None, who: str = "train") -> Dataset:
    """Check ``data`` (and that ``model`` fits it) before training; return ``data``.

    Refused, each with one message: not a :class:`Dataset` of tensors; ``X`` not 2-D or empty; NaN or
    inf in ``X``; train and test ``X`` of different widths; ``y`` not 1-D with one label per point;
    labels other than 0 and 1; and, with ``model``, inputs the model cannot take (a width that does
    not match its first layer is named as such) or a model with other than one output per point.
    The model is run once on two points, in eval mode and without gradients (nothing in it changes).
    """
    expect(data, "data", who)
    width = None
    for split in SPLITS:
        X, y = getattr(data, f"X_{split}"), getattr(data, f"y_{split}")
        expect(X, "tensor", who, f"X_{split}")
        expect(y, "tensor", who, f"y_{split}")
        if X.dim() != 2 or X.shape[0] == 0:
            raise InitlabError(f"X_{split} must be 2-D, (points, features), with at least one point; got shape "
                               f"{tuple(X.shape)}.")
        check_finite(X, f"X_{split}")
        if width is not None and X.shape[1] != width:
            raise InitlabError(f"X_{split} has {X.shape[1]} features per point but X_train has {width}.")
        width = X.shape[1]
        if y.shape != (X.shape[0],):
            raise InitlabError(f"y_{split} must be 1-D, one label per point of X_{split} ({X.shape[0]}); got "
                               f"shape {tuple(y.shape)}.")
        binary = (y == 0) | (y == 1)
        if not bool(binary.all()):
            seen = torch.unique(y[~binary].detach().cpu().double())[:5].tolist()
            raise InitlabError(f"y_{split} must hold the labels 0 and 1 only (binary classification); got "
                               f"{', '.join(f'{v:g}' for v in seen)}: relabel the classes to 0 and 1.")
    if model is not None:
        _check_fits(expect(model, "model", who), data.X_train)
    return data


def call_fitting(model: nn.Module, x: torch.Tensor, name: str = "X"):
    """``model(x)``, with a clear :class:`InitlabError` when ``x`` does not fit: a width that does not
    match the model's first Linear layer is named as such, any other refusal is :func:`does_not_fit`."""
    names = {m: n for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    first: list = []

    def note(module, args):
        if not first:
            first.append((module, args))

    handles = [m.register_forward_pre_hook(note) for m in names]
    try:
        return model(x)
    except FIT_ERRORS as e:
        if first and first[0][1] and first[0][1][0] is x and x.dim() and x.shape[-1] != first[0][0].in_features:
            layer, got = first[0][0], x.shape[-1]  # the inputs went straight into a Linear that refused them
            raise InitlabError(f"{name} has {got} features per point but the model's first layer "
                               f"'{names[layer]}' takes {layer.in_features}: build the model for {got} "
                               f"inputs (initlab.mlp({got}, ...)), or give it inputs of width "
                               f"{layer.in_features}.") from None
        raise does_not_fit(e) from None
    finally:
        for h in handles:
            h.remove()


def _check_fits(model: nn.Module, X: torch.Tensor) -> None:
    """Run ``model`` on two points of ``X``: it must take them and give one logit per point."""
    param = next(model.parameters(), None)
    x = X[:2] if param is None else X[:2].to(param.device, param.dtype)
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            out = call_fitting(model, x, "X_train")
    finally:
        for m, training in modes:
            m.training = training
    if not isinstance(out, torch.Tensor):
        raise InitlabError(f"the model must return one tensor of logits; it returned {_got(out)}.")
    k = x.shape[0]
    if out.dim() >= 2 and out.shape[0] == k and out[0].numel() > 1:
        raise InitlabError(f"the model has {out[0].numel()} outputs per point; initlab trains binary "
                           f"classifiers with one output, the logit of class 1: end the model with "
                           f"nn.Linear(..., 1).")
    if out.numel() != k or (out.dim() and out.shape[0] != k):
        raise InitlabError(f"the model must give one logit per point, shape (n,) or (n, 1); on {k} points it "
                           f"gave shape {tuple(out.shape)}.")
