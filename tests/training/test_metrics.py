"""Metrics: the seed's TV formula, grid TV/KL/∫p against known answers."""

import numpy as np
import pytest
import scipy.stats
import torch

from cnfviz import FFJORD, ModelConfig, make_target
from cnfviz.training import metrics
from cnfviz.training.metrics import evaluate, grid_metrics, model_log_prob, seed_tv


def identity_flow(dim: int) -> FFJORD:
    """f ≡ 0, so the model density is exactly the base N(0, I)."""
    flow = FFJORD(dim, ModelConfig(hidden=(4,)))
    with torch.no_grad():
        for p in flow.parameters():
            p.zero_()
    return flow


def test_identity_flow_is_the_standard_normal():
    flow = identity_flow(2)
    x = np.random.default_rng(0).normal(size=(10, 2))
    np.testing.assert_allclose(
        model_log_prob(flow, x), scipy.stats.multivariate_normal(np.zeros(2)).logpdf(x), rtol=1e-5
    )


@pytest.mark.parametrize(("target", "params"), [("normal", {"loc": 0.0, "scale": 1.0}), ("gaussian2d", {})])
def test_grid_metrics_vanish_when_model_equals_target(target, params):
    t = make_target(target, params)
    m = grid_metrics(identity_flow(t.dim), t)
    assert m["tv"] < 2e-3 and abs(m["kl"]) < 2e-3 and abs(m["integral"] - 1) < 2e-3


def test_grid_tv_of_shifted_gaussians_matches_the_closed_form():
    # TV(N(0,1), N(μ,1)) = 2Φ(μ/2) − 1.
    t = make_target("normal", loc=1.0, scale=1.0)
    m = grid_metrics(identity_flow(1), t, resolution=4000)
    # The grid covers the target's ±4 sd window, which holds all but ~1e-4 of the base's mass here.
    assert m["tv"] == pytest.approx(2 * scipy.stats.norm.cdf(0.5) - 1, abs=2e-3)
    assert m["kl"] == pytest.approx(0.5, abs=5e-3)  # KL(N(1,1) ‖ N(0,1)) = μ²/2


def test_seed_tv_is_half_the_mean_absolute_density_gap():
    t = make_target("normal", loc=0.5, scale=0.8)
    data = t.sample(100, seed=0)
    flow = identity_flow(1)
    expected = 0.5 * np.mean(np.abs(scipy.stats.norm.pdf(data[:, 0]) - scipy.stats.norm(0.5, 0.8).pdf(data[:, 0])))
    assert seed_tv(flow, t, data) == pytest.approx(expected, rel=1e-5)


def test_test_nll_and_evaluate():
    t = make_target("normal", loc=0.0, scale=1.0)
    data = t.sample(20_000, seed=1)
    assert metrics.test_nll(identity_flow(1), data) == pytest.approx(0.5 * np.log(2 * np.pi * np.e), abs=0.02)
    m = evaluate(identity_flow(1), t, data[:100], data)
    assert m.density_kind == "exact" and m.tv < 2e-3 and m.seed_tv < 1e-5


def _slow_flow(dim: int, seconds: float) -> FFJORD:
    """The identity flow whose every evaluation of the dynamics sleeps ``seconds`` (a dear model)."""
    import time

    flow = identity_flow(dim)
    real = flow.net.forward

    def slow(t, z):
        time.sleep(seconds)
        return real(t, z)

    flow.net.forward = slow
    return flow


def test_evaluate_computes_the_cheapest_figures_first_and_reports_each_as_it_comes():
    target = make_target("gaussian2d")
    flow = identity_flow(2)
    seen: list[tuple[str, ...]] = []

    def on_metric(m: metrics.Metrics) -> None:
        done = tuple(k for k in ("seed_tv", "test_nll", "tv", "kl", "integral") if not np.isnan(getattr(m, k)))
        seen.append(done + (("sample_nfe",) if m.sample_nfe is not None else ()))

    data = target.sample(50, seed=0)
    full = evaluate(flow, target, data, target.sample(200, seed=1), resolution=40, on_metric=on_metric)
    assert seen == [
        ("seed_tv",),
        ("seed_tv", "test_nll"),
        ("seed_tv", "test_nll", "sample_nfe"),
        ("seed_tv", "test_nll", "tv", "kl", "integral", "sample_nfe"),
    ]
    assert full.cut == () and full.integral == pytest.approx(1.0, abs=0.02) and full.tv < 0.02


def test_a_deadline_cuts_the_dear_figures_and_keeps_the_cheap_ones():
    import time

    target = make_target("gaussian2d")
    data, test = target.sample(20, seed=0), target.sample(20, seed=1)
    unbounded = evaluate(identity_flow(2), target, data, test, resolution=30)
    flow = _slow_flow(2, 0.05)
    start = time.perf_counter()
    cut = evaluate(flow, target, data, test, resolution=30, max_seconds=0.5)
    took = time.perf_counter() - start
    assert took < 0.5 + 1.0, "the solve running at the deadline stopped within an evaluation or so"
    assert cut.seed_tv == pytest.approx(unbounded.seed_tv, abs=1e-6), "the cheapest figure made it"
    assert set(cut.cut) >= {"tv", "kl", "integral"} and np.isnan(cut.tv) and np.isnan(cut.integral)
    assert flow.interrupt is None, "the caller's interrupt is put back"
