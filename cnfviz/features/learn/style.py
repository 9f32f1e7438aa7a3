"""The Learn figures' colours, each with the meaning it has on every page, and their path polylines.

The palette's meanings (see :mod:`cnfviz.figures.style`): grey is the base N(0, I), orange is what the flow
makes, the dark line is the truth (target density or exact value); blue and purple are the two probes.

Example:
    >>> x, y = joined(np.zeros((3, 2, 2)))
    >>> len(x), int(np.isnan(x).sum())
    (8, 2)
"""

from __future__ import annotations

import numpy as np

from ...figures.style import BASE_COLOR, LEARNED_COLOR, SECOND_COLOR, TEST_COLOR, TRUE_COLOR

__all__ = ["COLORS", "joined"]

COLORS: dict[str, str] = {
    "base": BASE_COLOR,
    "model": LEARNED_COLOR,
    "true": TRUE_COLOR,
    "gaussian": TEST_COLOR,
    "rademacher": SECOND_COLOR,
    "exact": TRUE_COLOR,
}


def joined(paths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All paths (T, n, 2) as one polyline with NaN breaks, so a panel is one trace, not n."""
    t, n, _ = paths.shape
    gap = np.full((1, n, 2), np.nan)
    both = np.concatenate([paths, gap], 0).transpose(1, 0, 2).reshape(n * (t + 1), 2)
    return both[:, 0], both[:, 1]
