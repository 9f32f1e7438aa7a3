"""Plotly figures for the Compare page: every run's loss on one chart, and one small density figure per run.

A run keeps one colour everywhere (:func:`run_color`), so its loss curve, its progress row and its density
figure are easy to match. The density figures of one comparison can share a scale (``y_max`` in 1D,
``z_max`` in 2D), so that equal colours or heights mean equal densities from one figure to the next.

Example:
    >>> import numpy as np
    >>> history = {"iteration": np.arange(1, 6), "nll": np.linspace(3, 1, 5), "nfe": np.arange(1, 6) * 16}
    >>> fig = loss_curves_figure([("width = 8", history), ("width = 16", history)])
    >>> [t.name for t in fig.data if t.showlegend is not False]
    ['width = 8', 'width = 16']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .._text import figure_text
from .plots import decimate, nfe_per_iteration
from .style import DATA_COLOR, DENSITY_SCALE, LEARNED_COLOR, RUN_COLORS, TRUE_COLOR, finish, run_color
from .style import f32 as _f32
from .views import DensityView

__all__ = ["RUN_COLORS", "loss_curves_figure", "run_color", "run_density_figure", "target_density_figure"]

_MAX_POINTS = 600


def _layout(fig: go.Figure, title: str | None, height: int, *, legend: bool) -> go.Figure:
    # The legend sits above the plot and its subplot titles, below the figure title.
    top = (40 if title else 10) + (40 if legend else 0)
    return finish(fig, title, height, legend=legend, top=top, legend_y=1.1, legend_left=True, title_size=15)


def _is_regression(history: Mapping[str, np.ndarray]) -> bool:
    nll = np.asarray(history.get("nll", np.zeros(0)), dtype=np.float64)
    return bool(len(nll)) and bool(np.isnan(nll).all())


def loss_curves_figure(
    curves: Sequence[tuple[str, Mapping[str, np.ndarray]]], *, max_points: int = _MAX_POINTS, height: int = 380
) -> go.Figure:
    """Every run of every objective on one chart: the NLL (left), the NFE per iteration (middle), and the
    flow-matching loss of the runs that minimise it (right, only when there are any).

    Left, in nats, one scale for all: a likelihood run's training NLL as a line and its test NLL as dots; a
    flow-matching run computes no training likelihood (its ``nll`` is NaN), so its line is its test NLL
    every k iterations. Its own loss, a regression loss on another scale, gets the right-hand panel.

    Arguments:
        curves: ``(label, history)`` per run, in order; a history is a :class:`~cnfviz.Snapshot` history
            with ``iteration`` and ``nll`` (n,) and optionally ``loss`` (n,), ``nfe`` (n,, cumulative
            forward NFE), ``test_iteration`` and ``test_nll`` (k,).
        max_points: each curve is decimated to at most this many points.

    Returns:
        a figure with one legend entry per run, coloured by :func:`run_color`.
    """
    regression_runs = any(_is_regression(h) for _, h in curves)
    titles = ["NLL (nats): training —, test ●", "NFE per iteration"]
    if regression_runs:
        titles.append("flow-matching loss")
    fig = make_subplots(
        rows=1,
        cols=len(titles),
        column_widths=[0.5, 0.22, 0.28] if regression_runs else [0.62, 0.38],
        horizontal_spacing=0.07,
        subplot_titles=tuple(titles),
    )
    any_points = False
    for i, (label, history) in enumerate(curves):
        shown = figure_text(label)  # a label is user text, and plotly reads HTML in legends
        color = run_color(i)
        it = np.asarray(history.get("iteration", np.zeros(0)))
        any_points = any_points or len(it) > 0
        test_x = np.asarray(history.get("test_iteration", np.zeros(0)))
        test_y = np.asarray(history.get("test_nll", np.zeros(0)))
        line = {"color": color, "width": 2}
        if _is_regression(history):
            fig.add_trace(
                go.Scatter(
                    x=test_x,
                    y=_f32(test_y),
                    name=figure_text(f"{label} (test NLL)"),
                    legendgroup=shown,
                    mode="lines+markers",
                    line=line,
                ),
                row=1,
                col=1,
            )
            loss = history.get("loss")
            if loss is not None and len(loss) == len(it) and len(it):
                x, y = decimate(it, np.asarray(loss), max_points)
                fig.add_trace(
                    go.Scatter(
                        x=x, y=_f32(y), name=shown, legendgroup=shown, showlegend=False, mode="lines", line=line
                    ),
                    row=1,
                    col=3,
                )
        else:
            x, y = decimate(it, np.asarray(history.get("nll", np.zeros(0)), dtype=np.float64), max_points)
            fig.add_trace(
                go.Scatter(x=x, y=_f32(y), name=shown, legendgroup=shown, mode="lines", line=line), row=1, col=1
            )
            if len(test_x):
                fig.add_trace(
                    go.Scatter(
                        x=test_x,
                        y=_f32(test_y),
                        name=figure_text(f"{label} (test NLL)"),
                        legendgroup=shown,
                        showlegend=False,
                        mode="markers",
                        marker={"color": color, "size": 8, "line": {"color": "white", "width": 1}},
                    ),
                    row=1,
                    col=1,
                )
        nfe = history.get("nfe")
        if nfe is not None and len(nfe) == len(it) and len(nfe):
            x, y = decimate(it, nfe_per_iteration(nfe), max_points)
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=_f32(y),
                    name=shown,
                    legendgroup=shown,
                    showlegend=False,
                    mode="lines",
                    line={"color": color, "width": 2},
                ),
                row=1,
                col=2,
            )
    fig.update_xaxes(title_text="iteration", nticks=5, automargin=True)
    fig.update_yaxes(automargin=True)
    fig.update_yaxes(rangemode="tozero", row=1, col=2)
    if not any_points:
        fig.add_annotation(text="no iterations yet", showarrow=False, xref="paper", yref="paper", x=0.3, y=0.5)
    return _layout(fig, None, height, legend=True)


def _title(label: str, color: str | None) -> str:
    # A coloured square ties the figure to the run's loss curve and progress row.
    shown = figure_text(label)  # user text: plotly would read HTML in it
    return shown if color is None else f"<span style='color:{color}'>■</span> {shown}"


def run_density_figure(
    view: DensityView,
    *,
    label: str,
    color: str | None = None,
    y_max: float | None = None,
    z_max: float | None = None,
    height: int | None = None,
) -> go.Figure:
    """The density one run has learned.

    1D: the learned pdf in the run's colour over the true pdf (dark). 2D: the learned density as a heatmap.

    Arguments:
        view: the run's :class:`~cnfviz.figures.views.DensityView`.
        label: the run's label, the figure's title.
        color: the run's colour (:func:`run_color`).
        y_max: a shared top of the density axis (1D), so several figures compare at a glance.
        z_max: a shared top of the colour scale (2D).
        height: in pixels; by default 320 in 1D and 290 in 2D (square heatmaps in a grid of four).
    """
    xs = view.axes[0]
    if len(view.axes) == 1:
        fig = go.Figure()
        if view.true is not None:
            name = "true pdf (estimate)" if view.true_is_estimate else "true pdf"
            fig.add_trace(go.Scatter(x=_f32(xs), y=_f32(view.true), name=name, line={"color": TRUE_COLOR}))
        fig.add_trace(
            go.Scatter(
                x=_f32(xs), y=_f32(view.learned), name="learned pdf", line={"color": color or LEARNED_COLOR, "width": 3}
            )
        )
        fig.update_xaxes(title_text="x")
        fig.update_yaxes(title_text="density", range=[0, y_max * 1.05] if y_max else None)
        return _layout(fig, _title(label, color), height or 320, legend=True)
    ys = view.axes[1]
    fig = go.Figure(_heatmap(xs, ys, view.learned, z_max))
    _square(fig, xs, ys)
    return _layout(fig, _title(label, color), height or 290, legend=False)


def _heatmap(xs: np.ndarray, ys: np.ndarray, z: np.ndarray, z_max: float | None) -> go.Heatmap:
    """A density heatmap on the comparison's shared colour scale: z (R, R) over axes xs, ys (R,)."""
    return go.Heatmap(
        x=_f32(xs),
        y=_f32(ys),
        z=_f32(z),
        zmin=0.0,
        zmax=z_max,
        colorscale=DENSITY_SCALE,
        showscale=False,
        hovertemplate="x %{x:.2f}, y %{y:.2f}<br>p %{z:.3g}<extra></extra>",
    )


def _square(fig: go.Figure, xs: np.ndarray, ys: np.ndarray) -> None:
    fig.update_xaxes(range=[float(xs[0]), float(xs[-1])], constrain="domain")
    fig.update_yaxes(range=[float(ys[0]), float(ys[-1])], scaleanchor="x", constrain="domain", constraintoward="top")


def target_density_figure(view: DensityView, *, z_max: float | None = None, height: int = 290) -> go.Figure:
    """What every run tries to learn: the true density (2D heatmap, or the data where there is none), or in
    1D the true pdf over a histogram of the data.

    Arguments:
        view: any run's :class:`~cnfviz.figures.views.DensityView` (they share the target).
        z_max: the colour scale's top, shared with :func:`run_density_figure`.
    """
    xs = view.axes[0]
    if len(view.axes) == 1:
        fig = go.Figure()
        counts, edges = np.histogram(np.asarray(view.data).ravel(), bins=60, range=(float(xs[0]), float(xs[-1])))
        widths = np.diff(edges)
        dens = counts / max(1, counts.sum()) / widths
        fig.add_trace(
            go.Bar(
                x=_f32(0.5 * (edges[:-1] + edges[1:])),
                y=_f32(dens),
                width=float(widths[0]),
                name="data",
                marker={"color": DATA_COLOR, "line": {"width": 0}},
            )
        )
        if view.true is not None:
            fig.add_trace(go.Scatter(x=_f32(xs), y=_f32(view.true), name="true pdf", line={"color": TRUE_COLOR}))
        fig.update_layout(bargap=0)
        fig.update_xaxes(title_text="x")
        fig.update_yaxes(title_text="density")
        return _layout(fig, "Target", height, legend=True)
    ys = view.axes[1]
    fig = go.Figure()
    if view.true is not None:
        title = "Target (histogram estimate)" if view.true_is_estimate else "Target density"
        fig.add_trace(_heatmap(xs, ys, view.true, z_max))
    else:
        title = "Target data"
        pts = np.asarray(view.data)[:1000]
        fig.add_trace(
            go.Scatter(x=_f32(pts[:, 0]), y=_f32(pts[:, 1]), mode="markers", marker={"size": 3, "color": TRUE_COLOR})
        )
    _square(fig, xs, ys)
    return _layout(fig, title, height, legend=False)
