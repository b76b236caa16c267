"""
Width sweeps: muP's coordinate check, with a fitted slope per module
====================================================================

What to look at: an MLP (16 inputs, two ReLU hidden layers of width 128 to 2048, 10 classes) trained
3 steps of SGD on one batch, in two parametrizations; :func:`initlab.width_sweep` records every
module's mean |output| (muP's "l1") at each step and fits its slope against the width on log-log
axes (the number in each legend: 0 means the same size at every width).

- top row, standard parametrization (He-normal weights, one learning rate 0.2): at initialization
  every module is flat in width; after one step the output layer grows about in proportion to the
  width, so a learning rate tuned on a narrow model blows up a wide one;
- bottom row, muP for SGD (Yang et al. 2021, "Tensor Programs V", Table 3), written here with plain
  torch: the readout starts at zero and learns at lr / m, the input layer and the hidden biases at
  lr * m, the hidden weights at lr (m = width / 128). Every module stays flat, so the learning rate
  transfers across widths. (The readout's output is 0 at step 0 at every width.)

Each panel's title gives the verdict of its row and step.
"""

import argparse
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import initlab  # noqa: E402
from initlab import plots  # noqa: E402
from initlab.widths import verdict  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
parser.add_argument("--quick", action="store_true", help="narrower models (for tests)")
parser.add_argument("--out", default="examples-out", help="folder for the figure")
args = parser.parse_args()

widths, seeds = ([32, 64, 128], [0]) if args.quick else ([128, 256, 512, 1024, 2048], [0, 1, 2])
BASE, LR, STEPS = widths[0], 0.2, 3
g = torch.Generator().manual_seed(1)
x, y = torch.randn(64, 16, generator=g), torch.randint(0, 10, (64,), generator=g)


def standard(width):
    model = initlab.mlp(16, [width, width], 10, "relu")
    initlab.initialize(model, "he_normal", seed=int(torch.randint(0, 2**31, (1,))))  # seeded by width_sweep
    return model


def mup(width):
    model = standard(width)
    nn.init.zeros_(model.out.weight)
    return model


def mup_sgd(model):
    m = model.fc2.in_features / BASE
    return torch.optim.SGD([{"params": [model.fc1.weight, model.fc1.bias, model.fc2.bias], "lr": LR * m},
                            {"params": [model.fc2.weight, model.out.bias], "lr": LR},
                            {"params": [model.out.weight], "lr": LR / m}], lr=LR)


sweeps = {"standard parametrization": initlab.width_sweep(standard, widths, x, steps=STEPS, lr=LR, seeds=seeds,
                                                          targets=y),
          "muP": initlab.width_sweep(mup, widths, x, steps=STEPS, optimizer=mup_sgd, seeds=seeds, targets=y)}

fig, axes = plt.subplots(2, STEPS, figsize=(5 * STEPS, 9.5), sharey="row")
for row, (name, sweep) in zip(axes, sweeps.items()):
    plots.width_sweep(sweep, axes=row)
    for ax, step in zip(row, range(STEPS)):
        said = textwrap.fill(verdict(sweep.slopes[sweep.slopes["step"] == step]), 52)
        ax.set_title(f"{name}, {ax.get_title()}:\n{said}", fontsize=9)
    out = sweep.slopes[sweep.slopes["module"] == "out"]
    print(f"{name}: {sweep.verdict}; output layer's slope by step: "
          + ", ".join("n/a (0)" if s != s else f"{s:+.2f}" for s in out["slope"]))
fig.suptitle(f"mean |output| of each module against the width, {STEPS} SGD steps on one batch "
             f"({len(seeds)} seed{'s' if len(seeds) > 1 else ''} per width)", fontsize=12)
fig.tight_layout()
Path(args.out).mkdir(parents=True, exist_ok=True)
fig.savefig(Path(args.out) / "width-sweep.png", dpi=100)
print(f"wrote {Path(args.out) / 'width-sweep.png'}")
