"""Shared fixtures. Tests run single-threaded: on a 2-core machine torch's thread pool can slow a step
100x when another process competes for the cores."""

import os
import shutil
from pathlib import Path

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


#: Debian's chromium, headless, for the browser tests (pages and the playground); flags as the
#: machine notes say (no background networking: the network is closed).
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it): browser tests skipped")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def free_port() -> int:
    """A free TCP port on loopback."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(app, port: int):
    """Serve ``app`` with uvicorn on 127.0.0.1:``port`` in a daemon thread; ``(server, thread)`` once it
    answers (set ``server.should_exit`` and join the thread to stop it)."""
    import threading
    import time

    uvicorn = pytest.importorskip("uvicorn")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the playground server did not start"
        time.sleep(0.05)
    return server, thread
