"""Trace estimators: exact equals the autograd trace; Hutchinson is unbiased; noise is drawn once per solve."""

import pytest
import torch

from cnfviz import FFJORD, ModelConfig, SolverConfig
from cnfviz.flow.divergence import TRACE_ESTIMATORS, draw_noise
from cnfviz.flow.dynamics import ODENet


@pytest.fixture
def net():
    return ODENet(2, (16, 16), "softplus", "concatsquash", generator=torch.Generator().manual_seed(0)).double()


def _autograd_trace(net, t, z):
    jac = torch.stack([torch.autograd.functional.jacobian(lambda v: net(t, v[None])[0], zi) for zi in z])
    return jac.diagonal(dim1=1, dim2=2).sum(-1), jac.pow(2).sum((1, 2))


def test_exact_trace_and_frobenius_equal_the_autograd_jacobian(net):
    z = torch.randn(9, 2, dtype=torch.float64)
    t = torch.tensor(0.3, dtype=torch.float64)
    trace, frob = _autograd_trace(net, t, z)
    for name in ("exact", "exact-autograd"):
        f, div, fro = TRACE_ESTIMATORS[name].fn(net, t, z, None, True)
        torch.testing.assert_close(div, trace, msg=name)
        torch.testing.assert_close(fro, frob, msg=name)
        torch.testing.assert_close(f, net(t, z))


@pytest.mark.parametrize("name", ["hutchinson-gaussian", "hutchinson-rademacher"])
def test_hutchinson_mean_approaches_the_exact_trace(net, name):
    z = torch.randn(4, 2, dtype=torch.float64)
    t = torch.tensor(0.3, dtype=torch.float64)
    trace, frob = _autograd_trace(net, t, z)
    est = TRACE_ESTIMATORS[name]
    draws = 20_000
    zz = z.repeat(draws, 1)
    eps = draw_noise(est.noise, zz, torch.Generator().manual_seed(1))
    _, div, fro = est.fn(net, t, zz, eps, True)
    div, fro = div.view(draws, 4), fro.view(draws, 4)
    # Within 5 standard errors of the mean, for both the trace and the Frobenius norm.
    for est_vals, exact in ((div, trace), (fro, frob)):
        se = est_vals.std(0) / draws**0.5
        assert ((est_vals.mean(0) - exact).abs() < 5 * se + 1e-9).all(), (est_vals.mean(0), exact)


def test_rademacher_noise_is_plus_minus_one_and_gaussian_is_standard():
    like = torch.zeros(50_000, 2)
    r = draw_noise("rademacher", like, torch.Generator().manual_seed(0))
    assert set(r.unique().tolist()) == {-1.0, 1.0}
    g = draw_noise("gaussian", like, torch.Generator().manual_seed(0))
    assert abs(float(g.mean())) < 0.02 and abs(float(g.std()) - 1) < 0.02
    with pytest.raises(ValueError, match="gaussian"):
        draw_noise("uniform", like)


def test_hutchinson_noise_is_drawn_once_per_solve(monkeypatch):
    calls = []
    import cnfviz.flow.ffjord as ffjord_module

    real = ffjord_module.draw_noise

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(ffjord_module, "draw_noise", counting)
    flow = FFJORD(
        2, ModelConfig(hidden=(8,), trace="hutchinson-rademacher"), SolverConfig("dopri5", rtol=1e-5, atol=1e-5)
    )
    flow(torch.randn(16, 2))
    assert flow.nfe_forward > 6  # many evaluations...
    assert len(calls) == 1  # ...one probe draw


def test_hutchinson_log_prob_is_unbiased_for_the_exact_one():
    flow = FFJORD(
        2, ModelConfig(hidden=(8,), trace="hutchinson-gaussian"), SolverConfig("dopri5", rtol=1e-6, atol=1e-6)
    )
    x = torch.randn(3, 2).repeat(4000, 1)
    with torch.no_grad():
        approx = flow(x, generator=torch.Generator().manual_seed(0))[0].view(4000, 3)
        exact = flow.log_prob(x[:3], trace="exact")
    se = approx.std(0) / 4000**0.5
    assert ((approx.mean(0) - exact).abs() < 5 * se + 1e-6).all()
