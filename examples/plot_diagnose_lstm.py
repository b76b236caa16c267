"""
Diagnosing an LSTM classifier
=============================

What to look at: a 2-layer LSTM that reads token ids (Embedding -> LSTM -> Linear on the last step),
once as PyTorch builds it and once initialized the way recurrent networks usually are: Xavier for the
input weights, orthogonal recurrent weights, a forget-gate bias of 1, token vectors from normal(0, 1).

- The manifest: one row per gate block. PyTorch stacks an LSTM's four gates (input i, forget f, cell
  g, output o) in one tensor, and each block gets its own rule and fans. Only ``bias_ih``'s f block
  gets the forget-gate bias (the LSTM adds ``bias_ih`` and ``bias_hh``, so their sum is 1).
- The tables: the whole LSTM is one row (all its layers and time steps are inside one module), and
  its output std rises from about 0.06 to 0.15. Its gradient std is small in both because only the
  last step feeds the head, so every other position's gradient is zero.
- The verdicts: "ok" for both. The diagnosis compares layers, and these two are of different kinds.
  The depth that matters in an RNN is time, though, and the right panel shows it: the gradient of the
  output with respect to each token's vector. As built, it shrinks tenfold every five or six tokens,
  and the first token gets about 1e-9 of what the last one gets (the forget gate sits near
  sigmoid(0) = 0.5 and the recurrent weights shrink h). With orthogonal recurrent weights and forget
  bias 1 the first token still gets about a tenth.
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
parser.add_argument("--quick", action="store_true", help="a smaller batch (for tests)")
parser.add_argument("--out", default="examples-out", help="folder for the figure")
args = parser.parse_args()

vocab, d, hidden, classes, steps = 1000, 32, 64, 4, 50


class LSTMClassifier(nn.Module):
    """Token ids -> Embedding -> 2-layer LSTM -> Linear on the last step's output."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(vocab, d)
        self.lstm = nn.LSTM(d, hidden, num_layers=2, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, ids):
        out, _ = self.lstm(self.embedding(ids))
        return self.head(out[:, -1])


def gradient_through_time(model: LSTMClassifier, ids: torch.Tensor) -> torch.Tensor:
    """The norm of d(output . r) / d(token vector) at each position, averaged over the batch, for a
    fixed random direction r (as diagnose does without targets)."""
    vectors = model.embedding(ids).detach().requires_grad_(True)
    out, _ = model.lstm(vectors)
    logits = model.head(out[:, -1])
    r = torch.randn(logits.shape, generator=torch.Generator().manual_seed(2))
    (logits * r).sum().backward()
    model.zero_grad(set_to_none=True)  # leave no gradients: diagnose would call the model trained
    return vectors.grad.norm(dim=2).mean(0)


ids = torch.randint(0, vocab, (8 if args.quick else 32, steps), generator=torch.Generator().manual_seed(1))

torch.manual_seed(0)  # PyTorch's own initialization draws from the global generator
built = LSTMClassifier()
built_diagnosis = initlab.diagnose(built, ids)
built_time = gradient_through_time(built, ids)

torch.manual_seed(0)
model = LSTMClassifier()
manifest = initlab.initialize(model, "xavier_uniform", roles={"recurrent": "orthogonal",
                                                               "embedding": ("normal", {"std": 1.0})},
                              forget_bias=1.0, seed=0)
print("the manifest: what initialize drew, per parameter and per gate block")
print(manifest.table())
print()
diagnosis = initlab.diagnose(model, ids)
init_time = gradient_through_time(model, ids)

for title, dg, through_time in (("as PyTorch builds it", built_diagnosis, built_time),
                                ("xavier_uniform + orthogonal recurrent + forget bias 1", diagnosis, init_time)):
    print(title)
    print(dg.table())
    print(f"gradient reaching token 1 / token {steps}: {float(through_time[0] / through_time[-1]):.2g}", end="\n\n")

fig = plt.figure(figsize=(15, 4.6))
grid = fig.add_gridspec(1, 3, width_ratios=[1, 1, 1.3])
axes = [fig.add_subplot(grid[0])]
axes += [fig.add_subplot(grid[1], sharey=axes[0]), fig.add_subplot(grid[2])]
for ax, title, dg in ((axes[0], "as built", built_diagnosis), (axes[1], "Xavier + orthogonal + forget bias 1",
                                                                 diagnosis)):
    plots.diagnosis_plot(dg.to_dict(), ax=ax, title=f"{title}: {dg.verdict['summary']}")
    ax.set_xticks([1, 2], [f"{r['name']} ({r['kind']})" for r in dg.rows])
    ax.set_xlim(0.5, 2.5)
    ax.set_xlabel("layer, in forward order")
position = range(1, steps + 1)
axes[2].plot(position, built_time, "-o", markersize=3, color="#a00000", label="as built")
axes[2].plot(position, init_time, "-o", markersize=3, color="#116611", label="Xavier + orthogonal + forget bias 1")
axes[2].set_yscale("log")
axes[2].set(xlabel=f"token position (the head reads position {steps})",
            ylabel="gradient norm at the token's vector (log)", title="the depth of an RNN is time: gradient per token")
axes[2].title.set_fontsize(10)
axes[2].legend(fontsize=8)
fig.suptitle(f"Embedding({vocab}, {d}) -> LSTM({d}, {hidden}, 2 layers) -> Linear({hidden}, {classes}), "
             f"{ids.shape[0]} sequences x {steps} tokens", fontsize=11)
fig.tight_layout()
Path(args.out).mkdir(parents=True, exist_ok=True)
fig.savefig(Path(args.out) / "diagnose_lstm.png", dpi=100)
print(f"wrote {Path(args.out) / 'diagnose_lstm.png'}")
