"""Runs that end together take turns at their final pictures and metrics, so a stack still training keeps the
process's GIL (issue 19: a class's endings at once stalled the others' loss curves for 4-7 s)."""

import itertools
import threading
import time

from cnfviz import ModelConfig, SolverConfig, TrainConfig, TrainingJob
from cnfviz.runtime import job as job_module
from cnfviz.training.trainer import Trainer

TINY = TrainConfig(
    target="moons",
    model=ModelConfig(hidden=(8,), tspan=(0.0, 0.5)),
    solver=SolverConfig("rk4", step_size=0.25),
    adam_iters=4,
    batch_size=32,
    eval_every=0,
    n_test=100,
)


def test_runs_that_end_together_compute_their_final_metrics_one_at_a_time(monkeypatch):
    spans: list[tuple[float, float]] = []
    real = Trainer.evaluate

    def slow_evaluate(self, *args, **kwargs):
        start = time.perf_counter()
        out = real(self, *args, **kwargs)
        time.sleep(0.2)  # an accurate solve on a busy machine
        spans.append((start, time.perf_counter()))
        return out

    monkeypatch.setattr(Trainer, "evaluate", slow_evaluate)
    jobs = [TrainingJob(TINY.replace(seed=s)) for s in range(3)]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(120)
    assert [j.snapshot().state for j in jobs] == ["done"] * 3
    assert all(j.snapshot().metrics is not None for j in jobs), "every run still gets its metrics"
    spans.sort()
    assert len(spans) == 3
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end - 1e-3, f"two endings overlapped: {spans}"


def test_a_run_abandoned_while_it_waits_for_its_turn_ends_at_once(monkeypatch):
    monkeypatch.setattr(job_module, "_ENDINGS", threading.Semaphore(0))  # another run's ending holds the turn
    job = TrainingJob(TINY).start()
    deadline = time.time() + 60
    while job.snapshot().state not in ("done", "stopped", "failed") and time.time() < deadline:
        time.sleep(0.02)
    snap = job.snapshot()
    assert snap.state == "done" and snap.finishing, "ended at once, its ending waits for its turn"
    start = time.perf_counter()
    job.stop(evaluate=False)  # the tab closed: nobody will look at its final pictures
    job.join(10)
    assert time.perf_counter() - start < 2.0
    snap = job.snapshot()
    assert not snap.finishing and snap.metrics is None


def test_a_run_whose_last_live_picture_was_coarse_ends_on_an_accurate_one():
    # A live picture at every iteration, the last included: drawn with the training's fixed-step solver on
    # a coarse grid. The final picture must still be the accurate one (a flaky "48 != 64" before).
    job = TrainingJob(TINY, visual_every=1, visual_min_seconds=0.0, visual_budget=1e9).start().join(120)
    snap = job.snapshot()
    assert snap.state == "done" and snap.visuals is not None and snap.visuals.iteration == TINY.adam_iters
    assert snap.visuals.density.learned.shape == (64, 64)
