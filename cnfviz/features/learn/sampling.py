"""§6 Sampling by integrating forwards, density by integrating backwards, and its figure."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from ...figures.style import compact
from ...figures.views import LIVE_SOLVER
from ...flow.ffjord import FFJORD
from ...flow.solver import odesolve
from .fit import _numpy
from .style import COLORS

__all__ = ["SamplingDemo", "sampling_demo", "sampling_figure"]


@dataclass(frozen=True)
class SamplingDemo:
    """Base samples pushed t0 → t1 and data pulled t1 → t0, at the same times.

    ``times`` (T,) from t0 to t1; ``forward`` (T, n, d): ``forward[0]`` = z ~ N(0, I) and
    ``forward[-1]`` = transform(z); ``backward`` (T, m, d): ``backward[-1]`` = the data x and
    ``backward[0]`` = inverse(x); ``pulled_mean`` (d,), ``pulled_cov`` (d, d): of inverse(x), ≈ 0 and I
    for a good flow.
    """

    times: np.ndarray
    forward: np.ndarray
    backward: np.ndarray
    pulled_mean: np.ndarray
    pulled_cov: np.ndarray


def sampling_demo(
    model: FFJORD, data: np.ndarray, *, n_samples: int = 500, n_times: int = 11, seed: int = 0
) -> SamplingDemo:
    """Run a trained flow both ways over ``n_times`` times.

    Arguments:
        model: the trained flow.
        data: points (m, d) to pull back to the base.
        n_samples: base samples to push forward.
        n_times: frames T from t0 to t1.
        seed: seeds the base samples.
    """
    p = next(model.parameters())
    t0, t1 = model.tspan
    times = torch.linspace(t0, t1, n_times, dtype=p.dtype, device=p.device)
    _, forward = model.trajectories(n_samples, times, generator=torch.Generator().manual_seed(seed), solver=LIVE_SOLVER)
    x = torch.as_tensor(np.asarray(data, dtype=np.float32)).to(p.device)
    with torch.no_grad():
        # inverse() returns only the end point; the intermediate frames need the same solve with
        # every output time, run from t1 down to t0 through the model's own dynamics.
        backward = odesolve(model.net, x, times.flip(0), LIVE_SOLVER).flip(0)
    pulled = _numpy(backward[0])
    return SamplingDemo(
        times=_numpy(times),
        forward=_numpy(forward),
        backward=_numpy(backward),
        pulled_mean=pulled.mean(0),
        pulled_cov=np.atleast_2d(np.cov(pulled, rowvar=False)),
    )


def _circles(radii: tuple[float, ...] = (1.0, 2.0)) -> tuple[np.ndarray, np.ndarray]:
    theta = np.linspace(0, 2 * np.pi, 97)
    xs = [np.append(r * np.cos(theta), np.nan) for r in radii]
    ys = [np.append(r * np.sin(theta), np.nan) for r in radii]
    return np.concatenate(xs), np.concatenate(ys)


def sampling_figure(demo: SamplingDemo, frame: int) -> go.Figure:
    """Forward-pushed samples and backward-pulled data at ``times[frame]``: 4 traces.

    Each panel also carries the 1 and 2 standard-deviation circles of N(0, I), the shape the
    points should have at t0.
    """
    t = float(demo.times[frame])
    fig = make_subplots(
        rows=1,
        cols=2,
        shared_xaxes=True,
        shared_yaxes=True,
        horizontal_spacing=0.04,
        subplot_titles=(f"forward: N(0, I) pushed to t = {t:.2f}", f"backward: data pulled to t = {t:.2f}"),
    )
    cx, cy = _circles()
    for col, points, color, name in (
        (1, demo.forward[frame], COLORS["model"], "base samples, flowing forward"),
        (2, demo.backward[frame], COLORS["true"], "data, flowing backward"),
    ):
        fig.add_scatter(
            x=points[:, 0],
            y=points[:, 1],
            mode="markers",
            marker={"color": color, "size": 4},
            name=name,
            row=1,
            col=col,
        )
        fig.add_scatter(
            x=cx,
            y=cy,
            mode="lines",
            line={"color": COLORS["base"], "dash": "dash", "width": 1.5},
            name="N(0, I): 1σ and 2σ",
            legendgroup="circles",
            showlegend=col == 1,
            hoverinfo="skip",
            row=1,
            col=col,
        )
    every = np.concatenate([demo.forward.reshape(-1, 2), demo.backward.reshape(-1, 2)])
    lo, hi = np.quantile(every, [0.002, 0.998])
    lo, hi = float(min(lo, -2.5)) - 0.2, float(max(hi, 2.5)) + 0.2
    fig.update_xaxes(range=[lo, hi], constrain="domain")
    fig.update_yaxes(range=[lo, hi], scaleanchor="x", scaleratio=1, row=1, col=1)
    fig.update_yaxes(range=[lo, hi], row=1, col=2)
    return compact(fig, 460, legend_below=True)
