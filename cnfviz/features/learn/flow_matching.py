"""§7 Two ways to train: straight conditional paths, curved marginal paths, and their figure."""

from __future__ import annotations

import math
from collections.abc import Callable
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
    "coupling_velocity",
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
    (T, n, 2): the paths from ``x0`` along the marginal field of that pairing, the field a flow-matching
    network trained with it learns (independent: the exact field, in closed form; OT: the field of a
    minibatch-OT coupling of ``coupling_pairs`` pairs, see :func:`coupling_velocity`); ``crossings``: how
    many of the n(n − 1)/2 pairs of straight conditional paths x0 → x1 cross; ``pair_cost``: mean
    ‖x1 − x0‖²; ``marginal_straightness``: mean |end − start| / path length of the marginal paths (1 is
    straight); ``marginal_end_error``: the largest distance from a marginal path's end to the nearest
    mixture mean, in sds; ``marginal_length``: the marginal paths' mean length.
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
    marginal_length: float = 0.0
    coupling_pairs: int = 0

    @property
    def marginal_field(self) -> str:
        """Which marginal field the paths follow, in words."""
        if self.pairing == "independent":
            return "the exact marginal field of independent flow matching, computed in closed form"
        return f"the marginal field of minibatch-OT flow matching, over {self.coupling_pairs:,} OT-paired points"


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


def coupling_velocity(x: np.ndarray, s: float, x0: np.ndarray, x1: np.ndarray, bandwidth: float) -> np.ndarray:
    """E[x1 − x0 | x_s = x] under the coupling of the pairs (x0[i], x1[i]), each straight path widened by
    N(0, bandwidth² I): the marginal field of conditional flow matching with σ = ``bandwidth`` on that
    coupling (Tong et al., 2024). With independent pairs it tends to :func:`marginal_velocity`; with OT pairs
    it is the field minibatch-OT flow matching learns.

    Arguments:
        x: points, shape (n, d).
        s: the time, in [0, 1].
        x0, x1: the coupling's pairs, shape (m, d) each.
        bandwidth: the paths' width σ (> 0).

    Returns:
        the velocity, shape (n, d).
    """
    centres = (1 - s) * x0 + s * x1  # (m, d)
    d2 = (x**2).sum(1)[:, None] - 2 * x @ centres.T + (centres**2).sum(1)[None]  # (n, m)
    logw = -0.5 * d2 / bandwidth**2
    w = np.exp(logw - logw.max(1, keepdims=True))
    w /= w.sum(1, keepdims=True)
    return w @ (x1 - x0)


def _integrate(field: Callable[[np.ndarray, float], np.ndarray], x0: np.ndarray, steps: int) -> np.ndarray:
    """RK4 from s = 0 to 1 in ``steps`` steps of dx/ds = field(x, s); the path, shape (steps + 1, n, d)."""
    times = np.linspace(0.0, 1.0, steps + 1)
    paths = [x0]
    x, h = x0, 1.0 / steps
    for k in range(steps):
        s = times[k]
        k1 = field(x, s)
        k2 = field(x + h / 2 * k1, s + h / 2)
        k3 = field(x + h / 2 * k2, s + h / 2)
        k4 = field(x + h * k3, s + h)
        x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        paths.append(x)
    return np.stack(paths)


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
    coupling_pairs: int = 1024,
    bandwidth: float = 0.1,
) -> FlowMatchingDemo:
    """Straight conditional paths (what flow matching regresses on) against the marginal paths (what the
    learned field integrates), on a ring of ``modes`` Gaussians.

    With independent pairs the marginal field is exact (:func:`marginal_velocity`) and its paths bend. With
    OT pairs it is the field of a minibatch-OT coupling: ``coupling_pairs`` noise and data points paired by
    :func:`~cnfviz.training.objectives.ot_pairing` in its training chunks, each path widened by
    ``bandwidth`` (:func:`coupling_velocity`); those paths are nearly straight.

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
    if pairing == "independent":
        # The analytic marginal field is smooth, so a fixed RK4 grid of `steps` is accurate to plotting precision.
        marginal = _integrate(lambda x, s: marginal_velocity(x, s, means, sd), x0, steps)
        pairs = 0
    else:
        # The coupling minibatch-OT training sees: fresh noise and data, paired exactly within each chunk.
        c0 = rng.standard_normal((coupling_pairs, 2))
        c1 = means[rng.integers(modes, size=coupling_pairs)] + sd * rng.standard_normal((coupling_pairs, 2))
        c1 = c1[ot_pairing(torch.as_tensor(c0), torch.as_tensor(c1)).numpy()]
        marginal = _integrate(lambda x, s: coupling_velocity(x, s, c0, c1, bandwidth), x0, steps)
        pairs = coupling_pairs
    times = np.linspace(0.0, 1.0, steps + 1)
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
        marginal_length=float(length.mean()),
        coupling_pairs=pairs,
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

    Left, the straight conditional paths x0 → x1 of the pairing, ending at the data (dark); right, the
    marginal paths of that pairing's field from the same x0, ending where the flow carries them (orange).
    Both panels mark the start points (grey).
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
            f"marginal paths, {'OT' if demo.pairing == 'ot' else 'independent'} field: "
            f"straightness {demo.marginal_straightness:.3f}",
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
        # Left, the data each noise point is paired with (the truth); right, where the flow carries it.
        ends, colour, label = (
            (demo.x1, COLORS["true"], "data x1 (t₁)")
            if col == 1
            else (demo.marginal[-1], COLORS["model"], "flow's end (t₁)")
        )
        fig.add_scatter(
            x=ends[:, 0],
            y=ends[:, 1],
            mode="markers",
            marker={"color": colour, "size": 5},
            name=label,
            row=1,
            col=col,
        )
    lim = float(np.abs(np.concatenate([demo.x0, demo.x1, demo.marginal.reshape(-1, 2)])).max()) + 0.3
    fig.update_xaxes(range=[-lim, lim], constrain="domain")
    fig.update_yaxes(range=[-lim, lim], scaleanchor="x", scaleratio=1, row=1, col=1)
    fig.update_yaxes(range=[-lim, lim], row=1, col=2)
    fig.update_annotations(font_size=13)
    return compact(fig, 440, legend_below=True)
