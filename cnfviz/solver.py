"""ODE solver settings and the one place that calls torchdiffeq."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torchdiffeq
from torch import Tensor, nn
from torchdiffeq._impl.odeint import SOLVERS as _TORCHDIFFEQ_SOLVERS

from ._validation import ConfigError, check_range

__all__ = ["FIXED_GRID_SOLVERS", "SOLVERS", "SolverConfig", "SolverError", "odesolve"]

# scipy_solver round-trips through numpy and cannot backpropagate; every other torchdiffeq
# method is offered.
SOLVERS: tuple[str, ...] = tuple(name for name in _TORCHDIFFEQ_SOLVERS if name != "scipy_solver")
FIXED_GRID_SOLVERS: tuple[str, ...] = ("euler", "midpoint", "heun2", "heun3", "rk4", "explicit_adams", "implicit_adams")
FIXED_GRID_SOLVERS = tuple(s for s in FIXED_GRID_SOLVERS if s in SOLVERS)


class SolverError(RuntimeError):
    """The ODE solve failed (e.g. the adaptive step size underflowed on stiff dynamics)."""


@dataclass(frozen=True)
class SolverConfig:
    """How to integrate the ODE.

    Arguments:
        method: a torchdiffeq method, one of :data:`SOLVERS`.
        rtol: relative tolerance of adaptive methods.
        atol: absolute tolerance of adaptive methods.
        step_size: step of fixed-grid methods (ignored by adaptive ones). ``None`` lets a
            fixed-grid method step once per output time, which is rarely what you want.
        adjoint: backpropagate with the adjoint method (O(1) memory, more function evaluations)
            instead of directly through the solver's operations.
        max_steps: cap on adaptive steps per solve; exceeding it raises :class:`SolverError`
            instead of grinding on a stiff problem.

    Example:
        >>> SolverConfig("rk4", step_size=0.25).is_fixed_grid
        True
    """

    method: str = "dopri5"
    rtol: float = 1e-5
    atol: float = 1e-5
    step_size: float | None = None
    adjoint: bool = False
    max_steps: int = 2000

    def __post_init__(self) -> None:
        if self.method not in SOLVERS:
            raise ConfigError(f'Invalid solver "{self.method}". Must be one of {list(SOLVERS)}')
        check_range(self.rtol, "solver.rtol", lo=0, hi=1, lo_open=True)
        check_range(self.atol, "solver.atol", lo=0, hi=1, lo_open=True)
        if self.step_size is not None:
            check_range(self.step_size, "solver.step_size", lo=0, lo_open=True, hi=100)
        if not isinstance(self.adjoint, bool):
            raise ConfigError(f"solver.adjoint must be true or false (got {self.adjoint!r})")
        if not isinstance(self.max_steps, int) or self.max_steps < 10:
            raise ConfigError(f"solver.max_steps must be an integer >= 10 (got {self.max_steps!r})")

    @property
    def is_fixed_grid(self) -> bool:
        return self.method in FIXED_GRID_SOLVERS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def odesolve(
    func: nn.Module | Callable[[Tensor, Tensor], Tensor],
    y0: Tensor,
    t: Tensor,
    solver: SolverConfig,
    adjoint_params: tuple[Tensor, ...] | None = None,
) -> Tensor:
    """Integrate ``dy/dt = func(t, y)`` from ``y0`` over the times ``t``.

    Arguments:
        func: the dynamics; must be an ``nn.Module`` when ``solver.adjoint`` is set.
        y0: initial state, shape (N, D).
        t: output times, shape (T,), strictly monotone (increasing or decreasing).
        solver: the settings.
        adjoint_params: parameters the adjoint differentiates (defaults to ``func.parameters()``).

    Returns:
        The state at each time, shape (T, N, D).

    Raises:
        SolverError: when torchdiffeq gives up (step size underflow, too many steps).
    """
    options: dict[str, Any] = {}
    kwargs: dict[str, Any] = {}
    if solver.is_fixed_grid:
        if solver.step_size is not None:
            options["step_size"] = solver.step_size
    else:
        kwargs = {"rtol": solver.rtol, "atol": solver.atol}
        if solver.method not in ("explicit_adams", "implicit_adams", "fixed_adams"):
            options["max_num_steps"] = solver.max_steps
    try:
        if solver.adjoint:
            if not isinstance(func, nn.Module):
                raise ConfigError("the adjoint method needs the dynamics to be an nn.Module")
            extra = {} if adjoint_params is None else {"adjoint_params": adjoint_params}
            return torchdiffeq.odeint_adjoint(
                func, y0, t, method=solver.method, options=options, adjoint_options=dict(options), **kwargs, **extra
            )
        return torchdiffeq.odeint(func, y0, t, method=solver.method, options=options, **kwargs)
    except AssertionError as err:  # torchdiffeq signals dt underflow and step limits with assert
        raise SolverError(
            f"ODE solver {solver.method} failed: {err}. The dynamics may be too stiff; "
            "try a shorter time span, a smaller learning rate or looser tolerances."
        ) from err
