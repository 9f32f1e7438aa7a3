"""A shared server's admission on the Ray backend: decided in the server, before a run reaches the cluster.

One real local head for the module (2 CPUs, on 127.0.0.1 only), as ``test_cluster.py``; skipped without Ray,
except in CI.
"""

from __future__ import annotations

import os
import time

import pytest

from cnfviz import default_config
from cnfviz.runtime.admission import Admission
from cnfviz.runtime.backend import RayBackend
from cnfviz.runtime.holder import JobHolder
from cnfviz.runtime.ray.cluster import start_loopback_head

if os.environ.get("CI", "").lower() == "true":
    import ray
else:
    ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_address():
    started = not ray.is_initialized()
    if started:
        start_loopback_head(2)
    yield ray.get_runtime_context().gcs_address
    if started:
        ray.shutdown()


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


def test_a_stacked_students_extra_run_waits_in_the_server_and_the_server_gives_a_time_budget(ray_address):
    # The app's path: runs of one shape share a stack actor; the server decides who starts.
    backend = RayBackend(ray_address, admission=Admission(budget_bytes=None, per_student=1, run_seconds=3.0))
    ann_long = backend.submit(_config(adam_iters=100_000), owner="ann").start()
    assert _until(lambda: ann_long.snapshot().iteration > 0)
    ann_next = backend.submit(_config(), owner="ann").start()
    bob = backend.submit(_config(), owner="bob").start()

    assert _until(lambda: bob.snapshot().iteration > 0, 60), "another student's run trains at once"
    waiting = ann_next.snapshot()
    assert ann_long.snapshot().state == "running"
    assert waiting.state == "queued" and waiting.iteration == 0
    assert "CNFVIZ_RUNS_PER_STUDENT" in waiting.reason and "you have 1 runs training" in waiting.reason

    ann_long.update_config(ann_long.config.replace(lr=0.002))  # a live change keeps the server's budget
    assert ann_long.config.lr == 0.002 and ann_long.config.max_seconds is None

    ann_long.join(120)  # the server's 3 s budget ends it, far short of 100,000 iterations
    ended = ann_long.snapshot()
    assert ended.state == "done" and 0 < ended.iteration < 100_000
    assert ended.elapsed == pytest.approx(3.0, abs=1.5)
    assert ended.config.max_seconds is None, "the page's config stays as the student set it"
    ann_next.join(120)
    bob.join(120)
    assert ann_next.snapshot().state == "done" and ann_next.snapshot().iteration == 20
    assert bob.snapshot().state == "done" and bob.snapshot().iteration == 20


def test_a_waiting_solo_run_holds_no_actor_and_a_holder_counts_what_its_session_keeps(ray_address):
    adm = Admission(budget_bytes=None, per_student=2, run_seconds=None)
    backend = RayBackend(ray_address, stacking=False, num_cpus=0.5, admission=adm)
    # Ann holds her two places; her third run waits and has no actor on the cluster meanwhile.
    ann = [backend.submit(_config(adam_iters=100_000, max_seconds=60.0), owner="ann").start() for _ in range(2)]
    assert _until(lambda: all(j.snapshot().iteration > 0 for j in ann))
    ann3 = backend.submit(_config(), owner="ann").start()
    time.sleep(0.5)
    assert ann3.snapshot().state == "queued" and "CNFVIZ_RUNS_PER_STUDENT" in ann3.snapshot().reason
    assert ann3._actor is None, "a run the server holds back takes no CPU of the cluster"
    ann3.stop()  # stopped while it waits: it ends at once, never reaches the cluster
    assert ann3.snapshot().state == "stopped" and not ann3.alive

    # A holder on this backend counts what its session keeps against the server's memory.
    holder = JobHolder(None, backend)
    holder.owner = "bob"
    kept = holder.start(_config(adam_iters=3))
    kept.join(120)
    assert kept.snapshot().state == "done" and holder.held() > 0 and adm.held("bob") == holder.held()
    holder.close()
    assert adm.held("bob") == 0
    for job in ann:
        job.close()
    assert _until(lambda: not any(j.alive for j in ann), 30)


def test_a_reconnected_tabs_ray_run_waits_for_its_share_before_it_trains_on(ray_address):
    from cnfviz.runtime.holder import ParkingLot

    backend = RayBackend(ray_address, admission=Admission(budget_bytes=None, per_student=1))
    holder = JobHolder(None, backend)
    holder.owner = "ann"
    job = holder.start(_config(adam_iters=100_000, max_seconds=60.0))
    assert _until(lambda: job.snapshot().iteration >= 2)
    lot = ParkingLot(grace=600)
    lot.park("tab", holder)  # the connection dropped: the run is suspended and frees ann's place
    assert _until(lambda: job.snapshot().state == "suspended", 60)
    n = job.snapshot().iteration
    other = backend.submit(_config(adam_iters=100_000, max_seconds=60.0), owner="ann").start()
    assert _until(lambda: other.snapshot().iteration > 0, 60), "her other tab's run takes her one place"

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
