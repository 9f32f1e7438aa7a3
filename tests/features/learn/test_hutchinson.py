"""§3: Hutchinson's estimates are unbiased, with the variance the formula gives."""

import itertools
import math

import numpy as np
import pytest

from cnfviz.features import learn as explain


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


def test_the_figure_has_the_documented_traces():
    assert len(explain.hutchinson_figure(explain.hutchinson_demo(2, n_estimates=20)).data) == 2
