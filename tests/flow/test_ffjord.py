"""FFJORD: log-densities agree with the change of variables, the flow inverts, regularizers integrate right."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from cnfviz import FFJORD, ConfigError, ModelConfig, SolverConfig
from cnfviz.flow.ffjord import standard_normal_logprob

TIGHT = SolverConfig("dopri5", rtol=1e-8, atol=1e-8, max_steps=100_000)


def linear_flow(a: np.ndarray, tspan=(0.0, 1.0)) -> FFJORD:
    """An affine flow dz/dt = A z (no hidden layers, zero bias) in float64."""
    flow = FFJORD(a.shape[0], ModelConfig(hidden=(), time="none", tspan=tspan), TIGHT).double()
    layer = flow.net.layers[0]
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(a))
        layer.bias.zero_()
    return flow


A = np.array([[0.3, -0.8], [0.5, -0.2]])


@pytest.mark.parametrize("tspan", [(0.0, 1.0), (0.5, 2.0), (1.0, -1.0)])
def test_linear_dynamics_give_the_analytic_log_determinant(tspan):
    flow = linear_flow(A, tspan)
    x = torch.randn(7, 2, dtype=torch.float64)
    t = tspan[1] - tspan[0]
    z = x @ torch.as_tensor(scipy.linalg.expm(-A * t)).T  # x = exp(A t) z
    expected = standard_normal_logprob(z) - np.trace(A) * t
    torch.testing.assert_close(flow.log_prob(x), expected, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(flow.inverse(x), z, rtol=1e-6, atol=1e-6)


def test_affine_flow_of_a_gaussian_is_a_gaussian():
    flow = linear_flow(A)
    m = scipy.linalg.expm(A)  # x = M z, z ~ N(0, I)  =>  x ~ N(0, M Mᵀ)
    from scipy.stats import multivariate_normal

    x = np.random.default_rng(0).normal(size=(20, 2))
    expected = multivariate_normal(np.zeros(2), m @ m.T).logpdf(x)
    np.testing.assert_allclose(flow.log_prob(torch.as_tensor(x)).numpy(), expected, rtol=1e-6, atol=1e-6)


def test_kinetic_and_jacobian_regularizers_for_a_known_field():
    flow = linear_flow(A)
    x = torch.randn(5, 2, dtype=torch.float64)
    _, kinetic, jac = flow(x, regularize=True)
    # λ₁ = ∫₀¹ ‖A z(t)‖² dt along z(t) = exp(A (t - 1)) x, by fine quadrature of the analytic path.
    ts = np.linspace(0.0, 1.0, 2001)
    speeds = np.stack([((A @ scipy.linalg.expm(A * (t - 1.0)) @ x.numpy().T) ** 2).sum(0) for t in ts])
    np.testing.assert_allclose(kinetic.detach().numpy(), np.trapezoid(speeds, ts, axis=0), rtol=1e-6)
    # λ₂ = ∫ ‖A‖²_F dt, exactly, for the exact trace estimator.
    np.testing.assert_allclose(jac.detach().numpy(), np.full(5, (A**2).sum()), rtol=1e-7)


def test_regularizers_are_only_integrated_when_asked():
    flow = FFJORD(2, ModelConfig(hidden=(8,)))
    logpx, kinetic, jac = flow(torch.randn(4, 2))
    assert logpx.shape == (4,) and kinetic is None and jac is None


@pytest.fixture(scope="module")
def flow2d():
    torch.manual_seed(0)
    flow = FFJORD(
        2,
        ModelConfig(hidden=(16, 16), activation="tanh", time="concatsquash"),
        TIGHT,
        generator=torch.Generator().manual_seed(0),
    ).double()
    with torch.no_grad():  # make the field strong enough that the map is far from the identity
        for p in flow.parameters():
            p.mul_(3.0)
    return flow


def test_x_to_z_to_x_returns_to_the_start(flow2d):
    x = torch.randn(50, 2, dtype=torch.float64)
    z = flow2d.inverse(x)
    assert (z - x).abs().max() > 0.1  # a real transformation...
    torch.testing.assert_close(flow2d.transform(z), x, rtol=1e-6, atol=1e-6)  # ...that inverts


def test_log_prob_matches_the_change_of_variables_of_the_transform(flow2d):
    z = torch.randn(5, 2, dtype=torch.float64)
    x = flow2d.transform(z).detach()
    for i in range(5):
        jac = torch.autograd.functional.jacobian(lambda v: flow2d.transform(v[None])[0], z[i])
        expected = standard_normal_logprob(z[i : i + 1]) - torch.logdet(jac)
        torch.testing.assert_close(flow2d.log_prob(x[i : i + 1]), expected, rtol=1e-5, atol=1e-5)


def test_1d_density_integrates_to_one():
    flow = FFJORD(
        1,
        ModelConfig(hidden=(16, 16), tspan=(0.0, 2.0)),
        SolverConfig("dopri5", rtol=1e-6, atol=1e-6),
        generator=torch.Generator().manual_seed(2),
    )
    xs = torch.linspace(-12, 12, 6001)[:, None]
    p = flow.log_prob(xs).exp()
    assert abs(float(torch.trapezoid(p, xs[:, 0])) - 1) < 1e-3


def test_adjoint_and_direct_backprop_give_the_same_gradients():
    def grads(adjoint: bool):
        flow = FFJORD(
            2,
            ModelConfig(hidden=(8, 8)),
            SolverConfig("dopri5", rtol=1e-9, atol=1e-9, adjoint=adjoint),
            generator=torch.Generator().manual_seed(1),
        ).double()
        x = torch.randn(16, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
        logpx, kinetic, jac = flow(x, regularize=True)
        (-logpx.mean() + 0.1 * kinetic.mean() + 0.1 * jac.mean()).backward()
        return [p.grad.clone() for p in flow.parameters()], flow

    direct, flow_d = grads(False)
    adjoint, flow_a = grads(True)
    for gd, ga in zip(direct, adjoint, strict=True):
        torch.testing.assert_close(gd, ga, rtol=1e-5, atol=1e-7)
    assert flow_d.nfe_backward == 0  # direct backprop re-evaluates nothing
    assert flow_a.nfe_backward > 0  # the adjoint integrates backwards


def test_every_parameter_receives_a_gradient():
    flow = FFJORD(2, ModelConfig(hidden=(8, 8), time="concatsquash"))
    logpx, kinetic, jac = flow(torch.randn(8, 2), regularize=True)
    (-logpx.mean() + kinetic.mean() + jac.mean()).backward()
    for name, p in flow.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_sample_trajectories_and_field_shapes():
    flow = FFJORD(2, ModelConfig(hidden=(8,), tspan=(0.0, 0.5)), SolverConfig("rk4", step_size=0.05))
    x = flow.sample(13, generator=torch.Generator().manual_seed(0))
    assert x.shape == (13, 2) and not x.requires_grad
    z = torch.randn(9, 2)
    times, paths = flow.trajectories(z, 11)
    assert times.shape == (11,) and paths.shape == (11, 9, 2)
    torch.testing.assert_close(paths[0], z)
    torch.testing.assert_close(paths[-1], flow.transform(z).detach(), rtol=1e-5, atol=1e-5)
    times, paths = flow.trajectories(5, [0.0, 0.25, 0.5])
    assert paths.shape == (3, 5, 2)
    assert flow.vector_field(torch.randn(30, 2), 0.1).shape == (30, 2)


def test_density_path_starts_at_the_base_and_ends_at_log_prob():
    flow = FFJORD(
        1,
        ModelConfig(hidden=(8,), tspan=(0.0, 1.0)),
        SolverConfig("dopri5", rtol=1e-7, atol=1e-7),
        generator=torch.Generator().manual_seed(5),
    )
    z = torch.linspace(-3, 3, 7)[:, None]
    paths, logp = flow.density_path(z, torch.linspace(0, 1, 5))
    torch.testing.assert_close(logp[0], standard_normal_logprob(z))
    torch.testing.assert_close(logp[-1], flow.log_prob(paths[-1]), rtol=1e-4, atol=1e-4)


def test_nfe_counters_count_forward_evaluations():
    flow = FFJORD(1, ModelConfig(hidden=(4,)), SolverConfig("rk4", step_size=0.25))
    flow(torch.randn(3, 1))
    assert flow.nfe_forward == 16  # 4 steps × 4 stages
    flow.reset_nfe()
    assert flow.nfe_forward == 0


@pytest.mark.parametrize("bad", [torch.randn(3), torch.randn(3, 3), np.zeros((3, 2))])
def test_wrong_input_shapes_raise_a_clear_error(bad):
    flow = FFJORD(2, ModelConfig(hidden=(4,)))
    with pytest.raises(ConfigError, match=r"expected a tensor of shape \(N, 2\)"):
        flow.log_prob(bad)


def test_time_span_sets_the_integration_interval():
    flow = linear_flow(np.array([[1.0]]), tspan=(0.0, math.log(2.0)))
    # x = 2 z, so log p(x) = log N(x / 2) - log 2.
    x = torch.tensor([[1.0]], dtype=torch.float64)
    torch.testing.assert_close(flow.log_prob(x), standard_normal_logprob(x / 2) - math.log(2.0))


def test_trajectories_run_backwards_from_data_to_base():
    flow = FFJORD(
        2,
        ModelConfig(hidden=(8,), tspan=(0.0, 1.0)),
        SolverConfig("dopri5", rtol=1e-7, atol=1e-7),
        generator=torch.Generator().manual_seed(3),
    )
    x = torch.randn(6, 2)
    _, paths = flow.trajectories(x, [1.0, 0.5, 0.0])
    torch.testing.assert_close(paths[-1], flow.inverse(x).detach(), rtol=1e-5, atol=1e-5)
    with pytest.raises(ConfigError, match=r"starting at t0 = 0\.0 or t1 = 1\.0"):
        flow.trajectories(x, [0.5, 1.0])


@pytest.mark.parametrize("tspan", [(0.0, 1.0), (0.0, 0.3), (2.0, -1.0)])
def test_linear_init_maps_the_base_exactly_onto_the_data_gaussian(tspan):
    from scipy.stats import multivariate_normal

    flow = FFJORD(2, ModelConfig(hidden=(8,), linear=True, tspan=tspan), TIGHT).double()
    mean, cov = np.array([1.5, -2.0]), np.array([[2.0, 0.7], [0.7, 0.5]])
    data = torch.as_tensor(np.random.default_rng(0).multivariate_normal(mean, cov, size=200_000))
    flow.init_from_data(data)
    x = torch.as_tensor(np.random.default_rng(1).normal(size=(10, 2)) * 2 + mean)
    # The MLP starts at zero, so the model is exactly the fitted Gaussian N(mean(data), cov(data)).
    fitted = multivariate_normal(data.mean(0).numpy(), np.cov(data.numpy().T) + 1e-6 * np.eye(2))  # + the jitter
    np.testing.assert_allclose(flow.log_prob(x).numpy(), fitted.logpdf(x.numpy()), rtol=1e-6, atol=1e-6)


def test_linear_term_is_part_of_the_jacobian():
    flow = FFJORD(2, ModelConfig(hidden=(8,), linear=True), generator=torch.Generator().manual_seed(0)).double()
    with torch.no_grad():
        flow.net.lin_weight.copy_(torch.tensor([[0.3, -0.2], [0.1, 0.4]]))
        for p in flow.net.layers[-1].parameters():
            p.normal_()
    z, t = torch.randn(4, 2, dtype=torch.float64), torch.tensor(0.2, dtype=torch.float64)
    _, jac = flow.net.jacobian(t, z)
    auto = torch.stack([torch.autograd.functional.jacobian(lambda v: flow.net(t, v[None])[0], zi) for zi in z])
    torch.testing.assert_close(jac, auto)


def test_one_model_solved_from_two_threads_gives_the_single_threaded_answers():
    # Each solve builds its own dynamics (estimator, probe, regularizer states, counters), so two
    # threads using one model at once cannot see each other's settings.
    import threading

    flow = FFJORD(2, ModelConfig(hidden=(16, 16), trace="hutchinson-gaussian"), SolverConfig("dopri5"))
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(3))
    z = torch.randn(64, 2, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        exact_alone = flow(x, trace="exact")[0]
        hutch_alone = flow(x, regularize=True, generator=torch.Generator().manual_seed(5))
        sample_alone = flow.transform(z)
    results: dict[str, list] = {"exact": [], "hutch": [], "sample": []}

    def work(kind: str) -> None:
        with torch.no_grad():
            for _ in range(5):
                if kind == "exact":
                    results[kind].append(flow(x, trace="exact")[0])
                elif kind == "hutch":
                    results[kind].append(flow(x, regularize=True, generator=torch.Generator().manual_seed(5)))
                else:
                    results[kind].append(flow.transform(z))

    threads = [threading.Thread(target=work, args=(kind,)) for kind in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got in results["exact"]:
        torch.testing.assert_close(got, exact_alone)
    for logpx, kinetic, jac in results["hutch"]:
        torch.testing.assert_close(logpx, hutch_alone[0])
        torch.testing.assert_close(kinetic, hutch_alone[1])
        torch.testing.assert_close(jac, hutch_alone[2])
    for got in results["sample"]:
        torch.testing.assert_close(got, sample_alone)


def test_nfe_cap_counts_each_solve_on_its_own():
    # The cap is per solve: two solves of 100 evaluations each stay under a cap of 150.
    flow = FFJORD(1, ModelConfig(hidden=(4,)), SolverConfig("euler", step_size=0.01, max_nfe=150))
    x = torch.randn(8, 1)
    flow.log_prob(x)
    flow.log_prob(x)
    assert flow.nfe_forward == 200
