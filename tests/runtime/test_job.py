"""Background jobs: snapshots are consistent, slots cap concurrency in arrival order, controls work."""

import threading
import time

from cnfviz import ModelConfig, SolverConfig, TrainConfig, TrainingJob
from cnfviz.runtime.job import JobSlots

TINY = TrainConfig(
    target="moons",
    model=ModelConfig(hidden=(8,), tspan=(0.0, 0.5)),
    solver=SolverConfig("rk4", step_size=0.25),
    adam_iters=12,
    batch_size=32,
    eval_every=5,
    n_test=200,
)


def wait_for(pred, timeout=30.0):
    deadline = time.time() + timeout
    while not pred():
        assert time.time() < deadline, "timed out"
        time.sleep(0.02)


def test_a_job_runs_to_the_end_and_reports_everything():
    job = TrainingJob(TINY, visual_every=5, visual_min_seconds=0.0).start().join(60)
    s = job.snapshot()
    assert s.state == "done" and s.reason == "finished all iterations" and not s.active
    assert s.iteration == s.total == 12 and s.progress == 1.0
    assert list(s.history["iteration"]) == list(range(1, 13))
    assert list(s.history["test_iteration"]) == [5, 10, 12]
    assert s.metrics is not None and s.metrics.integral > 0
    v = s.visuals
    assert v is not None and v.iteration == 12
    assert v.density.learned.shape == (64, 64) and v.trajectories.paths.shape[1:] == (400, 2)
    assert v.field.values.shape == (11, 21, 21, 2) and v.density_path is None


def test_visuals_version_only_changes_with_new_plots():
    job = TrainingJob(TINY.replace(adam_iters=6), visual_every=1000, visual_min_seconds=1000.0).start().join(60)
    s = job.snapshot()
    # One refresh at the first iteration, one at the end; none in between.
    assert s.visuals_version == 2 and s.visuals.iteration == 6


def test_slots_cap_concurrency_and_queue_in_order():
    slots = JobSlots(1)
    first = TrainingJob(TINY.replace(adam_iters=100_000), slots=slots).start()
    wait_for(lambda: first.snapshot().state == "running")
    second = TrainingJob(TINY, slots=slots).start()
    third = TrainingJob(TINY, slots=slots).start()
    wait_for(lambda: third.snapshot().queue_position == 2)
    assert second.snapshot().state == "queued" and second.snapshot().queue_position == 1
    assert slots.running == 1 and slots.waiting == 2
    third.stop()  # leaving the queue lets the others move up
    wait_for(lambda: third.snapshot().state == "stopped")
    assert "waiting for a free slot" in third.snapshot().reason
    first.stop()
    second.join(60)
    assert second.snapshot().state == "done"
    assert slots.running == 0 and slots.waiting == 0


def test_slots_release_on_failure_and_capacity_can_grow():
    slots = JobSlots(1)
    assert slots.acquire("a", threading.Event())
    assert not slots.acquire("b", threading.Event(), timeout=0.05)
    slots.capacity = 2
    assert slots.acquire("b", threading.Event(), timeout=1)
    slots.release("a")
    slots.release("b")
    assert slots.running == 0


def test_pause_freezes_iterations_and_step_advances_one():
    job = TrainingJob(TINY.replace(adam_iters=100_000, eval_every=0)).start()
    wait_for(lambda: job.snapshot().iteration >= 2)
    job.pause()
    wait_for(lambda: job.snapshot().state == "paused")
    time.sleep(0.2)
    it = job.snapshot().iteration
    time.sleep(0.3)
    assert job.snapshot().iteration == it
    version = job.snapshot().visuals_version
    job.step()
    wait_for(lambda: job.snapshot().iteration == it + 1)
    wait_for(lambda: job.snapshot().visuals_version > version)  # plots refresh after a step
    job.resume()
    wait_for(lambda: job.snapshot().iteration > it + 3)
    job.stop()
    job.join(30)
    assert job.snapshot().state == "stopped"


def test_eta_and_rate_are_reported_while_running():
    job = TrainingJob(TINY.replace(adam_iters=100_000, eval_every=0)).start()
    wait_for(lambda: job.snapshot().iteration >= 5)
    s = job.snapshot()
    assert s.its_per_sec > 0 and s.eta_seconds is not None and s.eta_seconds > 0
    job.stop()
    job.join(30)
