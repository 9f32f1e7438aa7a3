"""§4 Why the time span matters: the seed tutorial trained with each end time, and its figure."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ...figures.style import compact
from ...figures.views import density_path_view
from ...training.config import TrainConfig
from ...training.metrics import model_log_prob, seed_tv
from ...training.presets import SEED_CONFIG
from .fit import fit
from .style import COLORS

__all__ = ["TIME_SPAN_CONFIG", "TIME_SPAN_ENDS", "TimeSpanRun", "time_span_figure", "time_span_run"]

# The seed tutorial, trained with each of these end times; the tutorial's choice is 10.
TIME_SPAN_CONFIG: TrainConfig = SEED_CONFIG
TIME_SPAN_ENDS: tuple[float, ...] = (1.0, 2.0, 4.0, 6.0, 8.0, 10.0)


@dataclass(frozen=True)
class TimeSpanRun:
    """The seed tutorial trained with time span (0, t1).

    ``xs`` (R,): grid; ``learned``/``true`` (R,): densities at t1; ``path_times`` (T,) from 0 to t1;
    ``path_density`` (T, R): p(x, t) while the flow carries N(0, 1) to the data; ``seed_tv``: the
    tutorial's figure ½·mean|p_model − p_true| on the training points; ``nll``: their mean −log p.
    """

    t1: float
    xs: np.ndarray
    learned: np.ndarray
    true: np.ndarray
    path_times: np.ndarray
    path_density: np.ndarray
    seed_tv: float
    nll: float
    seconds: float


def time_span_run(
    config: TrainConfig,
    t1: float,
    *,
    bounds: tuple[float, float] = (-4.0, 9.0),
    resolution: int = 200,
    n_times: int = 41,
) -> TimeSpanRun:
    """Train ``config`` with its time span set to (0, t1) and record its densities.

    Arguments:
        config: a 1D configuration, e.g. :data:`TIME_SPAN_CONFIG` (the seed tutorial).
        t1: end time of the span.
        bounds: the x range of the grid; it must contain N(0, 1) and the data.
        resolution: grid points R.
        n_times: times T of the density path.
    """
    start = time.perf_counter()
    model, trainer = fit(config.replace(model={"tspan": (0.0, float(t1))}))
    seconds = time.perf_counter() - start
    path = density_path_view(model, np.array([bounds]), resolution=resolution, n_times=n_times)
    xs = path.xs
    train_data = trainer.train_data
    assert train_data is not None, "the time-span demo trains on a fixed set, like the tutorial"
    return TimeSpanRun(
        t1=float(t1),
        xs=xs,
        learned=np.exp(model_log_prob(model, xs[:, None])),
        true=trainer.target.pdf(xs[:, None]),
        path_times=path.times,
        path_density=path.density,
        seed_tv=seed_tv(model, trainer.target, train_data),
        nll=float(-np.mean(model_log_prob(model, train_data))),
        seconds=seconds,
    )


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
