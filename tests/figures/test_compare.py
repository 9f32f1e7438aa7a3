"""Comparison figures: one legend entry and one colour per run, decimated curves, shared density scales."""

from __future__ import annotations

import numpy as np
import pytest

from cnfviz.figures.compare import RUN_COLORS, loss_curves_figure, run_color, run_density_figure, target_density_figure
from cnfviz.figures.views import DensityView


def history(n: int, offset: float = 0.0) -> dict[str, np.ndarray]:
    it = np.arange(1, n + 1)
    return {"iteration": it, "nll": 3.0 - np.log1p(it) + offset, "nfe": it * 16}


def view_1d() -> DensityView:
    xs = np.linspace(-3, 3, 50)
    pdf = np.exp(-(xs**2) / 2) / np.sqrt(2 * np.pi)
    return DensityView((xs,), 0.8 * pdf, pdf, np.random.default_rng(0).normal(size=(100, 1)), np.zeros((5, 1)), False)


def view_2d(true: bool = True) -> DensityView:
    xs = np.linspace(-2, 2, 20)
    z = np.outer(np.exp(-(xs**2)), np.exp(-(xs**2)))
    data = np.random.default_rng(0).normal(size=(50, 2))
    return DensityView((xs, xs), z * 0.5, z if true else None, data, data[:10], False)


def test_loss_curves_one_colour_and_legend_entry_per_run_and_decimated():
    fig = loss_curves_figure([("a", history(5000)), ("b", history(10, 0.5)), ("c", {})], max_points=300)
    legend = [t for t in fig.data if t.showlegend is not False]
    assert [t.name for t in legend] == ["a", "b", "c"]
    assert [t.line.color for t in legend] == list(RUN_COLORS[:3])
    nfe = [t for t in fig.data if t.xaxis == "x2"]
    assert [t.name for t in nfe] == ["a", "b"], "NFE per iteration on the right panel, for runs with NFE"
    assert nfe[0].line.color == RUN_COLORS[0]
    assert max(len(t.x) for t in fig.data) <= 300
    assert np.allclose(nfe[1].y, 16.0)


def test_empty_loss_figure_says_so():
    fig = loss_curves_figure([("a", {})])
    assert any("no iterations" in a.text for a in fig.layout.annotations)


def test_run_colors_cycle():
    assert len(set(RUN_COLORS)) == 6 and run_color(7) == RUN_COLORS[1]


def test_1d_run_density_overlays_the_truth_on_a_shared_axis():
    fig = run_density_figure(view_1d(), label="width = 8", color=RUN_COLORS[2], y_max=0.5)
    assert [t.name for t in fig.data] == ["true pdf", "learned pdf"]
    assert fig.data[1].line.color == RUN_COLORS[2]
    assert fig.layout.yaxis.range[1] > 0.5
    assert "width = 8" in fig.layout.title.text


def test_2d_run_density_is_a_heatmap_on_the_shared_scale():
    fig = run_density_figure(view_2d(), label="lr = 0.01", color=RUN_COLORS[0], z_max=1.0)
    assert len(fig.data) == 1 and fig.data[0].type == "heatmap"
    assert fig.data[0].zmin == 0 and fig.data[0].zmax == 1.0
    assert fig.layout.yaxis.scaleanchor == "x", "square cells"


def test_target_figure_shows_the_density_or_the_data():
    assert target_density_figure(view_2d(), z_max=1.0).data[0].type == "heatmap"
    assert target_density_figure(view_2d(true=False)).data[0].mode == "markers"
    names = [t.name for t in target_density_figure(view_1d()).data]
    assert names == ["data", "true pdf"]


def test_a_flow_matching_run_is_drawn_by_its_test_nll():
    fm = {
        "iteration": np.arange(1, 101),
        "nll": np.full(100, np.nan),
        "nfe": np.arange(1, 101),
        "test_iteration": np.array([50, 100]),
        "test_nll": np.array([3.0, 2.8]),
    }
    fig = loss_curves_figure([("likelihood", history(10)), ("flow matching", fm)])
    curve = next(t for t in fig.data if t.name == "flow matching (test NLL)")
    assert list(curve.x) == [50, 100] and list(curve.y) == pytest.approx([3.0, 2.8])
    assert curve.mode == "lines+markers"


def test_every_run_of_every_objective_is_on_the_loss_chart_with_its_own_loss_in_its_own_panel():
    likelihood = {**history(200), "test_iteration": np.array([100, 200]), "test_nll": np.array([2.5, 2.2])}
    fm = {
        "iteration": np.arange(1, 201),
        "nll": np.full(200, np.nan),
        "loss": np.linspace(30.0, 20.0, 200),
        "nfe": np.zeros(200),
        "test_iteration": np.array([100, 200]),
        "test_nll": np.array([2.8, 2.4]),
    }
    fig = loss_curves_figure([("likelihood", likelihood), ("flow matching", fm)])
    on = lambda axis: [t.name for t in fig.data if t.xaxis == axis]  # noqa: E731
    assert on("x") == ["likelihood", "likelihood (test NLL)", "flow matching (test NLL)"], "one NLL scale for all"
    assert on("x3") == ["flow matching"], "the regression loss (20-30) does not squash the NLLs"
    np.testing.assert_allclose(next(t for t in fig.data if t.name == "flow matching (test NLL)").y, [2.8, 2.4])
    assert [a.text for a in fig.layout.annotations][2] == "flow-matching loss"
    assert [t.line.color for t in fig.data if t.showlegend is not False] == list(RUN_COLORS[:2])
