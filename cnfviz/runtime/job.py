"""Training in a background thread, observed through lock-guarded snapshots; a cap on concurrent jobs.

The app's :class:`~cnfviz.runtime.scheduler.Scheduler` extends the cap: every admitted run trains at once, in stacks.

This is the engine room of the app, and has no UI code: the worker thread never touches the UI.
It appends to a history and refreshes plot data under a lock, and any thread may ask for a
:class:`Snapshot`, an immutable copy, at any time.
"""

from __future__ import annotations

import atexit
import itertools
import math
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .._validation import ConfigError
from ..figures.views import Visuals, compute_visuals
from ..flow.ffjord import FFJORD
from ..flow.solver import SolverError, SolverInterrupted
from ..targets import Target
from ..training.config import TrainConfig
from ..training.metrics import Metrics
from ..training.trainer import IterationRecord, Trainer, TrainResult
from .budget import RunBudget, check_run, run_dim
from .housekeeping import configure_threads, name_native_thread

__all__ = ["FRESH_OPTIMIZER_NOTE", "THREAD_NAME", "JobSlots", "Snapshot", "TrainingJob"]

THREAD_NAME = "cnfviz-job"
"""The operating-system name of every training thread (Linux), so ``top -H`` or ``/proc/<pid>/task/*/comm``
shows how many runs a server holds."""

_ids = itertools.count(1)
# Live jobs, so that interpreter exit can stop them: a daemon thread still inside torch when the
# interpreter finalizes aborts the whole process ("terminate called without an active exception").
_live: weakref.WeakSet[TrainingJob] = weakref.WeakSet()


@atexit.register
def _stop_live_jobs() -> None:
    jobs = list(_live)
    for job in jobs:
        job.stop(evaluate=False)
    for job in jobs:
        job.join(30)


FRESH_OPTIMIZER_NOTE = (
    "This checkpoint holds no optimizer state (an older cnfviz saved it): training continues from its weights "
    "with a fresh Adam optimizer, so the first iterations may move the loss more than the saved run's would"
)
"""The note a loaded checkpoint without training state gets when Continue trains it on."""
SUSPENDED_REASON = "the connection dropped; training continues when the page reconnects"

_ENDINGS = threading.Semaphore(1)
"""One run at a time in a process draws its final pictures and computes its final metrics. A class's runs
end within seconds of each other; their endings at once (accurate solves, seconds each, all in Python) took
the GIL from the stack still training the others: issue 19's update gaps of 4-7 s came from there."""


def _ending_turn(abort: threading.Event) -> bool:
    """Wait for this run's turn to end (see :data:`_ENDINGS`); False when the run was abandoned meanwhile."""
    while not _ENDINGS.acquire(timeout=0.05):
        if abort.is_set():
            return False
    return True


class JobSlots:
    """A first-come, first-served cap on concurrent training jobs, with queue positions.

    Arguments:
        capacity: how many jobs may train at once.

    Example:
        >>> slots = JobSlots(1)
        >>> slots.acquire("a", threading.Event())
        True
        >>> slots.position("a")
        0
        >>> slots.release("a")
    """

    def __init__(self, capacity: int = 2) -> None:
        self._cond = threading.Condition()
        self._capacity = max(1, int(capacity))
        self._running: set[str] = set()
        self._queue: deque[str] = deque()
        self.admission: Any = None  # a runtime.admission.Admission: memory, a share per student, the order

    @property
    def capacity(self) -> int:
        return self._capacity

    @capacity.setter
    def capacity(self, value: int) -> None:
        with self._cond:
            self._capacity = max(1, int(value))
            self._cond.notify_all()

    def acquire(self, job_id: str, cancel: threading.Event, timeout: float | None = None) -> bool:
        """Wait for a slot, in arrival order; False if ``cancel`` is set (or ``timeout`` passes) first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._queue.append(job_id)
            try:
                while True:
                    if self._next() == job_id and len(self._running) < self._capacity:
                        self._queue.popleft()
                        self._running.add(job_id)
                        self._cond.notify_all()
                        return True
                    if cancel.is_set() or (deadline is not None and time.monotonic() >= deadline):
                        return False
                    self._cond.wait(0.1)
            finally:
                if job_id in self._queue:
                    self._queue.remove(job_id)
                    self._cond.notify_all()

    def _next(self) -> str | None:
        """The waiting job to start next (the first in line, unless an admission policy picks another)."""
        if self.admission is None:
            return self._queue[0] if self._queue else None
        return self.admission.pick(self._queue, self._running)

    def why_waiting(self, job_id: str) -> str | None:
        """Why a waiting job cannot start yet, in words (None: it waits for a free slot, or does not wait)."""
        with self._cond:
            if self.admission is None or job_id in self._running:
                return None
            return self.admission.why_not(job_id, self._running)

    def release(self, job_id: str) -> None:
        with self._cond:
            self._running.discard(job_id)
            self._cond.notify_all()

    def position(self, job_id: str) -> int | None:
        """0 while running, k ≥ 1 for the k-th place in the queue, None otherwise."""
        with self._cond:
            if job_id in self._running:
                return 0
            try:
                return self._queue.index(job_id) + 1
            except ValueError:
                return None

    @property
    def running(self) -> int:
        with self._cond:
            return len(self._running)

    def attach(self, trainer: Trainer) -> None:
        """Called in a job's thread once it holds a slot, before it trains: share the cores between the slots.

        A :class:`~cnfviz.runtime.scheduler.Scheduler` also sets the trainer up to train in a stack here."""
        configure_threads(self.capacity)

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._queue)


@dataclass(frozen=True)
class Snapshot:
    """A consistent, immutable view of a job at one moment.

    ``state`` is one of ``queued``, ``running``, ``paused``, ``done``, ``stopped``, ``failed``, or
    ``suspended`` (its page lost its connection: see :meth:`TrainingJob.suspend`).
    ``history`` maps ``iteration``, ``loss``, ``nll``, ``nfe`` (cumulative training forward NFE),
    ``nfe_iter`` (forward NFE of each iteration), ``elapsed`` (each (n,)) and ``test_iteration``,
    ``test_nll`` (each (k,)) to arrays. ``visuals_version`` changes only when ``visuals`` does, so a
    UI can redraw heavy figures only then.

    ``paused`` (the run waits for Resume or Step), ``stopping`` (Stop was pressed and the run has not ended
    yet) and ``can_continue`` (it ended done or stopped and Continue may train it on) are what the buttons
    need, so a page never reaches into the job's trainer, wherever the run trains.
    """

    job_id: str
    state: str
    reason: str
    queue_position: int | None
    iteration: int
    total: int
    stage: str
    elapsed: float
    its_per_sec: float
    eta_seconds: float | None
    loss: float | None
    nfe_forward: int
    nfe_backward: int
    history: dict[str, np.ndarray]
    visuals: Visuals | None
    visuals_version: int
    metrics: Metrics | None
    notes: tuple[str, ...]
    config: TrainConfig
    loaded: bool = False  # an evaluate-only job: a checkpoint's model, not trained here
    paused: bool = False
    stopping: bool = False
    can_continue: bool = False
    finishing: bool = False  # ended (done, stopped, failed), its final pictures and metrics still to come: keep polling

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running", "paused")

    @property
    def progress(self) -> float:
        if self.loaded:
            return 0.0 if self.active else 1.0
        return min(1.0, self.iteration / self.total) if self.total else 0.0


_COUNTS = frozenset({"iteration", "nfe", "nfe_iter", "test_iteration"})  # the history's integer keys


@dataclass
class _Log:
    iteration: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    nll: list[float] = field(default_factory=list)
    nfe: list[int] = field(default_factory=list)
    nfe_iter: list[int] = field(default_factory=list)
    elapsed: list[float] = field(default_factory=list)
    test_iteration: list[int] = field(default_factory=list)
    test_nll: list[float] = field(default_factory=list)


class TrainingJob:
    """One training run in a daemon thread.

    Arguments:
        config: the run.
        target: custom target data (samples, image); named targets are built from the config.
        slots: the shared concurrency cap; the job queues until a slot is free.
        visual_every: refresh plot data at most every this many iterations...
        visual_min_seconds: ...and at most this often; the refresh also backs off so that it takes
            no more than ``visual_budget`` of the training time.
        on_finish: called from the worker thread with the :class:`TrainResult` at the end.
        init_state: start from these weights (e.g. a checkpoint's) instead of a fresh initialisation.
        evaluate_only: do not train: compute the plots and metrics of the ``init_state`` model, and end
            ``done`` (how a loaded checkpoint is shown). :meth:`continue_training` then trains it on.
        resume: a checkpoint's training state (:meth:`training_state`: the trainer's optimizer, counters and
            random streams, and the loss history) for the ``init_state`` model, so that Continue trains on
            exactly as the saved run would have; without it a loaded model continues with a fresh optimizer.
        owner: who started it (one browser), for a server's share per student (``slots.admission``).

    :meth:`stop` and :meth:`discard`-style stops take effect within one evaluation of the dynamics,
    even inside a long adaptive solve. Any exception in the worker ends the job ``failed`` with the
    exception's message as its reason; it never escapes the thread.

    The plot data is also refreshed when the run pauses, after a single step, and at the end.

    Example:
        >>> from cnfviz import default_config
        >>> job = TrainingJob(default_config("normal", adam_iters=5, eval_every=0, n_test=100))
        >>> job.start().join(60).snapshot().state
        'done'
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        target: Target | None = None,
        slots: JobSlots | None = None,
        visual_every: int = 50,
        visual_min_seconds: float = 1.0,
        visual_budget: float = 0.1,
        compute_final_metrics: bool = True,
        on_finish: Callable[[TrainResult], None] | None = None,
        init_state: Mapping[str, Any] | None = None,
        evaluate_only: bool = False,
        owner: str | None = None,
        resume: Mapping[str, Any] | None = None,
    ) -> None:
        # Before anything is allocated: a run that cannot fit this server is refused by name (issue 16).
        # A loaded checkpoint is only evaluated: its training batch does not count, its data does.
        admission = getattr(slots, "admission", None)
        # A shared server's run ends by itself: its trainer gets a time budget; the job keeps the page's config.
        budgeted = config if admission is None else admission.budgeted(config)
        checked = config.replace(batch_size=1) if evaluate_only else config
        estimate = check_run(checked, run_dim(config, target) or 2, RunBudget.for_server())
        self.job_id = f"job-{next(_ids)}"
        # A loaded model is offered Continue only if its training, not just its evaluation, fits this server.
        self._trainable = not evaluate_only or _fits(config, target)
        if admission is not None:
            admission.register(self.job_id, owner, estimate.peak_bytes)
        self.config = config
        self._first_config = budgeted
        self.slots = slots
        self.evaluate_only = evaluate_only
        self.trainer = Trainer(
            budgeted,
            target=target,
            callback=self._on_iteration,
            on_pause=self._on_pause,
            keep_history=False,
            init_state=init_state,
        )
        self.target = self.trainer.target
        self._resumed = resume is not None
        self.visual_every = visual_every
        self.visual_min_seconds = visual_min_seconds
        self.visual_budget = visual_budget
        self.compute_final_metrics = compute_final_metrics
        self.on_finish = on_finish
        self._lock = threading.Lock()
        self._log = _Log()
        self._state = "queued" if slots is not None else "running"
        self._reason = ""
        self._visuals: Visuals | None = None
        self._visuals_version = 0
        self._next_visual_time = 0.0
        self._last_visual_iter = -(10**9)
        self._accurate_iter: int | None = None  # the iteration of the last picture drawn with the accurate solver
        self._metrics: Metrics | None = None
        self._result: TrainResult | None = None
        self._last: IterationRecord | None = None
        self._cancel = threading.Event()
        self._abort = threading.Event()  # also skip the final plots and metrics: nobody will look
        self._suspending = False
        self._thread = threading.Thread(target=self._run, name=self.job_id, daemon=True)
        self._started = False
        if resume is not None:
            self._resume_from(resume)

    def _resume_from(self, resume: Mapping[str, Any]) -> None:
        """Take up a saved run: its trainer's state, and its history, so the loss chart goes on from it."""
        self.trainer.load_training_state(resume["trainer"])
        self.config = self.config.replace(adam_iters=self.trainer.config.adam_iters)  # the saved run's total
        self._first_config = self._first_config.replace(adam_iters=int(resume.get("round_iters", 0)) or 1)
        history = {k: np.asarray(v).tolist() for k, v in resume.get("history", {}).items()}
        for name in _Log.__dataclass_fields__:
            getattr(self._log, name).extend(history.get(name, []))
        log = self._log
        if log.iteration:
            self._last = IterationRecord(
                iteration=int(log.iteration[-1]),
                stage="adam" if not self.trainer.adam_finished or not self.config.lbfgs_iters else "lbfgs",
                loss=float(log.loss[-1]),
                nll=float(log.nll[-1]),
                kinetic=None,
                jacobian=None,
                nfe_forward=int(log.nfe[-1]),
                nfe_backward=int(resume["trainer"]["nfe"][1]),
                nfe_iter=int(log.nfe_iter[-1]),
                elapsed=float(log.elapsed[-1]),
                lr=self.config.lr,
                grad_norm=math.nan,
            )

    def training_state(self) -> dict[str, Any] | None:
        """What :class:`TrainingJob` (``resume=``) needs to train this run on after a save and a load: the
        trainer's :meth:`~cnfviz.Trainer.training_state`, the Adam iterations of one Continue round and the
        history (arrays of shape (n,) per key). None while the run trains (its state moves under the read)."""
        with self._lock:
            if self._state not in ("done", "stopped") or (self.evaluate_only and not self._resumed):
                return None
            history = {
                k: torch.as_tensor(np.asarray(getattr(self._log, k), dtype=np.int64 if k in _COUNTS else np.float64))
                for k in _Log.__dataclass_fields__
            }
        return {
            "trainer": self.trainer.training_state(),
            "round_iters": self._first_config.adam_iters,
            "history": history,
        }

    # ------------------------------------------------------------------ controls
    def start(self) -> TrainingJob:
        if not self._started:
            self._started = True
            _live.add(self)
            self._thread.start()
        return self

    def stop(self, *, evaluate: bool = True) -> None:
        """Stop after the current iteration; ``evaluate=False`` also skips the final metrics
        (for a run nobody will look at, e.g. when its tab closed)."""
        if not evaluate:
            self.compute_final_metrics = False
            self._abort.set()
        self._cancel.set()
        self.trainer.stop()

    def close(self) -> None:
        """Let go of the run: stop it without its final metrics (nobody will look at it again)."""
        self.stop(evaluate=False)

    def suspend(self) -> None:
        """End the worker thread soon (within one evaluation of the dynamics) but keep everything needed to
        :meth:`proceed`: the model, the optimizer's state, the history and the plots. For a session whose
        connection dropped: it frees its training slot and CPU at once, and loses nothing if it returns."""
        with self._lock:
            if self._state not in ("queued", "running", "paused") or self.trainer.stopping:
                return  # already ending (the user pressed Stop): let it end as asked
            self._suspending = True
        self._cancel.set()
        self.trainer.stop()

    def proceed(self) -> bool:
        """Continue a suspended job in a new worker thread (queueing for a slot again); False if it was not
        suspended. A job paused when it was suspended continues paused."""
        if self._thread.is_alive():
            self._thread.join(5)  # a suspension is at most one evaluation of the dynamics away from done
        with self._lock:
            if self._state != "suspended" or self._thread.is_alive():
                return False
            self._suspending = False
            self._state, self._reason = ("queued" if self.slots is not None else "running"), ""
        self._cancel.clear()
        self.trainer.rearm()
        self._thread = threading.Thread(target=self._run, name=self.job_id, daemon=True)
        self._thread.start()
        return True

    def update_config(self, config: TrainConfig) -> None:
        """Apply a new learning rate or λ weights from the next iteration on (see
        :meth:`~cnfviz.Trainer.update_config`; raises ``ValueError`` for any other change)."""
        trained = config
        if config.max_seconds is None and self.config.max_seconds is None:  # a shared server's budget stays
            trained = config.replace(max_seconds=self.trainer.config.max_seconds)
        self.trainer.update_config(trained)
        with self._lock:
            self.config = config

    @property
    def can_continue(self) -> bool:
        """The run ended done or stopped (not failed), so :meth:`continue_training` can train it on; a loaded
        checkpoint's model too, once its plots and metrics are shown."""
        with self._lock:
            state = self._state
        return state in ("done", "stopped") and self._trainable

    def continue_training(self) -> bool:
        """Train a run that ended done or stopped on from where it is, in a new worker thread: the model, the
        optimizer's state, the history and the iteration count carry on. A run that used up its Adam
        iterations gets as many again, one that used up its time budget gets that budget again. False if
        the run cannot continue (see :attr:`can_continue`)."""
        if not self.can_continue:
            return False
        if self._thread.is_alive():  # still on its final pictures and metrics, which a run that trains on drops
            self._abort.set()
            self._thread.join()
        trainer = self.trainer
        round_iters = self._first_config.adam_iters
        budget = self._first_config.max_seconds
        if trainer.out_of_time and budget is not None:
            trainer.extend(max_seconds=trainer.config.max_seconds + budget)
        if trainer.adam_finished:
            trainer.extend(adam_iters=trainer.config.adam_iters + max(round_iters, 1))
        if self.evaluate_only:  # a loaded checkpoint trains from now on
            if not self._resumed:
                trainer.notes.append(FRESH_OPTIMIZER_NOTE)
            self.evaluate_only = False
        with self._lock:
            self.config = trainer.config
            self._state, self._reason = ("queued" if self.slots is not None else "running"), ""
            self._metrics = None
            self._result = None
        self.compute_final_metrics = True
        self._cancel.clear()
        self._abort.clear()
        trainer.rearm()
        self._thread = threading.Thread(target=self._run, name=self.job_id, daemon=True)
        self._thread.start()
        return True

    def pause(self) -> None:
        self.trainer.pause()
        with self._lock:
            if self._state == "running":
                self._state = "paused"

    def resume(self) -> None:
        with self._lock:
            if self._state == "paused":
                self._state = "running"
        self.trainer.resume()

    def step(self) -> None:
        """One iteration while paused (pauses first if running)."""
        if not self.trainer.paused:
            self.pause()
        self.trainer.step()

    def join(self, timeout: float | None = None) -> TrainingJob:
        if self._started:
            self._thread.join(timeout)
        return self

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def model(self) -> FFJORD:
        """The model; after a failure it holds the last good parameters."""
        return self.trainer.model

    @property
    def result(self) -> TrainResult | None:
        return self._result

    # ------------------------------------------------------------------ worker side
    def _visual_data(self) -> np.ndarray:
        tr = self.trainer
        return tr.train_data if tr.train_data is not None else tr.test_data

    def _refresh_visuals(self, iteration: int, *, live: bool = False) -> None:
        # While training, a fixed-step training solver (kept honest by the trainer's guard) is
        # good enough for pictures and much cheaper; paused and final pictures use the accurate one.
        solver = self.trainer.train_solver if live and self.trainer.train_solver.is_fixed_grid else None
        started = time.perf_counter()
        try:
            vis = compute_visuals(
                self.trainer.model, self.target, self._visual_data(), iteration, seed=self.config.seed, solver=solver
            )
        except (SolverError, SolverInterrupted, FloatingPointError, ValueError):
            return  # keep the last good pictures; the training loop reports real failures
        with self._lock:
            self._visuals = vis
            self._visuals_version += 1
        self._last_visual_iter = iteration
        self._accurate_iter = iteration if solver is None else None
        # Back off so plotting costs at most `visual_budget` of the time (issue 22: a picture every 1-2 s);
        # flow matching's iterations are cheap, so its pictures may take twice the share, twice as often.
        fm = self.config.objective != "likelihood"
        gap = max(self.visual_min_seconds / (2 if fm else 1), vis.seconds / (self.visual_budget * (2 if fm else 1)))
        # ...yet every 1.5 s if 0.375 s or less, counted from this picture's start: on the page a picture is then
        # never older than 2 s (the stream's 0.4 s tick and the iteration in progress come on top).
        gap = min(gap, max(1.5, 4 * vis.seconds, self.visual_min_seconds))
        self._next_visual_time = started + gap

    def _on_iteration(self, rec: IterationRecord) -> None:
        with self._lock:
            log = self._log
            log.iteration.append(rec.iteration)
            log.loss.append(rec.loss)
            log.nll.append(rec.nll)
            log.nfe.append(rec.nfe_forward)
            log.nfe_iter.append(rec.nfe_iter)
            log.elapsed.append(rec.elapsed)
            if rec.test_nll is not None:
                log.test_iteration.append(rec.iteration)
                log.test_nll.append(rec.test_nll)
            self._last = rec
        now = time.perf_counter()
        due = rec.iteration - self._last_visual_iter >= self.visual_every or now >= self._next_visual_time
        group = self.trainer.stack_group
        if group is not None:
            # In a stack, the members share one budget for their live plots (cnfviz.runtime.stack.VISUAL_SHARE):
            # thirty refreshes at once would starve the stack's training.
            if (due or self._visuals is None) and group.visual_turn(self.trainer, self._visuals is None):
                start = time.perf_counter()
                try:
                    with group.away(self.trainer):
                        self._refresh_visuals(rec.iteration, live=True)
                finally:
                    group.visual_done(self.trainer, time.perf_counter() - start)
            return
        if (due or self._visuals is None) and time.perf_counter() >= self._next_visual_time:
            self._refresh_visuals(rec.iteration, live=True)

    def _on_pause(self) -> None:
        it = self._last.iteration if self._last else 0
        if it != self._accurate_iter:
            self._refresh_visuals(it)

    def _run(self) -> None:
        name_native_thread(THREAD_NAME)
        acquired = False
        try:
            if self.slots is not None:
                acquired = self.slots.acquire(self.job_id, self._cancel)
                if not acquired:
                    with self._lock:
                        if self._suspending:
                            self._state, self._reason = "suspended", SUSPENDED_REASON
                        else:
                            self._state, self._reason = "stopped", "cancelled while waiting for a free slot"
                    return
                self.slots.attach(self.trainer)
            with self._lock:
                self._state = "paused" if self.trainer.paused else "running"
            if self.evaluate_only:
                done = self._last.iteration if self._last else 0
                result = TrainResult("done", "loaded from a checkpoint; not trained here", done, 0.0, 0.0)
            else:
                result = self.trainer.run(final_metrics=False)
                with self._lock:
                    if self._suspending and result.status == "stopped":
                        self._state, self._reason = "suspended", SUSPENDED_REASON
                        return
            # The final plots and metrics can take seconds of solving: a stop that abandons the run
            # (Reset, a closed tab) ends them too, at the next evaluation of the dynamics.
            self.trainer.model.interrupt = self._abort.is_set
            with self._lock:  # ended: say so at once; the final pictures next, then the metrics (cheapest first)
                self._state, self._reason = result.status, result.reason
            it = result.iterations
            # A run that failed before any iteration gave a finite loss has no model worth a picture or a
            # figure (and its solves may fail again, slowly): it ends here, failed, with the reason.
            shown = result.status != "failed" or self.evaluate_only or self.trainer.has_good_model
            metrics = None
            if shown and _ending_turn(self._abort):
                try:
                    if it != self._accurate_iter:  # (a live picture of this iteration is a coarse one)
                        self._refresh_visuals(it)
                    if self.compute_final_metrics:
                        try:
                            metrics = self.trainer.evaluate()
                        except SolverInterrupted:
                            metrics = None
                finally:
                    _ENDINGS.release()
            result.metrics = metrics
            with self._lock:
                self._result = result
                self._metrics = metrics
            if self.on_finish is not None:
                self.on_finish(result)
        except Exception as err:
            with self._lock:
                self._state, self._reason = "failed", f"{type(err).__name__}: {err}"
        finally:
            self.trainer.model.interrupt = None
            if acquired and self.slots is not None:
                self.slots.release(self.job_id)

    # ------------------------------------------------------------------ observer side
    def snapshot(self) -> Snapshot:
        with self._lock:
            log = self._log
            history = {
                "iteration": np.asarray(log.iteration, dtype=np.int64),
                "loss": np.asarray(log.loss, dtype=np.float64),
                "nll": np.asarray(log.nll, dtype=np.float64),
                "nfe": np.asarray(log.nfe, dtype=np.int64),
                "nfe_iter": np.asarray(log.nfe_iter, dtype=np.int64),
                "elapsed": np.asarray(log.elapsed, dtype=np.float64),
                "test_iteration": np.asarray(log.test_iteration, dtype=np.int64),
                "test_nll": np.asarray(log.test_nll, dtype=np.float64),
            }
            last = self._last
            state, reason = self._state, self._reason
            visuals, version, metrics = self._visuals, self._visuals_version, self._metrics
        paused, stopping = self.trainer.paused, self.trainer.stopping
        if state == "queued" and not reason and self.slots is not None:
            reason = self.slots.why_waiting(self.job_id) or ""  # a share or the server's memory, in words
        if state == "running" and paused:
            state = "paused"
        total = self.config.adam_iters + self.config.lbfgs_iters
        iteration = last.iteration if last else 0
        elapsed = last.elapsed if last else 0.0
        rate = _recent_rate(history["iteration"], history["elapsed"])
        eta = None
        if rate > 0 and state in ("running", "paused"):
            eta = max(0.0, (total - iteration) / rate)
            if self.config.max_seconds is not None:
                eta = min(eta, max(0.0, self.config.max_seconds - elapsed))
        return Snapshot(
            job_id=self.job_id,
            state=state,
            reason=reason,
            queue_position=self.slots.position(self.job_id) if self.slots is not None else None,
            iteration=iteration,
            total=total,
            stage=last.stage if last else "adam",
            elapsed=elapsed,
            its_per_sec=rate,
            eta_seconds=eta,
            loss=last.loss if last else None,
            nfe_forward=last.nfe_forward if last else 0,
            nfe_backward=last.nfe_backward if last else 0,
            history=history,
            visuals=visuals,
            visuals_version=version,
            metrics=metrics,
            notes=tuple(self.trainer.notes),
            config=self.config,
            loaded=self.evaluate_only,
            paused=paused and state in ("queued", "running", "paused"),
            stopping=stopping and state in ("queued", "running", "paused"),
            can_continue=self.can_continue,
            finishing=state in ("done", "stopped", "failed") and self._thread.is_alive(),
        )

    def change_key(self) -> tuple[Any, ...]:
        """A cheap tuple that changes whenever :meth:`snapshot` would tell something new (a new history row,
        new plots, a new state or control flag, the end): a host pushes a snapshot only when it moved."""
        return (
            len(self._log.iteration),
            len(self._log.test_iteration),
            self._visuals_version,
            self._state,
            self._result is not None,
            self._metrics is not None,
            self.trainer.paused,
            self.trainer.stopping,
            self._thread.is_alive(),
            len(self.trainer.notes),
        )


def _fits(config: TrainConfig, target: Target | None) -> bool:
    """Whether a run of ``config`` passes this server's budget check (:func:`~cnfviz.runtime.budget.check_run`)."""
    try:
        check_run(config, run_dim(config, target) or 2, RunBudget.for_server())
    except ConfigError:
        return False
    return True


def _recent_rate(iterations: np.ndarray, elapsed: np.ndarray, window: int = 50) -> float:
    """Iterations per second over the last ``window`` iterations (training time, pauses excluded)."""
    if len(iterations) < 2:
        return 0.0
    k = min(window, len(iterations) - 1)
    dt = elapsed[-1] - elapsed[-1 - k]
    return float((iterations[-1] - iterations[-1 - k]) / dt) if dt > 0 else 0.0
