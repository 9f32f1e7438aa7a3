"""Evaluation metrics: the seed tutorial's total variation, grid TV and KL, test NLL, ∫p, sampling NFE.

All densities of the model are computed with an accurate adaptive solver (:data:`EVAL_SOLVER`)
and the exact trace, whatever the model was trained with, so a fixed-step solver's
discretisation error cannot flatter the numbers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..flow.solver import SolverConfig, SolverInterrupted

if TYPE_CHECKING:
    from ..flow.ffjord import FFJORD
    from ..targets import Target

__all__ = [
    "EVAL_SOLVER",
    "SAMPLING_POINTS",
    "Metrics",
    "evaluate",
    "grid_densities",
    "grid_metrics",
    "model_log_prob",
    "sampling_nfe",
    "seed_tv",
    "test_nll",
]

EVAL_SOLVER = SolverConfig("dopri5", rtol=1e-5, atol=1e-5, max_steps=10_000)
SAMPLING_POINTS = 10_000
"""How many samples :func:`sampling_nfe` draws to measure the cost of sampling."""


def model_log_prob(
    model: FFJORD, x: np.ndarray, *, solver: SolverConfig | None = None, batch_size: int = 20_000
) -> np.ndarray:
    """log p(x) under the model for a numpy array x (N, d); returns (N,) float64."""
    p = next(model.parameters())
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32)).to(p.device)
    return model.log_prob(xt, solver=solver or EVAL_SOLVER, batch_size=batch_size, trace="exact").double().cpu().numpy()


def seed_tv(model: FFJORD, target: Target, data: np.ndarray, *, solver: SolverConfig | None = None) -> float:
    """The seed tutorial's figure: ``totalvariation(learned, actual) / N`` = ½·mean|p_model(xᵢ) − p_true(xᵢ)|.

    Arguments:
        data: the N evaluation points (N, d), the training data in the tutorial.
    """
    learned = np.exp(model_log_prob(model, data, solver=solver))
    return float(0.5 * np.mean(np.abs(learned - target.pdf(data))))


def grid_densities(
    model: FFJORD, target: Target, resolution: int, *, solver: SolverConfig | None = None
) -> tuple[tuple[np.ndarray, ...], np.ndarray, np.ndarray]:
    """Model and target densities on a regular grid over the target's bounds.

    Returns:
        ``(axes, p_model, p_true)``: axes is ``(xs,)`` in 1D or ``(xs, ys)`` in 2D, each (R,);
        the densities have shape (R,) in 1D and (R, R) in 2D, indexed ``[iy, ix]``.
    """
    axes = target.grid(resolution)
    if target.dim == 1:
        pts = axes[0][:, None]
    else:
        gx, gy = np.meshgrid(axes[0], axes[1])
        pts = np.stack([gx.ravel(), gy.ravel()], 1)
    shape = (resolution,) * target.dim
    p_model = np.exp(model_log_prob(model, pts, solver=solver)).reshape(shape)
    p_true = target.pdf(pts).reshape(shape)
    return axes, p_model, p_true


def _cell(axes: tuple[np.ndarray, ...]) -> float:
    return float(np.prod([a[1] - a[0] for a in axes]))


def grid_metrics(
    model: FFJORD, target: Target, resolution: int | None = None, *, solver: SolverConfig | None = None
) -> dict[str, float]:
    """TV = ½∫|p − q|, KL(p_true‖p_model) and ∫p_model, by a Riemann sum on a grid over the bounds."""
    resolution = resolution or (2000 if target.dim == 1 else 150)
    axes, pm, pt = grid_densities(model, target, resolution, solver=solver)
    da = _cell(axes)
    eps = 1e-12
    mask = pt > 0
    kl = float(np.sum(pt[mask] * (np.log(pt[mask]) - np.log(pm[mask] + eps))) * da)
    return {
        "tv": float(0.5 * np.sum(np.abs(pm - pt)) * da),
        "kl": kl,
        "integral": float(np.sum(pm) * da),
    }


def sampling_nfe(model: FFJORD, n: int = SAMPLING_POINTS, *, solver: SolverConfig | None = None, seed: int = 0) -> int:
    """Function evaluations the adaptive solver needs to draw ``n`` samples: the cost of sampling.

    A straighter field (flow matching, OT flow matching, regularized likelihood) takes fewer steps.
    """
    before = model.nfe_forward
    model.sample(n, generator=torch.Generator().manual_seed(seed), solver=solver or EVAL_SOLVER)
    return model.nfe_forward - before


def test_nll(model: FFJORD, data: np.ndarray, *, solver: SolverConfig | None = None) -> float:
    """Mean negative log-likelihood of held-out data (N, d), in nats."""
    return float(-np.mean(model_log_prob(model, data, solver=solver)))


@dataclass(frozen=True)
class Metrics:
    """End-of-run figures. ``density_kind`` says whether the target density was exact or an estimate;
    ``sample_nfe`` is :func:`sampling_nfe`, the NFE to draw 10,000 samples with dopri5 at 1e-5.

    A figure that a deadline left uncomputed (:func:`evaluate`) is NaN (``sample_nfe``: None) and named in
    ``cut``; a figure still to come in a partial result (``on_metric``) is NaN too.
    """

    seed_tv: float
    tv: float
    kl: float
    integral: float
    test_nll: float
    density_kind: str
    sample_nfe: int | None = None
    cut: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# The figures in the order evaluate() computes them: each group's cost grows with its points, so the cheap
# ones come first and a deadline cuts the dear ones (the grid: 22,500 points in 2D; sampling: 10,000).
_GROUPS = ("seed_tv", "test_nll", "sample_nfe", "grid")
_GRID = ("tv", "kl", "integral")


def evaluate(
    model: FFJORD,
    target: Target,
    train_data: np.ndarray,
    test_data: np.ndarray,
    *,
    resolution: int | None = None,
    solver: SolverConfig | None = None,
    max_seconds: float | None = None,
    on_metric: Callable[[Metrics], None] | None = None,
) -> Metrics:
    """All metrics, cheapest first: the seed TV (at ``train_data`` (N, d)), the test NLL (``test_data`` (M, d)),
    the sampling NFE, then the grid's TV, KL and ∫p.

    Arguments:
        max_seconds: at most this many wall seconds from now. A solve still running then stops at its next
            evaluation of the dynamics, and the figures not reached are NaN and named in ``Metrics.cut``.
        on_metric: called with the figures so far (the rest NaN) after each one is computed, so that a caller
            can show them as they come.
    """
    model_was_training = model.training
    model.eval()
    values: dict[str, Any] = {"seed_tv": math.nan, "test_nll": math.nan, "sample_nfe": None}
    values.update(dict.fromkeys(_GRID, math.nan))
    cut: list[str] = []
    outer = model.interrupt
    deadline = None if max_seconds is None else time.perf_counter() + max_seconds

    def late() -> bool:
        return deadline is not None and time.perf_counter() >= deadline

    def metrics() -> Metrics:
        return Metrics(density_kind=target.density_kind, cut=tuple(cut), **values)

    # The caller's own interrupt (a stop that abandons the run) still ends the evaluation with SolverInterrupted.
    model.interrupt = lambda: late() or (outer is not None and outer())
    try:
        for group in _GROUPS:
            names = _GRID if group == "grid" else (group,)
            if late():
                cut.extend(names)
                continue
            try:
                if group == "seed_tv":
                    values["seed_tv"] = seed_tv(model, target, train_data, solver=solver)
                elif group == "test_nll":
                    values["test_nll"] = test_nll(model, test_data, solver=solver)
                elif group == "sample_nfe":
                    values["sample_nfe"] = sampling_nfe(model, solver=solver)
                else:
                    values.update(grid_metrics(model, target, resolution, solver=solver))
            except SolverInterrupted:
                if outer is not None and outer():
                    raise
                cut.extend(names)  # the deadline passed inside this solve
                continue
            if on_metric is not None:
                on_metric(metrics())
        return metrics()
    finally:
        model.interrupt = outer
        model.train(model_was_training)
