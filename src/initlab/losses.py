"""The loss initlab differentiates when the user gives none: one home for :func:`initlab.diagnose`,
:func:`initlab.residual_stream` and :func:`initlab.width_sweep`.

- No targets: the model's own loss when it returned one (a dict with a 0-dim ``"loss"``, as a
  HuggingFace model given ``labels``), else the output dotted with a fixed random direction
  (:func:`direction_loss`), so the gradient reaching the output has unit scale per sample.
- Integer targets: cross-entropy over axis 1 when the targets fit ``F.cross_entropy``'s layout ((N, C,
  d1, ...) against (N, d1, ...): a segmentation map, a Conv1d's classes per step), else over the last
  axis when the targets have the output's shape without it (a sequence model's (N, T, V) logits against
  (N, T) tokens).
- One float target per sample against one output unit: binary cross-entropy on the logit.
- Other float targets: mean squared error, on the output's exact shape (never broadcast).

The output read is the model's first tensor of dimension >= 1 (:func:`output_tensor`); targets that fit
none of the rules are a one-line error naming both shapes.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .errors import InitlabError


def tensors(obj, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor of a (nested) tuple, list or dict output, by path: ``"0"``, ``"1.0"``, ``"logits"``."""
    if isinstance(obj, torch.Tensor):
        return {prefix or "output": obj}
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (tuple, list)) else []
    out = {}
    for k, v in items:
        out.update(tensors(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def direction_loss(out: torch.Tensor, seed: int) -> torch.Tensor:
    """A loss for a model without targets: the output dotted with a fixed random direction drawn from
    its own generator seeded with ``seed`` (never the global one), over the batch, so the gradient
    reaching the output has unit scale per sample whatever the output's scale."""
    gen = torch.Generator(device=out.device).manual_seed(seed)
    r = torch.randn(out.shape, generator=gen, device=out.device, dtype=out.dtype)
    return (out * r).sum() / max(out.shape[0], 1)


def output_tensor(out) -> torch.Tensor:
    """The tensor a default loss reads from a model's output (a tensor, or a tuple, list or dict of them,
    walked as :func:`tensors` walks them): the first of dimension >= 1, so that a 0-dim loss returned
    beside the logits is not taken for them. InitlabError when there is none."""
    found = [t for t in tensors(out).values() if t.dim() >= 1]
    if not found:
        raise InitlabError(f"the model's output ({type(out).__name__}) holds no tensor of dimension >= 1 to "
                           f"differentiate: return one, or give loss_fn=(output) -> scalar.")
    return found[0]


def own_loss(out) -> torch.Tensor | None:
    """The loss a model computed itself (a HuggingFace model given ``labels``): the 0-dim tensor under the
    key ``"loss"`` of a dict output; None otherwise."""
    loss = out.get("loss") if isinstance(out, Mapping) else None
    return loss if isinstance(loss, torch.Tensor) and loss.dim() == 0 else None


def default_loss(out, targets: torch.Tensor | None, seed: int) -> torch.Tensor:
    """The scalar to differentiate when no loss function is given, by the rules of this module."""
    if targets is None:
        loss = own_loss(out)
        return loss if loss is not None else direction_loss(output_tensor(out), seed)
    out = output_tensor(out)
    try:
        return _target_loss(out, targets)
    except InitlabError:
        raise
    except (RuntimeError, ValueError, IndexError) as e:  # torch's own words for the mismatch, first line
        raise mismatch(out, targets, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None


def _target_loss(out: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    if not targets.is_floating_point():
        # F.cross_entropy's own layout first ((N, C, d1, ...) against (N, d1, ...)): a Conv1d of as many
        # channels as steps fits both, and its classes are its channels
        torch_layout = out.dim() >= 3 and targets.shape == out.shape[:1] + out.shape[2:]
        if not torch_layout and out.dim() >= 2 and targets.shape == out.shape[:-1]:
            return nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), targets.reshape(-1).long())
        return nn.functional.cross_entropy(out, targets.long())
    if out.dim() == 2 and out.shape[1] == 1 and targets.dim() == 1:
        return nn.functional.binary_cross_entropy_with_logits(out.reshape(-1), targets.to(out.dtype))
    if targets.shape != out.shape:  # mse_loss would broadcast the two (a warning, and a wrong loss)
        raise mismatch(out, targets, "mean squared error needs targets of the output's shape")
    return nn.functional.mse_loss(out, targets.to(out.dtype))


def mismatch(out: torch.Tensor, targets: torch.Tensor, why: str) -> InitlabError:
    """The one-line error for targets the default loss cannot pair with the output."""
    return InitlabError(f"the loss could not be computed from the model's output of shape {tuple(out.shape)} and "
                        f"targets of shape {tuple(targets.shape)} ({str(targets.dtype).replace('torch.', '')}) by "
                        f"the default loss: {why.rstrip('.')}. Give loss_fn=(output, targets) -> scalar, or "
                        f"targets that fit.")
