"""ODE solver settings and the one place that calls torchdiffeq."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torchdiffeq
from torch import Tensor, nn

from .._validation import ConfigError, check_bool, check_int_range, check_range

__all__ = ["FIXED_GRID_SOLVERS", "SOLVERS", "SolverConfig", "SolverError", "SolverInterrupted", "odesolve"]

# torchdiffeq 0.2.x's methods, for a torchdiffeq whose private registry has moved.
_KNOWN_ADAPTIVE = ("dopri8", "dopri5", "bosh3", "fehlberg2", "adaptive_heun")
_KNOWN_FIXED_GRID = ("euler", "midpoint", "heun2", "heun3", "rk4", "explicit_adams", "implicit_adams", "fixed_adams")


def _torchdiffeq_methods() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(every method, the fixed-grid ones), read from torchdiffeq's registry.

    The one use of torchdiffeq's private ``_impl``: it has no public list of its methods. If the
    registry moves, the known 0.2.x lists stand in (tests/flow/test_solver.py fails loudly on that).
    scipy_solver round-trips through numpy and cannot backpropagate, so it is never offered.
    """
    try:
        from torchdiffeq._impl.odeint import SOLVERS as registry
        from torchdiffeq._impl.solvers import FixedGridODESolver
    except ImportError:
        return _KNOWN_ADAPTIVE + _KNOWN_FIXED_GRID, _KNOWN_FIXED_GRID
    methods = tuple(name for name in registry if name != "scipy_solver")
    return methods, tuple(name for name in methods if issubclass(registry[name], FixedGridODESolver))


SOLVERS: tuple[str, ...]
# Fixed-grid methods take a step size; the adaptive ones take rtol/atol and a step limit.
FIXED_GRID_SOLVERS: tuple[str, ...]
SOLVERS, FIXED_GRID_SOLVERS = _torchdiffeq_methods()


class SolverError(RuntimeError):
    """The ODE solve failed (e.g. the adaptive step size underflowed on stiff dynamics)."""


class SolverInterrupted(Exception):
    """A solve was abandoned because its owner asked to stop (see :attr:`cnfviz.FFJORD.interrupt`).

    Not a :class:`SolverError`: nothing went wrong with the ODE, so a trainer treats it as a stop.
    """


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
        max_nfe: cap on evaluations of the dynamics per solve (its backward pass included), the
            budget a user sees as NFE; exceeding it raises :class:`SolverError`. ``None`` for no cap.

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
    max_nfe: int | None = 5000

    def __post_init__(self) -> None:
        if self.method not in SOLVERS:
            raise ConfigError(
                f'Invalid solver "{self.method}". Must be one of {list(SOLVERS)}',
                field="solver.method",
                allowed=list(SOLVERS),
            )
        check_range(self.rtol, "solver.rtol", lo=0, hi=1, lo_open=True)
        check_range(self.atol, "solver.atol", lo=0, hi=1, lo_open=True)
        if self.step_size is not None:
            check_range(self.step_size, "solver.step_size", lo=0, lo_open=True, hi=100)
        object.__setattr__(self, "adjoint", check_bool(self.adjoint, "solver.adjoint"))
        try:
            object.__setattr__(self, "max_steps", check_int_range(self.max_steps, "solver.max_steps", lo=10, hi=10**9))
        except ConfigError:
            raise ConfigError(
                f"solver.max_steps must be an integer >= 10 (got {self.max_steps!r})",
                field="solver.max_steps",
                allowed="[10, 1000000000]",
            ) from None
        if self.max_nfe is not None:
            try:
                object.__setattr__(self, "max_nfe", check_int_range(self.max_nfe, "solver.max_nfe", lo=10, hi=10**9))
            except ConfigError:
                raise ConfigError(
                    f"solver.max_nfe must be an integer >= 10, or null for no cap (got {self.max_nfe!r})",
                    field="solver.max_nfe",
                    allowed="[10, 1000000000] or null",
                ) from None

    @property
    def is_fixed_grid(self) -> bool:
        return self.method in FIXED_GRID_SOLVERS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _uniform_grid(step_size: float, span: float) -> Callable[[Any, Tensor, Tensor], Tensor]:
    """A grid of equal steps no longer than ``step_size`` that ends exactly on the last time.

    torchdiffeq's own grid can end with a sliver of a step when the span is not a float multiple
    of the step, which wrecks the Adams methods; equal steps avoid that.
    """
    n = max(1, math.ceil(span / step_size - 1e-9))

    def grid(func: Any, y0: Tensor, t: Tensor) -> Tensor:
        return torch.linspace(float(t[0]), float(t[-1]), n + 1, dtype=t.dtype, device=t.device)

    return grid


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
    kwargs: dict[str, Any] = {"rtol": solver.rtol, "atol": solver.atol}  # the implicit Adams use them too
    if solver.is_fixed_grid:
        if solver.step_size is not None:
            options["grid_constructor"] = _uniform_grid(solver.step_size, float(abs(t[-1] - t[0])))
    else:
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
        raise SolverError(f"{_plain_words(str(err), solver)}. {STIFF_ADVICE}") from err


STIFF_ADVICE = "Try a smaller learning rate, a shorter time span, or the kinetic/Jacobian regularizers"


def _plain_words(message: str, solver: SolverConfig) -> str:
    """What torchdiffeq's terse assertion means, for someone watching a training run."""
    if "underflow in dt" in message:
        return (
            f"the {solver.method} solver's step size shrank to zero (dt underflow): "
            "the dynamics became too stiff to integrate"
        )
    if "max_num_steps" in message:
        return (
            f"the {solver.method} solver needed more than {solver.max_steps:,} steps for one solve: "
            "the dynamics became too stiff"
        )
    return f"the {solver.method} solver failed ({message})"


def nfe_exceeded(solver: SolverConfig) -> SolverError:
    """The error for a solve that used more than ``solver.max_nfe`` evaluations of the dynamics."""
    return SolverError(
        f"one solve needed more than {solver.max_nfe:,} evaluations of the dynamics (the NFE cap): "
        f"the dynamics became too stiff for {solver.method}. {STIFF_ADVICE}"
    )
