"""The Train page's frame: presentation figures that fill their height, and no Plotly toolbar on a phone."""

from __future__ import annotations

import numpy as np
import pytest

from cnfviz.figures.plots import density_figure, flow_figure
from cnfviz.figures.views import DensityView, TrajectoryView
from cnfviz.ui.layout import _COMPACT, back_row, fill_height

XS = np.linspace(-4, 4, 16)


def _density() -> object:
    view = DensityView(
        axes=(XS, XS),
        learned=np.ones((16, 16)),
        true=np.ones((16, 16)),
        data=np.zeros((4, 2)),
        samples=np.zeros((4, 2)),
        true_is_estimate=False,
    )
    return density_figure(view, compact=True)


def _flow() -> object:
    paths = np.random.default_rng(0).normal(size=(5, 30, 2))
    return flow_figure(TrajectoryView(np.linspace(0, 1, 5), paths)).figure


def _axes(fig: object) -> list[object]:
    return [fig.layout[name] for name in fig.layout if name.startswith(("xaxis", "yaxis"))]


@pytest.mark.parametrize("make", [_density, _flow], ids=["density", "flow"])
def test_presentation_frees_the_aspect_so_a_heatmap_fills_its_height(make):
    fig = make()
    anchored = [a for a in _axes(fig) if a.scaleanchor is not None]
    assert anchored, "on a laptop x and y share one scale"
    back_row(fig)
    assert all(a.scaleanchor is None and a.constrain is None for a in _axes(fig))
    assert all(a.automargin for a in _axes(fig)), "the tick labels get room below a full-height plot"
    assert fig.layout.meta["fill"] is True, "the live chart grows to the screen's bottom"
    assert fig.layout.xaxis.tickfont.size == 20


def test_fill_height_keeps_what_it_does_not_own():
    fig = _density()
    fig.update_layout(meta={"other": 1})
    back_row(fig)
    assert fig.layout.meta == {"other": 1, "fill": True}
    ranges = [tuple(a.range) for a in _axes(fill_height(_density()))]
    assert ranges == [tuple(a.range) for a in _axes(_density())], "the data's ranges stay"


def test_a_phone_gets_no_plotly_toolbar_and_a_laptop_keeps_it():
    rule = _COMPACT[_COMPACT.index("@media") :]
    assert "max-width: 640px" in rule and ".modebar-container { display: none" in rule
    from pathlib import Path

    js = (Path(__file__).resolve().parents[2] / "cnfviz/ui/live_chart_static/live_chart.js").read_text()
    assert (
        "NARROW_PX = 640" in js
        and "NARROW_CHART_PX = 720" in js
        and 'orientation: "v"' in js
        and "config.displayModeBar = false" in js
    ), "the live charts at the same width"
