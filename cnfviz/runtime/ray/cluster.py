"""Runs on a Ray cluster: one actor per run hosting a :class:`~cnfviz.TrainingJob`, and its client handle.

Ray is imported inside the functions here, never at import time, so that the package (and its doctests)
work without the ``ray`` extra. Runs of one shape share an actor and train as one stack instead
(:mod:`cnfviz.runtime.ray.cluster_stacks`, built on :class:`~cnfviz.runtime.hosted.HostedRun` and :class:`RayJob`).

The actor (:class:`RunHost`) runs the very same :class:`~cnfviz.TrainingJob` as the local backend, in a
thread of its own process, so its results match a local run's. Its methods are all quick (none waits for
training), and it is a threaded actor, so Stop, Pause and a snapshot poll are answered while it trains.
The handle (:class:`RayJob`) polls it: each poll carries only the history since the previous one, the
plots only when their version changed, and the weights only when the plots or the state changed; the
handle puts a full :class:`~cnfviz.Snapshot` back together, so the app's views work unchanged.
When the run has ended and everything is on the client, the handle lets the actor go, which frees its
CPU on the cluster.
"""

from __future__ import annotations

import itertools
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import torch

from ..._validation import ConfigError
from ...flow.ffjord import FFJORD
from ...targets import Target
from ...training.config import TrainConfig
from ...training.trainer import TrainResult, build_target, live_update
from ..core import WORKER_DIED_REASON, ClusterUnreachable
from ..hosted import HostedRun, empty_history, merge_history
from ..housekeeping import warm_up
from ..job import Snapshot

__all__ = [
    "CONNECT_TIMEOUT",
    "DIED_REASON",
    "SINGLE_NODE_ENV",
    "RayJob",
    "RunHost",
    "connect",
    "connected_address",
    "start_loopback_head",
    "worker_setup",
]

CONNECT_TIMEOUT = 3.0
"""Seconds to wait for the head's port to answer before giving up on an address (Ray itself retries for
minutes)."""
DIED_REASON = WORKER_DIED_REASON

SINGLE_NODE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
"""Set to ``0``, Ray runs as one machine on 127.0.0.1 only. Its ``--node-ip-address=127.0.0.1`` (and
``ray.init(_node_ip_address=...)``) is not enough: Ray 2.60 turns a loopback address into the machine's
primary IP, so a local head would bind and talk on a private-range address."""

_ACTIVE = ("queued", "running", "paused")
_ids = itertools.count(1)
_connect_lock = threading.Lock()
_address: list[str] = []  # the one cluster this process talks to, once connected


def _bad_address(address: str, why: str) -> ClusterUnreachable:
    """A malformed address: said as such, not as "nothing answers there" (still a ClusterUnreachable)."""
    err = ClusterUnreachable(address, why)
    err.args = (f"ray_address {address!r} is not a Ray address: {why}",)
    return err


# HTTP/2's client preface and an empty SETTINGS frame: a Ray head's GCS (a gRPC server) answers with a SETTINGS
# frame at once; anything else (a web server, a database, a silent listener) does not.
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def _check_port(address: str) -> None:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise _bad_address(address, "expected host:port, e.g. 10.0.0.5:6379")
    if not 1 <= int(port) <= 65535:
        raise _bad_address(address, f"port {port} is outside 1-65535 (expected host:port, e.g. 10.0.0.5:6379)")
    try:
        host.encode("idna")
    except UnicodeError:
        raise _bad_address(address, f"{host!r} is not a host name (expected host:port, e.g. 10.0.0.5:6379)") from None
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT) as sock:
            # Before Ray: its own connect retries for minutes against a port that accepts but is no Ray head.
            sock.settimeout(CONNECT_TIMEOUT)
            sock.sendall(_H2_PREFACE)
            reply = sock.recv(9)
    except TimeoutError:
        raise ClusterUnreachable(
            address,
            f"something accepts connections there but does not answer as a Ray head within {CONNECT_TIMEOUT:g} s",
        ) from None
    except OSError as err:
        why = err.strerror or type(err).__name__
        raise ClusterUnreachable(address, f"nothing answers there ({why}); is `ray start --head` running?") from None
    if len(reply) < 4 or reply[3] != 0x04:  # the frame type of SETTINGS
        raise ClusterUnreachable(address, "something answers there, but it is not a Ray head (it does not speak gRPC)")


def connect(address: str | None = None) -> str:
    """Connect this process to the Ray cluster at ``address`` (``host:port``), once; returns its GCS address.

    A second call, from any thread or Streamlit rerun, returns the same connection. ``None`` or ``"auto"``
    joins the cluster this machine belongs to (``$RAY_ADDRESS``, or the latest ``ray start`` here), or else
    starts a local one in this process, on 127.0.0.1 only, as :func:`start_loopback_head` does (Ray's own
    local head would listen on every interface). Raises :class:`ClusterUnreachable`
    naming the address when nothing answers there, and :class:`ConfigError` when this process is already
    connected to another cluster.
    """
    explicit = address not in (None, "auto")
    if explicit:
        _check_port(address)  # before Ray: its own connect retries for minutes
    try:
        import ray
    except ImportError:
        raise ClusterUnreachable(str(address), "Ray is not installed here: pip install 'cnfviz[ray]'") from None
    with _connect_lock:
        if ray.is_initialized():
            current = ray.get_runtime_context().gcs_address
            if explicit and address != current and not _same_address(address, current):
                raise ConfigError(
                    f"ray_address: this process is already connected to the Ray cluster at {current}; "
                    f"it cannot also use {address}"
                )
            return current
        try:
            existing = None if explicit else _existing_cluster()
            if existing is not None and "://" not in existing:
                _check_port(existing)  # e.g. a head that `ray start` wrote down and that has gone since
            if explicit or existing is not None:
                ray.init(
                    address=address,
                    log_to_driver=False,
                    include_dashboard=False,
                    configure_logging=False,
                )
            else:
                _init_loopback(ray, None)
        except ClusterUnreachable:
            raise
        except Exception as err:  # Ray raises ConnectionError, RuntimeError, ValueError... for a bad head
            raise ClusterUnreachable(str(address), f"{type(err).__name__}: {err}") from None
        current = ray.get_runtime_context().gcs_address
        _address[:] = [current]
        return current


def start_loopback_head(num_cpus: int) -> str:
    """Start a single-machine Ray head in this process, bound to and talking on 127.0.0.1 only, with
    ``num_cpus`` CPUs and no dashboard; returns its GCS address (``127.0.0.1:port``).

    Sets :data:`SINGLE_NODE_ENV` in this process's environment, so the head's workers and any ``cnfviz``
    process started from here (which then connects to it) stay on loopback too. For tests and benchmarks.
    """
    import ray

    return _init_loopback(ray, num_cpus)


def _init_loopback(ray: Any, num_cpus: int | None) -> str:
    """Start a head in this process on 127.0.0.1 only (``num_cpus`` None: all of this machine's)."""
    os.environ[SINGLE_NODE_ENV] = "0"
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False  # read at import: Ray may have been imported before the variable
    ray.init(
        num_cpus=num_cpus,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        _node_ip_address="127.0.0.1",
    )
    address = ray.get_runtime_context().gcs_address
    if not address.startswith("127."):
        ray.shutdown()
        raise RuntimeError(f"the local Ray head came up at {address}, not on loopback")
    return address


def _existing_cluster() -> str | None:
    """The cluster ``ray.init()`` would join rather than start one: ``$RAY_ADDRESS``, or the head the latest
    ``ray start`` on this machine wrote down (Ray's own lookup for an address of None); else None."""
    env = os.environ.get("RAY_ADDRESS", "").strip()
    if env and env not in ("auto", "local"):
        return env
    try:
        from ray._private.services import find_bootstrap_address

        return find_bootstrap_address(None)
    except Exception:  # a Ray without that helper: start our own head rather than one on every interface
        return None


def connected_address() -> str | None:
    """The cluster this process connected to through :func:`connect`, or None."""
    return _address[0] if _address else None


def _same_address(a: str, b: str) -> bool:
    def norm(x: str) -> tuple[str, str]:
        host, _, port = x.rpartition(":")
        try:
            host = socket.gethostbyname(host)
        except OSError:
            pass
        return host, port

    # Ray reports the head by its node IP, so "localhost:6379" and "10.0.0.5:6379" may be the same head.
    a_host, a_port = norm(a)
    b_host, b_port = norm(b)
    return a_port == b_port and (a_host == b_host or a_host.startswith("127."))


def worker_setup(threads: int) -> dict[str, Any]:
    """Prepare an actor's process for training with ``threads`` torch threads; returns where it is
    (``worker_pid``, ``node_id``, ``node``, ``actor_id``)."""
    import ray

    torch.set_num_threads(max(1, threads))
    warm_up()  # torch's one-time imports, paid while the actor is built rather than in a run's first iteration
    context = ray.get_runtime_context()
    return {
        "worker_pid": os.getpid(),
        "node_id": context.get_node_id(),
        "node": socket.gethostname(),
        "actor_id": context.get_actor_id(),
    }


class RunHost:
    """The body of a run's Ray actor: one :class:`HostedRun` at a time (a warm worker may :meth:`load` the
    next run once its run has ended)."""

    def __init__(self, config: TrainConfig, target: Target | None, job_kwargs: Mapping[str, Any], threads: int) -> None:
        self._where = worker_setup(threads)
        self.run = HostedRun(config, target, job_kwargs, self._where)

    def where(self) -> dict[str, Any]:
        return {**self.run.where, "error": self.run.error}

    def load(self, config: TrainConfig, target: Target | None, job_kwargs: Mapping[str, Any]) -> str | None:
        """Host a new run in this (warm) process, whose previous run has ended; its error, if it cannot be
        built, else None."""
        if self.run.job is not None and self.run.job.alive:
            return "RuntimeError: this worker is still training another run"
        self.run = HostedRun(config, target, job_kwargs, self._where)
        if self.run.error is not None:
            return f"{type(self.run.error).__name__}: {self.run.error}"
        return None

    def start(self) -> None:
        self.run.start()

    def stop(self, evaluate: bool = True) -> None:
        self.run.stop(evaluate)

    def pause(self) -> None:
        self.run.pause()

    def resume(self) -> None:
        self.run.resume()

    def step(self) -> None:
        self.run.step()

    def suspend(self) -> None:
        self.run.suspend()

    def proceed(self) -> bool:
        return self.run.proceed()

    def update_config(self, config: TrainConfig) -> None:
        self.run.update_config(config)

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the run's thread; True while it is still alive."""
        return self.run.join(timeout)

    def weights(self) -> dict[str, torch.Tensor]:
        return self.run.weights()

    def poll(self, have: Mapping[str, Any]) -> dict[str, Any]:
        """The run's snapshot with only what the client lacks (see :meth:`HostedRun.poll`)."""
        return self.run.poll(have)


_actor_class: list[Any] = []


def _remote_class() -> Any:
    import ray

    with _connect_lock:
        if not _actor_class:
            # Threads, so that a join() waiting for the run never holds up a stop() or a poll.
            _actor_class.append(ray.remote(max_concurrency=4)(RunHost))
        return _actor_class[0]


class RayJob:
    """A run in a Ray actor, driven and observed like a :class:`~cnfviz.TrainingJob`.

    Arguments:
        config: the run.
        target: custom target data, shipped to the actor (named targets are built there from the config).
        job_kwargs: keyword arguments of :class:`~cnfviz.TrainingJob` (``init_state``, ``evaluate_only``...).
        num_cpus: CPUs the actor holds while the run lives; it also trains with that many torch threads.
        start_timeout: how long the constructor waits for the actor to be built, so that a bad config raises
            here as the local backend's does (a worker takes seconds to import torch). Past it, or with 0, the
            run shows ``queued`` until its actor answers, and a config its worker cannot build ends it
            ``failed`` with the error as its reason.
        poll_timeout: the longest :meth:`snapshot` waits for a fresh poll before it returns the latest one.
        recycle: called with this run's actor when the run has ended normally; True if it took the actor
            (to host another run, see :meth:`RayBackend._recycle <cnfviz.runtime.ray.backend.RayBackend>`), else the
            actor is killed.
        defer: build the actor only when the run is launched (a run that waits for a shared server's admission
            holds no CPU of the cluster meanwhile; see :meth:`admit_through`).

    A worker that dies (killed, out of memory, its node lost) ends the run ``failed``; its last snapshot,
    plots and weights stay. :meth:`close` kills the actor at once (a run nobody will look at again).
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        target: Target | None = None,
        job_kwargs: Mapping[str, Any] | None = None,
        num_cpus: float = 1.0,
        start_timeout: float = 0.0,
        poll_timeout: float = 0.2,
        recycle: Callable[[Any], bool] | None = None,
        defer: bool = False,
    ) -> None:
        self._setup(config, target, job_kwargs, poll_timeout)
        self._recycle = recycle
        self._num_cpus = num_cpus
        if not defer:
            self._spawn_actor()
            self._await_built(start_timeout)

    def _spawn_actor(self) -> None:
        config, target, kwargs = self._ship
        threads = max(1, int(self._num_cpus))
        self._actor = _remote_class().options(num_cpus=self._num_cpus).remote(config, target, kwargs, threads)
        self._built = self._actor.where.remote()  # ready once the actor exists: see _adopt

    def _setup(
        self, config: TrainConfig, target: Target | None, job_kwargs: Mapping[str, Any] | None, poll_timeout: float
    ) -> None:
        """The client's side of a run, before any actor: its id, an empty history, a ``queued`` snapshot."""
        self._seq = next(_ids)
        self.job_id = f"ray-job-{self._seq}"
        self.config = config
        kwargs = dict(job_kwargs or {})
        self.evaluate_only = bool(kwargs.get("evaluate_only", False))
        self.poll_timeout = poll_timeout
        self._paused = self._stopping = False  # as asked here, until the actor's next poll says
        self._target: Target | None = target
        self._lock = threading.RLock()
        self._history = empty_history()
        self._visuals = None
        self._visuals_version = 0
        self._weights: dict[str, torch.Tensor] | None = None
        self._weights_key: tuple[int, str] | None = None
        self._model: FFJORD | None = None
        self._model_key: object = None
        self._result: TrainResult | None = None
        self._started = False
        self._alive = False
        self._ended = False  # everything is on the client; the actor has been let go
        self._failure: str | None = None
        self._pending: Any = None
        self._recycle: Callable[[Any], bool] | None = None
        self._actor: Any = None
        self._built: Any = None
        # A shared server's admission (see admit_through): the gate, the worker's time budget, whether the run
        # was sent its start, and whether a reconnected run waits to train on.
        self._gate: Any = None
        self._budget: float | None = None
        self._launched = False
        self._resuming = False
        total = config.adam_iters + config.lbfgs_iters
        self._snap = Snapshot(
            job_id=self.job_id, state="queued", reason="waiting for the Ray cluster", queue_position=None,
            iteration=0, total=total, stage="adam", elapsed=0.0, its_per_sec=0.0, eta_seconds=None, loss=None,
            nfe_forward=0, nfe_backward=0, history=dict(self._history), visuals=None, visuals_version=0,
            metrics=None, notes=(), config=config, loaded=self.evaluate_only,
        )  # fmt: skip
        self._where: dict[str, Any] = {}
        if target is None:
            self._target = build_target(config)  # a bad target fails here at once, not seconds later in a worker
        self._ship = (config, target, kwargs)

    def _await_built(self, start_timeout: float) -> None:
        """Wait up to ``start_timeout`` seconds for the run to be built in its actor (``self._built``, which
        answers :meth:`RunHost.where`), and raise its error here if it could not be."""
        import ray

        if start_timeout <= 0:
            return
        try:
            where = dict(ray.get(self._built, timeout=start_timeout))
        except ray.exceptions.GetTimeoutError:
            return  # no free CPU yet: the run waits in Ray's queue
        except ray.exceptions.RayError as err:
            self._die(err)
            return
        error = where.pop("error")
        if error is not None:
            with self._lock:
                self._ended = True
                self._let_go(ray, recycle=False)
            raise error
        self._where = where

    def admit_through(self, gate: Any, owner: str | None, peak_bytes: float, page_config: TrainConfig) -> None:
        """Start only once a shared server's :class:`~cnfviz.runtime.admission.AdmissionGate` admits the run
        (it shows ``queued`` with the reason meanwhile); ``page_config`` is the run as its page set it, when
        the actor trains it with the server's time budget."""
        self._gate = gate
        if page_config.max_seconds != self.config.max_seconds:
            self._budget = self.config.max_seconds
            self.config = page_config
            self._snap = replace(self._snap, config=page_config)
        gate.register(self, owner, peak_bytes)

    def _held_back(self) -> bool:
        """Whether a shared server's admission still holds the run back (or its deferred actor is not built)."""
        return self._gate is not None and (self._actor is None or self._gate.waiting(self.job_id))

    # ------------------------------------------------------------------ controls
    def start(self) -> RayJob:
        with self._lock:
            if self._started or self._failure is not None:
                return self
            self._started = self._alive = True
            if self._gate is None:
                self._launch()
                return self
        self._gate.enter(self.job_id, self._launch)  # launched once the server's admission admits it
        return self

    def _launch(self) -> None:
        # The gate calls this from whichever thread freed the room (maybe one holding another run's lock):
        # nothing here waits or takes this run's lock.
        if self._failure is not None or self._ended:
            return
        if self._actor is None:
            self._spawn_actor()
        self._launched = True
        self._call("start", wait=0.0)  # an actor still being built runs it once it is

    def stop(self, *, evaluate: bool = True) -> None:
        """Ask the run to stop after the current iteration (``evaluate=False``: skip the final metrics)."""
        if self._gate is not None and self._gate.waiting(self.job_id):
            if not self._resuming:
                self.close()  # never admitted: nothing trained to keep
                return
            self._gate.leave_queue(self.job_id)  # a reconnected run still waiting: it stays suspended
            with self._lock:
                self._resuming = self._alive = False
            return
        self._stopping = True
        self._show(stopping=True)
        self._call("stop", evaluate)

    def pause(self) -> None:
        self._paused = True
        self._show(paused=True)
        self._call("pause")

    def resume(self) -> None:
        self._paused = False
        self._show(paused=False)
        self._call("resume")

    def step(self) -> None:
        self._paused = True
        self._show(paused=True)
        self._call("step")

    def suspend(self) -> None:
        # Called on Streamlit's event loop when a tab's connection drops: send, never wait. A run the server's
        # admission holds back holds nothing to free: it keeps its place.
        if not self._held_back():
            self._call("suspend", wait=0.0)

    def proceed(self) -> bool:
        """Continue a suspended run; on a shared server it waits for the server's admission again first
        (``queued``, with the reason), as a new run does."""
        if self._gate is not None:
            if self._held_back():
                return True  # still waiting for its first admission: nothing was suspended
            with self._lock:
                if self._failure is not None or self._ended or not self._started:
                    return False
                self._resuming = self._alive = True
            self._gate.enter(self.job_id, self._relaunch)
            return True
        ok = bool(self._call("proceed", wait=10.0))
        if ok:
            with self._lock:
                self._alive, self._ended = True, False
        return ok

    def update_config(self, config: TrainConfig) -> None:
        """Apply a new learning rate or λ weights from the next iteration on, in the actor (see
        :meth:`~cnfviz.TrainingJob.update_config`)."""
        if not live_update(self.config, config):  # refused here: an error in the actor would read as its death
            raise ValueError("only the learning rate and the λ weights can change during a run")
        # The actor's trainer keeps the time budget the server gave it (a live change may not touch it).
        budgeted = self._budget is not None and config.max_seconds is None
        self._call("update_config", config.replace(max_seconds=self._budget) if budgeted else config)
        with self._lock:
            self.config = config

    @property
    def can_continue(self) -> bool:
        """Always False on Ray: a run that ends hands its worker to the next run waiting for one, and its
        optimizer state stays with it, so Continue is offered for local runs only."""
        return False

    def continue_training(self) -> bool:
        return False

    def close(self) -> None:
        """Kill the actor now, without waiting for the run to end; the handle keeps its last snapshot."""
        import ray

        with self._lock:
            if self._snap.state in _ACTIVE:
                self._snap = replace(self._snap, state="stopped", reason="stopped by the user", eta_seconds=None)
            self._release(ray)

    def join(self, timeout: float | None = None) -> RayJob:
        import ray

        deadline = None if timeout is None else time.monotonic() + timeout
        while self._started and self._alive and self._failure is None and not self._ended:
            left = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
            if left <= 0:
                break
            if self._held_back() or self._resuming:  # not training yet: wait for the server's admission
                time.sleep(min(0.05, left))
                continue
            actor = self._actor
            try:
                alive = ray.get(self._remote(actor, "join", left), timeout=left + 10)
            except ray.exceptions.GetTimeoutError:
                continue
            except ray.exceptions.RayError as err:
                if self._actor is not actor:
                    continue  # the run moved to a warm worker (see _adopt): its pending actor was cancelled
                with self._lock:
                    self._die(err)
                break
            if not alive:
                with self._lock:
                    for _ in range(2):  # a poll sent before the end is answered first
                        self._poll(timeout=10)
                        if not self._alive or self._failure is not None:
                            break
                break
        return self

    @property
    def alive(self) -> bool:
        return self._alive

    @property
    def result(self) -> TrainResult | None:
        return self._result

    @property
    def target(self) -> Target:
        if self._target is None:
            self._target = build_target(self.config)
        return self._target

    @property
    def model(self) -> FFJORD:
        """A local copy of the run's model, with the weights of its latest poll (fetched now if none came yet);
        after a failure, the last weights the client received."""
        with self._lock:
            if self._weights is None and self._where and self._failure is None and not self._ended:
                self._fetch_weights()  # (a run still waiting for its worker has its initial weights)
            key = (id(self._weights), self._weights_key)
            if self._model is None or self._model_key != key:
                model = FFJORD(
                    self.target.dim,
                    self.config.model,
                    self.config.solver,
                    generator=torch.Generator().manual_seed(self.config.seed),
                )
                weights = self._weights if self._weights is not None else self._ship[2].get("init_state")
                if weights is not None:
                    model.load_state_dict(weights)
                self._model, self._model_key = model.eval(), key
            return self._model

    @property
    def device(self) -> str:
        """The device the run trains on, in its worker."""
        return str(self._where.get("device", "cpu"))

    def placement(self) -> dict[str, Any]:
        """Where the run trains: ``worker_pid``, ``node_id`` (Ray's), ``node`` (the host name) and ``actor_id``
        (the Ray actor; the runs of one stack share it)."""
        return {k: self._where[k] for k in ("worker_pid", "node_id", "node", "actor_id") if k in self._where}

    # ------------------------------------------------------------------ observer side
    def snapshot(self) -> Snapshot:
        """The run's latest snapshot (polled from its actor); a run the server's admission holds back is
        ``queued``, with the reason."""
        with self._lock:
            snap = self._snap
            waiting = self._held_back() and (snap.state in _ACTIVE or self._resuming)
            if self._started and self._failure is None and not self._ended and not waiting:
                self._poll(self.poll_timeout)
                return self._snap
        if waiting and self._gate is not None:
            reason = self._gate.why(self.job_id) or "waiting for the server's admission"
            return replace(snap, state="queued", reason=reason, paused=False)
        return snap

    # ------------------------------------------------------------------ internals
    def _relaunch(self) -> None:
        # From the gate's thread (see _launch): ask the actor to train on from a thread of its own.
        threading.Thread(target=self._train_on, name=f"{self.job_id}-proceed", daemon=True).start()

    def _train_on(self) -> None:
        ok = bool(self._call("proceed", wait=30.0))
        with self._lock:
            self._resuming = False
            if ok:
                self._alive, self._ended = True, False
            else:
                self._alive = False
        if not ok and self._gate is not None:
            self._gate.release(self.job_id)

    def _call(self, method: str, *args: Any, wait: float = 5.0) -> Any:
        import ray

        if self._failure is not None or self._ended or self._actor is None:
            return None
        actor = self._actor
        ref = self._remote(actor, method, *args)
        if wait <= 0:
            return None
        try:
            return ray.get(ref, timeout=wait)
        except ray.exceptions.GetTimeoutError:
            return None  # still queued for a CPU: the call runs when the actor does
        except ray.exceptions.RayError as err:
            if self._actor is not actor:
                return None  # moved to a warm worker, which _adopt told of pause, stop and start
            with self._lock:
                self._die(err)
            return None

    def _poll(self, timeout: float) -> None:
        import ray

        if self._actor is None:
            return  # launched this moment: its actor is being built
        if self._pending is None:
            self._pending = self._remote(self._actor, "poll", self._have())
        ready, _ = ray.wait([self._pending], timeout=max(0.0, timeout))
        if not ready:
            return  # latest value wins: the page shows the last poll, this one is collected next time
        ref, self._pending = self._pending, None
        try:
            data = ray.get(ref)
        except ray.exceptions.ActorUnavailableError:
            return  # a transient network fault; the next poll retries
        except ray.exceptions.RayError as err:
            self._die(err)
            return
        self._apply(data, ray)

    def _have(self) -> dict[str, Any]:
        """What this handle already holds, for :meth:`RunHost.poll`."""
        return {
            "lengths": {k: len(v) for k, v in self._history.items()},
            "visuals_version": self._visuals_version,
            "weights_key": self._weights_key,
            "result": self._result is not None,
            "where": bool(self._where),
        }

    def _apply(self, data: dict[str, Any], ray: Any) -> None:
        if "error" in data:  # the run could not be built in its worker (the local backend raises that)
            self._fail(data["error"])
            self._release(ray)
            return
        if data["where"]:
            self._where = dict(data["where"])
        snap: Snapshot = data["snapshot"]
        self._history = merge_history(self._history, snap.history)
        if snap.visuals is not None:
            self._visuals = snap.visuals
        self._visuals_version = snap.visuals_version
        if data["weights"] is not None:
            self._weights, self._weights_key = data["weights"], data["weights_key"]
        if data["result"] is not None:
            self._result = data["result"]
        self._paused, self._stopping = snap.paused, snap.stopping
        self._alive = data["alive"] or self._resuming
        if self._gate is not None and not self._alive and snap.state in ("done", "stopped", "failed", "suspended"):
            self._gate.release(self.job_id)  # it trains no more: its admission goes to the next in line
        self._snap = replace(
            snap,
            job_id=self.job_id,
            history=dict(self._history),
            visuals=self._visuals,
            config=self.config,
            can_continue=False,  # see can_continue
        )
        if not self._alive and snap.state in ("done", "stopped", "failed") and self._result is not None:
            self._release(ray, recycle=True)  # all of it is here now: free the actor's CPU on the cluster

    def _show(self, **flags: bool) -> None:
        """Show a control in the snapshot at once, before the actor's next poll confirms it."""
        with self._lock:
            snap = self._snap
            if snap.state in _ACTIVE:
                state = snap.state
                if "paused" in flags and state in ("running", "paused"):
                    state = "paused" if flags["paused"] else "running"
                self._snap = replace(snap, state=state, **flags)

    def _fetch_weights(self) -> None:
        import ray

        try:
            self._weights = ray.get(self._remote(self._actor, "weights"), timeout=10)
        except ray.exceptions.RayError:
            pass  # keep what we have (a fresh model if nothing came)

    def _remote(self, actor: Any, method: str, *args: Any) -> Any:
        """Call ``method`` of this run on ``actor``; its object ref."""
        return getattr(actor, method).remote(*args)

    def _release(self, ray: Any, *, recycle: bool = False) -> None:
        if not self._ended:
            self._ended, self._alive, self._pending = True, False, None
            self._resuming = False
            if self._actor is not None:
                self._let_go(ray, recycle=recycle)
        if self._gate is not None:
            self._gate.leave(self.job_id)

    def _let_go(self, ray: Any, *, recycle: bool) -> None:
        """The run is over and on the client (or closed): free what it holds on the cluster, its actor."""
        if recycle and self._recycle is not None and self._recycle(self._actor):
            return  # a run waiting for a worker took this warm one
        try:
            ray.kill(self._actor, no_restart=True)
        except Exception:  # already gone
            pass

    def _waiting(self) -> bool:
        """Whether this run still waits for its actor to be built (a guess without the lock; see _adopt)."""
        return self._actor is not None and not self._where and self._failure is None and not self._ended

    def _adopt(self, actor: Any) -> bool:
        """Move this run, still waiting for its own actor to be built, onto ``actor``: a warm worker whose
        run has ended. Its own pending actor is cancelled. False if the run's actor is built already."""
        import ray

        if not self._lock.acquire(timeout=0.5):  # never wait on a run that is busy: try the next one
            return False
        try:
            if not self._waiting() or ray.wait([self._built], timeout=0)[0]:
                return False
            try:
                error = ray.get(actor.load.remote(*self._ship), timeout=30)
            except ray.exceptions.RayError:
                return False
            old, self._actor, self._pending = self._actor, actor, None
            self._built = actor.where.remote()
            try:
                ray.kill(old, no_restart=True)
            except Exception:
                pass
            if error is not None:
                self._fail(error)
                self._release(ray)
                return True
            if self._paused:
                actor.pause.remote()
            if self._stopping:
                actor.stop.remote(True)
            if self._launched:
                actor.start.remote()
            return True
        finally:
            self._lock.release()

    def _die(self, err: BaseException) -> None:
        where = ", ".join(f"{k} {v}" for k, v in self.placement().items()) or "not started"
        self._fail(DIED_REASON.format(where=where, why=_death_cause(err)))

    def _fail(self, reason: str) -> None:
        self._failure = reason
        self._alive, self._pending, self._resuming = False, None, False
        snap = self._snap
        self._snap = replace(snap, state="failed", reason=reason, eta_seconds=None, queue_position=None)
        if self._result is None:
            self._result = TrainResult("failed", reason, snap.iteration, snap.elapsed, 0.0, last=None)
        if self._gate is not None:
            self._gate.leave(self.job_id)


def _death_cause(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    first = next((line for line in text if line.strip()), type(err).__name__)
    return first[:200]
