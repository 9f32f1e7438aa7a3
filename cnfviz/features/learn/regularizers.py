"""§5 Kinetic and Jacobian regularizers: paths of flows trained with and without them, and their figure."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from ...figures.style import compact
from ...figures.views import LIVE_SOLVER
from ...flow.config import ModelConfig
from ...flow.ffjord import FFJORD
from ...flow.solver import SolverConfig
from ...training.config import TrainConfig
from ...training.presets import default_config
from .fit import _numpy
from .style import COLORS, joined

__all__ = [
    "REGULARIZER_SETTINGS",
    "RegularizerRun",
    "regularizer_config",
    "regularizer_figure",
    "regularizer_run",
]

# name -> (lambda_kinetic, lambda_jacobian); "none" must be present, it is the reference run.
# Weights of 0.1 halve λ₁ but barely change the picture; 0.5 makes the straightening visible at
# the price of 0.1-0.3 nats of likelihood, a trade-off the page shows in its table.
REGULARIZER_SETTINGS: dict[str, tuple[float, float]] = {
    "none": (0.0, 0.0),
    "kinetic": (0.5, 0.0),
    "jacobian": (0.0, 0.5),
    "both": (0.5, 0.5),
}


@functools.cache
def regularizer_config() -> TrainConfig:
    """A small 2D flow on two moons: long enough to bend its paths when unregularized, short enough (about
    half a minute per run on one core) to precompute four variants. Built on first use, not at import:
    :func:`~cnfviz.training.presets.default_config` asks torch for a GPU.

    Example:
        >>> regularizer_config().model.hidden, regularizer_config().batch_size
        ((32, 32), 256)
    """
    return default_config(
        "moons",
        model=ModelConfig(hidden=(32, 32), activation="tanh", time="concatsquash", tspan=(0.0, 1.0)),
        solver=SolverConfig("rk4", step_size=0.125),
        adam_iters=600,
        lr=1e-2,
        lr_decay=True,
        batch_size=256,
        eval_every=0,
    )


def __getattr__(name: str) -> Any:
    # REGULARIZER_CONFIG stays a module constant to its readers, computed on first use (PEP 562).
    if name == "REGULARIZER_CONFIG":
        return regularizer_config()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class RegularizerRun:
    """A 2D flow trained with weights (lambda_kinetic, lambda_jacobian), measured the same way as all others.

    ``kinetic``/``jacobian``: mean λ₁ = ∫‖f‖² dt and λ₂ = ∫‖∂f/∂z‖²_F dt over held-out data (exact
    trace); ``nll``: their mean −log p; ``nfe``: function evaluations an adaptive solver needs for
    that density; ``straightness``: mean displacement / path length (1 = straight lines);
    ``times`` (T,) and ``paths`` (T, n, 2): base points carried from t0 to t1.
    """

    name: str
    lambda_kinetic: float
    lambda_jacobian: float
    kinetic: float
    jacobian: float
    nll: float
    nfe: int
    straightness: float
    times: np.ndarray
    paths: np.ndarray
    seconds: float


def _straightness(paths: np.ndarray) -> float:
    """Mean over paths (T, n, d) of |end − start| / length: 1 for straight lines, smaller for bends."""
    length = np.linalg.norm(np.diff(paths, axis=0), axis=-1).sum(0)
    displacement = np.linalg.norm(paths[-1] - paths[0], axis=-1)
    return float(np.mean(displacement / np.maximum(length, 1e-12)))


def regularizer_run(
    name: str,
    model: FFJORD,
    lambdas: tuple[float, float],
    data: np.ndarray,
    *,
    n_paths: int = 150,
    n_times: int = 41,
    seed: int = 0,
    seconds: float = 0.0,
) -> RegularizerRun:
    """Measure a trained 2D flow: its regularizers, likelihood, solver cost and trajectories.

    Arguments:
        name: label of the setting, e.g. ``"kinetic"``.
        model: the trained flow.
        lambdas: the (lambda_kinetic, lambda_jacobian) weights it was trained with (recorded only).
        data: held-out points (N, 2) to measure λ₁, λ₂ and the NLL on.
        n_paths: base points whose trajectories are recorded.
        n_times: times T along each trajectory.
        seed: seeds the base points (the same for every run, so the panels compare like with like).
        seconds: training time, recorded only.
    """
    p = next(model.parameters())
    x = torch.as_tensor(np.asarray(data, dtype=np.float32)).to(p.device)
    with torch.no_grad():
        logpx, kinetic, jac = model(x, regularize=True, trace="exact", solver=LIVE_SOLVER)
        model.reset_nfe()
        model.log_prob(x, solver=LIVE_SOLVER, trace="exact")
        nfe = model.nfe_forward
    assert kinetic is not None and jac is not None
    times, paths = model.trajectories(
        n_paths, n_times, generator=torch.Generator().manual_seed(seed), solver=LIVE_SOLVER
    )
    paths_np = _numpy(paths)
    return RegularizerRun(
        name=name,
        lambda_kinetic=float(lambdas[0]),
        lambda_jacobian=float(lambdas[1]),
        kinetic=float(kinetic.mean()),
        jacobian=float(jac.mean()),
        nll=float(-logpx.mean()),
        nfe=int(nfe),
        straightness=_straightness(paths_np),
        times=_numpy(times),
        paths=paths_np,
        seconds=seconds,
    )


def _run_title(run: RegularizerRun) -> str:
    if run.lambda_kinetic == 0 and run.lambda_jacobian == 0:
        label = "no regularizer"
    else:
        weights = [f"{w:g}·λ{s}" for w, s in ((run.lambda_kinetic, "₁"), (run.lambda_jacobian, "₂")) if w]
        label = "loss + " + " + ".join(weights)
    return f"{label}: λ₁ = {run.kinetic:.2f}, λ₂ = {run.jacobian:.2f}"


def regularizer_figure(
    reference: RegularizerRun, other: RegularizerRun, *, max_paths: int = 80, dots: int = 11
) -> go.Figure:
    """Trajectories of two runs side by side: 4 traces (per panel, the paths and dots along them).

    The dots sit at ``dots`` equally spaced times, coloured grey (t0) to orange (t1), so evenly
    spaced dots mean constant speed. Only the first ``max_paths`` paths are drawn, to stay legible.
    """
    fig = make_subplots(
        rows=1,
        cols=2,
        shared_xaxes=True,
        shared_yaxes=True,
        horizontal_spacing=0.04,
        subplot_titles=(_run_title(reference), _run_title(other)),
    )
    for col, run in ((1, reference), (2, other)):
        paths = run.paths[:, :max_paths]
        x, y = joined(paths)
        first = col == 1
        fig.add_scatter(
            x=x,
            y=y,
            mode="lines",
            line={"color": "rgba(46, 134, 171, 0.45)", "width": 1.2},
            name="path z(t)",
            legendgroup="path",
            showlegend=first,
            hoverinfo="skip",
            row=1,
            col=col,
        )
        idx = np.linspace(0, len(run.times) - 1, dots).round().astype(int)
        points = paths[idx]  # (dots, n, 2)
        fig.add_scatter(
            x=points[..., 0].ravel(),
            y=points[..., 1].ravel(),
            mode="markers",
            marker={
                "color": np.repeat(run.times[idx], paths.shape[1]),
                # The caption's promise: grey at t₀ (the base) to orange at t₁ (what the flow makes).
                "colorscale": [[0.0, COLORS["base"]], [1.0, COLORS["model"]]],
                "cmin": float(run.times[0]),
                "cmax": float(run.times[-1]),
                "size": 4,
            },
            name=f"z at {dots} equally spaced times (grey t₀ → orange t₁)",
            legendgroup="dots",
            showlegend=first,
            hovertemplate="t %{marker.color:.2f}<extra></extra>",
            row=1,
            col=col,
        )
    both = np.concatenate([reference.paths.reshape(-1, 2), other.paths.reshape(-1, 2)])
    lo, hi = np.quantile(both, [0.001, 0.999])
    lo, hi = float(lo) - 0.2, float(hi) + 0.2
    fig.update_xaxes(range=[lo, hi], constrain="domain")
    fig.update_yaxes(range=[lo, hi], scaleanchor="x", scaleratio=1, row=1, col=1)
    fig.update_yaxes(range=[lo, hi], row=1, col=2)
    fig.update_annotations(font_size=13)
    return compact(fig, 460, legend_below=True)
