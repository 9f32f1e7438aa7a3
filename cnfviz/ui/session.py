"""The Streamlit glue of the runtime: each session's :class:`~cnfviz.runtime.holder.JobHolder` and the server's
backend, kept as Streamlit resources.

Each browser session owns one :class:`JobHolder` (a session-scoped ``st.cache_resource``), whose runs are parked
when the tab's connection drops (:class:`~cnfviz.runtime.holder.ParkingLot`). Every holder submits through the
server's one backend (:func:`job_backend`, see :func:`cnfviz.runtime.server.choose_backend`): by default warm
worker processes, so the server's GIL serves pages only; ``CNFVIZ_BACKEND=local`` trains in this process, on the
shared :class:`~cnfviz.runtime.scheduler.Scheduler` (:func:`job_slots`); ``CNFVIZ_RAY_ADDRESS=host:port`` on that
Ray cluster (one that does not answer leaves them on this machine, and :func:`backend_notice` says so). The
admission cap comes from ``CNFVIZ_MAX_JOBS`` (default 32, a class of 30 and its teacher); with it, on every
backend, the server's :class:`~cnfviz.runtime.admission.Admission` (its memory, a share per student, a time
budget) decides who trains next, and a waiting run's snapshot says why. What a session keeps (its finished
runs) counts against the server's memory until the session ends: its holder is closed when its tab is gone
for good (after the reconnect grace), which gives that memory back.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import threading
from collections.abc import Callable, Mapping

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from .._env import read_or_default
from ..runtime.admission import Admission
from ..runtime.core import Backend
from ..runtime.holder import JobHolder, ParkingLot
from ..runtime.housekeeping import limit_malloc_arenas
from ..runtime.job import JobSlots
from ..runtime.scheduler import Scheduler
from ..runtime.server import DEFAULT_MAX_JOBS, MAX_JOBS_ENV, choose_backend, max_jobs, server_backend, warm_server
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

RECONNECT_GRACE_ENV = "CNFVIZ_RECONNECT_GRACE"
DEFAULT_RECONNECT_GRACE = 60.0

_log = logging.getLogger(__name__)


@st.cache_resource(show_spinner=False)
def job_slots() -> Scheduler:
    """The one :class:`~cnfviz.runtime.scheduler.Scheduler` of this server process (a
    :class:`~cnfviz.runtime.job.JobSlots` that stacks). Built before the first run: the server's malloc arenas
    are capped here, before its training threads exist."""
    limit_malloc_arenas()
    scheduler = Scheduler(max_jobs())
    scheduler.admission = Admission.for_server()  # the server's memory, a share per student, a time budget
    return scheduler


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
    if environ is os.environ:
        return server_backend()  # the one warm_server started, if it ran
    return choose_backend(environ)


def job_backend(environ: Mapping[str, str] | None = None) -> Backend:
    """Where this server's runs train (see :func:`cnfviz.runtime.server.choose_backend`): by default worker
    processes, with ``$CNFVIZ_RAY_ADDRESS`` that Ray cluster if it answers, with ``CNFVIZ_BACKEND=local`` this
    process. Chosen, connected and started once per process: never again on a rerun."""
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

    def __init__(self, slots: JobSlots | None, session_id: str | None, backend: Backend) -> None:
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
    warm_server()  # at once if the server's entry file did not: the first Train must not pay torch's imports
    session_id = _session_id()
    if session_id is not None:
        parked = PARKING.claim(session_id)
        if parked is not None:
            parked.proceed()
            return parked
    holder = _SessionHolder(job_slots(), session_id, job_backend())
    holder.owner = browser_id() or session_id  # one browser, for the server's share per student
    return holder
