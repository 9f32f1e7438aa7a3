"""The body of a training worker process: a :class:`~cnfviz.runtime.hosted.RunStack` driven over a pipe.

The server's :class:`~cnfviz.runtime.process.backend.ProcessBackend` starts it (:func:`serve`, in a fresh
interpreter) and talks to it over one socket, as a :class:`multiprocessing.connection.Connection`:

- down, commands: ``(op, run_id, args, request_id)``; ``op`` is a :class:`~cnfviz.runtime.hosted.RunStack`
  method (``add``, ``start``, ``stop``, ``pause``...) or ``exit``. A command runs the moment it arrives,
  between two iterations of any run or inside one, so Stop lands within one evaluation of the dynamics.
  ``request_id`` None: nobody waits for the answer.
- up: ``("ready", where)`` once torch is warm; ``("reply", request_id, value, error)``; and every
  :data:`PUSH_SECONDS` ``("updates", [(run_id, poll), ...])`` with only what moved since the last push (new
  history rows, new plots when their version changed, the weights when the plots or the state changed, the
  result at the end), so the server keeps a mirror of each run and never asks for a snapshot.
"""

from __future__ import annotations

import gc
import os
import pickle
import threading
import time
from dataclasses import replace
from multiprocessing.connection import Connection
from typing import Any

from ..housekeeping import release_memory

__all__ = ["PUSH_SECONDS", "main", "serve"]

PUSH_SECONDS = 0.1
"""How often a worker pushes what moved: a live chart's newest point is at most this much older than the run."""

_SLOW_OPS = frozenset({"proceed", "continue_training", "join"})  # may wait seconds: never in the command loop

TRIM_AFTER_SECONDS = 1.0
"""A dropped run's memory goes back to the operating system this long after the last drop: a class's tabs
close in a burst, and one trim after the burst is as good as thirty (measured: issue 19's class)."""


class _Pusher:
    """Sends each run's news to the server, and remembers what the server already holds of it."""

    def __init__(self, stack: Any, send: Any, interval: float) -> None:
        self.stack = stack
        self.send = send
        self.interval = interval
        self._have: dict[str, dict[str, Any]] = {}
        self._keys: dict[str, Any] = {}
        self._configs: dict[str, Any] = {}
        self.wake = threading.Event()
        self.trim_at: float | None = None  # when to hand dropped runs' memory back (see TRIM_AFTER_SECONDS)
        # Held while a push is built and sent, and while a reply is sent: a push built before a command took
        # effect never arrives after that command's answer (a handle would read Continue's run as ended).
        self.lock = threading.Lock()
        self.closed = False

    def loop(self) -> None:
        while not self.closed:
            self.wake.wait(self.interval)
            self.wake.clear()
            try:
                self.push()
            except (BrokenPipeError, EOFError, OSError):
                return
            if self.trim_at is not None and time.monotonic() >= self.trim_at:
                self.trim_at = None
                release_memory()

    def dropped(self) -> None:
        """A run left this worker: hand its memory back soon. Without it a worker that held a class's stack
        keeps its heap at the class's peak for as long as it lives (issue 19: 368 → 624 MiB after the class)."""
        self.trim_at = time.monotonic() + TRIM_AFTER_SECONDS

    def push(self) -> None:
        with self.lock:
            self._push()

    def _push(self) -> None:
        runs = self.stack.runs()
        for gone in set(self._have) - set(runs):
            self._have.pop(gone, None)
            self._keys.pop(gone, None)
            self._configs.pop(gone, None)
        out = []
        for run_id, run in runs.items():
            key = run.job.change_key() if run.job is not None else ("error",)
            key = (key, run.alive)
            if self._keys.get(run_id) == key:
                continue
            have = self._have.setdefault(run_id, {"lengths": {}})
            data = run.poll(have)
            self._keys[run_id] = key
            if "error" not in data:
                snap = data["snapshot"]
                lengths = have["lengths"]
                for k, part in snap.history.items():
                    lengths[k] = lengths.get(k, 0) + len(part)
                have["visuals_version"] = snap.visuals_version
                have["weights_key"] = data["weights_key"]
                have["result"] = have.get("result") or data["result"] is not None
                have["where"] = True
                # The config rarely changes (a live learning rate, Continue): ship it only then.
                same = self._configs.get(run_id) is snap.config
                self._configs[run_id] = snap.config
                data["snapshot"] = replace(snap, config=None) if same else snap
            out.append((run_id, data))
        if out:
            self.send(("updates", out))


def serve(fd: float, threads: float, capacity: float, push_seconds: float) -> None:
    """The worker process's entry point: serve the connection on file descriptor ``fd`` (a socket the server
    passed down) with :func:`main`."""
    main(Connection(int(fd)), int(threads), int(capacity), push_seconds)


def main(conn: Connection, threads: int, capacity: int, push_seconds: float = PUSH_SECONDS) -> None:
    """Serve one worker process: warm torch up, then run commands and push updates until ``exit`` or until
    the server's end of the pipe closes (the server died: every run stops)."""
    from ..hosted import RunStack
    from ..housekeeping import limit_malloc_arenas, name_native_thread, warm_up

    name_native_thread("cnfviz-worker")
    limit_malloc_arenas()  # before any training thread exists: see SERVER_ARENAS
    import torch

    torch.set_num_threads(max(1, threads))
    warm_up()
    gc.collect()
    gc.freeze()  # torch's modules are never garbage: each collection in this process skips them
    stack = RunStack(threads, capacity, {"worker_pid": os.getpid()})
    send_lock = threading.Lock()

    def send(message: Any) -> None:
        try:
            payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as err:  # an unpicklable error object: send its words
            if message[0] != "reply":
                raise
            payload = pickle.dumps(("reply", message[1], None, RuntimeError(f"{type(err).__name__}: {err}")))
        with send_lock:
            conn.send_bytes(payload)

    pusher = _Pusher(stack, send, push_seconds)
    threading.Thread(target=pusher.loop, name="cnfviz-push", daemon=True).start()
    send(("ready", stack.where()))

    def run(op: str, run_id: str, args: tuple[Any, ...], request: int | None) -> None:
        value, error = None, None
        try:
            if op == "add":
                value = stack.add(run_id, *args)
                if value.get("error") is not None:
                    error, value = value.pop("error"), None
            elif op == "drop":
                stack.drop(run_id)
                pusher.dropped()
            else:  # commands come in order, after their run's add: never wait for one that is gone
                value = getattr(stack.run(run_id, wait=0), op)(*args)
        except Exception as err:
            error = err
        pusher.wake.set()  # show the effect of a control at once, not at the next tick
        if request is not None:
            try:
                with pusher.lock:
                    send(("reply", request, value, error))
            except (BrokenPipeError, OSError):
                pass

    try:
        while True:
            try:
                op, run_id, args, request = pickle.loads(conn.recv_bytes())
            except (EOFError, OSError):
                break
            if op == "exit":
                break
            if op in _SLOW_OPS:
                threading.Thread(target=run, args=(op, run_id, args, request), daemon=True).start()
            else:
                run(op, run_id, args, request)
    finally:
        pusher.closed = True
        for run_id in stack.runs():
            stack.drop(run_id)
