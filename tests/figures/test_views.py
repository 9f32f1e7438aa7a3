"""Plot data: shapes, and densities that are densities."""

import numpy as np
import torch

from cnfviz import FFJORD, ModelConfig, SolverConfig, make_target
from cnfviz.figures.views import density_path_view, density_view, field_view, grid_points, trajectory_view


def flow(dim, seed=0):
    return FFJORD(
        dim,
        ModelConfig(hidden=(8,), tspan=(0.0, 1.0)),
        SolverConfig("dopri5", rtol=1e-5, atol=1e-5),
        generator=torch.Generator().manual_seed(seed),
    )


def test_grid_points_cover_the_grid_with_x_fastest():
    pts = grid_points((np.array([0.0, 1.0, 2.0]), np.array([5.0, 6.0])))
    assert pts.shape == (6, 2)
    np.testing.assert_array_equal(pts[:3, 0], [0, 1, 2])
    np.testing.assert_array_equal(pts[:3, 1], [5, 5, 5])


def test_density_view_1d_and_2d():
    t1 = make_target("normal", loc=0.0, scale=1.0)
    v = density_view(flow(1), t1, t1.sample(50, seed=0), resolution=300, n_samples=40)
    assert v.learned.shape == v.true.shape == (300,) and v.samples.shape == (40, 1) and not v.true_is_estimate
    assert abs(np.trapezoid(v.true, v.axes[0]) - 1) < 1e-3
    t2 = make_target("moons")
    v = density_view(flow(2), t2, t2.sample(50, seed=0), resolution=32, n_samples=40)
    assert v.learned.shape == v.true.shape == (32, 32) and v.true_is_estimate


def test_trajectories_are_reproducible_from_the_seed():
    f = flow(2)
    a, b = trajectory_view(f, n=20, n_times=5, seed=3), trajectory_view(f, n=20, n_times=5, seed=3)
    assert a.paths.shape == (5, 20, 2) and a.times.shape == (5,)
    np.testing.assert_array_equal(a.paths, b.paths)


def test_field_view_matches_the_network():
    f = flow(2)
    v = field_view(f, np.array([[-1.0, 1.0], [-2.0, 2.0]]), resolution=5, n_times=3)
    assert v.values.shape == (3, 5, 5, 2)
    z = torch.tensor([[v.axes[0][1], v.axes[1][4]]], dtype=torch.float32)
    expected = f.vector_field(z, float(v.times[2]))[0].numpy()
    np.testing.assert_allclose(v.values[2, 4, 1], expected, rtol=1e-5, atol=1e-7)


def test_density_path_integrates_to_one_at_every_time():
    f = flow(1, seed=4)
    v = density_path_view(f, np.array([[-6.0, 6.0]]), resolution=1500, n_times=6)
    assert v.density.shape == (6, 1500)
    np.testing.assert_allclose(np.trapezoid(v.density, v.xs, axis=1), 1.0, atol=5e-3)
    # At t0 the density is the base N(0, 1).
    np.testing.assert_allclose(v.density[0], np.exp(-0.5 * v.xs**2) / np.sqrt(2 * np.pi), atol=1e-4)
