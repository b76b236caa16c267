"""initlab.diagnose against one plain forward and backward pass, on a transformer, measured in one run.

The model is a 12-layer ``nn.TransformerEncoder`` (d = 256, 8 heads, feed-forward 1024, batch_first,
PyTorch's defaults otherwise: post-norm, dropout 0.1, train mode), the inputs a float batch of
16 sequences x 128 tokens x 256 features. Each repeat times, alternately, one plain pass
(``model(x).sum().backward()``) and one ``initlab.diagnose(model, x)`` (hooks, a backward pass, the
per-layer statistics, the model restored); the median of each and the median of the per-repeat ratios
are printed. The issue's goal: diagnose under 3x the plain pass.

    python benchmarks/diagnose_transformer.py                      # 2 threads, 3 repeats
    python benchmarks/diagnose_transformer.py --threads 8 --repeats 5
    python benchmarks/diagnose_transformer.py --profile 25         # also the 25 costliest functions of diagnose
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import time

import torch
from torch import nn

import initlab


def transformer(args) -> nn.Module:
    layer = nn.TransformerEncoderLayer(args.d, args.heads, args.ff, batch_first=True)
    return nn.TransformerEncoder(layer, args.layers, enable_nested_tensor=False)


def plain(model: nn.Module, x: torch.Tensor) -> float:
    start = time.perf_counter()
    model(x).sum().backward()
    seconds = time.perf_counter() - start
    model.zero_grad(set_to_none=True)  # diagnose would call a model holding gradients "trained"
    return seconds


def diagnose(model: nn.Module, x: torch.Tensor) -> float:
    start = time.perf_counter()
    initlab.diagnose(model, x)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--d", type=int, default=256, help="model width")
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--ff", type=int, default=1024, help="feed-forward width")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="after the timings, profile one diagnose call and print its N costliest functions")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = transformer(args)
    x = torch.randn(args.batch, args.tokens, args.d, generator=torch.Generator().manual_seed(1))
    plain(model, x), diagnose(model, x)  # first calls pay for lazy initialization: not timed
    pairs = [(plain(model, x), diagnose(model, x)) for _ in range(args.repeats)]
    p, q = statistics.median(a for a, _ in pairs), statistics.median(b for _, b in pairs)
    ratio = statistics.median(b / a for a, b in pairs)
    print(f"torch {torch.__version__}, {args.threads} threads; TransformerEncoder {args.layers} layers, d = {args.d}, "
          f"{args.heads} heads, feed-forward {args.ff}; inputs {args.batch} x {args.tokens} x {args.d}; "
          f"median of {args.repeats}")
    print(f"{'forward + backward (s)':>24}{'diagnose (s)':>15}{'ratio':>9}")
    print(f"{p:>24.3f}{q:>15.3f}{ratio:>8.2f}x   (goal: < 3x)")
    if args.json:
        print(json.dumps({"plain_s": p, "diagnose_s": q, "ratio": ratio, "pairs": pairs, **vars(args)}, indent=2))
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(initlab.diagnose, model, x)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.profile)


if __name__ == "__main__":
    main()
