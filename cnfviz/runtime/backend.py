"""Where runs train: threads of this process (:class:`LocalBackend`), worker processes of this machine
(:class:`~cnfviz.runtime.process.ProcessBackend`) or a Ray cluster (:class:`~cnfviz.runtime.ray.backend.RayBackend`).

Every backend hands out :class:`~cnfviz.runtime.core.JobHandle` s, so a page, the CLI or a scheduler drives a run
the same way wherever it trains. The local backend is the library's and the CLI's default and needs nothing; the
process backend is the app's (training off the web server's GIL); the Ray backend imports Ray only when it is
built (``pip install cnfviz[ray]``). This factory imports the other two only when asked for them.

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
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._env import read
from .._validation import ConfigError
from ..targets import Target
from ..training.config import TrainConfig
from .core import BACKENDS, RAY_ADDRESS_ENV, Backend, ClusterUnreachable, JobHandle
from .job import JobSlots, TrainingJob

if TYPE_CHECKING:
    from .ray.backend import RayBackend

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


def __getattr__(name: str) -> Any:
    # The Ray backend's class, for ``from cnfviz.runtime.backend import RayBackend``, without importing its
    # modules on every import of this one.
    if name == "RayBackend":
        from .ray.backend import RayBackend

        return RayBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


def make_backend(
    name: str = "local", address: str | None = None, *, slots: JobSlots | None = None, workers: int | None = None
) -> Backend:
    """The backend called ``name`` (one of :data:`BACKENDS`): ``slots`` caps a local backend's runs,
    ``address`` is a Ray head's, ``workers`` a process backend's worker count (default: from the cores).

    Example:
        >>> make_backend("local").name
        'local'
        >>> make_backend("dask")
        Traceback (most recent call last):
        ...
        cnfviz._validation.ConfigError: backend: invalid value "dask". Must be one of ['local', 'process', 'ray']
    """
    if name == "local":
        return LocalBackend(slots)
    if name == "process":
        from .process import ProcessBackend

        return ProcessBackend(workers=workers, capacity=slots.capacity if slots is not None else None)
    if name == "ray":
        from .ray.backend import RayBackend

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
