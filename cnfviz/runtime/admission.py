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
* **a time budget:** a run without ``max_seconds`` gets ``CNFVIZ_SHARED_RUN_SECONDS`` (:meth:`budgeted`);
* **what sessions hold:** a finished or stopped run that a session keeps (its model, pictures, history and
  data: :func:`held_bytes`) counts against the same memory budget until the session lets it go
  (:meth:`Admission.hold`, :meth:`Admission.let_go`), so thirty tabs of finished runs lower what the next run
  may take.

Backends whose runs train elsewhere (worker processes, a Ray cluster) decide in the server too, through one
:class:`AdmissionGate`: a started run waits there, ``queued`` with the reason, until the policy admits it.

Nothing here allocates or trains: it is bookkeeping under a lock of its own.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._env import read_or_default
from ..training.config import TrainConfig
from .budget import FLOAT_BYTES, estimate_run, machine_memory_bytes

__all__ = [
    "PICTURE_BYTES",
    "SERVER_SHARE",
    "Admission",
    "AdmissionGate",
    "array_bytes",
    "held_bytes",
    "server_memory_bytes",
    "visible_memory_bytes",
]

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


PICTURE_BYTES = {1: 300_000, 2: 600_000}
"""The arrays of one set of a run's pictures, by data dimension (measured: 0.2 MB for ``normal``, 0.42 MB for
``moons``' default model, with room for the larger final grid)."""
_HISTORY_BYTES_PER_ITERATION = 8 * 8  # iteration, loss, NLL, NFE, elapsed... float64 each


def array_bytes(obj: Any, depth: int = 4) -> int:
    """The bytes of the numpy arrays and tensors in ``obj``: its dataclass fields, attributes, mappings and
    sequences, ``depth`` levels down (enough for a target's samples and image, a snapshot's pictures)."""
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes)
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if depth <= 0 or obj is None or isinstance(obj, (str, bytes, int, float, bool)):
        return 0
    if isinstance(obj, dict):
        return sum(array_bytes(v, depth - 1) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(array_bytes(v, depth - 1) for v in obj[:10_000])
    if dataclasses.is_dataclass(obj):
        return sum(array_bytes(getattr(obj, f.name, None), depth - 1) for f in dataclasses.fields(obj))
    fields = getattr(obj, "__dict__", None)
    return sum(array_bytes(v, depth - 1) for v in fields.values()) if isinstance(fields, dict) else 0


def held_bytes(config: TrainConfig, dim: int, target: Any = None) -> int:
    """What a session keeps of a run once it has ended, from its shape (cheap: nothing is built):

    the weights and Adam's two moments (parameters × 4 bytes × 3), one set of pictures (:data:`PICTURE_BYTES`),
    the loss history, the training and test points, and a custom target's own arrays (its samples, its
    picture).

    Example:
        >>> from cnfviz import default_config
        >>> 0.5e6 < held_bytes(default_config("moons"), 2) < 2e6
        True
    """
    layers = [dim + 1, *config.model.hidden, dim]  # the time is an input of every layer but the last
    params = sum((a + 1) * b for a, b in itertools.pairwise(layers))
    iterations = config.adam_iters + config.lbfgs_iters
    total = (
        3 * FLOAT_BYTES * params
        + PICTURE_BYTES.get(dim, PICTURE_BYTES[2])
        + _HISTORY_BYTES_PER_ITERATION * iterations
        + estimate_run(config, dim).data_bytes
    )
    return int(total + (array_bytes(target) if target is not None else 0))


def _size(n: float) -> str:
    """Bytes in words: ``1.5 GB``, ``350.0 MB``."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n:,.0f} bytes"


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
        # Pages, slots and gates call in from many threads; one lock keeps the two ledgers whole.
        self._lock = threading.RLock()
        self._jobs: dict[str, _Entry] = {}
        self._holds: dict[str, _Entry] = {}
        self._listeners: list[Callable[[], None]] = []

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
        with self._lock:
            self._jobs[job_id] = _Entry(owner or job_id, float(peak_bytes))

    def forget(self, job_id: str) -> None:
        with self._lock:
            self._jobs.pop(job_id, None)

    # ------------------------------------------------------------------ what sessions hold
    def hold(self, key: str, owner: str | None, nbytes: float) -> None:
        """Count ``nbytes`` that a session keeps under ``key`` (a run's id: its model, pictures and data),
        against the server's memory, until :meth:`let_go`. While the run under ``key`` trains, its peak
        (:meth:`register`) counts instead."""
        with self._lock:
            self._holds[key] = _Entry(owner or key, float(nbytes))

    def let_go(self, key: str) -> None:
        """The session no longer keeps ``key`` (the run was discarded, replaced, or its session ended): a run
        waiting for memory may start."""
        with self._lock:
            gone = self._holds.pop(key, None)
            listeners = list(self._listeners) if gone is not None else []
        for listener in listeners:
            listener()

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (outside this lock) whenever held memory is let go."""
        with self._lock:
            self._listeners.append(listener)

    def held(self, owner: str | None = None) -> float:
        """The bytes sessions hold (of ``owner`` only, if given), whether or not their runs train."""
        with self._lock:
            return sum(e.bytes for e in self._holds.values() if owner is None or e.owner == owner)

    def held_of(self, keys: Iterable[str]) -> float:
        """The bytes held under ``keys``."""
        with self._lock:
            return sum(self._holds[k].bytes for k in keys if k in self._holds)

    def _held(self, running: Iterable[str], exclude: str | None = None) -> tuple[dict[str, int], float, float]:
        """(admitted runs per owner, bytes of the runs training, bytes held by sessions for runs not training)."""
        held: dict[str, int] = {}
        used = 0.0
        running = set(running)
        for job in running:
            entry = self._jobs.get(job)
            if entry is not None:
                held[entry.owner] = held.get(entry.owner, 0) + 1
                used += entry.bytes
        kept = sum(e.bytes for key, e in self._holds.items() if key not in running and key != exclude)
        return held, used, kept

    def why_not(self, job_id: str, running: Iterable[str]) -> str | None:
        """Why ``job_id`` may not start now (in words for its student), or None if it fits.

        A run alone always fits (the per-run budget bounds it); otherwise the runs training and what sessions
        hold must leave room for it."""
        with self._lock:
            entry = self._jobs.get(job_id)
            if entry is None:
                return None
            held, used, kept = self._held(running, exclude=job_id)
            mine = held.get(entry.owner, 0)
            if mine >= self.per_student:
                return (
                    f"you have {mine} runs training, the most one student trains at once on this server "
                    f"(CNFVIZ_RUNS_PER_STUDENT); this one starts when one of yours ends"
                )
            budget = self.budget_bytes
            if budget is None or used <= 0 or used + kept + entry.bytes <= budget:
                return None
            need = f"this run needs about {_size(entry.bytes)}"
            if used + entry.bytes <= budget:  # the runs training leave room: what sessions keep does not
                yours = sum(e.bytes for k, e in self._holds.items() if e.owner == entry.owner and k != job_id)
                return (
                    f"the server's memory is held by finished runs that open sessions keep ({_size(kept)}, "
                    f"{_size(yours)} of it yours) and by the runs training now ({_size(used)}), of "
                    f"{_size(budget)} (CNFVIZ_SERVER_MB); {need} and starts when a run ends or a session lets "
                    f"its runs go (discarding your own finished runs frees yours)"
                )
            return (
                f"the server's memory is taken by the runs training now ({_size(used)} of {_size(budget)}, "
                f"CNFVIZ_SERVER_MB, with {_size(kept)} held by finished runs); {need} and starts when enough is free"
            )

    def pick(self, queue: Iterable[str], running: Iterable[str]) -> str | None:
        """The waiting job to start next: among those that fit, the one whose student holds the fewest runs
        (arrival order among equals); None if none fits."""
        with self._lock:
            running = list(running)
            held, _, _ = self._held(running)
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


class AdmissionGate:
    """An :class:`Admission` for runs that train outside this process (worker processes, a Ray cluster): the
    server decides, over every run it sent anywhere.

    A started run :meth:`enter` s the gate; the gate calls its ``launch`` (outside its lock, in whichever
    thread freed the room: it must not wait) once the policy admits it. The run holds its admission until
    :meth:`release` (it ended, was stopped or suspended) or :meth:`leave` (closed, failed, or garbage); a run
    that trains on (Continue, a reconnected tab) enters again and waits its turn like a new one.

    Example:
        >>> gate = AdmissionGate(Admission(budget_bytes=None, per_student=1))
        >>> started = []
        >>> for job in ("a", "b"):
        ...     gate.register_id(job, "ann", 1.0)
        ...     gate.enter(job, lambda job=job: started.append(job))
        >>> started, gate.waiting("b"), "CNFVIZ_RUNS_PER_STUDENT" in gate.why("b")
        (['a'], True, True)
        >>> gate.release("a")
        >>> started, gate.waiting("b")
        (['a', 'b'], False)
    """

    def __init__(self, admission: Admission) -> None:
        self.admission = admission
        self._lock = threading.Lock()
        self._waiting: dict[str, Callable[[], None]] = {}  # in arrival order
        self._admitted: set[str] = set()
        admission.on_change(self.admit)

    def register(self, job: Any, owner: str | None, peak_bytes: float) -> None:
        """Note a run (a handle with a ``job_id``), its student and its estimated peak; a handle that is
        garbage-collected leaves the gate."""
        self.register_id(job.job_id, owner, peak_bytes)
        weakref.finalize(job, self.leave, job.job_id)

    def register_id(self, job_id: str, owner: str | None, peak_bytes: float) -> None:
        """Note a run by its id (see :meth:`register`)."""
        self.admission.register(job_id, owner, peak_bytes)

    def enter(self, job_id: str, launch: Callable[[], None]) -> None:
        """Queue a run to (re)start; ``launch`` is called once the policy admits it (at once if it does now)."""
        with self._lock:
            self._admitted.discard(job_id)
            self._waiting[job_id] = launch
        self.admit()

    def release(self, job_id: str) -> None:
        """The run no longer trains (it ended, stopped or was suspended): whatever waited may start."""
        with self._lock:
            freed = job_id in self._admitted
            self._admitted.discard(job_id)
        if freed:
            self.admit()

    def leave_queue(self, job_id: str) -> None:
        """Take a waiting run out of the queue (its student stopped it) but keep it registered: it may enter
        again (Continue)."""
        with self._lock:
            self._waiting.pop(job_id, None)
        self.admit()

    def leave(self, job_id: str) -> None:
        """Forget a run for good (closed, failed, garbage): whatever waited behind it may start."""
        with self._lock:
            self._waiting.pop(job_id, None)
            self._admitted.discard(job_id)
        self.admission.forget(job_id)
        self.admit()

    def waiting(self, job_id: str) -> bool:
        with self._lock:
            return job_id in self._waiting

    def admitted(self, job_id: str) -> bool:
        with self._lock:
            return job_id in self._admitted

    def why(self, job_id: str) -> str | None:
        """Why a waiting run cannot start yet, in words (see :meth:`Admission.why_not`)."""
        with self._lock:
            running = list(self._admitted)
        return self.admission.why_not(job_id, running)

    def admit(self) -> None:
        """Launch every waiting run the policy admits now, in the order its :meth:`Admission.pick` gives."""
        launches: list[Callable[[], None]] = []
        with self._lock:
            while self._waiting:
                chosen = self.admission.pick(list(self._waiting), self._admitted)
                if chosen is None:
                    break
                launches.append(self._waiting.pop(chosen))
                self._admitted.add(chosen)
        for launch in launches:
            launch()
