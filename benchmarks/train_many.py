"""train_many's engine and train_many itself, measured side by side in one run, interleaved.

Two tables, one run (``--part`` picks one):

1. **Engines** (one training step: minibatch, forward, backward, optimizer step; no evaluation), the
   same stacked parameters trained by
   - *hand-written*: the backward pass the first build wrote out by hand (fused aten backward kernels
     into scratch buffers, ``torch._fused_adam_``), kept here as the yardstick;
   - *autograd*: :class:`initlab.stack.StackedMLP`, train_many's engine (``loss.backward()`` over the
     stacked ``(M, in, out)`` leaves, then the optimizer table's stacked step);
   - *vmap*: PyTorch's model-ensembling tutorial (``stack_module_state`` + ``vmap(functional_call)``),
     autograd and ``torch.optim`` over the stacked parameters.
   Printed: model-steps per second of each, and the paired ratios hand-written / autograd (above 1:
   hand-written is faster) and autograd / vmap.
2. **train_many against the plain loop** (``initlab.train``, one model after another): both timings
   include building and initializing the models and the evaluations every ``--eval-every`` steps;
   ``steps only`` is train_many's throughput from its first step to its last with evaluation at the
   end only.

For each configuration and each M, the paths alternate ``--repeats`` times; the engines' figures are
the best of the repeats (on a shared machine other work only slows a timing) and their ratios the
ratios of the bests; train_many's figures are medians, its ratio the median of the per-repeat ratios. tanh, xavier_uniform, moons n = 1000 (700 train).

    python benchmarks/train_many.py --threads 2 --repeats 3        # both tables (a few minutes on 2 cores)
    python benchmarks/train_many.py --part plain --models 100 --plain-models 10 --repeats 3 --configs 0
    python benchmarks/train_many.py --device cuda --part plain --configs 1 --models 1000,10000

``--plain-models K`` (default 10) times the plain loop on the first K of the M models only (its
throughput per model does not depend on M). ``--memory`` also measures the peak RSS of M = 100
models of [64] x 10, full batch, in a fresh process for each path.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

import initlab
from initlab.optimizers import get as get_optimizer
from initlab.stack import StackedMLP, bce, views

CONFIGS = {  # name: (hidden, batch_size)
    "minibatch 128, [16] x 3": ([16] * 3, 128),
    "minibatch 128, [64] x 10": ([64] * 10, 128),
    "full batch, [16] x 3": ([16] * 3, None),
    "full batch, [64] x 10": ([64] * 10, None),
}
LR = 0.01
ACTIVATION_BUDGET = 1 << 21  # train_many's chunk of models: layer outputs' elements per chunk


def machine(threads: int, device: torch.device) -> str:
    model = platform.processor() or "unknown CPU"
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    where = f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    return f"{model}, {os.cpu_count()} cores{where}; torch {torch.__version__}, {threads} threads"


# --------------------------------------------------------------------------------------------------
# the engines: one step each on the same stacked parameters

class HandWritten:
    """The first build's engine, tanh only: forward into scratch buffers, the backward written out
    with aten's fused kernels, SGD or ``torch._fused_adam_`` on the flat buffer."""

    def __init__(self, flat: torch.Tensor, m: int, sizes: list[int], optimizer: str):
        self.flat, self.m, self.sizes, self.optimizer = flat, m, sizes, optimizer
        self.grad = torch.zeros_like(flat)
        self.W, self.b = views(flat, m, sizes)
        self.gW, self.gb = views(self.grad, m, sizes)
        self.state = [torch.zeros_like(flat), torch.zeros_like(flat), torch.zeros((), device=flat.device)]
        self.plans: dict = {}

    def plan(self, rows: slice, n: int) -> list:
        """Per layer: weight, its transpose, bias, output buffer, gradient views, d loss / d input buffer."""
        if (rows.start, n) not in self.plans:
            r, layers = rows.stop - rows.start, []
            for i, (W, b, gW, gb) in enumerate(zip(self.W, self.b, self.gW, self.gb)):
                z = self.flat.new_empty(r, n, W.shape[2])
                dh = self.flat.new_empty(r, n, W.shape[1]) if i else None
                layers.append((W[rows], W[rows].transpose(1, 2), b[rows].unsqueeze(1), z, gW[rows], gb[rows], dh))
            self.plans[(rows.start, n)] = layers
        return self.plans[(rows.start, n)]

    def step(self, x: torch.Tensor, y: torch.Tensor, chunk: int) -> None:
        for start in range(0, self.m, chunk):
            layers = self.plan(slice(start, min(start + chunk, self.m)), x.shape[0])
            h, inputs = x.expand(layers[0][0].shape[0], *x.shape), []
            for i, (W, _, b, z, *_rest) in enumerate(layers):
                inputs.append(h)
                torch.baddbmm(b, h, W, out=z)
                h = z if i == len(layers) - 1 else torch.tanh_(z)
            logits = h.squeeze(-1)
            dz = ((torch.sigmoid(logits) - y) / logits.shape[1]).unsqueeze(-1)
            for i in range(len(layers) - 1, -1, -1):
                if i < len(layers) - 1:
                    dh = layers[i + 1][6]
                    torch.bmm(dz, layers[i + 1][1], out=dh)
                    dz = torch.ops.aten.tanh_backward.grad_input(dh, layers[i][3], grad_input=dh)
                torch.bmm(inputs[i].transpose(1, 2), dz, out=layers[i][4])
                torch.sum(dz, 1, out=layers[i][5])
        if self.optimizer == "sgd":
            self.flat.add_(self.grad, alpha=-LR)
            return
        m, v, t = self.state
        t += 1
        torch._fused_adam_([self.flat], [self.grad], [m], [v], [], [t], lr=LR, beta1=0.9, beta2=0.999,
                           weight_decay=0.0, eps=1e-8, amsgrad=False, maximize=False)


class Autograd:
    """train_many's engine: :class:`initlab.stack.StackedMLP` and the optimizer table."""

    def __init__(self, flat: torch.Tensor, m: int, sizes: list[int], optimizer: str):
        self.net = StackedMLP(m, sizes, "tanh", flat.dtype, flat.device)
        self.net.flat.copy_(flat)
        self.row, self.lr = get_optimizer(optimizer), torch.tensor(LR, dtype=flat.dtype, device=flat.device)

    def step(self, x: torch.Tensor, y: torch.Tensor, chunk: int) -> None:
        self.net.backward(x, y, chunk)
        self.net.step(self.row, self.lr, {})


class Vmap:
    """PyTorch's model-ensembling tutorial: ``stack_module_state`` + ``vmap(functional_call)``."""

    def __init__(self, flat: torch.Tensor, m: int, sizes: list[int], optimizer: str):
        from torch.func import functional_call, stack_module_state

        W, b = views(flat, m, sizes)
        models = []
        for i in range(m):
            model = initlab.mlp(sizes[0], sizes[1:-1], 1, "tanh").to(flat.device, flat.dtype)
            with torch.no_grad():
                for p, v in zip(model.parameters(), [t for pair in zip(W, b) for t in (pair[0][i].t(), pair[1][i])]):
                    p.copy_(v)
            models.append(model)
        self.params, self.buffers = stack_module_state(models)
        base = copy.deepcopy(models[0]).to("meta")
        self.forward = torch.vmap(lambda p, bufs, x: functional_call(base, (p, bufs), (x,)), in_dims=(0, 0, None))
        self.opt = get_optimizer(optimizer).make(list(self.params.values()), lr=LR)

    def step(self, x: torch.Tensor, y: torch.Tensor, chunk: int) -> None:
        self.opt.zero_grad(set_to_none=True)
        bce(self.forward(self.params, self.buffers, x).squeeze(-1), y).sum().backward()
        self.opt.step()


ENGINES = {"hand-written": HandWritten, "autograd": Autograd, "vmap": Vmap}


def time_engines(data, hidden, batch_size, m, optimizer, args, device) -> dict[str, list[float]]:
    """Model-steps per second of each engine, ``args.repeats`` interleaved timings of
    ``args.engine_steps`` steps each, on the same start and the same minibatches."""
    X, y = data.X_train.to(device), data.y_train.to(device)
    sizes = [2, *hidden, 1]
    gen = torch.Generator().manual_seed(0)
    model = StackedMLP(m, sizes, "tanh", torch.float32, device)
    for W, b in zip(model.W, model.b):
        bound = (6 / (W.shape[1] + W.shape[2])) ** 0.5
        W.copy_(torch.rand(W.shape, generator=gen) * 2 * bound - bound)
        b.zero_()
    n = X.shape[0]
    batch = n if batch_size is None else batch_size
    idx = [torch.randperm(n, generator=gen)[:batch].to(device) for _ in range(args.engine_steps)]
    batches = [(X[i], y[i]) for i in idx]
    chunk = max(1, ACTIVATION_BUDGET // (batch * sum(sizes[1:]))) if device.type == "cpu" else m
    engines = {name: cls(model.flat.clone(), m, sizes, optimizer) for name, cls in ENGINES.items()}
    for engine in engines.values():  # the first steps pay for lazy set-up: not timed
        engine.step(*batches[0], chunk)
    rates: dict[str, list[float]] = {name: [] for name in engines}
    for _ in range(args.repeats):
        for name, engine in engines.items():
            start = time.perf_counter()
            for xb, yb in batches:
                engine.step(xb, yb, chunk)
            if device.type == "cuda":
                torch.cuda.synchronize()
            rates[name].append(m * len(batches) / (time.perf_counter() - start))
    return rates


def cells(args):
    """``(name, hidden, batch_size, M)`` of every row the tables print, in order."""
    for c in args.config_list:
        name = list(CONFIGS)[c]
        hidden, batch_size = CONFIGS[name]
        for m in args.model_list:
            yield name, hidden, batch_size, m


def heading(title: str, columns: str) -> list[dict]:
    """Print a table's title and column names; returns its (empty) list of rows."""
    print(f"\n{title}\n{columns}")
    return []


def engines_table(data, args, device) -> list[dict]:
    rows = heading(f"engines: one training step, no evaluation ({args.engine_steps} steps x {args.repeats} "
                   f"repeats); model-steps/s; hand/auto > 1: the hand-written backward is faster",
                   f"{'configuration':<26}{'opt':>5}{'M':>5}{'hand-written':>14}{'autograd':>10}{'vmap':>10}"
                   f"{'hand/auto':>11}{'auto/vmap':>11}")
    for name, hidden, batch_size, m in cells(args):
        for optimizer in args.optimizers.split(","):
            r = time_engines(data, hidden, batch_size, m, optimizer, args, device)
            med = {k: max(v) for k, v in r.items()}  # best of the repeats: a shared machine only slows
            hand, vmap = med["hand-written"] / med["autograd"], med["autograd"] / med["vmap"]
            rows.append({"configuration": name, "optimizer": optimizer, "M": m, **med,
                         "hand/auto": hand, "auto/vmap": vmap})
            print(f"{name:<26}{optimizer:>5}{m:>5}{med['hand-written']:>14.0f}{med['autograd']:>10.0f}"
                  f"{med['vmap']:>10.0f}{hand:>10.2f}x{vmap:>10.2f}x", flush=True)
    return rows


# --------------------------------------------------------------------------------------------------
# train_many against the plain loop

def runs(m: int) -> list[dict]:
    return [{"scheme": "xavier_uniform", "seed": s} for s in range(m)]


def plain(data, hidden, batch_size, m, args, device) -> float:
    start = time.perf_counter()
    for run in runs(m):
        model = initlab.mlp(2, hidden, 1, "tanh").to(device)
        initlab.initialize(model, run["scheme"], seed=run["seed"])
        initlab.train(model, data, steps=args.steps, lr=LR, optimizer="adam", batch_size=batch_size,
                      seed=run["seed"], eval_every=args.eval_every, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return m * args.steps / (time.perf_counter() - start)


def many(data, hidden, batch_size, m, args, device, eval_every=None) -> tuple[float, float]:
    """Model-steps/s of the whole call, and from step 1 to the last (set-up and step 0's evaluation out)."""
    marks = {}

    def mark(step: int) -> None:
        if step in (0, args.steps):
            if device.type == "cuda":
                torch.cuda.synchronize()
            marks[step] = time.perf_counter()

    start = time.perf_counter()
    initlab.train_many(data, runs(m), hidden=hidden, activation="tanh", steps=args.steps, lr=LR, optimizer="adam",
                       batch_size=batch_size, eval_every=eval_every or args.eval_every, device=device, callback=mark)
    if device.type == "cuda":
        torch.cuda.synchronize()
    end = time.perf_counter()
    return m * args.steps / (end - start), m * args.steps / (marks[args.steps] - marks[0])


def plain_table(data, args, device) -> list[dict]:
    rows = heading(f"train_many against the plain loop: {args.steps} steps, Adam, model-steps/s; 'with eval': "
                   f"set-up and evaluation every {args.eval_every} steps included; 'steps only': evaluation at the "
                   f"end only, no set-up",
                   f"{'configuration':<26}{'M':>6}{'plain':>10}{'train_many with eval':>22}{'ratio':>8}"
                   f"{'train_many steps only':>23}")
    for name, hidden, batch_size, m in cells(args):
        k = min(m, args.plain_models or m)
        triples = []
        for _ in range(args.repeats):
            a = plain(data, hidden, batch_size, k, args, device)
            b = many(data, hidden, batch_size, m, args, device)[0]
            triples.append((a, b, many(data, hidden, batch_size, m, args, device, eval_every=args.steps)[1]))
        ratio = statistics.median(b / a for a, b, _ in triples)
        p, q, s = (statistics.median(t[i] for t in triples) for i in range(3))
        rows.append({"configuration": name, "M": m, "plain": p, "train_many": q, "ratio": ratio, "steps_only": s})
        print(f"{name:<26}{m:>6}{p:>10.0f}{q:>22.0f}{ratio:>7.1f}x{s:>23.0f}", flush=True)
    return rows


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
    parser.add_argument("--part", choices=["both", "engines", "plain"], default="both")
    parser.add_argument("--steps", type=int, default=100, help="steps of each train_many and plain-loop run")
    parser.add_argument("--engine-steps", type=int, default=5, help="steps of each engine timing")
    parser.add_argument("--optimizers", default="sgd,adam", help="optimizers of the engines table")
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
    args.model_list = [int(v) for v in args.models.split(",")]
    args.config_list = [int(i) for i in args.configs.split(",")]
    data = initlab.datasets.make("moons", n=1000, noise=0.2, seed=0)
    warm = argparse.Namespace(steps=3, eval_every=args.eval_every)
    for hidden, batch_size in CONFIGS.values():  # first calls pay for lazy initialization: not timed
        plain(data, hidden, batch_size, 1, warm, device)
        many(data, hidden, batch_size, 2, warm, device)
    print(f"{machine(args.threads, device)}; device {device}; tanh, xavier_uniform, moons n = 1000 (700 train)")
    out = {"machine": machine(args.threads, device), "command": " ".join(sys.argv)}
    if args.part in ("both", "engines"):
        out["engines"] = engines_table(data, args, device)
    if args.part in ("both", "plain"):
        out["plain"] = plain_table(data, args, device)
    if args.memory:
        a, b = peak_rss("plain", args), peak_rss("many", args)
        out["peak_rss_mb"] = {"plain": a, "train_many": b, "ratio": b / a}
        print(f"peak RSS, 100 x [64] x 10 full batch: plain {a:.0f} MB, train_many {b:.0f} MB, ratio {b / a:.2f}")
    if args.json:
        print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
