"""Shared fixtures. Tests run single-threaded: on a 2-core machine torch's thread pool can slow a step
100x when another process competes for the cores."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

import initlab  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _close_figures():
    """Every test starts without figures of an earlier one (plots take ax=None -> plt.gca())."""
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture(scope="session")
def moons():
    """The chapter's data: 1000 make_moons points, noise 0.2."""
    return initlab.datasets.make("moons", n=1000, noise=0.2, seed=0)


@pytest.fixture(scope="session")
def small_moons():
    return initlab.datasets.make("moons", n=200, noise=0.2, seed=1)
