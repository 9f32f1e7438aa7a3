"""A shared server's admission on the process backend: decided in the server, over every worker's runs."""

from __future__ import annotations

import time

import pytest

from cnfviz import default_config
from cnfviz.runtime import server
from cnfviz.runtime.admission import Admission
from cnfviz.runtime.process import ProcessBackend


def _config(**kw):
    base = {"adam_iters": 20, "batch_size": 64, "eval_every": 0, "n_test": 100, "seed": 7}
    return default_config("normal", **{**base, **kw})


def _until(predicate, seconds: float = 120.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def backend():
    backend = ProcessBackend(
        workers=1, threads=1, admission=Admission(budget_bytes=None, per_student=1, run_seconds=3.0)
    )
    assert backend.warm(300), "the worker imports torch"
    yield backend
    backend.shutdown()


def test_one_students_extra_run_waits_in_the_server_while_another_students_trains(backend):
    # ann's first run has no time budget of its own: the server's (3 s) ends it long before 100,000 iterations.
    ann_long = backend.submit(_config(adam_iters=100_000), owner="ann").start()
    assert _until(lambda: ann_long.snapshot().state == "running" and ann_long.snapshot().iteration > 0)
    ann_next = backend.submit(_config(), owner="ann").start()
    bob = backend.submit(_config(), owner="bob").start()

    assert _until(lambda: bob.snapshot().iteration > 0), "another student's run trains at once"
    waiting = ann_next.snapshot()
    assert ann_long.snapshot().state == "running", "ann's first run still trains (its budget is 3 s)"
    assert waiting.state == "queued" and waiting.iteration == 0
    assert "CNFVIZ_RUNS_PER_STUDENT" in waiting.reason and "you have 1 runs training" in waiting.reason

    # A live learning rate still lands: the worker's trainer keeps the server's time budget meanwhile.
    ann_long.update_config(ann_long.config.replace(lr=0.002))
    assert ann_long.config.lr == 0.002 and ann_long.config.max_seconds is None
    assert _until(lambda: ann_long.snapshot().config.lr == 0.002, 10)

    # The time budget reached the worker's run: it ends by itself, and ann's waiting run starts then.
    ann_long.join(120)
    ended = ann_long.snapshot()
    assert ended.state == "done" and 0 < ended.iteration < 100_000
    assert ended.elapsed == pytest.approx(3.0, abs=1.5)
    assert ended.config.max_seconds is None, "the page's config stays as the student set it"
    ann_next.join(120)
    bob.join(120)
    assert ann_next.snapshot().state == "done" and ann_next.snapshot().iteration == 20
    assert bob.snapshot().state == "done" and bob.snapshot().iteration == 20
    assert ann_next.snapshot().history["elapsed"].size == 20


def test_a_closed_or_stopped_run_frees_its_admission_and_a_waiting_run_can_be_stopped(backend):
    first = backend.submit(_config(adam_iters=100_000, max_seconds=60.0), owner="ann").start()
    assert _until(lambda: first.snapshot().iteration > 0)
    second = backend.submit(_config(), owner="ann").start()
    third = backend.submit(_config(), owner="ann").start()
    time.sleep(0.5)
    assert second.snapshot().state == third.snapshot().state == "queued"

    third.stop()  # never admitted: it ends at once, here, and never reaches the worker's trainer
    assert third.snapshot().state == "stopped" and not third.alive
    third.join(5)

    first.close()  # the page discarded it (a new run under its name): its admission goes to the waiting run
    assert _until(lambda: second.snapshot().iteration > 0, 60), "ann's waiting run starts once hers is gone"
    second.join(120)
    assert second.snapshot().state == "done" and second.snapshot().iteration == 20
    assert third.snapshot().iteration == 0


def test_the_apps_process_backend_carries_the_servers_admission(monkeypatch):
    monkeypatch.setenv("CNFVIZ_RUNS_PER_STUDENT", "3")
    monkeypatch.setenv("CNFVIZ_SHARED_RUN_SECONDS", "120")
    backend, _ = server.choose_backend({})
    try:
        assert isinstance(backend, ProcessBackend)
        assert backend.admission.per_student == 3 and backend.admission.run_seconds == 120.0
    finally:
        backend.shutdown()
