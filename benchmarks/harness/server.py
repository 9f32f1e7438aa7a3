"""A ``streamlit run app.py`` server for a benchmark or a browser test: a free port, start, health, stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

__all__ = ["ROOT", "ServerDied", "free_port", "start_server", "stop_server", "wait_healthy"]

ROOT = Path(__file__).resolve().parents[2]
SERVER_START_SECONDS = 120


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(
    port: int,
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
    cpus: set[int] | None = None,
    *,
    root: Path = ROOT,
    entry: str = "app.py",
    options: tuple[str, ...] = (),
) -> subprocess.Popen[bytes]:
    """``streamlit run <entry>`` from ``root`` on 127.0.0.1:``port``, headless, with ``env`` added to this
    process's environment; output to ``log_path`` (or discarded), CPU affinity ``cpus`` if given.

    The server gets a session of its own, so that :func:`stop_server` also reaches any child it starts.
    """
    cmd = [sys.executable, "-m", "streamlit", "run", entry, "--server.headless=true", "--server.address=127.0.0.1"]
    cmd += [f"--server.port={port}", "--browser.gatherUsageStats=false", "--server.fileWatcherType=none", *options]
    log = open(log_path, "wb") if log_path is not None else subprocess.DEVNULL
    try:
        return subprocess.Popen(
            cmd,
            cwd=root,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
            preexec_fn=None if cpus is None else lambda: os.sched_setaffinity(0, cpus),
        )
    finally:
        if log_path is not None:
            log.close()


class ServerDied(RuntimeError):
    """The server exited or did not answer its health check in time; the message holds its log's tail."""


def wait_healthy(
    proc: subprocess.Popen[bytes], url: str, log_path: Path | None = None, timeout: float = SERVER_START_SECONDS
) -> float:
    """Wait until ``url``/_stcore/health answers 200; returns the seconds waited. Raises :class:`ServerDied`
    (with the log's tail) if the server exits first or ``timeout`` passes."""
    start = time.monotonic()
    while True:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:] if log_path is not None else ""
            raise ServerDied(f"streamlit exited with {proc.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return time.monotonic() - start
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() - start > timeout:
            raise ServerDied(f"streamlit did not answer /_stcore/health in {timeout:g} s")
        time.sleep(0.25)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, up to 20 s to finish, then SIGKILL to whatever is left of its process group."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait(timeout=10)
