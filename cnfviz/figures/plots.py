"""Plotly figures of a training run: pure functions from snapshots and visual arrays to figures (no UI code).

Every builder returns a fresh :class:`plotly.graph_objects.Figure` with a title, and keeps it light: long
curves are decimated and big arrays are sent as float32, because the app re-sends figures while a run is
live. The same figure built twice from the same arrays serialises to the same JSON, which lets a UI redraw
a figure without the browser remounting it.

Example:
    >>> import numpy as np
    >>> fig = loss_figure({"iteration": np.arange(1, 6), "nll": np.linspace(3, 1, 5)})
    >>> [t.name for t in fig.data]
    ['training NLL']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .style import (
    DATA_COLOR,
    DENSITY_SCALE,
    LEARNED_COLOR,
    NFE_COLOR,
    PATH_SCALE,
    TEST_COLOR,
    TRUE_COLOR,
    finish,
)
from .style import f32 as _f32

if TYPE_CHECKING:
    from ..targets import Target
    from .views import DensityPathView, DensityView, FieldView, TrajectoryView

__all__ = [
    "COMPACT_SUBTITLE_PX",
    "LOSS_TITLES",
    "MAX_LINE_POINTS",
    "NFE_AXIS_TITLE",
    "FlowFigure",
    "decimate",
    "density_figure",
    "density_path_figure",
    "field_figure",
    "flow_figure",
    "loss_figure",
    "loss_series",
    "nfe_per_iteration",
    "samples_figure",
    "shared_density_max",
    "target_preview_figure",
    "trajectory_figure",
]

MAX_LINE_POINTS = 2000
"""The most points a curve keeps for display; the loss history can hold 10^5."""
COMPACT_SUBTITLE_PX = 13
"""The density's panel titles in a narrow chart (``compact``): two side by side fit over 120 px panels."""

_PATH_GROUPS = 8


def _finish(fig: go.Figure, title: str, height: int, *, legend: bool = True) -> go.Figure:
    return finish(fig, title, height, legend=legend)


def decimate(x: np.ndarray, y: np.ndarray, max_points: int = MAX_LINE_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Thin a curve to at most ``max_points`` points, keeping each bucket's minimum and maximum.

    Spikes survive (a plain stride would skip them), the first and last points are kept, and the order
    of ``x`` is preserved.

    Arguments:
        x: abscissae, shape (n,).
        y: values, shape (n,).
        max_points: the most points to return (at least 4).

    Returns:
        ``(x, y)`` of at most ``max_points`` points each.

    Example:
        >>> x = np.arange(10_000); y = np.zeros(10_000); y[5_001] = 9.0
        >>> xd, yd = decimate(x, y, 100)
        >>> len(xd) <= 100, float(yd.max()), int(xd[-1])
        (True, 9.0, 9999)
    """
    x, y = np.asarray(x), np.asarray(y)
    n = len(x)
    max_points = max(4, int(max_points))
    if n <= max_points:
        return x, y
    buckets = (max_points - 2) // 2
    size = -(-n // buckets)  # ceil
    pad = buckets * size - n
    vals = np.concatenate([np.asarray(y, dtype=np.float64), np.full(pad, np.nan)]).reshape(buckets, size)
    offsets = np.arange(buckets) * size
    lo = np.argmin(np.where(np.isnan(vals), np.inf, vals), axis=1) + offsets
    hi = np.argmax(np.where(np.isnan(vals), -np.inf, vals), axis=1) + offsets
    idx = np.unique(np.concatenate([[0, n - 1], lo, hi]))
    idx = idx[idx < n]
    return x[idx], y[idx]


# --------------------------------------------------------------------------------------------------
# Loss
# --------------------------------------------------------------------------------------------------


def nfe_per_iteration(cumulative: np.ndarray, window: int = 5) -> np.ndarray:
    """Forward function evaluations per iteration from the run's cumulative count.

    The count holds training solves only (the trainer counts no plot or test-NLL solve), so each
    difference is an iteration's own NFE; a running median over ``window`` iterations smooths an adaptive
    solver's step-to-step jitter and keeps real trends (a solver that needs more and more steps).

    Arguments:
        cumulative: the cumulative forward NFE after each iteration, shape (n,).
        window: width of the running median (odd).

    Returns:
        NFE per iteration, shape (n,), float64.

    Example:
        >>> nfe_per_iteration(np.array([16, 32, 48, 164, 180, 196, 212, 300]))
        array([16., 16., 16., 16., 16., 16., 16., 16.])
    """
    c = np.asarray(cumulative, dtype=np.float64)
    per = np.diff(c, prepend=0.0)
    if len(per) < window:
        return per
    # Mirror the ends, so a spike at the last iteration (the final plot refresh) is voted down too.
    padded = np.pad(per, window // 2, mode="reflect")
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, window), axis=1)


LOSS_TITLES = {
    "likelihood": ("Likelihood loss", "NLL (nats)"),
    "flow-matching": ("Flow-matching loss", "regression loss"),
}
"""Per objective: the loss chart's title (short: the chart is 200-300 px wide) and its top panel's axis title.
Flow matching minimises a regression loss, not an NLL: its test NLL gets a panel of its own, on a scale where
it can be read."""
NFE_AXIS_TITLE = "NFE / iter"


@dataclass(frozen=True)
class _Curve:
    name: str
    x: np.ndarray
    y: np.ndarray
    row: int
    style: dict[str, Any]


def _loss_curves(
    history: Mapping[str, np.ndarray], lbfgs_from: int | None, max_points: int
) -> tuple[bool, list[_Curve], bool]:
    """``(regression, curves, lbfgs)``: the loss chart's curves in drawing order, each with its panel."""
    it = np.asarray(history.get("iteration", np.zeros(0)))
    nll = np.asarray(history.get("nll", np.zeros(0)), dtype=np.float64)
    loss = history.get("loss")
    # A flow-matching run computes no training likelihood (NaN NLL): it shows its regression loss instead.
    regression = bool(len(nll)) and bool(np.isnan(nll).all()) and loss is not None and len(loss) == len(nll)
    line = {"mode": "lines"}
    curves: list[_Curve] = []
    if regression:
        x, y = decimate(it, np.asarray(loss), max_points)
        curves.append(_Curve("flow-matching loss", x, y, 1, {**line, "line": {"color": LEARNED_COLOR}}))
    else:
        x, y = decimate(it, nll, max_points)
        curves.append(_Curve("training NLL", x, y, 1, {**line, "line": {"color": LEARNED_COLOR}}))
    if not regression and loss is not None and len(loss) == len(nll) and len(loss) and not np.allclose(loss, nll):
        x, y = decimate(it, np.asarray(loss), max_points)
        curves.append(_Curve("loss (NLL + λ terms)", x, y, 1, {**line, "line": {"color": "#f4a259"}}))
    test_it = history.get("test_iteration")
    if test_it is not None and len(test_it):
        style = {"mode": "lines+markers", "line": {"color": TEST_COLOR}, "marker": {"size": 6}}
        curves.append(
            _Curve("test NLL", np.asarray(test_it), np.asarray(history["test_nll"]), 2 if regression else 1, style)
        )
    nfe = history.get("nfe")
    if nfe is not None and len(nfe) == len(it) and len(nfe):
        x, y = decimate(it, nfe_per_iteration(nfe), max_points)
        style = {**line, "line": {"color": NFE_COLOR, "dash": "dot"}}
        curves.append(_Curve("NFE per iteration", x, y, 3 if regression else 2, style))
    lbfgs = lbfgs_from is not None and bool(len(it)) and it[-1] >= lbfgs_from
    return regression, curves, bool(lbfgs)


def loss_figure(
    history: Mapping[str, np.ndarray],
    *,
    lbfgs_from: int | None = None,
    max_points: int = MAX_LINE_POINTS,
    height: int = 340,
) -> go.Figure:
    """The training loss per iteration, the test NLL every k iterations and the NFE per iteration, each curve
    named in a legend below the chart and each panel with its axis title.

    A likelihood run has two panels: the training NLL (and the loss with its λ terms, and the test NLL: all
    in nats) over the NFE per iteration. A flow-matching run has three: its regression loss, the test NLL
    (which compares it with likelihood training), and the NFE (of its evaluations only: training solves no
    ODE). The panels share the iteration axis, titled once at the bottom.

    Arguments:
        history: a :class:`~cnfviz.Snapshot` history: ``iteration``, ``nll`` (n,), and optionally
            ``loss`` (n,, drawn when regularizers make it differ from the NLL), ``nfe`` (n,, the
            cumulative forward NFE, drawn per iteration),
            ``test_iteration`` and ``test_nll`` (k,).
        lbfgs_from: the first LBFGS iteration, marked with a dashed line; None for none.
        max_points: curves are decimated to at most this many points.

    Returns:
        a figure whose first trace is the training NLL, or for a flow-matching run (whose ``nll`` is NaN:
        it computes no training likelihood) its regression loss.
    """
    regression, curves, lbfgs = _loss_curves(history, lbfgs_from, max_points)
    title, main_axis = LOSS_TITLES["flow-matching" if regression else "likelihood"]
    rows = 3 if regression else 2
    fig = make_subplots(
        rows=rows,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.06,
        row_heights=[0.5, 0.28, 0.22] if regression else [0.72, 0.28],
    )
    for c in curves:
        fig.add_trace(go.Scatter(x=c.x, y=_f32(c.y), name=c.name, **c.style), row=c.row, col=1)
    if lbfgs:
        fig.add_vline(x=lbfgs_from, line={"dash": "dash", "color": "#888"}, annotation_text="LBFGS")
    fig.update_xaxes(nticks=5, automargin=True)
    fig.update_xaxes(title_text="iteration", title_standoff=10, row=rows, col=1)
    fig.update_yaxes(automargin=True, nticks=5, title_standoff=4)
    fig.update_yaxes(title_text=main_axis, row=1, col=1)
    if regression:
        fig.update_yaxes(title_text="test NLL (nats)", row=2, col=1)
    fig.update_yaxes(title_text=NFE_AXIS_TITLE, row=rows, col=1, rangemode="tozero", nticks=3)
    if not len(np.asarray(history.get("iteration", np.zeros(0)))):
        fig.add_annotation(text="no iterations yet", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    _finish(fig, title, height)
    # Below the panels, where it wraps onto as many rows as a narrow chart needs and covers no curve.
    # (At the figure's foot, not the plot's: the margin grows to hold it, clear of the iteration axis's title.)
    fig.update_layout(
        legend={"orientation": "h", "yref": "container", "yanchor": "bottom", "y": 0.0, "xanchor": "left", "x": 0.0}
    )
    return fig


def loss_series(
    history: Mapping[str, np.ndarray], *, lbfgs_from: int | None = None, max_points: int = MAX_LINE_POINTS
) -> tuple[tuple[str, ...], list[tuple[np.ndarray, np.ndarray]], bool]:
    """The curves :func:`loss_figure` draws, without building a figure: a live view refreshing twice a second
    can rebuild the figure only when these names change and otherwise send new arrays into the same one.

    Returns:
        the trace names in :func:`loss_figure`'s order, each trace's ``(x, y)`` as it would hold them, and
        whether the figure marks the start of LBFGS.

    Example:
        >>> names, curves, lbfgs = loss_series({"iteration": np.arange(1, 4), "nll": np.array([3.0, 2.0, 1.5])})
        >>> names, curves[0][1].tolist(), lbfgs
        (('training NLL',), [3.0, 2.0, 1.5], False)
    """
    _, curves, lbfgs = _loss_curves(history, lbfgs_from, max_points)
    return tuple(c.name for c in curves), [(c.x, _f32(c.y)) for c in curves], lbfgs


# --------------------------------------------------------------------------------------------------
# Densities
# --------------------------------------------------------------------------------------------------


def _hist_bars(data: np.ndarray, lo: float, hi: float, bins: int, name: str) -> go.Bar:
    counts, edges = np.histogram(np.asarray(data).ravel(), bins=bins, range=(lo, hi), density=True)
    return go.Bar(
        x=_f32(0.5 * (edges[:-1] + edges[1:])),
        y=_f32(counts),
        width=float(edges[1] - edges[0]),
        name=name,
        marker={"color": DATA_COLOR, "line": {"width": 0}},
    )


def density_figure(view: DensityView, *, height: int = 420, compact: bool = False) -> go.Figure:
    """Learned against true density.

    1D: the true pdf, the learned pdf and a histogram of the training data, overlaid. 2D: the true and
    learned density heatmaps side by side, with model samples over the learned one (the data replace the
    true density when the target has none).

    Arguments:
        view: a :class:`~cnfviz.figures.views.DensityView`.
        compact: short panel titles and one set of y tick labels, for a narrow live chart.
    """
    xs = view.axes[0]
    if len(view.axes) == 1:
        fig = go.Figure()
        fig.add_trace(_hist_bars(view.data, float(xs[0]), float(xs[-1]), 60, "training data"))
        if view.true is not None:
            name = "true pdf (estimate)" if view.true_is_estimate else "true pdf"
            fig.add_trace(go.Scatter(x=_f32(xs), y=_f32(view.true), name=name, line={"color": TRUE_COLOR}))
        fig.add_trace(
            go.Scatter(x=_f32(xs), y=_f32(view.learned), name="learned pdf", line={"color": LEARNED_COLOR, "width": 3})
        )
        fig.update_layout(bargap=0)
        fig.update_xaxes(title_text="x")
        fig.update_yaxes(title_text="density")
        return _finish(fig, "Learned vs true density", height)
    ys = view.axes[1]
    if view.true is None:
        left_title = "Training data"
    else:
        left_title = "True density (histogram estimate)" if view.true_is_estimate else "True density"
    right_title = "Learned density + model samples"
    if compact:
        left_title = left_title.replace("True density (histogram estimate)", "True (estimated)")
        right_title = "Learned + samples"
    fig = make_subplots(rows=1, cols=2, subplot_titles=(left_title, right_title), horizontal_spacing=0.05)
    if compact:
        # Plotly's 16 px panel titles overlap over two 120 px panels (a 390 px phone); at 13 px they fit.
        fig.update_annotations(font_size=COMPACT_SUBTITLE_PX)
    # One colour scale for both pictures, so that equal colours mean equal densities.
    zmax = shared_density_max(view.learned, view.true)
    heat = {"colorscale": DENSITY_SCALE, "zmin": 0.0, "zmax": zmax, "zsmooth": "best"}
    if view.true is not None:
        fig.add_trace(
            go.Heatmap(x=_f32(xs), y=_f32(ys), z=_f32(view.true), showscale=False, name="true density", **heat),
            row=1,
            col=1,
        )
    else:
        pts = np.asarray(view.data)[:1000]
        fig.add_trace(
            go.Scatter(x=_f32(pts[:, 0]), y=_f32(pts[:, 1]), mode="markers", marker={"size": 3, "color": TRUE_COLOR}),
            row=1,
            col=1,
        )
    fig.add_trace(
        go.Heatmap(
            x=_f32(xs),
            y=_f32(ys),
            z=_f32(view.learned),
            name="learned density",
            colorbar={"title": {"text": "p(x)", "side": "right"}, "thickness": 10, "len": 0.9},
            **heat,
        ),
        row=1,
        col=2,
    )
    s = np.asarray(view.samples)
    fig.add_trace(
        go.Scatter(
            x=_f32(s[:, 0]),
            y=_f32(s[:, 1]),
            mode="markers",
            name="model samples",
            marker={"size": 3, "color": "rgba(255, 255, 255, 0.75)", "line": {"width": 0.5, "color": "#222"}},
        ),
        row=1,
        col=2,
    )
    for col in (1, 2):
        fig.update_xaxes(range=[float(xs[0]), float(xs[-1])], row=1, col=col, constrain="domain")
        fig.update_yaxes(
            range=[float(ys[0]), float(ys[-1])],
            row=1,
            col=col,
            scaleanchor=f"x{col if col > 1 else ''}",
            showticklabels=not (compact and col == 2),
            zeroline=False,
            constrain="domain",
        )
        fig.update_xaxes(zeroline=False, row=1, col=col)
    return _finish(fig, "Learned vs true density", height, legend=False)


def shared_density_max(learned: np.ndarray, true: np.ndarray | None, percentile: float = 99.5) -> float:
    """The top of one colour scale for the true and learned density pictures.

    The larger of the two pictures' ``percentile``-th percentiles: a young model's needle-thin peak is
    clipped (it would turn everything else dark) while a real mode of either picture sets the scale.

    Arguments:
        learned: the learned density on a grid, any shape.
        true: the true density on the same grid, or None.

    Example:
        >>> shared_density_max(np.array([0.0, 0.1, 0.2]), np.array([0.0, 0.4, 0.5]), percentile=100)
        0.5
    """
    tops = []
    for z in (learned, true):
        if z is None:
            continue
        finite = np.asarray(z, dtype=np.float64)
        finite = finite[np.isfinite(finite)]
        if finite.size:
            tops.append(float(np.percentile(finite, percentile)))
    return max([*tops, 1e-12])


# --------------------------------------------------------------------------------------------------
# Trajectories
# --------------------------------------------------------------------------------------------------


def _base_points(paths: np.ndarray, name: str, colour: str, *, legend: bool = True) -> go.Scatter:
    """The 2D base points z at t0 under the paths: ``paths`` has shape (T, n, 2)."""
    return go.Scatter(
        x=_f32(paths[0, :, 0]),
        y=_f32(paths[0, :, 1]),
        mode="markers",
        name=name,
        marker={"size": 3, "color": colour},
        hoverinfo="skip",
        showlegend=legend,
    )


def _add_path_lines(
    fig: go.Figure, times: np.ndarray, paths: np.ndarray, max_lines: int, *, opacity: float, colour: str | None = None
) -> None:
    """Draw at most ``max_lines`` of ``paths`` (T, n, d) as lines, against ``times`` (T,) in 1D, coloured by
    where each path starts (or all in ``colour``): one trace per colour group keeps the figure small."""
    n_t, n, d = paths.shape
    keys = _path_colour_keys(paths[0])
    shown = np.linspace(0, n - 1, min(n, max_lines)).astype(int)
    groups = np.minimum((keys[shown] * _PATH_GROUPS).astype(int), _PATH_GROUPS - 1)
    palette = _sample_scale(PATH_SCALE, _PATH_GROUPS)
    for g in range(_PATH_GROUPS):
        sel = shown[groups == g]
        if not len(sel):
            continue
        if d == 2:
            lx, ly = _nan_joined(paths[:, sel, 0].T, paths[:, sel, 1].T)
        else:
            lx, ly = _nan_joined(np.broadcast_to(times, (len(sel), n_t)), paths[:, sel, 0].T)
        fig.add_trace(
            go.Scatter(
                x=_f32(lx),
                y=_f32(ly),
                mode="lines",
                line={"width": 1, "color": colour or palette[g]},
                opacity=opacity,
                hoverinfo="skip",
                showlegend=False,
            )
        )


def _path_colour_keys(z0: np.ndarray) -> np.ndarray:
    """A number in [0, 1) per base point: its angle in 2D, its rank in 1D."""
    if z0.shape[1] == 2:
        return (np.arctan2(z0[:, 1], z0[:, 0]) + np.pi) / (2 * np.pi)
    return np.argsort(np.argsort(z0[:, 0])) / max(1, len(z0))


def _point_marker(paths: np.ndarray) -> dict[str, Any]:
    """The moving points' marker: each coloured by where its path (T, n, d) starts, as its line is."""
    return {"size": 5, "color": _f32(_path_colour_keys(paths[0])), "colorscale": PATH_SCALE, "cmin": 0, "cmax": 1}


def _nan_joined(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lines (k, T) joined into one trace, separated by NaN gaps."""
    k = xs.shape[0]
    gap = np.full((k, 1), np.nan)
    return np.hstack([xs, gap]).ravel(), np.hstack([ys, gap]).ravel()


def _play_controls(names: Sequence[str], labels: Sequence[str], active: int, prefix: str) -> dict[str, Any]:
    """A slider over the frames and a Play / Pause pair, as plotly layout entries."""
    still = {"mode": "immediate", "frame": {"duration": 0, "redraw": False}, "transition": {"duration": 0}}
    play = {"mode": "immediate", "frame": {"duration": 90, "redraw": False}, "transition": {"duration": 0}}
    return {
        "sliders": [
            {
                "active": active,
                # Step labels would crowd 41 ticks: hide them and show the current t instead.
                "currentvalue": {"prefix": prefix, "xanchor": "right", "font": {"size": 13, "color": "#444"}},
                "font": {"color": "rgba(0, 0, 0, 0)"},
                "pad": {"t": 40, "l": 90},
                "steps": [
                    {"label": lab, "method": "animate", "args": [[name], still]}
                    for name, lab in zip(names, labels, strict=True)
                ],
            }
        ],
        "updatemenus": [
            {
                "type": "buttons",
                "direction": "left",
                "x": 0.0,
                "y": 0.0,
                "xanchor": "left",
                "yanchor": "top",
                "pad": {"t": 45, "r": 10},
                "showactive": False,
                "buttons": [
                    {"label": "▶ Play", "method": "animate", "args": [list(names), play]},
                    {"label": "❚❚", "method": "animate", "args": [[None], still]},
                ],
            }
        ],
    }


def trajectory_figure(
    view: TrajectoryView, *, animate: bool = True, max_lines: int = 150, height: int = 480
) -> go.Figure:
    """Paths from base samples z (at t0) to data space x (at t1).

    2D: the paths in the plane, coloured by the angle of their base point, with the points themselves on
    top. 1D: x against t. With ``animate`` the figure has one frame per output time, a slider over t and
    a Play button, and opens on the last frame (the data); without it the points sit at t1 and the
    figure is lighter (for live updates, when an animation would be reset anyway).

    Arguments:
        view: a :class:`~cnfviz.figures.views.TrajectoryView`, times (T,) and paths (T, n, d).
        animate: add frames, the slider and the Play button.
        max_lines: draw the lines of at most this many paths (the points: all of them).
    """
    times, paths = np.asarray(view.times), np.asarray(view.paths)
    n_t, n, d = paths.shape
    fig = go.Figure()
    _add_path_lines(fig, times, paths, max_lines, opacity=0.45)
    if d == 2:
        fig.add_trace(_base_points(paths, "base samples z (t0)", "#b0b0b0"))

    def points(k: int) -> go.Scatter:
        # Frames restyle only x and y; the colours stay from the first draw.
        px = paths[k, :, 0] if d == 2 else np.full(n, times[k])
        py = paths[k, :, 1] if d == 2 else paths[k, :, 0]
        return go.Scatter(x=_f32(px), y=_f32(py))

    last = points(n_t - 1)
    fig.add_trace(
        last.update(
            mode="markers",
            name="samples at t",
            marker=_point_marker(paths),
            hoverinfo="skip",
        )
    )
    moving = len(fig.data) - 1
    title = "Trajectories from z (base, t0) to x (data, t1)"
    if animate:
        names = [f"t{k}" for k in range(n_t)]
        fig.frames = [go.Frame(name=names[k], data=[points(k)], traces=[moving]) for k in range(n_t)]
        fig.update_layout(**_play_controls(names, [f"{t:.3g}" for t in times], n_t - 1, "t = "))
    if d == 2:
        fig.update_xaxes(title_text="x₁", constrain="domain")
        fig.update_yaxes(title_text="x₂", scaleanchor="x")
    else:
        fig.update_xaxes(title_text="t")
        fig.update_yaxes(title_text="x")
    return _finish(fig, title, height + (70 if animate else 0))


def _sample_scale(name: str, k: int) -> list[str]:
    from plotly.colors import sample_colorscale

    return sample_colorscale(name, [(i + 0.5) / k for i in range(k)])


def density_path_figure(
    view: DensityPathView, trajectories: TrajectoryView | None = None, *, max_lines: int = 40, height: int = 420
) -> go.Figure:
    """1D: the density p(x, t) over (t, x) as a heatmap, with sample paths drawn on it.

    Arguments:
        view: a :class:`~cnfviz.figures.views.DensityPathView`: xs (R,), times (T,), density (T, R).
        trajectories: paths to overlay, or None.
        max_lines: overlay at most this many paths.
    """
    dens = np.asarray(view.density)
    # A model early in training can have a needle-thin peak; clip it so the rest stays visible.
    finite = dens[np.isfinite(dens)]
    zmax = float(np.percentile(finite, 99.5)) if finite.size else 1.0
    fig = go.Figure(
        go.Heatmap(
            x=_f32(view.times),
            y=_f32(view.xs),
            z=_f32(dens.T),
            colorscale=DENSITY_SCALE,
            zmin=0.0,
            zmax=max(zmax, 1e-12),
            colorbar={"title": {"text": "p(x, t)"}, "thickness": 12},
            zsmooth="best",
        )
    )
    if trajectories is not None:
        paths = np.asarray(trajectories.paths)[..., 0]  # (T, n)
        sel = np.linspace(0, paths.shape[1] - 1, min(paths.shape[1], max_lines)).astype(int)
        tt = np.asarray(trajectories.times)
        lx, ly = _nan_joined(np.broadcast_to(tt, (len(sel), len(tt))), paths[:, sel].T)
        fig.add_trace(
            go.Scatter(
                x=_f32(lx),
                y=_f32(ly),
                mode="lines",
                line={"width": 1, "color": "rgba(255, 255, 255, 0.55)"},
                name="sample paths",
                hoverinfo="skip",
            )
        )
    lo, hi = float(view.xs[0]), float(view.xs[-1])
    fig.update_xaxes(title_text="t", range=[float(view.times[0]), float(view.times[-1])])
    fig.update_yaxes(title_text="x", range=[lo, hi])
    return _finish(fig, "Density p(x, t) along the flow, with sample paths", height)


@dataclass(frozen=True)
class FlowFigure:
    """A trajectory figure made to be animated on the client (see :func:`flow_figure`).

    ``moving``: index of the trace of points that flow; ``paths``: where they are, shape (T, n, 2), as
    (x₁, x₂) in 2D and (t, x) in 1D; ``t0``/``t1``: the times of the first and last rows; ``field``:
    index of the arrow trace (2D, or None), redrawn at each of ``field_times`` with ``field_x`` and
    ``field_y``; ``label``: index of the annotation that shows t.
    """

    figure: go.Figure
    moving: int
    paths: np.ndarray
    t0: float
    t1: float
    field: int | None = None
    field_times: tuple[float, ...] = ()
    field_x: tuple[np.ndarray, ...] = ()
    field_y: tuple[np.ndarray, ...] = ()
    label: int | None = None


def flow_figure(
    view: TrajectoryView,
    *,
    field: FieldView | None = None,
    density_path: DensityPathView | None = None,
    max_lines: int = 80,
    height: int = 420,
    title: str = "The flow: z (t0) → x (t1)",
) -> FlowFigure:
    """The trajectories as a live picture: faint paths, and points that flow along them from z to x.

    2D: the paths in the plane, the base points in grey, and, given ``field``, the velocity arrows at the
    points' current t on top. 1D: x against t over the density p(x, t) (``density_path``) or, given
    ``field``, over the velocity f(t, x). The points start at t0 (the same base points for every model of
    a run, fixed by its seed), so a browser can swap models between loops without a jump.

    Arguments:
        view: times (T,) and paths (T, n, d).
        field: the vector field to overlay, or None.
        density_path: 1D only, p(x, t) to draw under the paths.
        max_lines: draw at most this many paths (the points: all of them).
    """
    times, paths = np.asarray(view.times), np.asarray(view.paths)
    n_t, n, d = paths.shape
    fig = go.Figure()
    field_index = None
    fx: list[np.ndarray] = []
    fy: list[np.ndarray] = []
    if d == 1:
        if field is not None:
            fig.add_trace(
                go.Heatmap(
                    x=_f32(field.times),
                    y=_f32(field.axes[0]),
                    z=_f32(np.asarray(field.values)[..., 0].T),
                    colorscale="RdBu",
                    reversescale=True,
                    zmid=0.0,
                    zsmooth="best",
                    colorbar={"title": {"text": "f(t, x)"}, "thickness": 10},
                    hoverinfo="skip",
                )
            )
        elif density_path is not None:
            dens = np.asarray(density_path.density)
            fig.add_trace(
                go.Heatmap(
                    x=_f32(density_path.times),
                    y=_f32(density_path.xs),
                    z=_f32(dens.T),
                    colorscale=DENSITY_SCALE,
                    zmin=0.0,
                    zmax=shared_density_max(dens, None),
                    zsmooth="best",
                    colorbar={"title": {"text": "p(x, t)"}, "thickness": 10},
                    hoverinfo="skip",
                )
            )
    _add_path_lines(fig, times, paths, max_lines, opacity=0.35, colour=None if d == 2 else "rgba(255, 255, 255, 0.5)")
    if d == 2:
        fig.add_trace(_base_points(paths, "z (t0)", "#c4c4c4", legend=False))
        if field is not None:
            xs, ys = field.axes
            spacing = min(float(xs[1] - xs[0]), float(ys[1] - ys[0]))
            vmax = float(np.max(np.linalg.norm(field.values, axis=-1)))
            scale = 0.9 * spacing / vmax if vmax > 0 else 0.0
            for k in range(len(field.times)):
                arrows = _arrows(field, k, scale, full=False)
                fx.append(_f32(arrows.x))
                fy.append(_f32(arrows.y))
            fig.add_trace(
                go.Scatter(
                    x=fx[0],
                    y=fy[0],
                    mode="lines",
                    line={"width": 1.2, "color": "rgba(60, 60, 60, 0.55)"},
                    name="f(t, x)",
                    hoverinfo="skip",
                    showlegend=False,
                )
            )
            field_index = len(fig.data) - 1
        flowing = paths.astype(np.float32)
    else:
        flowing = np.stack([np.broadcast_to(times[:, None], (n_t, n)), paths[..., 0]], -1).astype(np.float32)
    fig.add_trace(
        go.Scatter(
            x=flowing[0, :, 0],
            y=flowing[0, :, 1],
            mode="markers",
            name="samples at t",
            marker=_point_marker(paths),
            hoverinfo="skip",
            showlegend=False,
        )
    )
    moving = len(fig.data) - 1
    fig.add_annotation(
        text=f"t = {times[0]:.2f}",
        xref="paper",
        yref="paper",
        x=0.0,
        y=1.0,
        xanchor="left",
        yanchor="bottom",
        showarrow=False,
        font={"size": 13},
    )
    if d == 2:
        lo = np.minimum(paths.min((0, 1)), paths[-1].min(0))
        hi = paths.max((0, 1))
        pad = 0.05 * (hi - lo)
        fig.update_xaxes(
            title_text="x₁", range=[float(lo[0] - pad[0]), float(hi[0] + pad[0])], constrain="domain", zeroline=False
        )
        fig.update_yaxes(
            title_text="x₂",
            range=[float(lo[1] - pad[1]), float(hi[1] + pad[1])],
            scaleanchor="x",
            constrain="domain",
            zeroline=False,
        )
    else:
        fig.update_xaxes(title_text="t", range=[float(times[0]), float(times[-1])])
        fig.update_yaxes(title_text="x")
    _finish(fig, title, height, legend=False)
    return FlowFigure(
        fig,
        moving,
        flowing,
        float(times[0]),
        float(times[-1]),
        field=field_index,
        field_times=tuple(float(t) for t in field.times) if field_index is not None else (),
        field_x=tuple(fx),
        field_y=tuple(fy),
        label=0,
    )


# --------------------------------------------------------------------------------------------------
# Vector field
# --------------------------------------------------------------------------------------------------


def _arrows(view: FieldView, k: int, scale: float, *, full: bool = True) -> go.Scatter:
    xs, ys = view.axes
    gx, gy = np.meshgrid(xs, ys)
    v = np.asarray(view.values[k])  # (R, R, 2), [iy, ix]
    u, w = v[..., 0].ravel(), v[..., 1].ravel()
    x0, y0 = gx.ravel(), gy.ravel()
    m = len(x0)
    nan = np.full(m, np.nan)
    ax = np.stack([x0, x0 + scale * u, nan], 1).ravel()
    ay = np.stack([y0, y0 + scale * w, nan], 1).ravel()
    speed = np.hypot(u, w)
    colors = np.repeat(speed, 3)
    if not full:  # an animation frame: only the positions and colours change
        return go.Scatter(x=_f32(ax), y=_f32(ay), marker={"color": _f32(colors)})
    sizes = np.stack([np.zeros(m), np.full(m, 7.0), np.zeros(m)], 1).ravel()
    return go.Scatter(
        x=_f32(ax),
        y=_f32(ay),
        mode="lines+markers",
        line={"width": 1, "color": "rgba(90, 90, 90, 0.6)"},
        marker={
            "symbol": "arrow",
            "angleref": "previous",
            "size": _f32(sizes),
            "color": _f32(colors),
            "colorscale": DENSITY_SCALE,
            "cmin": 0.0,
            "cmax": float(np.max(np.linalg.norm(view.values, axis=-1))) or 1.0,
            "colorbar": {"title": {"text": "|f|"}, "thickness": 12},
        },
        hoverinfo="skip",
        showlegend=False,
    )


def field_figure(view: FieldView, *, height: int = 480) -> go.Figure:
    """The vector field f(t, ·).

    2D: arrows on a grid, one frame per time with a slider to choose t (and Play); one length scale for
    all times, so arrows compare across t. 1D: f(t, x) as a heatmap over (t, x), red pushing x up and
    blue pushing it down.

    Arguments:
        view: a :class:`~cnfviz.figures.views.FieldView`: values (T, R, 1) in 1D or (T, R, R, 2) in 2D.
    """
    times = np.asarray(view.times)
    if len(view.axes) == 1:
        z = np.asarray(view.values)[..., 0].T  # (R, T)
        fig = go.Figure(
            go.Heatmap(
                x=_f32(times),
                y=_f32(view.axes[0]),
                z=_f32(z),
                colorscale="RdBu",
                reversescale=True,
                zmid=0.0,
                zsmooth="best",
                colorbar={"title": {"text": "f(t, x)"}, "thickness": 12},
            )
        )
        fig.update_xaxes(title_text="t")
        fig.update_yaxes(title_text="x")
        return _finish(fig, "Vector field f(t, x): the velocity that moves x", height)
    xs, ys = view.axes
    spacing = min(float(xs[1] - xs[0]), float(ys[1] - ys[0]))
    vmax = float(np.max(np.linalg.norm(view.values, axis=-1)))
    scale = 0.9 * spacing / vmax if vmax > 0 else 0.0
    n_t = len(times)
    fig = go.Figure(_arrows(view, 0, scale))
    names = [f"t{k}" for k in range(n_t)]
    fig.frames = [go.Frame(name=names[k], data=[_arrows(view, k, scale, full=False)], traces=[0]) for k in range(n_t)]
    fig.update_layout(**_play_controls(names, [f"{t:.3g}" for t in times], 0, "t = "))
    pad = spacing
    fig.update_xaxes(title_text="z₁", range=[float(xs[0]) - pad, float(xs[-1]) + pad], constrain="domain")
    fig.update_yaxes(title_text="z₂", range=[float(ys[0]) - pad, float(ys[-1]) + pad], scaleanchor="x")
    return _finish(fig, "Vector field f(t, z) at a chosen t", height + 70, legend=False)


# --------------------------------------------------------------------------------------------------
# Targets and samples
# --------------------------------------------------------------------------------------------------


def target_preview_figure(target: Target, *, n: int = 1000, seed: int = 0, height: int = 200) -> go.Figure:
    """A small picture of a target: its density and samples (1D: curve over a histogram; 2D: heatmap).

    Arguments:
        target: a :class:`~cnfviz.targets.Target`.
        n: how many samples to draw.
    """
    data = target.sample(n, seed=seed)
    if target.dim == 1:
        (xs,) = target.grid(200)
        fig = go.Figure(_hist_bars(data, float(xs[0]), float(xs[-1]), 40, "samples"))
        fig.add_trace(go.Scatter(x=_f32(xs), y=_f32(target.pdf(xs[:, None])), name="pdf", line={"color": TRUE_COLOR}))
        fig.update_layout(bargap=0)
    else:
        xs, ys = target.grid(64)
        gx, gy = np.meshgrid(xs, ys)
        z = target.pdf(np.stack([gx.ravel(), gy.ravel()], 1)).reshape(64, 64)
        fig = go.Figure(go.Heatmap(x=_f32(xs), y=_f32(ys), z=_f32(z), colorscale=DENSITY_SCALE, showscale=False))
        fig.add_trace(
            go.Scatter(
                x=_f32(data[:300, 0]),
                y=_f32(data[:300, 1]),
                mode="markers",
                marker={"size": 2, "color": "rgba(255, 255, 255, 0.8)"},
                name="samples",
            )
        )
        fig.update_yaxes(scaleanchor="x", constrain="domain")
        fig.update_xaxes(constrain="domain")
    fig.update_xaxes(showticklabels=True, tickfont={"size": 9})
    fig.update_yaxes(showticklabels=False)
    fig.update_layout(
        height=height,
        margin={"l": 0, "r": 0, "t": 28, "b": 0},
        showlegend=False,
        title={"text": target.label, "x": 0.0, "font": {"size": 12}},
    )
    return fig


def samples_figure(samples: np.ndarray, *, target: Target | None = None, max_points: int = 5000) -> go.Figure:
    """Generated samples: a histogram (1D, with the true pdf if ``target`` is given) or a scatter (2D).

    Arguments:
        samples: model samples, shape (n, d).
        target: the target, for its pdf in 1D.
        max_points: a 2D scatter shows at most this many points.
    """
    s = np.asarray(samples)
    n = len(s)
    if s.shape[1] == 1:
        lo, hi = (float(v) for v in (target.bounds[0] if target is not None else (s.min(), s.max())))
        lo, hi = min(lo, float(s.min())), max(hi, float(s.max()))
        fig = go.Figure(_hist_bars(s, lo, hi, 60, f"{n} model samples"))
        fig.data[0].marker.color = "rgba(228, 87, 46, 0.45)"
        if target is not None:
            xs = np.linspace(lo, hi, 300)
            fig.add_trace(
                go.Scatter(x=_f32(xs), y=_f32(target.pdf(xs[:, None])), name="true pdf", line={"color": TRUE_COLOR})
            )
        fig.update_layout(bargap=0)
        fig.update_xaxes(title_text="x")
        fig.update_yaxes(title_text="density")
    else:
        shown = s[:max_points]
        fig = go.Figure(
            go.Scatter(
                x=_f32(shown[:, 0]),
                y=_f32(shown[:, 1]),
                mode="markers",
                name=f"{len(shown)} model samples",
                marker={"size": 3, "color": LEARNED_COLOR, "opacity": 0.6},
            )
        )
        fig.update_xaxes(title_text="x₁", constrain="domain")
        fig.update_yaxes(title_text="x₂", scaleanchor="x")
    return _finish(fig, f"{n} samples from the trained flow", 380)
