"""
LSUV on a deep network
======================

What to look at: a deep ReLU MLP with PyTorch's default initialization loses its signal layer after
layer (left: the forward std falls by orders of magnitude). LSUV (Mishkin and Matas 2015) starts from
an orthogonal initialization and rescales each layer on a batch of data until its output has std 1
(right: flat at 1 through every layer).
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import initlab  # noqa: E402
from initlab import plots  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
parser.add_argument("--quick", action="store_true", help="a shallower network (for tests)")
parser.add_argument("--out", default="examples-out", help="folder for the figure")
args = parser.parse_args()

depth = 8 if args.quick else 30
model = initlab.mlp(64, [64] * depth, 1, "relu")
X = torch.randn(256, 64, generator=torch.Generator().manual_seed(0))
result = initlab.lsuv(model, X, target_std=1.0, tol=0.05)
print("before:", result.before.verdict["message"])
print("after: ", result.after.verdict["message"])
print("rescaling iterations per layer:", result.iterations)
fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
plots.diagnosis_plot(result.before.to_dict(), ax=axes[0], title="PyTorch's default")
plots.diagnosis_plot(result.after.to_dict(), ax=axes[1], title="after LSUV")
fig.tight_layout()
Path(args.out).mkdir(parents=True, exist_ok=True)
fig.savefig(Path(args.out) / "lsuv_deep_net.png", dpi=100)
print(f"wrote {Path(args.out) / 'lsuv_deep_net.png'}")
