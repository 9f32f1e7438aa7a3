"""§5: the kinetic regularizer straightens the paths, and the figure colours them as its caption says."""

import numpy as np
import pytest

from cnfviz.features import learn as explain
from cnfviz.features.learn.regularizers import _straightness


def test_kinetic_regularizer_gives_smaller_kinetic_energy(tiny_runs):
    runs, _ = tiny_runs
    assert runs["kinetic"].kinetic < 0.75 * runs["none"].kinetic
    for run in runs.values():
        assert run.paths.shape == (21, 30, 2) and 0 < run.straightness <= 1 + 1e-9 and run.nfe > 0


def test_straightness_is_one_for_straight_lines_and_less_for_bends():
    t = np.linspace(0, 1, 11)[:, None, None]
    straight = t * np.array([[1.0, 2.0], [-1.0, 0.5]])[None]
    assert _straightness(straight) == pytest.approx(1.0)
    bent = np.concatenate([straight, straight[-1:] + t[1:] * np.array([[2.0, -4.0], [0.0, 1.0]])[None]])
    assert _straightness(bent) < 0.9


def test_the_figure_has_the_documented_traces(tiny_runs):
    runs, _ = tiny_runs
    fig = explain.regularizer_figure(runs["none"], runs["kinetic"], max_paths=20, dots=6)
    assert len(fig.data) == 4
    # All paths of a panel are one NaN-separated polyline: T points plus one gap per path.
    assert len(fig.data[0].x) == 20 * (21 + 1)
    assert len(fig.data[1].x) == 20 * 6
