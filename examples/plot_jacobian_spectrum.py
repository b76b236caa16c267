"""
Dynamical isometry: the singular values of the input-output Jacobian
=====================================================================

What to look at: the singular values s of d output / d input of deep tanh and ReLU networks at
initialization, measured with :func:`initlab.jacobian_spectrum` (square MLPs, width 128).

- left, tanh on the critical line with a small q*: sigma_b^2 = 1e-5 and the sigma_w^2 = 1.04 where
  chi_1 = 1 (:func:`initlab.theory.critical_sigma_w2`), so the preactivations' variance sits at
  q* = 0.02 (the inputs are scaled to start there), at depths 32 and 128.
  Orthogonal weights keep every singular value close to 1 (a thin spike: *dynamical isometry*);
  Gaussian weights (``xavier_normal``, the same sigma_w^2) spread them over many decades, and more
  so the deeper the network (Pennington, Schoenholz and Ganguli 2017). Both have the same mean s^2,
  which is all that mean-field theory's chi_1 sees (its prediction is in the legend);
- right, ReLU with He's orthogonal weights (gain sqrt 2, also chi_1 = 1): half the units are off for
  any input, so the Jacobian zeroes directions whatever the weights, and no ReLU network is an isometry.

The spread in each label is std(s^2) / mean(s^2): 0 for a perfect isometry.
"""

import argparse
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import initlab  # noqa: E402
from initlab import plots  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
parser.add_argument("--quick", action="store_true", help="narrower, shallower networks (for tests)")
parser.add_argument("--out", default="examples-out", help="folder for the figure")
args = parser.parse_args()

width, depths, n = (32, [4, 16], 2) if args.quick else (128, [32, 128], 6)
sigma_b2 = 1e-5
sigma_w2 = initlab.theory.critical_sigma_w2("tanh", sigma_b2)
q_star = initlab.theory.length_fixed_point("tanh", sigma_w2, sigma_b2)
critical = {"gain": math.sqrt(sigma_w2), "bias_std": math.sqrt(sigma_b2)}
# layer 1's preactivation variance is sigma_w^2 E[x^2] + sigma_b^2: start it at q*
x = math.sqrt((q_star - sigma_b2) / sigma_w2) * torch.randn(n, width, generator=torch.Generator().manual_seed(12345))


def spectrum(activation, scheme, depth, **params):
    net = initlab.mlp(width, [width] * depth, width, activation)
    initlab.initialize(net, scheme, seed=0, **params)
    return initlab.jacobian_spectrum(net, x, n=None)


tanh = {f"{scheme}, depth {d}": spectrum("tanh", scheme, d, **critical) for d in depths
        for scheme in ("orthogonal", "xavier_normal")}
relu = {f"ReLU, He-orthogonal, depth {d}": spectrum("relu", "orthogonal", d, gain=math.sqrt(2)) for d in depths}
for label, s in {**tanh, **relu}.items():
    print(f"{label}: spread {s.spread:.3g}, mean s^2 {s.mean_s2:.3g} (predicted {s.predicted_mean_s2:.3g}), "
          f"max s {s.max:.3g}")

fig, axes = plt.subplots(1, 2, figsize=(14, 6.2), sharey=True)
plots.jacobian_spectrum(tanh, ax=axes[0])
axes[0].set_title(f"tanh at chi_1 = 1, q* = {q_star:.2g}: orthogonal against Gaussian weights")
plots.jacobian_spectrum(relu, ax=axes[1])
axes[1].set_title("ReLU at chi_1 = 1: no isometry, even with orthogonal weights")
fig.suptitle(f"Singular values of the input-output Jacobian at initialization (width {width}, {n} inputs)")
fig.tight_layout()
Path(args.out).mkdir(parents=True, exist_ok=True)
fig.savefig(Path(args.out) / "jacobian-spectrum.png", dpi=100)
print(f"wrote {Path(args.out) / 'jacobian-spectrum.png'}")
