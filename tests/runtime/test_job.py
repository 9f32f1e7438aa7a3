"""Background jobs: snapshots are consistent, slots cap concurrency in arrival order, controls work."""

import threading
import time

import pytest
import torch

from cnfviz import ModelConfig, SolverConfig, TrainConfig, Trainer, TrainingJob
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


# ---------------------------------------------------------------------------------------------- failures
def _poison(trainer: Trainer) -> None:
    """Every weight NaN: the next loss is NaN (a run that cannot take one good step)."""
    with torch.no_grad():
        for p in trainer.model.parameters():
            p.fill_(float("nan"))


def _slow_metrics(monkeypatch, seconds: float = 3.0) -> list[Trainer]:
    """Final metrics that take ``seconds``; the trainers that asked for them, in order."""
    asked: list[Trainer] = []

    def evaluate(self, *args, **kwargs):
        asked.append(self)
        time.sleep(seconds)

    monkeypatch.setattr(Trainer, "evaluate", evaluate)
    return asked


def _states_until_ended(job, timeout: float = 60.0) -> list[tuple[str, str, float]]:
    """Each distinct (state, reason) a poller sees, with when it first saw it, until the job's thread ends
    (the last row: ``("ended", "", when)``)."""
    seen: list[tuple[str, str, float]] = []
    deadline = time.monotonic() + timeout
    while True:
        alive = job.alive
        s = job.snapshot()
        if not seen or seen[-1][:2] != (s.state, s.reason):
            seen.append((s.state, s.reason, time.monotonic()))
        if not alive:
            return [*seen, ("ended", "", time.monotonic())]
        assert time.monotonic() < deadline, seen
        time.sleep(0.005)


NO_MODEL = "before any iteration gave a finite loss, so there is no trained model to keep"


def test_a_run_that_fails_at_its_first_iteration_says_so_at_once_and_ends_without_final_figures(monkeypatch):
    asked = _slow_metrics(monkeypatch)
    job = TrainingJob(TINY.replace(adam_iters=100), visual_min_seconds=0.0)
    _poison(job.trainer)
    seen = _states_until_ended(job.start())
    ended = [row for row in seen if row[0] != "running"]
    state, reason, when = ended[0]
    assert state == "failed", seen
    assert reason == f"the loss became nan at iteration 1 - {NO_MODEL}"
    assert asked == [], "no final metrics of a model that never trained"
    s = job.snapshot()
    assert (s.iteration, s.visuals, s.visuals_version, s.metrics, s.finishing) == (0, None, 0, None, False)
    assert job.result is not None and job.result.status == "failed" and job.result.metrics is None
    assert seen[-1][2] - when < 1.0, f"{seen}: the run waited on something after it said it failed"


def test_a_run_that_fails_later_says_so_before_its_final_pictures_and_metrics(monkeypatch):
    asked = _slow_metrics(monkeypatch)
    job = TrainingJob(TINY.replace(adam_iters=100, eval_every=0), visual_every=1000, visual_min_seconds=1000.0)
    real = job._on_iteration

    def spoil(rec):
        real(rec)
        if rec.iteration == 3:
            good.update({k: v.clone() for k, v in job.trainer.model.state_dict().items()})
            _poison(job.trainer)

    good: dict[str, torch.Tensor] = {}
    job.trainer.callback = spoil
    job.start()
    wait_for(lambda: len(asked) == 1)
    s = job.snapshot()  # the final metrics are being computed (they take 3 s here)
    assert s.state == "failed" and s.finishing and s.metrics is None
    assert s.reason == "the loss became nan at iteration 4 - kept the last good model"
    assert s.visuals is not None and s.visuals.iteration == 3, "the final pictures come before the metrics"
    assert s.iteration == 3 and s.its_per_sec > 0
    job.join(30)
    for p in job.model.parameters():
        assert torch.isfinite(p).all()
    assert not job.snapshot().finishing


def test_one_stack_member_failing_at_its_first_iteration_fails_alone(monkeypatch):
    from cnfviz.runtime.scheduler import Scheduler

    asked = _slow_metrics(monkeypatch, seconds=0.0)
    scheduler = Scheduler()
    config = TINY.replace(adam_iters=40, eval_every=0)
    jobs = [TrainingJob(config.replace(seed=s), slots=scheduler, visual_min_seconds=0.5) for s in range(3)]
    _poison(jobs[1].trainer)
    for job in jobs:
        job.start()
    wait_for(lambda: jobs[1].snapshot().state != "running" and jobs[1].snapshot().state != "queued")
    failed = jobs[1].snapshot()
    mates = [jobs[0].snapshot(), jobs[2].snapshot()]
    assert failed.state == "failed" and "the loss became nan at iteration 1" in failed.reason
    assert all(m.state == "running" and m.iteration < 40 for m in mates), "its mates still train"
    for job in jobs:
        job.join(60)
    assert jobs[1].trainer not in asked and jobs[1].snapshot().visuals is None
    for i in (0, 2):
        s = jobs[i].snapshot()
        assert s.state == "done" and s.iteration == 40 and jobs[i].trainer in asked
        assert list(s.history["iteration"]) == list(range(1, 41))
        assert all(torch.isfinite(p).all() for p in jobs[i].model.parameters())
    assert scheduler.stats()["largest_round"] >= 2, "the mates trained as a stack"


@pytest.fixture(scope="module")
def process_backend():
    from cnfviz.runtime.process import ProcessBackend

    backend = ProcessBackend(workers=1, threads=1)
    assert backend.warm(180), "the worker did not start"
    yield backend
    backend.shutdown()


@pytest.fixture(scope="module")
def ray_backend():
    ray = pytest.importorskip("ray")
    from cnfviz.runtime.ray.backend import RayBackend
    from cnfviz.runtime.ray.cluster import start_loopback_head

    started = not ray.is_initialized()
    if started:
        start_loopback_head(1)
    yield RayBackend(ray.get_runtime_context().gcs_address, start_timeout=120)
    if started:
        ray.shutdown()


@pytest.mark.parametrize("kind", ["process", "ray"])
def test_a_hosted_run_that_fails_at_its_first_iteration_says_so_and_ends_without_final_figures(kind, request):
    """A worker process and a Ray actor host the same job: its failure reaches the mirror as it is."""
    backend = request.getfixturevalue(f"{kind}_backend")
    # Tight tolerances under an NFE cap of 10: the first solve gives up (a real failure, in the worker process).
    config = TINY.replace(adam_iters=50, solver=SolverConfig("dopri5", rtol=1e-9, atol=1e-9, max_nfe=10))
    job = backend.submit(config).start()
    seen = _states_until_ended(job, timeout=120)
    ended = [row for row in seen if row[0] not in ("queued", "running")]
    assert ended[0][0] == "failed" and "more than 10 evaluations of the dynamics" in ended[0][1], seen
    assert ended[0][1].endswith(NO_MODEL)
    wait_for(lambda: job.result is not None)
    s = job.snapshot()
    assert (s.iteration, s.visuals_version, s.metrics) == (0, 0, None), "no pictures or metrics of an untrained model"
    assert job.result.status == "failed" and job.result.metrics is None
