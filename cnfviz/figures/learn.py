"""Plotly figures for the Learn page, one per idea, drawn from the :mod:`cnfviz.features.learn` demos.

Every builder takes a demo dataclass and returns a small ``go.Figure``; none computes anything a
reader would need to trust, so the numbers stay testable in :mod:`cnfviz.features.learn`.

Example:
    >>> from cnfviz.features.learn import affine_change_of_variables
    >>> len(change_of_variables_figure(affine_change_of_variables(2.0, 1.0, n_samples=50)).data)
    3
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

if TYPE_CHECKING:
    from ..features.learn import (
        AffineDemo,
        FlowMatchingDemo,
        HutchinsonDemo,
        LinearFlowDemo,
        RegularizerRun,
        SamplingDemo,
        TimeSpanRun,
    )

from .style import BASE_COLOR, LEARNED_COLOR, PATH_COLORS, SECOND_COLOR, TEST_COLOR, TRUE_COLOR, compact

__all__ = [
    "COLORS",
    "change_of_variables_figure",
    "flow_matching_figure",
    "hutchinson_figure",
    "linear_flow_figure",
    "regularizer_figure",
    "sampling_figure",
    "time_span_figure",
]

# The palette's meanings (see cnfviz.figures.style): grey is the base N(0, I), orange is what the flow makes, the
# dark line is the truth (target density or exact value); blue and purple are the two probes.
COLORS: dict[str, str] = {
    "base": BASE_COLOR,
    "model": LEARNED_COLOR,
    "true": TRUE_COLOR,
    "gaussian": TEST_COLOR,
    "rademacher": SECOND_COLOR,
    "exact": TRUE_COLOR,
}


def change_of_variables_figure(demo: AffineDemo) -> go.Figure:
    """Base density, pushed-sample histogram and the change-of-variables density: 3 traces."""
    fig = go.Figure()
    fig.add_histogram(
        x=demo.samples,
        histnorm="probability density",
        nbinsx=60,
        name="histogram of a·z + b",
        marker_color=COLORS["model"],
        opacity=0.45,
    )
    fig.add_scatter(
        x=demo.xs, y=demo.p_z, name="p_z = N(0, 1)", line={"color": COLORS["base"], "dash": "dash", "width": 2}
    )
    fig.add_scatter(x=demo.xs, y=demo.p_x, name="p_x(x) = p_z(z) / |a|", line={"color": COLORS["true"], "width": 3})
    fig.update_xaxes(title_text="x (or z)")
    fig.update_yaxes(title_text="density", rangemode="tozero")
    return compact(fig)


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


def hutchinson_figure(demo: HutchinsonDemo) -> go.Figure:
    """Histograms of Gaussian and Rademacher estimates with the exact trace as a line: 2 traces."""
    both = np.concatenate([demo.estimates["gaussian"], demo.estimates["rademacher"]])
    lo, hi = np.quantile(both, [0.005, 0.995])
    spread = max(hi - lo, 1e-3 * max(1.0, abs(demo.exact)))
    lo, hi = min(lo, demo.exact) - 0.05 * spread, max(hi, demo.exact) + 0.05 * spread
    bins = {"start": lo, "end": hi, "size": (hi - lo) / 60}
    fig = go.Figure()
    for noise in ("gaussian", "rademacher"):
        est = demo.estimates[noise]
        fig.add_histogram(
            x=est,
            xbins=bins,
            histnorm="probability density",
            name=f"{noise}: mean {est.mean():.3f}, sd {est.std(ddof=1):.3f}",
            marker_color=COLORS[noise],
            opacity=0.5,
        )
    fig.add_vline(
        x=demo.exact,
        line={"color": COLORS["exact"], "width": 3},
        annotation_text=f"exact tr = {demo.exact:.3f}",
        annotation_position="top right",
    )
    fig.update_layout(barmode="overlay")
    fig.update_xaxes(title_text="estimate of tr(∂f/∂z)", range=[lo, hi])
    fig.update_yaxes(title_text="density")
    return compact(fig)


def time_span_figure(run: TimeSpanRun, *, data_mean: float = 6.0) -> go.Figure:
    """Learned vs true density at t1 (left) and the density path p(x, t) (right): 4 traces.

    A dotted line on the left marks x = t1, the farthest a point starting at 0 can travel when
    |dz/dt| < 1; the dashed line on the right is that limit at every time, x = t.
    """
    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.5, 0.5],
        subplot_titles=(f"density at t = {run.t1:g}", "p(x, t) from t = 0 to t = " + f"{run.t1:g}"),
    )
    fig.add_scatter(
        x=run.xs,
        y=run.true,
        name=f"true N({data_mean:g}, 0.7)",
        line={"color": COLORS["true"], "width": 3},
        row=1,
        col=1,
    )
    fig.add_scatter(x=run.xs, y=run.learned, name="learned", line={"color": COLORS["model"], "width": 3}, row=1, col=1)
    fig.add_vline(
        x=run.t1,
        line={"color": COLORS["base"], "dash": "dot", "width": 2},
        annotation_text=f"x = {run.t1:g}",
        annotation_position="top left",
        row=1,
        col=1,
    )
    density = run.path_density
    fig.add_heatmap(
        x=run.path_times,
        y=run.xs,
        z=density.T,
        colorscale="Blues",
        zmin=0.0,
        zmax=float(min(np.max(density), 1.0)),
        showscale=False,
        hovertemplate="t %{x:.2f}<br>x %{y:.2f}<br>p %{z:.3f}<extra></extra>",
        row=1,
        col=2,
    )
    fig.add_scatter(
        x=run.path_times,
        y=run.path_times,  # the fixed y range clips it where it leaves the grid
        mode="lines",
        name="speed limit x = t",
        line={"color": COLORS["true"], "dash": "dash", "width": 2},
        row=1,
        col=2,
    )
    fig.update_xaxes(title_text="x", range=[run.xs[0], run.xs[-1]], row=1, col=1)
    peak = float(max(np.max(run.true), min(np.max(run.learned), 3 * np.max(run.true))))
    fig.update_yaxes(title_text="density", range=[0, 1.1 * peak], row=1, col=1)
    fig.update_xaxes(title_text="t", row=1, col=2)
    fig.update_yaxes(title_text="x", range=[run.xs[0], run.xs[-1]], row=1, col=2)
    return compact(fig, 400, legend_below=True)


def _joined(paths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All paths (T, n, 2) as one polyline with NaN breaks, so a panel is one trace, not n."""
    t, n, _ = paths.shape
    gap = np.full((1, n, 2), np.nan)
    joined = np.concatenate([paths, gap], 0).transpose(1, 0, 2).reshape(n * (t + 1), 2)
    return joined[:, 0], joined[:, 1]


def _run_title(run: RegularizerRun) -> str:
    if run.lambda_kinetic == 0 and run.lambda_jacobian == 0:
        label = "no regularizer"
    else:
        weights = [f"{w:g}·λ{s}" for w, s in ((run.lambda_kinetic, "₁"), (run.lambda_jacobian, "₂")) if w]
        label = "loss + " + " + ".join(weights)
    return f"{label}: λ₁ = {run.kinetic:.2f}, λ₂ = {run.jacobian:.2f}"


def regularizer_figure(
    reference: RegularizerRun, other: RegularizerRun, *, max_paths: int = 80, dots: int = 11
) -> go.Figure:
    """Trajectories of two runs side by side: 4 traces (per panel, the paths and dots along them).

    The dots sit at ``dots`` equally spaced times, coloured grey (t0) to orange (t1), so evenly
    spaced dots mean constant speed. Only the first ``max_paths`` paths are drawn, to stay legible.
    """
    fig = make_subplots(
        rows=1,
        cols=2,
        shared_xaxes=True,
        shared_yaxes=True,
        horizontal_spacing=0.04,
        subplot_titles=(_run_title(reference), _run_title(other)),
    )
    for col, run in ((1, reference), (2, other)):
        paths = run.paths[:, :max_paths]
        x, y = _joined(paths)
        first = col == 1
        fig.add_scatter(
            x=x,
            y=y,
            mode="lines",
            line={"color": "rgba(46, 134, 171, 0.45)", "width": 1.2},
            name="path z(t)",
            legendgroup="path",
            showlegend=first,
            hoverinfo="skip",
            row=1,
            col=col,
        )
        idx = np.linspace(0, len(run.times) - 1, dots).round().astype(int)
        points = paths[idx]  # (dots, n, 2)
        fig.add_scatter(
            x=points[..., 0].ravel(),
            y=points[..., 1].ravel(),
            mode="markers",
            marker={
                "color": np.repeat(run.times[idx], paths.shape[1]),
                "colorscale": [[0.0, COLORS["base"]], [1.0, COLORS["true"]]],
                "size": 4,
            },
            name=f"z at {dots} equally spaced times (grey t₀ → orange t₁)",
            legendgroup="dots",
            showlegend=first,
            hovertemplate="t %{marker.color:.2f}<extra></extra>",
            row=1,
            col=col,
        )
    both = np.concatenate([reference.paths.reshape(-1, 2), other.paths.reshape(-1, 2)])
    lo, hi = np.quantile(both, [0.001, 0.999])
    lo, hi = float(lo) - 0.2, float(hi) + 0.2
    fig.update_xaxes(range=[lo, hi], constrain="domain")
    fig.update_yaxes(range=[lo, hi], scaleanchor="x", scaleratio=1, row=1, col=1)
    fig.update_yaxes(range=[lo, hi], row=1, col=2)
    fig.update_annotations(font_size=13)
    return compact(fig, 460, legend_below=True)


def _circles(radii: tuple[float, ...] = (1.0, 2.0)) -> tuple[np.ndarray, np.ndarray]:
    theta = np.linspace(0, 2 * np.pi, 97)
    xs = [np.append(r * np.cos(theta), np.nan) for r in radii]
    ys = [np.append(r * np.sin(theta), np.nan) for r in radii]
    return np.concatenate(xs), np.concatenate(ys)


def sampling_figure(demo: SamplingDemo, frame: int) -> go.Figure:
    """Forward-pushed samples and backward-pulled data at ``times[frame]``: 4 traces.

    Each panel also carries the 1 and 2 standard-deviation circles of N(0, I), the shape the
    points should have at t0.
    """
    t = float(demo.times[frame])
    fig = make_subplots(
        rows=1,
        cols=2,
        shared_xaxes=True,
        shared_yaxes=True,
        horizontal_spacing=0.04,
        subplot_titles=(f"forward: N(0, I) pushed to t = {t:.2f}", f"backward: data pulled to t = {t:.2f}"),
    )
    cx, cy = _circles()
    for col, points, color, name in (
        (1, demo.forward[frame], COLORS["model"], "base samples, flowing forward"),
        (2, demo.backward[frame], COLORS["true"], "data, flowing backward"),
    ):
        fig.add_scatter(
            x=points[:, 0],
            y=points[:, 1],
            mode="markers",
            marker={"color": color, "size": 4},
            name=name,
            row=1,
            col=col,
        )
        fig.add_scatter(
            x=cx,
            y=cy,
            mode="lines",
            line={"color": COLORS["base"], "dash": "dash", "width": 1.5},
            name="N(0, I): 1σ and 2σ",
            legendgroup="circles",
            showlegend=col == 1,
            hoverinfo="skip",
            row=1,
            col=col,
        )
    every = np.concatenate([demo.forward.reshape(-1, 2), demo.backward.reshape(-1, 2)])
    lo, hi = np.quantile(every, [0.002, 0.998])
    lo, hi = float(min(lo, -2.5)) - 0.2, float(max(hi, 2.5)) + 0.2
    fig.update_xaxes(range=[lo, hi], constrain="domain")
    fig.update_yaxes(range=[lo, hi], scaleanchor="x", scaleratio=1, row=1, col=1)
    fig.update_yaxes(range=[lo, hi], row=1, col=2)
    return compact(fig, 460, legend_below=True)


def flow_matching_figure(demo: FlowMatchingDemo) -> go.Figure:
    """Flow matching's two kinds of path side by side: 6 traces.

    Left, the straight conditional paths x0 → x1 of the pairing; right, the marginal paths from the same
    x0 along the exact marginal field. Both panels mark the start points (grey) and the mixture means.
    """
    pairing = "independent pairs" if demo.pairing == "independent" else "OT pairs"
    fig = make_subplots(
        rows=1,
        cols=2,
        shared_xaxes=True,
        shared_yaxes=True,
        horizontal_spacing=0.04,
        subplot_titles=(
            f"conditional paths, {pairing}: {demo.crossings} crossings",
            f"marginal paths: straightness {demo.marginal_straightness:.2f}",
        ),
    )
    segments = np.stack([demo.x0, demo.x1])  # (2, n, 2)
    for col, paths, name in ((1, segments, "straight path x0 → x1"), (2, demo.marginal, "marginal path")):
        x, y = _joined(paths)
        fig.add_scatter(
            x=x,
            y=y,
            mode="lines",
            line={"color": "rgba(46, 134, 171, 0.55)", "width": 1.2},
            name=name,
            hoverinfo="skip",
            row=1,
            col=col,
        )
        fig.add_scatter(
            x=demo.x0[:, 0],
            y=demo.x0[:, 1],
            mode="markers",
            marker={"color": COLORS["base"], "size": 5},
            name="noise x0 (t₀)",
            legendgroup="x0",
            showlegend=col == 1,
            row=1,
            col=col,
        )
        ends = demo.x1 if col == 1 else demo.marginal[-1]
        fig.add_scatter(
            x=ends[:, 0],
            y=ends[:, 1],
            mode="markers",
            marker={"color": COLORS["true"], "size": 5},
            name="end (t₁)",
            legendgroup="end",
            showlegend=col == 1,
            row=1,
            col=col,
        )
    lim = float(np.abs(np.concatenate([demo.x0, demo.x1, demo.marginal.reshape(-1, 2)])).max()) + 0.3
    fig.update_xaxes(range=[-lim, lim], constrain="domain")
    fig.update_yaxes(range=[-lim, lim], scaleanchor="x", scaleratio=1, row=1, col=1)
    fig.update_yaxes(range=[-lim, lim], row=1, col=2)
    fig.update_annotations(font_size=13)
    return compact(fig, 440, legend_below=True)
