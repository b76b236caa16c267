"""
Training a 24-block transformer from four initializations
=========================================================

What to look at: one pre-norm transformer (24 blocks ``x = x + attn(ln_1(x)); x = x + mlp(ln_2(x))``,
d = 64, 4 heads, ``nn.MultiheadAttention`` with a causal mask, built here from plain ``torch.nn``)
trained with AdamW on a synthetic task: reverse a sequence of 6 random digits (the model reads
``a1 .. a6 SEP`` and must write ``a6 .. a1``; the loss is the cross-entropy on those 6 positions only).
The same model, the same batches and the same optimizer for four initializations, 3 seeds each:

- PyTorch's default: each layer's own ``reset_parameters()`` (the embeddings N(0, 1));
- ``initlab.initialize(model, "gpt2", n_layer=24)``: every Linear and Embedding N(0, 0.02^2), the
  two projections that close each block's branches (``attn.out_proj``, ``mlp.2``) N(0, 0.02^2 / 48);
- ``initlab.initialize(model, "fixup")``: the recipe finds 48 branches of m = 2 layers (attention's
  q, k, v -> out_proj; mlp.0 -> mlp.2), draws the first layer of each He x L^(-1/2), zeroes the last
  one and the readout; the embeddings keep PyTorch's default. Only Fixup's *initialization*: this
  model keeps its LayerNorms and has none of Fixup's scalar biases and multipliers, so it is
  "Fixup-style zero branches", not the Fixup architecture;
- ``initlab.initialize(model, "mimetic")``: each ``nn.MultiheadAttention`` so that, per head,
  W_q W_k^T ~ 0.7 Z + 0.7 I and W_v W_out ~ 0.4 Z - 0.4 I; every other tensor by PyTorch's default.

Left: the loss on a fixed held-out batch, every few steps, the line the mean over the seeds and the
band the lowest to the highest seed (log scale). Right: the held-out token accuracy, the same way.
The caption gives the final numbers per initialization, as measured; ``--quick`` runs a tiny version.
"""

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import initlab  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
parser.add_argument("--quick", action="store_true", help="a tiny model and a few steps (for tests)")
parser.add_argument("--out", default="examples-out", help="folder for the figure")
args = parser.parse_args()

# the setup: model, task and training (--quick: tiny, only to check the script runs)
n_layer, d, heads = (2, 16, 2) if args.quick else (24, 64, 4)
digits, length = 10, (4 if args.quick else 6)  # tokens 0..9, sequences of `length` of them
steps, batch, lr, every = (6, 8, 3e-3, 2) if args.quick else (100, 16, 2e-3, 10)
seeds = [0, 1, 2]
torch.set_num_threads(1)  # matrices this small: one thread was as fast as two on a 2-core CPU, and far faster when busy
SEP, vocab, T = digits, digits + 1, 2 * length  # input: a1..an SEP b1..b(n-1); targets at the last n positions


def make_batch(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids (n, 2 length) and the targets: the reversed sequence, read after SEP."""
    a = torch.randint(0, digits, (n, length), generator=g)
    rev = a.flip(1)
    ids = torch.cat([a, torch.full((n, 1), SEP), rev[:, :-1]], dim=1)
    return ids, rev


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x, mask):
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, is_causal=True, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(T, d)
        self.h = nn.ModuleList(Block() for _ in range(n_layer))
        self.ln_f, self.head = nn.LayerNorm(d), nn.Linear(d, vocab)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(T), persistent=False)

    def forward(self, ids):
        x = self.wte(ids) + self.wpe(torch.arange(ids.shape[1]))
        for block in self.h:
            x = block(x, self.mask)
        return self.head(self.ln_f(x))[:, length:]  # the logits at SEP and after: predict b1..bn


INITS = {  # name -> what to do to a model PyTorch has just built
    "PyTorch's default": lambda model, seed: None,
    "gpt2": lambda model, seed: initlab.initialize(model, "gpt2", n_layer=n_layer, seed=seed),
    "fixup (zero branches)": lambda model, seed: initlab.initialize(model, "fixup", seed=seed),
    "mimetic": lambda model, seed: initlab.initialize(model, "mimetic", seed=seed),
}


def evaluate(model, ids, targets) -> tuple[float, float]:
    model.eval()
    with torch.no_grad():
        logits = model(ids)
    model.train()
    loss = nn.functional.cross_entropy(logits.reshape(-1, vocab), targets.reshape(-1))
    return loss.item(), (logits.argmax(-1) == targets).float().mean().item()


def run(init, seed: int) -> dict[str, list]:
    """Train one model; the held-out loss and accuracy every `every` steps (step 0 included)."""
    torch.manual_seed(seed)  # PyTorch's own initialization draws from the global generator
    model = Transformer()
    init(model, seed)
    data, held_out = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(10_000 + seed)
    test_ids, test_targets = make_batch(64, held_out)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    history = {"step": [], "loss": [], "accuracy": []}
    for step in range(steps + 1):
        if step % every == 0 or step == steps:
            loss, acc = evaluate(model, test_ids, test_targets)
            history["step"].append(step), history["loss"].append(loss), history["accuracy"].append(acc)
        if step == steps:
            break
        ids, targets = make_batch(batch, data)
        loss = nn.functional.cross_entropy(model(ids).reshape(-1, vocab), targets.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return history


start = time.perf_counter()
results = {name: [run(init, seed) for seed in seeds] for name, init in INITS.items()}
print(f"{len(INITS)} initializations x {len(seeds)} seeds, {steps} steps each: {time.perf_counter() - start:.0f} s")

lines = []
for name, runs in results.items():
    loss = [r["loss"][-1] for r in runs]
    acc = [r["accuracy"][-1] for r in runs]
    lines.append(f"{name}: held-out loss at step {steps} {np.mean(loss):.3g} (seeds {min(loss):.3g} to "
                 f"{max(loss):.3g}), token accuracy {np.mean(acc):.1%} ({min(acc):.1%} to {max(acc):.1%}); "
                 f"at step 0 {np.mean([r['loss'][0] for r in runs]):.3g}")
    print(lines[-1])

colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
fig, axes = plt.subplots(1, 2, figsize=(13, 5.6))
for color, (name, runs) in zip(colors, results.items()):
    x = runs[0]["step"]
    for ax, key in zip(axes, ("loss", "accuracy")):
        y = np.array([r[key] for r in runs])
        ax.plot(x, y.mean(0), color=color, label=f"{name} (mean of {len(runs)} seeds)")
        ax.fill_between(x, y.min(0), y.max(0), color=color, alpha=0.2, linewidth=0)
axes[0].set(yscale="log", xlabel="step", ylabel="held-out cross-entropy (log scale)",
            title="held-out loss: mean over seeds, band = lowest to highest seed")
axes[1].set(xlabel="step", ylabel="held-out token accuracy", ylim=(0, 1.02),
            title="held-out token accuracy: mean, band = lowest to highest")
axes[0].axhline(np.log(digits), color="0.6", linestyle=":", linewidth=1)
axes[1].axhline(1 / digits, color="0.6", linestyle=":", linewidth=1,
                label=f"chance: accuracy 1/{digits}, loss ln {digits}")
for ax in axes:
    ax.grid(alpha=0.3)
axes[0].legend(*axes[1].get_legend_handles_labels(), fontsize=8.5, loc="lower left")  # empty in the full run
fig.suptitle(f"Pre-norm transformer, {n_layer} blocks, d = {d}, {heads} heads, reversing {length} tokens: "
             f"AdamW (lr {lr:g}), batch {batch}, {steps} steps, seeds {seeds}", fontsize=12)
fig.text(0.01, 0.01, "\n".join(lines), fontsize=8.5, va="bottom", ha="left")
fig.tight_layout(rect=(0, 0.1, 1, 1))
Path(args.out).mkdir(parents=True, exist_ok=True)
fig.savefig(Path(args.out) / "recipe_training.png", dpi=100)
print(f"wrote {Path(args.out) / 'recipe_training.png'}")
