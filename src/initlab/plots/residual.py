"""The residual stream against depth: for each initialization, the variance of the stream after the
last block of models of growing depth (measured: solid with dots), beside the simple prediction
initial + L x mean branch variance (dashed), or the gradient's variance at the first block's input."""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
from matplotlib.ticker import FixedLocator, NullLocator

from ..errors import InitlabError
from .base import COLORS, legend_below

QUANTITIES = ("variance", "gradient")


def _doc(stream) -> dict:
    return stream.to_dict() if hasattr(stream, "to_dict") else stream


def residual_stream_plot(results: Mapping[str, Sequence], ax=None, quantity: str = "variance", log: bool = False):
    """One line per initialization: ``results`` maps a label to the streams (from
    :func:`initlab.residual_stream`, or their ``to_dict()``) of models of growing depth. ``quantity``:
    ``"variance"`` (the stream's variance after the last block, with the prediction dashed) or
    ``"gradient"`` (the gradient's variance at the first block's input). ``log``: a log y axis (for
    initializations whose scales differ by orders of magnitude). Returns the axes."""
    if quantity not in QUANTITIES:
        raise InitlabError(f"unknown quantity '{quantity}'; use one of {', '.join(QUANTITIES)}.")
    ax = ax or plt.gca()
    depths = set()
    for i, (label, streams) in enumerate(results.items()):
        docs = sorted((_doc(s) for s in streams), key=lambda d: len(d["rows"]))
        x = [len(d["rows"]) for d in docs]
        depths.update(x)
        color = COLORS[i % len(COLORS)]
        if quantity == "variance":
            ax.plot(x, [d["rows"][-1]["stream_std"] ** 2 for d in docs], "-o", color=color, markersize=4,
                    label=f"{label}: measured")
            ax.plot(x, [d["predicted"][-1] for d in docs], "--", color=color, linewidth=1.2,
                    label=f"{label}: predicted, initial + L x branch variance")
        else:
            ax.plot(x, [(d["rows"][0]["grad_std"] or 0.0) ** 2 for d in docs], "-o", color=color, markersize=4,
                    label=label)
    if depths:
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_locator(FixedLocator(sorted(depths)))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([str(d) for d in sorted(depths)])
    if log:
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0)
    ax.set_xlabel("depth L (residual blocks)")
    ax.set_ylabel("variance of the stream after block L" if quantity == "variance"
                  else "variance of the gradient at block 1's input")
    ax.grid(alpha=0.3)
    legend_below(ax, ncol=2 if quantity == "variance" else 3)
    return ax
