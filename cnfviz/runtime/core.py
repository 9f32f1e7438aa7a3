"""The contract between the UI and wherever runs train: the job handle and backend protocols, and their errors.

The bottom of :mod:`cnfviz.runtime`'s backends, as submitit's ``core``: each backend (:mod:`cnfviz.runtime.job`'s
threads, :mod:`cnfviz.runtime.process`, :mod:`cnfviz.runtime.ray`) imports this module and never another backend,
and :mod:`cnfviz.runtime.backend` builds them on top, lazily. A page talks to a :class:`JobHandle` only.
"""

from __future__ import annotations

from typing import Any, Protocol

from .._validation import ConfigError
from ..flow.ffjord import FFJORD
from ..targets import Target
from ..training.config import TrainConfig
from ..training.trainer import TrainResult
from .job import Snapshot

__all__ = [
    "BACKENDS",
    "BACKEND_ENV",
    "RAY_ADDRESS_ENV",
    "WORKER_DIED_REASON",
    "Backend",
    "ClusterUnreachable",
    "JobHandle",
]

BACKENDS = ("local", "process", "ray")
"""Where runs may train: threads of this process, worker processes of this machine, or a Ray cluster."""
BACKEND_ENV = "CNFVIZ_BACKEND"
"""The environment variable that picks the app's backend: ``process`` (the default), ``local`` or ``ray``."""
RAY_ADDRESS_ENV = "CNFVIZ_RAY_ADDRESS"
"""The environment variable that sends the app's runs to a Ray cluster: ``host:port`` of its head."""
WORKER_DIED_REASON = "the worker training this run ({where}) died: {why}; kept its last snapshot"
"""A run's failure reason when the process that trained it is gone (a worker process or a Ray actor)."""


class ClusterUnreachable(ConfigError):
    """The Ray cluster at ``address`` cannot be reached (or Ray is not installed); the message says which."""

    def __init__(self, address: str, why: str) -> None:
        super().__init__(f"cannot reach the Ray cluster at {address}: {why}")
        self.field = "ray_address"
        self.address = address
        self.why = why


class JobHandle(Protocol):
    """Everything a page, the CLI or a scheduler may call on a run, wherever it trains.

    Observing: :meth:`snapshot` (cheap: every backend answers it from memory, never over the wire),
    :attr:`alive`, :attr:`model`, :attr:`result`, :attr:`can_continue`. Controls (:meth:`stop`,
    :meth:`pause`, :meth:`resume`, :meth:`step`, :meth:`update_config`) land at the run's next iteration or
    evaluation of the dynamics; :meth:`suspend`/:meth:`proceed` free and take back its CPU for a page whose
    connection dropped; :meth:`close` lets go of everything the run holds.
    """

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
    def update_config(self, config: TrainConfig) -> None: ...
    def continue_training(self) -> bool: ...
    def join(self, timeout: float | None = None) -> JobHandle: ...
    def snapshot(self) -> Snapshot: ...
    def close(self) -> None: ...

    @property
    def can_continue(self) -> bool: ...

    @property
    def alive(self) -> bool: ...

    @property
    def model(self) -> FFJORD: ...

    @property
    def result(self) -> TrainResult | None: ...

    @property
    def target(self) -> Target: ...


class Backend(Protocol):
    """Builds job handles for runs; ``name`` is one of :data:`BACKENDS`."""

    name: str

    def submit(self, config: TrainConfig, *, target: Target | None = None, **job_kwargs: Any) -> JobHandle: ...

    def describe(self) -> dict[str, Any]: ...
