"""The plotly figure builders: the traces, frames and array shapes each view promises, for 1D and 2D."""

from __future__ import annotations

import numpy as np
import plotly.io as pio
import pytest

from cnfviz import FFJORD, ModelConfig, SolverConfig, make_target
from cnfviz.figures.plots import (
    COMPACT_SUBTITLE_PX,
    MAX_LINE_POINTS,
    decimate,
    density_figure,
    density_path_figure,
    field_figure,
    loss_figure,
    samples_figure,
    target_preview_figure,
    trajectory_figure,
)
from cnfviz.figures.views import compute_visuals


@pytest.fixture(scope="module", params=["normal", "moons"])
def case(request):
    """(target, visuals) of a tiny untrained flow: the figures only need the arrays' shapes."""
    target = make_target(request.param)
    model = FFJORD(target.dim, ModelConfig(hidden=(8,)), SolverConfig("rk4", step_size=0.25))
    return target, compute_visuals(model, target, target.sample(500, seed=0), iteration=7)


def history(n: int, *, regularized: bool = False, every: int = 50) -> dict[str, np.ndarray]:
    it = np.arange(1, n + 1)
    nll = 3.0 / np.sqrt(it)
    return {
        "iteration": it,
        "nll": nll,
        "loss": nll + (0.1 if regularized else 0.0),
        "nfe": 40 * it,
        "test_iteration": it[every - 1 :: every],
        "test_nll": nll[every - 1 :: every] + 0.05,
    }


# --------------------------------------------------------------------------------------------------
# Decimation
# --------------------------------------------------------------------------------------------------


def test_decimate_leaves_short_curves_alone():
    x, y = np.arange(10), np.arange(10.0)
    xd, yd = decimate(x, y, 100)
    assert np.array_equal(xd, x) and np.array_equal(yd, y)


@pytest.mark.parametrize("n", [2001, 10_007, 100_000])
def test_decimate_bounds_points_and_keeps_extremes_and_ends(n):
    rng = np.random.default_rng(0)
    x, y = np.arange(n), rng.normal(size=n)
    y[n // 3] = 50.0
    y[2 * n // 3] = -50.0
    xd, yd = decimate(x, y, MAX_LINE_POINTS)
    assert len(xd) <= MAX_LINE_POINTS
    assert xd[0] == 0 and xd[-1] == n - 1
    assert np.all(np.diff(xd) > 0)
    assert yd.max() == 50.0 and yd.min() == -50.0
    assert np.array_equal(yd, y[xd])


# --------------------------------------------------------------------------------------------------
# Loss
# --------------------------------------------------------------------------------------------------


def test_loss_figure_traces_and_second_axis():
    fig = loss_figure(history(300))
    names = [t.name for t in fig.data]
    assert names == ["training NLL", "test NLL", "NFE per iteration"]
    assert np.all(np.asarray(fig.data[2].y) == 40)
    assert len(fig.data[0].x) == 300
    assert len(fig.data[1].x) == 6
    assert fig.data[2].yaxis == "y2"
    assert fig.layout.title.text


def test_loss_figure_shows_the_regularized_loss_and_the_lbfgs_stage():
    fig = loss_figure(history(300, regularized=True), lbfgs_from=201)
    assert "loss (NLL + λ terms)" in [t.name for t in fig.data]
    assert any(s.type == "line" and s.x0 == 201 for s in fig.layout.shapes)


def test_loss_figure_decimates_a_long_history():
    fig = loss_figure(history(100_000))
    assert len(fig.data[0].x) <= MAX_LINE_POINTS
    assert fig.data[0].x[-1] == 100_000


def test_loss_figure_of_an_empty_history():
    fig = loss_figure({"iteration": np.zeros(0, int), "nll": np.zeros(0)})
    assert len(fig.data[0].x) == 0
    assert fig.layout.annotations


# --------------------------------------------------------------------------------------------------
# Heavy figures
# --------------------------------------------------------------------------------------------------


def test_density_figure(case):
    target, vis = case
    fig = density_figure(vis.density)
    assert fig.layout.title.text == "Learned vs true density"
    if target.dim == 1:
        assert [t.type for t in fig.data] == ["bar", "scatter", "scatter"]
        assert [t.name for t in fig.data[1:]] == ["true pdf", "learned pdf"]
        assert len(fig.data[2].y) == len(vis.density.axes[0])
    else:
        heatmaps = [t for t in fig.data if t.type == "heatmap"]
        assert len(heatmaps) == 2
        assert all(np.asarray(h.z).shape == (64, 64) for h in heatmaps)
        samples = [t for t in fig.data if t.name == "model samples"]
        assert len(samples[0].x) == len(vis.density.samples) and samples[0].xaxis == "x2"
        # moons has no closed-form density: the figure says the left one is an estimate.
        assert "estimate" in fig.layout.annotations[0].text
        # A narrow live chart (a phone: two 120 px panels) gets short panel titles small enough not to overlap.
        compact = density_figure(vis.density, compact=True)
        titles = compact.layout.annotations[:2]
        assert [a.text for a in titles] == ["True (estimated)", "Learned + samples"]
        assert len(titles) == 2 and {a.font.size for a in titles} == {COMPACT_SUBTITLE_PX} and COMPACT_SUBTITLE_PX <= 13


@pytest.mark.parametrize("animate", [True, False])
def test_trajectory_figure(case, animate):
    target, vis = case
    times, paths = vis.trajectories.times, vis.trajectories.paths
    fig = trajectory_figure(vis.trajectories, animate=animate)
    moving = fig.data[-1]
    assert moving.name == "samples at t"
    final = paths[-1, :, 0]
    assert np.allclose(moving.y if target.dim == 1 else moving.x, final, atol=1e-5)
    if animate:
        assert len(fig.frames) == len(times)
        assert len(fig.layout.sliders[0].steps) == len(times)
        assert fig.layout.sliders[0].active == len(times) - 1
        assert "Play" in fig.layout.updatemenus[0].buttons[0].label
        k = len(times) // 2
        frame = fig.frames[k].data[0]
        got = frame.x if target.dim == 2 else frame.y
        assert np.allclose(got, paths[k, :, 0], atol=1e-5)
        assert fig.frames[k].traces == (len(fig.data) - 1,)
    else:
        assert not fig.frames and not fig.layout.sliders


def test_density_path_figure_1d(case):
    target, vis = case
    if target.dim != 1:
        assert vis.density_path is None
        return
    view = vis.density_path
    fig = density_path_figure(view, vis.trajectories)
    heat = fig.data[0]
    assert heat.type == "heatmap" and np.asarray(heat.z).shape == (len(view.xs), len(view.times))
    assert fig.data[1].name == "sample paths"


def test_field_figure(case):
    target, vis = case
    view = vis.field
    fig = field_figure(view)
    if target.dim == 1:
        assert fig.data[0].type == "heatmap"
        assert np.asarray(fig.data[0].z).shape == (len(view.axes[0]), len(view.times))
        assert fig.data[0].zmid == 0
    else:
        r = len(view.axes[0])
        assert len(fig.data[0].x) == 3 * r * r  # tail, tip, gap per arrow
        assert len(fig.frames) == len(view.times)
        assert len(fig.layout.sliders[0].steps) == len(view.times)


def test_figures_serialise_identically_when_rebuilt(case):
    # Streamlit remounts a chart only when its JSON changes: a rebuilt figure must not.
    _, vis = case
    for build in (
        lambda: density_figure(vis.density),
        lambda: trajectory_figure(vis.trajectories),
        lambda: field_figure(vis.field),
    ):
        assert pio.to_json(build(), validate=False) == pio.to_json(build(), validate=False)


def test_heavy_figures_stay_light(case):
    _, vis = case
    for fig in (density_figure(vis.density), trajectory_figure(vis.trajectories), field_figure(vis.field)):
        assert len(pio.to_json(fig, validate=False)) < 600_000


# --------------------------------------------------------------------------------------------------
# Targets and samples
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["normal", "scipy:gamma", "8gaussians"])
def test_target_preview_figure(name):
    target = make_target(name, {"a": 2.0} if name == "scipy:gamma" else None)
    fig = target_preview_figure(target, n=300)
    assert fig.layout.title.text == target.label
    if target.dim == 1:
        assert [t.type for t in fig.data] == ["bar", "scatter"]
        assert np.all(np.asarray(fig.data[1].y) >= 0)
    else:
        assert fig.data[0].type == "heatmap" and len(fig.data[1].x) == 300


def test_samples_figure_1d_and_2d():
    rng = np.random.default_rng(0)
    one = samples_figure(rng.normal(size=(500, 1)), target=make_target("normal", {"loc": 0.0, "scale": 1.0}))
    assert [t.name for t in one.data] == ["500 model samples", "true pdf"]
    two = samples_figure(rng.normal(size=(7000, 2)))
    assert len(two.data[0].x) == 5000 and "7000" in two.layout.title.text


def test_a_flow_matching_loss_figure_shows_the_regression_loss_and_the_test_nll():
    n = 50
    history = {
        "iteration": np.arange(1, n + 1),
        "nll": np.full(n, np.nan),
        "loss": np.linspace(3.0, 2.0, n),
        "nfe": np.arange(1, n + 1),
        "test_iteration": np.array([25, 50]),
        "test_nll": np.array([3.1, 2.9]),
    }
    fig = loss_figure(history)
    names = [t.name for t in fig.data]
    assert names == ["flow-matching loss", "test NLL", "NFE per iteration"]
    np.testing.assert_allclose(fig.data[0].y, history["loss"], rtol=1e-6)
    # Issue 22: the regression loss and the test NLL each have their own axis (they were one, "loss; test NLL").
    assert fig.layout.yaxis.title.text == "regression loss"
    assert fig.layout.yaxis2.title.text == "test NLL (nats)"
    assert [t.yaxis for t in fig.data] == ["y", "y2", "y3"]
    assert fig.layout.title.text == "Flow-matching loss"


def test_the_loss_chart_names_every_curve_and_titles_its_axes_per_objective():
    fig = loss_figure(history(300, regularized=True))
    assert fig.layout.showlegend is not False and all(t.showlegend is not False for t in fig.data)
    assert [t.name for t in fig.data] == ["training NLL", "loss (NLL + λ terms)", "test NLL", "NFE per iteration"]
    assert [t.yaxis for t in fig.data] == ["y", "y", "y", "y2"], "the NFE has its own panel, not a second axis"
    assert fig.layout.title.text == "Likelihood loss"
    assert fig.layout.yaxis.title.text == "NLL (nats)" and fig.layout.yaxis2.title.text == "NFE / iter"
    # One iteration axis, titled once, at the bottom; the legend sits below the panels.
    assert fig.layout.xaxis2.title.text == "iteration" and not fig.layout.xaxis.title.text
    assert fig.layout.legend.orientation == "h" and fig.layout.legend.yref == "container" and fig.layout.legend.y == 0
    assert fig.layout.xaxis.automargin and fig.layout.yaxis.automargin, "tick labels are never clipped"


def test_loss_series_names_the_curves_loss_figure_draws_for_both_objectives():
    from cnfviz.figures.plots import loss_figure, loss_series

    it = np.arange(1, 6)
    likelihood = {"iteration": it, "nll": np.linspace(3, 2, 5), "loss": np.linspace(3.5, 2.5, 5)}
    fm = {"iteration": it, "nll": np.full(5, np.nan), "loss": np.linspace(1.0, 0.5, 5)}
    for history in (likelihood, fm):
        history["test_iteration"], history["test_nll"] = np.array([5]), np.array([2.1])
        names, curves, _ = loss_series(history)
        fig = loss_figure(history)
        assert names == tuple(t.name for t in fig.data)
        assert len(curves) == len(fig.data)
    assert loss_series(fm)[0][0] == "flow-matching loss"
    np.testing.assert_allclose(loss_series(fm)[1][0][1], fm["loss"], rtol=1e-6)
