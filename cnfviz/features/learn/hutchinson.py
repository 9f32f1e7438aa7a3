"""§3 The exact trace against Hutchinson's estimator: measured and theoretical variances, and the figure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch

from ...figures.style import compact
from ...flow.divergence import draw_noise
from ...flow.dynamics import ODENet
from .style import COLORS

__all__ = ["HUTCHINSON_NOISES", "HutchinsonDemo", "hutchinson_demo", "hutchinson_figure", "hutchinson_variance"]

HUTCHINSON_NOISES: tuple[str, ...] = ("gaussian", "rademacher")
"""The probes the lesson compares."""


@dataclass(frozen=True)
class HutchinsonDemo:
    """Many Hutchinson estimates of one Jacobian's trace, next to the exact value.

    ``estimates[noise]`` (n,): estimates each averaging ``probes`` probes εᵀJε; ``theory_var[noise]``:
    the variance of one such estimate from :func:`hutchinson_variance`; ``exact``: tr J.
    """

    dim: int
    probes: int
    exact: float
    estimates: dict[str, np.ndarray]
    theory_var: dict[str, float]


def hutchinson_variance(jacobian: np.ndarray, noise: str) -> float:
    """Variance of one single-probe estimate εᵀJε for a (d, d) matrix J.

    With S = (J + Jᵀ)/2, Gaussian probes give 2‖S‖²_F; Rademacher probes (εᵢ² = 1) drop the diagonal
    and give 2(‖S‖²_F − Σᵢ Sᵢᵢ²), never more.

    Example:
        >>> hutchinson_variance(np.diag([1.0, 2.0]), "rademacher")
        0.0
    """
    s = 0.5 * (jacobian + jacobian.T)
    frob = float(np.sum(s**2))
    if noise == "gaussian":
        return 2 * frob
    if noise == "rademacher":
        return 2 * (frob - float(np.sum(np.diag(s) ** 2)))
    raise ValueError(f'Invalid noise "{noise}". Must be one of {list(HUTCHINSON_NOISES)}')


def hutchinson_demo(
    dim: int,
    probes: int = 1,
    *,
    n_estimates: int = 2000,
    hidden: Sequence[int] = (64, 64),
    seed: int = 0,
) -> HutchinsonDemo:
    """Hutchinson estimates of tr(∂f/∂z) for a random network f at one random point.

    Arguments:
        dim: dimension d of z.
        probes: probes averaged into each estimate (the variance falls as 1/probes).
        n_estimates: how many estimates to draw per noise kind.
        hidden: the random :class:`~cnfviz.flow.dynamics.ODENet`'s hidden widths.
        seed: seeds the network, the point and the probes.

    Returns:
        A :class:`HutchinsonDemo`.

    Example:
        >>> demo = hutchinson_demo(1, n_estimates=5)
        >>> bool(np.allclose(demo.estimates["rademacher"], demo.exact, atol=1e-5))  # 1D Rademacher is exact
        True
    """
    gen = torch.Generator().manual_seed(seed)
    net = ODENet(dim, tuple(hidden), activation="tanh", time="none", generator=gen)
    z = torch.randn((1, dim), generator=gen)
    t = torch.tensor(0.0)
    with torch.no_grad():
        jac = net.jacobian(t, z)[1][0].double().numpy()
        # One row per probe: the same point repeated, each with its own ε; one JVP per row.
        zs = z.expand(n_estimates * probes, dim)
        estimates, theory = {}, {}
        for noise in HUTCHINSON_NOISES:
            eps = draw_noise(noise, zs, gen)
            jv = net.jvp(t, zs, eps)[1]
            single = (eps * jv).sum(-1).double().numpy()
            estimates[noise] = single.reshape(n_estimates, probes).mean(1)
            theory[noise] = hutchinson_variance(jac, noise) / probes
    return HutchinsonDemo(dim=dim, probes=probes, exact=float(np.trace(jac)), estimates=estimates, theory_var=theory)


def hutchinson_figure(demo: HutchinsonDemo) -> go.Figure:
    """Histograms of Gaussian and Rademacher estimates with the exact trace as a line: 2 traces."""
    both = np.concatenate([demo.estimates["gaussian"], demo.estimates["rademacher"]])
    lo, hi = np.quantile(both, [0.005, 0.995])
    spread = max(hi - lo, 1e-3 * max(1.0, abs(demo.exact)))
    lo, hi = min(lo, demo.exact) - 0.05 * spread, max(hi, demo.exact) + 0.05 * spread
    bins = {"start": lo, "end": hi, "size": (hi - lo) / 60}
    fig = go.Figure()
    for noise in ("gaussian", "rademacher"):
        est = demo.estimates[noise]
        fig.add_histogram(
            x=est,
            xbins=bins,
            histnorm="probability density",
            name=f"{noise}: mean {est.mean():.3f}, sd {est.std(ddof=1):.3f}",
            marker_color=COLORS[noise],
            opacity=0.5,
        )
    fig.add_vline(
        x=demo.exact,
        line={"color": COLORS["exact"], "width": 3},
        annotation_text=f"exact tr = {demo.exact:.3f}",
        annotation_position="top right",
    )
    fig.update_layout(barmode="overlay")
    fig.update_xaxes(title_text="estimate of tr(∂f/∂z)", range=[lo, hi])
    fig.update_yaxes(title_text="density")
    return compact(fig)
