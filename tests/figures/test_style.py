"""One palette: each colour means one thing on every page, and every figure module draws from it."""

from __future__ import annotations

import numpy as np

from cnfviz.figures import style
from cnfviz.figures.compare import run_density_figure
from cnfviz.figures.plots import density_figure
from cnfviz.figures.views import DensityView


def _view() -> DensityView:
    xs = np.linspace(-3, 3, 50)
    true = np.exp(-0.5 * xs**2) / np.sqrt(2 * np.pi)
    data, samples = np.zeros((10, 1)), np.zeros((10, 1))
    return DensityView(axes=(xs,), learned=0.9 * true, true=true, data=data, samples=samples, true_is_estimate=False)


def test_the_meanings_are_distinct_colours():
    meanings = [style.TRUE_COLOR, style.LEARNED_COLOR, style.BASE_COLOR, style.DATA_COLOR, style.TEST_COLOR]
    assert len({c.lower() for c in [*meanings, style.SECOND_COLOR]}) == 6


def test_train_and_compare_draw_truth_and_model_alike():
    train = density_figure(_view())
    compare = run_density_figure(_view(), label="run", color=None, y_max=0.5)
    for fig in (train, compare):
        colours = {t.name: t.line.color for t in fig.data if t.type == "scatter"}
        assert colours["learned pdf"] == style.LEARNED_COLOR
        assert style.TRUE_COLOR in colours.values()
