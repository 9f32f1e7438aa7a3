"""Training objectives: the flow-matching loss and its gradient against hand-computed ones, the OT pairing,
flow matching training the same network to a normalized density, and the clear refusals of what cannot work."""

from __future__ import annotations

import itertools
import math
import threading
import time

import pytest
import torch

from cnfviz import ConfigError, TrainConfig, Trainer, default_config
from cnfviz.flow.dynamics import ODENet
from cnfviz.flow.solver import SolverInterrupted
from cnfviz.training import objectives
from cnfviz.training.metrics import grid_metrics, sampling_nfe
from cnfviz.training.metrics import test_nll as held_out_nll
from cnfviz.training.objectives import (
    OBJECTIVES,
    OT_MAX_POINTS,
    flow_matching_loss,
    objective_notes,
    ot_pairing,
    ot_pairing_seconds,
    straight_path,
)

FM = ("flow-matching", "ot-flow-matching")


def _affine_net(d: int, seed: int = 0) -> ODENet:
    """f(t, z) = W z + b + t c: an affine field with a concat time input, whose loss gradient is linear algebra."""
    return ODENet(d, (), time="concat", generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------------------------------
# The loss and its gradient
# --------------------------------------------------------------------------------------------------


def test_straight_path_runs_from_noise_at_t0_to_data_at_t1_with_its_own_velocity():
    x0, x1 = torch.randn(5, 2, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    tspan = (-1.0, 3.0)
    at0, u = straight_path(x0, x1, torch.full((5, 1), -1.0, dtype=torch.float64), tspan)
    at1, _ = straight_path(x0, x1, torch.full((5, 1), 3.0, dtype=torch.float64), tspan)
    torch.testing.assert_close(at0, x0)
    torch.testing.assert_close(at1, x1)
    t = torch.rand(5, 1, dtype=torch.float64) * 4 - 1
    h = 1e-6
    ahead, _ = straight_path(x0, x1, t + h, tspan)
    behind, _ = straight_path(x0, x1, t - h, tspan)
    torch.testing.assert_close((ahead - behind) / (2 * h), u)
    torch.testing.assert_close(u, (x1 - x0) / 4)


@pytest.mark.parametrize("tspan", [(0.0, 1.0), (-1.0, 2.0), (0.0, -0.5)])
def test_flow_matching_loss_and_gradient_match_the_hand_computed_ones(tspan):
    torch.manual_seed(0)
    net = _affine_net(2).double()
    x1 = torch.randn(64, 2, dtype=torch.float64) * 2 + 1
    loss = flow_matching_loss(net, x1, tspan, generator=torch.Generator().manual_seed(3))
    loss.backward()
    # The same draws, in the same order: the noise x0, then t uniform on the span.
    gen = torch.Generator().manual_seed(3)
    x0 = torch.randn(x1.shape, generator=gen, dtype=torch.float64)
    t0, t1 = tspan
    t = t0 + (t1 - t0) * torch.rand((64, 1), generator=gen, dtype=torch.float64)
    s = (t - t0) / (t1 - t0)
    xt = (1 - s) * x0 + s * x1
    u = (x1 - x0) / (t1 - t0)
    layer = net.layers[0]
    w, b, c = layer.weight.detach(), layer.bias.detach(), layer.time_weight.detach()
    r = xt @ w.T + b + t * c - u  # residual, (N, d)
    n = len(x1)
    assert float(loss.detach()) == pytest.approx(float((r**2).sum() / n), rel=1e-12)
    torch.testing.assert_close(layer.weight.grad, 2 / n * r.T @ xt)
    torch.testing.assert_close(layer.bias.grad, 2 / n * r.sum(0))
    torch.testing.assert_close(layer.time_weight.grad, 2 / n * (r * t).sum(0))


def test_the_expected_loss_of_two_fields_for_a_point_mass():
    """Data all at one point m, x0 ~ N(0, I): the zero field's loss is E‖m − x0‖² = ‖m‖² + 2 = 7, and the
    field m − z leaves the residual −t(m − x0), whose loss is E[t²]·7 = 7/3."""
    m = torch.tensor([[2.0, -1.0]], dtype=torch.float64)
    x1 = m.expand(4096, 2)
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731 - the same draws for each field
    good, bad = _affine_net(2).double(), _affine_net(2).double()
    with torch.no_grad():
        for net in (good, bad):
            for p in net.parameters():
                p.zero_()
        good.layers[0].weight.copy_(-torch.eye(2, dtype=torch.float64))
        good.layers[0].bias.copy_(m[0])
    with torch.no_grad():
        assert float(flow_matching_loss(bad, x1, (0.0, 1.0), generator=gen())) == pytest.approx(7.0, rel=0.05)
        assert float(flow_matching_loss(good, x1, (0.0, 1.0), generator=gen())) == pytest.approx(7 / 3, rel=0.05)


# --------------------------------------------------------------------------------------------------
# OT pairing
# --------------------------------------------------------------------------------------------------


def _cost(x0: torch.Tensor, x1: torch.Tensor) -> float:
    return float((x0 - x1).pow(2).sum())


@pytest.mark.parametrize("n", [1, 7, 256])
def test_ot_pairing_is_a_permutation_that_lowers_the_paired_cost(n):
    gen = torch.Generator().manual_seed(n)
    x0 = torch.randn(n, 2, generator=gen)
    x1 = torch.randn(n, 2, generator=gen) * 3 + 2
    perm = ot_pairing(x0, x1)
    assert sorted(perm.tolist()) == list(range(n)), "every data point used exactly once"
    assert _cost(x0, x1[perm]) <= _cost(x0, x1) + 1e-4
    if n > 1:
        assert _cost(x0, x1[perm]) < _cost(x0, x1)


def test_ot_pairing_is_the_brute_force_optimum_on_a_small_batch():
    gen = torch.Generator().manual_seed(5)
    x0, x1 = torch.randn(6, 2, generator=gen), torch.randn(6, 2, generator=gen)
    best = min(_cost(x0, x1[list(p)]) for p in itertools.permutations(range(6)))
    assert _cost(x0, x1[ot_pairing(x0, x1)]) == pytest.approx(best, rel=1e-6)


def test_large_batches_are_paired_in_chunks_and_stay_a_permutation():
    gen = torch.Generator().manual_seed(1)
    x0, x1 = torch.randn(50, 2, generator=gen), torch.randn(50, 2, generator=gen)
    perm = ot_pairing(x0, x1, max_points=16)
    assert sorted(perm.tolist()) == list(range(50))
    assert _cost(x0, x1[perm]) < _cost(x0, x1)
    # Within each chunk the plan is optimal: no better than the global plan, which needs no chunks.
    assert _cost(x0, x1[perm]) >= _cost(x0, x1[ot_pairing(x0, x1)]) - 1e-4


def _counting_assignments(monkeypatch) -> list[int]:
    """Count the chunks the OT pairing solves (each is one call of scipy's assignment)."""
    calls: list[int] = []
    real = objectives.linear_sum_assignment

    def counted(cost):
        calls.append(len(cost))
        return real(cost)

    monkeypatch.setattr(objectives, "linear_sum_assignment", counted)
    return calls


@pytest.mark.parametrize("stop_after", [0, 1, 5])
def test_a_stop_request_ends_the_pairing_before_its_next_chunk(stop_after, monkeypatch):
    calls = _counting_assignments(monkeypatch)
    gen = torch.Generator().manual_seed(3)
    x0, x1 = torch.randn(40 * 16, 2, generator=gen), torch.randn(40 * 16, 2, generator=gen)
    with pytest.raises(SolverInterrupted, match="OT pairing"):
        ot_pairing(x0, x1, max_points=16, should_stop=lambda: len(calls) >= stop_after)
    assert len(calls) == stop_after, "no chunk is solved once the stop is asked"
    calls.clear()
    assert sorted(ot_pairing(x0, x1, max_points=16, should_stop=lambda: False).tolist()) == list(range(640))
    assert len(calls) == 40


def test_stop_lands_inside_a_several_second_ot_pairing_and_keeps_the_model(monkeypatch):
    # 16,384 points: 64 chunks of 256, seconds of pairing per iteration on a CPU core (a server refuses it).
    batch = 64 * OT_MAX_POINTS
    assert ot_pairing_seconds(batch) > 5
    config = default_config("moons", objective="ot-flow-matching", batch_size=batch, adam_iters=50, eval_every=0)
    trainer = Trainer(config.replace(n_test=100))
    start = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    calls: list[int] = []
    inside = threading.Event()
    real = objectives.linear_sum_assignment

    def counted(cost):
        calls.append(len(cost))
        if len(calls) == 3:  # the third chunk of the first pairing is being solved
            inside.set()
        return real(cost)

    monkeypatch.setattr(objectives, "linear_sum_assignment", counted)
    results = []
    thread = threading.Thread(target=lambda: results.append(trainer.run(final_metrics=False)), daemon=True)
    thread.start()
    assert inside.wait(60)
    at_stop = len(calls)
    asked = time.monotonic()
    trainer.stop()
    thread.join(30)
    took = time.monotonic() - asked
    assert not thread.is_alive()
    (result,) = results
    assert result.status == "stopped" and result.reason == "stopped by the user" and result.iterations == 0
    assert len(calls) - at_stop <= 1, f"{len(calls) - at_stop} chunks solved after the stop"
    assert len(calls) <= 4 and all(n == OT_MAX_POINTS for n in calls), "the pairing did not run on"
    assert took < 1.0, f"Stop took {took:.2f} s"  # generous: one 256-point chunk is some 15-90 ms
    for name, value in trainer.model.state_dict().items():
        assert torch.equal(value, start[name]), f"{name} moved: the interrupted iteration must not step"


def test_ot_coupling_reorders_the_data_before_the_path():
    x1 = torch.randn(32, 2, generator=torch.Generator().manual_seed(2))
    net = _affine_net(2)
    a = flow_matching_loss(net, x1, (0.0, 1.0), coupling="ot", generator=torch.Generator().manual_seed(0))
    b = flow_matching_loss(net, x1, (0.0, 1.0), coupling="independent", generator=torch.Generator().manual_seed(0))
    assert math.isfinite(float(a.detach())) and float(a.detach()) != float(b.detach())
    with pytest.raises(ConfigError, match="coupling"):
        flow_matching_loss(net, x1, (0.0, 1.0), coupling="sinkhorn")


# --------------------------------------------------------------------------------------------------
# Training the same network by flow matching
# --------------------------------------------------------------------------------------------------


def test_a_flow_matching_trained_1d_density_integrates_to_one():
    cfg = default_config("mixture", objective="flow-matching", adam_iters=300, eval_every=0, seed=1)
    trainer = Trainer(cfg)
    result = trainer.run(final_metrics=False)
    assert result.status == "done", result.reason
    grid = grid_metrics(trainer.model, trainer.target, 2000)
    assert grid["integral"] == pytest.approx(1.0, abs=5e-3)


@pytest.mark.parametrize("objective", FM)
def test_flow_matching_lowers_the_test_nll_on_a_2d_target(objective):
    cfg = default_config("8gaussians", objective=objective, adam_iters=400, eval_every=200, seed=0)
    trainer = Trainer(cfg)
    before = held_out_nll(trainer.model, trainer.test_data[:1000])
    result = trainer.run(final_metrics=False)
    assert result.status == "done", result.reason
    tests = [r.test_nll for r in result.history if r.test_nll is not None]
    assert len(tests) == 2
    assert tests[-1] < before - 0.1, (before, tests)


def test_flow_matching_records_say_what_was_computed():
    cfg = default_config("8gaussians", objective="flow-matching", adam_iters=20, eval_every=10)
    result = Trainer(cfg).run()
    recs = result.history
    assert all(math.isnan(r.nll) and math.isfinite(r.loss) and r.loss > 0 for r in recs), "no training NLL"
    assert [r.nfe_iter for r in recs] == [1] * 20, "one evaluation of the field, no solve"
    assert recs[-1].nfe_forward == 20 and recs[-1].nfe_backward == 0
    assert [r.iteration for r in recs if r.test_nll is not None] == [10, 20]
    assert result.metrics is not None and result.metrics.sample_nfe > 0
    assert math.isfinite(result.metrics.test_nll)


def test_likelihood_training_is_unchanged_by_the_objective_field():
    a = Trainer(default_config("normal", adam_iters=5, eval_every=0)).run(final_metrics=False)
    b = Trainer(default_config("normal", adam_iters=5, eval_every=0, objective="likelihood")).run(final_metrics=False)
    assert [r.loss for r in a.history] == [r.loss for r in b.history]
    assert all(math.isfinite(r.nll) and r.nll == r.loss for r in a.history)


def test_sampling_nfe_counts_the_adaptive_solve():
    trainer = Trainer(default_config("moons", adam_iters=1, eval_every=0))
    nfe = sampling_nfe(trainer.model, 500)
    assert nfe >= 8, "dopri5: two evaluations to pick the first step, six per step"
    assert sampling_nfe(trainer.model, 500) == nfe, "the same draws, the same solve"


# --------------------------------------------------------------------------------------------------
# What cannot work says so
# --------------------------------------------------------------------------------------------------


def test_the_objective_registry_and_a_bad_name():
    assert list(OBJECTIVES) == ["likelihood", "flow-matching", "ot-flow-matching"]
    assert TrainConfig().objective == "likelihood"
    with pytest.raises(ConfigError, match=r"objective: invalid value \"mle\". Must be one of \['likelihood'"):
        TrainConfig(objective="mle")


@pytest.mark.parametrize("objective", FM)
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model": {"time": "none"}}, r'model.time "none" cannot be trained with objective'),
        ({"lbfgs_iters": 10}, r"lbfgs_iters must be 0 with objective .* deterministic loss"),
        ({"lambda_kinetic": 0.1}, r"lambda_kinetic \(λ₁\) must be 0 with objective"),
        ({"lambda_jacobian": 0.1}, r"lambda_jacobian \(λ₂\) must be 0 with objective"),
    ],
)
def test_bad_combinations_are_refused_with_a_clear_message(objective, changes, message):
    base = default_config("moons")
    base.replace(**changes)  # fine by likelihood
    with pytest.raises(ConfigError, match=message):
        base.replace(objective=objective, **changes)


def test_the_seed_tutorial_network_cannot_flow_match():
    from cnfviz.training.presets import SEED_CONFIG

    with pytest.raises(ConfigError, match=r"model\.time"):
        SEED_CONFIG.replace(objective="flow-matching", lbfgs_iters=0)


def test_risky_settings_get_a_note():
    bounded = default_config("moons", objective="flow-matching", model={"final_activation": True})
    assert any("output activation bounds the field" in n for n in objective_notes(bounded))
    big = default_config("moons", objective="ot-flow-matching", batch_size=4 * OT_MAX_POINTS)
    (note,) = objective_notes(big)
    assert f"chunks of at most {OT_MAX_POINTS:,} points" in note
    assert Trainer(big.replace(adam_iters=1, eval_every=0)).notes == [note]
    assert objective_notes(default_config("moons")) == []


def test_old_configs_without_an_objective_load_as_likelihood():
    d = default_config("moons").to_dict()
    del d["objective"]
    assert TrainConfig.from_dict(d).objective == "likelihood"
    fm = default_config("moons", objective="ot-flow-matching")
    assert TrainConfig.from_json(fm.to_json()) == fm


def test_ot_pairing_rejects_mismatched_batches():
    with pytest.raises(ConfigError, match="ot_pairing needs two"):
        ot_pairing(torch.zeros(3, 2), torch.zeros(4, 2))
