"""The run scheduler: every admitted run trains at once, runs of one shape as one stack.

A :class:`Scheduler` is a :class:`~cnfviz.runtime.job.JobSlots` whose cap is only an admission limit for
memory (default :data:`DEFAULT_CAPACITY`, enough for a class of 30). A run it admits starts at once.
While its Adam stage can be stacked (:func:`~cnfviz.runtime.stack.stack_key`), the run trains in the
:class:`~cnfviz.runtime.stack.StackGroup` of its shape; otherwise (adaptive solver, LBFGS stage) in its own
thread as before. The cores are shared between the stacks and the solo runs, never oversubscribed.
"""

from __future__ import annotations

import threading
from typing import Any

import torch

from ..targets import Target
from ..training.config import TrainConfig
from ..training.device import resolve_device
from .housekeeping import configure_threads
from .job import JobSlots
from .stack import StackGroup, plan_stack_key, stack_key

__all__ = ["DEFAULT_CAPACITY", "Scheduler", "planned_stack_key"]

DEFAULT_CAPACITY = 32
"""Runs admitted at once by default: a class of 30 and its teacher."""


class Scheduler(JobSlots):
    """Admission cap, stacks by shape, and the CPU threads shared between them.

    Arguments:
        capacity: how many runs may train at once (beyond it a run waits, first come first served).
        stacking: train runs of one shape as one stack; False trains every run in its own thread.
        reserve: cores left to the web server and the plots.
        threads: pin torch's thread count to this instead of sharing the cores (a benchmark, ``cnfviz sweep
            --threads``).

    Example:
        >>> from cnfviz import TrainingJob, default_config
        >>> scheduler = Scheduler()
        >>> jobs = [TrainingJob(default_config("moons", adam_iters=3, eval_every=0, n_test=100, seed=s),
        ...                     slots=scheduler, compute_final_metrics=False) for s in range(3)]
        >>> [job.start() for job in jobs] and [job.join(60).snapshot().state for job in jobs]
        ['done', 'done', 'done']
        >>> scheduler.stats()["run_iterations"]
        9
    """

    def __init__(
        self, capacity: int = DEFAULT_CAPACITY, *, stacking: bool = True, reserve: int = 1, threads: int | None = None
    ) -> None:
        super().__init__(capacity)
        self.stacking = stacking
        self.reserve = reserve
        self.threads = threads
        self._lock = threading.RLock()
        self._groups: dict[tuple[Any, ...], StackGroup] = {}
        self._where: dict[int, StackGroup] = {}
        self._rounds = 0
        self._run_iterations = 0
        self._largest = 0

    # ------------------------------------------------------------------ JobSlots hooks
    def acquire(self, job_id: str, cancel: threading.Event, timeout: float | None = None) -> bool:
        """Admit at once while under the cap (no line to wait in); beyond it, wait first come, first served."""
        with self._cond:
            fits = self.admission is None or self.admission.why_not(job_id, self._running) is None
            if not self._queue and len(self._running) < self._capacity and fits:
                self._running.add(job_id)
                return True
        return super().acquire(job_id, cancel, timeout)

    def attach(self, trainer: Any) -> None:
        trainer.stacker = self
        self.configure_threads()

    def release(self, job_id: str) -> None:
        super().release(job_id)
        self.configure_threads()

    def configure_threads(self) -> int:
        """Split the cores between the stacks and the runs training alone; returns threads per unit."""
        if self.threads is not None:
            if torch.get_num_threads() != self.threads:
                torch.set_num_threads(self.threads)
            return self.threads
        with self._lock:
            stacked = sum(g.size for g in self._groups.values())
            units = len(self._groups) + max(0, self.running - stacked)
        return configure_threads(max(1, units), self.reserve)

    # ------------------------------------------------------------------ the trainer's side
    def group_for(self, trainer: Any) -> StackGroup | None:
        """The stack ``trainer`` trains its next iteration in (joining or switching as its shape says), or None."""
        key = stack_key(trainer) if self.stacking else None
        with self._lock:
            current = self._where.get(id(trainer))
            if current is not None and current.key == key and not current.closed:
                return current
            changed = current is not None
            if current is not None:
                self._leave(trainer)
            group = None
            if key is not None:
                group = self._groups.get(key)
                if group is None or group.closed:
                    group = self._groups[key] = StackGroup(key, on_round=self._count_round)
                group.add(trainer)
                self._where[id(trainer)] = group
                changed = True
        if changed:
            self.configure_threads()
        return group

    def leave(self, trainer: Any) -> None:
        """Take ``trainer`` out of its stack (it stopped, failed, finished its Adam stage or was suspended)."""
        with self._lock:
            left = self._leave(trainer)
        if left:
            self.configure_threads()

    def _leave(self, trainer: Any) -> bool:
        group = self._where.pop(id(trainer), None)
        if group is None:
            return False
        if group.remove(trainer) and self._groups.get(group.key) is group:
            del self._groups[group.key]
        return True

    def _count_round(self, size: int, seconds: float) -> None:
        with self._lock:
            self._rounds += 1
            self._run_iterations += size
            self._largest = max(self._largest, size)

    # ------------------------------------------------------------------ observers
    def stack_sizes(self) -> list[int]:
        """How many runs each live stack holds now."""
        with self._lock:
            return [g.size for g in self._groups.values()]

    def stats(self) -> dict[str, int]:
        """Rounds run, run-iterations trained in stacks, and the largest round, so far."""
        with self._lock:
            return {"rounds": self._rounds, "run_iterations": self._run_iterations, "largest_round": self._largest}


def planned_stack_key(config: TrainConfig, target: Target, *, evaluate_only: bool = False) -> tuple[Any, ...] | None:
    """The :func:`~cnfviz.runtime.stack.stack_key` the run's trainer will have, from its config and target, without
    building the run; None when it cannot stack (it then trains alone).

    The device is this machine's guess (``auto`` on a CPU-only client says ``cpu``): it only groups runs,
    and the host's scheduler stacks by the real key, so a wrong guess costs speed, never results.

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
