"""A web server's runtime, once per process: where its runs train, and a warm start before the first student.

:func:`server_backend` picks the backend from the environment once (``$CNFVIZ_RAY_ADDRESS``: that Ray cluster;
else ``$CNFVIZ_BACKEND``: ``process``, the default, or ``local``). :func:`warm_server` pays every one-time cost
at server start, in the background: torch and what its optimizer imports lazily, the backend's worker
processes, and a frozen heap. The app's entry file calls it; nothing here imports streamlit.
"""

from __future__ import annotations

import atexit
import gc
import logging
import os
import threading
from collections.abc import Mapping

from .._env import log_environment, read, read_or_default
from .._validation import ConfigError
from .admission import Admission
from .backend import LocalBackend
from .core import BACKEND_ENV, BACKENDS, RAY_ADDRESS_ENV, Backend
from .housekeeping import limit_malloc_arenas, warm_up
from .scheduler import DEFAULT_CAPACITY, Scheduler

__all__ = [
    "DEFAULT_MAX_JOBS",
    "MAX_JOBS_ENV",
    "choose_backend",
    "max_jobs",
    "server_backend",
    "server_scheduler",
    "warm_server",
]

MAX_JOBS_ENV = "CNFVIZ_MAX_JOBS"
"""The environment variable that caps the runs a server trains at once (a memory limit)."""
DEFAULT_MAX_JOBS = DEFAULT_CAPACITY

_log = logging.getLogger(__name__)
_lock = threading.Lock()
_backend: list[tuple[Backend, str | None]] = []  # once per process: (backend, what to tell the users)
_scheduler: list[Scheduler] = []
_warm_thread: list[threading.Thread] = []


def max_jobs(environ: Mapping[str, str] | None = None) -> int:
    """The server's cap on concurrent training jobs: ``$CNFVIZ_MAX_JOBS`` if it is a positive integer, else 32.

    Example:
        >>> max_jobs({"CNFVIZ_MAX_JOBS": "4"}), max_jobs({"CNFVIZ_MAX_JOBS": "lots"}), max_jobs({})
        (4, 32, 32)
    """
    return read_or_default(MAX_JOBS_ENV, environ)  # a bad value: logged, and the default


def server_scheduler() -> Scheduler:
    """The process's one :class:`~cnfviz.runtime.scheduler.Scheduler` for runs trained in it (the local backend).
    Built before the first run: the server's malloc arenas are capped here, before its training threads exist."""
    with _lock:
        if not _scheduler:
            limit_malloc_arenas()
            _scheduler.append(Scheduler(max_jobs()))
        return _scheduler[0]


def choose_backend(environ: Mapping[str, str]) -> tuple[Backend, str | None]:
    """The backend ``environ`` asks for, and what to tell users about it (None on a plain server).

    ``$CNFVIZ_RAY_ADDRESS`` sends runs to that Ray cluster (one that does not answer leaves them on this
    machine, and the notice says so); else ``$CNFVIZ_BACKEND`` is ``process`` (the default: worker processes)
    or ``local`` (threads of the server). Any other value raises :class:`ConfigError` naming the variable.
    """
    name = read(BACKEND_ENV, environ) or "process"
    if name not in BACKENDS:
        allowed = list(BACKENDS)
        raise ConfigError(
            f'{BACKEND_ENV}: invalid value "{name}". Must be one of {allowed}', field=BACKEND_ENV, allowed=allowed
        )
    address = read(RAY_ADDRESS_ENV, environ)
    notice = None
    if address or name == "ray":
        from .ray.backend import RayBackend

        try:
            # start_timeout=0: Train never waits for a worker to import torch; the run shows "queued" meanwhile.
            # The server decides admission (its memory, a share per student, a time budget) before Ray sees a run.
            backend = RayBackend(address or None, start_timeout=0.0, admission=Admission.for_server())
        except ConfigError as err:
            notice = f"{err}. Runs train on this server instead."
            _log.warning("%s", notice)
            name = "process" if name == "ray" else name
        else:
            return backend, f"Runs train on the Ray cluster at {backend.address}."
    if name == "local":
        return LocalBackend(server_scheduler()), notice
    from .process import ProcessBackend

    # The server's memory, a share per student and a time budget, decided here over every worker's runs.
    return ProcessBackend(capacity=max_jobs(environ), admission=Admission.for_server()), notice


def server_backend(environ: Mapping[str, str] | None = None) -> tuple[Backend, str | None]:
    """This process's backend and its notice (see :func:`choose_backend`): chosen, connected and started once,
    whoever asks first (:func:`warm_server` at start-up, or the first page)."""
    with _lock:
        chosen = bool(_backend)
    if not chosen:
        backend = choose_backend(os.environ if environ is None else environ)
        with _lock:
            if not _backend:
                _backend.append(backend)
            elif backend[0] is not _backend[0][0]:
                shutdown = getattr(backend[0], "shutdown", None)  # lost a race: let its workers go
                if shutdown is not None:
                    shutdown()
    return _backend[0]


def _warm() -> None:
    try:
        log_environment()  # every CNFVIZ_* variable, or its error and what happens instead, in the server's log
        warm_up()
        backend, _ = server_backend()
        wait = getattr(backend, "warm", None)
        if wait is not None:
            wait(120)  # the workers import torch meanwhile; this thread only waits
    except Exception:  # a failed warm-up costs the first run its speed, never the server
        _log.exception("warming the server up failed")
    finally:
        gc.collect()
        # Streamlit runs gc.collect() after every script run: with torch loaded that scanned ~380,000 objects
        # (130-180 ms holding the GIL) several times a second. Frozen objects are skipped.
        gc.freeze()


def warm_server() -> threading.Thread:
    """Warm this server up, once per process, in a background thread (returned; later calls return it):
    import torch and what its optimizer imports lazily (``torch._dynamo``: three first students at one
    instant once waited 55 s on that import's lock), start the backend and its worker processes, then
    freeze the heap so that Streamlit's collections after each script run skip it.

    Call it when the server starts, before the first page; a page that comes earlier does not wait for it.
    """
    with _lock:
        if not _warm_thread:
            # Cap the malloc arenas before the server's threads multiply (script runners, streams): also
            # when runs train in worker processes and this process never builds a scheduler.
            limit_malloc_arenas()
            thread = threading.Thread(target=_warm, name="cnfviz-warm-up", daemon=True)
            thread.start()
            # A daemon thread still inside torch when the interpreter finalizes aborts the process.
            atexit.register(thread.join, 30)
            _warm_thread.append(thread)
        return _warm_thread[0]
