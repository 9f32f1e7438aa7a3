"""Failing runs end cleanly, stops are prompt even inside a long solve, and sessions keep their runs.

Each failure test checks three things: the run ends with a reason in plain words, no exception escapes,
and the model afterwards is the last good one (finite, and equal to the weights that last gave a finite
loss).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch

from cnfviz import FFJORD, ModelConfig, SolverConfig, TrainConfig, Trainer
from cnfviz.flow import ffjord
from cnfviz.flow.solver import SolverError, SolverInterrupted
from cnfviz.runtime.holder import JobHolder, ParkingLot
from cnfviz.runtime.job import JobSlots, TrainingJob
from cnfviz.training.trainer import load_weights

ROOT = Path(__file__).resolve().parents[2]

TINY = TrainConfig(
    target="moons",
    model=ModelConfig(hidden=(16, 16), tspan=(0.0, 0.5)),
    solver=SolverConfig("dopri5", rtol=1e-5, atol=1e-5),
    adam_iters=30,
    batch_size=64,
    n_test=200,
    eval_every=0,
)
# Tight tolerances: one solve takes a hundred or more evaluations of the dynamics.
SLOW = TINY.replace(solver={"rtol": 1e-9, "atol": 1e-9, "max_nfe": None}, adam_iters=5)
EVAL_SECONDS = 0.02


class _SlowBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        BACKWARD_STARTED.set()
        time.sleep(EVAL_SECONDS)
        return grad


BACKWARD_STARTED = threading.Event()  # a slowed model's backward pass has begun


_SLOW_MODELS: weakref.WeakSet = weakref.WeakSet()


def _slow_forward(self, t, y):
    out = _REAL_FORWARD(self, t, y)
    if self._flow[0] in _SLOW_MODELS:
        time.sleep(EVAL_SECONDS)
        out = _SlowBackward.apply(out)
    return out


_REAL_FORWARD = ffjord._Solve.forward


@pytest.fixture(autouse=True)
def _slowable(monkeypatch):
    # Each solve builds its own dynamics module, so the slow-down goes on the class and applies only
    # to the models that slowed() registered.
    monkeypatch.setattr(ffjord._Solve, "forward", _slow_forward)


def slowed(job: TrainingJob) -> TrainingJob:
    """Make every evaluation of ``job``'s dynamics, and its backward pass, take ``EVAL_SECONDS`` more: one
    iteration then lasts seconds whatever the machine's load, yet each evaluation stays short."""
    _SLOW_MODELS.add(job.trainer.model)
    return job


def scale_weights_after(trainer: Trainer, iteration: int, scale: float):
    """A callback that multiplies every weight of ``trainer``'s model by ``scale`` once ``iteration`` is
    recorded: the next solve then meets a field that is far stiffer, or overflows."""

    def callback(rec) -> None:
        if rec.iteration == iteration:
            with torch.no_grad():
                for p in trainer.model.parameters():
                    p.mul_(scale)

    return callback


def run_with_corruption(config: TrainConfig, iteration: int, scale: float):
    """Train, spoiling the weights after ``iteration``; returns the trainer, its result and the weights that
    last gave a finite loss (as the trainer remembered them)."""
    trainer = Trainer(config)
    trainer.callback = scale_weights_after(trainer, iteration, scale)
    good: dict = {}
    remember = trainer._remember_good

    def remember_and_copy() -> None:
        remember()
        good["state"] = {k: v.clone() for k, v in trainer._good_state.items()}

    trainer._remember_good = remember_and_copy
    return trainer, trainer.run(final_metrics=False), good


def assert_last_good(trainer: Trainer, good: dict) -> None:
    for name, value in trainer.model.state_dict().items():
        assert torch.equal(value, good["state"][name]), name
        assert torch.isfinite(value).all()
    x = torch.as_tensor(trainer.test_data[:100], dtype=torch.float32)
    assert torch.isfinite(trainer.model.log_prob(x)).all()


# ---------------------------------------------------------------------------------------------- failures
def test_dt_underflow_on_an_exploding_field_says_so_and_keeps_the_last_good_model():
    # Weights ×1e20 overflow the field to inf; the adaptive step then collapses (torchdiffeq's
    # "underflow in dt nan").
    trainer, result, good = run_with_corruption(TINY, 3, 1e20)
    assert result.status == "failed"
    assert result.iterations == 3
    assert "step size shrank to zero (dt underflow)" in result.reason
    assert "too stiff" in result.reason and "kept the last good model" in result.reason
    assert "AssertionError" not in result.reason and "Traceback" not in result.reason
    assert_last_good(trainer, good)


def test_the_nfe_cap_ends_a_run_whose_dynamics_became_stiff():
    # ×10 makes a solve of this net need ~280 evaluations instead of ~20.
    config = TINY.replace(solver={"max_nfe": 100})
    trainer, result, good = run_with_corruption(config, 4, 10.0)
    assert result.status == "failed"
    assert result.iterations == 4
    assert "more than 100 evaluations of the dynamics (the NFE cap)" in result.reason
    assert_last_good(trainer, good)


def test_the_nfe_cap_counts_one_solve_and_can_be_lifted():
    flow = FFJORD(2, ModelConfig(hidden=(8,)), SolverConfig("dopri5", max_nfe=10))
    x = torch.randn(16, 2)
    with pytest.raises(SolverError, match="NFE cap"):
        flow(x)
    logp, _, _ = flow(x, solver=SolverConfig("dopri5", max_nfe=None))
    assert torch.isfinite(logp).all()
    flow.reset_nfe()
    flow(x, solver=SolverConfig("rk4", step_size=0.1, max_nfe=40))  # 10 steps x 4 stages: exactly the cap
    assert flow.nfe_forward == 40


@pytest.mark.parametrize("max_nfe", [0, 9, 2.5, "many"])
def test_a_bad_nfe_cap_is_refused_with_the_rule(max_nfe):
    with pytest.raises(ValueError, match=r"solver.max_nfe must be an integer >= 10, or null"):
        SolverConfig(max_nfe=max_nfe)


def test_an_exception_in_the_worker_reaches_the_snapshot_as_a_message(monkeypatch):
    job = TrainingJob(TINY.replace(adam_iters=1000))
    calls = {"n": 0}
    real = job.trainer._batch

    def broken_batch():
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyError("the data went missing")
        return real()

    monkeypatch.setattr(job.trainer, "_batch", broken_batch)
    snap = job.start().join(60).snapshot()
    assert not job.alive
    assert snap.state == "failed"
    assert "KeyError" in snap.reason and "the data went missing" in snap.reason
    assert snap.iteration == 4
    assert snap.visuals is not None, "the last good model's plots are still there"


def test_a_failing_job_keeps_the_plots_and_releases_its_slot():
    slots = JobSlots(1)
    job = TrainingJob(TINY, slots=slots)
    spoil = scale_weights_after(job.trainer, 3, 1e20)
    job.trainer.callback = lambda rec: (job._on_iteration(rec), spoil(rec))
    snap = job.start().join(60).snapshot()
    assert snap.state == "failed" and "dt underflow" in snap.reason
    assert snap.visuals is not None and np.isfinite(snap.visuals.density.learned).all()
    assert slots.running == 0 and slots.position(job.job_id) is None


# ---------------------------------------------------------------------------------------------- stops
def wait_until(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


@pytest.mark.parametrize("phase", ["forward", "backward"])
def test_stop_ends_a_long_solve_in_the_middle(phase):
    job = slowed(TrainingJob(SLOW, compute_final_metrics=False)).start()
    model = job.trainer.model
    if phase == "forward":
        wait_until(lambda: model.nfe_forward >= 5, 60)
    else:  # backpropagating through the solve evaluates nothing: the hooks must catch it there
        BACKWARD_STARTED.clear()
        wait_until(BACKWARD_STARTED.is_set, 60)
        time.sleep(0.2)
    stopped_at = time.perf_counter()
    job.stop(evaluate=False)
    job.join(5)
    took = time.perf_counter() - stopped_at
    assert not job.alive, f"the stop had not landed after {took:.2f} s"
    snap = job.snapshot()
    assert snap.state == "stopped" and snap.reason == "stopped by the user"
    assert snap.iteration == 0, "the stop came in the middle of the first iteration"


def test_reset_ends_the_final_evaluation_in_the_middle():
    trained = Trainer(SLOW).model.state_dict()
    job = slowed(TrainingJob(SLOW, init_state=trained, evaluate_only=True)).start()
    wait_until(lambda: job.trainer.model.nfe_forward >= 5, 60)
    stopped_at = time.perf_counter()
    job.stop(evaluate=False)
    job.join(5)
    took = time.perf_counter() - stopped_at
    assert not job.alive, f"the reset had not landed after {took:.2f} s"
    # The evaluation solves hundreds of slowed steps: a reset that waited for it would have its metrics.
    assert job.snapshot().metrics is None


def test_an_interrupt_raises_inside_the_solver():
    flow = FFJORD(1, ModelConfig(hidden=(4,)))
    calls = {"n": 0}

    def after_five():
        calls["n"] += 1
        return calls["n"] > 5

    flow.interrupt = after_five
    with pytest.raises(SolverInterrupted):
        flow(torch.randn(8, 1))
    assert flow.nfe_forward == 6


# ---------------------------------------------------------------------------------------------- suspend
def test_a_suspended_run_continues_exactly_where_it_stopped():
    """Suspended between iterations and continued, a run ends with the very weights of an uninterrupted one."""
    config = TINY.replace(adam_iters=40, lbfgs_iters=5)
    reference = Trainer(config)
    reference.run(final_metrics=False)

    job = TrainingJob(config, compute_final_metrics=False)
    job.trainer.pause()
    job.start()
    for _ in range(12):
        job.step()
    wait_until(lambda: job.snapshot().iteration == 12, 60)
    job.suspend()
    job.join(5)
    assert not job.alive and job.snapshot().state == "suspended"
    assert "connection dropped" in job.snapshot().reason
    assert job.proceed()
    job.resume()
    snap = job.join(120).snapshot()
    assert snap.state == "done"
    assert snap.iteration == reference._iteration
    assert len(snap.history["loss"]) == snap.iteration, "no iteration lost or repeated in the history"
    for name, value in job.model.state_dict().items():
        torch.testing.assert_close(value, reference.model.state_dict()[name], rtol=0, atol=0)


def test_a_suspended_queued_run_gives_up_its_place_and_takes_a_new_one():
    slots = JobSlots(1)
    first = TrainingJob(TINY.replace(adam_iters=100_000), slots=slots).start()
    wait_until(lambda: first.snapshot().iteration > 0, 60)
    second = TrainingJob(TINY, slots=slots).start()
    wait_until(lambda: slots.position(second.job_id) == 1, 10)
    second.suspend()
    second.join(5)
    assert second.snapshot().state == "suspended" and slots.waiting == 0
    assert second.proceed()
    wait_until(lambda: slots.position(second.job_id) == 1, 10)
    first.stop(evaluate=False)
    assert second.join(60).snapshot().state == "done"


def test_stop_wins_over_a_suspend():
    job = TrainingJob(TINY.replace(adam_iters=100_000), compute_final_metrics=False).start()
    wait_until(lambda: job.snapshot().iteration > 0, 60)
    job.stop()
    job.suspend()
    assert job.join(10).snapshot().state == "stopped"
    assert not job.proceed()


# ---------------------------------------------------------------------------------------------- sessions
def test_parking_hands_a_holder_back_to_its_own_session_only():
    lot = ParkingLot(grace=30)
    a, b = JobHolder(None), JobHolder(None)
    job_a = a.start(TINY.replace(adam_iters=100_000), name="train")
    wait_until(lambda: job_a.snapshot().iteration > 0, 60)
    lot.park("session-a", a)
    job_a.join(2)
    assert not job_a.alive, "a parked session's thread ends at once"
    lot.park("session-b", b)
    assert lot.claim("session-c") is None
    assert lot.claim("session-b") is b
    claimed = lot.claim("session-a")
    assert claimed is a and len(lot) == 0
    claimed.proceed()
    wait_until(lambda: job_a.alive and job_a.snapshot().state == "running", 10)
    a.close()
    job_a.join(5)


def test_parking_expires_after_the_grace_period_and_frees_the_runs():
    lot = ParkingLot(grace=0.2)
    holder = JobHolder(None)
    job = holder.start(TINY.replace(adam_iters=100_000))
    wait_until(lambda: job.snapshot().iteration > 0, 60)
    lot.park("s", holder)
    wait_until(lambda: len(lot) == 0, 5)
    assert holder.get() is None, "the expired holder forgot its jobs"
    assert lot.claim("s") is None
    assert not job.join(2).alive
    lot.clear()


def test_no_grace_closes_at_once():
    lot = ParkingLot(grace=0)
    holder = JobHolder(None)
    holder.start(TINY)
    lot.park("s", holder)
    assert len(lot) == 0 and holder.get() is None


def test_two_sessions_share_nothing_but_the_slots():
    slots = JobSlots(2)
    a, b = JobHolder(slots), JobHolder(slots)
    job_a = a.start(TINY.replace(adam_iters=100_000, target="moons"))
    job_b = b.start(TINY.replace(adam_iters=100_000, target="circles", seed=7))
    wait_until(lambda: job_a.snapshot().iteration > 2 and job_b.snapshot().iteration > 2, 60)
    assert job_a.model is not job_b.model
    assert not set(map(id, job_a.model.parameters())) & set(map(id, job_b.model.parameters()))
    assert job_a.snapshot().config.target == "moons" and job_b.snapshot().config.target == "circles"
    a.discard()
    job_a.join(5)
    iteration = job_b.snapshot().iteration
    wait_until(lambda: job_b.snapshot().iteration > iteration + 2, 30)
    assert job_b.snapshot().state == "running", "stopping one session's run leaves the other's alone"
    b.close()
    job_b.join(5)


def test_load_weights_refuses_nan_and_foreign_weights():
    flow = FFJORD(2, ModelConfig(hidden=(8,)))
    state = {k: v.clone() for k, v in flow.state_dict().items()}
    name = next(iter(state))
    state[name][0] = float("nan")
    with pytest.raises(ValueError, match=f"{name} holds NaN or infinite values"):
        load_weights(flow, state)
    with pytest.raises(ValueError, match="extra is not part of this network"):
        load_weights(flow, {**flow.state_dict(), "extra": torch.zeros(1)})


def test_threads_are_named_for_the_operating_system():
    job = TrainingJob(TINY.replace(adam_iters=100_000)).start()
    wait_until(lambda: job.snapshot().iteration > 0, 60)
    names = [open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")]
    job.stop(evaluate=False)
    job.join(5)
    assert names.count("cnfviz-job") >= 1
    assert threading.current_thread().name != "cnfviz-job"


def test_an_expired_session_is_freed_without_waiting_for_a_script_run():
    """A job and its trainer form a reference cycle; after a class nobody's script runs Streamlit's
    after-run ``gc.collect()``, so the parking lot collects them itself when the grace period ends."""
    import gc
    import weakref

    lot = ParkingLot(grace=0.1)
    holder = JobHolder(None)
    job = holder.start(TINY.replace(adam_iters=100_000))
    wait_until(lambda j=job: j.snapshot().iteration > 0, 60)
    model = weakref.ref(job.model)
    del job
    gc.disable()  # only the parking lot's own collection may free the cycle
    try:
        lot.park("s", holder)
        del holder
        wait_until(lambda: model() is None, 10)
    finally:
        gc.enable()
        lot.clear()


def test_one_reaper_thread_serves_every_parked_session():
    """A closed tab used to hold a timer thread for its grace period: a class of 30 added 30 threads."""
    lot = ParkingLot(grace=0.5)
    before = threading.active_count()
    holders = [JobHolder(None) for _ in range(40)]
    job = holders[0].start(TINY.replace(adam_iters=100_000))
    wait_until(lambda: job.snapshot().iteration > 0, 60)
    job.suspend()
    job.join(5)
    for i, holder in enumerate(holders):
        lot.park(f"s{i}", holder)
    assert len(lot) == 40
    assert threading.active_count() <= before + 1, "forty parked sessions, at most one more thread"
    # This lot's own reaper (the app's lot, which other tests park in, has one of the same name).
    reaper = lot._reaper
    assert reaper is not None and reaper.is_alive() and reaper.name == "cnfviz-reaper"
    assert lot.claim("s7") is holders[7], "a parked session is still handed back before its grace ends"
    wait_until(lambda: len(lot) == 0, 10)
    assert holders[0].get() is None and not job.alive, "the expired runs are closed"
    wait_until(lambda: not reaper.is_alive(), 10)
    assert threading.active_count() <= before, "the reaper ends once nothing is parked"
    lot.clear()


def test_each_parked_session_expires_after_its_own_grace_period():
    lot = ParkingLot(grace=2.0)
    early, late = JobHolder(None), JobHolder(None)
    lot.park("early", early)
    time.sleep(1.0)
    lot.park("late", late)
    wait_until(lambda: len(lot) < 2, 5)
    assert lot.claim("late") is late, "the later session still has time left when the first expires"
    lot.clear()


def test_a_parked_session_is_expired_after_its_ttl_unless_it_comes_back():
    """Streamlit reaps an expired disconnected session only when another one disconnects, without shutting
    it down: the parking lot calls the session's expiry itself once Streamlit's TTL has passed."""
    lot = ParkingLot(grace=0.2, session_ttl=1.0)
    expired: list[str] = []
    for name in ("gone", "back"):
        lot.park(name, JobHolder(None), lambda name=name: expired.append(name))
    wait_until(lambda: len(lot) == 0, 5)
    assert expired == [], "the session outlives its runs' grace period"
    assert lot.claim("back") is None, "its runs have expired..."
    lot.park("back", JobHolder(None), lambda: expired.append("back again"))
    assert lot.claim("back") is not None, "...and a session that reconnects calls its expiry off"
    wait_until(lambda: expired == ["gone"], 5)
    reaper = lot._reaper
    wait_until(lambda: reaper is None or not reaper.is_alive(), 10)
    assert expired == ["gone"]
    lot.clear()


def test_a_server_caps_its_malloc_arenas_and_hands_a_class_s_memory_back():
    # Eight training threads, ended: with glibc's default arenas the freed heap stays scattered over
    # one arena per thread; capped, malloc_trim hands it back. Run in fresh processes, since a cap must
    # come before the threads.
    code = """
import gc, sys, time
from cnfviz import TrainingJob, default_config
from cnfviz.runtime.housekeeping import limit_malloc_arenas, release_memory
def anon():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("RssAnon")) / 1024
if sys.argv[1] == "cap":
    assert limit_malloc_arenas()
TrainingJob(default_config("moons", adam_iters=3, eval_every=0, n_test=100)).start().join(120)
release_memory(); base = anon()
jobs = [TrainingJob(default_config("moons", adam_iters=8, eval_every=0, n_test=100, seed=s)) for s in range(8)]
for job in jobs: job.start()
for job in jobs: job.join(300)
del jobs, job; gc.collect(); release_memory()
print(anon() - base)
"""
    if not sys.platform.startswith("linux"):
        pytest.skip("glibc's arenas are a Linux matter")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MALLOC_ARENA_MAX", None)
    kept = {}
    for mode in ("cap", "default"):
        out = subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True, env=env, timeout=600)
        assert out.returncode == 0, out.stderr[-2000:]
        kept[mode] = float(out.stdout.split()[-1])
    assert kept["default"] - kept["cap"] > 20, f"heap kept after the runs, MiB: {kept}"  # measured: 40 vs -17
    env["MALLOC_ARENA_MAX"] = "4"
    out = subprocess.run(
        [sys.executable, "-c", "from cnfviz.runtime.housekeeping import limit_malloc_arenas as f; print(f())"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.stdout.strip() == "False", "an operator's MALLOC_ARENA_MAX wins"
