"""Solver settings: validation, every torchdiffeq method integrates, failures become SolverError."""

import math

import pytest
import torch

from cnfviz import ConfigError, SolverConfig
from cnfviz.flow.solver import FIXED_GRID_SOLVERS, SOLVERS, SolverError, odesolve


def test_solver_list_is_torchdiffeqs_minus_scipy():
    from torchdiffeq._impl.odeint import SOLVERS as TD

    assert set(SOLVERS) == set(TD) - {"scipy_solver"}
    assert {"dopri5", "rk4", "euler", "adaptive_heun", "implicit_adams"} <= set(SOLVERS)


@pytest.mark.parametrize("method", SOLVERS)
def test_every_method_integrates_exponential_decay(method):
    # torchdiffeq's explicit Adams goes up to order 12, whose stability region is tiny: it needs small steps.
    cfg = SolverConfig(method, rtol=1e-6, atol=1e-8, step_size=1e-3 if method == "explicit_adams" else 0.01)
    y = odesolve(
        lambda t, y: -y, torch.ones(3, 1, dtype=torch.float64), torch.tensor([0.0, 1.0], dtype=torch.float64), cfg
    )
    assert y.shape == (2, 3, 1)
    tol = 2e-2 if method == "euler" else 1e-3
    assert abs(float(y[-1, 0, 0]) - math.exp(-1)) < tol


def test_fixed_grid_flag():
    assert SolverConfig("rk4", step_size=0.1).is_fixed_grid
    assert not SolverConfig("dopri5").is_fixed_grid
    assert "rk4" in FIXED_GRID_SOLVERS and "dopri5" not in FIXED_GRID_SOLVERS


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "tsit5"}, r'Invalid solver "tsit5". Must be one of \[.*dopri5'),
        ({"rtol": 0}, r"solver.rtol must be in \(0, 1\]"),
        ({"atol": -1}, r"solver.atol"),
        ({"step_size": 0.0}, r"solver.step_size"),
        ({"adjoint": "yes"}, r"solver.adjoint must be true or false"),
        ({"max_steps": 3}, r"solver.max_steps"),
    ],
)
def test_bad_solver_settings_name_the_field(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        SolverConfig(**kwargs)


def test_a_stiff_problem_raises_a_solver_error_with_advice():
    cfg = SolverConfig("dopri5", rtol=1e-8, atol=1e-8, max_steps=50)
    with pytest.raises(SolverError, match="too stiff"):
        odesolve(lambda t, y: -1e6 * (y - torch.cos(t)), torch.zeros(1, 1), torch.tensor([0.0, 1.0]), cfg)


def test_the_solver_menu_comes_from_torchdiffeqs_registry():
    # The one private torchdiffeq import: if it moves upstream, the fallback lists stand in, and this
    # test says so loudly instead of the menu silently going stale.
    from torchdiffeq._impl.odeint import SOLVERS as registry  # noqa: F401

    from cnfviz.flow import solver

    assert solver.SOLVERS == solver._KNOWN_ADAPTIVE + solver._KNOWN_FIXED_GRID
    assert solver.FIXED_GRID_SOLVERS == solver._KNOWN_FIXED_GRID
    assert "scipy_solver" not in solver.SOLVERS
