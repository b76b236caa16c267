"""The wall-time overhead of ``initlab.watch`` on a plain training loop, measured side by side in one run.

Two models on CPU: a small CNN (3 convolutions of 16/32/32 channels on 3 x 32 x 32 images, batch 64,
10 classes) and a 6-layer transformer encoder (d_model 128, 4 heads, feed-forward 512, sequences of
64 tokens, batch 16, a 10-class head over the mean). For each model, ``--steps`` training steps
(forward, cross-entropy, backward, SGD step) are timed without a watch and with
``initlab.watch(model, every=k, optimizer=opt)`` for k = 1, 10, 100, on copies of the same model and
the same batches. The four variants take turns, ``--chunk`` steps each (so a slow spell of a shared
machine falls on all of them alike); the whole is repeated ``--repeats`` times and each variant's
figure is its best total (other work only slows a timing); the overhead is best(watched) /
best(plain) - 1.
The record's memory (``Watch.record.nbytes()``) is printed beside it.

    python benchmarks/watch_overhead.py                       # the default: 200 steps, 3 repeats
    python benchmarks/watch_overhead.py --steps 100 --repeats 2 --threads 2 --json

Each watched step is measured fully (per-layer statistics and histograms); the steps between pay
only the call to ``w.step(loss)``: no hook is on the model then.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import time
import warnings

import torch
from torch import nn

import initlab


class Transformer(nn.Module):
    def __init__(self, vocab=1000, d=128, heads=4, layers=6, length=64, classes=10):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(0.02 * torch.randn(length, d))
        layer = nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.0, batch_first=True, norm_first=True)
        self.enc = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d, classes)

    def forward(self, x):
        return self.head(self.enc(self.emb(x) + self.pos).mean(1))


def cnn():
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2, padding=1),
                         nn.ReLU(), nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(32 * 8 * 8, 10))


def batches(kind: str, steps: int, gen: torch.Generator) -> list:
    if kind == "cnn":
        return [(torch.randn(64, 3, 32, 32, generator=gen), torch.randint(0, 10, (64,), generator=gen))
                for _ in range(steps)]
    return [(torch.randint(0, 1000, (16, 64), generator=gen), torch.randint(0, 10, (16,), generator=gen))
            for _ in range(steps)]


class Runner:
    """One variant's loop over ``data``, a chunk of steps at a time (watched every ``every`` steps,
    or not at all); it keeps the seconds its steps took."""

    def __init__(self, model: nn.Module, data: list, every: int | None):
        self.model, self.data, self.every, self.seconds, self.at = model, data, every, 0.0, 0
        self.opt = torch.optim.SGD(model.parameters(), lr=0.01)
        self.w = initlab.watch(model, every=every, optimizer=self.opt) if every else None

    def run(self, steps: int) -> None:
        model, opt, w = self.model, self.opt, self.w
        start = time.perf_counter()
        for x, y in self.data[self.at:self.at + steps]:
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            if w is not None:
                w.step(loss)
        self.seconds += time.perf_counter() - start
        self.at += steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=10, help="Steps each variant runs before the next takes its turn.")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--models", default="cnn,transformer")
    parser.add_argument("--json", action="store_true", help="Also print the figures as JSON.")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")  # alerts of random-data training are not what is measured here
    variants = [None, 1, 10, 100]
    results = {}
    for kind in args.models.split(","):
        gen = torch.Generator().manual_seed(0)
        torch.manual_seed(0)
        base = cnn() if kind == "cnn" else Transformer()
        data = batches(kind, args.steps, gen)
        Runner(copy.deepcopy(base), data[:3], None).run(3)  # warm up
        best = {v: float("inf") for v in variants}
        nbytes = {}
        for _ in range(args.repeats):
            runners = {v: Runner(copy.deepcopy(base), data, v) for v in variants}
            for r in range(0, args.steps, args.chunk):  # the variants take turns, a chunk of steps each
                order = variants[r // args.chunk % len(variants):] + variants[:r // args.chunk % len(variants)]
                for v in order:
                    runners[v].run(min(args.chunk, args.steps - r))
            for v, runner in runners.items():
                best[v] = min(best[v], runner.seconds)
                nbytes[v] = runner.w.record.nbytes() if runner.w is not None else 0
        results[kind] = {"plain_ms_per_step": 1e3 * best[None] / args.steps,
                         **{f"every={v}": {"ms_per_step": 1e3 * best[v] / args.steps,
                                           "overhead": best[v] / best[None] - 1, "record_bytes": nbytes[v]}
                            for v in variants if v}}
    print(f"initlab.watch overhead, {args.steps} steps, best of {args.repeats}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    print(f"{'model':<12}{'plain ms/step':>14}" + "".join(f"{f'every={v}':>22}" for v in variants if v))
    for kind, r in results.items():
        cells = "".join(f"{r[f'every={v}']['ms_per_step']:>10.2f} ({100 * r[f'every={v}']['overhead']:+6.1f}%) "
                        for v in variants if v)
        print(f"{kind:<12}{r['plain_ms_per_step']:>14.2f}  {cells}")
    print("record bytes: " + ", ".join(f"{kind} {r['every=1']['record_bytes'] / 1e6:.2f} MB"
                                       for kind, r in results.items()))
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
