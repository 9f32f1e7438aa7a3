"""Evaluation metrics: the seed tutorial's total variation, grid TV and KL, test NLL, ∫p.

All densities of the model are computed with an accurate adaptive solver (:data:`EVAL_SOLVER`)
and the exact trace, whatever the model was trained with, so a fixed-step solver's
discretisation error cannot flatter the numbers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..flow.solver import SolverConfig

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
    ``sample_nfe`` is :func:`sampling_nfe`, the NFE to draw 10,000 samples with dopri5 at 1e-5."""

    seed_tv: float
    tv: float
    kl: float
    integral: float
    test_nll: float
    density_kind: str
    sample_nfe: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate(
    model: FFJORD,
    target: Target,
    train_data: np.ndarray,
    test_data: np.ndarray,
    *,
    resolution: int | None = None,
    solver: SolverConfig | None = None,
) -> Metrics:
    """All metrics at once. ``train_data`` (N, d) gives the seed TV; ``test_data`` (M, d) the NLL."""
    model_was_training = model.training
    model.eval()
    try:
        grid = grid_metrics(model, target, resolution, solver=solver)
        return Metrics(
            seed_tv=seed_tv(model, target, train_data, solver=solver),
            test_nll=test_nll(model, test_data, solver=solver),
            density_kind=target.density_kind,
            sample_nfe=sampling_nfe(model, solver=solver),
            **grid,
        )
    finally:
        model.train(model_was_training)
