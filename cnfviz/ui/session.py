"""Per-session training jobs and the server-wide run scheduler, kept as Streamlit resources.

Each browser session owns one :class:`JobHolder` (a session-scoped ``st.cache_resource``), which stops its
jobs when the tab closes. All sessions share one :class:`~cnfviz.runtime.scheduler.Scheduler`: every run it admits
trains at once, and runs of one network shape train together as one stack. Its admission cap (a memory limit) comes
from the ``CNFVIZ_MAX_JOBS`` environment variable (default 32, a class of 30 and its teacher); a run beyond
it waits in a queue, first come first served, and its snapshot tells the page its place in the line.
With ``CNFVIZ_RAY_ADDRESS=host:port`` the runs train on that Ray cluster instead (:func:`job_backend`,
connected once per process); a cluster that does not answer leaves them on this server, and
:func:`backend_notice` says so.
"""

from __future__ import annotations

import asyncio
import atexit
import gc
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from .._env import log_environment, read, read_or_default
from .._validation import ConfigError
from ..runtime.admission import Admission
from ..runtime.backend import RAY_ADDRESS_ENV, Backend, LocalBackend, RayBackend
from ..runtime.housekeeping import limit_malloc_arenas, name_native_thread, release_memory
from ..runtime.job import JobSlots, TrainingJob
from ..runtime.scheduler import DEFAULT_CAPACITY, Scheduler
from ..targets import Target
from ..training.config import TrainConfig
from ..training.trainer import Trainer
from .identity import browser_id

__all__ = [
    "DEFAULT_MAX_JOBS",
    "DEFAULT_RECONNECT_GRACE",
    "MAX_JOBS_ENV",
    "PARKING",
    "RECONNECT_GRACE_ENV",
    "JobHolder",
    "ParkingLot",
    "backend_notice",
    "job_backend",
    "job_holder",
    "job_slots",
    "max_jobs",
    "reconnect_grace",
]

MAX_JOBS_ENV = "CNFVIZ_MAX_JOBS"
DEFAULT_MAX_JOBS = DEFAULT_CAPACITY
RECONNECT_GRACE_ENV = "CNFVIZ_RECONNECT_GRACE"
DEFAULT_RECONNECT_GRACE = 60.0

_log = logging.getLogger(__name__)


def max_jobs(environ: Mapping[str, str] | None = None) -> int:
    """The server's cap on concurrent training jobs: ``$CNFVIZ_MAX_JOBS`` if it is a positive integer, else 32.

    Example:
        >>> max_jobs({"CNFVIZ_MAX_JOBS": "4"}), max_jobs({"CNFVIZ_MAX_JOBS": "lots"}), max_jobs({})
        (4, 32, 32)
    """
    return read_or_default(MAX_JOBS_ENV, environ)  # a bad value: logged, and the default


class JobHolder:
    """The training jobs of one browser session, by name (the Train page uses its page prefix, ``"train"``).

    Starting a job under a name stops the one it replaces. The holder never touches ``st.*`` from a job's
    thread; pages read a job through :meth:`TrainingJob.snapshot`.

    Arguments:
        slots: the server-wide cap every job of this holder queues on.
        backend: where its jobs train (default: this process, as :class:`~cnfviz.TrainingJob` s).
    """

    def __init__(self, slots: JobSlots | None, backend: Backend | None = None) -> None:
        self.slots = slots
        self.backend = backend
        self.owner: str | None = None  # the browser (cnfviz.ui.identity), for the server's share per student
        self._jobs: dict[str, TrainingJob] = {}
        self._lock = threading.Lock()

    def get(self, name: str = "train") -> TrainingJob | None:
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
    ) -> TrainingJob:
        """Build and start a job for ``config`` (on ``target`` if given), replacing any job under ``name``.

        ``init_state`` and ``evaluate_only`` go to :class:`~cnfviz.TrainingJob` (a loaded checkpoint)."""
        if self.backend is None:
            job = TrainingJob(
                config,
                target=target,
                slots=self.slots,
                init_state=init_state,
                evaluate_only=evaluate_only,
                owner=self.owner,
            )
        else:
            job = self.backend.submit(
                config, target=target, slots=self.slots, init_state=init_state, evaluate_only=evaluate_only
            )
        with self._lock:
            old = self._jobs.get(name)
            self._jobs[name] = job
        if old is not None:
            _abandon(old)
        return job.start()

    def discard(self, name: str = "train") -> None:
        """Stop the job under ``name`` and forget it (its plots and results go with it)."""
        with self._lock:
            job = self._jobs.pop(name, None)
        if job is not None:
            _abandon(job)

    def close(self) -> list[TrainingJob]:
        """Stop every job and forget it; called when the session ends for good. Returns the stopped jobs."""
        with self._lock:
            jobs = list(self._jobs.values())
            self._jobs.clear()
        for job in jobs:
            _abandon(job)
        return jobs

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


def _abandon(job: TrainingJob) -> None:
    """Stop a job nobody will look at again, skipping its final metrics (seconds of solver work)."""
    job.stop(evaluate=False)
    close = getattr(job, "close", None)  # a run on a cluster: let its actor go now
    if close is not None:
        close()


def _warm_up() -> None:
    """Train a tiny flow for two iterations, then exempt every object alive from garbage collection.

    The first optimizer step imports ``torch._dynamo`` and with it some 800 modules (sympy among them):
    about a second that would otherwise delay the first user's first loss point. And Streamlit runs a full
    ``gc.collect()`` after every script run (``runner.postScriptGC``): with torch, scipy and those modules
    loaded it scans ~380,000 objects, 130-180 ms holding the GIL, several times a second while a page
    polls a live run, which starved the training thread to a fraction of its speed. Frozen objects are
    skipped, so the collections then take well under a millisecond.
    """
    try:
        config = TrainConfig(
            target="normal", model={"hidden": (4,)}, adam_iters=2, batch_size=16, n_test=10, eval_every=0
        )
        Trainer(config).run(final_metrics=False)
    except Exception:  # a failed warm-up only costs the first run its speed
        _log.exception("warm-up run failed")
    finally:
        gc.collect()
        gc.freeze()


_warm_up_lock = threading.Lock()
_warm_up_thread: list[threading.Thread] = []  # at most one per process, whatever happens to the caches


def _warm_up_process() -> threading.Thread:
    """Start :func:`_warm_up` once per server process, in the background."""
    with _warm_up_lock:
        if not _warm_up_thread:
            thread = threading.Thread(target=_warm_up, name="cnfviz-warm-up", daemon=True)
            thread.start()
            # A daemon thread still inside torch when the interpreter finalizes aborts the process.
            atexit.register(thread.join, 30)
            _warm_up_thread.append(thread)
        return _warm_up_thread[0]


@st.cache_resource(show_spinner=False)
def job_slots() -> Scheduler:
    """The one :class:`~cnfviz.runtime.scheduler.Scheduler` of this server process (a
    :class:`~cnfviz.runtime.job.JobSlots` that stacks). Built before the first run: the server's malloc arenas
    are capped here, before its training threads exist."""
    limit_malloc_arenas()
    scheduler = Scheduler(max_jobs())
    scheduler.admission = Admission.for_server()  # the server's memory, a share per student, a time budget
    return scheduler


def _join_all(jobs: list[TrainingJob]) -> None:
    for job in jobs:
        job.join(5)  # suspended or stopped: they end within one evaluation of the dynamics


def reconnect_grace(environ: Mapping[str, str] | None = None) -> float:
    """Seconds a disconnected session's runs wait for it to reconnect: ``$CNFVIZ_RECONNECT_GRACE``, else 60.

    Example:
        >>> reconnect_grace({"CNFVIZ_RECONNECT_GRACE": "5"}), reconnect_grace({"CNFVIZ_RECONNECT_GRACE": "-1"})
        (5.0, 60.0)
    """
    return read_or_default(RECONNECT_GRACE_ENV, environ)  # a bad value: logged, and the default


def _session_ttl() -> float | None:
    """Streamlit's ``server.disconnectedSessionTTL`` in seconds (None if this Streamlit has none)."""
    try:
        return float(st.get_option("server.disconnectedSessionTTL"))
    except (RuntimeError, KeyError, TypeError, ValueError):
        return None


log_environment()  # the server's first session: every CNFVIZ_* variable, or its error, in the server's log
# A second before Streamlit's own expiry, which makes the stored session unreachable to close.
PARKING = ParkingLot(reconnect_grace(), session_ttl=max(0.0, (_session_ttl() or 0.0) - 1.0))
"""The server's one :class:`ParkingLot` (a module global: it must outlive every session's resources)."""
atexit.register(PARKING.clear)


def _session_id() -> str | None:
    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else None


_backend_lock = threading.Lock()
_backend: list[tuple[Backend, str | None]] = []  # once per process: (backend, what to tell the users)


def _choose_backend(environ: Mapping[str, str]) -> tuple[Backend, str | None]:
    address = read(RAY_ADDRESS_ENV, environ)
    if not address:
        return LocalBackend(job_slots()), None
    try:
        # start_timeout=0: Train never waits for a worker to import torch; the run shows "queued" meanwhile.
        backend = RayBackend(address, start_timeout=0.0)
    except ConfigError as err:
        message = f"{err}. Runs train on this server instead."
        _log.warning("%s", message)
        return LocalBackend(job_slots()), message
    return backend, f"Runs train on the Ray cluster at {backend.address}."


def job_backend(environ: Mapping[str, str] | None = None) -> Backend:
    """Where this server's runs train: the Ray cluster at ``$CNFVIZ_RAY_ADDRESS`` if one is set and answers,
    else this process. Chosen, and connected, once per process: never again on a rerun."""
    with _backend_lock:
        if not _backend:
            _backend.append(_choose_backend(os.environ if environ is None else environ))
        return _backend[0][0]


def backend_notice() -> str | None:
    """What to tell users about where runs train: None on a plain server, else the Ray cluster's address, or
    why it could not be reached and that runs train here instead."""
    job_backend()
    return _backend[0][1]


class _SessionHolder(JobHolder):
    """A :class:`JobHolder` that remembers its session, so that its release can park it under that id."""

    def __init__(self, slots: JobSlots | None, session_id: str | None, backend: Backend | None = None) -> None:
        super().__init__(slots, backend)
        self.session_id = session_id


def _session_expiry(session_id: str) -> Callable[[], None] | None:
    """What shuts the disconnected session ``session_id`` down for good, from any thread, unless it has
    reconnected: Streamlit's ``Runtime.close_session`` (its session state, uploaded files and media go),
    run on the event loop that called this. None outside a running server, or when its TTL is unknown."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    if _session_ttl() is None:
        return None

    def close_if_gone() -> None:
        from streamlit.runtime import Runtime

        if not Runtime.exists():
            return
        runtime = Runtime.instance()
        if runtime.is_active_session(session_id):  # it came back
            return
        runtime.close_session(session_id)
        # Download data is only marked on the first pass over orphaned media files, deleted on the next.
        runtime.media_file_mgr.remove_orphaned_files()

    def expire() -> None:
        done = threading.Event()

        def run() -> None:
            try:
                close_if_gone()
            except Exception as err:  # the server is stopping: nothing left to free
                _log.warning("could not close the disconnected session %s: %s", session_id, err)
            finally:
                done.set()

        try:
            loop.call_soon_threadsafe(run)
        except RuntimeError:  # the event loop has closed
            return
        done.wait(10)

    return expire


def _release(holder: JobHolder) -> None:
    # Called on Streamlit's event loop when the WebSocket closes: nothing here may block.
    session_id = getattr(holder, "session_id", None)
    if session_id is None:
        holder.close()
    else:
        PARKING.park(session_id, holder, _session_expiry(session_id))


@st.cache_resource(scope="session", on_release=_release, show_spinner=False)
def job_holder() -> JobHolder:
    """This browser session's :class:`JobHolder`, or the one it left parked when its connection dropped
    (whose runs then continue); see :class:`ParkingLot`."""
    _warm_up_process()
    session_id = _session_id()
    if session_id is not None:
        parked = PARKING.claim(session_id)
        if parked is not None:
            parked.proceed()
            return parked
    backend = job_backend()
    holder = _SessionHolder(job_slots(), session_id, None if backend.name == "local" else backend)
    holder.owner = browser_id() or session_id
    return holder
