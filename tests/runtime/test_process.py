"""The process backend as the app's default, and a server that is warm before its first student."""

from __future__ import annotations

import gc
import threading
import time

import numpy as np
import pytest

from cnfviz import ConfigError, default_config
from cnfviz.runtime import server
from cnfviz.runtime.backend import LocalBackend
from cnfviz.runtime.process import ProcessBackend, default_workers


def _config(**kw):
    base = {"adam_iters": 40, "batch_size": 64, "eval_every": 0, "n_test": 100, "seed": 7}
    return default_config("normal", **{**base, **kw})


def test_the_workers_follow_the_cores_unless_told():
    assert default_workers(2, {}) == 1 and default_workers(4, {}) == 3 and default_workers(64, {}) == 8
    assert default_workers(2, {"CNFVIZ_WORKERS": "2"}) == 2
    with pytest.raises(ConfigError, match="CNFVIZ_WORKERS"):
        default_workers(2, {"CNFVIZ_WORKERS": "many"})


def test_the_app_trains_in_worker_processes_unless_told_otherwise():
    backend, notice = server.choose_backend({})
    try:
        assert isinstance(backend, ProcessBackend) and notice is None and backend.name == "process"
    finally:
        backend.shutdown()
    local, notice = server.choose_backend({"CNFVIZ_BACKEND": "local"})
    assert isinstance(local, LocalBackend) and notice is None
    with pytest.raises(ConfigError, match=r'CNFVIZ_BACKEND: invalid value "threads"'):
        server.choose_backend({"CNFVIZ_BACKEND": "threads"})


def test_a_class_arriving_at_one_instant_on_a_just_started_server_trains(monkeypatch):
    # A server just started: warm_server runs in the background while three students press Train at once.
    backend = ProcessBackend(workers=1, threads=1)
    monkeypatch.setattr(server, "_backend", [(backend, None)])
    monkeypatch.setattr(server, "_warm_thread", [])
    capped = []
    monkeypatch.setattr(server, "limit_malloc_arenas", lambda: capped.append(1) or True)
    thread = server.warm_server()
    assert capped == [1], "the server caps its malloc arenas even when its runs train in workers"
    assert server.warm_server() is thread, "once per process"
    jobs = [backend.submit(_config(seed=s)) for s in range(3)]
    for job in jobs:
        job.start()
    try:
        for job in jobs:
            job.join(300)
        thread.join(300)
        assert backend.warm(0) and gc.get_freeze_count() > 0
        for job in jobs:
            snap = job.snapshot()
            assert snap.state == "done" and snap.iteration == 40
            elapsed = snap.history["elapsed"]
            steady = float(np.median(np.diff(elapsed)))
            # The first iteration costs a few ordinary ones, not torch's lazy imports (a cold worker's first
            # Adam step imports torch._dynamo: a hundred iterations' time or more).
            assert elapsed[0] < 25 * steady, (elapsed[0], steady)
    finally:
        for job in jobs:
            job.close()
        backend.shutdown()


def test_the_train_page_trains_on_the_process_backend(monkeypatch):
    import sys

    import streamlit as st
    from streamlit.testing.v1 import AppTest

    import cnfviz.ui  # noqa: F401 - loads the pages' modules
    from tests.apptest import TRAIN, fresh_caches, wait_for  # noqa: F401 - an autouse fixture

    # The session module the pages use (doctest collection may import a second copy under the same name).
    page_session = sys.modules["cnfviz.ui.cluster_notice"].backend_notice.__globals__

    class Recording(ProcessBackend):
        def submit(self, config, **kw):
            self.jobs.append(super().submit(config, **kw))
            return self.jobs[-1]

    backend = Recording(workers=1, threads=1)
    backend.jobs = []
    monkeypatch.setitem(page_session, "_backend", [(backend, None)])
    st.cache_resource.clear()
    page_session["PARKING"].clear()
    try:
        at = AppTest.from_file(TRAIN, default_timeout=180).run()  # (a busy machine: see the note below)
        assert not at.exception, at.exception
        at.number_input(key="train_adam_iters").set_value(30).run()
        at.button(key="train_train_button").click().run()
        # Generous bounds: once, right after a Ray head's teardown on this 2-core machine, this page was slow.
        wait_for(at, lambda a: bool(a.get("table")) and bool(a.success or a.error), timeout=400)
        assert at.success and "Done" in at.success[0].value and not at.error
        (job,) = backend.jobs
        assert job.job_id.startswith("proc-job-") and job.snapshot().iteration == 30
        assert job.placement()["worker_pid"] in backend.worker_pids()
        assert not at.button(key="train_continue_button").disabled  # can_continue, from the snapshot
    finally:
        st.cache_resource.clear()
        page_session["PARKING"].clear()
        backend.shutdown()


def test_a_worker_hands_dropped_runs_memory_back_once_after_a_burst(monkeypatch):
    from cnfviz.runtime.process import worker

    trims = []
    monkeypatch.setattr(worker, "release_memory", lambda: trims.append(1))
    monkeypatch.setattr(worker, "TRIM_AFTER_SECONDS", 0.05)

    class Empty:
        def runs(self):
            return {}

    pusher = worker._Pusher(Empty(), lambda message: None, interval=0.01)
    thread = threading.Thread(target=pusher.loop, daemon=True)
    thread.start()
    try:
        for _ in range(30):  # a class's tabs close in a burst
            pusher.dropped()
        time.sleep(0.5)
        assert trims == [1], "one trim after the burst, not thirty, and not none"
        pusher.dropped()
        time.sleep(0.3)
        assert trims == [1, 1]
    finally:
        pusher.closed = True
        thread.join(5)
