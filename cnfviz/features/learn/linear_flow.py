"""§2 The instantaneous change of variables: a linear flow whose log-density has a closed form, and its figure."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import Tensor, nn

from ...figures.style import PATH_COLORS, compact
from ...flow.divergence import TRACE_ESTIMATORS
from ...flow.dynamics import ODENet
from ...flow.ffjord import standard_normal_logprob
from ...flow.solver import SolverConfig, odesolve
from .style import COLORS

__all__ = ["LinearFlowDemo", "linear_field_matrix", "linear_flow_demo", "linear_flow_figure"]

# The linear-flow demo's field keeps a fixed anisotropic stretch on top of the chosen trace, so
# the paths are not just circles or rays, while its trace (the only thing log p sees) stays as set.
_LINEAR_SHEAR = 0.6


@dataclass(frozen=True)
class LinearFlowDemo:
    """Points carried by dz/dt = A z, with log p along each path from the ODE and from the formula.

    ``matrix`` (2, 2): A; ``times`` (T,); ``paths`` (T, n, 2); ``logp_ode`` (T, n): log p(z(t))
    integrated with d log p/dt = −tr(∂f/∂z); ``logp_exact`` (T, n): log N(z(0)) − tr(A)·t.
    """

    matrix: np.ndarray
    times: np.ndarray
    paths: np.ndarray
    logp_ode: np.ndarray
    logp_exact: np.ndarray


class _LogDensityODE(nn.Module):
    """The augmented state [z, log p] (N, d + 1) with d log p/dt = −tr(∂f/∂z), the exact trace."""

    def __init__(self, net: ODENet) -> None:
        super().__init__()
        self.net = net
        self.trace = TRACE_ESTIMATORS["exact"].fn

    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        f, div, _ = self.trace(self.net, t, y[:, : self.net.dim], None, False)
        return torch.cat([f, -div[:, None]], 1)


def linear_field_matrix(trace: float, rotation: float) -> np.ndarray:
    """A (2, 2) with the given trace: a fixed stretch along x, squeeze along y, plus a rotation.

    Example:
        >>> float(np.trace(linear_field_matrix(0.5, 2.0)))
        0.5
    """
    return np.array(
        [[trace / 2 + _LINEAR_SHEAR, -rotation], [rotation, trace / 2 - _LINEAR_SHEAR]],
        dtype=np.float64,
    )


def linear_flow_demo(
    trace: float,
    rotation: float,
    *,
    t1: float = 1.0,
    n_paths: int = 6,
    n_times: int = 41,
    seed: int = 0,
    solver: SolverConfig | None = None,
) -> LinearFlowDemo:
    """Integrate the instantaneous change of variables for f(z) = A z and compare with tr(A)·t.

    The field is a cnfviz :class:`~cnfviz.flow.dynamics.ODENet` with no hidden layer and no activation,
    i.e. exactly z ↦ A z, so the divergence comes from the same forward-mode Jacobian FFJORD uses.

    Arguments:
        trace: tr(A), the divergence; log p falls by trace·t along every path.
        rotation: the antisymmetric part ω; it turns the paths without changing any density.
        t1: end time.
        n_paths: starting points z(0) ~ N(0, I), drawn with ``seed``.
        n_times: output times T from 0 to t1.
        solver: ODE solver; defaults to a tight dopri5.

    Returns:
        A :class:`LinearFlowDemo`.

    Example:
        >>> demo = linear_flow_demo(1.0, 0.0, n_paths=2, n_times=3)
        >>> bool(np.allclose(demo.logp_ode, demo.logp_exact, atol=1e-4))
        True
    """
    matrix = linear_field_matrix(trace, rotation)
    net = ODENet(2, (), activation="tanh", time="none", final_activation=False)
    with torch.no_grad():
        net.layers[0].weight.copy_(torch.as_tensor(matrix))
        net.layers[0].bias.zero_()
    net = net.double()  # float64: the comparison with the formula should show the method, not rounding
    z0 = torch.randn((n_paths, 2), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    times = torch.linspace(0.0, t1, n_times, dtype=torch.float64)
    y0 = torch.cat([z0, standard_normal_logprob(z0)[:, None]], 1)
    with torch.no_grad():
        yt = odesolve(_LogDensityODE(net), y0, times, solver or SolverConfig("dopri5", rtol=1e-8, atol=1e-8))
    t = times.numpy()
    return LinearFlowDemo(
        matrix=matrix,
        times=t,
        paths=yt[..., :2].numpy(),
        logp_ode=yt[..., 2].numpy(),
        logp_exact=standard_normal_logprob(z0).numpy()[None, :] - np.trace(matrix) * t[:, None],
    )


def linear_flow_figure(demo: LinearFlowDemo, *, marker_every: int = 5) -> go.Figure:
    """Paths in the plane (left) and log p along them (right): 3·n + 1 traces for n paths.

    Per path: its trajectory, its ODE log-density and the analytic log-density (markers every
    ``marker_every`` times); one more trace marks the starting points.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=("paths z(t) under dz/dt = A z", "log p(z(t)) along each path"))
    n = demo.paths.shape[1]
    for i in range(n):
        color = PATH_COLORS[i % len(PATH_COLORS)]
        fig.add_scatter(
            x=demo.paths[:, i, 0],
            y=demo.paths[:, i, 1],
            mode="lines",
            line={"color": color, "width": 2},
            showlegend=False,
            row=1,
            col=1,
        )
        fig.add_scatter(
            x=demo.times,
            y=demo.logp_ode[:, i],
            mode="lines",
            line={"color": color, "width": 2},
            name="ODE: d log p/dt = −tr(∂f/∂z)",
            legendgroup="ode",
            showlegend=i == 0,
            row=1,
            col=2,
        )
        fig.add_scatter(
            x=demo.times[::marker_every],
            y=demo.logp_exact[::marker_every, i],
            mode="markers",
            marker={"color": color, "size": 7, "symbol": "circle-open", "line": {"width": 2}},
            name="exact: log N(z₀) − tr(A)·t",
            legendgroup="exact",
            showlegend=i == 0,
            row=1,
            col=2,
        )
    fig.add_scatter(
        x=demo.paths[0, :, 0],
        y=demo.paths[0, :, 1],
        mode="markers",
        marker={"color": COLORS["base"], "size": 8},
        name="start z₀ ~ N(0, I)",
        row=1,
        col=1,
    )
    fig.update_xaxes(title_text="z₁", row=1, col=1)
    fig.update_yaxes(title_text="z₂", scaleanchor="x", scaleratio=1, row=1, col=1)
    fig.update_xaxes(title_text="t", row=1, col=2)
    fig.update_yaxes(title_text="log p", row=1, col=2)
    return compact(fig, 420, legend_below=True)
