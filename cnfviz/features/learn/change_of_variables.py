"""§1 Change of variables: x = a·z + b, its density by the formula and by samples, and its figure."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

from ...figures.style import compact
from .style import COLORS

__all__ = ["AffineDemo", "affine_change_of_variables", "change_of_variables_figure"]


@dataclass(frozen=True)
class AffineDemo:
    """x = a·z + b for z ~ N(0, 1): the change-of-variables density and samples that test it.

    ``xs`` (R,): evaluation grid; ``p_z`` (R,): N(0, 1) on it; ``p_x`` (R,): p_z((x − b)/a)/|a|;
    ``samples`` (n,): pushed samples a·z + b; ``integral``: ∫p_x dx on the grid (≈ 1).
    """

    a: float
    b: float
    xs: np.ndarray
    p_z: np.ndarray
    p_x: np.ndarray
    samples: np.ndarray
    integral: float


def _normal_pdf(x: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * x**2) / math.sqrt(2 * math.pi)


def affine_change_of_variables(
    a: float, b: float, *, n_samples: int = 4000, resolution: int = 400, seed: int = 0
) -> AffineDemo:
    """The density of x = a·z + b, z ~ N(0, 1), from the change-of-variables formula.

    Arguments:
        a: scale, nonzero (a negative scale flips the axis; the density only sees |a|).
        b: shift.
        n_samples: samples z pushed through the map, to check the formula against.
        resolution: grid points R; the grid covers both N(0, 1) and N(b, a²) to ±4 sd.
        seed: seeds the samples.

    Returns:
        An :class:`AffineDemo`.

    Example:
        >>> demo = affine_change_of_variables(-0.5, 2.0, n_samples=10, resolution=5)
        >>> demo.xs.shape, demo.samples.shape
        ((5,), (10,))
    """
    if a == 0 or not math.isfinite(a):
        raise ValueError(f"a must be a finite nonzero scale: x = 0·z + b is not invertible (got a = {a})")
    lo, hi = min(-4.0, b - 4 * abs(a)), max(4.0, b + 4 * abs(a))
    xs = np.linspace(lo, hi, resolution)
    p_x = _normal_pdf((xs - b) / a) / abs(a)
    z = np.random.default_rng(seed).standard_normal(n_samples)
    return AffineDemo(
        a=float(a),
        b=float(b),
        xs=xs,
        p_z=_normal_pdf(xs),
        p_x=p_x,
        samples=a * z + b,
        integral=float(np.trapezoid(p_x, xs)),
    )


def change_of_variables_figure(demo: AffineDemo) -> go.Figure:
    """Base density, pushed-sample histogram and the change-of-variables density: 3 traces."""
    fig = go.Figure()
    fig.add_histogram(
        x=demo.samples,
        histnorm="probability density",
        nbinsx=60,
        name="histogram of a·z + b",
        marker_color=COLORS["model"],
        opacity=0.45,
    )
    fig.add_scatter(
        x=demo.xs, y=demo.p_z, name="p_z = N(0, 1)", line={"color": COLORS["base"], "dash": "dash", "width": 2}
    )
    fig.add_scatter(x=demo.xs, y=demo.p_x, name="p_x(x) = p_z(z) / |a|", line={"color": COLORS["true"], "width": 3})
    fig.update_xaxes(title_text="x (or z)")
    fig.update_yaxes(title_text="density", rangemode="tozero")
    return compact(fig)
