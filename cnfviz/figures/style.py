"""One look for every figure: the palette (one meaning per colour, on every page) and the layout helpers.

The meanings, the same on the Train, Compare and Learn pages:

=================  ===========  ============================================================
colour             name         meaning
=================  ===========  ============================================================
dark grey line     TRUE         the truth: the target's density, an exact value
orange             LEARNED      what the flow makes: its density, its samples, its loss
light grey         BASE         the base distribution N(0, I) and the points z at t0
blue-grey bars     DATA         the training data
blue               TEST         held-out figures (the test NLL); the Gaussian probe on Learn
=================  ===========  ============================================================

Runs side by side (Compare) take :data:`RUN_COLORS` instead, and the paths of one picture the
qualitative :data:`PATH_COLORS`.

Example:
    >>> import plotly.graph_objects as go
    >>> fig = finish(go.Figure(), "loss", 300)
    >>> fig.layout.height, fig.layout.uirevision
    (300, 'keep')
"""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go

__all__ = [
    "BASE_COLOR",
    "DATA_COLOR",
    "DENSITY_SCALE",
    "LEARNED_COLOR",
    "NFE_COLOR",
    "PATH_COLORS",
    "PATH_SCALE",
    "RUN_COLORS",
    "SECOND_COLOR",
    "TEST_COLOR",
    "TRUE_COLOR",
    "compact",
    "f32",
    "finish",
    "run_color",
]

TRUE_COLOR = "#3a3a3a"
LEARNED_COLOR = "#e4572e"
BASE_COLOR = "#8a8a8a"
DATA_COLOR = "rgba(120, 144, 176, 0.45)"
TEST_COLOR = "#2e86ab"
SECOND_COLOR = "#7b4b94"
"""A second estimate beside :data:`TEST_COLOR` (the Rademacher probe on Learn): purple, never orange."""
NFE_COLOR = "#9a9a9a"
DENSITY_SCALE = "Viridis"
PATH_SCALE = "Phase"
"""A cyclic scale: a base point's colour follows the angle (2D) or rank (1D) of where it started."""
PATH_COLORS: tuple[str, ...] = ("#2E86AB", "#C73E1D", "#F18F01", "#3B8E4F", "#7B4B94", "#5C6B73", "#D4A017", "#A23B72")
RUN_COLORS: tuple[str, ...] = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00")
"""One colour per run, in order (Okabe and Ito's palette, distinguishable with colour-blindness)."""


def run_color(i: int) -> str:
    """The colour of the ``i``-th run (0-based).

    Example:
        >>> run_color(0), run_color(6) == run_color(0)
        ('#0072B2', True)
    """
    return RUN_COLORS[i % len(RUN_COLORS)]


def f32(a: Any) -> np.ndarray:
    """float32 halves what travels to the browser; plots need no more precision."""
    return np.asarray(a, dtype=np.float32)


def finish(
    fig: go.Figure,
    title: str | None,
    height: int,
    *,
    legend: bool = True,
    top: int = 60,
    legend_y: float = 1.0,
    legend_left: bool = False,
    title_size: int | None = None,
) -> go.Figure:
    """A live figure's title (left), height, small margins (``top`` above the axes) and a horizontal legend.

    ``uirevision`` is fixed, so plotly keeps the user's zoom across updates of the same figure.
    """
    title_layout: dict[str, Any] | None = None
    if title:
        title_layout = {"text": title, "x": 0.0, "xanchor": "left"}
        if title_size:
            title_layout["font"] = {"size": title_size}
    fig.update_layout(
        title=title_layout,
        height=height,
        margin={"l": 10, "r": 10, "t": top, "b": 10},
        legend={
            "orientation": "h",
            "yanchor": "bottom",
            "y": legend_y,
            "xanchor": "left" if legend_left else "right",
            "x": 0.0 if legend_left else 1.0,
        },
        showlegend=legend,
        uirevision="keep",
    )
    return fig


def compact(fig: go.Figure, height: int = 340, *, legend_below: bool = False) -> go.Figure:
    """Small margins and a horizontal legend, so several static figures fit on one screen (Learn).

    Figures with subplot titles put the legend below the axes, where it cannot cover the titles.
    """
    legend = {"orientation": "h", "xanchor": "left", "x": 0}
    if legend_below:
        legend.update(yanchor="top", y=-0.18)
    else:
        legend.update(yanchor="bottom", y=1.02)
    fig.update_layout(
        height=height,
        margin={"l": 10, "r": 10, "t": 30 if legend_below else 40, "b": 10},
        legend=legend,
        bargap=0.02,
    )
    return fig
