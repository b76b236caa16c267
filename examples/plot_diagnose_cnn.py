"""
Diagnosing your own CNN
=======================

What to look at: the report card of a small convolutional network at initialization, once as
PyTorch built it and once with He's rule. Each line is a layer: the std of its output (forward) and of
the gradient reaching it (backward). The verdict names the first layer where a signal shrinks or grows
tenfold, and a fix.
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import initlab  # noqa: E402
from initlab import plots  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
parser.add_argument("--quick", action="store_true", help="a smaller network and batch (for tests)")
parser.add_argument("--out", default="examples-out", help="folder for the figure")
args = parser.parse_args()

depth = 3 if args.quick else 8


def small_cnn() -> nn.Module:
    layers, channels = [], 3
    for _ in range(depth):
        layers += [nn.Conv2d(channels, 16, 3, padding=1), nn.ReLU()]
        channels = 16
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))


images = torch.randn(16 if args.quick else 64, 3, 16, 16, generator=torch.Generator().manual_seed(1))
fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
for ax, scheme in zip(axes, [None, "he_normal"]):
    # scheme=None: the model as PyTorch built it; a name: a copy initialized with that scheme
    diagnosis = initlab.diagnose(small_cnn(), images, scheme=scheme, seed=0)
    print(diagnosis.table(), end="\n\n")
    plots.diagnosis_plot(diagnosis.to_dict(), ax=ax, title=f"{scheme or 'as built'}: {diagnosis.verdict['summary']}")
fig.tight_layout()
Path(args.out).mkdir(parents=True, exist_ok=True)
fig.savefig(Path(args.out) / "diagnose_cnn.png", dpi=100)
print(f"wrote {Path(args.out) / 'diagnose_cnn.png'}")
