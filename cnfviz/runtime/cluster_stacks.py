"""Stacks on a Ray cluster: runs of one network shape share one actor, which trains them as one stack.

Locally a :class:`~cnfviz.runtime.scheduler.Scheduler` trains runs of one :func:`~cnfviz.runtime.stack.stack_key`
together, as one batched model. On Ray the same happens inside an actor: a :class:`StackHost` holds a Scheduler and the
runs' :class:`~cnfviz.TrainingJob` s, so a stacked run's numbers are the ones it gets in a local stack.
Each run keeps its own client handle (:class:`StackedRayJob`, a :class:`~cnfviz.runtime.cluster.RayJob` whose calls
name the run), with its own controls and incremental polls: stopping one run of a stack leaves the others
training, and one run's failure is its own. A killed actor fails every run it held, each with its last
snapshot.

The backend's :class:`StackPool` keeps one open actor per stack key: a new run joins it until it holds
``size`` live runs, then a new actor opens for that key; an actor with no live run left is let go (which
frees its CPU). Runs that cannot stack (an adaptive solver, a loaded model that is only evaluated...) keep
an actor of their own (:class:`~cnfviz.runtime.cluster.RayJob`).

Ray is imported inside the functions here, never at import time.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

import torch

from ..targets import Target
from ..training.config import TrainConfig
from ..training.device import resolve_device
from .cluster import HostedRun, RayJob, worker_setup
from .scheduler import Scheduler
from .stack import plan_stack_key

__all__ = [
    "DEFAULT_STACK_SIZE",
    "STACK_SIZE_ENV",
    "StackHost",
    "StackPool",
    "StackedRayJob",
    "planned_stack_key",
]

DEFAULT_STACK_SIZE = 8
"""Live runs one stack actor trains at most. On one core, 8 stacked runs train 2.6x the iterations of 8
runs one after another, but each at ~0.4x the speed of a run alone (benchmarks/README.md, "Many runs at
once"): beyond that, a class's runs are better spread over more of the cluster's CPUs."""
STACK_SIZE_ENV = "CNFVIZ_RAY_STACK_SIZE"
"""The environment variable that sets :data:`DEFAULT_STACK_SIZE` for the app and the CLI (1: no stacking)."""

_FIND_RUN_SECONDS = 30.0


def planned_stack_key(config: TrainConfig, target: Target, *, evaluate_only: bool = False) -> tuple[Any, ...] | None:
    """The :func:`~cnfviz.runtime.stack.stack_key` the run's trainer will have, from its config and target, without
    building the run; None when it cannot stack (it then trains in an actor of its own).

    The device is this machine's guess (``auto`` on a CPU-only client says ``cpu``): it only groups runs,
    and the actor's scheduler stacks by the real key, so a wrong guess costs speed, never results.

    Example:
        >>> from cnfviz import default_config, make_target
        >>> cfg = default_config("moons")
        >>> planned_stack_key(cfg, make_target("moons"))[:3]
        (2, (64, 64, 64), 'tanh')
        >>> planned_stack_key(cfg.replace(solver={"method": "dopri5"}), make_target("moons")) is None
        True
    """
    if evaluate_only:
        return None  # it trains nothing
    return plan_stack_key(config, dim=target.dim, device=resolve_device(config.device))


class StackHost:
    """The body of a stack's Ray actor: a :class:`~cnfviz.runtime.scheduler.Scheduler` and the runs it stacks,
    by run id.

    Every method but :meth:`add` names its run first. Calls to a threaded actor may run out of order, so a
    call that overtakes its run's :meth:`add` waits for it (up to 30 s).

    Arguments:
        threads: torch threads, pinned (the CPUs the actor holds).
        capacity: runs it admits at once (the pool never sends more).
    """

    def __init__(self, threads: int, capacity: int) -> None:
        self._where = worker_setup(threads)
        self.scheduler = Scheduler(capacity, threads=max(1, threads))
        self._runs: dict[str, HostedRun] = {}
        self._cond = threading.Condition()

    def add(
        self, run_id: str, config: TrainConfig, target: Target | None, job_kwargs: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Build a run in this actor (not started); where it trains, with ``error`` if it could not be built."""
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

    def where(self) -> dict[str, Any]:
        return dict(self._where)

    def stack_sizes(self) -> list[int]:
        """Runs in each of this actor's live stacks (see :meth:`cnfviz.runtime.scheduler.Scheduler.stack_sizes`)."""
        return self.scheduler.stack_sizes()

    def stats(self) -> dict[str, int]:
        """This actor's stacked rounds so far (see :meth:`cnfviz.runtime.scheduler.Scheduler.stats`), and the runs it
        holds."""
        with self._cond:
            held = len(self._runs)
        return {**self.scheduler.stats(), "runs": held}

    def start(self, run_id: str) -> None:
        self._run(run_id).start()

    def stop(self, run_id: str, evaluate: bool = True) -> None:
        self._run(run_id).stop(evaluate)

    def pause(self, run_id: str) -> None:
        self._run(run_id).pause()

    def resume(self, run_id: str) -> None:
        self._run(run_id).resume()

    def step(self, run_id: str) -> None:
        self._run(run_id).step()

    def suspend(self, run_id: str) -> None:
        self._run(run_id).suspend()

    def proceed(self, run_id: str) -> bool:
        return self._run(run_id).proceed()

    def update_config(self, run_id: str, config: TrainConfig) -> None:
        self._run(run_id).update_config(config)

    def join(self, run_id: str, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the run's thread; True while it is still alive."""
        return self._run(run_id).join(timeout)

    def weights(self, run_id: str) -> dict[str, torch.Tensor]:
        return self._run(run_id).weights()

    def poll(self, run_id: str, have: Mapping[str, Any]) -> dict[str, Any]:
        """The run's snapshot with only what the client lacks (see :meth:`cnfviz.runtime.cluster.HostedRun.poll`)."""
        try:
            run = self._run(run_id)
        except LookupError as err:
            return {"error": f"RuntimeError: {err}"}
        return run.poll(have)

    def _run(self, run_id: str) -> HostedRun:
        with self._cond:
            if not self._cond.wait_for(lambda: run_id in self._runs, timeout=_FIND_RUN_SECONDS):
                raise LookupError(f"no run {run_id} in the stack actor (pid {os.getpid()})")
            return self._runs[run_id]


class _Stack:
    """One stack actor as the backend sees it: its key, its handle, how many live runs it holds."""

    def __init__(self, key: tuple[Any, ...], actor: Any) -> None:
        self.key = key
        self.actor = actor
        self.live = 0
        self.dead = False


class _Ticket:
    """A run's place in a stack actor, given back exactly once (:meth:`StackPool.release`)."""

    def __init__(self, stack: _Stack) -> None:
        self.stack = stack
        self.done = False


_host_class: list[Any] = []
_host_lock = threading.Lock()


def _remote_host() -> Any:
    import ray

    with _host_lock:
        if not _host_class:
            _host_class.append(ray.remote(StackHost))
        return _host_class[0]


class StackPool:
    """The stack actors of one backend: one open actor per stack key, at most ``size`` live runs each.

    Arguments:
        num_cpus: CPUs each stack actor holds (it trains with that many torch threads).
        size: live runs per actor; a run beyond it opens a new actor for its key.
    """

    def __init__(self, num_cpus: float = 1.0, size: int = DEFAULT_STACK_SIZE) -> None:
        if size < 1:
            raise ValueError(f"stack size must be at least 1 (got {size})")
        self.num_cpus = num_cpus
        self.size = size
        self._lock = threading.Lock()
        self._open: dict[tuple[Any, ...], _Stack] = {}
        self._all: list[_Stack] = []

    def submit(
        self,
        config: TrainConfig,
        key: tuple[Any, ...],
        *,
        target: Target | None = None,
        job_kwargs: Mapping[str, Any] | None = None,
        start_timeout: float = 0.0,
    ) -> StackedRayJob:
        """A new, not yet started run of stack ``key``, in the key's open actor (opened now if need be)."""
        with self._lock:
            stack = self._open.get(key)
            if stack is None or stack.dead or stack.live >= self.size:
                threads = max(1, int(self.num_cpus))
                actor = (
                    _remote_host()
                    # Threads: each run's join() waits in the actor; its polls and controls must not wait behind it.
                    .options(num_cpus=self.num_cpus, max_concurrency=3 * self.size + 4)
                    .remote(threads, self.size)
                )
                stack = self._open[key] = _Stack(key, actor)
                self._all.append(stack)
            stack.live += 1
            ticket = _Ticket(stack)
        try:
            return StackedRayJob(
                config, ticket=ticket, pool=self, target=target, job_kwargs=job_kwargs, start_timeout=start_timeout
            )
        except BaseException:
            self.release(ticket)
            raise

    def release(self, ticket: _Ticket) -> None:
        """A run left its stack actor (ended and collected, closed, or failed); the last one lets it go."""
        import ray

        with self._lock:
            if ticket.done:
                return
            ticket.done = True
            stack = ticket.stack
            stack.live -= 1
            if stack.live > 0:
                return
            if self._open.get(stack.key) is stack:
                del self._open[stack.key]
            self._all = [s for s in self._all if s is not stack]
        try:
            ray.kill(stack.actor, no_restart=True)
        except Exception:  # already gone
            pass

    def dead(self, stack: _Stack) -> None:
        """The actor died: no new run may join it."""
        with self._lock:
            stack.dead = True
            if self._open.get(stack.key) is stack:
                del self._open[stack.key]

    def live(self) -> list[int]:
        """Live runs in each stack actor this pool holds now."""
        with self._lock:
            return [s.live for s in self._all]


class StackedRayJob(RayJob):
    """A run in a stack actor (:class:`StackHost`), driven and observed like a :class:`~cnfviz.TrainingJob`.

    The same handle as :class:`~cnfviz.runtime.cluster.RayJob` (polls, controls, faults, the local model copy), with
    every call naming this run in the shared actor. When the run has ended and all of it is on the client,
    or it is closed, it leaves the actor (which other runs may still use) instead of killing it. Build it
    through :meth:`StackPool.submit`.
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        ticket: _Ticket,
        pool: StackPool,
        target: Target | None = None,
        job_kwargs: Mapping[str, Any] | None = None,
        start_timeout: float = 0.0,
        poll_timeout: float = 0.2,
    ) -> None:
        self._setup(config, target, job_kwargs, poll_timeout)
        self.stack_key = ticket.stack.key
        self._ticket, self._pool = ticket, pool
        self._actor = ticket.stack.actor
        self._built = self._actor.add.remote(self.job_id, config, target, self._ship[2])
        self._await_built(start_timeout)

    def _remote(self, actor: Any, method: str, *args: Any) -> Any:
        return getattr(actor, method).remote(self.job_id, *args)

    def _let_go(self, ray: Any, *, recycle: bool) -> None:
        try:
            self._actor.drop.remote(self.job_id)
        except Exception:  # the actor is gone
            pass
        self._pool.release(self._ticket)

    def _waiting(self) -> bool:
        return False  # never moved to a solo run's warm worker

    def _adopt(self, actor: Any) -> bool:
        return False

    def _die(self, err: BaseException) -> None:
        import ray

        super()._die(err)
        if isinstance(err, ray.exceptions.RayActorError):
            self._pool.dead(self._ticket.stack)
        self._pool.release(self._ticket)
