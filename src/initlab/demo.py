"""The chapter as code: its runs, its figures, its page.

``run()`` trains the chapter's deep network from each scheme on the same data and seed (constant,
PyTorch's default, the exercise's Xavier, He, and too small and too large a normal std), plus a
study of how exact the constant init's symmetry is in float32 and float64 under SGD and Adam.
``write()`` stores the results, draws the figures from the store and writes the page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .config import RunConfig
from .experiment import linear_baseline, run_scheme, save
from .schemes import label_of
from .models import mlp
from .init import initialize
from .symmetry import effective_width
from .train import DTYPES, train

#: The chapter's runs, in the order its sections tell them: (scheme spec, the point it makes).
CHAPTER_RUNS = [
    ({"name": "constant", "params": {"value": 0.05}}, "symmetry"),
    ({"name": "default", "params": {}}, "default"),
    ({"name": "xavier_uniform", "params": {}}, "exercise"),
    ({"name": "he_normal", "params": {}}, "variance"),
    ({"name": "normal", "params": {"std": 0.01}}, "vanishing"),
    ({"name": "normal", "params": {"std": 3.0}}, "exploding"),
]

#: The symmetry-precision study: a small tanh network, all parameters 0.05, as in the trials that
#: first showed Adam in float32 breaking the symmetry.
SYMMETRY_NET = {"hidden": [7, 7], "activation": "tanh", "value": 0.05}
SYMMETRY_OPTIMIZERS = {"sgd": 0.1, "adam": 0.01}

Progress = Callable[[str, int, int], None]


def config(quick: bool = False, **overrides) -> RunConfig:
    """The demo's experiment: a 2 -> 32 -> 32 -> 32 -> 32 -> 1 ReLU network, full-batch SGD with
    lr 0.1 for 2000 steps on 1000 moons points (noise 0.2). ``quick`` is a short version (200 steps on 400 points) for tests and a first look."""
    base = RunConfig(track_every=40)
    if quick:
        base = base.replace(n=400, steps=200, eval_every=5, track_every=10)
    return base.replace(**{k: v for k, v in overrides.items() if v is not None})


def symmetry_study(cfg: RunConfig, steps: int, progress: Progress | None = None) -> dict:
    """Train the constant-initialized :data:`SYMMETRY_NET` with SGD and Adam in float32 and float64
    and record, every few steps, the largest difference between neurons of one layer."""
    data = cfg.data()
    traces, every = {}, max(1, steps // 100)
    for opt, lr in SYMMETRY_OPTIMIZERS.items():
        for dtype in DTYPES:
            label = f"{opt} {dtype}"
            model = mlp(2, SYMMETRY_NET["hidden"], 1, SYMMETRY_NET["activation"]).to(DTYPES[dtype])
            initialize(model, "constant", value=SYMMETRY_NET["value"], seed=cfg.seed)
            trace = {"step": [], "spread": []}

            def record(step, m, trace=trace, label=label):
                if step % every == 0 or step == steps:
                    trace["step"].append(step)
                    trace["spread"].append(max(w.spread for w in effective_width(m, data.X_train)))
                if progress:
                    progress(f"symmetry: {label}", step, steps)

            train(model, data, steps=steps, lr=lr, optimizer=opt, seed=cfg.seed, callback=record)
            trace["effective_width"] = [w.effective_width for w in effective_width(model, data.X_train)]
            traces[label] = trace
    return {"network": SYMMETRY_NET, "lr": SYMMETRY_OPTIMIZERS, "steps": steps, "traces": traces}


def run(cfg: RunConfig, progress: Progress | None = None) -> tuple[list[dict], dict]:
    """Train every run of :data:`CHAPTER_RUNS` and the symmetry study. Returns the records and the
    extra results (baseline, symmetry) that :func:`write` stores."""
    data = cfg.data()
    records = []
    for spec, role in CHAPTER_RUNS:
        label = label_of(spec)
        cb = (lambda step, _m, label=label: progress(label, step, cfg.steps)) if progress else None
        rec = run_scheme(cfg, spec, data, callback=cb, label=label)
        rec["row"]["role"] = role
        records.append(rec)
    symmetry = symmetry_study(cfg.replace(device=None), steps=_symmetry_steps(cfg), progress=progress)
    extra = {"baseline": {"logistic_regression_test_accuracy": linear_baseline(data)},
             "symmetry": symmetry}
    return records, extra


def write(out: str | Path, cfg: RunConfig, records: list[dict], extra: dict, command: str = "") -> Path:
    """Store the results in ``out``, draw the figures from the store and write ``index.html``."""
    from . import report  # matplotlib is imported only when figures are drawn

    out = save(out, cfg, records, cfg.data(), command=command, extra={**extra, "kind": "demo"})
    report.render(out, out / "index.html")
    return out


def _symmetry_steps(cfg: RunConfig) -> int:
    """The symmetry study trains half as long as the chapter's runs, at least 100 steps."""
    return max(100, cfg.steps // 2)


def total_steps(cfg: RunConfig) -> int:
    """Steps the whole demo trains, for a progress bar."""
    return len(CHAPTER_RUNS) * cfg.steps + len(SYMMETRY_OPTIMIZERS) * len(DTYPES) * _symmetry_steps(cfg)


__all__ = ["CHAPTER_RUNS", "config", "run", "symmetry_study", "write", "total_steps"]
