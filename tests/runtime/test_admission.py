"""A shared server's admission: the server's memory, a share per student, who waits first, a time budget."""

from __future__ import annotations

import threading
import time

import pytest

from cnfviz import default_config
from cnfviz.runtime.admission import Admission, server_memory_bytes, visible_memory_bytes
from cnfviz.runtime.budget import machine_memory_bytes
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
