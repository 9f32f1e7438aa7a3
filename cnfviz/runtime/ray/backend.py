"""The Ray backend: runs train in Ray actors, runs of one shape as one stack in one actor.

Ray is imported inside the functions here, never at import time.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

from ..._env import read
from ...targets import Target
from ...training.config import TrainConfig
from ...training.trainer import build_target
from ..admission import Admission, AdmissionGate
from ..budget import RunBudget, check_run, run_dim
from ..core import JobHandle

__all__ = ["RayBackend"]


class RayBackend:
    """Runs train in Ray actors on the cluster at ``address``: runs of one shape as one stack in one actor,
    the others in an actor each.

    Connecting happens here, once per process (see :func:`cnfviz.runtime.ray.cluster.connect`); an address that does not
    answer raises :class:`ClusterUnreachable` within a few seconds. A run that can stack (its
    :func:`~cnfviz.runtime.ray.cluster_stacks.planned_stack_key` is not None) joins the open actor of its key, which
    trains up to ``stack_size`` live runs as one stack, with the local scheduler's stacked engine
    (:class:`~cnfviz.runtime.ray.cluster_stacks.StackPool`); beyond that a new actor opens for the key, and an actor
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
            worker raises there (see :class:`cnfviz.runtime.ray.cluster.RayJob`). The default, 0, never waits: a
            scheduler submits many runs at once, and the app's Train never waits for a worker to import torch.
        stacking: False gives every run an actor of its own.
        stack_size: live runs per stack actor (default ``$CNFVIZ_RAY_STACK_SIZE``, else
            :data:`~cnfviz.runtime.ray.cluster_stacks.DEFAULT_STACK_SIZE`).
        admission: a shared server's policy (the server's memory, a share per student, a time budget), decided
            here, in the server, before anything is sent to the cluster, by the same
            :class:`~cnfviz.runtime.admission.AdmissionGate` as the process backend's: a started run waits
            ``queued``, with the reason, until admitted (a run of its own builds its actor only then, so a
            waiting run holds no CPU of the cluster); a reconnected run waits again. None: every run goes at once.
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
        admission: Admission | None = None,
    ) -> None:
        from . import cluster, cluster_stacks  # they import Ray only inside their functions

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
        self.admission = admission
        self._gate = None if admission is None else AdmissionGate(admission)

    def submit(self, config: TrainConfig, *, target: Target | None = None, **job_kwargs: Any) -> JobHandle:
        """A new, not yet started run, in its stack's actor or a fresh one of its own; ``job_kwargs`` go to its
        :class:`~cnfviz.TrainingJob` (``slots`` is dropped: the cluster's resources are the cap; ``owner`` stays
        here, for :attr:`admission`)."""
        job_kwargs.pop("slots", None)
        owner = job_kwargs.pop("owner", None)
        gate = self._gate
        sent, peak = config, 0.0
        if gate is not None:
            # Before anything reaches the cluster: the run's own budget, and its estimate for the server's.
            evaluate_only = bool(job_kwargs.get("evaluate_only"))
            checked = config.replace(batch_size=1) if evaluate_only else config
            peak = check_run(checked, run_dim(config, target) or 2, RunBudget.for_server()).peak_bytes
            sent = gate.admission.budgeted(config)  # a shared server's run ends by itself
        job: Any = None
        if self.stacking:
            built = target if target is not None else build_target(config)  # a bad target fails here, at once
            key = self._stacks_module.planned_stack_key(
                config, built, evaluate_only=bool(job_kwargs.get("evaluate_only"))
            )
            if key is not None:
                job = self.stacks.submit(
                    sent, key, target=target, job_kwargs=job_kwargs, start_timeout=self.start_timeout
                )
        if job is None:
            job = self._cluster.RayJob(
                sent,
                target=target,
                job_kwargs=job_kwargs,
                num_cpus=self.num_cpus,
                start_timeout=self.start_timeout,
                recycle=self._recycle,
                defer=gate is not None,
            )
            with self._lock:
                self._jobs.add(job)
        if gate is not None:
            job.admit_through(gate, owner, peak, config)
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
