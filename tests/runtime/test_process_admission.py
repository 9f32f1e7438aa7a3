"""A shared server's admission on the process backend: decided in the server, over every worker's runs."""

from __future__ import annotations

import time

import numpy as np
import pytest

from cnfviz import default_config
from cnfviz.runtime import server
from cnfviz.runtime.admission import Admission
from cnfviz.runtime.holder import JobHolder, ParkingLot
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


def test_continue_at_the_students_cap_waits_queued_with_the_reason_and_trains_when_a_run_ends(backend):
    done = backend.submit(_config(adam_iters=5, max_seconds=60.0), owner="ann").start().join(120)
    assert done.snapshot().state == "done" and done.snapshot().iteration == 5 and done.can_continue
    other = backend.submit(_config(adam_iters=100_000, max_seconds=60.0), owner="ann").start()
    assert _until(lambda: other.snapshot().iteration > 0), "ann's other run holds her one place"

    assert done.continue_training(), "Continue is taken: the run waits its turn"
    waiting = done.snapshot()
    assert waiting.state == "queued" and "CNFVIZ_RUNS_PER_STUDENT" in waiting.reason
    assert "you have 1 runs training" in waiting.reason
    time.sleep(1.0)
    assert done.snapshot().state == "queued" and done.snapshot().iteration == 5, "it does not train meanwhile"
    assert done.alive and not done.can_continue

    other.close()  # her other run ends: the continued run trains on from where it was
    assert _until(lambda: done.snapshot().iteration > 5, 60)
    done.join(120)
    end = done.snapshot()
    assert end.state == "done" and end.iteration == 10
    np.testing.assert_array_equal(end.history["iteration"], np.arange(1, 11))


def test_a_continue_stopped_while_it_waits_stays_as_it_ended(backend):
    done = backend.submit(_config(adam_iters=4, max_seconds=60.0), owner="ann").start().join(120)
    other = backend.submit(_config(adam_iters=100_000, max_seconds=60.0), owner="ann").start()
    assert _until(lambda: other.snapshot().iteration > 0)
    assert done.continue_training() and done.snapshot().state == "queued"
    done.stop()
    snap = done.snapshot()
    assert snap.state == "done" and snap.iteration == 4 and done.can_continue and not done.alive
    other.close()
    time.sleep(1.0)
    assert done.snapshot().iteration == 4, "it did not start behind the user's back"
    done.close()


def test_a_reconnected_tab_waits_for_its_share_before_its_run_trains_on(backend):
    holder = JobHolder(None, backend)
    holder.owner = "ann"
    job = holder.start(_config(adam_iters=100_000, max_seconds=60.0))
    assert _until(lambda: job.snapshot().iteration >= 2)
    lot = ParkingLot(grace=600)
    lot.park("tab", holder)  # the connection dropped: the run is suspended and frees ann's place
    assert _until(lambda: job.snapshot().state == "suspended")
    n = job.snapshot().iteration
    # Meanwhile ann's other tab starts a run: it takes her one place.
    other = backend.submit(_config(adam_iters=100_000, max_seconds=60.0), owner="ann").start()
    assert _until(lambda: other.snapshot().iteration > 0, 60)

    assert lot.claim("tab") is holder
    holder.proceed()  # the tab came back: its run waits for ann's place
    time.sleep(1.0)
    waiting = job.snapshot()
    assert waiting.state == "queued" and "CNFVIZ_RUNS_PER_STUDENT" in waiting.reason
    assert job.snapshot().iteration == n

    other.close()
    assert _until(lambda: job.snapshot().iteration > n + 2, 60), "it trains on once her other run is gone"
    assert job.snapshot().state == "running"
    holder.close()
