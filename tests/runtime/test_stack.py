"""Stacked training is exact: a run trained with stack-mates reaches the weights it reaches alone.

The members differ in everything but shape (seed, learning rate, time span, regularizer weights, iteration
budget), join and leave mid-run, pause, fail and stop, and each one's weights are compared with the same
run trained alone by :class:`~cnfviz.Trainer`.
"""

from __future__ import annotations

import math
import threading
import time

import pytest
import torch

from cnfviz import ConfigError, ModelConfig, SolverConfig, TrainConfig, Trainer, TrainingJob
from cnfviz.flow.divergence import TRACE_ESTIMATORS, draw_noise
from cnfviz.flow.dynamics import ACTIVATIONS, TIME_CONDITIONING
from cnfviz.flow.solver import SOLVERS
from cnfviz.runtime import stack as stack_module
from cnfviz.runtime.scheduler import Scheduler
from cnfviz.runtime.stack import stack_key, stacked_losses
from cnfviz.training.objectives import OBJECTIVES, check_objective

ATOL = 1e-5

BASE_2D = TrainConfig(
    target="moons",
    model=ModelConfig(hidden=(16, 16), linear=True, tspan=(0.0, 0.5)),
    solver=SolverConfig("rk4", step_size=0.125),
    adam_iters=12,
    lr=1e-2,
    lr_decay=True,
    batch_size=64,
    n_test=100,
    eval_every=0,
)
BASE_1D = BASE_2D.replace(target="normal", model={"hidden": (8, 8), "tspan": (0.0, 1.0)}, solver={"step_size": 0.25})
HUTCH_REG = BASE_2D.replace(model={"trace": "hutchinson-rademacher"}, lambda_kinetic=0.1, lambda_jacobian=0.05)
CASES = {"2d-exact": BASE_2D, "1d-exact": BASE_1D, "2d-hutchinson-regularized": HUTCH_REG}


def variants(base: TrainConfig) -> list[TrainConfig]:
    """Four runs of one shape: other seeds, learning rates, a longer time span with as many steps, λ."""
    t0, t1 = base.model.tspan
    longer = {"tspan": (t0, 2 * t1)}
    step = {"step_size": 2 * base.solver.step_size}
    lam = {} if not base.regularized else {"lambda_kinetic": 0.5, "lambda_jacobian": 0.01}
    return [
        base,
        base.replace(seed=1, lr=3e-3),
        base.replace(seed=2, model=longer, solver=step, **lam),
        base.replace(seed=3, lr_decay=False, adam_iters=base.adam_iters // 2),  # leaves mid-run
    ]


def weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=ATOL, rtol=0, msg=f"{name} differs")


def alone(config: TrainConfig, callback=None) -> tuple[Trainer, object]:
    trainer = Trainer(config, callback=callback)
    return trainer, trainer.run(final_metrics=False)


def in_threads(trainers: list[Trainer], starts: dict[int, threading.Event] | None = None) -> list[object]:
    """Run each trainer in its own thread (as jobs do); trainer i waits for ``starts[i]`` if given."""
    results: list[object] = [None] * len(trainers)

    def work(i: int) -> None:
        if starts and i in starts:
            assert starts[i].wait(60)
        results[i] = trainers[i].run(final_metrics=False)

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(len(trainers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
        assert not t.is_alive()
    return results


def stacked(configs: list[TrainConfig], scheduler: Scheduler, **callbacks) -> list[Trainer]:
    trainers = [Trainer(c, callback=callbacks.get(f"cb{i}")) for i, c in enumerate(configs)]
    for tr in trainers:
        tr.stacker = scheduler
    return trainers


# ---------------------------------------------------------------------------------------------- the key
def test_runs_of_one_shape_share_a_key_and_other_shapes_do_not():
    keys = [stack_key(Trainer(c)) for c in variants(BASE_2D)]
    assert None not in keys and len(set(keys)) == 1, "seed, lr, time span with as many steps: one stack"
    other = {
        "width": BASE_2D.replace(model={"hidden": (16, 8)}),
        "batch": BASE_2D.replace(batch_size=32),
        "trace": BASE_2D.replace(model={"trace": "hutchinson-gaussian"}),
        "steps": BASE_2D.replace(solver={"step_size": 0.25}),
        "regularized": BASE_2D.replace(lambda_kinetic=0.1),
        "activation": BASE_2D.replace(model={"activation": "softplus"}),
        "dimension": BASE_1D.replace(model={"hidden": (16, 16), "tspan": (0.0, 0.5)}, solver={"step_size": 0.125}),
    }
    for what, config in other.items():
        key = stack_key(Trainer(config))
        assert key is not None and key != keys[0], what
    alone_ = {
        "adaptive": BASE_2D.replace(solver={"method": "dopri5"}),
        "adjoint": BASE_2D.replace(solver={"adjoint": True}),
        "autograd trace": BASE_2D.replace(model={"trace": "exact-autograd"}),
    }
    for what, config in alone_.items():
        assert stack_key(Trainer(config)) is None, what
    # A config whose grid exceeds its NFE cap is refused before it is built; a built run gets there when the
    # solver guard refines its step.
    capped = Trainer(BASE_2D)
    capped.train_solver = capped.train_solver.__class__(**{**capped.train_solver.to_dict(), "max_nfe": 10})
    assert stack_key(capped) is None, "nfe cap below the grid"


# ---------------------------------------------------------------------------------------------- one solve
@pytest.mark.parametrize("case", CASES)
def test_a_stacked_solve_gives_each_run_its_solo_loss_and_gradient(case):
    trainers = [Trainer(c) for c in variants(CASES[case])]
    xs = [tr._to_tensor(tr.target.sample(64, seed=i)) for i, tr in enumerate(trainers)]
    est = TRACE_ESTIMATORS[trainers[0].config.model.trace]
    solo_losses, solo_grads = [], []
    noises = []
    for tr, x in zip(trainers, xs, strict=True):
        state = tr._noise.get_state()
        noises.append(draw_noise(est.noise, x, tr._noise) if est.noise else None)
        tr._noise.set_state(state)  # the solo solve draws the same probes
        loss, _ = tr._loss(x, tr._noise)
        grads = torch.autograd.grad(loss, list(tr.model.parameters()))
        solo_losses.append(float(loss.detach()))
        solo_grads.append(grads)
    out = stacked_losses(trainers, xs, noises)
    torch.stack([loss for loss, _ in out]).sum().backward()
    for tr, (loss, parts), want, grads in zip(trainers, out, solo_losses, solo_grads, strict=True):
        assert float(loss.detach()) == pytest.approx(want, abs=1e-5)
        assert (parts["kinetic"] is None) == (not tr.config.regularized)
        for p, g in zip(tr.model.parameters(), grads, strict=True):
            torch.testing.assert_close(p.grad, g, atol=1e-5, rtol=1e-4)


# ---------------------------------------------------------------------------------------------- training
@pytest.mark.parametrize("case", CASES)
def test_a_stacked_run_trains_to_the_weights_it_reaches_alone(case):
    """Four runs: three start together, one of them leaves half-way, and the fourth joins late."""
    configs = variants(CASES[case])
    late = threading.Event()

    def first_callback(rec) -> None:
        if rec.iteration == 4:
            late.set()  # the fourth run joins while the others are at iteration 4

    scheduler = Scheduler()
    trainers = stacked(configs, scheduler, cb0=first_callback)
    results = in_threads(trainers, starts={2: late})
    assert scheduler.stats()["largest_round"] >= 2, "the runs trained in one stack"
    assert scheduler.stack_sizes() == [], "every run left its stack"
    for config, trainer, result in zip(configs, trainers, results, strict=True):
        solo, solo_result = alone(config)
        assert result.status == solo_result.status == "done" and result.iterations == config.adam_iters
        assert_same_weights(weights(trainer), weights(solo))
        assert [r.loss for r in result.history] == pytest.approx([r.loss for r in solo_result.history], abs=ATOL)
        assert [r.nfe_forward for r in result.history] == [r.nfe_forward for r in solo_result.history]


def test_a_paused_member_waits_while_its_mates_train_and_then_ends_where_it_would_alone():
    configs = variants(BASE_2D)[:3]
    paused_at = threading.Event()
    holder: list[Trainer] = []

    def pause_at_three(rec) -> None:
        if rec.iteration == 3:
            holder[0].pause()
            paused_at.set()

    scheduler = Scheduler()
    trainers = stacked(configs, scheduler, cb0=pause_at_three)
    holder.append(trainers[0])
    results: list[object] = [None] * 3
    threads = [
        threading.Thread(target=lambda i=i: results.__setitem__(i, trainers[i].run(final_metrics=False)), daemon=True)
        for i in range(3)
    ]
    for t in threads:
        t.start()
    threads[1].join(120)
    threads[2].join(120)
    assert results[1].status == results[2].status == "done", "the mates finished while one member was paused"
    assert paused_at.is_set() and trainers[0]._iteration == 3 and threads[0].is_alive()
    trainers[0].resume()
    threads[0].join(120)
    assert results[0].status == "done" and results[0].iterations == configs[0].adam_iters
    for config, trainer in zip(configs, trainers, strict=True):
        assert_same_weights(weights(trainer), weights(alone(config)[0]))


def poison_at(iteration: int, holder: list[Trainer]):
    """A callback that puts a NaN into the first weight once ``iteration`` is recorded."""

    def callback(rec) -> None:
        if rec.iteration == iteration:
            with torch.no_grad():
                next(holder[0].model.parameters()).view(-1)[0] = float("nan")

    return callback


def test_a_failing_member_fails_alone_with_its_last_good_model_and_its_mates_carry_on():
    configs = variants(BASE_2D)[:3]
    holder: list[Trainer] = []
    scheduler = Scheduler()
    trainers = stacked(configs, scheduler, cb1=poison_at(5, holder))
    holder.append(trainers[1])
    results = in_threads(trainers)
    assert results[1].status == "failed" and "the loss became nan at iteration 6" in results[1].reason
    assert results[1].reason.endswith("kept the last good model")
    solo_holder: list[Trainer] = []
    solo = Trainer(configs[1], callback=poison_at(5, solo_holder))
    solo_holder.append(solo)
    solo_result = solo.run(final_metrics=False)
    assert solo_result.reason == results[1].reason
    assert all(torch.isfinite(p).all() for p in trainers[1].model.parameters())
    assert_same_weights(weights(trainers[1]), weights(solo))
    for i in (0, 2):
        assert results[i].status == "done"
        assert_same_weights(weights(trainers[i]), weights(alone(configs[i])[0]))


def halve_step_at(iteration: int, holder: list[Trainer]):
    """A callback that halves the training step once ``iteration`` is recorded, as the solver guard does."""
    from dataclasses import replace

    def callback(rec) -> None:
        if rec.iteration == iteration:
            tr = holder[0]
            tr.train_solver = replace(tr.train_solver, step_size=tr.train_solver.step_size / 2)

    return callback


def test_a_member_whose_step_is_halved_moves_to_the_stack_of_its_new_shape():
    configs = variants(BASE_2D)[:3]
    holder: list[Trainer] = []
    scheduler = Scheduler()
    trainers = stacked(configs, scheduler, cb0=halve_step_at(4, holder))
    holder.append(trainers[0])
    keys: list[object] = []
    trainers[1].callback = lambda rec: keys.append(holder[0].stack_group.key if holder[0].stack_group else None)
    in_threads(trainers)
    assert len(set(keys) - {None}) == 2, "the halved run trained in the stack of its old, then its new shape"
    solo_holder: list[Trainer] = []
    solo = Trainer(configs[0], callback=halve_step_at(4, solo_holder))
    solo_holder.append(solo)
    solo.run(final_metrics=False)
    assert_same_weights(weights(trainers[0]), weights(solo))
    for i in (1, 2):
        assert_same_weights(weights(trainers[i]), weights(alone(configs[i])[0]))


EVAL_SECONDS = 0.02


def test_one_members_stop_lands_inside_the_round_and_its_mates_are_unchanged(monkeypatch):
    # Every stacked evaluation (and its backward) takes EVAL_SECONDS more: one round lasts seconds.
    real = stack_module._StackedAugmented.__call__

    class _Slow(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.view_as(x)

        @staticmethod
        def backward(ctx, grad):
            time.sleep(EVAL_SECONDS)
            return grad

    def slow(self, t, y):
        time.sleep(EVAL_SECONDS)
        return _Slow.apply(real(self, t, y))

    monkeypatch.setattr(stack_module._StackedAugmented, "__call__", slow)
    configs = [c.replace(adam_iters=3, solver={"step_size": c.solver.step_size / 2.5}) for c in variants(BASE_2D)[:3]]
    scheduler = Scheduler()
    jobs = [TrainingJob(c, slots=scheduler, compute_final_metrics=False) for c in configs]
    for job in jobs:
        job.start()
    deadline = time.monotonic() + 60
    while scheduler.stack_sizes() != [3]:
        assert time.monotonic() < deadline, "the three runs never formed one stack"
        time.sleep(0.01)
    time.sleep(0.5)  # inside the first round (about 40 slowed evaluations each way)
    stopped_at = time.perf_counter()
    jobs[1].stop(evaluate=False)
    jobs[1].join(5)
    took = time.perf_counter() - stopped_at
    assert not jobs[1].alive, f"the stop had not landed after {took:.2f} s"
    snap = jobs[1].snapshot()
    assert snap.state == "stopped" and snap.reason == "stopped by the user"
    # A round lasts seconds: a stop that waited for the round's end would have counted its iteration.
    # (Its latency in seconds is measured by benchmarks/bench_stop.py, not asserted on a shared machine.)
    assert snap.iteration == 0, "the stop waited for the end of the round"
    for i in (0, 2):
        assert jobs[i].join(120).snapshot().state == "done"
        monkeypatch.setattr(stack_module._StackedAugmented, "__call__", real)
        assert_same_weights(weights(jobs[i].trainer), weights(alone(configs[i])[0]))


# ---------------------------------------------------------------------------------------------- scheduler
def test_thirty_runs_start_at_once_train_in_one_stack_and_each_gets_its_plots():
    scheduler = Scheduler()
    tiny = BASE_2D.replace(model={"hidden": (8,)}, adam_iters=6, batch_size=32)
    jobs = [TrainingJob(tiny.replace(seed=s), slots=scheduler, compute_final_metrics=False) for s in range(30)]
    for job in jobs:
        job.start()
    assert all(job.snapshot().queue_position in (None, 0) for job in jobs), "nobody waits in a queue"
    for job in jobs:
        job.join(120)
    snaps = [job.snapshot() for job in jobs]
    assert all(s.state == "done" and s.iteration == 6 for s in snaps)
    assert all(s.visuals is not None for s in snaps), "each run has its own final plots"
    stats = scheduler.stats()
    assert stats["run_iterations"] == 30 * 6 and stats["largest_round"] >= 10
    assert scheduler.running == 0 and scheduler.stack_sizes() == []


def test_runs_that_cannot_stack_train_alone_beside_a_stack_and_the_cap_still_admits():
    scheduler = Scheduler(capacity=3)
    adaptive = BASE_2D.replace(solver={"method": "dopri5", "rtol": 1e-3, "atol": 1e-3}, adam_iters=4)
    configs = [BASE_2D, BASE_2D.replace(seed=1), adaptive, BASE_2D.replace(seed=2)]
    jobs = [TrainingJob(c, slots=scheduler, compute_final_metrics=False) for c in configs]
    for job in jobs:
        job.start()
    deadline = time.monotonic() + 30
    while jobs[3].snapshot().queue_position != 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert jobs[3].snapshot().state == "queued", "beyond the admission cap a run waits"
    for job in jobs:
        assert job.join(120).snapshot().state == "done"
    assert_same_weights(weights(jobs[2].trainer), weights(alone(adaptive)[0]))
    assert_same_weights(weights(jobs[3].trainer), weights(alone(configs[3])[0]))


def test_live_plots_in_a_stack_go_one_at_a_time_oldest_first_within_their_share():
    from cnfviz.runtime.stack import StackGroup

    group = StackGroup(("shape",))
    a, b = Trainer(BASE_1D), Trainer(BASE_1D.replace(seed=1))
    group.add(a)
    group.add(b)
    try:
        assert group.visual_turn(a, first=True)
        assert not group.visual_turn(b, first=True), "one member's plots at a time"
        group.visual_done(a, 0.0)
        assert not group.visual_turn(a, first=False), "b has never refreshed: b goes first"
        assert group.visual_turn(b, first=True)
        group.visual_done(b, 10.0)  # ten seconds of plotting, far beyond the share of the time so far
        assert not group.visual_turn(a, first=False), "over the stack's plotting share"
        with group.away(b):
            assert group.size == 2
    finally:
        group.remove(a)
        assert group.remove(b) and group.closed
        group.join(5)


# ---------------------------------------------------------------------------------------------- flow matching
FM_CASES = {
    "flow-matching": BASE_2D.replace(objective="flow-matching"),
    "ot-flow-matching": BASE_2D.replace(objective="ot-flow-matching", model={"time": "concat", "linear": False}),
}


@pytest.fixture
def fm_stacks(monkeypatch):
    """Flow-matching runs stack on a GPU; these tests check the same engine on this CPU."""
    monkeypatch.setattr(stack_module, "FLOW_MATCHING_STACKS_ON_CPU", True)


def test_flow_matching_runs_train_alone_on_a_cpu_by_default():
    # Measured slower stacked than alone on a CPU (benchmarks/README.md), so they do not stack here.
    assert not stack_module.FLOW_MATCHING_STACKS_ON_CPU
    assert stack_key(Trainer(FM_CASES["flow-matching"])) is None
    assert stack_key(Trainer(BASE_2D)) is not None


@pytest.mark.usefixtures("fm_stacks")
def test_flow_matching_runs_share_a_key_by_network_shape_alone_and_never_with_likelihood_runs():
    base = FM_CASES["flow-matching"]
    keys = [stack_key(Trainer(c)) for c in variants(base)]
    assert None not in keys and len(set(keys)) == 1
    # No solve in training: the solver and trace settings do not split a flow-matching stack.
    for what, config in {
        "adaptive solver": base.replace(solver={"method": "dopri5"}),
        "trace": base.replace(model={"trace": "hutchinson-gaussian"}),
        "steps": base.replace(solver={"step_size": 0.5}),
    }.items():
        assert stack_key(Trainer(config)) == keys[0], what
    for what, config in {
        "likelihood": base.replace(objective="likelihood"),
        "ot coupling": base.replace(objective="ot-flow-matching"),
        "width": base.replace(model={"hidden": (16, 8)}),
        "batch": base.replace(batch_size=32),
        "time conditioning": base.replace(model={"time": "concat"}),
        "linear term": base.replace(model={"linear": False}),
    }.items():
        key = stack_key(Trainer(config))
        assert key is not None and key != keys[0], what


@pytest.mark.usefixtures("fm_stacks")
@pytest.mark.parametrize("case", FM_CASES)
def test_one_batched_flow_matching_evaluation_gives_each_run_its_solo_loss_and_gradient(case):
    trainers = [Trainer(c) for c in variants(FM_CASES[case])]
    xs = [tr._to_tensor(tr.target.sample(64, seed=i)) for i, tr in enumerate(trainers)]
    coupling = stack_module.OBJECTIVES[FM_CASES[case].objective].coupling
    draws, solo_losses, solo_grads = [], [], []
    for tr, x in zip(trainers, xs, strict=True):
        state = tr._noise.get_state()
        draws.append(stack_module.draw_flow_matching(x, tr.model.tspan, coupling=coupling, generator=tr._noise))
        after_draw = tr._noise.get_state()
        tr._noise.set_state(state)
        loss, parts = tr._loss(x, tr._noise)
        assert torch.equal(tr._noise.get_state(), after_draw), "solo and stacked consume the generator alike"
        solo_losses.append(float(loss.detach()))
        solo_grads.append(torch.autograd.grad(loss, list(tr.model.parameters())))
    out = stack_module.stacked_flow_matching_losses(trainers, draws)
    torch.stack([loss for loss, _ in out]).sum().backward()
    for tr, (loss, parts), want, grads in zip(trainers, out, solo_losses, solo_grads, strict=True):
        assert float(loss.detach()) == pytest.approx(want, abs=1e-6) and want > 0
        assert parts["kinetic"] is None and parts["nll"] != parts["nll"]  # NaN: no likelihood in training
        for p, g in zip(tr.model.parameters(), grads, strict=True):
            torch.testing.assert_close(p.grad, g, atol=1e-6, rtol=1e-5)


@pytest.mark.usefixtures("fm_stacks")
@pytest.mark.parametrize("case", FM_CASES)
def test_a_stacked_flow_matching_run_trains_to_the_weights_it_reaches_alone(case):
    """Seeds, learning rates and time spans differ; one run leaves half-way and one joins late."""
    configs = [c.replace(adam_iters=30) for c in variants(FM_CASES[case])]
    configs[3] = configs[3].replace(adam_iters=15)
    late = threading.Event()

    def first_callback(rec) -> None:
        if rec.iteration == 8:
            late.set()

    scheduler = Scheduler()
    trainers = stacked(configs, scheduler, cb0=first_callback)
    results = in_threads(trainers, starts={2: late})
    assert scheduler.stats()["largest_round"] >= 2, "the runs trained in one stack"
    assert scheduler.stack_sizes() == []
    for config, trainer, result in zip(configs, trainers, results, strict=True):
        solo, solo_result = alone(config)
        assert result.status == solo_result.status == "done" and result.iterations == config.adam_iters
        assert_same_weights(weights(trainer), weights(solo))
        losses = [r.loss for r in result.history]
        assert losses == pytest.approx([r.loss for r in solo_result.history], abs=ATOL)
        start = weights(Trainer(config))
        assert any((start[k] - v).abs().max() > 1e-3 for k, v in weights(trainer).items()), "it trained"
        assert [r.nfe_forward for r in result.history] == [r.nfe_forward for r in solo_result.history]


@pytest.mark.usefixtures("fm_stacks")
def test_runs_of_mixed_objectives_split_into_one_stack_per_objective():
    configs = [
        BASE_2D.replace(adam_iters=8),
        BASE_2D.replace(adam_iters=8, seed=1),
        BASE_2D.replace(adam_iters=8, objective="flow-matching"),
        BASE_2D.replace(adam_iters=8, objective="flow-matching", seed=1),
        BASE_2D.replace(adam_iters=8, objective="ot-flow-matching"),
        BASE_2D.replace(adam_iters=8, objective="ot-flow-matching", seed=1),
    ]
    scheduler = Scheduler()
    trainers = stacked(configs, scheduler)
    seen: list[list[int]] = []
    for tr in trainers:
        original = tr._adam_end

        def spy(*args, _original=original) -> None:
            seen.append(sorted(scheduler.stack_sizes()))
            _original(*args)

        tr._adam_end = spy
    results = in_threads(trainers)
    assert len({stack_key(tr) for tr in trainers}) == 3
    assert max(len(s) for s in seen) == 3, "three stacks at once, one per objective"
    assert max(max(s) for s in seen if s) == 2, "no stack ever held runs of two objectives"
    for config, trainer, result in zip(configs, trainers, results, strict=True):
        solo, solo_result = alone(config)
        assert result.status == "done"
        assert_same_weights(weights(trainer), weights(solo))
        assert [r.loss for r in result.history] == pytest.approx([r.loss for r in solo_result.history], abs=ATOL)


# ---------------------------------------------------------------------------------------------- every choice
# Every choice of every registry that the stack key reads, each varied from one small base run: a choice the
# key lets stack must give each member its solo loss, gradient and weights (to ATOL), and one it does not
# must train alone. A new solver, time conditioning, activation, trace estimator or objective lands here by
# itself, and fails until the stack reproduces it exactly or its key says it trains alone.
SMALL = BASE_2D.replace(model={"hidden": (8, 8)}, adam_iters=6, batch_size=32)


def _choice_cases() -> dict[str, TrainConfig]:
    cases: dict[str, TrainConfig] = {}
    for method in SOLVERS:
        cases[f"method={method}"] = SMALL.replace(solver={"method": method})
    for time_ in TIME_CONDITIONING:
        cases[f"time={time_}"] = SMALL.replace(model={"time": time_})
        # With the Hutchinson trace and the regularizers too: the tangent path of each time conditioning.
        cases[f"time={time_},hutchinson,regularized"] = SMALL.replace(
            model={"time": time_, "trace": "hutchinson-gaussian"}, lambda_kinetic=0.1, lambda_jacobian=0.05
        )
    for activation in ACTIVATIONS:
        cases[f"activation={activation}"] = SMALL.replace(model={"activation": activation, "final_activation": True})
    for trace in TRACE_ESTIMATORS:
        cases[f"trace={trace}"] = SMALL.replace(model={"trace": trace})
    for method in STACK_METHODS:
        cases[f"method={method},no-linear,1d"] = BASE_1D.replace(
            model={"linear": False, "time": "concat"}, solver={"method": method}, adam_iters=6
        )
    cases["regularized"] = SMALL.replace(lambda_kinetic=0.2, lambda_jacobian=0.1)
    for objective in OBJECTIVES:
        for time_ in TIME_CONDITIONING:
            try:
                config = SMALL.replace(objective=objective, model={"time": time_})
                check_objective(config)
            except ConfigError:
                continue  # e.g. flow matching without a time input: refused before it could stack
            cases[f"objective={objective},time={time_}"] = config
    return cases


STACK_METHODS = tuple(stack_module.STACKABLE_METHODS)
CHOICES = _choice_cases()


def _key_or_none(config: TrainConfig):
    """The run's key as a stacking device sees it (flow matching stacks on a GPU; these tests check it here)."""
    saved = stack_module.FLOW_MATCHING_STACKS_ON_CPU
    stack_module.FLOW_MATCHING_STACKS_ON_CPU = True
    try:
        return stack_key(Trainer(config))
    finally:
        stack_module.FLOW_MATCHING_STACKS_ON_CPU = saved


def test_every_registry_choice_has_a_case_and_what_stacks_is_exactly_what_the_key_allows():
    keyed = {name: _key_or_none(c) for name, c in CHOICES.items()}
    for method in SOLVERS:
        assert (keyed[f"method={method}"] is not None) == (method in STACK_METHODS), method
    for trace in TRACE_ESTIMATORS:
        assert (keyed[f"trace={trace}"] is not None) == (trace in stack_module.STACKABLE_TRACES), trace
    for time_ in TIME_CONDITIONING:
        assert keyed[f"time={time_}"] is not None, f"{time_} stacks (and is proven below)"
    for activation in ACTIVATIONS:
        assert keyed[f"activation={activation}"] is not None, activation
    assert {c.objective for c in CHOICES.values()} == set(OBJECTIVES)
    assert set(stack_module.STACKABLE_OBJECTIVES) == set(OBJECTIVES)
    # A choice the stacked maths does not know trains alone, whatever the registries grow to hold.
    assert stack_module.plan_stack_key(SMALL.replace(model={"trace": "exact-autograd"}), dim=2, device="cpu") is None
    assert (
        stack_module.plan_stack_key(SMALL.replace(solver={"method": "heun3", "step_size": 0.125}), dim=2, device="cpu")
        is None
    )


STACKED_CHOICES = [name for name, c in CHOICES.items() if _key_or_none(c) is not None]


def _one_solve_parity(configs: list[TrainConfig]) -> None:
    """Each member's loss and gradient from one stacked solve (or evaluation) equal its solo ones."""
    trainers = [Trainer(c) for c in configs]
    xs = [tr._to_tensor(tr.target.sample(32, seed=i)) for i, tr in enumerate(trainers)]
    coupling = OBJECTIVES[configs[0].objective].coupling
    est = TRACE_ESTIMATORS[configs[0].model.trace]
    draws, noises, solo_losses, solo_grads = [], [], [], []
    for tr, x in zip(trainers, xs, strict=True):
        state = tr.noise_generator.get_state()
        if coupling is not None:
            draws.append(stack_module.draw_flow_matching(x, tr.model.tspan, coupling=coupling, generator=tr._noise))
        else:
            noises.append(draw_noise(est.noise, x, tr._noise) if est.noise else None)
        tr.noise_generator.set_state(state)  # the solo iteration draws the same
        loss, _ = tr._loss(x, tr._noise)
        solo_losses.append(float(loss.detach()))
        solo_grads.append(torch.autograd.grad(loss, list(tr.model.parameters())))
    if coupling is not None:
        out = stack_module.stacked_flow_matching_losses(trainers, draws)
    else:
        out = stacked_losses(trainers, xs, noises)
    torch.stack([loss for loss, _ in out]).sum().backward()
    for tr, (loss, parts), want, grads in zip(trainers, out, solo_losses, solo_grads, strict=True):
        assert float(loss.detach()) == pytest.approx(want, abs=ATOL) and math.isfinite(want)
        assert (parts["kinetic"] is None) == (not tr.config.regularized)
        for (name, p), g in zip(tr.model.named_parameters(), grads, strict=True):
            assert p.grad is not None and p.grad.shape == p.shape, name
            torch.testing.assert_close(p.grad, g, atol=ATOL, rtol=1e-4, msg=f"{name}: stacked gradient differs")


@pytest.mark.usefixtures("fm_stacks")
@pytest.mark.parametrize("case", STACKED_CHOICES)
def test_every_choice_that_stacks_gives_each_member_its_solo_loss_gradient_and_weights(case):
    """One stacked solve, then training: three runs start together, one leaves half-way, one joins late."""
    base = CHOICES[case]
    configs = variants(base)
    assert len({stack_key(Trainer(c)) for c in configs}) == 1, "the variants share one stack"
    _one_solve_parity(configs)

    late = threading.Event()

    def first_callback(rec) -> None:
        if rec.iteration == 2:
            late.set()

    scheduler = Scheduler()
    trainers = stacked(configs, scheduler, cb0=first_callback)
    results = in_threads(trainers, starts={2: late})
    assert scheduler.stats()["largest_round"] >= 2, "the runs trained in one stack"
    assert scheduler.stack_sizes() == [], "every run left its stack"
    for config, trainer, result in zip(configs, trainers, results, strict=True):
        solo, solo_result = alone(config)
        assert result.status == solo_result.status == "done" and result.iterations == config.adam_iters
        assert_same_weights(weights(trainer), weights(solo))
        assert [r.loss for r in result.history] == pytest.approx([r.loss for r in solo_result.history], abs=ATOL)
        assert [r.nfe_forward for r in result.history] == [r.nfe_forward for r in solo_result.history]
