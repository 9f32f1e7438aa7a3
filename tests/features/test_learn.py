"""The Learn page's numbers: each demo must show the mathematics it claims to show."""

import importlib.util
import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import torch

from cnfviz import ModelConfig, SolverConfig, default_config
from cnfviz.features import learn as explain
from cnfviz.figures import learn as plots
from cnfviz.training.presets import SEED_CONFIG

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "assets" / "learn" / "make_learn_assets.py"

# A toy version of the page's 2D regularizer run: seconds, not minutes.
TINY_2D = explain.REGULARIZER_CONFIG.replace(
    model=ModelConfig(hidden=(16,), tspan=(0.0, 1.0)),
    solver=SolverConfig("rk4", step_size=0.25),
    adam_iters=30,
    batch_size=128,
    n_test=200,
)
TINY_SEED = explain.TIME_SPAN_CONFIG.replace(adam_iters=3, lbfgs_iters=0)


@pytest.fixture(scope="module")
def tiny_runs():
    """Two tiny 2D flows, unregularized and with a heavy kinetic weight, measured on the same data."""
    torch.set_num_threads(1)
    runs, models = {}, {}
    for name, lk in (("none", 0.0), ("kinetic", 1.0)):
        model, trainer = explain.fit(TINY_2D.replace(lambda_kinetic=lk))
        runs[name] = explain.regularizer_run(name, model, (lk, 0.0), trainer.test_data, n_paths=30, n_times=21)
        models[name] = (model, trainer)
    return runs, models


# ------------------------------------------------------------------------------------ change of variables
@pytest.mark.parametrize(("a", "b"), [(2.0, 1.0), (-0.5, 3.0), (0.25, -2.0), (-3.0, 6.0)])
def test_affine_density_is_the_pushforward_normal_and_integrates_to_one(a, b):
    demo = explain.affine_change_of_variables(a, b, n_samples=10)
    assert demo.integral == pytest.approx(1.0, abs=1e-4)
    np.testing.assert_allclose(demo.p_x, scipy.stats.norm(b, abs(a)).pdf(demo.xs), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(demo.p_z, scipy.stats.norm().pdf(demo.xs), rtol=1e-10, atol=1e-14)


def test_affine_density_matches_histogram_of_pushed_samples():
    a, b = -1.5, 2.0
    demo = explain.affine_change_of_variables(a, b, n_samples=200_000, seed=1)
    counts, edges = np.histogram(demo.samples, bins=40, range=(b - 4.5, b + 4.5))
    width = edges[1] - edges[0]
    empirical = counts / (len(demo.samples) * width)
    centers = 0.5 * (edges[1:] + edges[:-1])
    expected = np.interp(centers, demo.xs, demo.p_x)
    # Binomial noise per bin is below 0.003 here; curvature inside a bin adds less than 0.001.
    assert np.max(np.abs(empirical - expected)) < 0.01


def test_affine_sign_of_scale_does_not_change_the_density():
    np.testing.assert_allclose(
        explain.affine_change_of_variables(2.0, 0.5).p_x, explain.affine_change_of_variables(-2.0, 0.5).p_x
    )


def test_affine_rejects_zero_scale():
    with pytest.raises(ValueError, match="not invertible"):
        explain.affine_change_of_variables(0.0, 1.0)


# ------------------------------------------------------------------------------------ linear flow
@pytest.mark.parametrize(("trace", "rotation"), [(1.0, 0.0), (-2.0, 1.5), (0.0, 3.0), (0.75, 0.25)])
def test_linear_flow_ode_log_density_falls_by_trace_times_t(trace, rotation):
    demo = explain.linear_flow_demo(trace, rotation, n_paths=5, n_times=11)
    assert np.trace(demo.matrix) == pytest.approx(trace)
    np.testing.assert_allclose(demo.logp_ode, demo.logp_exact, atol=1e-6)
    drop = demo.logp_ode[0] - demo.logp_ode[-1]
    np.testing.assert_allclose(drop, trace * demo.times[-1], atol=1e-6)


def test_linear_flow_matches_the_closed_form_gaussian_pushforward():
    """z(t) = e^{At} z0 and z(t) ~ N(0, e^{At} e^{Aᵀt}): check paths and densities independently."""
    demo = explain.linear_flow_demo(0.5, 1.0, t1=1.5, n_paths=4, n_times=7)
    a = demo.matrix
    for k, t in enumerate(demo.times):
        m = scipy.linalg.expm(a * t)
        np.testing.assert_allclose(demo.paths[k], demo.paths[0] @ m.T, atol=1e-6)
        density = scipy.stats.multivariate_normal(np.zeros(2), m @ m.T)
        np.testing.assert_allclose(demo.logp_ode[k], density.logpdf(demo.paths[k]), atol=1e-6)


# ------------------------------------------------------------------------------------ Hutchinson
@pytest.mark.parametrize("dim", [2, 8])
@pytest.mark.parametrize("noise", explain.HUTCHINSON_NOISES)
def test_hutchinson_mean_is_within_a_few_standard_errors_of_the_exact_trace(dim, noise):
    demo = explain.hutchinson_demo(dim, n_estimates=2000, seed=3)
    est = demo.estimates[noise]
    standard_error = math.sqrt(demo.theory_var[noise] / len(est))
    assert abs(est.mean() - demo.exact) < 4 * standard_error + 1e-7


def test_rademacher_variance_is_at_most_gaussian_variance_on_the_page_default():
    demo = explain.hutchinson_demo(8, n_estimates=2000)
    assert demo.estimates["rademacher"].var() <= demo.estimates["gaussian"].var()
    assert demo.theory_var["rademacher"] <= demo.theory_var["gaussian"]


def test_rademacher_is_exact_in_one_dimension():
    demo = explain.hutchinson_demo(1, n_estimates=50)
    np.testing.assert_allclose(demo.estimates["rademacher"], demo.exact, rtol=1e-5, atol=1e-7)
    assert demo.theory_var["rademacher"] == 0.0


@pytest.mark.parametrize("probes", [1, 8])
def test_hutchinson_measured_variance_matches_formula_and_falls_with_probes(probes):
    demo = explain.hutchinson_demo(4, probes, n_estimates=4000, seed=1)
    for noise in explain.HUTCHINSON_NOISES:
        assert demo.estimates[noise].var(ddof=1) == pytest.approx(demo.theory_var[noise], rel=0.2)
    single = explain.hutchinson_demo(4, 1, n_estimates=10, seed=1)
    assert demo.theory_var["gaussian"] == pytest.approx(single.theory_var["gaussian"] / probes)


def test_hutchinson_variance_formula_against_brute_force():
    rng = np.random.default_rng(0)
    jac = rng.normal(size=(3, 3))
    # Rademacher: all 2³ probes are equally likely, so the variance is an exact average.
    values = [e @ jac @ e for e in (np.array(s) for s in itertools.product((-1.0, 1.0), repeat=3))]
    assert np.var(values) == pytest.approx(explain.hutchinson_variance(jac, "rademacher"), rel=1e-12)
    eps = rng.normal(size=(400_000, 3))
    gaussian = np.einsum("ni,ij,nj->n", eps, jac, eps)
    assert gaussian.mean() == pytest.approx(np.trace(jac), abs=0.05)
    assert gaussian.var() == pytest.approx(explain.hutchinson_variance(jac, "gaussian"), rel=0.03)
    with pytest.raises(ValueError, match="Must be one of"):
        explain.hutchinson_variance(jac, "uniform")


# ------------------------------------------------------------------------------------ time span
def test_time_span_run_records_a_normalised_density_path():
    run = explain.time_span_run(TINY_SEED, 2.0, resolution=120, n_times=5)
    assert run.path_density.shape == (5, 120) and run.path_times[-1] == pytest.approx(2.0)
    # At t0 the path is the base N(0, 1); at t1 it is the learned density.
    np.testing.assert_allclose(run.path_density[0], scipy.stats.norm().pdf(run.xs), atol=2e-3)
    np.testing.assert_allclose(run.path_density[-1], run.learned, atol=5e-3)
    assert np.trapezoid(run.learned, run.xs) == pytest.approx(1.0, abs=0.01)
    np.testing.assert_allclose(run.true, scipy.stats.norm(6.0, 0.7).pdf(run.xs))
    assert 0 <= run.seed_tv < 1 and math.isfinite(run.nll)


# ------------------------------------------------------------------------------------ regularizers
def test_kinetic_regularizer_gives_smaller_kinetic_energy(tiny_runs):
    runs, _ = tiny_runs
    assert runs["kinetic"].kinetic < 0.75 * runs["none"].kinetic
    for run in runs.values():
        assert run.paths.shape == (21, 30, 2) and 0 < run.straightness <= 1 + 1e-9 and run.nfe > 0


def test_straightness_is_one_for_straight_lines_and_less_for_bends():
    t = np.linspace(0, 1, 11)[:, None, None]
    straight = t * np.array([[1.0, 2.0], [-1.0, 0.5]])[None]
    assert explain._straightness(straight) == pytest.approx(1.0)
    bent = np.concatenate([straight, straight[-1:] + t[1:] * np.array([[2.0, -4.0], [0.0, 1.0]])[None]])
    assert explain._straightness(bent) < 0.9


# ------------------------------------------------------------------------------------ sampling
def test_sampling_demo_runs_the_flow_both_ways(tiny_runs):
    _, models = tiny_runs
    model, trainer = models["none"]
    data = trainer.test_data[:40]
    demo = explain.sampling_demo(model, data, n_samples=40, n_times=5)
    assert demo.forward.shape == (5, 40, 2) and demo.backward.shape == (5, 40, 2)
    np.testing.assert_allclose(demo.backward[-1], data, atol=1e-6)
    with torch.no_grad():
        pulled = model.inverse(torch.as_tensor(data, dtype=torch.float32)).double().numpy()
        z = torch.as_tensor(demo.forward[0], dtype=torch.float32)
        pushed = model.transform(z)
        back = model.inverse(pushed)
    np.testing.assert_allclose(demo.backward[0], pulled, atol=1e-3)
    np.testing.assert_allclose(demo.forward[-1], pushed.double().numpy(), atol=1e-3)
    np.testing.assert_allclose(back.numpy(), z.numpy(), atol=1e-3)  # inverse(transform(z)) = z
    np.testing.assert_allclose(demo.pulled_mean, demo.backward[0].mean(0))


# ------------------------------------------------------------------------------------ assets
def _load_script():
    spec = importlib.util.spec_from_file_location("make_learn_assets", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_asset_script_builds_and_round_trips_on_a_tiny_config(tmp_path):
    path = _load_script().main(["--tiny", "--quiet", "--out", str(tmp_path / "learn.npz")])
    assets = explain.load_learn_assets(path)
    assert [r.t1 for r in assets.time_span] == [1.0, 10.0]
    assert [r.name for r in assets.regularizers] == ["none", "kinetic"]
    run = assets.time_span_for(10.0)
    assert run.learned.shape == run.xs.shape and run.path_density.shape[1] == run.xs.shape[0]
    assert assets.regularizer_for("kinetic").lambda_kinetic == explain.REGULARIZER_SETTINGS["kinetic"][0]
    assert assets.sampling.backward.shape[0] == assets.sampling.times.shape[0]
    with pytest.raises(KeyError):
        assets.time_span_for(3.0)
    # Saving again gives the same content (float32 storage is idempotent).
    again = explain.load_learn_assets(explain.save_learn_assets(assets, tmp_path / "again.npz"))
    np.testing.assert_array_equal(again.sampling.forward, assets.sampling.forward)
    assert again.time_span[0].seed_tv == assets.time_span[0].seed_tv


def test_stale_assets_are_refused(tmp_path, tiny_runs):
    runs, models = tiny_runs
    model, trainer = models["none"]
    span = explain.TimeSpanRun(1.0, *(np.zeros(3),) * 3, np.zeros(2), np.zeros((2, 3)), 0.1, 1.0, 0.0)
    assets = explain.LearnAssets(
        (span,), (runs["none"],), explain.sampling_demo(model, trainer.test_data[:5], n_samples=5), {"version": 0}
    )
    path = explain.save_learn_assets(assets, tmp_path / "old.npz")
    with pytest.raises(ValueError, match="regenerate"):
        explain.load_learn_assets(path)


def test_page_assets_are_current():
    """The committed file must load; regenerate it with the script when this fails."""
    assets = explain.load_learn_assets(SCRIPT.parent / "learn_assets.npz")
    assert [r.t1 for r in assets.time_span] == list(explain.TIME_SPAN_ENDS)
    assert {r.name for r in assets.regularizers} == set(explain.REGULARIZER_SETTINGS)
    short, long = assets.time_span_for(1.0), assets.time_span_for(10.0)
    assert long.seed_tv < short.seed_tv  # the point of the section
    none = assets.regularizer_for("none")
    assert all(r.kinetic < none.kinetic for r in assets.regularizers if r.lambda_kinetic > 0)


# ------------------------------------------------------------------------------------ figures
def test_figure_builders_have_the_documented_traces(tiny_runs):
    runs, models = tiny_runs
    assert len(plots.change_of_variables_figure(explain.affine_change_of_variables(1.0, 0.0, n_samples=20)).data) == 3
    flow = explain.linear_flow_demo(1.0, 1.0, n_paths=4, n_times=6)
    assert len(plots.linear_flow_figure(flow).data) == 3 * 4 + 1
    assert len(plots.hutchinson_figure(explain.hutchinson_demo(2, n_estimates=20)).data) == 2
    run = explain.TimeSpanRun(
        2.0, np.linspace(-4, 9, 5), np.ones(5), np.ones(5), np.linspace(0, 2, 3), np.ones((3, 5)), 0.1, 1.0, 0.0
    )
    fig = plots.time_span_figure(run)
    assert len(fig.data) == 4 and fig.data[2].type == "heatmap"
    fig = plots.regularizer_figure(runs["none"], runs["kinetic"], max_paths=20, dots=6)
    assert len(fig.data) == 4
    # All paths of a panel are one NaN-separated polyline: T points plus one gap per path.
    assert len(fig.data[0].x) == 20 * (21 + 1)
    assert len(fig.data[1].x) == 20 * 6
    model, trainer = models["none"]
    demo = explain.sampling_demo(model, trainer.test_data[:10], n_samples=10, n_times=3)
    fig = plots.sampling_figure(demo, 0)
    assert len(fig.data) == 4
    np.testing.assert_allclose(fig.data[2].x, demo.backward[0][:, 0])


# --------------------------------------------------------------------------------------------------
# 7. Flow matching's paths
# --------------------------------------------------------------------------------------------------


def test_the_marginal_field_of_one_gaussian_is_the_affine_flow_between_them():
    """x0 ~ N(0, I) to N(μ, σ²I): the marginal path is x_s = s μ + sqrt((1 − s)² + s² σ²) x0."""
    from cnfviz.features.learn import marginal_velocity

    mu, sd = np.array([[2.0, -1.0]]), 0.4
    x0 = np.random.default_rng(0).standard_normal((5, 2))
    for s in (0.0, 0.3, 0.7, 1.0):
        scale = np.sqrt((1 - s) ** 2 + s**2 * sd**2)
        x = s * mu + scale * x0
        dscale = (s * sd**2 - (1 - s)) / scale
        np.testing.assert_allclose(marginal_velocity(x, s, mu, sd), mu + dscale * x0, rtol=1e-12, atol=1e-12)


def test_the_marginal_field_is_the_conditional_expectation_of_the_straight_velocities():
    from cnfviz.features.learn import marginal_velocity

    rng = np.random.default_rng(1)
    means, sd, s = np.array([[-2.0, 0.0], [2.0, 1.0]]), 0.5, 0.6
    x1 = means[rng.integers(2, size=1_000_000)] + sd * rng.standard_normal((1_000_000, 2))
    for point in (np.array([0.3, 0.2]), np.array([1.5, 0.4])):
        # x_s = point pins x0 = (point − s x1)/(1 − s); weight each x1 by that x0's N(0, I) density.
        x0 = (point - s * x1) / (1 - s)
        w = np.exp(-0.5 * (x0**2).sum(1))
        estimate = (w[:, None] * (x1 - x0)).sum(0) / w.sum()
        np.testing.assert_allclose(marginal_velocity(point[None], s, means, sd)[0], estimate, atol=0.02)


def test_ot_pairing_uncrosses_the_conditional_paths_and_the_marginal_paths_reach_the_modes():
    from cnfviz.features.learn import flow_matching_demo

    ind, ot = flow_matching_demo("independent"), flow_matching_demo("ot")
    np.testing.assert_array_equal(ind.x0, ot.x0)
    assert sorted(map(tuple, ind.x1)) == sorted(map(tuple, ot.x1)), "the same data, re-paired"
    assert ot.crossings < ind.crossings / 4 and ot.pair_cost < ind.pair_cost / 2
    assert ind.marginal_end_error < 4.0, "every marginal path ends inside a mode"
    assert 0.5 < ind.marginal_straightness < 1.0, "marginal paths bend"
    with pytest.raises(ValueError, match="Invalid pairing"):
        flow_matching_demo("sinkhorn")


def test_a_likelihood_iteration_costs_the_solver_stages():
    from cnfviz.features.learn import likelihood_iteration_cost

    assert likelihood_iteration_cost(default_config("8gaussians")) == 16  # rk4: 4 steps of 0.125 over 0.5
    assert likelihood_iteration_cost(default_config("normal")) == 16  # rk4: 4 steps of 0.25 over 1
    assert likelihood_iteration_cost(SEED_CONFIG) is None  # adaptive dopri5
