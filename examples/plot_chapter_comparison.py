"""
The chapter's comparison: constant, PyTorch's default and Xavier
=================================================================

What to look at: three panels of the same deep network on the same ``make_moons`` points. From a
constant, the boundary is a straight line (every layer is one neuron: effective width 1); from
PyTorch's default and from Xavier (the chapter's exercise) it curves around the moons.
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
parser.add_argument("--quick", action="store_true", help="a short run (for tests)")
parser.add_argument("--out", default="examples-out", help="folder for the figure")
args = parser.parse_args()

data = initlab.datasets.make("moons", n=1000, noise=0.2, seed=0)
steps = 200 if args.quick else 2000
fig, axes = plt.subplots(1, 3, figsize=(13, 4.3), sharex=True, sharey=True)
for ax, (scheme, params) in zip(axes, [("constant", {"value": 0.05}), ("default", {}), ("xavier_uniform", {})]):
    model = initlab.mlp(2, [32, 32, 32, 32], 1, "relu")
    initlab.initialize(model, scheme, seed=0, **params)
    result = initlab.train(model, data, steps=steps, lr=0.1)
    widths = [w.effective_width for w in initlab.effective_width(model, data.X_train)]
    X = torch.cat([data.X_train, data.X_test])
    y = torch.cat([data.y_train, data.y_test])
    plots.probability_contours(initlab.probability_grid(model, X), X.numpy(), y.numpy(), ax=ax,
                               title=f"{scheme}: effective width {widths}",
                               accuracy=result.final["test_accuracy"])
    print(f"{scheme:15s} test accuracy {result.final['test_accuracy']:.3f}, effective width {widths}")
fig.tight_layout()
Path(args.out).mkdir(parents=True, exist_ok=True)
fig.savefig(Path(args.out) / "chapter_comparison.png", dpi=100)
print(f"wrote {Path(args.out) / 'chapter_comparison.png'}")
