"""A trained flow as a ``torch.distributions.Distribution`` (the seed's ``FFJORDDistribution``)."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints

from .ffjord import FFJORD
from .solver import SolverConfig

__all__ = ["FFJORDDistribution"]


class FFJORDDistribution(Distribution):
    """Wrap a trained :class:`~cnfviz.flow.ffjord.FFJORD` so it samples and scores like any distribution.

    The event shape is ``(d,)``. Sampling integrates N(0, I) draws from t0 to t1; ``log_prob``
    integrates back with the exact trace.

    Arguments:
        model: the flow.
        solver: solver for sampling and scoring (defaults to the model's own).
        generator: RNG for the base samples.

    Example:
        >>> from cnfviz import FFJORD, ModelConfig
        >>> dist = FFJORDDistribution(FFJORD(1, ModelConfig(hidden=(4,))))
        >>> x = dist.sample((3,))
        >>> x.shape, dist.log_prob(x).shape
        (torch.Size([3, 1]), torch.Size([3]))
    """

    arg_constraints: ClassVar[dict] = {}
    support = constraints.real_vector
    has_rsample = False

    def __init__(
        self, model: FFJORD, *, solver: SolverConfig | None = None, generator: torch.Generator | None = None
    ) -> None:
        self.model = model
        self.solver = solver
        self.generator = generator
        super().__init__(batch_shape=torch.Size(), event_shape=torch.Size([model.dim]), validate_args=False)

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        shape = torch.Size(sample_shape)
        n = max(1, shape.numel())
        x = self.model.sample(n, generator=self.generator, solver=self.solver)
        return x.reshape(shape + self.event_shape)

    def log_prob(self, value: Tensor) -> Tensor:
        p = next(self.model.parameters())
        value = torch.as_tensor(value, dtype=p.dtype, device=p.device)
        batch = value.shape[:-1]
        flat = value.reshape(-1, self.model.dim)
        return self.model.log_prob(flat, solver=self.solver, trace="exact").reshape(batch)
