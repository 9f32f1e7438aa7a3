"""Training objectives: maximum likelihood (FFJORD) and conditional flow matching, with or without OT pairing.

Maximum likelihood solves the ODE and integrates the divergence at every iteration. Flow matching
(Lipman et al. 2023; Tong et al. 2024) instead regresses the field onto the velocity of a straight path
from a noise point x0 (at t0) to a data point x1 (at t1):

    s = (t − t0)/(t1 − t0),   x_t = (1 − s)·x0 + s·x1,   u = (x1 − x0)/(t1 − t0),
    loss = E_{t, x0, x1} ‖f(t, x_t) − u‖²,

with t uniform on the span, drawn per sample. It needs one network evaluation per iteration and no
solve. The pairing of x0 with x1 is either independent (``flow-matching``) or a minibatch optimal
transport assignment on the squared Euclidean cost (``ot-flow-matching``), which makes the learned
paths straighter and the field cheaper to integrate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from .._validation import ConfigError
from ..flow.solver import SolverInterrupted

if TYPE_CHECKING:
    from ..flow.dynamics import ODENet
    from .config import TrainConfig

__all__ = [
    "FLOW_MATCHING",
    "OBJECTIVES",
    "OT_CHUNK_SECONDS",
    "OT_MAX_POINTS",
    "Objective",
    "check_objective",
    "draw_flow_matching",
    "flow_matching_loss",
    "objective_notes",
    "ot_pairing",
    "ot_pairing_seconds",
    "straight_path",
]


@dataclass(frozen=True)
class Objective:
    """A training objective: its name, a one-line description, and its coupling of noise and data."""

    name: str
    description: str
    coupling: str | None  # None: maximum likelihood; "independent" or "ot" for flow matching


OBJECTIVES: dict[str, Objective] = {
    "likelihood": Objective(
        "likelihood", "maximum likelihood (FFJORD): an ODE solve with the divergence every iteration", None
    ),
    "flow-matching": Objective(
        "flow-matching",
        "conditional flow matching: regress the field onto straight noise-to-data velocities, no solve",
        "independent",
    ),
    "ot-flow-matching": Objective(
        "ot-flow-matching",
        "flow matching with noise and data paired by minibatch optimal transport: straighter paths",
        "ot",
    ),
}

FLOW_MATCHING: frozenset[str] = frozenset(n for n, o in OBJECTIVES.items() if o.coupling is not None)
"""The objectives that train by regression instead of by likelihood."""

OT_MAX_POINTS = 256
"""The largest assignment problem solved at once. An exact assignment grows as about n³: some 15 ms at
256 points, over a second at 1,024 and minutes at 4,096 on a CPU core (benchmarks/bench_objectives.py
--ot-cost), against a few ms for a whole flow-matching iteration, so a larger batch is paired in chunks, and
a stop request is heard between two chunks (:func:`ot_pairing`'s ``should_stop``)."""

OT_CHUNK_SECONDS = 0.09
"""One exact OT assignment of :data:`OT_MAX_POINTS` points (scipy's ``linear_sum_assignment``): 0.09 s
measured on a busy 2-core machine (benchmarks/bench_abuse.py)."""


def ot_pairing_seconds(batch: int, max_points: int = OT_MAX_POINTS) -> float:
    """The estimated wall seconds of one :func:`ot_pairing` of ``batch`` points on one CPU core.

    Example:
        >>> round(ot_pairing_seconds(256), 2), round(ot_pairing_seconds(8192), 2)
        (0.09, 2.88)
    """
    if batch < 1:
        return 0.0
    chunks = -(-batch // max_points)
    size = min(batch, max_points)  # every chunk counted full: on the safe side
    return chunks * OT_CHUNK_SECONDS * (size / OT_MAX_POINTS) ** 3


def check_objective(config: TrainConfig) -> None:
    """Raise :class:`~cnfviz.ConfigError` for settings that cannot work with ``config.objective``.

    Flow matching regresses a time-dependent velocity, so the field needs a time input; the LBFGS stage
    needs a deterministic loss, which a loss drawn afresh in t and in the pairing is not; and the kinetic
    and Jacobian regularizers are integrals along the solve that flow matching never makes.
    """
    name = config.objective
    if name not in FLOW_MATCHING:
        return
    if config.model.time == "none":
        raise ConfigError(
            f'model.time "none" cannot be trained with objective "{name}": a field without a time input cannot '
            'follow paths whose velocity changes along the way; use "concat" or "concatsquash"',
            field="model.time",
            allowed=["concat", "concatsquash"],
        )
    if config.lbfgs_iters:
        raise ConfigError(
            f'lbfgs_iters must be 0 with objective "{name}" (got {config.lbfgs_iters}): its loss is drawn afresh '
            "in t and in the pairing at every evaluation, and LBFGS's line search needs a deterministic loss",
            field="lbfgs_iters",
            allowed=[0],
        )
    for field_name, label in (("lambda_kinetic", "λ₁"), ("lambda_jacobian", "λ₂")):
        value = getattr(config, field_name)
        if value:
            raise ConfigError(
                f'{field_name} ({label}) must be 0 with objective "{name}" (got {value:g}): the regularizers '
                "are integrals along the ODE solve, which flow matching does not make",
                field=field_name,
                allowed=[0],
            )


def objective_notes(config: TrainConfig) -> list[str]:
    """Warnings about settings that work with ``config.objective`` but probably not well."""
    name = config.objective
    if name not in FLOW_MATCHING:
        return []
    notes = []
    if config.model.final_activation:
        t0, t1 = config.model.tspan
        notes.append(
            f"the output activation bounds the field, while {name} regresses it onto velocities "
            f"(x1 − x0)/(t1 − t0) of size about {3 / abs(t1 - t0):.2g} and more: it may not fit"
        )
    batch = config.batch_size or config.n_train
    if OBJECTIVES[name].coupling == "ot" and batch is not None and batch > OT_MAX_POINTS:
        notes.append(
            f"the OT pairing is solved in chunks of at most {OT_MAX_POINTS:,} points "
            f"(the batch has {batch:,}): an exact assignment grows as n³; about "
            f"{ot_pairing_seconds(batch):.2g} s of pairing per iteration on one CPU core"
        )
    return notes


def ot_pairing(
    x0: Tensor, x1: Tensor, *, max_points: int = OT_MAX_POINTS, should_stop: Callable[[], bool] | None = None
) -> Tensor:
    """The permutation ``p`` that minimises Σᵢ ‖x0[i] − x1[p[i]]‖², an exact minibatch OT plan.

    Arguments:
        x0: noise points, shape (N, d).
        x1: data points, shape (N, d).
        max_points: larger batches are split into consecutive chunks of at most this size, each solved
            exactly (the plan is then optimal within each chunk).
        should_stop: asked before each chunk; when it returns True the pairing is abandoned, so a Stop lands
            within one chunk's assignment (some 15-90 ms at :data:`OT_MAX_POINTS`) at any batch size.

    Returns:
        indices into ``x1``, shape (N,), a permutation of ``range(N)``.

    Raises:
        SolverInterrupted: ``should_stop`` said so (a trainer treats it as a stop, as it treats a solve's).

    Example:
        >>> x0 = torch.tensor([[0.0], [10.0]])
        >>> ot_pairing(x0, torch.tensor([[9.0], [1.0]])).tolist()
        [1, 0]
    """
    if x0.shape != x1.shape or x0.ndim != 2:
        shapes = f"{tuple(x0.shape)}, {tuple(x1.shape)}"
        raise ConfigError(f"ot_pairing needs two (N, d) batches of one shape (got {shapes})")
    a = x0.detach().double().cpu().numpy()
    b = x1.detach().double().cpu().numpy()
    n = len(a)
    perm = np.empty(n, dtype=np.int64)
    chunks = max(1, -(-n // max_points))
    for idx in np.array_split(np.arange(n), chunks):
        if should_stop is not None and should_stop():
            raise SolverInterrupted("stop requested during the OT pairing")
        # ‖a − b‖² = ‖a‖² + ‖b‖² − 2 a·b, and every assignment sums the same ‖a‖² and ‖b‖²: the cross
        # term alone has the same optimum, and the solver finishes it sooner.
        rows, cols = linear_sum_assignment(-2 * a[idx] @ b[idx].T)
        perm[idx[rows]] = idx[cols]
    return torch.as_tensor(perm, device=x1.device)


def straight_path(x0: Tensor, x1: Tensor, t: Tensor, tspan: tuple[float, float]) -> tuple[Tensor, Tensor]:
    """The point and velocity at time ``t`` of the straight path from x0 at t0 to x1 at t1.

    Arguments:
        x0: start points, shape (N, d).
        x1: end points, shape (N, d).
        t: times, shape (N, 1), between t0 and t1.
        tspan: ``(t0, t1)``, t0 ≠ t1.

    Returns:
        ``(x_t, u)``, each (N, d): x_t = (1 − s)·x0 + s·x1 with s = (t − t0)/(t1 − t0), and
        u = (x1 − x0)/(t1 − t0), its constant velocity.
    """
    t0, t1 = tspan
    s = (t - t0) / (t1 - t0)
    return x0 + s * (x1 - x0), (x1 - x0) / (t1 - t0)


def flow_matching_loss(
    net: ODENet,
    x1: Tensor,
    tspan: tuple[float, float],
    *,
    coupling: str = "independent",
    generator: torch.Generator | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Tensor:
    """The conditional flow-matching loss, mean over the batch of ‖f(t, x_t) − u‖² (summed over dims).

    Arguments:
        net: the dynamics f(t, z); called once, with a per-sample time of shape (N, 1).
        x1: a data batch, shape (N, d).
        tspan: ``(t0, t1)``: noise lives at t0, data at t1.
        coupling: ``"independent"`` (x0 drawn alongside) or ``"ot"`` (x0 reordered by :func:`ot_pairing`).
        generator: RNG for the noise x0 and the times t (CPU), for reproducible runs.
        should_stop: a stop request, heard between the OT pairing's chunks (see :func:`ot_pairing`).

    Returns:
        a scalar tensor, differentiable in the network's parameters.

    Example:
        >>> from cnfviz.flow.dynamics import ODENet
        >>> net = ODENet(2, (8,), generator=torch.Generator().manual_seed(0))
        >>> loss = flow_matching_loss(net, torch.randn(16, 2), (0.0, 1.0), generator=torch.Generator().manual_seed(1))
        >>> loss.shape, bool(loss > 0)
        (torch.Size([]), True)
    """
    t, xt, ut = draw_flow_matching(x1, tspan, coupling=coupling, generator=generator, should_stop=should_stop)
    return (net(t, xt) - ut).pow(2).sum(-1).mean()


def draw_flow_matching(
    x1: Tensor,
    tspan: tuple[float, float],
    *,
    coupling: str = "independent",
    generator: torch.Generator | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Draw one flow-matching regression problem: times, path points and target velocities.

    This is all the randomness of :func:`flow_matching_loss`, in its order (noise, pairing, times), so a
    stacked run (:mod:`cnfviz.runtime.stack`) that draws here consumes its generator exactly as it does alone.

    Arguments:
        x1: a data batch, shape (N, d).
        tspan: ``(t0, t1)``: noise lives at t0, data at t1.
        coupling: ``"independent"`` or ``"ot"``.
        generator: RNG for the noise x0 and the times t (CPU).
        should_stop: a stop request, heard between the OT pairing's chunks (see :func:`ot_pairing`).

    Returns:
        ``(t, x_t, u)``: times (N, 1), points on the straight paths (N, d), their velocities (N, d).
    """
    if coupling not in ("independent", "ot"):
        raise ConfigError(f'Invalid coupling "{coupling}". Must be one of ["independent", "ot"]')
    n = x1.shape[0]
    x0 = torch.randn(x1.shape, generator=generator, dtype=x1.dtype).to(x1.device)
    if coupling == "ot":
        x1 = x1[ot_pairing(x0, x1, should_stop=should_stop)]
    t0, t1 = tspan
    u01 = torch.rand((n, 1), generator=generator, dtype=x1.dtype).to(x1.device)
    t = t0 + (t1 - t0) * u01
    xt, ut = straight_path(x0, x1, t, tspan)
    return t, xt, ut
