"""train_many against the plain loop, measured in one run, interleaved.

For each configuration and each M, the same M models (tanh MLPs, xavier_uniform, Adam, seeds 0..M-1)
are trained by the plain loop (``initlab.train``, one model after another) and by ``train_many``,
alternately, ``--repeats`` times; both throughputs (model-steps per second) are printed with their
paired ratio (median of the per-repeat ratios). Both timings include building and initializing the
models and the evaluations every ``--eval-every`` steps.

    python benchmarks/train_many.py --repeats 3 --memory     # the README's table (about 10 minutes on 2 cores)
    python benchmarks/train_many.py --device cuda --configs 1 --models 1000,10000   # on a GPU
    bash benchmarks/gpu_check.sh                             # on a GPU: the CUDA tests, then this

``--plain-models K`` (default 10) times the plain loop on the first K of the M models only (its
throughput per model does not depend on M), to keep the run short. ``--memory`` also measures the peak RSS of
M = 100 models of [64] x 10, full batch, in a fresh process for each path.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

import initlab

CONFIGS = {  # name: (hidden, batch_size)
    "minibatch 128, [16] x 3": ([16] * 3, 128),
    "minibatch 128, [64] x 10": ([64] * 10, 128),
    "full batch, [16] x 3": ([16] * 3, None),
    "full batch, [64] x 10": ([64] * 10, None),
}


def runs(m: int) -> list[dict]:
    return [{"scheme": "xavier_uniform", "seed": s} for s in range(m)]


def plain(data, hidden, batch_size, m, args, device) -> float:
    start = time.perf_counter()
    for run in runs(m):
        model = initlab.mlp(2, hidden, 1, "tanh").to(device)
        initlab.initialize(model, run["scheme"], seed=run["seed"])
        initlab.train(model, data, steps=args.steps, lr=0.01, optimizer="adam", batch_size=batch_size,
                      seed=run["seed"], eval_every=args.eval_every, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return m * args.steps / (time.perf_counter() - start)


def many(data, hidden, batch_size, m, args, device) -> float:
    start = time.perf_counter()
    initlab.train_many(data, runs(m), hidden=hidden, activation="tanh", steps=args.steps, lr=0.01,
                       optimizer="adam", batch_size=batch_size, eval_every=args.eval_every, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return m * args.steps / (time.perf_counter() - start)


def peak_rss(path: str, args) -> float:
    """Peak RSS (MB) of a fresh process training 100 models of [64] x 10, full batch, by ``path``."""
    code = (f"import sys, resource, torch; sys.path.insert(0, {str(Path(__file__).parent)!r});"
            f"torch.set_num_threads({args.threads}); import train_many as b, initlab;"
            f"a=b.argparse.Namespace(steps={args.steps}, eval_every={args.eval_every});"
            f"d=initlab.datasets.make('moons', n=1000, noise=0.2, seed=0);"
            f"b.{path}(d, [64]*10, None, 100, a, torch.device('cpu'));"
            f"print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--models", default=None,
                        help="values of M, comma-separated (default 1,10,100; on CUDA also 1000,10000)")
    parser.add_argument("--configs", default=",".join(str(i) for i in range(len(CONFIGS))),
                        help="indices into: " + "; ".join(f"{i} = {k}" for i, k in enumerate(CONFIGS)))
    parser.add_argument("--plain-models", type=int, default=10,
                        help="time the plain loop on at most K models (its throughput does not depend on M)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--memory", action="store_true", help="also measure peak RSS (100 x [64] x 10, full batch)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    args.models = args.models or ("1,10,100,1000,10000" if device.type == "cuda" else "1,10,100")
    data = initlab.datasets.make("moons", n=1000, noise=0.2, seed=0)
    names = list(CONFIGS)
    rows = []
    warm = argparse.Namespace(steps=3, eval_every=args.eval_every)
    for hidden, batch_size in CONFIGS.values():  # first calls pay for lazy initialization: not timed
        plain(data, hidden, batch_size, 1, warm, device)
        many(data, hidden, batch_size, 2, warm, device)
    print(f"torch {torch.__version__}, {args.threads} threads, device {device}, {args.steps} steps, "
          f"Adam, tanh, n = 1000 (700 train), eval every {args.eval_every}")
    print(f"{'configuration':<26}{'M':>6}{'plain (model-steps/s)':>24}{'train_many':>14}{'ratio':>9}")
    for c in (int(i) for i in args.configs.split(",")):
        hidden, batch_size = CONFIGS[names[c]]
        for m in (int(v) for v in args.models.split(",")):
            k = min(m, args.plain_models or m)
            pairs = []
            for _ in range(args.repeats):
                pairs.append((plain(data, hidden, batch_size, k, args, device),
                              many(data, hidden, batch_size, m, args, device)))
            ratio = statistics.median(b / a for a, b in pairs)
            p, q = statistics.median(a for a, _ in pairs), statistics.median(b for _, b in pairs)
            rows.append({"configuration": names[c], "M": m, "plain": p, "train_many": q, "ratio": ratio})
            print(f"{names[c]:<26}{m:>6}{p:>24.0f}{q:>14.0f}{ratio:>8.1f}x", flush=True)
    if args.memory:
        a, b = peak_rss("plain", args), peak_rss("many", args)
        rows.append({"peak_rss_mb": {"plain": a, "train_many": b, "ratio": b / a}})
        print(f"peak RSS, 100 x [64] x 10 full batch: plain {a:.0f} MB, train_many {b:.0f} MB, ratio {b / a:.2f}")
    if args.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
