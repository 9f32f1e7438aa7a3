"""Where runs train: in this process (:class:`LocalBackend`) or on a Ray cluster (:class:`RayBackend`).

Both backends hand out job handles with :class:`~cnfviz.TrainingJob`'s observer and control API
(``start``, ``stop``, ``pause``, ``resume``, ``step``, ``suspend``, ``proceed``, ``join``, ``alive``,
``model``, ``result``, ``target``, ``trainer.paused``/``trainer.stopping`` and ``snapshot()``), so a
page, the CLI or a scheduler drives a run the same way wherever it trains. The local backend is the
default and needs nothing; the Ray backend imports Ray only when it is built (``pip install cnfviz[ray]``).

Example:
    >>> from cnfviz import default_config
    >>> backend = make_backend("local")
    >>> job = backend.submit(default_config("normal", adam_iters=3, eval_every=0, n_test=100))
    >>> job.start().join(60).snapshot().state
    'done'
    >>> sorted(run_placement(job))
    ['worker_pid']
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Mapping
from typing import Any, Protocol

from .._env import read
from .._validation import ConfigError
from ..flow.ffjord import FFJORD
from ..targets import Target
from ..training.config import TrainConfig
from ..training.trainer import TrainResult, build_target
from .job import JobSlots, Snapshot, TrainingJob

__all__ = [
    "BACKENDS",
    "RAY_ADDRESS_ENV",
    "Backend",
    "ClusterUnreachable",
    "JobHandle",
    "LocalBackend",
    "RayBackend",
    "cli_backend",
    "make_backend",
    "run_placement",
    "run_record",
]

BACKENDS = ("local", "ray")
RAY_ADDRESS_ENV = "CNFVIZ_RAY_ADDRESS"
"""The environment variable that sends the app's runs to a Ray cluster: ``host:port`` of its head."""


class ClusterUnreachable(ConfigError):
    """The Ray cluster at ``address`` cannot be reached (or Ray is not installed); the message says which."""

    def __init__(self, address: str, why: str) -> None:
        super().__init__(f"cannot reach the Ray cluster at {address}: {why}")
        self.field = "ray_address"
        self.address = address
        self.why = why


class JobHandle(Protocol):
    """What every backend's job handle offers: :class:`~cnfviz.TrainingJob`'s public API."""

    job_id: str
    config: TrainConfig
    evaluate_only: bool

    def start(self) -> JobHandle: ...
    def stop(self, *, evaluate: bool = True) -> None: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def step(self) -> None: ...
    def suspend(self) -> None: ...
    def proceed(self) -> bool: ...
    def join(self, timeout: float | None = None) -> JobHandle: ...
    def snapshot(self) -> Snapshot: ...

    @property
    def alive(self) -> bool: ...

    @property
    def model(self) -> FFJORD: ...

    @property
    def result(self) -> TrainResult | None: ...


class Backend(Protocol):
    """Builds job handles for runs; ``name`` is ``"local"`` or ``"ray"``."""

    name: str

    def submit(self, config: TrainConfig, *, target: Target | None = None, **job_kwargs: Any) -> JobHandle: ...

    def describe(self) -> dict[str, Any]: ...


class LocalBackend:
    """Runs train in threads of this process, as :class:`~cnfviz.TrainingJob` s (the default).

    Arguments:
        slots: the cap on concurrent runs every job queues on (None: no cap).
    """

    name = "local"

    def __init__(self, slots: JobSlots | None = None) -> None:
        self.slots = slots

    def submit(self, config: TrainConfig, *, target: Target | None = None, **job_kwargs: Any) -> TrainingJob:
        """A new, not yet started :class:`~cnfviz.TrainingJob` for ``config``; ``job_kwargs`` go to it."""
        job_kwargs.setdefault("slots", self.slots)
        return TrainingJob(config, target=target, **job_kwargs)

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "pid": os.getpid()}


class RayBackend:
    """Runs train in Ray actors on the cluster at ``address``: runs of one shape as one stack in one actor,
    the others in an actor each.

    Connecting happens here, once per process (see :func:`cnfviz.runtime.cluster.connect`); an address that does not
    answer raises :class:`ClusterUnreachable` within a few seconds. A run that can stack (its
    :func:`~cnfviz.runtime.cluster_stacks.planned_stack_key` is not None) joins the open actor of its key, which
    trains up to ``stack_size`` live runs as one stack, with the local scheduler's stacked engine
    (:class:`~cnfviz.runtime.cluster_stacks.StackPool`); beyond that a new actor opens for the key, and an actor
    whose runs have all left is let go. Any other run gets an actor of its own. Each actor holds
    ``num_cpus`` of the cluster's CPUs while it lives, and trains with that many torch threads; when the
    cluster is full, new actors wait in Ray's queue and their runs' snapshots say ``queued``. A one-run
    worker whose run ended normally goes to the oldest run of this backend still waiting for its own
    worker, so that a queue of such runs pays for starting a worker process (seconds of importing torch)
    once per CPU, not once per run.

    Arguments:
        address: the head's ``host:port`` (the GCS port, 6379 by default), or ``"auto"``/None for the cluster
            this machine belongs to (or a new local one, on 127.0.0.1 only).
        num_cpus: CPUs each actor holds.
        start_timeout: how long :meth:`submit` waits for a new actor, so that an error building the run in its
            worker raises there (see :class:`cnfviz.runtime.cluster.RayJob`). The default, 0, never waits: a scheduler
            submits many runs at once, and the app's Train never waits for a worker to import torch.
        stacking: False gives every run an actor of its own.
        stack_size: live runs per stack actor (default ``$CNFVIZ_RAY_STACK_SIZE``, else
            :data:`~cnfviz.runtime.cluster_stacks.DEFAULT_STACK_SIZE`).
    """

    name = "ray"

    def __init__(
        self,
        address: str | None,
        *,
        num_cpus: float = 1.0,
        start_timeout: float = 0.0,
        stacking: bool = True,
        stack_size: int | None = None,
    ) -> None:
        from . import cluster, cluster_stacks  # import Ray only inside their functions

        if stack_size is None:
            stack_size = _stack_size_from_env(cluster_stacks)
        self._cluster = cluster
        self._stacks_module = cluster_stacks
        self.address = cluster.connect(address)
        self.num_cpus = num_cpus
        self.start_timeout = start_timeout
        self.stacking = stacking and stack_size > 1
        self.stacks = cluster_stacks.StackPool(num_cpus, stack_size)
        self._jobs: weakref.WeakSet[Any] = weakref.WeakSet()
        self._lock = threading.Lock()

    def submit(self, config: TrainConfig, *, target: Target | None = None, **job_kwargs: Any) -> JobHandle:
        """A new, not yet started run, in its stack's actor or a fresh one of its own; ``job_kwargs`` go to its
        :class:`~cnfviz.TrainingJob` (``slots`` is dropped: the cluster's resources are the cap)."""
        job_kwargs.pop("slots", None)
        if self.stacking:
            built = target if target is not None else build_target(config)  # a bad target fails here, at once
            key = self._stacks_module.planned_stack_key(
                config, built, evaluate_only=bool(job_kwargs.get("evaluate_only"))
            )
            if key is not None:
                return self.stacks.submit(
                    config, key, target=target, job_kwargs=job_kwargs, start_timeout=self.start_timeout
                )
        job = self._cluster.RayJob(
            config,
            target=target,
            job_kwargs=job_kwargs,
            num_cpus=self.num_cpus,
            start_timeout=self.start_timeout,
            recycle=self._recycle,
        )
        with self._lock:
            self._jobs.add(job)
        return job

    def _recycle(self, actor: Any) -> bool:
        """Hand the warm actor of a run that ended to the oldest run still waiting for its own worker to
        start (which would otherwise import torch for seconds); False if none waits."""
        with self._lock:
            waiting = sorted((j for j in self._jobs if j._waiting()), key=lambda j: j._seq)
        return any(job._adopt(actor) for job in waiting)

    def describe(self) -> dict[str, Any]:
        """Where runs go: the backend, this process, the cluster, and the live runs per stack actor at most."""
        stack_size = self.stacks.size if self.stacking else 1
        return {"backend": self.name, "pid": os.getpid(), "ray_address": self.address, "ray_stack_size": stack_size}


def _stack_size_from_env(cluster_stacks: Any) -> int:
    return read(cluster_stacks.STACK_SIZE_ENV)  # a bad value raises, naming the variable


def make_backend(name: str = "local", address: str | None = None, *, slots: JobSlots | None = None) -> Backend:
    """The backend called ``name`` (one of :data:`BACKENDS`).

    Example:
        >>> make_backend("local").name
        'local'
        >>> make_backend("dask")
        Traceback (most recent call last):
        ...
        cnfviz._validation.ConfigError: backend: invalid value "dask". Must be one of ['local', 'ray']
    """
    if name == "local":
        return LocalBackend(slots)
    if name == "ray":
        return RayBackend(address)
    raise ConfigError(f'backend: invalid value "{name}". Must be one of {list(BACKENDS)}')


def cli_backend(name: str | None, address: str | None) -> Backend:
    """The backend of ``cnfviz train`` and ``cnfviz sweep``: Ray for ``--backend ray`` or a ``--ray-address``
    without ``--backend``, at that address or else ``$CNFVIZ_RAY_ADDRESS`` (else a local head); local
    otherwise. Connecting happens here, so an unreachable address raises :class:`ClusterUnreachable` before
    any training.

    Example:
        >>> cli_backend(None, None).name, cli_backend("local", "10.0.0.5:6379").name
        ('local', 'local')
    """
    if name == "ray" or (name is None and address):
        return make_backend("ray", address or read(RAY_ADDRESS_ENV) or None)
    return make_backend(name or "local")


def run_placement(job: Any) -> dict[str, Any]:
    """Where a run trained: ``worker_pid`` (the process), and ``node_id`` and ``node`` on Ray."""
    where = getattr(job, "placement", None)
    return dict(where()) if callable(where) else {"worker_pid": os.getpid()}


def run_record(job: Any, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One run's JSON record: its result's summary, where it trained (:func:`run_placement`), and ``extra``.

    A run that has not ended yet records its latest snapshot's state and iteration instead of a summary.
    """
    result = job.result
    if result is not None:
        record = dict(result.summary())
    else:
        snap = job.snapshot()
        record = {"status": snap.state, "reason": snap.reason, "iterations": snap.iteration}
    record.update(run_placement(job))
    if extra:
        record.update(extra)
    return record
