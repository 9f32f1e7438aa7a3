"""The FFJORD continuous normalizing flow.

Convention: base samples ``z ~ N(0, I)`` sit at ``t0`` and data ``x`` at ``t1``; the flow carries
z to x along ``dz/dt = f(t, z)``. The log-density follows the instantaneous change of variables
``d log p(z(t))/dt = -tr(∂f/∂z)``, so

    log p(x) = log N(z(t0); 0, I) - ∫_{t0}^{t1} tr(∂f/∂z(t)) dt,

computed by integrating the augmented state ``[z, ℓ, (λ₁), (λ₂)]`` backwards from t1 to t0.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from .._validation import ConfigError, check_int_range, lookup
from .config import ModelConfig
from .divergence import TRACE_ESTIMATORS, draw_noise
from .dynamics import ODENet
from .solver import SolverConfig, SolverInterrupted, nfe_exceeded, odesolve

__all__ = ["FFJORD", "standard_normal_logprob"]


def standard_normal_logprob(z: Tensor) -> Tensor:
    """log N(z; 0, I) for ``z`` of shape (N, d); returns (N,)."""
    return -0.5 * (z.pow(2).sum(-1) + z.shape[-1] * math.log(2 * math.pi))


class _Solve(nn.Module):
    """The dynamics of one solve, built afresh for each call: nothing of a call is left on the model.

    It evaluates either the bare field f(t, z) (``divergence=None``, for transport) or the augmented
    dynamics on the packed state (N, d + 1 + r): z, ℓ with dℓ/dt = tr(∂f/∂z), and r regularizer
    integrands. It counts its own evaluations, checks the owner's stop request and NFE cap at each
    one, and adds its counts to the model's running totals. So one model can be solved from two
    threads at once, each solve with its own estimator, probe, counters and cap (as zuko's
    ``FreeFormJacobianTransform`` builds its augmented dynamics per call).
    """

    def __init__(
        self,
        flow: FFJORD,
        solver: SolverConfig,
        divergence: Callable[..., tuple[Tensor, Tensor, Tensor | None]] | None = None,
        eps: Tensor | None = None,
        n_reg: int = 0,
    ) -> None:
        super().__init__()
        self.net = flow.net
        self._flow = [flow]  # a list, so the flow is not registered as a submodule
        self.solver = solver
        self.divergence = divergence
        self.eps = eps
        self.n_reg = n_reg
        self.nfe = 0
        self.backward = False  # set when a gradient reaches the solve's output: evaluations now are backward

    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        flow = self._flow[0]
        flow._add_nfe(backward=self.backward)
        # Checked per evaluation, not per iteration: one stiff adaptive solve can take minutes.
        flow._check_interrupt(None)
        self.nfe += 1
        cap = self.solver.max_nfe
        if cap is not None and self.nfe > cap:
            raise nfe_exceeded(self.solver)
        if self.divergence is None:
            out = self.net(t, y)
        else:
            d = self.net.dim
            f, div, frob = self.divergence(self.net, t, y[:, :d], self.eps, self.n_reg > 0)
            if self.n_reg:
                assert frob is not None
                out = torch.cat([f, div[:, None], f.pow(2).sum(-1, keepdim=True), frob[:, None]], 1)
            else:
                out = torch.cat([f, div[:, None]], 1)
        # Backpropagating through a long solve takes as long as the solve, without evaluating the
        # dynamics again: a hook on each evaluation's output checks for a stop there too.
        if flow.interrupt is not None and out.requires_grad:
            out.register_hook(flow._check_interrupt)
        return out

    def run(self, y0: Tensor, times: Tensor) -> Tensor:
        out = odesolve(self, y0, times, self.solver, tuple(self.net.parameters()))
        if out.requires_grad:
            # A gradient reaching the solver's output means the backward solve (adjoint) or the
            # traversal of the forward graph starts now; evaluations from here on are backward NFE.
            out.register_hook(self._on_backward)
        return out

    def _on_backward(self, grad: Tensor) -> None:
        self.backward = True


class FFJORD(nn.Module):
    """A free-form continuous normalizing flow with a standard normal base.

    Arguments:
        dim: data dimension d.
        config: the :class:`~cnfviz.flow.config.ModelConfig` (network, time span, trace estimator).
        solver: default :class:`~cnfviz.flow.solver.SolverConfig`; every method also takes ``solver=``.
        generator: RNG for the initial weights (reproducible, independent of the global RNG).

    Calling the model mirrors the seed tutorial's ``model(x, θ)``: it returns ``(logpx, λ₁, λ₂)``.

    Two guards run at every evaluation of the dynamics, so they act in the middle of a long adaptive
    solve: ``interrupt`` (a callable; when it returns True the solve raises
    :class:`~cnfviz.flow.solver.SolverInterrupted`), and the solver's ``max_nfe`` cap (exceeding it raises
    :class:`~cnfviz.flow.solver.SolverError`).

    Example:
        >>> flow = FFJORD(1, ModelConfig(hidden=(3,), time="none", final_activation=True, tspan=(0.0, 10.0)))
        >>> logpx, kinetic, jac = flow(torch.randn(8, 1), regularize=True)
        >>> logpx.shape, kinetic.shape
        (torch.Size([8]), torch.Size([8]))
    """

    def __init__(
        self,
        dim: int,
        config: ModelConfig | None = None,
        solver: SolverConfig | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.dim = check_int_range(dim, "dim", lo=1, hi=64)
        self.config = config or ModelConfig()
        self.solver = solver or SolverConfig()
        c = self.config
        self.net = ODENet(dim, c.hidden, c.activation, c.time, c.final_activation, c.linear, generator=generator)
        # Running totals over every solve; each solve counts its own evaluations (see _Solve).
        self.nfe_forward = 0
        self.nfe_backward = 0
        self._nfe_lock = threading.Lock()
        self.interrupt: Callable[[], bool] | None = None

    # ------------------------------------------------------------------ counters
    def _add_nfe(self, *, backward: bool) -> None:
        with self._nfe_lock:
            if backward:
                self.nfe_backward += 1
            else:
                self.nfe_forward += 1

    def _check_interrupt(self, grad: Tensor | None) -> None:
        interrupt = self.interrupt
        if interrupt is not None and interrupt():
            raise SolverInterrupted("stop requested")

    def init_from_data(self, x: Tensor) -> None:
        """Fit the field's linear term (``linear=True`` models) so the initial flow maps N(0, I) to
        a Gaussian with the mean and covariance of ``x`` (N, d)."""
        x = x.detach().double()
        cov = torch.atleast_2d(torch.cov(x.T)) + 1e-6 * torch.eye(self.dim, dtype=x.dtype, device=x.device)
        self.net.init_linear(x.mean(0), cov, self.tspan[1] - self.tspan[0])

    def reset_nfe(self) -> None:
        with self._nfe_lock:
            self.nfe_forward = 0
            self.nfe_backward = 0

    @property
    def tspan(self) -> tuple[float, float]:
        return self.config.tspan

    def _times(self, start: float, end: float, like: Tensor) -> Tensor:
        return torch.tensor([start, end], dtype=like.dtype, device=like.device)

    def _transport(self, y0: Tensor, times: Tensor, solver: SolverConfig | None) -> Tensor:
        """Solve the bare dynamics dz/dt = f(t, z) from ``y0`` (N, d); returns (T, N, d)."""
        return _Solve(self, solver or self.solver).run(y0, times)

    # ------------------------------------------------------------------ density
    def forward(
        self,
        x: Tensor,
        *,
        regularize: bool = False,
        solver: SolverConfig | None = None,
        trace: str | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Log-density of data and, if asked, the two regularizers.

        Arguments:
            x: data, shape (N, d).
            regularize: also integrate λ₁ = ∫‖f‖² dt and λ₂ = ∫‖∂f/∂z‖²_F dt (two extra ODE states).
                λ₂ is exact with the exact trace and the unbiased ‖Jε‖² with Hutchinson.
            solver: overrides the model's default solver for this call.
            trace: overrides the model's trace estimator for this call (e.g. ``"exact"`` to evaluate
                a model trained with Hutchinson).
            generator: RNG for the Hutchinson probe, drawn once for this solve.

        Returns:
            ``(logpx, λ₁, λ₂)``: each of shape (N,); λ₁ and λ₂ are ``None`` unless ``regularize``.
        """
        x = self._check_input(x, "x")
        if not len(x):  # an empty batch has an empty log-density, not a solve
            empty = x.new_zeros(0)
            return (empty, empty, empty) if regularize else (empty, None, None)
        n_reg = 2 if regularize else 0
        est = lookup(TRACE_ESTIMATORS, trace or self.config.trace, "trace estimator")
        eps = draw_noise(est.noise, x, generator) if est.noise else None
        t0, t1 = self.tspan
        y0 = torch.cat([x, x.new_zeros(x.shape[0], 1 + n_reg)], 1)
        aug = _Solve(self, solver or self.solver, est.fn, eps, n_reg)
        yt = aug.run(y0, self._times(t1, t0, x))[-1]
        # Integrated from t1 down to t0, ℓ(t0) = -∫_{t0}^{t1} tr dt.
        logpx = standard_normal_logprob(yt[:, : self.dim]) + yt[:, self.dim]
        if not regularize:
            return logpx, None, None
        # The integrands are non-negative; integrating t1 -> t0 only flips the sign when t1 > t0.
        return logpx, yt[:, self.dim + 1].abs(), yt[:, self.dim + 2].abs()

    def log_prob(
        self, x: Tensor, *, solver: SolverConfig | None = None, trace: str | None = None, batch_size: int = 50_000
    ) -> Tensor:
        """log p(x) for ``x`` of shape (N, d); returns (N,). Evaluated in chunks, without gradients."""
        x = self._check_input(x, "x")
        batch_size = check_int_range(batch_size, "batch_size", lo=1)
        if not len(x):
            return x.new_zeros(0)
        with torch.no_grad():
            return torch.cat([self(chunk, solver=solver, trace=trace)[0] for chunk in x.split(batch_size)])

    # ------------------------------------------------------------------ transport
    def transform(self, z: Tensor, *, solver: SolverConfig | None = None) -> Tensor:
        """Map base samples z (N, d) at t0 to data space at t1; returns (N, d)."""
        z = self._check_input(z, "z")
        if not len(z):
            return z.clone()
        t0, t1 = self.tspan
        return self._transport(z, self._times(t0, t1, z), solver)[-1]

    def inverse(self, x: Tensor, *, solver: SolverConfig | None = None) -> Tensor:
        """Map data x (N, d) at t1 back to the base space at t0; returns (N, d)."""
        x = self._check_input(x, "x")
        if not len(x):
            return x.clone()
        t0, t1 = self.tspan
        return self._transport(x, self._times(t1, t0, x), solver)[-1]

    def sample(self, n: int, *, generator: torch.Generator | None = None, solver: SolverConfig | None = None) -> Tensor:
        """Draw ``n`` samples (n, d): z ~ N(0, I) pushed from t0 to t1, without gradients."""
        n = check_int_range(n, "n", lo=0, hi=10_000_000)
        p = next(self.parameters())
        z = torch.randn((n, self.dim), generator=generator, dtype=p.dtype, device="cpu").to(p.device)
        with torch.no_grad():
            return self.transform(z, solver=solver)

    def trajectories(
        self,
        z: Tensor | int,
        times: Tensor | Sequence[float] | int = 21,
        *,
        generator: torch.Generator | None = None,
        solver: SolverConfig | None = None,
    ) -> tuple[Tensor, Tensor]:
        """The paths that carry base samples to data (or, run backwards, data to base samples).

        Arguments:
            z: starting points (n, d) at ``times[0]``, or a number n of base points to draw from N(0, I).
            times: output times (T,), monotone and starting at t0 (forward, z → x) or at t1
                (backward, x → z); or a count T of evenly spaced times from t0 to t1.

        Returns:
            ``(times, paths)`` with times (T,) and paths (T, n, d); ``paths[0]`` is the start.
        """
        p = next(self.parameters())
        if isinstance(z, int):
            z = torch.randn((check_int_range(z, "n", lo=1), self.dim), generator=generator, dtype=p.dtype)
        z = self._check_input(z, "z")
        if not len(z):
            raise ConfigError("trajectories need at least one starting point (z has 0 rows)", field="z")
        t0, t1 = self.tspan
        if isinstance(times, int):
            times = torch.linspace(t0, t1, check_int_range(times, "times", lo=2, hi=10_000))
        times = torch.as_tensor(times, dtype=p.dtype).to(p.device)
        if times.ndim != 1 or len(times) < 2 or float(times[0]) not in (t0, t1):
            raise ConfigError(
                f"times must be a 1-D sequence of at least 2 times starting at t0 = {t0} or t1 = {t1}", field="times"
            )
        with torch.no_grad():
            return times, self._transport(z, times, solver)

    def vector_field(self, points: Tensor, t: float) -> Tensor:
        """The dynamics f(t, z) at ``points`` (M, d); returns (M, d)."""
        points = self._check_input(points, "points")
        with torch.no_grad():
            return self.net(torch.tensor(t, dtype=points.dtype, device=points.device), points)

    def density_path(self, z: Tensor, times: Tensor, *, solver: SolverConfig | None = None) -> tuple[Tensor, Tensor]:
        """Push base points with their log-density forward: ``log p_t(z(t))`` along each path.

        Arguments:
            z: base points (n, d) at t0.
            times: output times (T,), starting at t0.

        Returns:
            ``(paths, logp)`` of shapes (T, n, d) and (T, n).
        """
        z = self._check_input(z, "z")
        # A density path needs the true divergence, whatever the model trains with.
        aug = _Solve(self, solver or self.solver, TRACE_ESTIMATORS["exact"].fn)
        y0 = torch.cat([z, z.new_zeros(z.shape[0], 1)], 1)
        with torch.no_grad():
            yt = aug.run(y0, times.to(z))
        # Integrated up from t0, ℓ(t) = ∫_{t0}^{t} tr dt, so log p_t(z(t)) = log N(z0) - ℓ(t).
        return yt[..., : self.dim], standard_normal_logprob(z)[None] - yt[..., self.dim]

    # ------------------------------------------------------------------ misc
    def _check_input(self, x: Tensor, name: str = "x") -> Tensor:
        """``x`` as a finite (N, d) tensor of the model's dtype and device, or a ConfigError naming ``name``.

        Real numbers of another dtype (float64, integers) are cast; booleans and complex numbers are refused,
        and so are NaN and infinite values, which no solver could integrate."""
        if not isinstance(x, Tensor) or x.ndim != 2 or x.shape[1] != self.dim:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ConfigError(f"expected a tensor of shape (N, {self.dim}), got {shape}", field=name)
        if x.dtype == torch.bool or x.is_complex():
            raise ConfigError(
                f"{name} must hold real numbers (got a {str(x.dtype).removeprefix('torch.')} tensor)",
                field=name,
                allowed="a floating-point or integer tensor",
            )
        p = next(self.parameters())
        if x.dtype != p.dtype or x.device != p.device:
            x = x.to(device=p.device, dtype=p.dtype)
        finite = torch.isfinite(x).all(1)
        if not bool(finite.all()):
            bad = int((~finite).sum())
            raise ConfigError(
                f"{name} holds NaN or infinite values ({bad:,} of {len(x):,} rows): a flow maps finite points only",
                field=name,
                allowed="finite numbers",
            )
        return x

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def extra_repr(self) -> str:
        c = self.config
        return f"dim={self.dim}, tspan={c.tspan}, trace={c.trace}, solver={self.solver.method}"
