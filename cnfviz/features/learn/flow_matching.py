"""§7 Two ways to train: straight conditional paths, curved marginal paths, and their figure."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from ...figures.style import compact
from ...training.config import TrainConfig
from .style import COLORS, joined

__all__ = [
    "FLOW_MATCHING_PAIRINGS",
    "FlowMatchingDemo",
    "flow_matching_demo",
    "flow_matching_figure",
    "likelihood_iteration_cost",
    "marginal_velocity",
]

FLOW_MATCHING_PAIRINGS: tuple[str, ...] = ("independent", "ot")


@dataclass(frozen=True)
class FlowMatchingDemo:
    """Flow matching's two kinds of path, for data from a mixture of K isotropic Gaussians, tspan (0, 1).

    ``means`` (K, 2) and ``sd``: the mixture; ``x0`` (n, 2): noise points; ``x1`` (n, 2): the data point
    each is paired with (``pairing``: independent or minibatch OT); ``times`` (T,) and ``marginal``
    (T, n, 2): the paths from ``x0`` along the exact marginal field of independent flow matching, the field
    a flow-matching network learns; ``crossings``: how many of the n(n − 1)/2 pairs of straight conditional
    paths x0 → x1 cross; ``pair_cost``: mean ‖x1 − x0‖²; ``marginal_straightness``: mean
    |end − start| / path length of the marginal paths (1 is straight); ``marginal_end_error``: the largest
    distance from a marginal path's end to the nearest mixture mean, in sds.
    """

    pairing: str
    means: np.ndarray
    sd: float
    x0: np.ndarray
    x1: np.ndarray
    times: np.ndarray
    marginal: np.ndarray
    crossings: int
    pair_cost: float
    marginal_straightness: float
    marginal_end_error: float


def marginal_velocity(x: np.ndarray, s: float, means: np.ndarray, sd: float) -> np.ndarray:
    """E[x1 − x0 | x_s = x] for x0 ~ N(0, I), x1 ~ an equal mixture of N(μ_k, sd² I), x_s = (1 − s) x0 + s x1.

    Given component k, (x_s, x1 − x0) is jointly Gaussian: x_s ~ N(s μ_k, v I) with v = (1 − s)² + s² sd²,
    and Cov(x1 − x0, x_s) = (s sd² − (1 − s)) I, so E[x1 − x0 | x_s, k] = μ_k + (s sd² − (1 − s))/v · (x − s μ_k);
    the components are weighted by their posterior given x.

    Arguments:
        x: points, shape (n, d).
        s: the time, in [0, 1].
        means: mixture means, shape (K, d).
        sd: the components' standard deviation (> 0).

    Returns:
        the velocity, shape (n, d).
    """
    v = (1 - s) ** 2 + s**2 * sd**2
    diff = x[:, None, :] - s * means[None]  # (n, K, d)
    logw = -0.5 * (diff**2).sum(-1) / v
    w = np.exp(logw - logw.max(1, keepdims=True))
    w /= w.sum(1, keepdims=True)
    per = means[None] + (s * sd**2 - (1 - s)) / v * diff
    return (w[..., None] * per).sum(1)


def _segments_cross(a0: np.ndarray, a1: np.ndarray) -> int:
    """How many pairs of the segments a0[i] → a1[i] (each (n, 2)) properly intersect."""
    d = a1 - a0
    i, j = np.triu_indices(len(a0), 1)

    def orient(p: np.ndarray, q: np.ndarray, r: np.ndarray) -> np.ndarray:
        return np.sign((q[:, 0] - p[:, 0]) * (r[:, 1] - p[:, 1]) - (q[:, 1] - p[:, 1]) * (r[:, 0] - p[:, 0]))

    p, p2, q, q2 = a0[i], a0[i] + d[i], a0[j], a0[j] + d[j]
    hit = (orient(p, p2, q) * orient(p, p2, q2) < 0) & (orient(q, q2, p) * orient(q, q2, p2) < 0)
    return int(hit.sum())


def flow_matching_demo(
    pairing: str = "independent",
    *,
    n_paths: int = 40,
    modes: int = 8,
    radius: float = 3.0,
    sd: float = 0.3,
    steps: int = 60,
    seed: int = 0,
) -> FlowMatchingDemo:
    """Straight conditional paths (what flow matching regresses on) against the curved marginal paths (what
    the learned field integrates), on a ring of ``modes`` Gaussians.

    Example:
        >>> demo = flow_matching_demo("ot", n_paths=12)
        >>> demo.x1.shape, demo.marginal.shape
        ((12, 2), (61, 12, 2))
    """
    from ...training.objectives import ot_pairing

    if pairing not in FLOW_MATCHING_PAIRINGS:
        raise ValueError(f'Invalid pairing "{pairing}". Must be one of {list(FLOW_MATCHING_PAIRINGS)}')
    rng = np.random.default_rng(seed)
    angles = 2 * np.pi * np.arange(modes) / modes
    means = radius * np.stack([np.cos(angles), np.sin(angles)], 1)
    x0 = rng.standard_normal((n_paths, 2))
    x1 = means[rng.integers(modes, size=n_paths)] + sd * rng.standard_normal((n_paths, 2))
    if pairing == "ot":
        x1 = x1[ot_pairing(torch.as_tensor(x0), torch.as_tensor(x1)).numpy()]
    # RK4 on the analytic marginal field: smooth, so a fixed grid of `steps` is accurate to plotting precision.
    times = np.linspace(0.0, 1.0, steps + 1)
    paths = [x0]
    x, h = x0, 1.0 / steps
    for k in range(steps):
        s = times[k]
        k1 = marginal_velocity(x, s, means, sd)
        k2 = marginal_velocity(x + h / 2 * k1, s + h / 2, means, sd)
        k3 = marginal_velocity(x + h / 2 * k2, s + h / 2, means, sd)
        k4 = marginal_velocity(x + h * k3, s + h, means, sd)
        x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        paths.append(x)
    marginal = np.stack(paths)
    length = np.linalg.norm(np.diff(marginal, axis=0), axis=-1).sum(0)
    chord = np.linalg.norm(marginal[-1] - marginal[0], axis=-1)
    nearest = np.linalg.norm(marginal[-1][:, None] - means[None], axis=-1).min(1)
    return FlowMatchingDemo(
        pairing=pairing,
        means=means,
        sd=sd,
        x0=x0,
        x1=x1,
        times=times,
        marginal=marginal,
        crossings=_segments_cross(x0, x1),
        pair_cost=float(((x1 - x0) ** 2).sum(1).mean()),
        marginal_straightness=float(np.mean(chord / np.maximum(length, 1e-12))),
        marginal_end_error=float(nearest.max() / sd),
    )


def likelihood_iteration_cost(config: TrainConfig) -> int | None:
    """Evaluations of the field (with its Jacobian) in one likelihood iteration's forward solve, for a
    fixed-grid solver; None for an adaptive one, whose count varies. Flow matching makes one, without a Jacobian.

    Example:
        >>> from cnfviz import default_config
        >>> likelihood_iteration_cost(default_config("8gaussians"))  # rk4, step 0.125 over (0, 0.5)
        16
    """
    s = config.solver
    stages = {"euler": 1, "midpoint": 2, "rk4": 4, "explicit_adams": 1, "implicit_adams": 1}.get(s.method)
    if not s.is_fixed_grid or not s.step_size or stages is None:
        return None
    t0, t1 = config.model.tspan
    return math.ceil(round(abs(t1 - t0) / s.step_size, 9)) * stages


def flow_matching_figure(demo: FlowMatchingDemo) -> go.Figure:
    """Flow matching's two kinds of path side by side: 6 traces.

    Left, the straight conditional paths x0 → x1 of the pairing; right, the marginal paths from the same
    x0 along the exact marginal field. Both panels mark the start points (grey) and the mixture means.
    """
    pairing = "independent pairs" if demo.pairing == "independent" else "OT pairs"
    fig = make_subplots(
        rows=1,
        cols=2,
        shared_xaxes=True,
        shared_yaxes=True,
        horizontal_spacing=0.04,
        subplot_titles=(
            f"conditional paths, {pairing}: {demo.crossings} crossings",
            f"marginal paths: straightness {demo.marginal_straightness:.2f}",
        ),
    )
    segments = np.stack([demo.x0, demo.x1])  # (2, n, 2)
    for col, paths, name in ((1, segments, "straight path x0 → x1"), (2, demo.marginal, "marginal path")):
        x, y = joined(paths)
        fig.add_scatter(
            x=x,
            y=y,
            mode="lines",
            line={"color": "rgba(46, 134, 171, 0.55)", "width": 1.2},
            name=name,
            hoverinfo="skip",
            row=1,
            col=col,
        )
        fig.add_scatter(
            x=demo.x0[:, 0],
            y=demo.x0[:, 1],
            mode="markers",
            marker={"color": COLORS["base"], "size": 5},
            name="noise x0 (t₀)",
            legendgroup="x0",
            showlegend=col == 1,
            row=1,
            col=col,
        )
        ends = demo.x1 if col == 1 else demo.marginal[-1]
        fig.add_scatter(
            x=ends[:, 0],
            y=ends[:, 1],
            mode="markers",
            marker={"color": COLORS["true"], "size": 5},
            name="end (t₁)",
            legendgroup="end",
            showlegend=col == 1,
            row=1,
            col=col,
        )
    lim = float(np.abs(np.concatenate([demo.x0, demo.x1, demo.marginal.reshape(-1, 2)])).max()) + 0.3
    fig.update_xaxes(range=[-lim, lim], constrain="domain")
    fig.update_yaxes(range=[-lim, lim], scaleanchor="x", scaleratio=1, row=1, col=1)
    fig.update_yaxes(range=[-lim, lim], row=1, col=2)
    fig.update_annotations(font_size=13)
    return compact(fig, 440, legend_below=True)
