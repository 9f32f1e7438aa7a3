"""A shared server's admission: the server's memory, a share per student, who waits first, a time budget."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from cnfviz import default_config
from cnfviz.runtime.admission import (
    Admission,
    AdmissionGate,
    array_bytes,
    held_bytes,
    server_memory_bytes,
    visible_memory_bytes,
)
from cnfviz.runtime.budget import machine_memory_bytes
from cnfviz.runtime.holder import JobHolder, ParkingLot
from cnfviz.runtime.job import JobSlots, TrainingJob
from cnfviz.runtime.scheduler import Scheduler


def _waiter(slots: JobSlots, job: str, cancel: threading.Event, got: list[str]) -> threading.Thread:
    def run() -> None:
        if slots.acquire(job, cancel):
            got.append(job)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _until(predicate, seconds: float = 5.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("slots_kind", [JobSlots, Scheduler])
def test_one_student_with_many_tabs_cannot_hold_every_slot(slots_kind):
    slots = slots_kind(4)
    slots.admission = Admission(budget_bytes=None, per_student=2)
    cancel = threading.Event()
    got: list[str] = []
    for i in range(6):
        slots.admission.register(f"hog-{i}", "hog", 1e6)
        _waiter(slots, f"hog-{i}", cancel, got)
    assert _until(lambda: len(got) == 2)
    time.sleep(0.3)
    assert sorted(got) == ["hog-0", "hog-1"] or len(got) == 2, "the hog holds its share, no more"
    slots.admission.register("other", "student-33", 1e6)
    _waiter(slots, "other", cancel, got)
    assert _until(lambda: "other" in got, 2.0), "the next student starts at once"
    assert "CNFVIZ_RUNS_PER_STUDENT" in slots.why_waiting(
        next(j for j in (f"hog-{i}" for i in range(6)) if j not in got)
    )
    cancel.set()


def test_when_the_server_is_full_the_student_holding_most_waits_first():
    slots = JobSlots(2)
    slots.admission = Admission(budget_bytes=None, per_student=10)
    for job, owner in [("a1", "ann"), ("a2", "ann"), ("a3", "ann"), ("b1", "bob")]:
        slots.admission.register(job, owner, 1.0)
    cancel = threading.Event()
    got: list[str] = []
    _waiter(slots, "a1", cancel, got)
    assert _until(lambda: got == ["a1"])
    _waiter(slots, "a2", cancel, got)
    assert _until(lambda: got == ["a1", "a2"])
    _waiter(slots, "a3", cancel, got)  # waits: the server is full
    time.sleep(0.2)
    _waiter(slots, "b1", cancel, got)  # came later, holds nothing
    time.sleep(0.2)
    slots.release("a1")
    assert _until(lambda: len(got) == 3)
    assert got[2] == "b1", "bob (no runs) goes before ann's third"
    cancel.set()


def test_admitted_runs_fit_the_servers_memory_together():
    adm = Admission(budget_bytes=int(3e9), per_student=100)
    for i in range(5):
        adm.register(f"r{i}", f"s{i}", 1e9)
    assert adm.pick(["r3"], ["r0", "r1", "r2"]) is None
    assert "CNFVIZ_SERVER_MB" in adm.why_not("r3", ["r0", "r1", "r2"])
    assert adm.pick(["r3"], ["r0", "r1"]) == "r3"
    assert adm.pick(["r4"], []) == "r4", "a run alone always fits (the per-run budget bounds it)"


def test_a_run_without_a_time_budget_gets_one_on_a_shared_server():
    slots = Scheduler(2)
    slots.admission = Admission(budget_bytes=None, per_student=4, run_seconds=600.0)
    job = TrainingJob(default_config("moons", adam_iters=2, eval_every=0, n_test=50), slots=slots, owner="ann")
    assert job.trainer.config.max_seconds == 600.0
    assert job.config.max_seconds is None, "the page's config stays as the student set it"
    job.update_config(job.config.replace(lr=0.002))  # a live learning rate still lands, the budget stays
    assert job.config.lr == job.trainer.config.lr == 0.002 and job.config.max_seconds is None
    assert job.trainer.config.max_seconds == 600.0
    with pytest.raises(ValueError, match="only the learning rate"):
        job.update_config(job.config.replace(max_seconds=5.0))
    kept = TrainingJob(default_config("moons", max_seconds=30.0, adam_iters=2), slots=slots, owner="ann")
    assert kept.trainer.config.max_seconds == 30.0


def test_the_server_budget_comes_from_what_the_process_sees(monkeypatch):
    visible = visible_memory_bytes()
    assert visible is None or visible <= machine_memory_bytes()
    monkeypatch.delenv("CNFVIZ_SERVER_MB", raising=False)
    assert server_memory_bytes() == int(0.75 * visible)
    monkeypatch.setenv("CNFVIZ_SERVER_MB", "1500")
    assert server_memory_bytes() == 1_500_000_000
    assert Admission.for_server().budget_bytes == 1_500_000_000


# ---------------------------------------------------------------------------- what sessions hold


def _tiny(**kw):
    base = {"adam_iters": 3, "batch_size": 32, "eval_every": 0, "n_test": 100, "seed": 1}
    return default_config("normal", **{**base, **kw})


def test_a_held_runs_estimate_is_close_to_what_a_finished_run_keeps():
    config = default_config("moons", adam_iters=5, eval_every=0, n_test=200)
    job = TrainingJob(config).start().join(120)
    snap = job.snapshot()
    assert snap.state == "done" and snap.visuals is not None
    params = sum(p.numel() for p in job.model.parameters())
    kept = (
        3 * 4 * params  # the weights and Adam's two moments
        + array_bytes(snap.visuals)
        + array_bytes(snap.history)
        + array_bytes(job.trainer.test_data)
    )
    estimate = held_bytes(config, 2)
    assert 0.7 * kept <= estimate <= 2.0 * kept, (estimate, kept)
    # A custom target's own arrays count too: 100,000 float64 points in 2D are 1.6 MB more.
    from cnfviz.targets import SamplesTarget

    samples = np.random.default_rng(0).normal(size=(100_000, 2))
    custom = SamplesTarget(samples)
    assert held_bytes(config, 2, custom) - estimate >= samples.nbytes


def test_finished_runs_a_session_keeps_lower_what_the_next_admission_sees_until_it_lets_them_go():
    config = _tiny()
    one = held_bytes(config, 1)
    # Room for one running run of 10 MB and the next one, with three held runs' worth to spare, not four.
    slots = Scheduler(8)
    slots.admission = Admission(budget_bytes=int(20e6 + 3.5 * one), per_student=10)
    holder = JobHolder(slots)
    holder.owner = "ann"
    for i in range(4):
        holder.start(config, name=f"r{i}").join(120)
    assert [holder.get(f"r{i}").snapshot().state for i in range(4)] == ["done"] * 4
    adm = slots.admission
    assert adm.held() == pytest.approx(4 * one) and holder.held() == pytest.approx(4 * one)
    assert adm.held("bob") == 0

    adm.register("bob-running", "bob", 10e6)
    adm.register("bob-next", "bob", 10e6)
    why = adm.why_not("bob-next", ["bob-running"])
    assert why is not None and "held by finished runs" in why and "CNFVIZ_SERVER_MB" in why
    assert f"keep ({4 * one / 1e6:,.1f} MB, 0 bytes of it yours)" in why
    assert adm.pick(["bob-next"], ["bob-running"]) is None

    holder.discard("r0")  # one finished run discarded: three held fit beside the two
    assert adm.held() == pytest.approx(3 * one)
    assert adm.pick(["bob-next"], ["bob-running"]) == "bob-next"

    holder.start(config, name="r1").join(120)  # replaced under its name: still three held
    assert adm.held() == pytest.approx(3 * one)

    lot = ParkingLot(grace=0)  # the session ended for good: everything it kept is given back
    lot.park("ann-tab", holder)
    assert adm.held() == 0 and holder.held() == 0
    assert adm.why_not("bob-next", ["bob-running"]) is None


def test_a_run_alone_starts_whatever_sessions_hold():
    adm = Admission(budget_bytes=int(1e6), per_student=4)
    adm.hold("old", "ann", 5e6)
    adm.register("new", "bob", 0.5e6)
    assert adm.pick(["new"], []) == "new", "nothing trains: nothing would free the memory by waiting"


def test_the_gate_launches_the_run_whose_student_holds_fewest_and_held_memory_let_go_lets_the_next_in():
    gate = AdmissionGate(Admission(budget_bytes=int(3e6), per_student=5))
    launched: list[str] = []
    for job, owner in [("a1", "ann"), ("a2", "ann"), ("a3", "ann"), ("a4", "ann"), ("b1", "bob")]:
        gate.register_id(job, owner, 1e6)
    for job in ("a1", "a2", "a3", "a4", "b1"):
        gate.enter(job, lambda job=job: launched.append(job))
    assert launched == ["a1", "a2", "a3"], "three runs of 1 MB fill the 3 MB"
    assert gate.waiting("a4") and gate.waiting("b1")
    assert "taken by the runs training now" in gate.why("b1")

    gate.release("a1")
    assert launched[-1] == "b1" and gate.waiting("a4"), "bob (no runs) goes before ann's fourth, who came first"

    gate.admission.hold("kept", "carl", 1e6)  # carl's session keeps a finished run of 1 MB
    gate.release("a2")
    assert gate.waiting("a4"), "2 MB training + 1 MB held + 1 MB more is over 3 MB"
    why = gate.why("a4")
    assert "held by finished runs that open sessions keep (1.0 MB, 0 bytes of it yours)" in why
    assert "runs training now (2.0 MB), of 3.0 MB (CNFVIZ_SERVER_MB); this run needs about 1.0 MB" in why
    gate.admission.let_go("kept")  # carl's session ended
    assert launched[-1] == "a4" and not gate.waiting("a4")


def test_an_uploaded_target_a_session_keeps_counts_until_it_is_replaced_or_the_session_ends():
    from cnfviz.targets import SamplesTarget

    slots = JobSlots(2)
    slots.admission = Admission(budget_bytes=int(1e9), per_student=4)
    holder = JobHolder(slots)
    holder.owner = "ann"
    upload = SamplesTarget(np.random.default_rng(0).normal(size=(50_000, 2)))  # 0.8 MB of float64 points
    holder.hold_data("train__custom_upload", upload)
    assert slots.admission.held("ann") >= 800_000 and holder.held() == slots.admission.held("ann")
    small = SamplesTarget(np.random.default_rng(1).normal(size=(100, 2)))
    holder.hold_data("train__custom_upload", small)  # replaced by a small one
    assert 1_600 <= slots.admission.held("ann") < 100_000
    holder.close()
    assert slots.admission.held() == 0


def test_on_the_local_backend_continue_at_the_students_cap_waits_with_the_reason_and_trains_when_a_run_ends():
    slots = Scheduler(4)
    slots.admission = Admission(budget_bytes=None, per_student=1)
    holder = JobHolder(slots)
    holder.owner = "ann"
    done = holder.start(_tiny(adam_iters=5), name="first").join(120)
    assert done.snapshot().state == "done" and done.snapshot().iteration == 5
    other = holder.start(_tiny(adam_iters=1_000_000, max_seconds=60.0), name="second")
    assert _until(lambda: other.snapshot().iteration > 0, 60)

    assert done.continue_training()
    time.sleep(0.5)
    waiting = done.snapshot()
    assert waiting.state == "queued" and waiting.iteration == 5
    assert "CNFVIZ_RUNS_PER_STUDENT" in waiting.reason and "you have 1 runs training" in waiting.reason

    holder.discard("second")
    done.join(120)
    assert done.snapshot().state == "done" and done.snapshot().iteration == 10
    holder.close()
