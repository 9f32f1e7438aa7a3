"""Numbers behind the live plots: densities on grids, trajectories, vector fields (numpy, no plotting).

Each function evaluates a model once and returns plain arrays in a small frozen dataclass, so a
training thread can compute them between iterations and a UI thread can draw them later.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..flow.solver import SolverConfig

if TYPE_CHECKING:
    from ..flow.ffjord import FFJORD
    from ..targets import Target

__all__ = [
    "LIVE_SOLVER",
    "DensityPathView",
    "DensityView",
    "FieldView",
    "TrajectoryView",
    "Visuals",
    "compute_visuals",
    "density_path_view",
    "density_view",
    "field_view",
    "grid_points",
    "trajectory_view",
]

# Plots need to look right, not to be certified: a moderately tight adaptive solve keeps the
# live figures cheap while staying faithful to the continuous model.
LIVE_SOLVER = SolverConfig("dopri5", rtol=1e-4, atol=1e-4, max_steps=5000)


def _as_tensor(model: FFJORD, x: np.ndarray) -> torch.Tensor:
    p = next(model.parameters())
    return torch.as_tensor(np.asarray(x, dtype=np.float32)).to(p.device)


def grid_points(axes: tuple[np.ndarray, ...]) -> np.ndarray:
    """All points of a 1D or 2D grid as (R, 1) or (R·R, 2), x varying fastest in 2D."""
    if len(axes) == 1:
        return axes[0][:, None]
    gx, gy = np.meshgrid(axes[0], axes[1])
    return np.stack([gx.ravel(), gy.ravel()], 1)


@dataclass(frozen=True)
class DensityView:
    """Learned and true densities on a grid, plus samples.

    ``axes``: (xs,) in 1D or (xs, ys) in 2D, each (R,). ``learned``/``true``: (R,) in 1D, (R, R)
    indexed [iy, ix] in 2D; ``true`` is None when the target has no density. ``data``: training
    samples (n, d); ``samples``: model samples (m, d). ``true_is_estimate`` flags histogram/KDE
    estimates.
    """

    axes: tuple[np.ndarray, ...]
    learned: np.ndarray
    true: np.ndarray | None
    data: np.ndarray
    samples: np.ndarray
    true_is_estimate: bool


def density_view(
    model: FFJORD,
    target: Target,
    data: np.ndarray,
    *,
    resolution: int | None = None,
    n_samples: int = 500,
    seed: int = 0,
    solver: SolverConfig | None = None,
) -> DensityView:
    """Evaluate the learned density on a grid over the target's bounds and draw model samples."""
    resolution = resolution or (400 if target.dim == 1 else 64)
    axes = target.grid(resolution)
    pts = grid_points(axes)
    shape = (resolution,) * target.dim
    solver = solver or LIVE_SOLVER
    with torch.no_grad():
        learned = model.log_prob(_as_tensor(model, pts), solver=solver, trace="exact").exp()
        samples = model.sample(n_samples, generator=torch.Generator().manual_seed(seed), solver=solver)
    return DensityView(
        axes=axes,
        learned=learned.double().cpu().numpy().reshape(shape),
        true=target.pdf(pts).reshape(shape),
        data=np.asarray(data),
        samples=samples.double().cpu().numpy(),
        true_is_estimate=target.density_kind != "exact",
    )


@dataclass(frozen=True)
class TrajectoryView:
    """Paths from base samples to data: ``times`` (T,), ``paths`` (T, n, d)."""

    times: np.ndarray
    paths: np.ndarray


def trajectory_view(
    model: FFJORD, n: int = 200, n_times: int = 41, *, seed: int = 0, solver: SolverConfig | None = None
) -> TrajectoryView:
    """Integrate ``n`` fixed base samples (fixed by ``seed``) through ``n_times`` times from t0 to t1."""
    times, paths = model.trajectories(
        n, n_times, generator=torch.Generator().manual_seed(seed), solver=solver or LIVE_SOLVER
    )
    return TrajectoryView(times.double().cpu().numpy(), paths.double().cpu().numpy())


@dataclass(frozen=True)
class FieldView:
    """The vector field f(t, ·) on a grid, at several times.

    ``axes``: (xs,) or (xs, ys); ``times``: (T,); ``values``: (T, R, d) in 1D or (T, R, R, 2) in 2D
    (indexed [k, iy, ix, component]).
    """

    axes: tuple[np.ndarray, ...]
    times: np.ndarray
    values: np.ndarray


def field_view(model: FFJORD, bounds: np.ndarray, *, resolution: int | None = None, n_times: int = 11) -> FieldView:
    """Evaluate f(t, z) on a grid over ``bounds`` (d, 2) at ``n_times`` times across the span."""
    d = model.dim
    resolution = resolution or (200 if d == 1 else 21)
    axes = tuple(np.linspace(lo, hi, resolution) for lo, hi in np.asarray(bounds, dtype=float))
    pts = _as_tensor(model, grid_points(axes))
    t0, t1 = model.tspan
    times = np.linspace(t0, t1, n_times)
    values = np.stack([model.vector_field(pts, float(t)).double().cpu().numpy() for t in times])
    shape = (n_times,) + (resolution,) * d + (d,)
    return FieldView(axes, times, values.reshape(shape))


@dataclass(frozen=True)
class DensityPathView:
    """1D only: the density p(x, t) over (t, x). ``xs`` (R,), ``times`` (T,), ``density`` (T, R)."""

    xs: np.ndarray
    times: np.ndarray
    density: np.ndarray


def density_path_view(
    model: FFJORD,
    bounds: np.ndarray,
    *,
    resolution: int = 200,
    n_times: int = 41,
    solver: SolverConfig | None = None,
) -> DensityPathView:
    """p_t(x) for a 1D flow on a regular (t, x) grid.

    A 1D flow map is monotone, so a fine grid of base points pushed forward with their
    log-densities can be interpolated onto a regular x grid at every time: one solve in all.
    """
    if model.dim != 1:
        raise ValueError("density_path_view is for 1D flows")
    t0, t1 = model.tspan
    times = np.linspace(t0, t1, n_times)
    z = torch.linspace(-6.0, 6.0, 2001, dtype=torch.float32)[:, None]
    p = next(model.parameters())
    paths, logp = model.density_path(
        z.to(p.device), torch.as_tensor(times, dtype=torch.float32), solver=solver or LIVE_SOLVER
    )
    paths = paths[..., 0].double().cpu().numpy()
    dens = np.exp(logp.double().cpu().numpy())
    lo, hi = (float(v) for v in np.asarray(bounds, dtype=float)[0])
    lo, hi = min(lo, -4.0), max(hi, 4.0)  # keep the base N(0, 1) in view at t0
    xs = np.linspace(lo, hi, resolution)
    out = np.stack([np.interp(xs, paths[k], dens[k], left=0.0, right=0.0) for k in range(n_times)])
    return DensityPathView(xs, times, out)


@dataclass(frozen=True)
class Visuals:
    """Everything the heavy plots need, computed at one iteration of one model."""

    iteration: int
    density: DensityView
    trajectories: TrajectoryView
    field: FieldView
    density_path: DensityPathView | None
    seconds: float


def compute_visuals(
    model: FFJORD,
    target: Target,
    data: np.ndarray,
    iteration: int,
    *,
    seed: int = 0,
    solver: SolverConfig | None = None,
) -> Visuals:
    """Evaluate the model for all plots. Trajectories and samples use fixed base points (``seed``).

    ``solver`` defaults to :data:`~cnfviz.figures.views.LIVE_SOLVER`; a run with a (guarded) fixed-step
    solver passes that one while it trains, which makes the live pictures about 5x cheaper.
    """
    start = time.perf_counter()
    was_training = model.training
    model.eval()
    try:
        # Live pictures (a solver given) use a coarser 2D grid; paused and final ones the full one.
        resolution = 48 if solver is not None and target.dim == 2 else None
        density = density_view(model, target, data[:2000], seed=seed, solver=solver, resolution=resolution)
        traj = trajectory_view(model, n=300 if target.dim == 1 else 400, seed=seed + 1, solver=solver)
        lo = np.minimum(target.bounds[:, 0], traj.paths[-1].min(0))
        hi = np.maximum(target.bounds[:, 1], traj.paths[-1].max(0))
        if target.dim == 1:  # the field plot spans the base N(0, 1) and the data
            lo, hi = np.minimum(lo, -3.0), np.maximum(hi, 3.0)
        field = field_view(model, np.stack([lo, hi], 1))
        path = density_path_view(model, target.bounds, solver=solver) if target.dim == 1 else None
    finally:
        model.train(was_training)
    return Visuals(iteration, density, traj, field, path, time.perf_counter() - start)
