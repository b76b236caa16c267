"""Take the network home: a session's run as a PyTorch snippet that rebuilds it (the same initial
weights, bit for bit: ``initlab.mlp`` and ``initlab.initialize`` with the same scheme and seed), its
current weights as a ``.pt`` state dict, and the run's record as JSON (kind and schema version in
:mod:`initlab.outputs`).

Each function reads a :class:`~.session.Session` under its lock (call them off the event loop).
"""

from __future__ import annotations

import io
import json

import torch

from ..jsonsafe import json_safe
from ..outputs import PLAYGROUND_RECORD_KIND, PLAYGROUND_RECORD_VERSION
from ..schemes import get
from .settings import CUSTOM


def _run(session, index: int):
    if not 0 <= index < len(session.runs):
        from ..errors import InitlabError

        raise InitlabError(f"run must be 0 to {len(session.runs) - 1}; got {index}.")
    return session.runs[index]


#: What a snippet for uploaded data puts where the user's CSV goes.
CSV_PLACEHOLDER = "your-data.csv"


def _custom_data(data_seed: int, needed: bool, scheme: str) -> list[str]:
    """Lines that read the user's CSV as the playground did (its reader, then ``datasets.split``'s split
    and standardization); commented out where the initial weights do not look at the data."""
    code = [f"CSV = {CSV_PLACEHOLDER!r}  # <- the path of the CSV you uploaded", "import pathlib",
            "import numpy as np", "from initlab.playground import upload  # the playground's own reader and checks",
            'X, y = upload.parse(pathlib.Path(CSV).read_text(encoding="utf-8"))',
            f'data = initlab.datasets.split(X, y, np.random.default_rng({data_seed}), name="custom")']
    head = (["# Your uploaded data stayed in the playground's memory (a link cannot carry it), and "
             f"{scheme} looks at it:",
             "# put the path of your CSV below; it is read, split and standardized exactly as the playground did."]
            if needed else
            ["# Your uploaded data stayed in the playground's memory (a link cannot carry it); the initial weights",
             "# do not look at it. To train on it, uncomment these lines and put the path of your CSV: they read,",
             "# split and standardize it exactly as the playground did."])
    return head + (code if needed else [f"# {line}" for line in code] + ["data = None"])


def snippet(session, index: int = 0) -> str:
    """Python that rebuilds run ``index`` as it was at step 0, and its data: a built-in dataset drawn
    again, or for uploaded data the user's CSV read from a path they fill in (needed when the scheme
    looks at the data, as lsuv does)."""
    with session.lock:
        s, run = session.settings, _run(session, index)
        spec = json.dumps(run.spec)
        looks = get(run.spec["name"]).apply is not None  # a data-dependent scheme (lsuv)
        if s.dataset == CUSTOM:
            data = _custom_data(s.data_seed, looks, run.spec["name"])
            inputs = ", inputs=data.X_train" if looks else ""
            init = f"initlab.initialize(model, {spec}, seed={s.seed}{inputs})"
        else:
            data = ["# the playground's points: the same draw, split and standardization",
                    f"data = initlab.datasets.make({s.dataset!r}, n={s.n}, noise={s.noise!r}, seed={s.data_seed})"]
            init = f"initlab.initialize(model, {spec}, seed={s.seed}, inputs=data.X_train)"
        batch = "None" if s.batch_size is None else s.batch_size
        wd = "" if s.weight_decay is None else f", weight_decay={s.weight_decay!r}"
        lines = [f"# initlab playground: run {index} ({run.label}), rebuilt with its initial weights.",
                 f"# The playground's link: ?{s.query()}",
                 "import initlab", "", *data, "",
                 f"model = initlab.mlp(2, {s.hidden}, 1, {s.activation!r})",
                 init, "",
                 "# train it as the playground does (the seed also fixes the minibatch order):",
                 f"# initlab.train(model, data, steps=1000, lr={s.lr!r}, optimizer={s.optimizer!r}, "
                 f"batch_size={batch}, seed={s.seed}{wd})", ""]
    return "\n".join(lines)


def weights(session, index: int = 0) -> bytes:
    """Run ``index``'s current weights: ``torch.save`` of its state dict."""
    with session.lock:
        state = {k: v.detach().clone() for k, v in _run(session, index).model.state_dict().items()}
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def record(session) -> dict:
    """The session's runs as a JSON-ready record: settings, link, data, and per run its scheme, the whole
    history, its diagnosis at step 0, its per-layer statistics at step 0 with the theory's, and
    ``watch``: every measured step's per-layer statistics in the format of :func:`initlab.watch`'s
    record (:meth:`initlab.watchstats.WatchRecord.to_dict`)."""
    with session.lock:
        s = session.settings
        runs = [{"label": r.label, "scheme": r.spec, "step": r.stepper.step_count, "diverged": r.stepper.diverged,
                 "diverged_step": r.stepper.diverged_step, "history": {k: list(v) for k, v in r.history.items()},
                 "diagnosis": r.diagnosis, "initial_layers": r.initial_stats,
                 "watch": r.stepper.record.to_dict()} for r in session.runs]
        doc = {"kind": PLAYGROUND_RECORD_KIND, "schema_version": PLAYGROUND_RECORD_VERSION,
               "settings": s.to_dict(), "query": s.query(),
               "data": {"name": session.data.name, "n_train": int(session.data.X_train.shape[0]),
                        "n_test": int(session.data.X_test.shape[0]), "custom": s.dataset == CUSTOM},
               "runs": runs}
    return json_safe(doc)
