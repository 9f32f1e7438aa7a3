"""Divergence (trace of ∂f/∂z) estimators, as a registry.

Every estimator returns, for a batch ``z`` of shape (N, d):

* ``f``: the dynamics, (N, d);
* ``div``: tr(∂f/∂z) or an unbiased estimate of it, (N,);
* ``frob``: ‖∂f/∂z‖²_F or an unbiased estimate of it, (N,), for the Jacobian regularizer; only
  computed when asked for (``None`` otherwise).

``exact`` and ``hutchinson-*`` use the network's forward-mode tangents (no double backward).
``exact-autograd`` is the classic FFJORD way, one ``autograd.grad`` per dimension; it is kept as a
reference for tests and benchmarks, and works for any dynamics module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .dynamics import ODENet

__all__ = ["TRACE_ESTIMATORS", "TraceEstimator", "draw_noise"]

Estimate = tuple[Tensor, Tensor, Tensor | None]


@dataclass(frozen=True)
class TraceEstimator:
    """How to get the divergence; ``noise`` names the probe distribution (None for exact)."""

    fn: Callable[[ODENet, Tensor, Tensor, Tensor | None, bool], Estimate]
    noise: str | None
    description: str


def _exact(net: ODENet, t: Tensor, z: Tensor, eps: Tensor | None, frob: bool) -> Estimate:
    f, cols = net.jacobian_columns(t, z)  # cols[j, n, i] = ∂f_i/∂z_j
    div = cols.diagonal(dim1=0, dim2=2).sum(-1)
    return f, div, cols.pow(2).sum((0, 2)) if frob else None


def _hutchinson(net: ODENet, t: Tensor, z: Tensor, eps: Tensor | None, frob: bool) -> Estimate:
    assert eps is not None, "Hutchinson needs its probe noise drawn before the solve"
    f, jv = net.jvp(t, z, eps)
    # E[εᵀJε] = tr J and E[‖Jε‖²] = ‖J‖²_F for probes with E[εεᵀ] = I.
    return f, (eps * jv).sum(-1), jv.pow(2).sum(-1) if frob else None


def _exact_autograd(net: ODENet, t: Tensor, z: Tensor, eps: Tensor | None, frob: bool) -> Estimate:
    with torch.enable_grad():
        if not z.requires_grad:
            z = z.detach().requires_grad_(True)
        f = net(t, z)
        rows = [torch.autograd.grad(f[:, i].sum(), z, create_graph=True)[0] for i in range(z.shape[1])]
    jac = torch.stack(rows, 1)  # (N, d, d), row i = ∂f_i/∂z
    return f, jac.diagonal(dim1=1, dim2=2).sum(-1), jac.pow(2).sum((1, 2)) if frob else None


TRACE_ESTIMATORS: dict[str, TraceEstimator] = {
    "exact": TraceEstimator(_exact, None, "exact trace, forward-mode Jacobian (d tangents per evaluation)"),
    "hutchinson-gaussian": TraceEstimator(_hutchinson, "gaussian", "Hutchinson estimate εᵀJε, ε ~ N(0, I)"),
    "hutchinson-rademacher": TraceEstimator(_hutchinson, "rademacher", "Hutchinson estimate εᵀJε, ε uniform on {±1}ᵈ"),
    "exact-autograd": TraceEstimator(_exact_autograd, None, "exact trace, one autograd pass per dimension (reference)"),
}


def draw_noise(kind: str, like: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Draw Hutchinson probe noise shaped like ``like`` (N, d). Drawn once per solve, not per evaluation."""
    if kind == "gaussian":
        return torch.randn(like.shape, generator=generator, dtype=like.dtype, device="cpu").to(like.device)
    if kind == "rademacher":
        bits = torch.randint(0, 2, like.shape, generator=generator, device="cpu")
        return (bits * 2 - 1).to(dtype=like.dtype, device=like.device)
    raise ValueError(f'Invalid noise "{kind}". Must be one of ["gaussian", "rademacher"]')
