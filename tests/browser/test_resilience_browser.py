"""A classroom's network: a dropped connection loses nothing, a closed tab frees its thread at once.

The browser reaches the server through a small TCP proxy that can cut every open connection, which is
what a flaky Wi-Fi or a sleeping laptop does to a WebSocket. The server cannot tell that from a closed
tab, so both suspend the run within a second or two (its thread ends, its slot frees); the difference is
that Streamlit's frontend reconnects, with the same session id, and the run then continues where it was.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from .conftest import job_threads

pytestmark = pytest.mark.browser


class CuttableProxy:
    """Forwards ``127.0.0.1:port`` to ``target_port``; :meth:`cut` closes every connection open now."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._open += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        with self._lock:
            sockets, self._open = self._open, []
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self.cut()


@pytest.fixture
def proxy(app_url: str) -> Iterator[CuttableProxy]:
    p = CuttableProxy(int(app_url.rsplit(":", 1)[1]))
    try:
        yield p
    finally:
        p.close()


def test_a_dropped_connection_suspends_the_run_and_a_reconnect_continues_it(app_url, proxy, new_app):
    pid = app_url.pid
    app = new_app(f"http://127.0.0.1:{proxy.port}")
    app.goto("train?adam=100000")
    app.click_button("train_train_button")
    app.until(app.iteration, lambda i: i >= 10, 60, "the run to train")
    assert job_threads(pid) == 1

    threads = lambda: job_threads(pid)  # noqa: E731
    proxy.cut()
    cut_at = time.monotonic()
    app.until(threads, lambda n: n == 0, 2.0, "the training thread to end after the connection dropped")
    suspended_within = time.monotonic() - cut_at
    before = app.iteration()

    # Streamlit's frontend reconnects by itself, to the same session: the parked run continues.
    app.until(threads, lambda n: n == 1, 30, "the run to continue after the reconnect")
    app.until(app.iteration, lambda i: i > before + 5, 60, "the continued run to make progress")
    assert app.iteration() > before, "the run continued from where it was, not from the start"
    assert app.errors() == []
    app.screenshot("resilience-01-reconnected")

    app.page.context.close()
    closed_at = time.monotonic()
    while threads() and time.monotonic() - closed_at < 2.0:  # the page is gone: no app.until here
        time.sleep(0.02)
    assert threads() == 0, "the training thread ended within 2 s of the tab closing"
    print(f"thread ended {suspended_within:.2f} s after the cut, {time.monotonic() - closed_at:.2f} s after the close")


def test_stop_takes_effect_within_a_second(app):
    app.goto("train?adam=100000")
    app.click_button("train_train_button")
    app.until(app.iteration, lambda i: i >= 5, 60, "the run to train")
    app.click_button("train_stop_button")
    pressed = time.monotonic()
    app.until(lambda: app.page.get_by_text("Stopped", exact=False).count(), bool, 30, "the stopped status")
    stopped_at = app.iteration()
    time.sleep(1.0)
    assert app.iteration() == stopped_at, "no iteration after Stop"
    assert time.monotonic() - pressed < 30
    assert app.errors() == []
