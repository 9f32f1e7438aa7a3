"""The dynamics MLP: forward-mode Jacobians are exact, every parameter learns, bad configs fail clearly."""

import pytest
import torch

from cnfviz import ConfigError
from cnfviz.flow.dynamics import ACTIVATIONS, TIME_CONDITIONING, ODENet


def _autograd_jacobian(net, t, z):
    return torch.stack([torch.autograd.functional.jacobian(lambda v: net(t, v[None])[0], zi) for zi in z])


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
@pytest.mark.parametrize("time", TIME_CONDITIONING)
@pytest.mark.parametrize("dim", [1, 2, 3])
def test_forward_mode_jacobian_equals_autograd(activation, time, dim):
    gen = torch.Generator().manual_seed(dim)
    net = ODENet(dim, (8, 8), activation, time, final_activation=True, generator=gen).double()
    z = torch.randn(6, dim, dtype=torch.float64, generator=gen)
    t = torch.tensor(0.37, dtype=torch.float64)
    f, jac = net.jacobian(t, z)
    assert f.shape == (6, dim) and jac.shape == (6, dim, dim)
    torch.testing.assert_close(f, net(t, z))
    torch.testing.assert_close(jac, _autograd_jacobian(net, t, z), rtol=1e-10, atol=1e-12)


def test_jvp_equals_jacobian_times_vector():
    net = ODENet(2, (16,), "silu", "concatsquash", generator=torch.Generator().manual_seed(0)).double()
    z, v = torch.randn(5, 2, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    t = torch.tensor(0.1, dtype=torch.float64)
    f, jv = net.jvp(t, z, v)
    _, jac = net.jacobian(t, z)
    torch.testing.assert_close(jv, torch.einsum("nij,nj->ni", jac, v))
    torch.testing.assert_close(f, net(t, z))


def test_time_conditioning_makes_the_field_depend_on_t():
    z = torch.randn(4, 2)
    for time in ("concat", "concatsquash"):
        net = ODENet(2, (8,), time=time, generator=torch.Generator().manual_seed(1))
        assert not torch.allclose(net(torch.tensor(0.0), z), net(torch.tensor(1.0), z))
    net = ODENet(2, (8,), time="none", generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(net(torch.tensor(0.0), z), net(torch.tensor(1.0), z))


@pytest.mark.parametrize("time", TIME_CONDITIONING)
def test_every_parameter_gets_a_gradient_through_the_jacobian(time):
    net = ODENet(2, (8, 8), "tanh", time, generator=torch.Generator().manual_seed(0))
    f, jac = net.jacobian(torch.tensor(0.5), torch.randn(10, 2))
    (f.sum() + jac.diagonal(dim1=1, dim2=2).sum()).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_seed_network_is_expressible():
    # Chain(Dense(1, 3, tanh), Dense(3, 1, tanh)): 6 + 4 = 10 parameters, output bounded by 1.
    net = ODENet(1, (3,), "tanh", "none", final_activation=True)
    assert sum(p.numel() for p in net.parameters()) == 10
    assert net(torch.tensor(0.0), torch.linspace(-100, 100, 50)[:, None]).abs().max() <= 1


def test_generator_makes_init_reproducible():
    a = ODENet(2, (8,), generator=torch.Generator().manual_seed(3))
    b = ODENet(2, (8,), generator=torch.Generator().manual_seed(3))
    c = ODENet(2, (8,), generator=torch.Generator().manual_seed(4))
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert not all(torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters(), strict=True))


def test_bad_configs_list_the_valid_choices():
    with pytest.raises(
        ConfigError, match=r"Invalid activation \"relu\". Must be one of \['elu', 'silu', 'softplus', 'tanh'\]"
    ):
        ODENet(2, (8,), activation="relu")
    with pytest.raises(ConfigError, match="concatsquash"):
        ODENet(2, (8,), time="sometimes")
    with pytest.raises(ConfigError, match=r"hidden\[1\]"):
        ODENet(2, (8, 0))


@pytest.mark.parametrize("time", ["none", "concat", "concatsquash"])
@pytest.mark.parametrize("linear", [False, True])
def test_a_per_sample_time_gives_each_row_the_field_at_its_own_time(time, linear):
    """Flow matching evaluates f at one time per sample, (N, 1): row n must equal f(t_n, z_n) with a scalar t."""
    net = ODENet(2, (8, 8), time=time, linear=linear, generator=torch.Generator().manual_seed(0)).double()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))  # a non-zero linear term and MLP output layer
    z = torch.randn(6, 2, dtype=torch.float64)
    t = torch.linspace(-1.0, 2.0, 6, dtype=torch.float64)[:, None]
    rows = torch.cat([net(t[n, 0], z[n : n + 1]) for n in range(6)])
    torch.testing.assert_close(net(t, z), rows)
    f, cols = net.jacobian_columns(t, z)
    expected = torch.cat([net.jacobian_columns(t[n, 0], z[n : n + 1])[1] for n in range(6)], 1)
    torch.testing.assert_close(f, rows)
    torch.testing.assert_close(cols, expected)
    # and gradients reach every parameter through the per-sample path
    net(t, z).pow(2).sum().backward()
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in net.parameters())
