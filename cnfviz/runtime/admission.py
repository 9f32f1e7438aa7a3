"""Who trains next on a shared server: the server's memory, a fair share per student, and a time budget.

:class:`~cnfviz.runtime.job.JobSlots` counts runs. An :class:`Admission` set on it (``slots.admission``) adds
what the count cannot see:

* **the server's memory:** the estimated peak of every admitted run (:func:`~cnfviz.runtime.budget.estimate_run`)
  must fit :func:`server_memory_bytes` together: 75 % of the memory this process can see (its cgroup's limit
  in a container, else the machine's RAM), or ``CNFVIZ_SERVER_MB``;
* **a share per student:** one browser (its ``owner``) holds at most ``per_student`` admitted runs at once,
  Compare's runs included (``CNFVIZ_RUNS_PER_STUDENT``);
* **the order:** when runs wait, the one whose student holds the fewest admitted runs starts first (arrival
  order among equals), so one student's thirty tabs never starve the thirty-first student;
* **a time budget:** a run without ``max_seconds`` gets ``CNFVIZ_SHARED_RUN_SECONDS`` (:meth:`budgeted`).

Nothing here allocates or trains: it is bookkeeping under the slots' own lock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .._env import read_or_default
from ..training.config import TrainConfig
from .budget import machine_memory_bytes

__all__ = ["SERVER_SHARE", "Admission", "server_memory_bytes", "visible_memory_bytes"]

SERVER_SHARE = 0.75
"""The part of the visible memory admitted runs may need together: the rest is Streamlit, torch, the
sessions' plots and the estimate's error."""

_CGROUP_LIMITS = (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))


def visible_memory_bytes() -> int | None:
    """The memory this process may use: its cgroup's limit (v2, then v1) where lower than the machine's RAM."""
    machine = machine_memory_bytes()
    for path in _CGROUP_LIMITS:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) > 0:
            limit = int(text)
            return limit if machine is None else min(limit, machine)
    return machine


def server_memory_bytes() -> int | None:
    """What a server's admitted runs may need together: ``CNFVIZ_SERVER_MB``, else :data:`SERVER_SHARE` of
    :func:`visible_memory_bytes`; None where neither is known."""
    mb = read_or_default("CNFVIZ_SERVER_MB")
    if mb is not None:
        return int(mb * 1_000_000)
    visible = visible_memory_bytes()
    return None if visible is None else int(SERVER_SHARE * visible)


@dataclass
class _Entry:
    owner: str
    bytes: float


class Admission:
    """The server-wide memory budget and the fair share, consulted by :class:`~cnfviz.runtime.job.JobSlots`.

    Arguments:
        budget_bytes: what admitted runs may need together (None: no memory budget).
        per_student: the most admitted runs one owner holds at once.
        run_seconds: the time budget of a run that has none (None: leave it unbounded).

    Example:
        >>> adm = Admission(budget_bytes=100, per_student=2)
        >>> for job, owner, size in [("a", "ann", 40), ("b", "ann", 40), ("c", "bob", 40), ("d", "ann", 10)]:
        ...     adm.register(job, owner, size)
        >>> adm.pick(["b", "c"], {"a"})  # ann holds one run: bob's starts first
        'c'
        >>> adm.pick(["d"], {"a", "b"}) is None  # ann holds her share
        True
    """

    def __init__(self, budget_bytes: int | None, per_student: int = 4, run_seconds: float | None = None) -> None:
        self.budget_bytes = budget_bytes
        self.per_student = per_student
        self.run_seconds = run_seconds
        self._jobs: dict[str, _Entry] = {}

    @classmethod
    def for_server(cls) -> Admission:
        """The environment's limits: :func:`server_memory_bytes`, ``CNFVIZ_RUNS_PER_STUDENT`` and
        ``CNFVIZ_SHARED_RUN_SECONDS``."""
        return cls(
            server_memory_bytes(),
            read_or_default("CNFVIZ_RUNS_PER_STUDENT"),
            read_or_default("CNFVIZ_SHARED_RUN_SECONDS"),
        )

    def budgeted(self, config: TrainConfig) -> TrainConfig:
        """``config`` with a time budget: a run on a shared server ends by itself."""
        if config.max_seconds is None and self.run_seconds is not None:
            return config.replace(max_seconds=self.run_seconds)
        return config

    def register(self, job_id: str, owner: str | None, peak_bytes: float) -> None:
        """Note a job's student and estimated peak memory (before it first waits for a slot)."""
        self._jobs[job_id] = _Entry(owner or job_id, float(peak_bytes))

    def forget(self, job_id: str) -> None:
        self._jobs.pop(job_id, None)

    def _held(self, running: Iterable[str]) -> tuple[dict[str, int], float]:
        held: dict[str, int] = {}
        used = 0.0
        for job in running:
            entry = self._jobs.get(job)
            if entry is not None:
                held[entry.owner] = held.get(entry.owner, 0) + 1
                used += entry.bytes
        return held, used

    def why_not(self, job_id: str, running: Iterable[str]) -> str | None:
        """Why ``job_id`` may not start now (in words for its student), or None if it fits."""
        entry = self._jobs.get(job_id)
        if entry is None:
            return None
        held, used = self._held(running)
        mine = held.get(entry.owner, 0)
        if mine >= self.per_student:
            return (
                f"you have {mine} runs training, the most one student trains at once on this server "
                f"(CNFVIZ_RUNS_PER_STUDENT); this one starts when one of yours ends"
            )
        if self.budget_bytes is not None and used > 0 and used + entry.bytes > self.budget_bytes:
            return (
                f"the server's memory is taken by the runs training now ({used / 1e9:,.1f} of "
                f"{self.budget_bytes / 1e9:,.1f} GB, CNFVIZ_SERVER_MB); this run needs about "
                f"{entry.bytes / 1e9:,.2f} GB and starts when enough is free"
            )
        return None

    def pick(self, queue: Iterable[str], running: Iterable[str]) -> str | None:
        """The waiting job to start next: among those that fit, the one whose student holds the fewest runs
        (arrival order among equals); None if none fits."""
        running = list(running)
        held, _ = self._held(running)
        best: tuple[int, int] | None = None
        chosen = None
        for order, job in enumerate(queue):
            if self.why_not(job, running) is not None:
                continue
            entry = self._jobs.get(job)
            rank = (held.get(entry.owner, 0) if entry else 0, order)
            if best is None or rank < best:
                best, chosen = rank, job
        return chosen
