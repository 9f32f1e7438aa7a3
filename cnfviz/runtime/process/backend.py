"""Runs in worker processes of this machine, so the web server's GIL serves pages only.

A :class:`ProcessBackend` keeps a few warm worker processes (fresh interpreters, as the spawn start method
makes; each imports torch once, when it starts, never per run). Each hosts a
:class:`~cnfviz.runtime.hosted.RunStack`, as a Ray stack actor does: a Scheduler that trains the runs of one
shape as one stack. Runs of one
:func:`~cnfviz.runtime.scheduler.planned_stack_key` go to the worker that already trains that shape (up to
``stack_size`` of them), others to the least loaded worker.

The handle (:class:`ProcessJob`) never asks its worker for a snapshot: the worker pushes what moved
(:mod:`cnfviz.runtime.process.worker`) and a receiver thread here keeps a mirror of each run, so
:meth:`ProcessJob.snapshot` is a read of memory, however many pages poll it. Controls go down the same pipe
and land at once. A worker that dies fails its runs only, each with its last snapshot; the next run gets a
new worker.

A shared server's :class:`~cnfviz.runtime.admission.Admission` (``ProcessBackend(admission=...)``) is decided
here, in the server, which sees every worker: a started run the policy does not admit yet stays ``queued`` in
the server, saying why, and is started in its worker only once admitted
(:class:`~cnfviz.runtime.admission.AdmissionGate`). A run that trains on (Continue, or its tab reconnected)
waits its turn there again.
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import pickle
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import replace
from multiprocessing.connection import Connection
from typing import Any

import torch

from ..._env import read
from ..._validation import check_int_range
from ...flow.ffjord import FFJORD
from ...targets import Target
from ...training.config import TrainConfig
from ...training.device import cpu_cores
from ...training.trainer import TrainResult, build_target
from ..admission import Admission, AdmissionGate
from ..budget import RunBudget, check_run, run_dim
from ..core import WORKER_DIED_REASON
from ..hosted import empty_history, merge_history
from ..job import Snapshot
from ..scheduler import DEFAULT_CAPACITY, planned_stack_key
from . import worker as worker_module

__all__ = [
    "DEFAULT_STACK_SIZE",
    "WORKERS_ENV",
    "ProcessBackend",
    "ProcessJob",
    "default_workers",
]

WORKERS_ENV = "CNFVIZ_WORKERS"
"""The environment variable that sets how many worker processes the process backend keeps."""
DEFAULT_STACK_SIZE = 16
"""Runs of one shape a worker takes before the next run of that shape goes to another worker."""
STARTING_REASON = "starting a training worker"
_READY_WAIT = 10.0  # seconds submit waits for a warm worker's answer, so a bad run raises there
_ids = itertools.count(1)
_ACTIVE = ("queued", "running", "paused")


def default_workers(cores: int | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Worker processes for this machine: ``$CNFVIZ_WORKERS`` if set, else one per core but one (the web
    server's), at least one and at most eight.

    Example:
        >>> default_workers(2, {}), default_workers(16, {}), default_workers(2, {"CNFVIZ_WORKERS": "3"})
        (1, 8, 3)
    """
    chosen = read(WORKERS_ENV, environ)  # a bad value raises, naming the variable
    if chosen is not None:
        return chosen
    cores = cpu_cores() if cores is None else cores
    return max(1, min(8, cores - 1))


class _Worker:
    """The server's side of one worker process: its pipe, a sender and a receiver thread, its runs' handles."""

    def __init__(self, index: int, threads: int, capacity: int, push_seconds: float) -> None:
        self.index = index
        ours, theirs = socket.socketpair()
        # A fresh interpreter (as multiprocessing's spawn, but without re-running the caller's __main__, which
        # a server or a script does not guard): it imports only cnfviz's worker, with this process's sys.path.
        code = (
            "import json, sys; sys.path[:0] = json.loads(sys.argv[1]); "
            "from cnfviz.runtime.process.worker import serve; serve(*map(float, sys.argv[2:]))"
        )
        args = [json.dumps(sys.path), theirs.fileno(), threads, capacity, push_seconds]
        self.process = subprocess.Popen(
            [sys.executable, "-c", code, *map(str, args)], pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL
        )
        theirs.close()
        self.conn = Connection(ours.detach())
        self.where: dict[str, Any] = {"worker_pid": self.process.pid}
        self.ready = threading.Event()
        self.dead: str | None = None
        self._lock = threading.Lock()
        self._jobs: dict[str, ProcessJob] = {}
        self._replies: dict[int, list[Any]] = {}
        self._requests = itertools.count(1)
        # A page's thread (or Streamlit's event loop, on a closed tab) never waits for the pipe: a sender does.
        self._outbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        threading.Thread(target=self._send_loop, name=f"cnfviz-send-{index}", daemon=True).start()
        threading.Thread(target=self._receive_loop, name=f"cnfviz-recv-{index}", daemon=True).start()

    # ------------------------------------------------------------------ down
    def send(self, op: str, run_id: str, *args: Any) -> None:
        if self.dead is None:
            self._outbox.put((op, run_id, args, None))

    def request(self, op: str, run_id: str, *args: Any, timeout: float) -> tuple[bool, Any, BaseException | None]:
        """Send ``op`` and wait up to ``timeout`` for its answer: (answered, value, error)."""
        if self.dead is not None:
            return False, None, None
        request = next(self._requests)
        slot: list[Any] = [threading.Event()]
        with self._lock:
            self._replies[request] = slot
        self._outbox.put((op, run_id, args, request))
        answered = slot[0].wait(timeout)
        with self._lock:
            self._replies.pop(request, None)
        if not answered or len(slot) < 3:
            return False, None, None
        return True, slot[1], slot[2]

    def _send_loop(self) -> None:
        while True:
            message = self._outbox.get()
            if message is None:
                return
            try:
                # Plain pickle, never multiprocessing's (which torch teaches to share a tensor's memory through a
                # handshake with the process that made it): weights and targets travel as bytes.
                payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as err:  # e.g. an unpicklable custom target: that run fails, the pipe lives on
                self._unsendable(message, err)
                continue
            try:
                self.conn.send_bytes(payload)
            except (BrokenPipeError, OSError, EOFError):
                return  # the receiver sees the death and fails the runs

    def _unsendable(self, message: Any, err: Exception) -> None:
        op, run_id, _, request = message
        with self._lock:
            slot = self._replies.get(request) if request is not None else None
            job = self._jobs.get(run_id)
        reason = f"cannot send {op} to the worker: {type(err).__name__}: {err}"
        if slot is not None:
            slot.extend([None, RuntimeError(reason)])
            slot[0].set()
        if op == "add" and job is not None:
            job._fail(reason, died=False)

    # ------------------------------------------------------------------ up
    def _receive_loop(self) -> None:
        while True:
            try:
                message = pickle.loads(self.conn.recv_bytes())
            except (EOFError, OSError):
                break
            kind = message[0]
            if kind == "updates":
                for run_id, data in message[1]:
                    with self._lock:
                        job = self._jobs.get(run_id)
                    if job is not None:
                        job._apply(data)
            elif kind == "reply":
                with self._lock:
                    slot = self._replies.get(message[1])
                if slot is not None:
                    slot.extend(message[2:])
                    slot[0].set()
            elif kind == "ready":
                self.where = dict(message[1])
                self.ready.set()
        self._died()

    def _died(self) -> None:
        try:
            code = self.process.wait(2)
        except subprocess.TimeoutExpired:
            code = None
        if code is None:
            why = "its pipe closed"
        elif code < 0:
            try:
                why = f"killed by {signal.Signals(-code).name}"
            except ValueError:
                why = f"killed by signal {-code}"
        else:
            why = f"exit code {code}"
        with self._lock:
            self.dead = why
            jobs = list(self._jobs.values())
            self._jobs.clear()
            replies = list(self._replies.values())
        for slot in replies:
            slot[0].set()
        self._outbox.put(None)
        where = ", ".join(f"{k} {v}" for k, v in self.where.items())
        for job in jobs:
            job._fail(WORKER_DIED_REASON.format(where=where, why=why))

    # ------------------------------------------------------------------ bookkeeping
    def attach(self, job: ProcessJob) -> None:
        with self._lock:
            self._jobs[job.job_id] = job

    def detach(self, job_id: str) -> None:
        with self._lock:
            self._jobs.pop(job_id, None)
        self.send("drop", job_id)

    def live(self, key: Any = ...) -> int:
        """Active runs here (of stack ``key`` only, if given)."""
        with self._lock:
            jobs = list(self._jobs.values())
        return sum(1 for j in jobs if j._active() and (key is ... or j.stack_key == key))

    def shutdown(self, timeout: float = 10.0) -> None:
        if self.dead is None:
            self._outbox.put(("exit", "", (), None))
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


class ProcessBackend:
    """Runs train in warm worker processes of this machine, runs of one shape as one stack in one worker.

    Arguments:
        workers: worker processes (default :func:`default_workers`: one per core but one).
        threads: torch threads per worker (default: the cores but one, shared between the workers).
        capacity: runs each worker admits at once (default 32); beyond it a run waits there, first come first
            served.
        stack_size: runs of one shape a worker takes before the next goes to another worker.
        push_seconds: how often a worker pushes its runs' news (see :mod:`cnfviz.runtime.process.worker`).
        admission: a shared server's policy (the server's memory, a share per student, a time budget),
            decided here over every worker's runs; None: every run is sent to its worker at once.

    The workers start here, in the background: the first run does not wait for them to be built, it shows
    ``queued`` until its worker is warm.

    Example:
        >>> from cnfviz import default_config
        >>> backend = ProcessBackend(workers=1)
        >>> job = backend.submit(default_config("normal", adam_iters=3, eval_every=0, n_test=100))
        >>> job.start().join(120).snapshot().state, job.snapshot().history["iteration"].tolist()
        ('done', [1, 2, 3])
        >>> backend.shutdown()
    """

    name = "process"

    def __init__(
        self,
        workers: int | None = None,
        *,
        threads: int | None = None,
        capacity: int | None = None,
        stack_size: int = DEFAULT_STACK_SIZE,
        push_seconds: float = worker_module.PUSH_SECONDS,
        admission: Admission | None = None,
    ) -> None:
        self.workers = default_workers() if workers is None else check_int_range(workers, "workers", lo=1, hi=64)
        cores = cpu_cores()
        self.threads = threads if threads is not None else max(1, (cores - 1) // self.workers)
        self.capacity = capacity if capacity is not None else DEFAULT_CAPACITY
        self.stack_size = max(1, stack_size)
        self.push_seconds = push_seconds
        self.admission = admission
        self._gate = None if admission is None else AdmissionGate(admission)
        self._lock = threading.Lock()
        self._started = itertools.count(1)
        self._pool: list[_Worker] = [self._spawn() for _ in range(self.workers)]
        _backends.add(self)

    def _spawn(self) -> _Worker:
        return _Worker(next(self._started), self.threads, self.capacity, self.push_seconds)

    def _pick(self, key: Any) -> _Worker:
        """The worker for a run of stack ``key``: one that trains that shape and has room, else the least busy;
        a dead worker is replaced first."""
        with self._lock:
            self._pool = [w if w.dead is None else self._spawn() for w in self._pool]
            pool = list(self._pool)
        if key is not None:
            shared = [(w.live(key), -i) for i, w in enumerate(pool)]
            best = max(range(len(pool)), key=lambda i: shared[i])
            if 0 < shared[best][0] < self.stack_size:
                return pool[best]
        return min(pool, key=lambda w: (w.live(), w.index))

    def submit(self, config: TrainConfig, *, target: Target | None = None, **job_kwargs: Any) -> ProcessJob:
        """A new, not yet started run in a worker; ``job_kwargs`` go to its :class:`~cnfviz.TrainingJob` there
        (``slots`` is dropped: each worker's scheduler is the cap; ``owner`` stays here, for :attr:`admission`).
        A run that cannot be built raises here, as on the local backend, unless its worker is still starting
        (then it ends ``failed``)."""
        job_kwargs.pop("slots", None)
        owner = job_kwargs.pop("owner", None)
        built = target if target is not None else build_target(config)  # a bad target fails here, at once
        evaluate_only = bool(job_kwargs.get("evaluate_only"))
        checked = config.replace(batch_size=1) if evaluate_only else config
        estimate = check_run(checked, run_dim(config, target) or 2, RunBudget.for_server())
        key = planned_stack_key(config, built, evaluate_only=evaluate_only)
        return ProcessJob(
            config,
            self._pick(key),
            target=built,
            shipped_target=target,
            key=key,
            job_kwargs=job_kwargs,
            gate=self._gate,
            owner=owner,
            peak_bytes=estimate.peak_bytes,
        )

    def warm(self, timeout: float | None = None) -> bool:
        """Wait until every worker has imported torch and is ready (a server start-up); True if all are."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            pool = list(self._pool)
        for w in pool:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not w.ready.wait(left):
                return False
        return True

    def worker_pids(self) -> list[int]:
        """The process ids of the workers now."""
        with self._lock:
            return [w.process.pid for w in self._pool]

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "pid": os.getpid(), "workers": self.workers, "worker_pids": self.worker_pids()}

    def shutdown(self) -> None:
        """End every worker (its runs stop)."""
        with self._lock:
            pool, self._pool = list(self._pool), []
        for w in pool:
            w.shutdown()


_backends: weakref.WeakSet[ProcessBackend] = weakref.WeakSet()


class ProcessJob:
    """A run in a worker process, driven and observed like a :class:`~cnfviz.TrainingJob`.

    :meth:`snapshot` reads the mirror that the worker's pushes keep up to date: no message is sent. Controls
    are sent and return at once (:meth:`proceed` and :meth:`continue_training` wait for the answer). The model
    is a local copy, with the weights of the latest push that carried any (pushed when the plots or the state
    change). Build it through :meth:`ProcessBackend.submit`.
    """

    def __init__(
        self,
        config: TrainConfig,
        worker: _Worker,
        *,
        target: Target,
        shipped_target: Target | None,
        key: Any,
        job_kwargs: Mapping[str, Any],
        gate: AdmissionGate | None = None,
        owner: str | None = None,
        peak_bytes: float = 0.0,
    ) -> None:
        self.job_id = f"proc-job-{next(_ids)}"
        self.config = config
        # A shared server's run ends by itself: its worker trains it with a time budget, the page keeps its config.
        sent = config if gate is None else gate.admission.budgeted(config)
        self._budget = sent.max_seconds if sent is not config else None
        self._trained_seconds = sent.max_seconds  # the worker's time budget (Continue raises it)
        self._gate = gate
        self.target = target
        self.stack_key = key
        kwargs = dict(job_kwargs)
        self.evaluate_only = bool(kwargs.get("evaluate_only", False))
        self._init_state = kwargs.get("init_state")
        self._worker = worker
        self._cond = threading.Condition()
        self._history = empty_history()
        self._visuals: Any = None
        self._weights: dict[str, torch.Tensor] | None = None
        self._weights_key: Any = None
        self._model: FFJORD | None = None
        self._model_key: Any = None
        self._result: TrainResult | None = None
        self._where: dict[str, Any] = {}
        self._started = False
        self._alive = False
        self._closed = False
        # "continue_training" or "proceed" while a run that trains on waits for the server's admission, and
        # until its worker has answered (a push sent before then still says it ended).
        self._resume_op: str | None = None
        self._before_resume: Snapshot | None = None
        total = config.adam_iters + config.lbfgs_iters
        self._snap = Snapshot(
            job_id=self.job_id, state="queued", reason="" if worker.ready.is_set() else STARTING_REASON,
            queue_position=None, iteration=0, total=total, stage="adam", elapsed=0.0, its_per_sec=0.0,
            eta_seconds=None, loss=None, nfe_forward=0, nfe_backward=0, history=dict(self._history), visuals=None,
            visuals_version=0, metrics=None, notes=(), config=config, loaded=self.evaluate_only,
        )  # fmt: skip
        worker.attach(self)
        self._finalizer = weakref.finalize(self, worker.detach, self.job_id)
        if worker.ready.is_set():
            _, _, error = worker.request("add", self.job_id, sent, shipped_target, kwargs, timeout=_READY_WAIT)
            if error is not None:
                self._finalizer()
                raise error
        else:  # a worker still importing torch: the run waits, and a build error ends it failed
            worker.send("add", self.job_id, sent, shipped_target, kwargs)
        if gate is not None:
            gate.register(self, owner, peak_bytes)

    # ------------------------------------------------------------------ controls
    def start(self) -> ProcessJob:
        with self._cond:
            if self._started or self._closed or self._snap.state == "failed":
                return self
            self._started = self._alive = True
        if self._gate is not None:
            self._gate.enter(self.job_id, self._launch)  # sent to its worker once the server admits it
        else:
            self._launch()
        return self

    def _launch(self) -> None:
        self._worker.send("start", self.job_id)

    def stop(self, *, evaluate: bool = True) -> None:
        """Ask the run to stop after the current iteration (``evaluate=False``: skip the final metrics)."""
        if self._gate is not None and self._gate.waiting(self.job_id):
            if self._resume_op is None:  # never admitted: nothing trained to keep
                self.close()
                return
            self._gate.leave_queue(self.job_id)  # a Continue still waiting: the run stays as it ended
            with self._cond:
                before, self._resume_op, self._before_resume = self._before_resume, None, None
                self._alive = False
                if before is not None:
                    self._snap = replace(self._snap, state=before.state, reason=before.reason, can_continue=True)
                self._cond.notify_all()
            return
        self._local(stopping=True)
        self._worker.send("stop", self.job_id, evaluate)

    def pause(self) -> None:
        self._local(paused=True)
        self._worker.send("pause", self.job_id)

    def resume(self) -> None:
        self._local(paused=False)
        self._worker.send("resume", self.job_id)

    def step(self) -> None:
        self._local(paused=True)
        self._worker.send("step", self.job_id)

    def suspend(self) -> None:
        # Called on Streamlit's event loop when a tab's connection drops: send, never wait. A run the server's
        # admission holds back holds nothing to free: it keeps its place.
        if self._gate is None or not self._gate.waiting(self.job_id):
            self._worker.send("suspend", self.job_id)

    def proceed(self) -> bool:
        """Continue a suspended run in its worker; on a shared server it waits for the server's admission
        again first (``queued``, with the reason), as a new run does."""
        if self._gate is not None:
            with self._cond:
                if self._closed or not self._started or self._snap.state == "failed":
                    return False
            if self._gate.waiting(self.job_id):
                return True  # still waiting for its first admission: nothing was suspended
            self._requeue("proceed")
            return True
        answered, ok, _ = self._worker.request("proceed", self.job_id, timeout=10.0)
        if answered and ok:
            with self._cond:
                self._alive = True
        return bool(ok)

    def update_config(self, config: TrainConfig) -> None:
        """Apply a new learning rate or λ weights from the next iteration on (see
        :meth:`~cnfviz.TrainingJob.update_config`; raises ``ValueError`` for any other change)."""
        # The worker's trainer keeps the time budget the server gave it (a live change may not touch it).
        budgeted = self._budget is not None and config.max_seconds is None
        sent = config.replace(max_seconds=self._trained_seconds) if budgeted else config
        _, _, error = self._worker.request("update_config", self.job_id, sent, timeout=5.0)
        if error is not None:
            raise error
        with self._cond:
            self.config = config

    @property
    def can_continue(self) -> bool:
        with self._cond:
            return self._snap.can_continue and not self._alive and not self._closed

    def continue_training(self) -> bool:
        """Train a run that ended done or stopped on, in its worker (see
        :meth:`~cnfviz.TrainingJob.continue_training`)."""
        if not self.can_continue:
            return False
        if self._gate is not None:  # a shared server: it waits for its admission again, as a new run does
            self._requeue("continue_training")
            return True
        answered, ok, _ = self._worker.request("continue_training", self.job_id, timeout=10.0)
        if answered and ok:
            with self._cond:
                self._alive, self._result = True, None
                self._snap = replace(self._snap, state="running", reason="", can_continue=False, metrics=None)
        return bool(ok)

    def _requeue(self, op: str) -> None:
        """Train on (``op``: ``continue_training`` or ``proceed``) once the server's admission admits the run
        again; meanwhile it shows ``queued``, with the reason."""
        with self._cond:
            self._before_resume = self._snap
            self._resume_op = op
            self._alive, self._result = True, None
            if op == "continue_training":
                self._snap = replace(self._snap, state="queued", reason="", can_continue=False, metrics=None)
            self._cond.notify_all()
        assert self._gate is not None
        self._gate.enter(self.job_id, self._relaunch)

    def _relaunch(self) -> None:
        # Called by the gate in whichever thread freed the room (maybe a worker's receiver, which must not wait
        # for its own pipe's reply): ask the worker from a thread of its own.
        op = self._resume_op
        if op is None:
            return
        threading.Thread(target=self._ask_to_resume, args=(op,), name=f"cnfviz-{op}", daemon=True).start()

    def _ask_to_resume(self, op: str) -> None:
        answered, ok, _ = self._worker.request(op, self.job_id, timeout=30.0)
        with self._cond:
            if self._resume_op != op:
                return  # stopped or closed meanwhile
            before, self._resume_op, self._before_resume = self._before_resume, None, None
            stopping = self._snap.stopping  # Stop pressed after the admission, before the worker trained on
            if answered and ok:
                if self._snap.state == "queued":
                    self._snap = replace(self._snap, state="running", reason="")
            else:  # the worker could not train it on: it stays as it was
                self._alive = False
                if before is not None:
                    self._snap = replace(self._snap, state=before.state, reason=before.reason)
            self._cond.notify_all()
        if answered and ok and stopping:
            self._worker.send("stop", self.job_id, True)
        if not (answered and ok) and self._gate is not None:
            self._gate.release(self.job_id)

    def close(self) -> None:
        """Let go of the run now: its worker stops and forgets it; the handle keeps its last snapshot."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._resume_op = None
            if self._snap.state in _ACTIVE:
                self._snap = replace(self._snap, state="stopped", reason="stopped by the user", eta_seconds=None)
            self._alive = False
            self._cond.notify_all()
        self._worker.send("stop", self.job_id, False)
        self._finalizer()
        if self._gate is not None:
            self._gate.leave(self.job_id)

    def join(self, timeout: float | None = None) -> ProcessJob:
        """Wait until the run has ended and its result has arrived (or ``timeout`` seconds)."""
        with self._cond:
            if self._started:
                self._cond.wait_for(lambda: not self._alive, timeout)
        return self

    @property
    def alive(self) -> bool:
        return self._alive

    @property
    def result(self) -> TrainResult | None:
        return self._result

    @property
    def model(self) -> FFJORD:
        """A local copy of the run's model, with the weights of its latest push (fetched now if none came
        yet); after a failure, the last weights that arrived."""
        with self._cond:
            weights, key = self._weights, self._weights_key
        if weights is None and self._worker.dead is None and self._worker.ready.is_set() and not self._closed:
            answered, fetched, _ = self._worker.request("weights", self.job_id, timeout=10.0)
            if answered and fetched is not None:
                weights, key = fetched, ("fetched", time.monotonic())
        with self._cond:
            if self._model is None or self._model_key != (id(weights), key):
                model = FFJORD(
                    self.target.dim,
                    self.config.model,
                    self.config.solver,
                    generator=torch.Generator().manual_seed(self.config.seed),
                )
                state = weights if weights is not None else self._init_state
                if state is not None:
                    model.load_state_dict(state)
                self._model, self._model_key = model.eval(), (id(weights), key)
            return self._model

    def training_state(self) -> dict[str, Any] | None:
        """The run's :meth:`~cnfviz.TrainingJob.training_state`, fetched from its worker (None while it trains)."""
        answered, state, _ = self._worker.request("training_state", self.job_id, timeout=10.0)
        return state if answered else None

    @property
    def device(self) -> str:
        return str(self._where.get("device", "cpu"))

    def placement(self) -> dict[str, Any]:
        """Where the run trains: ``worker_pid``."""
        where = self._where or self._worker.where
        return {k: where[k] for k in ("worker_pid",) if k in where}

    # ------------------------------------------------------------------ observer side
    def snapshot(self) -> Snapshot:
        """The run's latest snapshot, from the mirror its worker keeps up to date (no message is sent); a run
        the server's admission holds back is ``queued``, with the reason."""
        snap = self._snap
        waiting = self._gate is not None and self._gate.waiting(self.job_id)
        if waiting and (snap.state in _ACTIVE or self._resume_op is not None):
            reason = self._gate.why(self.job_id) or snap.reason  # type: ignore[union-attr]
            return replace(snap, state="queued", reason=reason, paused=False)
        return snap

    # ------------------------------------------------------------------ the receiver's side
    def _active(self) -> bool:
        return self._alive or (not self._started and not self._closed and self._snap.state != "failed")

    def _local(self, **flags: bool) -> None:
        """Show a control at once, before the worker's next push confirms it."""
        with self._cond:
            snap = self._snap
            if snap.state in _ACTIVE:
                state = snap.state
                if "paused" in flags and state in ("running", "paused"):
                    state = "paused" if flags["paused"] else "running"
                self._snap = replace(snap, state=state, **flags)

    def _apply(self, data: dict[str, Any]) -> None:
        if "error" in data:  # the run could not be built in its worker (the local backend raises that)
            self._fail(data["error"], died=False)
            return
        with self._cond:
            if self._closed:
                return
            was_alive = self._alive
            if data["where"]:
                self._where = dict(data["where"])
            snap: Snapshot = data["snapshot"]
            self._history = merge_history(self._history, snap.history)
            if snap.visuals is not None:
                self._visuals = snap.visuals
            if data["weights"] is not None:
                self._weights, self._weights_key = data["weights"], data["weights_key"]
            if data["result"] is not None:
                self._result = data["result"]
            if snap.config is not None:
                # The worker trains with the server's time budget; while that is all that differs, show the page's.
                self._trained_seconds = snap.config.max_seconds
                budgeted = self._budget is not None and snap.config.max_seconds == self._budget
                self.config = snap.config.replace(max_seconds=None) if budgeted else snap.config
            if self._started:  # (a run built but not started is alive in its worker, not here)
                self._alive = bool(data["alive"])
            if self._resume_op is not None:  # trains on once admitted: the worker's ended state is old news
                self._alive = True
                if snap.state not in _ACTIVE:
                    state = "queued" if self._resume_op == "continue_training" else snap.state
                    snap = replace(snap, state=state, reason="", can_continue=False, metrics=None)
            self._snap = replace(
                snap, job_id=self.job_id, history=dict(self._history), visuals=self._visuals, config=self.config
            )
            self._cond.notify_all()
            ended = was_alive and not self._alive
        if ended and self._gate is not None:
            self._gate.release(self.job_id)  # its admission is free: a waiting run may start

    def _fail(self, reason: str, *, died: bool = True) -> None:
        with self._cond:
            snap = self._snap
            self._alive, self._resume_op = False, None
            self._snap = replace(
                snap, state="failed", reason=reason, eta_seconds=None, queue_position=None, paused=False,
                stopping=False, can_continue=False,
            )  # fmt: skip
            if self._result is None:
                self._result = TrainResult("failed", reason, snap.iteration, snap.elapsed, 0.0, last=None)
            self._cond.notify_all()
        if self._gate is not None:
            self._gate.leave(self.job_id)


def _shutdown_all() -> None:
    for backend in list(_backends):
        backend.shutdown()


atexit.register(_shutdown_all)
