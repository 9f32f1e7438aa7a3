"""Per-session training jobs and the server-wide cap on concurrent runs, kept as Streamlit resources.

Each browser session owns one :class:`JobHolder` (a session-scoped ``st.cache_resource``), which stops its
jobs when the tab closes. All sessions share one :class:`~cnfviz.JobSlots`, whose capacity comes from the
``CNFVIZ_MAX_JOBS`` environment variable (default 2); a run beyond it waits in a queue, first come first
served, and its snapshot tells the page its place in the line.
"""

from __future__ import annotations

import atexit
import gc
import logging
import os
import threading
from collections.abc import Mapping

import streamlit as st

from ..config import TrainConfig
from ..job import JobSlots, TrainingJob
from ..targets import Target
from ..training import Trainer

__all__ = ["DEFAULT_MAX_JOBS", "MAX_JOBS_ENV", "JobHolder", "job_holder", "job_slots", "max_jobs"]

MAX_JOBS_ENV = "CNFVIZ_MAX_JOBS"
DEFAULT_MAX_JOBS = 2

_log = logging.getLogger(__name__)


def max_jobs(environ: Mapping[str, str] | None = None) -> int:
    """The server's cap on concurrent training jobs: ``$CNFVIZ_MAX_JOBS`` if it is a positive integer, else 2.

    Example:
        >>> max_jobs({"CNFVIZ_MAX_JOBS": "4"}), max_jobs({"CNFVIZ_MAX_JOBS": "lots"}), max_jobs({})
        (4, 2, 2)
    """
    raw = (os.environ if environ is None else environ).get(MAX_JOBS_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_JOBS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        _log.warning("%s=%r is not a positive integer; using %d", MAX_JOBS_ENV, raw, DEFAULT_MAX_JOBS)
        return DEFAULT_MAX_JOBS
    return value


class JobHolder:
    """The training jobs of one browser session, by name (the Train page uses its page prefix, ``"train"``).

    Starting a job under a name stops the one it replaces. The holder never touches ``st.*`` from a job's
    thread; pages read a job through :meth:`TrainingJob.snapshot`.

    Arguments:
        slots: the server-wide cap every job of this holder queues on.
    """

    def __init__(self, slots: JobSlots | None) -> None:
        self.slots = slots
        self._jobs: dict[str, TrainingJob] = {}
        self._lock = threading.Lock()

    def get(self, name: str = "train") -> TrainingJob | None:
        """The job under ``name``, running or finished, or None."""
        with self._lock:
            return self._jobs.get(name)

    def start(self, config: TrainConfig, *, name: str = "train", target: Target | None = None) -> TrainingJob:
        """Build and start a job for ``config`` (on ``target`` if given), replacing any job under ``name``."""
        job = TrainingJob(config, target=target, slots=self.slots)
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

    def close(self) -> None:
        """Stop every job; called when the session ends."""
        with self._lock:
            jobs = list(self._jobs.values())
            self._jobs.clear()
        for job in jobs:
            _abandon(job)


def _abandon(job: TrainingJob) -> None:
    """Stop a job nobody will look at again, skipping its final metrics (seconds of solver work)."""
    job.stop(evaluate=False)


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
def job_slots() -> JobSlots:
    """The one :class:`~cnfviz.JobSlots` of this server process."""
    return JobSlots(max_jobs())


def _release(holder: JobHolder) -> None:
    holder.close()


@st.cache_resource(scope="session", on_release=_release, show_spinner=False)
def job_holder() -> JobHolder:
    """This browser session's :class:`JobHolder`; its jobs stop when the session disconnects."""
    _warm_up_process()
    return JobHolder(job_slots())
