"""The empirical NTK of a 64-example batch on an MLP of about 100k parameters, timed (target: under 2 s
on 2 CPU threads).

What is timed is one call of :func:`initlab.ntk`: the per-example Jacobians with respect to every
parameter (``vmap(jacrev)``), their products into the 64 x 64 kernel and its eigenvalues. The first
call is a warm-up (torch.func traces its transforms once); the figure is the best of ``--repeats``
calls after it (on a shared machine other work only slows a timing).

    python benchmarks/ntk.py --threads 2
    python benchmarks/ntk.py --threads 2 --method products
"""

from __future__ import annotations

import argparse
import time

import torch

import initlab

parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--examples", type=int, default=64)
parser.add_argument("--repeats", type=int, default=3)
parser.add_argument("--method", default="auto", choices=["auto", "jacobian", "products"])
args = parser.parse_args()

torch.set_num_threads(args.threads)
model = initlab.mlp(32, [256, 256, 96], 1, "tanh")  # 32*256 + 256*256 + 256*96 + 96 + biases
initlab.initialize(model, "xavier_normal", seed=0)
params = sum(p.numel() for p in model.parameters())
x = torch.randn(args.examples, 32, generator=torch.Generator().manual_seed(1))

initlab.ntk(model, x, method=args.method)  # warm-up
times = []
for _ in range(args.repeats):
    start = time.perf_counter()
    k = initlab.ntk(model, x, method=args.method)
    times.append(time.perf_counter() - start)
print(f"NTK of {args.examples} examples on an MLP of {params:,} parameters, {args.threads} threads, method "
      f"{k.method}: best {min(times):.3f} s of {args.repeats} (all: {', '.join(f'{t:.3f}' for t in times)}); "
      f"condition number {k.condition:.3g}; torch {torch.__version__}")
