"""§7: the marginal field is the conditional expectation; OT pairing uncrosses and straightens the paths."""

import numpy as np
import pytest

from cnfviz import default_config
from cnfviz.features import learn as explain
from cnfviz.training.presets import SEED_CONFIG


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


def test_the_coupling_field_of_independent_pairs_is_the_exact_marginal_field():
    from cnfviz.features.learn.flow_matching import coupling_velocity

    rng = np.random.default_rng(2)
    means, sd, n = np.array([[-2.0, 0.0], [2.0, 1.0]]), 0.5, 400_000
    x0 = rng.standard_normal((n, 2))
    x1 = means[rng.integers(2, size=n)] + sd * rng.standard_normal((n, 2))
    points = np.array([[0.3, 0.2], [1.5, 0.4], [-1.0, -0.5]])
    for s in (0.3, 0.6):
        exact = explain.marginal_velocity(points, s, means, sd)
        np.testing.assert_allclose(coupling_velocity(points, s, x0, x1, 0.1), exact, atol=0.1)


def test_ot_pairing_straightens_the_marginal_paths_and_the_right_panel_shows_it():
    ind, ot = explain.flow_matching_demo("independent"), explain.flow_matching_demo("ot")
    np.testing.assert_array_equal(ind.marginal[0], ot.marginal[0])  # the same noise points
    # The OT field's paths are nearly straight and shorter; the independent field's bend.
    assert ot.marginal_straightness > 0.99 > ind.marginal_straightness + 0.1
    assert ot.marginal_length < 0.95 * ind.marginal_length
    assert ot.marginal_end_error < 4.0, "every OT path ends inside a mode too"
    assert ot.coupling_pairs == 1024 and "minibatch-OT" in ot.marginal_field
    assert "closed form" in ind.marginal_field
    left_ind, right_ind = explain.flow_matching_figure(ind).data[0], explain.flow_matching_figure(ind).data[3]
    left_ot, right_ot = explain.flow_matching_figure(ot).data[0], explain.flow_matching_figure(ot).data[3]
    assert right_ind.name == right_ot.name == "marginal path"
    moved = np.nanmax(np.abs(np.asarray(right_ot.x, dtype=float) - np.asarray(right_ind.x, dtype=float)))
    assert moved > 0.5, "the right panel changes with the pairing"
    assert not np.allclose(np.asarray(left_ot.x, dtype=float), np.asarray(left_ind.x, dtype=float), equal_nan=True)
    # Right, the paths end where the flow carries them: orange, the palette's "what the flow makes".
    ends = explain.flow_matching_figure(ot).data[5]
    assert ends.marker.color == explain.COLORS["model"]
    np.testing.assert_allclose(ends.x, ot.marginal[-1][:, 0])
