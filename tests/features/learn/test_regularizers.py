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


def _rgb(colour: str) -> np.ndarray:
    return np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)], dtype=float)


def test_the_dots_run_from_grey_to_orange_as_the_caption_says(tiny_runs):
    from cnfviz.figures.style import BASE_COLOR, LEARNED_COLOR, TRUE_COLOR

    runs, _ = tiny_runs
    fig = explain.regularizer_figure(runs["none"], runs["kinetic"], max_paths=20, dots=6)
    for trace in (fig.data[1], fig.data[3]):  # each panel's dots
        marker = trace.marker
        first, last = marker.colorscale[0][1], marker.colorscale[-1][1]
        # Each dot's colour, as plotly draws it: its time's place between cmin and cmax on the scale.
        f = (np.asarray(marker.color) - marker.cmin) / (marker.cmax - marker.cmin)
        colours = (1 - f)[:, None] * _rgb(first) + f[:, None] * _rgb(last)
        orange = np.linalg.norm(colours - _rgb(LEARNED_COLOR), axis=1) < 10
        grey = np.linalg.norm(colours - _rgb(BASE_COLOR), axis=1) < 10
        dark = np.linalg.norm(colours - _rgb(TRUE_COLOR), axis=1) < 10
        assert orange.sum() == 20, "the 20 paths' dots at t₁ are orange"
        assert grey.sum() == 20, "the 20 paths' dots at t₀ are grey"
        assert dark.sum() == 0, "no dot is the truth's dark grey"
    assert "grey t₀ → orange t₁" in fig.data[1].name
