"""One contract over every backend: threads (``local``), worker processes (``process``) and Ray (``ray``).

Each backend hands out :class:`~cnfviz.runtime.core.JobHandle` s; a page must not be able to tell them apart:
the history grows one row per iteration, Pause/Step/Resume and Stop land where they are asked to, a live
learning rate reaches the run, Continue trains on, and the snapshot carries the buttons' state. The process
backend's own promises (a killed worker fails only its runs, stacked runs get their solo weights, the mirror
needs no message per snapshot) are at the end. Ray runs only the core contract, on one loopback head.
"""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
import torch

from cnfviz import default_config
from cnfviz.runtime.backend import LocalBackend
from cnfviz.runtime.core import BACKENDS
from cnfviz.runtime.job import JobSlots
from cnfviz.runtime.process import ProcessBackend


def _config(**kw):
    base = {"adam_iters": 60, "batch_size": 64, "eval_every": 0, "n_test": 100, "seed": 7}
    return default_config("normal", **{**base, **kw})


def _long_config(**kw):
    # Far more iterations than any test waits for: only Stop or a fault ends it.
    return _config(adam_iters=100_000, **kw)


def _wait(predicate, timeout=180.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def process_backend():
    backend = ProcessBackend(workers=2, threads=1)
    assert backend.warm(180), "the workers did not start"
    yield backend
    backend.shutdown()


@pytest.fixture(scope="module")
def ray_backend():
    ray = pytest.importorskip("ray")
    from cnfviz.runtime.ray.backend import RayBackend
    from cnfviz.runtime.ray.cluster import start_loopback_head

    started = not ray.is_initialized()
    if started:
        start_loopback_head(2)
    yield RayBackend(ray.get_runtime_context().gcs_address, start_timeout=120)
    if started:
        ray.shutdown()


@pytest.fixture(params=BACKENDS)
def backend(request):
    if request.param == "local":
        return LocalBackend(JobSlots(4))
    return request.getfixturevalue(f"{request.param}_backend")


def test_every_backend_keeps_the_handle_contract(backend):
    job = backend.submit(_long_config())
    assert not job.alive and job.snapshot().state == "queued" and job.snapshot().iteration == 0
    job.start()
    _wait(lambda: job.snapshot().iteration >= 3)
    early = job.snapshot()
    _wait(lambda: job.snapshot().iteration >= early.iteration + 5)
    later = job.snapshot()
    # The history grows one row per iteration, and an earlier snapshot's rows are the later one's first rows.
    np.testing.assert_array_equal(later.history["iteration"], np.arange(1, len(later.history["iteration"]) + 1))
    n = len(early.history["iteration"])
    for key in ("iteration", "loss", "nfe", "nfe_iter", "elapsed"):
        np.testing.assert_array_equal(later.history[key][:n], early.history[key])
    assert (later.history["nfe_iter"] > 0).all(), "each iteration's forward NFE is filled"
    np.testing.assert_array_equal(np.cumsum(later.history["nfe_iter"]), later.history["nfe"])
    assert later.state == "running" and not later.paused and not later.stopping and not later.can_continue

    job.pause()
    assert job.snapshot().paused and job.snapshot().state == "paused"  # shown at once, for the buttons
    _wait(lambda: job.snapshot().state == "paused" and job.snapshot().paused)
    time.sleep(0.3)
    frozen = job.snapshot().iteration
    time.sleep(0.3)
    assert job.snapshot().iteration == frozen, "a paused run trains nothing"
    job.step()
    _wait(lambda: job.snapshot().iteration == frozen + 1)
    time.sleep(0.3)
    assert job.snapshot().iteration == frozen + 1 and job.snapshot().paused, "Step is one iteration"

    # A live learning rate: taken while it runs; anything else is refused as on every backend.
    job.update_config(job.config.replace(lr=0.001))
    assert job.config.lr == 0.001
    with pytest.raises(ValueError, match="only the learning rate"):
        job.update_config(job.config.replace(adam_iters=5))
    job.resume()
    _wait(lambda: job.snapshot().iteration > frozen + 3)
    _wait(lambda: job.snapshot().config.lr == 0.001)

    # Stop lands within about an iteration of where the run was when it was asked.
    job.pause()
    _wait(lambda: job.snapshot().state == "paused")
    # A remote handle shows the pause at once; the iterations its worker trained before the pause landed may
    # still be on their way, so "where it was" is where the count settles.
    at = -1
    while at != job.snapshot().iteration:
        at = job.snapshot().iteration
        time.sleep(0.3)
    job.stop()
    assert job.snapshot().stopping
    job.join(120)
    end = job.snapshot()
    assert end.state == "stopped" and end.iteration in (at, at + 1) and not job.alive
    assert not end.paused and not end.stopping
    assert job.result is not None and job.result.status == "stopped"
    assert end.can_continue == (backend.name != "ray")  # a Ray run hands its worker on when it ends
    job.close()


@pytest.mark.parametrize("name", ["local", "process"])
def test_continue_trains_on_from_where_the_run_ended(name, request):
    backend = LocalBackend() if name == "local" else request.getfixturevalue("process_backend")
    job = backend.submit(_config(adam_iters=5)).start().join(120)
    snap = job.snapshot()
    assert snap.state == "done" and snap.iteration == 5 and snap.can_continue and job.can_continue
    before = {k: v.clone() for k, v in job.model.state_dict().items()}
    assert job.continue_training()
    job.join(120)
    snap = job.snapshot()
    assert snap.state == "done" and snap.iteration == 10 and snap.total == 10
    np.testing.assert_array_equal(snap.history["iteration"], np.arange(1, 11))
    after = job.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before), "the weights moved on"
    job.close()


def test_a_process_run_that_cannot_be_built_raises_at_submit(process_backend):
    from cnfviz import ConfigError

    with pytest.raises(ConfigError):
        process_backend.submit(_config(), target=None, init_state={"nonsense": torch.zeros(1)})


def test_the_snapshot_of_a_process_run_is_a_read_of_its_mirror(process_backend, monkeypatch):
    job = process_backend.submit(_long_config()).start()
    _wait(lambda: job.snapshot().iteration >= 2)
    sent = []
    worker = job._worker
    monkeypatch.setattr(worker, "send", lambda *a: sent.append(a))
    monkeypatch.setattr(worker, "request", lambda *a, **k: sent.append(a))
    snaps = [job.snapshot() for _ in range(1000)]
    assert not sent, "a snapshot sends nothing to the worker"
    assert snaps[-1].iteration >= snaps[0].iteration
    _wait(lambda: job.snapshot().iteration > snaps[-1].iteration + 2)  # the pushes keep coming
    monkeypatch.undo()
    job.close()


def test_two_runs_of_one_shape_stack_in_one_worker_and_get_their_solo_weights(process_backend):
    def weights(job):
        return {k: v.clone() for k, v in job.model.state_dict().items()}

    alone = process_backend.submit(_config(adam_iters=30, seed=1)).start().join(180)
    assert alone.snapshot().state == "done"
    solo = weights(alone)
    alone.close()
    a = process_backend.submit(_config(adam_iters=30, seed=1))
    b = process_backend.submit(_config(adam_iters=30, seed=2))
    assert a.stack_key == b.stack_key is not None
    a.start(), b.start()
    a.join(180), b.join(180)
    assert a.snapshot().state == b.snapshot().state == "done"
    assert a.placement()["worker_pid"] == b.placement()["worker_pid"], "one shape, one worker"
    stacked = weights(a)
    for k in solo:
        torch.testing.assert_close(stacked[k], solo[k], atol=1e-5, rtol=0)
    assert any(not torch.equal(weights(b)[k], solo[k]) for k in solo), "another seed learned other weights"
    a.close(), b.close()


def test_a_killed_worker_fails_only_its_runs_and_the_next_run_gets_a_new_one(process_backend):
    # Two shapes: the least busy worker takes each, so they train in different processes.
    doomed = process_backend.submit(_long_config()).start()
    other = process_backend.submit(_long_config(model={"hidden": (16,)})).start()
    _wait(lambda: doomed.snapshot().iteration >= 3 and other.snapshot().iteration >= 3)
    pid = doomed.placement()["worker_pid"]
    assert other.placement()["worker_pid"] != pid
    seen = doomed.snapshot()
    os.kill(pid, signal.SIGKILL)
    _wait(lambda: doomed.snapshot().state == "failed")
    dead = doomed.snapshot()
    assert "died" in dead.reason and "SIGKILL" in dead.reason and str(pid) in dead.reason
    assert dead.iteration >= seen.iteration and len(dead.history["iteration"]) >= len(seen.history["iteration"])
    assert not doomed.alive and doomed.result.status == "failed" and not dead.can_continue
    n = other.snapshot().iteration
    _wait(lambda: other.snapshot().iteration > n + 3)  # the other worker's run trains on
    assert other.snapshot().state == "running"
    fresh = process_backend.submit(_config(adam_iters=3)).start().join(240)
    assert fresh.snapshot().state == "done" and fresh.placement()["worker_pid"] not in (pid, None)
    assert pid not in process_backend.worker_pids()
    other.stop(evaluate=False)
    other.join(60)
    for job in (doomed, other, fresh):
        job.close()


def test_a_dropped_tab_suspends_its_process_run_and_a_closed_one_releases_it(process_backend):
    from cnfviz.runtime.holder import JobHolder, ParkingLot

    holder = JobHolder(None, process_backend)
    job = holder.start(_long_config())
    _wait(lambda: job.snapshot().iteration >= 2)
    lot = ParkingLot(grace=600)
    lot.park("tab", holder)  # the connection dropped: the run frees its CPU at once
    _wait(lambda: job.snapshot().state == "suspended")
    n = job.snapshot().iteration
    time.sleep(0.5)
    assert job.snapshot().iteration == n
    assert lot.claim("tab") is holder
    holder.proceed()  # the tab came back within the grace: it trains on from where it was
    _wait(lambda: job.snapshot().iteration > n + 2)
    assert job.snapshot().state == "running"
    worker = job._worker
    lot = ParkingLot(grace=0.3)
    lot.park("tab", holder)  # gone for good: after the grace the run is stopped and its worker forgets it
    _wait(lambda: len(lot) == 0, timeout=30)
    lot.clear()
    assert job.snapshot().state in ("suspended", "stopped") and not job.alive  # as a local run ends
    assert job.job_id not in worker._jobs and holder.get("train") is None
