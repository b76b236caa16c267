"""The memory of ``initlab.watch`` over a long run at ``every=1``: real training steps of a small MLP,
the record's size (``Watch.record.nbytes()``) and the process's peak memory measured as the run goes.

    python benchmarks/watch_memory.py                 # 100,000 steps
    python benchmarks/watch_memory.py --steps 20000

What to look at: the record's size stops growing once every series is full (``max_samples``), and the
process's resident memory with it; the figures are printed at a tenth, half and all of the run.
"""

from __future__ import annotations

import argparse
import resource
import time
import warnings

import torch
from torch import nn

import initlab


def rss_mb() -> float:
    """The process's peak resident memory so far, in MB (Linux reports it in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--max-samples", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")  # alerts are not what is measured here
    gen = torch.Generator().manual_seed(0)
    model = initlab.mlp(2, [16, 16], 1, "tanh")
    initlab.initialize(model, "xavier_uniform", seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x = torch.randn(64, 2, generator=gen)
    y = (x[:, :1] * x[:, 1:] > 0).float()
    w = initlab.watch(model, every=1, optimizer=opt, max_samples=args.max_samples)
    marks = {args.steps // 10, args.steps // 2, args.steps}
    start = time.perf_counter()
    print(f"initlab.watch at every=1 on a 2-16-16-1 tanh MLP, max_samples={args.max_samples}; torch {torch.__version__}")
    for step in range(1, args.steps + 1):
        opt.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(model(x), y)
        loss.backward()
        opt.step()
        w.step(loss)
        if step in marks:
            print(f"  step {step:>7,}: record {w.record.nbytes() / 1e6:.3f} MB, samples kept "
                  f"{len(w.record.steps):,}, process peak RSS {rss_mb():.0f} MB, {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
