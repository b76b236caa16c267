"""
Diagnosing a transformer
========================

What to look at: the report card of a small language model at initialization (token ids through an
Embedding, a 4-layer ``nn.TransformerEncoder``, a Linear head), once as PyTorch builds it and once
after :func:`initlab.lsuv`. Each line of a table is a weight layer, in forward order:

- the attention rows (``self_attn``): as built, the attention outputs have std 0.09 to 0.18, several
  times below the feed-forward rows (``linear1`` near 0.6): the softmax averages the value vectors over
  the tokens, and PyTorch's default ``out_proj`` shrinks them again. After lsuv every row is at std 1;
- the residual stream (the grey squares: the std of each block's output): it stays at 1 from block to
  block in both. PyTorch's default layer puts a LayerNorm after each residual sum (post-norm), so a
  sublayer's scale cannot build up along the depth. Try ``--norm-first``: with the norm moved inside
  the branch, nothing rescales the sum and the stream grows with depth, faster after lsuv, since every
  sublayer then adds unit variance;
- the verdict: "ok" for both. Layers of the same kind are compared along the depth, and no std moves
  tenfold from block to block, forward or backward. The attention and feed-forward rows differ by
  construction, not by depth, so the gap between them is not a trend.
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import initlab  # noqa: E402
from initlab import plots  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
parser.add_argument("--quick", action="store_true", help="a shorter batch (for tests)")
parser.add_argument("--norm-first", action="store_true", help="pre-norm blocks: the LayerNorm inside each branch")
parser.add_argument("--out", default="examples-out", help="folder for the figure")
args = parser.parse_args()

vocab, d, heads, depth = 1000, 64, 4, 4


class TinyLM(nn.Module):
    """Token ids -> Embedding -> TransformerEncoder -> Linear over the vocabulary."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(vocab, d)
        layer = nn.TransformerEncoderLayer(d, heads, dim_feedforward=2 * d, dropout=0.0, batch_first=True,
                                           norm_first=args.norm_first)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.head = nn.Linear(d, vocab)

    def forward(self, ids):
        return self.head(self.encoder(self.embedding(ids)))


def residual_stream(model: nn.Module, ids: torch.Tensor) -> list[float]:
    """The std of each encoder block's output: the residual stream after block 1, 2, ..."""
    stds = []
    handles = [block.register_forward_hook(lambda _m, _a, out: stds.append(float(out.std())))
               for block in model.encoder.layers]
    with torch.no_grad():
        model(ids)
    for h in handles:
        h.remove()
    return stds


def short(name: str) -> str:
    """'encoder.layers.2.self_attn' -> '3 attn' (blocks counted from 1, as the table's verdict counts)."""
    parts = name.split(".")
    if len(parts) < 4:
        return name
    return f"{int(parts[2]) + 1} " + {"self_attn": "attn", "linear1": "ff1", "linear2": "ff2"}.get(parts[3], parts[3])


def draw(diagnosis, stream: list[float], title: str, ax) -> None:
    doc = diagnosis.to_dict()
    plots.diagnosis_plot(doc, ax=ax, title=f"{title}: {doc['verdict']['summary']}")
    names = [r["name"] for r in doc["layers"]]
    ends = [i + 1 for i, n in enumerate(names) if n.endswith("linear2")]  # each block's last row
    ax.plot(ends, stream, "--s", color="0.45", markersize=5, label="residual stream: std of each block's output")
    ax.set_xticks(range(1, len(names) + 1), [short(n) for n in names], rotation=60, fontsize=8)
    ax.set_xlabel("layer (block and sublayer), in forward order")
    ax.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    ax.get_legend().remove()  # one legend for both panels, below them


ids = torch.randint(0, vocab, (8 if args.quick else 32, 32), generator=torch.Generator().manual_seed(1))
torch.manual_seed(0)  # PyTorch's own initialization draws from the global generator
model = TinyLM()
norm = "pre-norm" if args.norm_first else "post-norm"

built = initlab.diagnose(model, ids)
built_stream = residual_stream(model, ids)
print(f"as PyTorch builds it ({norm})")
print(built.table())
print("residual stream, std after each block:", "  ".join(f"{s:.2f}" for s in built_stream), end="\n\n")

result = initlab.lsuv(model, ids, seed=0)  # in place; result.before is the diagnosis above
lsuv_stream = residual_stream(model, ids)
print(f"after initlab.lsuv (every weight layer's output at std 1 +- 0.1; reached: {result.reached})")
print(result.after.table())
print("residual stream, std after each block:", "  ".join(f"{s:.2f}" for s in lsuv_stream))

fig, axes = plt.subplots(1, 2, figsize=(13, 5), sharey=True)
draw(built, built_stream, f"as PyTorch builds it ({norm})", axes[0])
draw(result.after, lsuv_stream, f"after initlab.lsuv ({norm})", axes[1])
fig.suptitle(f"TinyLM: Embedding -> {depth} x TransformerEncoderLayer (d = {d}, {heads} heads) -> Linear head, "
             f"{ids.shape[0]} x {ids.shape[1]} tokens", fontsize=11)
fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=3, fontsize=9, frameon=False)
fig.tight_layout(rect=(0, 0.06, 1, 1))
Path(args.out).mkdir(parents=True, exist_ok=True)
fig.savefig(Path(args.out) / "diagnose_transformer.png", dpi=100)
print(f"wrote {Path(args.out) / 'diagnose_transformer.png'}")
