"""§2: a linear flow's ODE log-density falls by tr(A)·t and matches the closed-form pushforward."""

import numpy as np
import pytest
import scipy.linalg
import scipy.stats

from cnfviz.features import learn as explain


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


def test_the_figure_has_the_documented_traces():
    flow = explain.linear_flow_demo(1.0, 1.0, n_paths=4, n_times=6)
    assert len(explain.linear_flow_figure(flow).data) == 3 * 4 + 1
