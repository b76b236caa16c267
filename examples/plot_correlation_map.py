"""
The correlation map: how alike two inputs become, layer by layer
================================================================

What to look at: deep tanh networks (30 hidden layers, sigma_b^2 = 0.05) in the three phases of
mean-field theory, at widths 256 (left) and 1024 (right). For 16 random inputs,
:func:`initlab.correlation_map` measures at each layer the mean cosine similarity of every pair's
preactivations (solid; the band is one std over the 120 pairs) and iterates the c-map from each
pair's own input correlation (dashed; Poole et al. 2016, Schoenholz et al. 2017):

- ordered (sigma_w^2 = 1): every pair becomes parallel (c -> c* = 1) within a few layers: the
  network maps all inputs to the same point, and cannot tell them apart;
- critical (sigma_w^2 = 1.76, chi_1 = 1): the correlation still rises, but slowly (xi_c diverges):
  inputs stay distinguishable through the most layers;
- chaotic (sigma_w^2 = 3): pairs settle at a partial likeness c* < 1 (dotted), nearby inputs are
  pulled apart.

The prediction is for infinite width; the caption gives the measured mean |measured - predicted|
over the layers at each width (2 networks each): it shrinks as the width grows.
"""

import argparse
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import initlab  # noqa: E402
from initlab import plots  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
parser.add_argument("--quick", action="store_true", help="narrower, shallower networks (for tests)")
parser.add_argument("--out", default="examples-out", help="folder for the figure")
args = parser.parse_args()

widths, depth, n, seeds = ([32, 64], 6, 6, [0]) if args.quick else ([256, 1024], 30, 16, [0, 1])
sigma_b2 = 0.05
critical = initlab.theory.critical_sigma_w2("tanh", sigma_b2)
phases = {"ordered": 1.0, "critical": critical, "chaotic": 3.0}

fig, axes = plt.subplots(1, len(widths), figsize=(14, 6.4), sharey=True)
lines = []
for ax, width in zip(axes, widths):
    x = torch.randn(n, width, generator=torch.Generator().manual_seed(12345))  # never the weights' stream
    maps, errors = {}, {}
    for phase, sw2 in phases.items():
        errs = []
        for seed in seeds:
            net = initlab.mlp(width, [width] * depth, width, "tanh")
            initlab.initialize(net, "xavier_normal", seed=seed, gain=math.sqrt(sw2), bias_std=math.sqrt(sigma_b2))
            m = initlab.correlation_map(net, x)
            errs.append(np.mean(np.abs(np.subtract(m.measured, m.predicted))))
            maps.setdefault(f"{phase} (sigma_w^2 = {sw2:.3g})", m)
        errors[phase] = float(np.mean(errs))
    plots.correlation_map(maps, ax=ax)
    ax.set_title(f"width {width}")
    lines.append(f"width {width}: mean |measured - predicted| " +
                 ", ".join(f"{p} {e:.3f}" for p, e in errors.items()))
    print(lines[-1])

fig.suptitle(f"tanh, {depth} hidden layers, sigma_b^2 = {sigma_b2:g}: the cosine similarity of pairs of inputs, "
             f"measured (solid) and mean-field theory (dashed)", fontsize=12)
fig.text(0.01, 0.01, "\n".join(lines), fontsize=9, va="bottom", ha="left")
fig.tight_layout(rect=(0, 0.05, 1, 1))
Path(args.out).mkdir(parents=True, exist_ok=True)
fig.savefig(Path(args.out) / "correlation-map.png", dpi=100)
print(f"wrote {Path(args.out) / 'correlation-map.png'}")
