"""
A small sweep with confidence bands
===================================

What to look at: one model trained once proves little. Here every scheme trains from several seeds
at once (one batched computation with ``initlab.train_many``); the curves are the mean test accuracy
over the seeds and the bands their 95% confidence interval. Constant init stays flat and narrow (every
seed gives the same straight line); the random schemes rise, each with its own spread.
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import initlab  # noqa: E402
from initlab.experiment import label_of  # noqa: E402
from initlab.metrics import interval_text, mean_interval  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
parser.add_argument("--quick", action="store_true", help="fewer steps and seeds (for tests)")
parser.add_argument("--out", default="examples-out", help="folder for the figure")
args = parser.parse_args()

seeds = range(3 if args.quick else 10)
steps = 100 if args.quick else 1000
schemes = [{"name": "constant", "params": {"value": 0.05}}, {"name": "default", "params": {}},
           {"name": "xavier_uniform", "params": {}}, {"name": "he_normal", "params": {}}]
data = initlab.datasets.make("moons", n=1000, noise=0.2, seed=0)
runs = [{"scheme": s, "seed": seed} for s in schemes for seed in seeds]
results = initlab.train_many(data, runs, hidden=[32, 32, 32], activation="relu", steps=steps, lr=0.1)

fig, ax = plt.subplots(figsize=(8, 4.5))
for i, spec in enumerate(schemes):
    mine = [r for run, r in zip(runs, results) if run["scheme"] is spec]
    steps_axis = np.asarray(mine[0].history["step"])
    acc = np.array([[np.nan if a is None else a for a in r.history["test_accuracy"]] for r in mine])
    mean = np.nanmean(acc, 0)
    # a bootstrap interval of the mean: it stays inside [0, 1], as an accuracy does
    low, high = np.array([mean_interval(acc[:, k]) for k in range(acc.shape[1])]).T
    label = label_of(spec)
    ax.plot(steps_axis, mean, label=f"{label} ({len(mine)} seeds)")
    ax.fill_between(steps_axis, low, high, alpha=0.25)
    print(f"{label:22s} final test accuracy {mean[-1]:.3f}, 95% interval {interval_text(low[-1], high[-1], len(mine))}")
ax.set(xlabel="step", ylabel="test accuracy", ylim=(0.4, 1.0), title="Mean test accuracy over seeds, 95% bands")
ax.legend(loc="lower right")
fig.tight_layout()
Path(args.out).mkdir(parents=True, exist_ok=True)
fig.savefig(Path(args.out) / "sweep_confidence_bands.png", dpi=100)
print(f"wrote {Path(args.out) / 'sweep_confidence_bands.png'}")
