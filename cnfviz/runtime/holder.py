"""The runs of one browser session (:class:`JobHolder`), and where a disconnected session's runs wait for it
(:class:`ParkingLot`).

No streamlit here: :mod:`cnfviz.ui.session` keeps one holder per session as a Streamlit resource, and the
server's one parking lot. A holder talks to its runs through :class:`~cnfviz.runtime.core.JobHandle` s only,
whichever backend trains them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..targets import Target
from ..training.config import TrainConfig
from .admission import Admission, array_bytes, held_bytes
from .backend import LocalBackend
from .budget import run_dim
from .core import Backend, JobHandle
from .housekeeping import name_native_thread, release_memory
from .job import JobSlots

__all__ = ["JobHolder", "ParkingLot"]

_log = logging.getLogger(__name__)


class JobHolder:
    """The training jobs of one browser session, by name (the Train page uses its page prefix, ``"train"``).

    Starting a job under a name stops the one it replaces. Pages read a job through its
    :meth:`~cnfviz.runtime.core.JobHandle.snapshot` only.

    On a shared server (an :class:`~cnfviz.runtime.admission.Admission` on the backend or its slots) every run
    the holder keeps is counted against the server's memory for as long as it keeps it
    (:func:`~cnfviz.runtime.admission.held_bytes`: its model, pictures, history and data), under its student;
    a run discarded or replaced, or the holder closed (its session ended), gives that back. So does data the
    session keeps before any run uses it (an uploaded file's target: :meth:`hold_data`).

    Arguments:
        slots: the server-wide cap every job of this holder queues on (a local backend's).
        backend: where its jobs train (default: a :class:`~cnfviz.runtime.backend.LocalBackend` on ``slots``).
    """

    def __init__(self, slots: JobSlots | None, backend: Backend | None = None) -> None:
        self.slots = slots
        self.backend = backend if backend is not None else LocalBackend(slots)
        self.owner: str | None = None  # the browser (cnfviz.ui.identity), for the server's share per student
        self.admission: Admission | None = _admission_of(self.backend, slots)
        self._jobs: dict[str, JobHandle] = {}
        self._data: dict[str, str] = {}  # name -> its key in the admission's ledger
        self._lock = threading.Lock()

    def get(self, name: str = "train") -> JobHandle | None:
        """The job under ``name``, running or finished, or None."""
        with self._lock:
            return self._jobs.get(name)

    def start(
        self,
        config: TrainConfig,
        *,
        name: str = "train",
        target: Target | None = None,
        init_state: Mapping[str, Any] | None = None,
        evaluate_only: bool = False,
        resume: Mapping[str, Any] | None = None,
    ) -> JobHandle:
        """Build and start a job for ``config`` (on ``target`` if given), replacing any job under ``name``.

        ``init_state``, ``evaluate_only`` and ``resume`` go to :class:`~cnfviz.TrainingJob` (a loaded checkpoint)."""
        extra = {} if resume is None else {"resume": resume}
        job = self.backend.submit(
            config,
            target=target,
            slots=self.slots,
            init_state=init_state,
            evaluate_only=evaluate_only,
            owner=self.owner,
            **extra,
        )
        if self.admission is not None:
            self.admission.hold(job.job_id, self.owner, held_bytes(config, run_dim(config, target) or 2, target))
        with self._lock:
            old = self._jobs.get(name)
            self._jobs[name] = job
        if old is not None:
            self._let_go(old)
        return job.start()

    def discard(self, name: str = "train") -> None:
        """Stop the job under ``name`` and forget it (its plots and results go with it)."""
        with self._lock:
            job = self._jobs.pop(name, None)
        if job is not None:
            self._let_go(job)

    def close(self) -> list[JobHandle]:
        """Stop every job and forget it; called when the session ends for good. Returns the stopped jobs."""
        with self._lock:
            jobs = list(self._jobs.values())
            self._jobs.clear()
        for job in jobs:
            self._let_go(job)
        with self._lock:
            data = list(self._data.values())
            self._data.clear()
        if self.admission is not None:
            for key in data:
                self.admission.let_go(key)
        return jobs

    def hold_data(self, name: str, data: Any) -> None:
        """Count what the session keeps under ``name`` (an uploaded target: the bytes of its arrays, see
        :func:`~cnfviz.runtime.admission.array_bytes`) against the server's memory until it is replaced or the
        holder is closed; ``data`` None lets it go."""
        key = f"data-{id(self)}-{name}"
        with self._lock:
            if data is None:
                self._data.pop(name, None)
            else:
                self._data[name] = key
        if self.admission is None:
            return
        if data is None:
            self.admission.let_go(key)
        else:
            self.admission.hold(key, self.owner, array_bytes(data))

    def held(self) -> float:
        """The bytes this holder's runs count against the server's memory (0 without an admission)."""
        if self.admission is None:
            return 0.0
        with self._lock:
            keys = {job.job_id for job in self._jobs.values()} | set(self._data.values())
        return self.admission.held_of(keys)

    def _let_go(self, job: JobHandle) -> None:
        _abandon(job)
        if self.admission is not None:
            self.admission.let_go(job.job_id)
            self.admission.forget(job.job_id)  # a thread's run leaves no gate that would forget it

    def suspend(self) -> None:
        """Suspend every active job: their threads end within one evaluation of the dynamics, and
        :meth:`proceed` continues them (see :meth:`TrainingJob.suspend`)."""
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.suspend()

    def proceed(self) -> None:
        """Continue every suspended job."""
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.proceed()


class ParkingLot:
    """Where the jobs of a disconnected session wait for it to come back, for a grace period.

    Streamlit releases a session's resources the moment its WebSocket closes, which happens both when a
    tab closes and when a connection drops for a moment (a laptop lid, a flaky classroom Wi-Fi). Both
    look the same to the server, so both are treated the same way: the session's jobs are suspended at
    once (their threads end within about a second, their training slots go to the next in line), and
    the holder is parked under the session's id. If the browser reconnects within ``grace`` seconds
    (Streamlit's frontend does so by itself, with the same session id) the holder is handed back and its
    runs continue where they stopped; otherwise it is closed and its memory freed.

    Streamlit itself keeps a disconnected session (its session state, uploaded files, download buttons'
    data) for ``server.disconnectedSessionTTL`` seconds, but it reaps an expired one only when another
    session later disconnects, and then without shutting it down, so after a class they stayed forever.
    ``park`` therefore also takes ``expire_session``, called once ``session_ttl`` seconds after the park
    (unless the session is claimed first) to shut the session down; the memory it held is then freed.
    One reaper thread serves every parked session, and ends when there is nothing left to wait for.

    Example:
        >>> lot = ParkingLot(grace=60)
        >>> holder = JobHolder(None)
        >>> lot.park("session-1", holder)
        >>> lot.claim("session-1") is holder, lot.claim("session-1")
        (True, None)
    """

    def __init__(self, grace: float, session_ttl: float = 0.0) -> None:
        self.grace = grace
        self.session_ttl = session_ttl
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._parked: dict[str, tuple[JobHolder, float]] = {}  # session id -> (holder, monotonic deadline)
        self._sessions: dict[str, tuple[Callable[[], None], float]] = {}  # session id -> (expire_session, deadline)
        # One reaper thread for every parked session (a timer each cost a thread per closed tab, thirty for
        # a class); it ends when there is nothing to wait for, so an idle server holds none.
        self._reaper: threading.Thread | None = None

    def park(self, session_id: str, holder: JobHolder, expire_session: Callable[[], None] | None = None) -> None:
        """Suspend ``holder``'s jobs and keep it for ``grace`` seconds; call ``expire_session`` (if given)
        after ``max(grace, session_ttl)`` seconds unless :meth:`claim` comes first."""
        holder.suspend()
        now = time.monotonic()
        with self._lock:
            if expire_session is not None:
                self._sessions[session_id] = (expire_session, now + max(self.grace, self.session_ttl))
            previous = self._parked.pop(session_id, None)
            if self.grace > 0:
                self._parked[session_id] = (holder, now + self.grace)
            if (self._parked or self._sessions) and self._reaper is None:
                self._reaper = threading.Thread(target=self._reap, name="cnfviz-reaper", daemon=True)
                self._reaper.start()
            self._changed.notify()
        if previous is not None and previous[0] is not holder:
            previous[0].close()
        if self.grace <= 0:
            holder.close()

    def claim(self, session_id: str) -> JobHolder | None:
        """The holder parked for ``session_id`` (its jobs still suspended), or None. The session is back:
        its expiry is called off too."""
        with self._lock:
            entry = self._parked.pop(session_id, None)
            self._sessions.pop(session_id, None)
        return None if entry is None else entry[0]

    def _due(self) -> tuple[list[JobHolder], list[Callable[[], None]]] | None:
        """Wait for the next deadline and take the holders and sessions whose time has run out; None once
        nothing is left (the reaper then ends; the next :meth:`park` starts another)."""
        with self._lock:
            while True:
                if not self._parked and not self._sessions:
                    self._reaper = None
                    return None
                now = time.monotonic()
                holders = [sid for sid, (_, deadline) in self._parked.items() if deadline <= now]
                sessions = [sid for sid, (_, deadline) in self._sessions.items() if deadline <= now]
                if holders or sessions:
                    expired = [self._parked.pop(sid)[0] for sid in holders]
                    return expired, [self._sessions.pop(sid)[0] for sid in sessions]
                deadlines = [d for _, d in self._parked.values()] + [d for _, d in self._sessions.values()]
                self._changed.wait(min(deadlines) - now)

    def _reap(self) -> None:
        name_native_thread("cnfviz-reaper")
        while (due := self._due()) is not None:
            holders, sessions = due
            while holders:
                _join_all(holders.pop().close())
            while sessions:
                try:
                    sessions.pop()()
                except Exception as err:  # a session Streamlit already closed: nothing left to free
                    _log.warning("could not expire a disconnected session: %s", err)
            del due
            # Nobody's script run follows to collect the runs' reference cycles: free their memory now.
            release_memory()

    def clear(self) -> None:
        """Close every parked holder now, forget the sessions waiting to expire, and wait for expiries in
        progress (tests, shutdown): a thread still freeing tensors while the interpreter finalizes aborts
        the process."""
        with self._lock:
            holders = [holder for holder, _ in self._parked.values()]
            self._parked.clear()
            self._sessions.clear()
            reaper = self._reaper
            self._changed.notify()
        for holder in holders:
            holder.close()
        if reaper is not None:
            reaper.join(30)

    def __len__(self) -> int:
        with self._lock:
            return len(self._parked)


def _admission_of(backend: Backend, slots: JobSlots | None) -> Admission | None:
    """The server's admission that ``backend`` (a process or Ray backend's own, or a local backend's slots')
    decides with, if any."""
    admission = getattr(backend, "admission", None)
    if admission is None:
        admission = getattr(getattr(backend, "slots", None) or slots, "admission", None)
    return admission if isinstance(admission, Admission) else None


def _abandon(job: JobHandle) -> None:
    """Let go of a job nobody will look at again: stopped without its final metrics (seconds of solver work),
    and what it holds elsewhere (a worker's copy, a Ray actor) freed now."""
    job.stop(evaluate=False)
    job.close()


def _join_all(jobs: list[JobHandle]) -> None:
    for job in jobs:
        job.join(5)  # suspended or stopped: they end within one evaluation of the dynamics
