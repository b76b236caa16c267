"""
Why depth recipes scale residual branches
=========================================

What to look at: pre-norm transformers (d = 128, blocks ``x = x + attn(ln_1(x)); x = x + mlp(ln_2(x))``,
built here from plain ``torch.nn``) of 4 to 96 blocks, measured at initialization with
:func:`initlab.residual_stream` on one batch of token ids:

- left, the variance of the residual stream after the last block, against the depth (log scales).
  With PyTorch's default init every branch adds about the same variance, so the stream's variance
  grows linearly in the depth L. GPT-2's rule scales the two Linears that close each block's branches
  by 1/sqrt(2L), so that the branches' total is the same at every depth, and the stream stays flat.
  The rule is applied by ``initlab.initialize(model, "gpt2", n_layer=L)`` where this initlab has the
  recipe (which also draws every weight and the embedding from normal(0, 0.02): its stream sits orders
  of magnitude lower), else by hand (the default's std / sqrt(2L) on those two Linears only);
- the dashed lines: the simple prediction, initial variance + L x the mean branch variance (a branch's
  variance is Var(block output - block input)), beside each measured line;
- right, the gradient's variance at the first block's input (the output dotted with a fixed random
  direction), against the depth. Its level differs between the two because each LayerNorm divides by
  the stream's std; how it moves with depth is in the caption, as measured.

The caption under the panels gives the measured numbers.
"""

import argparse
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import initlab  # noqa: E402
from initlab import plots  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
parser.add_argument("--quick", action="store_true", help="narrower, shallower models (for tests)")
parser.add_argument("--out", default="examples-out", help="folder for the figure")
args = parser.parse_args()

d, heads, vocab = (32, 2, 50) if args.quick else (128, 4, 256)
depths = [2, 4, 8] if args.quick else [4, 8, 16, 32, 64, 96]


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.c_attn, self.c_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)

    def forward(self, x):
        b, t, _ = x.shape
        q, k, v = (z.view(b, t, heads, d // heads).transpose(1, 2) for z in self.c_attn(x).split(d, -1))
        y = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).reshape(b, t, d))


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.c_fc, self.act, self.c_proj = nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d)

    def forward(self, x):
        return self.c_proj(self.act(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1, self.attn, self.ln_2, self.mlp = nn.LayerNorm(d), Attention(), nn.LayerNorm(d), MLP()

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, n_layer):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.h = nn.ModuleList(Block() for _ in range(n_layer))
        self.ln_f, self.lm_head = nn.LayerNorm(d), nn.Linear(d, vocab)

    def forward(self, ids):
        x = self.wte(ids)
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def scale_by_hand(model: GPT, n_layer: int, seed: int) -> None:
    """Each branch's closing Linear (attn.c_proj, mlp.c_proj) redrawn normal with PyTorch's default std
    (1 / sqrt(3 fan_in)) divided by sqrt(2 L)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for block in model.h:
            for lin in (block.attn.c_proj, block.mlp.c_proj):
                std = 1 / math.sqrt(3 * lin.in_features) / math.sqrt(2 * n_layer)
                nn.init.normal_(lin.weight, 0.0, std, generator=g)


def scaled(model: GPT, n_layer: int, seed: int) -> str:
    try:
        initlab.initialize(model, "gpt2", n_layer=n_layer, seed=seed)
        return "gpt2 recipe"
    except initlab.InitlabError:  # an initlab without the recipe: the same rule for the branches, by hand
        scale_by_hand(model, n_layer, seed)
        return "branches x 1/sqrt(2L), by hand"


ids = torch.randint(0, vocab, (4 if args.quick else 16, 16 if args.quick else 64),
                    generator=torch.Generator().manual_seed(1))
results: dict[str, list] = {"PyTorch's default": []}
scaled_label = None
for L in depths:
    torch.manual_seed(L)  # PyTorch's own initialization draws from the global generator
    results["PyTorch's default"].append(initlab.residual_stream(GPT(L), ids))
    torch.manual_seed(L)
    model = GPT(L)
    scaled_label = scaled(model, L, seed=L)
    results.setdefault(scaled_label, []).append(initlab.residual_stream(model, ids))

lines = []
for label, streams in results.items():
    first, last = streams[0], streams[-1]
    gap = max(abs(s.variance[-1] / s.predicted[-1] - 1) for s in streams)
    lines.append(f"{label}: stream variance after the last block {first.variance[-1]:.3g} at L = {depths[0]}, "
                 f"{last.variance[-1]:.3g} at L = {depths[-1]} (predicted {last.predicted[-1]:.3g}; largest gap to the "
                 f"prediction {gap:.0%}); gradient variance at block 1 {first.rows[0]['grad_std'] ** 2:.3g} -> "
                 f"{last.rows[0]['grad_std'] ** 2:.3g}")
    print(lines[-1])

spread = max(s.variance[-1] for v in results.values() for s in v) / min(s.variance[-1] for v in results.values()
                                                                         for s in v)
fig, axes = plt.subplots(1, 2, figsize=(13, 5.4))
plots.residual_stream_plot(results, ax=axes[0], log=spread > 100)
axes[0].set_title("the residual stream after the last block")
plots.residual_stream_plot(results, ax=axes[1], quantity="gradient", log=True)
axes[1].set_title("the gradient at the first block's input")
fig.suptitle(f"Pre-norm transformers, d = {d}, {heads} heads, {ids.shape[0]} x {ids.shape[1]} tokens: "
             f"the variance at initialization against depth", fontsize=12)
fig.text(0.01, 0.01, "\n".join(lines), fontsize=8.5, va="bottom", ha="left")
fig.tight_layout(rect=(0, 0.1, 1, 1))
Path(args.out).mkdir(parents=True, exist_ok=True)
fig.savefig(Path(args.out) / "residual_recipes.png", dpi=100)
print(f"wrote {Path(args.out) / 'residual_recipes.png'}")
