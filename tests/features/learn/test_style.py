"""The Learn figures' colours keep the palette's meanings (moved from tests/figures/test_style.py)."""

from cnfviz.features.learn import style as explain_plots
from cnfviz.figures import style


def test_the_learn_page_gives_orange_and_the_dark_line_the_train_pages_meanings():
    # Orange used to be the truth on Learn and the model on Train.
    assert explain_plots.COLORS["model"] == style.LEARNED_COLOR
    assert explain_plots.COLORS["true"] == explain_plots.COLORS["exact"] == style.TRUE_COLOR
    assert explain_plots.COLORS["base"] == style.BASE_COLOR
    assert style.LEARNED_COLOR not in {explain_plots.COLORS[k] for k in ("true", "base", "gaussian", "rademacher")}


def test_all_paths_become_one_polyline_with_a_gap_after_each():
    import numpy as np

    paths = np.arange(3 * 2 * 2, dtype=float).reshape(3, 2, 2)  # T = 3 times, n = 2 paths
    x, y = explain_plots.joined(paths)
    assert len(x) == 2 * (3 + 1) and np.isnan(x[3]) and np.isnan(y[7])
    np.testing.assert_array_equal(x[:3], paths[:, 0, 0])
    np.testing.assert_array_equal(y[4:7], paths[:, 1, 1])
