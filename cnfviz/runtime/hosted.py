"""Runs hosted in another process (a worker process or a Ray actor), by run id, with incremental polls.

A host process runs the very same :class:`~cnfviz.TrainingJob` as the local backend, in a thread of its own,
so its results match a local run's. :class:`HostedRun` wraps one such job with its controls and a poll that
answers only what the client lacks; :class:`RunStack` holds a :class:`~cnfviz.runtime.scheduler.Scheduler`
and many hosted runs, so runs of one shape train as one stack. Both backends that train elsewhere build on
them: :mod:`cnfviz.runtime.process` (worker processes on this machine) and :mod:`cnfviz.runtime.ray`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from ..targets import Target
from ..training.config import TrainConfig
from .job import TrainingJob
from .scheduler import Scheduler

__all__ = ["HISTORY_DTYPES", "HostedRun", "RunStack", "empty_history", "merge_history"]

HISTORY_DTYPES = {
    "iteration": np.int64,
    "loss": np.float64,
    "nll": np.float64,
    "nfe": np.int64,
    "nfe_iter": np.int64,
    "elapsed": np.float64,
    "test_iteration": np.int64,
    "test_nll": np.float64,
}
"""The keys of :attr:`Snapshot.history <cnfviz.runtime.job.Snapshot.history>` and their dtypes."""

_FIND_RUN_SECONDS = 30.0


def empty_history() -> dict[str, np.ndarray]:
    """A history with no rows: each key of :data:`HISTORY_DTYPES`, shape (0,)."""
    return {k: np.empty(0, dtype=d) for k, d in HISTORY_DTYPES.items()}


class HostedRun:
    """One run inside a host process: its :class:`~cnfviz.TrainingJob`, its controls, and incremental polls.

    Never raises from its constructor: an error building the run (a bad config) is kept as :attr:`error`
    and handed to the client, so it can be raised there with its own type and message.
    """

    def __init__(
        self, config: TrainConfig, target: Target | None, job_kwargs: Mapping[str, Any], where: Mapping[str, Any]
    ) -> None:
        self.where = dict(where)
        self.error: Exception | None = None
        # Calls to a threaded host may run out of order: a join or poll that overtakes start() must not
        # report a run that is about to start as over.
        self._launched = threading.Event()
        self.job: TrainingJob | None = None
        try:
            self.job = TrainingJob(config, target=target, **job_kwargs)
            self.where["device"] = str(self.job.trainer.device)
        except Exception as err:
            self.error = err

    def start(self) -> None:
        self._job().start()
        self._launched.set()

    def stop(self, evaluate: bool = True) -> None:
        self._job().stop(evaluate=evaluate)

    def pause(self) -> None:
        self._job().pause()

    def resume(self) -> None:
        self._job().resume()

    def step(self) -> None:
        self._job().step()

    def suspend(self) -> None:
        self._job().suspend()

    def proceed(self) -> bool:
        return self._job().proceed()

    def update_config(self, config: TrainConfig) -> None:
        self._job().update_config(config)

    def continue_training(self) -> bool:
        return self._job().continue_training()

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the run's thread; True while it is still alive."""
        job = self._job()
        deadline = time.monotonic() + timeout
        if not self._launched.wait(timeout):
            return True
        job.join(max(0.0, deadline - time.monotonic()))
        return job.alive

    @property
    def alive(self) -> bool:
        """Whether the run trains, or is about to (built but not yet started counts as alive)."""
        return self.job is not None and (self.job.alive or not self._launched.is_set())

    def training_state(self) -> dict[str, Any] | None:
        return self._job().training_state()

    def weights(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().clone() for k, v in self._job().model.state_dict().items()}

    def poll(self, have: Mapping[str, Any]) -> dict[str, Any]:
        """The run's snapshot with only what the client lacks, as ``have`` describes it: the history past
        ``have["lengths"]`` (entries per key), the plots if their version is not ``have["visuals_version"]``,
        the weights if the (plots version, state) moved on from ``have["weights_key"]``, the result once the
        run has ended (unless ``have["result"]``), and where it trains (unless ``have["where"]``).

        A run that could not be built answers ``{"error": "..."}``.
        """
        if self.job is None:
            return {"error": f"{type(self.error).__name__}: {self.error}"}
        job = self.job
        # Read before the snapshot: a run that ends between the two is polled once more.
        alive = self.alive
        snap = job.snapshot()
        lengths = have.get("lengths", {})
        history = {k: v[lengths.get(k, 0) :] for k, v in snap.history.items()}
        visuals = snap.visuals if snap.visuals_version != have.get("visuals_version") else None
        key = (snap.visuals_version, snap.state)
        return {
            "snapshot": replace(snap, history=history, visuals=visuals),
            "alive": alive,
            "weights_key": key,
            "weights": self.weights() if key != have.get("weights_key") else None,
            "result": job.result if not alive and not have.get("result") else None,
            "where": None if have.get("where") else self.where,
        }

    def _job(self) -> TrainingJob:
        if self.job is None:
            raise RuntimeError(f"the run could not be built: {self.error}")
        return self.job


def merge_history(history: dict[str, np.ndarray], part: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``history`` with the rows of ``part`` appended (a client's mirror of a hosted run's history)."""
    return {k: np.concatenate([v, part[k]]) if len(part.get(k, ())) else v for k, v in history.items()}


class RunStack:
    """A :class:`~cnfviz.runtime.scheduler.Scheduler` and the runs it trains, by run id: the body of a host
    process that trains runs of one shape as one stack (a worker process, or a Ray stack actor).

    Every method but :meth:`add` names its run first. Calls may arrive out of order (a threaded actor), so
    a call that overtakes its run's :meth:`add` waits for it (up to 30 s).

    Arguments:
        threads: torch threads, pinned.
        capacity: runs it admits at once.
        where: where this host is (``worker_pid``, and more on Ray), copied into each run's placement.
    """

    def __init__(self, threads: int, capacity: int, where: Mapping[str, Any] | None = None) -> None:
        self._where = dict(where) if where is not None else {"worker_pid": os.getpid()}
        self.scheduler = Scheduler(capacity, threads=max(1, threads))
        self._runs: dict[str, HostedRun] = {}
        self._cond = threading.Condition()

    def add(
        self, run_id: str, config: TrainConfig, target: Target | None, job_kwargs: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Build a run here (not started); where it trains, with ``error`` if it could not be built."""
        run = HostedRun(config, target, {**job_kwargs, "slots": self.scheduler}, self._where)
        with self._cond:
            self._runs[run_id] = run
            self._cond.notify_all()
        return {**run.where, "error": run.error}

    def drop(self, run_id: str) -> None:
        """Forget a run whose client has all of it, or that was closed: stopped at once if it still trains."""
        with self._cond:
            run = self._runs.pop(run_id, None)
        if run is not None and run.job is not None and run.job.alive:
            run.job.stop(evaluate=False)

    def runs(self) -> dict[str, HostedRun]:
        """The runs held now, by id (a copy)."""
        with self._cond:
            return dict(self._runs)

    def where(self) -> dict[str, Any]:
        return dict(self._where)

    def stack_sizes(self) -> list[int]:
        """Runs in each of this host's live stacks (see :meth:`cnfviz.runtime.scheduler.Scheduler.stack_sizes`)."""
        return self.scheduler.stack_sizes()

    def stats(self) -> dict[str, int]:
        """This host's stacked rounds so far (see :meth:`cnfviz.runtime.scheduler.Scheduler.stats`), and the runs
        it holds."""
        with self._cond:
            held = len(self._runs)
        return {**self.scheduler.stats(), "runs": held}

    def start(self, run_id: str) -> None:
        self.run(run_id).start()

    def stop(self, run_id: str, evaluate: bool = True) -> None:
        self.run(run_id).stop(evaluate)

    def pause(self, run_id: str) -> None:
        self.run(run_id).pause()

    def resume(self, run_id: str) -> None:
        self.run(run_id).resume()

    def step(self, run_id: str) -> None:
        self.run(run_id).step()

    def suspend(self, run_id: str) -> None:
        self.run(run_id).suspend()

    def proceed(self, run_id: str) -> bool:
        return self.run(run_id).proceed()

    def update_config(self, run_id: str, config: TrainConfig) -> None:
        self.run(run_id).update_config(config)

    def continue_training(self, run_id: str) -> bool:
        return self.run(run_id).continue_training()

    def join(self, run_id: str, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the run's thread; True while it is still alive."""
        return self.run(run_id).join(timeout)

    def weights(self, run_id: str) -> dict[str, torch.Tensor]:
        return self.run(run_id).weights()

    def poll(self, run_id: str, have: Mapping[str, Any]) -> dict[str, Any]:
        """The run's snapshot with only what the client lacks (see :meth:`HostedRun.poll`)."""
        try:
            run = self.run(run_id)
        except LookupError as err:
            return {"error": f"RuntimeError: {err}"}
        return run.poll(have)

    def run(self, run_id: str, wait: float = _FIND_RUN_SECONDS) -> HostedRun:
        """The run ``run_id``, waiting up to ``wait`` seconds for its :meth:`add`; LookupError if it never comes."""
        with self._cond:
            if not self._cond.wait_for(lambda: run_id in self._runs, timeout=wait):
                raise LookupError(f"no run {run_id} in this host (pid {os.getpid()})")
            return self._runs[run_id]
