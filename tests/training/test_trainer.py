"""The trainer: the seed recipe works, runs are reproducible, controls and failures behave."""

import threading
import time

import numpy as np
import pytest
import torch

import cnfviz.training.trainer as training_module
from cnfviz import ConfigError, ModelConfig, SolverConfig, TrainConfig, Trainer, train
from cnfviz.targets import SamplesTarget
from cnfviz.training.presets import SEED_CONFIG

TINY = TrainConfig(
    target="normal",
    target_params={"loc": 1.0, "scale": 0.5},
    model=ModelConfig(hidden=(8,), tspan=(0.0, 1.0)),
    solver=SolverConfig("rk4", step_size=0.25),
    adam_iters=20,
    lr=1e-2,
    batch_size=64,
    eval_every=0,
)


def test_seed_preset_reaches_the_tutorials_total_variation():
    _, result = train(SEED_CONFIG)
    assert result.status == "done"
    assert [r.stage for r in result.history][:20] == ["adam"] * 20
    assert any(r.stage == "lbfgs" for r in result.history)
    assert result.metrics.seed_tv <= 0.0314  # the DiffEqFlux tutorial's own figure
    assert abs(result.metrics.integral - 1) < 0.01


def test_lbfgs_keeps_improving_after_adam():
    _, result = train(SEED_CONFIG.replace(seed=3))
    adam = [r.loss for r in result.history if r.stage == "adam"]
    lbfgs = [r.loss for r in result.history if r.stage == "lbfgs"]
    assert len(lbfgs) > 5
    # A stalled LBFGS (zero steps from a fresh line search each call) would leave the loss flat.
    assert min(lbfgs) < adam[-1] - 0.05


def test_same_seed_same_run_and_other_seed_differs():
    a = train(TINY)
    b = train(TINY)
    c = train(TINY.replace(seed=1))
    assert [r.loss for r in a[1].history] == [r.loss for r in b[1].history]
    for pa, pb in zip(a[0].parameters(), b[0].parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert [r.loss for r in a[1].history] != [r.loss for r in c[1].history]


def test_hutchinson_runs_are_reproducible_too():
    cfg = TINY.replace(model={"trace": "hutchinson-rademacher"}, lbfgs_iters=5)
    assert [r.loss for r in train(cfg)[1].history] == [r.loss for r in train(cfg)[1].history]


def test_minibatches_from_a_fixed_training_set_and_full_batch():
    for batch in (10, None):
        trainer = Trainer(TINY.replace(n_train=50, batch_size=batch, adam_iters=6))
        result = trainer.run(final_metrics=False)
        assert result.status == "done" and result.iterations == 6
        assert trainer.train_data.shape == (50, 1)


def test_regularizers_enter_the_loss():
    _, result = train(TINY.replace(lambda_kinetic=1.0, lambda_jacobian=1.0, adam_iters=3))
    rec = result.history[-1]
    assert rec.kinetic > 0 and rec.jacobian > 0
    assert rec.loss == pytest.approx(rec.nll + rec.kinetic + rec.jacobian, rel=1e-5)


def test_a_nan_stops_cleanly_and_keeps_the_last_good_model(monkeypatch):
    real = Trainer._loss
    calls = {"n": 0}
    snapshots = []

    def flaky(self, x, generator=None):
        calls["n"] += 1
        loss, parts = real(self, x, generator)
        if calls["n"] == 6:
            return loss * float("nan"), parts
        snapshots.append([p.detach().clone() for p in self.model.parameters()])
        return loss, parts

    monkeypatch.setattr(Trainer, "_loss", flaky)
    trainer = Trainer(TINY)
    result = trainer.run()
    assert result.status == "failed"
    assert "the loss became nan at iteration 6" in result.reason and "kept the last good model" in result.reason
    assert result.iterations == 5
    # The parameters are those that produced the last finite loss (iteration 5), not later ones.
    for p, good in zip(trainer.model.parameters(), snapshots[-1], strict=True):
        assert torch.equal(p, good)
    assert result.metrics is not None and np.isfinite(result.metrics.test_nll)


def test_a_stiff_solve_fails_with_a_reason_and_no_traceback():
    cfg = TINY.replace(solver=SolverConfig("dopri5", rtol=1e-12, atol=1e-12, max_steps=10))
    result = Trainer(cfg).run(final_metrics=False)
    assert result.status == "failed"
    assert "too stiff" in result.reason


def test_pause_step_resume_and_stop_from_another_thread():
    trainer = Trainer(TINY.replace(adam_iters=100_000))
    out = {}
    thread = threading.Thread(target=lambda: out.setdefault("result", trainer.run(final_metrics=False)))
    thread.start()
    while len(trainer.history) < 3:
        time.sleep(0.01)
    trainer.pause()
    time.sleep(0.2)
    frozen = len(trainer.history)
    time.sleep(0.3)
    assert len(trainer.history) == frozen  # paused: nothing moves
    trainer.step()
    deadline = time.time() + 10
    while len(trainer.history) == frozen and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    assert len(trainer.history) == frozen + 1  # exactly one iteration per step
    trainer.resume()
    time.sleep(0.3)
    assert len(trainer.history) > frozen + 1
    trainer.stop()
    thread.join(10)
    assert out["result"].status == "stopped" and out["result"].reason == "stopped by the user"


def test_time_budget_ends_the_run_as_done():
    result = Trainer(TINY.replace(adam_iters=1_000_000, max_seconds=0.5)).run(final_metrics=False)
    assert result.status == "done" and result.reason == "time budget reached"
    assert 0.5 <= result.train_seconds < 1.5


def test_fixed_step_guard_refines_the_step_when_it_disagrees_with_dopri5(monkeypatch):
    monkeypatch.setattr(training_module, "SOLVER_GAP_TOLERANCE", -1.0)  # every check "disagrees"
    trainer = Trainer(TINY.replace(adam_iters=4, eval_every=2))
    result = trainer.run(final_metrics=False)
    assert trainer.train_solver.step_size == pytest.approx(0.25 / 4)
    assert len(trainer.notes) == 2 and "step size halved" in trainer.notes[0]
    assert [r.test_nll is not None for r in result.history] == [False, True, False, True]


def test_custom_samples_target_trains_and_named_custom_targets_need_data():
    data = np.random.default_rng(0).normal(2.0, 0.3, size=(200, 1))
    _, result = train(TINY.replace(target="samples", adam_iters=3), target=SamplesTarget(data))
    assert result.status == "done" and result.metrics.density_kind == "estimate"
    with pytest.raises(ConfigError, match="pass target="):
        Trainer(TINY.replace(target="samples"))


def test_nfe_counts_training_solves_only(monkeypatch):
    monkeypatch.setattr(training_module, "SOLVER_GAP_TOLERANCE", float("inf"))  # keep the step fixed
    result = Trainer(TINY.replace(adam_iters=6, eval_every=2)).run()
    # RK4 with 4 steps: 16 evaluations per training solve; the test-NLL solves do not count.
    assert [r.nfe_iter for r in result.history] == [16] * 6
    assert [r.nfe_forward for r in result.history] == [16 * k for k in range(1, 7)]
    assert result.summary()["nfe_forward"] == 96


def test_history_can_be_left_to_the_callback():
    seen = []
    trainer = Trainer(TINY.replace(adam_iters=5), callback=seen.append, keep_history=False)
    result = trainer.run(final_metrics=False)
    assert trainer.history == [] and len(seen) == 5 and result.last is seen[-1]


# ---------------------------------------------------------------------------------------------- the loop's own costs
@pytest.mark.parametrize("clip", [None, 0.05, 1e6])
def test_the_gradient_norm_and_clip_are_torchs_to_the_bit(clip):
    from cnfviz.training.trainer import _grad_norm

    gen = torch.Generator().manual_seed(0)
    ours = [torch.nn.Parameter(torch.randn(s, generator=gen)) for s in [(8, 3), (8,), (2, 8)]]
    ref = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    for p, q in zip(ours, ref, strict=True):
        p.grad = torch.randn(p.shape, generator=gen)
        q.grad = p.grad.clone()
    norm = _grad_norm(ours, clip)
    want = float(torch.nn.utils.clip_grad_norm_(ref, clip if clip is not None else float("inf")))
    assert norm == want and norm > 0
    for p, q in zip(ours, ref, strict=True):
        assert torch.equal(p.grad, q.grad)
    if clip == 0.05:
        clipped = float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in ours])))
        assert clipped == pytest.approx(0.05, rel=1e-4), "clipped to the bound"


def test_the_fused_adam_step_is_torchs_plain_adam_step():
    """The trainer's Adam (one fused kernel on a CPU) makes the updates of torch's reference Adam."""
    from cnfviz.training.trainer import _adam

    gen = torch.Generator().manual_seed(1)
    ours = [torch.nn.Parameter(torch.randn(s, generator=gen)) for s in [(16, 2), (16,), (2, 16)]]
    ref = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    opt_a, opt_b = _adam(ours, 1e-2), torch.optim.Adam(ref, lr=1e-2, foreach=False)
    for _ in range(20):
        for p, q in zip(ours, ref, strict=True):
            p.grad = torch.randn(p.shape, generator=gen)
            q.grad = p.grad.clone()
        for group in (*opt_a.param_groups, *opt_b.param_groups):
            group["lr"] *= 0.9  # the cosine schedule sets it per iteration
        opt_a.step()
        opt_b.step()
    for p, q in zip(ours, ref, strict=True):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-6)
        assert not torch.equal(p, torch.zeros_like(p))


def test_the_last_good_weights_are_a_copy_taken_at_each_call_not_a_view():
    trainer = Trainer(TrainConfig(target="normal", adam_iters=2, eval_every=0))
    trainer._remember_good()
    first = {k: v.clone() for k, v in trainer._good_state.items()}
    with torch.no_grad():
        for p in trainer.model.parameters():
            p.add_(1.0)
    assert all(torch.equal(first[k], v) for k, v in trainer._good_state.items()), "a copy, not the live weights"
    trainer._remember_good()
    assert all(torch.equal(v, first[k] + 1.0) for k, v in trainer._good_state.items() if v.is_floating_point())
    trainer._restore_good()
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(v, trainer._good_state[k])


def test_a_time_budget_without_an_iteration_count_is_spent_by_the_clock():
    from cnfviz.training.presets import BUDGET_ITERS, budget_decides

    cfg = budget_decides(TrainConfig(target="normal", adam_iters=5, objective="flow-matching", max_seconds=0.5))
    assert cfg.adam_iters == BUDGET_ITERS
    result = Trainer(cfg.replace(eval_every=0)).run(final_metrics=False)
    assert result.reason == "time budget reached" and result.iterations > 5
    assert result.train_seconds == pytest.approx(0.5, abs=0.3)
    assert budget_decides(TrainConfig(target="normal", adam_iters=5)).adam_iters == 5, "no budget: unchanged"
    likelihood = TrainConfig(target="normal", adam_iters=5, max_seconds=0.5)
    assert budget_decides(likelihood) == likelihood, "a likelihood run keeps its iteration count"


def test_the_command_line_gives_a_flow_matching_budget_to_the_clock_unless_iterations_are_given():
    from cnfviz.cli import build_parser, config_from_args

    def cli(*tokens: str) -> TrainConfig:
        return config_from_args(build_parser().parse_args(["train", "--target", "moons", *tokens]))

    assert cli("--objective", "flow-matching", "--max-seconds", "5").adam_iters == 1_000_000
    assert cli("--objective", "flow-matching", "--max-seconds", "5", "--adam-iters", "300").adam_iters == 300
    assert cli("--objective", "flow-matching").adam_iters == 2000
    assert cli("--max-seconds", "5").adam_iters == 2000
