"""§4: a time-span run records a normalised density path from N(0, 1) to the learned density."""

import math

import numpy as np
import pytest
import scipy.linalg
import scipy.stats

from cnfviz.features import learn as explain

TINY_SEED = explain.TIME_SPAN_CONFIG.replace(adam_iters=3, lbfgs_iters=0)


def test_time_span_run_records_a_normalised_density_path():
    run = explain.time_span_run(TINY_SEED, 2.0, resolution=120, n_times=5)
    assert run.path_density.shape == (5, 120) and run.path_times[-1] == pytest.approx(2.0)
    # At t0 the path is the base N(0, 1); at t1 it is the learned density.
    np.testing.assert_allclose(run.path_density[0], scipy.stats.norm().pdf(run.xs), atol=2e-3)
    np.testing.assert_allclose(run.path_density[-1], run.learned, atol=5e-3)
    assert np.trapezoid(run.learned, run.xs) == pytest.approx(1.0, abs=0.01)
    np.testing.assert_allclose(run.true, scipy.stats.norm(6.0, 0.7).pdf(run.xs))
    assert 0 <= run.seed_tv < 1 and math.isfinite(run.nll)


def test_the_figure_has_the_documented_traces():
    run = explain.TimeSpanRun(
        2.0, np.linspace(-4, 9, 5), np.ones(5), np.ones(5), np.linspace(0, 2, 3), np.ones((3, 5)), 0.1, 1.0, 0.0
    )
    fig = explain.time_span_figure(run)
    assert len(fig.data) == 4 and fig.data[2].type == "heatmap"
