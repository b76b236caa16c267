"""
Fixup: a deep residual network without normalization, trained from its first step
==================================================================================

What to look at: a residual MLP with no normalization layer (an input Linear, L Fixup blocks, a Linear
readout), built here with the parts Fixup adds to the *architecture* (Zhang, Dauphin and Ma 2019):
four scalar biases per block (before each Linear and after the branch, all 0) and one scalar
multiplier per block (1). ``initlab.initialize(model, "fixup")`` sets the *initialization*: the first
Linear of each branch He-normal scaled by L^(-1/(2m-2)) (m = 2 layers per branch), the branch's last
Linear and the readout 0. The manifest says which tensor got which role, and that the scalars are the
model's own.

- left, the residual stream's std after each block (:func:`initlab.residual_stream`) at
  initialization: from PyTorch's default every block adds a branch of about the stream's size and the
  std grows with depth; from Fixup every branch starts at 0 and the stream is the same at every block;
- right, the training loss on ``make_moons`` (full batch, SGD, lr 0.1) of the same network from both
  initializations, 3 seeds each, mean and lowest to highest.

The caption under the panels gives the measured numbers.
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import initlab  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
parser.add_argument("--quick", action="store_true", help="a shallower network, fewer steps (for tests)")
parser.add_argument("--out", default="initlab-out/gallery", help="folder for the figure")
args = parser.parse_args()
torch.set_num_threads(1)
DEPTH, WIDTH, STEPS, SEEDS = (4, 16, 20, [0, 1]) if args.quick else (32, 64, 300, [0, 1, 2])


class FixupBlock(nn.Module):
    """x + scale * fc2(relu(fc1(x + b1a) + b1b) + b2a) + b2b: Fixup's block, its scalars included."""

    def __init__(self, d):
        super().__init__()
        self.bias1a, self.bias1b, self.bias2a, self.bias2b = (nn.Parameter(torch.zeros(1)) for _ in range(4))
        self.fc1, self.fc2 = nn.Linear(d, d, bias=False), nn.Linear(d, d, bias=False)
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x):
        out = torch.relu(self.fc1(x + self.bias1a) + self.bias1b)
        return x + self.fc2(out + self.bias2a) * self.scale + self.bias2b


class FixupNet(nn.Module):
    def __init__(self, depth=DEPTH, d=WIDTH):
        super().__init__()
        self.inp = nn.Linear(2, d)
        self.blocks = nn.Sequential(*(FixupBlock(d) for _ in range(depth)))
        self.readout = nn.Linear(d, 1)

    def forward(self, x):
        return self.readout(torch.relu(self.blocks(self.inp(x))))


data = initlab.datasets.make("moons", n=400, noise=0.2, seed=0)
manifest = None
streams, losses = {}, {"PyTorch's default": [], "fixup": []}
for label in losses:
    for seed in SEEDS:
        torch.manual_seed(seed)  # PyTorch's default draws from the global stream
        model = FixupNet()
        if label == "fixup":
            manifest = initlab.initialize(model, "fixup", seed=seed)
        if seed == SEEDS[0]:
            streams[label] = initlab.residual_stream(model, data.X_train, blocks="blocks")
        result = initlab.train(model, data, steps=STEPS, lr=0.1, eval_every=max(1, STEPS // 30))
        losses[label].append(result.history)

print("fixup found:", {role: len(names) for role, names in manifest.recipe["roles_found"].items()})
for note in manifest.recipe.get("notes", []):
    print("note:", note)

fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5.2))
caption = []
for (label, stream), color in zip(streams.items(), ("C0", "C1")):
    stds = [r["stream_std"] for r in stream.rows]
    left.plot(range(1, len(stds) + 1), stds, "o-", ms=3, color=color, label=label)
    caption.append(f"{label}: stream std {stds[0]:.3g} after block 1, {stds[-1]:.3g} after block {len(stds)}")
left.set(xlabel="block", ylabel="std of the residual stream after the block", yscale="log",
         title="at initialization (one batch of moons points)")
left.grid(alpha=0.3)
left.legend()
for (label, histories), color in zip(losses.items(), ("C0", "C1")):
    steps = histories[0]["step"]
    curves = torch.tensor([[float("nan") if v is None else v for v in h["train_loss"]] for h in histories])
    right.plot(steps, curves.mean(0), color=color, label=f"{label} (mean of {len(histories)} seeds)")
    right.fill_between(steps, curves.min(0).values, curves.max(0).values, color=color, alpha=0.2)
    caption.append(f"{label}: training loss at step {steps[-1]} {curves[:, -1].mean():.3g} "
                   f"(seeds {curves[:, -1].min():.3g} to {curves[:, -1].max():.3g})")
right.set(xlabel="step", ylabel="training loss (log scale)", yscale="log",
          title=f"make_moons, full batch, SGD lr 0.1, {STEPS} steps")
right.grid(alpha=0.3)
right.legend()
fig.suptitle(f"A residual MLP of {DEPTH} Fixup blocks (width {WIDTH}, no normalization): "
             "PyTorch's default against initlab.initialize(model, 'fixup')")
fig.text(0.01, 0.01, "\n".join(caption), fontsize=8, va="bottom")
fig.tight_layout(rect=(0, 0.14, 1, 1))
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
fig.savefig(out / "fixup_resnet.png", dpi=110)
print("\n".join(caption))
print(f"wrote {out / 'fixup_resnet.png'}")
