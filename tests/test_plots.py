import numpy as np
import pytest
import torch

import initlab
from initlab import plots


@pytest.fixture()
def grid():
    xx, yy = np.meshgrid(np.linspace(-2, 2, 60), np.linspace(-2, 2, 60))
    return {"xx": xx, "yy": yy, "p": 1 / (1 + np.exp(-3 * (xx + 0.5 * yy)))}


def test_contour_lines_are_labelled_with_their_probabilities(grid):
    X = torch.randn(40, 2, generator=torch.Generator().manual_seed(0)).numpy()
    y = (X[:, 0] > 0).astype(float)
    ax = plots.probability_contours(grid, X, y, title="a line", accuracy=0.9)
    labels = {t.get_text() for t in ax.texts}
    assert {"0.1", "0.5", "0.9"} <= labels
    assert "test accuracy 0.90" in labels
    # black points for class 1, white for class 0
    points = {tuple(c.get_facecolors()[0][:3]): len(c.get_offsets()) for c in ax.collections
              if hasattr(c, "get_offsets") and len(c.get_offsets()) in ((y == 0).sum(), (y == 1).sum())}
    assert points[(0.0, 0.0, 0.0)] == (y == 1).sum() and points[(1.0, 1.0, 1.0)] == (y == 0).sum()


def test_a_diverged_grid_says_so_instead_of_drawing(grid):
    ax = plots.probability_contours({**grid, "p": np.full_like(grid["p"], np.nan)})
    assert any("diverged" in t.get_text() for t in ax.texts)


def test_training_curves_mark_divergence(small_moons, tmp_path):
    model = initlab.mlp(2, [32, 32, 32, 32], 1, "relu")
    initlab.initialize(model, "normal", std=3.0, seed=0)
    r = initlab.train(model, small_moons, steps=50, lr=0.1)
    assert r.diverged
    loss_ax, acc_ax = plots.training_curves({"big": r.to_dict()["history"]}, diverged={"big": r.diverged_step})
    assert any(f"diverged at step {r.diverged_step}" in t.get_text() for t in loss_ax.texts)
    assert loss_ax.get_yscale() == "log"
    paths = plots.save_figure(loss_ax.figure, tmp_path / "curves")
    assert [p.suffix for p in paths] == [".png", ".svg"] and all(p.stat().st_size > 1000 for p in paths)
