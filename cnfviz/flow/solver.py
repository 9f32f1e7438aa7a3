"""ODE solver settings and the one place that calls torchdiffeq."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
import torchdiffeq
from torch import Tensor, nn

from .._validation import ConfigError, check_bool, check_int_range, check_range

__all__ = [
    "FIXED_GRID_SOLVERS",
    "MAX_FIXED_STEPS",
    "SOLVERS",
    "STAGES",
    "SolverConfig",
    "SolverError",
    "SolverInterrupted",
    "check_time_grid",
    "fixed_steps",
    "odesolve",
]

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


# Evaluations of the dynamics per step (first-same-as-last stages not counted twice).
STAGES: dict[str, int] = {
    "dopri8": 12,
    "dopri5": 6,
    "bosh3": 3,
    "fehlberg2": 3,
    "adaptive_heun": 2,
    "euler": 1,
    "midpoint": 2,
    "heun2": 2,
    "heun3": 3,
    "rk4": 4,
    "explicit_adams": 1,
    "implicit_adams": 3,  # a predictor and about two corrector iterations
    "fixed_adams": 1,
}

MAX_FIXED_STEPS = 100_000
"""The most steps one fixed-grid solve may take when no NFE cap bounds it: the solver builds the whole time
grid before its first evaluation, so ``step_size`` 1e-9 would allocate gigabytes before any check ran."""


def fixed_steps(solver: SolverConfig, span: float) -> int:
    """The steps of one fixed-grid solve over ``span`` (1 where no step size is set): what the time grid holds.

    Example:
        >>> fixed_steps(SolverConfig("rk4", step_size=0.25), 1.0), fixed_steps(SolverConfig("dopri5"), 1.0)
        (4, 1)
    """
    if not solver.is_fixed_grid or solver.step_size is None:
        return 1
    return max(1, math.ceil(span / solver.step_size - 1e-9))


def check_time_grid(solver: SolverConfig, tspan: tuple[float, float] | list[float]) -> None:
    """Refuse a fixed time grid too fine to build or to solve, counted from the span and the step before it exists.

    A grid whose evaluations per solve exceed ``solver.max_nfe`` would stop every solve at the cap; one of
    more than :data:`MAX_FIXED_STEPS` steps would allocate its grid before the first evaluation. Every channel
    asks this before anything is built: the server's and the CLI's budget (``cnfviz.runtime.budget.check_run``),
    the library's :class:`~cnfviz.Trainer`, and :func:`odesolve` itself.

    Arguments:
        solver: the settings; adaptive methods and a fixed grid without a step size always pass.
        tspan: ``(t0, t1)``, the integration interval.

    Raises:
        ConfigError: ``field="solver.step_size"``, with the smallest step that fits.

    Example:
        >>> try:
        ...     check_time_grid(SolverConfig("euler", step_size=1e-7, max_nfe=None), (0.0, 1.0))
        ... except ConfigError as err:
        ...     print(err.field)
        solver.step_size
    """
    if not solver.is_fixed_grid or solver.step_size is None:
        return
    span = abs(float(tspan[1]) - float(tspan[0]))
    steps = fixed_steps(solver, span)
    stages = STAGES.get(solver.method, 6)
    evaluations = steps * stages
    shown = [float(tspan[0]), float(tspan[1])]
    if solver.max_nfe is not None and evaluations > solver.max_nfe:
        fits = span / max(1, solver.max_nfe // stages)
        raise ConfigError(
            f"solver.step_size {solver.step_size:g} over model.tspan {shown} makes {steps:,} {solver.method} "
            f"steps, {evaluations:,} evaluations per solve, more than solver.max_nfe {solver.max_nfe:,} allows, so "
            f"every solve would stop at the cap. Use solver.step_size ≥ {fits:.3g}",
            field="solver.step_size",
            allowed=f"≥ {fits:.3g} with these settings",
        )
    if steps > MAX_FIXED_STEPS:
        raise ConfigError(
            f"solver.step_size {solver.step_size:g} over model.tspan {shown} makes {steps:,} steps per "
            f"solve; the limit is {MAX_FIXED_STEPS:,}. Use solver.step_size ≥ {span / MAX_FIXED_STEPS:.3g}",
            field="solver.step_size",
            allowed=f"≥ {span / MAX_FIXED_STEPS:.3g}",
        )


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
            # The grid is built whole before the first evaluation: a step too fine is refused before it exists.
            span = float(abs(t[-1] - t[0]))
            if fixed_steps(solver, span) > MAX_FIXED_STEPS:
                check_time_grid(replace(solver, max_nfe=None), (float(t[0]), float(t[-1])))
            options["grid_constructor"] = _uniform_grid(solver.step_size, span)
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
