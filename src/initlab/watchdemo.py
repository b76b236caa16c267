"""``initlab watch-demo``: what :func:`initlab.watch` shows, before it is wired into a loop.

A small CNN learns a synthetic image task (which quadrant of a noisy 12 x 12 image holds a bright
square: 4 classes) twice, in a plain PyTorch loop with the two lines of :func:`initlab.watch` added:
once from a bad start (every weight drawn from N(0, 1), the classic "std 1 everywhere": the
activations grow layer after layer and the first loss is far above ln 4) and once from a good one
(He-normal convolutions and a readout scaled down to std 0.01: the first loss is ln 4). Both runs
go into one ``watch.json`` and its page, ``index.html``.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import torch
from torch import nn

from .watch import Watch

CLASSES = 4
SIZE = 12


def images(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` noisy 1 x 12 x 12 images and their class: the quadrant (0-3) that holds a bright 3 x 3
    square at a random place inside it."""
    y = torch.randint(0, CLASSES, (n,), generator=generator)
    x = torch.randn(n, 1, SIZE, SIZE, generator=generator)
    half = SIZE // 2
    at = torch.randint(0, half - 2, (n, 2), generator=generator)
    for i in range(n):
        r = at[i, 0] + half * (int(y[i]) // 2)
        c = at[i, 1] + half * (int(y[i]) % 2)
        x[i, 0, r:r + 3, c:c + 3] += 1.0
    return x, y


def cnn() -> nn.Sequential:
    """Three 3 x 3 convolutions (8, 16, 16 channels; the last two of stride 2) with ReLU and a linear readout."""
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
                         nn.Conv2d(16, 16, 3, stride=2, padding=1), nn.ReLU(),
                         nn.Flatten(), nn.Linear(16 * 3 * 3, CLASSES))


@torch.no_grad()
def start(model: nn.Module, how: str, generator: torch.Generator) -> nn.Module:
    """``how="bad"``: every weight from N(0, 1); ``"good"``: He normal, the readout at std 0.01.
    Biases start at 0. Draws only from ``generator``."""
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    for m in layers:
        if how == "bad":
            std = 1.0
        elif m is layers[-1]:
            std = 0.01
        else:
            std = math.sqrt(2.0 / (m.weight[0].numel()))
        m.weight.normal_(0.0, std, generator=generator)
        m.bias.zero_()
    return model


def run(how: str, steps: int, every: int, seed: int = 0, lr: float = 2e-3, batch: int = 64) -> Watch:
    """Train the CNN from the ``how`` start with Adam in a plain loop, watched; returns the watch."""
    gen = torch.Generator().manual_seed(seed)
    x, y = images(max(512, batch), gen)
    model = start(cnn(), how, gen)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    w = Watch(model, every, opt, name=f"{how} init")
    with warnings.catch_warnings():  # the alerts are in the record and on the page
        warnings.simplefilter("ignore")
        for _ in range(steps):
            idx = torch.randint(0, len(x), (batch,), generator=gen)
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            w.step(loss)
    w.close()
    return w


def watch_demo(out: str | Path, quick: bool = False, seed: int = 0, command: str = "") -> dict:
    """Run the bad and the good start, write ``watch.json`` and ``index.html`` into ``out``; returns
    ``{"page", "file", "runs"}`` (runs: name -> its :class:`Watch`)."""
    from . import report
    from .outputs import write_watch

    steps, every = (24, 2) if quick else (300, 5)
    runs = {w.name: w for w in (run(how, steps, every, seed) for how in ("bad", "good"))}
    out = Path(out)
    file = write_watch(out, {name: w.to_dict() for name, w in runs.items()}, command)
    page = report.render(out, out / "index.html")
    return {"page": page, "file": file, "runs": runs}
