"""Playground sessions: one per browser tab, each training one model per scheme in lockstep on the
same data and seed, and the worker thread that steps every playing session a little at a time.

Data flows one way: settings -> data + models (``datasets.make``, ``mlp``, ``initialize``, as
``experiment.run_scheme`` builds them) -> :class:`Stepper` -> a snapshot (JSON-ready) that the
server streams. The event loop never trains and never waits on a session's lock: the worker publishes
each snapshot as an immutable :class:`Snapshot` (its JSON text made once), and readers take the
latest one as it stands.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import json
import math
import secrets
import threading
import time
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

import numpy as np
import torch

from ..checks import check_training_data
from ..datasets import make
from ..diagnose import diagnose
from ..errors import InitlabError
from ..schemes import label_of
from ..models import mlp
from ..init import initialize
from ..symmetry import effective_width
from ..train import probability_grid
from . import upload
from .settings import CUSTOM, Settings
from .stepper import Stepper

GRID = 48                 # probability grid resolution sent to the page
UNIT_GRID = 32            # grid of a later layer's units' pre-activations (their boundary curves)
EVAL_EVERY = 5            # steps between recorded losses and accuracies
MAX_HISTORY = 400         # history points sent per snapshot (thinned evenly beyond that)
MAX_STEPS = 100_000       # a run pauses by itself here
SNAPSHOT_EVERY = 0.2      # seconds between snapshots of a playing session (5 per second)


@dataclass(frozen=True)
class Snapshot:
    """One published state of a session: ``doc`` (read-only) and ``text``, its JSON, made once by the
    thread that publishes it, so that every stream sends the same text without encoding it again."""

    version: int
    doc: Mapping
    text: str

    @classmethod
    def of(cls, doc: dict) -> Snapshot:
        return cls(doc["version"], MappingProxyType(doc), json.dumps(doc, allow_nan=False))


EMPTY = Snapshot(0, MappingProxyType({}), "{}")


def _clean(v: float | None, digits: int = 5) -> float | None:
    if v is None or not math.isfinite(v):
        return None
    return float(f"{v:.{digits}g}")


def _constant_layer(model: torch.nn.Module) -> str | None:
    """The first weight layer whose weights all have one value (a constant start), or None."""
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Linear) and m.weight.numel() > 1 and bool((m.weight == m.weight.view(-1)[0]).all()):
            return name
    return None


class Run:
    """One scheme's model, its stepper and its history."""

    def __init__(self, settings: Settings, spec: dict, data, X_all: torch.Tensor):
        self.spec, self.label = spec, label_of(spec)
        self.data, self.X_all = data, X_all
        self.model = mlp(2, settings.hidden, 1, settings.activation)
        check_training_data(data, self.model, "the playground")  # as train() checks it
        self.manifest = initialize(self.model, spec, seed=settings.seed, inputs=data.X_train)
        d = diagnose(self.model, data.X_train, targets=data.y_train)  # the model as initialized above
        self.diagnosis = {"summary": d.verdict["summary"], "message": d.verdict["message"],
                          "labels": d.verdict["labels"]}
        self.initial_stats = {"names": [r["name"] for r in d.rows],
                              **{k: [_clean(r[k]) for r in d.rows] for k in
                                 ("preact_std", "grad_std", "predicted_preact_std", "predicted_grad_std")},
                              "theory_note": None}
        equal = _constant_layer(self.model)
        if equal:  # the mean-field prediction assumes independent random weights: none for a constant start
            n = len(d.rows)
            self.initial_stats.update(predicted_preact_std=[None] * n, predicted_grad_std=[None] * n, theory_note=(
                f"no mean-field prediction: it assumes independent random weights, and {equal}'s are all equal"))
        self.stepper = Stepper(self.model, data, lr=settings.lr, optimizer=settings.optimizer,
                               batch_size=settings.batch_size, seed=settings.seed,
                               weight_decay=settings.weight_decay)
        self.history: dict[str, list] = {k: [] for k in ("step", "train_loss", "train_accuracy", "test_loss",
                                                         "test_accuracy")}
        self.record()

    def record(self) -> None:
        if self.history["step"] and self.history["step"][-1] == self.stepper.step_count:
            return
        self.history["step"].append(self.stepper.step_count)
        for k, v in self.stepper.evaluate().items():
            self.history[k].append(v)

    def step(self, count: int) -> None:
        before = self.stepper.step_count
        self.stepper.step(count)
        after = self.stepper.step_count
        if self.stepper.diverged or after // EVAL_EVERY > before // EVAL_EVERY:
            self.record()

    def snapshot(self) -> dict:
        s = self.stepper
        self.record()
        if s.diverged:
            p, widths = None, None
        else:
            grid = probability_grid(self.model, self.X_all, resolution=GRID)["p"]
            p = None if not np.isfinite(grid).all() else np.round(grid, 3).ravel().tolist()
            widths = [{"layer": w.layer, "width": w.width, "effective": w.effective_width}
                      for w in effective_width(self.model, self.data.X_train)]
        stats = s.layer_stats() if s.step_count else self.initial_stats
        h = self.history
        idx = range(len(h["step"]))
        if len(h["step"]) > MAX_HISTORY:
            idx = sorted(set(np.linspace(0, len(h["step"]) - 1, MAX_HISTORY).round().astype(int).tolist()))
        return {"label": self.label, "scheme": self.spec, "step": s.step_count, "diverged": s.diverged,
                "diverged_step": s.diverged_step, "grid": p,
                "history": {k: [_clean(v[i]) if k != "step" else v[i] for i in idx] for k, v in h.items()},
                "final": {k: _clean(v[-1]) for k, v in h.items() if k != "step"},
                "layers": {"names": stats["names"], "preact_std": [_clean(v) for v in stats["preact_std"]],
                           "grad_std": [_clean(v) for v in stats["grad_std"]]},
                "widths": widths, "diagnosis": self.diagnosis, "initial_layers": self.initial_stats,
                "neurons": self.neurons()}

    def neurons(self) -> dict | None:
        """The first layer's units as lines ``w . x + b = 0`` in the data's (standardized) plane."""
        fc = self.model.fc1
        w, b = fc.weight.detach(), fc.bias.detach()
        if not (torch.isfinite(w).all() and torch.isfinite(b).all()):
            return None
        return {"w": [[_clean(float(v)) for v in row] for row in w.tolist()], "b": [_clean(float(v)) for v in b.tolist()]}

    def units(self, layer: int, lo: list, hi: list) -> dict:
        """Hidden layer ``layer``'s units' pre-activations on a UNIT_GRID x UNIT_GRID grid over the box
        ``lo``..``hi`` (row i = y), for the page's contour at 0 of each unit."""
        xs, ys = np.linspace(lo[0], hi[0], UNIT_GRID), np.linspace(lo[1], hi[1], UNIT_GRID)
        xx, yy = np.meshgrid(xs, ys)
        h = torch.as_tensor(np.stack([xx.ravel(), yy.ravel()], 1), dtype=torch.float32)
        with torch.no_grad():
            for name, m in self.model.named_children():
                h = m(h)
                if name == f"fc{layer}":
                    break
        values = h.T.double().numpy()
        if not np.isfinite(values).all():
            return {"layer": layer, "grid": UNIT_GRID, "units": None}
        return {"layer": layer, "grid": UNIT_GRID,
                "units": [[float(f"{v:.3g}") for v in row] for row in values.tolist()]}

    def close(self) -> None:
        self.stepper.close()


class Start:
    """A fresh start: the data of ``settings`` (``custom``: uploaded points, for ``dataset=custom``), one
    run per scheme at step 0 and the points the page draws. Built without any session's lock (a run's
    diagnosis at step 0 is the slow part), then swapped in whole by :meth:`Session._start`."""

    def __init__(self, settings: Settings, custom: tuple[np.ndarray, np.ndarray] | None):
        if settings.dataset == CUSTOM:
            if custom is None:
                raise InitlabError("a link cannot carry uploaded data (dataset=custom): upload your CSV again, "
                                   "or pick a built-in dataset.")
            data = upload.dataset(*custom, seed=settings.data_seed)
        else:
            data = make(settings.dataset, n=settings.n, noise=settings.noise, seed=settings.data_seed)
        self.settings, self.custom, self.data = settings, custom, data
        self.X_all = X_all = torch.cat([data.X_train, data.X_test])
        self.runs: list[Run] = []
        try:
            for spec in settings.schemes:
                self.runs.append(Run(settings, spec, data, X_all))
        except BaseException:
            self.close()
            raise
        self.points = {"x": np.round(X_all.numpy(), 4).tolist(),
                       "y": torch.cat([data.y_train, data.y_test]).int().tolist(),
                       "n_train": int(data.X_train.shape[0]), "lo": (X_all.min(0).values - 0.6).tolist(),
                       "hi": (X_all.max(0).values + 0.6).tolist(), "grid": GRID, "custom": settings.dataset == CUSTOM}

    def close(self) -> None:
        for r in self.runs:
            r.close()


class Session:
    """One browser tab: its settings, its runs (one per scheme), play/pause, the latest snapshot.

    ``lock`` guards the running state (the worker holds it while it steps); a fresh start (new settings,
    an upload, a rewind) is built outside it and swapped in under it, so that rebuilding one session
    never holds up the worker. Fresh starts of one session are made one at a time (``_building``)."""

    def __init__(self, settings: Settings):
        self.id = secrets.token_urlsafe(12)
        self.lock = threading.RLock()
        self._building = threading.Lock()  # one fresh start at a time; the worker never takes it
        self.playing = False
        self.closed = False
        self.pending_steps = 0      # "step" presses not yet made
        self.last_seen = time.monotonic()
        self.version = 0
        self.published = EMPTY      # replaced whole, never changed: read it without the lock
        self._credit = 0.0          # steps owed at the session's speed
        self._last_tick = time.monotonic()
        self._last_snapshot = 0.0
        self._dirty = False
        self._rate_steps, self._rate_since, self.rate = 0, time.monotonic(), None
        self.custom: tuple[np.ndarray, np.ndarray] | None = None  # uploaded points: in memory only
        self.runs: list[Run] = []
        self.apply(settings)

    def _start(self, start: Start) -> None:
        """Swap a fresh start in (paused, at step 0); the old runs are closed. Call it holding ``_building``."""
        with self.lock:
            if self.closed:  # closed while the start was built: nothing to swap into
                start.close()
                return
            old, self.runs = self.runs, start.runs
            self.settings, self.custom, self.data, self.X_all = start.settings, start.custom, start.data, start.X_all
            self.points = start.points
            self.playing = False
            self.data_version = self.version + 1
            self.pending_steps, self._credit = 0, 0.0
            for r in old:
                r.close()
            self._refresh()

    def apply(self, settings: Settings) -> None:
        """New settings: new data, new models from step 0, paused (what "reset" does with the same
        settings: the same initial weights and the same minibatch order, the seed being the run's
        identity). Built without the session's lock, so the worker goes on training the other sessions."""
        with self._building:
            self._start(Start(settings, self.custom))

    def change(self, settings: Settings) -> None:
        """The page's new settings: a fresh start, but a new speed alone changes only the speed."""
        with self._building:
            with self.lock:
                old = self.settings
                if settings.to_dict() == {**old.to_dict(), "speed": settings.speed}:
                    old.speed = settings.speed
                    self._refresh()
                    return
            self._start(Start(settings, self.custom))

    def reset(self) -> None:
        with self._building:
            self._start(Start(self.settings, self.custom))

    def upload(self, X: np.ndarray, y: np.ndarray) -> None:
        """Train on uploaded points from now on (kept in memory only), from step 0; a refused file leaves
        the session as it was."""
        import dataclasses

        with self._building:
            self._start(Start(dataclasses.replace(self.settings, dataset=CUSTOM), (X, y)))

    def units(self, run: int, layer: int) -> dict:
        """Run ``run``'s hidden layer ``layer`` as boundary curves (see :meth:`Run.units`)."""
        with self.lock:
            if not 0 <= run < len(self.runs):
                raise InitlabError(f"run must be 0 to {len(self.runs) - 1}; got {run}.")
            if not 1 <= layer <= self.settings.depth:
                raise InitlabError(f"layer must be 1 to {self.settings.depth} (a hidden layer); got {layer}.")
            return self.runs[run].units(layer, self.points["lo"], self.points["hi"])

    @property
    def step_count(self) -> int:
        return max((r.stepper.step_count for r in self.runs), default=0)

    @property
    def done(self) -> bool:
        return all(r.stepper.diverged for r in self.runs) or self.step_count >= MAX_STEPS

    def touch(self) -> None:
        self.last_seen = time.monotonic()

    def control(self, action: str) -> None:
        if action == "reset":  # rebuilt outside the lock (see apply), paused at once
            with self.lock:
                self.playing = False
            self.reset()
            return
        with self.lock:
            if action == "play":
                self.playing = not self.done
                self._last_tick = time.monotonic()
                self._credit = 0.0
                self._rate_steps, self._rate_since, self.rate = 0, self._last_tick, None
            elif action == "pause":
                self.playing = False
            elif action == "step":
                self.playing = False
                self.pending_steps = min(self.pending_steps + 1, 100)
            else:
                raise InitlabError(f"unknown action '{action}'; use play, pause, step or reset.")
            self._dirty = True  # the worker refreshes the snapshot on its next round

    def work(self, now: float, budget: int = 50) -> bool:
        """Make the steps this session owes (at most ``budget``), in lockstep across its runs, and
        refresh its snapshot when due. Returns whether anything was done."""
        with self.lock:
            if self.closed:  # closed after the worker listed it: nothing to train or publish
                return False
            count = 0
            if self.pending_steps:
                count, self.pending_steps = self.pending_steps, 0
            elif self.playing:
                self._credit = min(self._credit + (now - self._last_tick) * self.settings.speed, budget)
                count = int(self._credit)
                self._credit -= count
            self._last_tick = now
            # the rate achieved over the last second: the steps made before now (those made below count
            # in the next second, as they end after now)
            if self.playing and now - self._rate_since >= 1.0:
                self.rate = self._rate_steps / (now - self._rate_since)
                self._rate_steps, self._rate_since = 0, now
            if count:
                self._rate_steps += count
                for r in self.runs:
                    r.step(count)
                if self.done:
                    self.playing = False
            due = count and (not self.playing or now - self._last_snapshot >= SNAPSHOT_EVERY)
            if due or self._dirty:
                self._refresh()
                self._last_snapshot, self._dirty = now, False
            return bool(count)

    def _refresh(self) -> None:
        """Publish a new snapshot (under the lock, by whoever changed the session)."""
        self.version += 1
        self.published = Snapshot.of({"session": self.id, "version": self.version, "data_version": self.data_version,
                         "step": self.step_count, "playing": self.playing, "done": self.done,
                         "rate": None if self.rate is None else round(self.rate, 1),
                         "settings": self.settings.to_dict(), "query": self.settings.query(),
                         "runs": [r.snapshot() for r in self.runs]})

    def state(self) -> dict:
        """The latest snapshot, with play/pause as it is now (the worker refreshes the rest). Takes no
        lock, so the event loop never waits for a training step."""
        return {**self.published.doc, "playing": self.playing}

    def close(self) -> None:
        with self.lock:
            self.closed = True
            for r in self.runs:
                r.close()
            self.runs = []


@dataclass
class Manager:
    """Every live session; a worker thread trains the playing ones round-robin and frees those no
    client has looked at for ``idle_timeout`` seconds."""

    max_sessions: int = 32
    idle_timeout: float = 60.0
    tick: float = 0.02
    sessions: dict[str, Session] = field(default_factory=dict)

    def __post_init__(self):
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def create(self, settings: Settings) -> Session:
        with self.lock:
            self._reap()
            if len(self.sessions) >= self.max_sessions:
                raise TooMany(f"the playground has {len(self.sessions)} sessions open, its limit; close a tab "
                              f"or wait {self.idle_timeout:g} s for idle ones to be freed.")
        session = Session(settings)
        with self.lock:
            self.sessions[session.id] = session
        return session

    def get(self, sid: str) -> Session:
        session = self.sessions.get(sid)
        if session is None:
            raise KeyError(sid)
        session.touch()
        return session

    def close(self, sid: str) -> bool:
        """Free session ``sid`` (it takes the session's lock: call it off the event loop)."""
        with self.lock:
            session = self.sessions.pop(sid, None)
        if session:
            session.close()
            release_memory()
        return session is not None

    def _reap(self) -> None:
        now = time.monotonic()
        idle = [sid for sid, s in self.sessions.items() if now - s.last_seen > self.idle_timeout]
        for sid in idle:
            self.sessions.pop(sid).close()
        if idle:
            release_memory()

    def work_once(self) -> bool:
        """One round over the sessions; returns whether any trained."""
        with self.lock:
            self._reap()
            live = list(self.sessions.values())
        now = time.monotonic()
        return any([s.work(now) for s in live])

    def _loop(self) -> None:
        while not self._stop.is_set():
            busy = self.work_once()
            self._stop.wait(0.001 if busy else self.tick)

    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="initlab-playground", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        with self.lock:
            for s in self.sessions.values():
                s.close()
            self.sessions.clear()
        release_memory()


@functools.cache
def _malloc_trim():
    name = ctypes.util.find_library("c")
    return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None


def release_memory() -> None:
    """Hand the memory that closed sessions freed back to the OS. glibc keeps freed memory in
    per-thread arenas (sessions are built on the server's thread pool), so without this the server's
    memory only grows; without glibc's ``malloc_trim`` it does nothing."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


class TooMany(InitlabError):
    """The session limit is reached (HTTP 429)."""
