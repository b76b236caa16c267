"""Where a sweep's groups train: in this process (:class:`LocalExecutor`, the default) or as Ray
tasks on a cluster (:class:`RayExecutor`).

An executor only trains. :func:`initlab.sweep.run` expands the grid, skips what the store holds,
groups the rest and writes every group that comes back in one transaction; the executor gets a
function that trains one group and returns plain records (no models, no database), and yields
each group's records as it completes. So resuming, skipping and "each run stored once" are the same
code whichever executor runs the groups.

>>> from initlab import executors, sweep                                     # doctest: +SKIP
>>> sweep.run(grid, "runs.db", executor=executors.RayExecutor(address="auto"))  # doctest: +SKIP

Ray is an optional extra (``pip install 'initlab[ray]'``), imported only when a
:class:`RayExecutor` connects.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
from typing import Callable, Iterable, Iterator

from .errors import InitlabError
from .train import resolve_device

#: ``fn(group, callback=None) -> records``: trains one group; ``callback(fraction)`` as it goes.
GroupFn = Callable[..., list]
#: ``on_progress(group, fraction)``: how far a group that is training has come.
ProgressFn = Callable[[list, float], None]


class TaskFailed(Exception):
    """An executor gave up on ``group`` (``reason``: why, in words); the sweep names the group."""

    def __init__(self, group: list, reason: str):
        super().__init__(reason)
        self.group, self.reason = group, reason


class LocalExecutor:
    """Train the groups one after the other in this process (the default)."""

    name = "local"

    def connect(self, device: str | None) -> None:
        """Check that ``device`` is usable here, before anything is written."""
        resolve_device(device)

    def map(self, fn: GroupFn, groups: Iterable[list], on_progress: ProgressFn) -> Iterator[tuple[list, list]]:
        """``(group, records)`` for each group, in order; ``on_progress`` sees each step."""
        for group in groups:
            yield group, fn(group, callback=lambda fraction, group=group: on_progress(group, fraction))

    def close(self) -> None:
        pass


def _import_ray():
    try:
        import ray
    except ImportError:
        raise InitlabError("--executor ray needs Ray, which is not installed here: pip install 'initlab[ray]'.") \
            from None
    return ray


def _probe(address: str | None, timeout: float = 5.0) -> None:
    """A HOST:PORT that nothing answers is one line now, not Ray's minutes of retries."""
    if not address or address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise InitlabError(f"--address is 'auto' or HOST:PORT of the head node, like 10.0.0.5:6379; got '{address}'.")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise InitlabError(f"no Ray cluster answers at '{address}' ({e.strerror or e}); start one there with "
                           f"`ray start --head --port {port}`.") from None


def _train_group(fn: GroupFn, group: list) -> list:
    """The Ray task: one group trained on a worker, its records returned to the driver."""
    return fn(group)


class RayExecutor:
    """Each group a Ray task; the driver (this process) keeps the store.

    Parameters
    ----------
    address : str, optional
        ``"auto"`` (the cluster this machine joined with ``ray start``), ``"HOST:PORT"`` of the head
        node, or None: ``RAY_ADDRESS``, else a Ray instance started here for the sweep (and stopped
        after it). When Ray is already initialized in this process, its cluster is used as it is.
    max_retries : int, default 3
        How many times Ray reruns a task whose worker died (a killed process, a lost node). A
        Python exception in training is not retried: it stops the sweep.

    A task asks for one CPU, and one GPU when the sweep runs with ``device="cuda"``.
    """

    name = "ray"

    def __init__(self, address: str | None = None, *, max_retries: int = 3):
        self.address, self.max_retries = address, max_retries
        self.num_gpus, self._started, self._ray = 0, False, None
        self._stdout, self._sigterm = None, None
        _import_ray()  # a missing extra is one line before anything else happens

    def connect(self, device: str | None) -> None:
        """Join (or start) the cluster and check it has a GPU when ``device`` is cuda; once."""
        if self._ray is not None:
            return
        ray = _import_ray()
        self._quiet()
        if not ray.is_initialized():
            _probe(self.address)
            try:
                # log_to_driver=False: the workers' output and Ray's messages stay in Ray's log files
                ray.init(address=self.address, logging_level=logging.ERROR, log_to_driver=False,
                         **({} if self.address else {"include_dashboard": False}))
            except (ConnectionError, RuntimeError, ValueError) as e:
                where = f"at '{self.address}'" if self.address else "here"
                chain = [e]
                while chain[-1].__cause__ is not None and len(chain) < 5:
                    chain.append(chain[-1].__cause__)
                why = str(e).strip().splitlines()[0].rstrip(".") if str(e).strip() else type(e).__name__
                if any("InvalidAuthToken" in str(x) for x in chain):  # Ray >= 2.5x: the cluster's token
                    why += ("; the cluster asks for its token: set RAY_AUTH_MODE=token and copy the head's "
                            "~/.ray/auth_token here (or set RAY_AUTH_TOKEN)")
                self.close()
                raise InitlabError(f"cannot start or reach a Ray cluster {where}: {why}.") from None
            self._started = True
            self._on_sigterm()
        self._ray = ray
        self.num_gpus = 1 if device is not None and str(device).startswith("cuda") else 0
        if self.num_gpus and ray.cluster_resources().get("GPU", 0) < 1:
            self.close()
            raise InitlabError("--device cuda asked for, but the Ray cluster has no GPU; use --device cpu.")

    def map(self, fn: GroupFn, groups: Iterable[list], on_progress: ProgressFn) -> Iterator[tuple[list, list]]:
        """Submit every group, then ``(group, records)`` as tasks complete (in any order).

        Closing the generator early (Ctrl-C, an error while storing) cancels the tasks still
        outstanding; whatever was yielded before is the caller's to keep."""
        ray = self._ray
        task = ray.remote(_train_group).options(num_cpus=1, num_gpus=self.num_gpus,
                                                max_retries=self.max_retries, retry_exceptions=False)
        fn_ref = ray.put(fn)
        pending = {task.remote(fn_ref, group): group for group in groups}
        # a worker that dies on every try, a node or an object lost: Ray has given up on the task
        gave_up = tuple(getattr(ray.exceptions, name) for name in
                        ("WorkerCrashedError", "NodeDiedError", "ObjectLostError", "OwnerDiedError",
                         "TaskUnschedulableError", "ActorDiedError") if hasattr(ray.exceptions, name))
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                for ref in ready:
                    group = pending.pop(ref)
                    try:
                        records = ray.get(ref)
                    except gave_up as e:
                        raise TaskFailed(group, f"its Ray worker died on each of {self.max_retries + 1} tries "
                                                f"({type(e).__name__})") from None
                    yield group, records
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)

    def _quiet(self) -> None:
        """While the executor is connected, what Ray writes to this process's standard output (its C++
        core and its threads write to the file descriptor, not to ``sys.stdout``) goes to stderr, so that
        ``--json`` output stays JSON."""
        if self._stdout is not None:
            return
        try:
            sys.stdout.flush()
            self._stdout = os.dup(1)
            os.dup2(2, 1)
        except OSError:
            self._stdout = None

    def _on_sigterm(self) -> None:
        """A SIGTERM to the driver is an interruption (as Ctrl-C is): ``close`` stops the Ray it started."""
        if threading.current_thread() is not threading.main_thread():
            return

        def interrupt(signum, frame):
            raise KeyboardInterrupt
        self._sigterm = signal.signal(signal.SIGTERM, interrupt)

    def close(self) -> None:
        """Stop the Ray instance if this executor started it; give back stdout and SIGTERM."""
        try:
            if self._started and self._ray is not None:
                self._ray.shutdown()
        finally:
            self._started, self._ray = False, None
            if self._sigterm is not None:
                signal.signal(signal.SIGTERM, self._sigterm)
                self._sigterm = None
            if self._stdout is not None:
                try:
                    sys.stdout.flush()
                    os.dup2(self._stdout, 1)
                    os.close(self._stdout)
                finally:
                    self._stdout = None


def get(name: str, address: str | None = None):
    """An executor by name: ``"local"`` or ``"ray"`` (with ``address``)."""
    if name == "local":
        if address:
            raise InitlabError("--address is for --executor ray.")
        return LocalExecutor()
    if name == "ray":
        return RayExecutor(address)
    raise InitlabError(f"unknown executor '{name}'; use local or ray.")
