"""The dynamics network f(t, z): an MLP that also propagates its own Jacobian in forward mode.

FFJORD needs the divergence tr(∂f/∂z) at every function evaluation. The usual way, one
``autograd.grad`` per dimension with ``create_graph=True``, builds a double-backward graph and
dominates the cost for small models. Here each layer carries the primal activations *and* their
tangents (directional derivatives) through the same matrix multiply, so ∂f/∂z (or a Jacobian-vector
product for Hutchinson) comes out of one forward pass that ordinary backprop can differentiate.

Tangents have the layout ``(k, N, width)``: k directions, each pushed through the same weights.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .._validation import ConfigError, check_int_range, lookup

__all__ = ["ACTIVATIONS", "TIME_CONDITIONING", "Activation", "ODENet"]


@dataclass(frozen=True)
class Activation:
    """An elementwise nonlinearity and its derivative, both as functions of the pre-activation."""

    fn: Callable[[Tensor], Tensor]
    # Derivative as a function of (pre-activation, activation); passing the activation lets tanh
    # and elu reuse it instead of recomputing transcendental functions.
    grad: Callable[[Tensor, Tensor], Tensor]


def _silu_grad(x: Tensor, y: Tensor) -> Tensor:
    s = torch.sigmoid(x)
    return s * (1 + x * (1 - s))


ACTIVATIONS: dict[str, Activation] = {
    "tanh": Activation(torch.tanh, lambda x, y: torch.addcmul(torch.ones_like(y), y, y, value=-1)),
    "softplus": Activation(nn.functional.softplus, lambda x, y: torch.sigmoid(x)),
    "elu": Activation(nn.functional.elu, lambda x, y: torch.where(x > 0, torch.ones_like(y), y + 1)),
    "silu": Activation(nn.functional.silu, _silu_grad),
}

# none: f(z) (the seed tutorial's network has no time input); concat: t is an extra input of
# every layer; concatsquash: FFJORD's gated layer (W h + b) * sigmoid(a t + c) + d t.
TIME_CONDITIONING: tuple[str, ...] = ("none", "concat", "concatsquash")


class _Layer(nn.Module):
    """One affine layer with optional time conditioning, applied to primal and tangents."""

    def __init__(self, n_in: int, n_out: int, time: str, generator: torch.Generator | None) -> None:
        super().__init__()
        self.time = time
        bound = 1.0 / math.sqrt(n_in + (1 if time == "concat" else 0))
        # Same uniform init as nn.Linear, drawn from an explicit generator so concurrent
        # trainers in one process stay reproducible (the global RNG is shared).
        self.weight = nn.Parameter(_uniform((n_out, n_in), bound, generator))
        self.bias = nn.Parameter(_uniform((n_out,), bound, generator))
        if time == "concat":
            self.time_weight = nn.Parameter(_uniform((n_out,), bound, generator))
        elif time == "concatsquash":
            self.gate_weight = nn.Parameter(_uniform((n_out,), 1.0, generator))
            self.gate_bias = nn.Parameter(_uniform((n_out,), 1.0, generator))
            self.hyper_bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, t: Tensor, h: Tensor, tangents: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """Map primal ``h`` (N, in) and ``tangents`` (k, N, in) to (N, out) and (k, N, out).

        ``t`` is a scalar tensor (one time for the batch, as in an ODE solve) or, for flow matching,
        one time per sample of shape (N, 1).
        """
        if t.ndim and self.time != "none":
            return self._per_sample(t, h, tangents)
        if self.time == "none":
            w, shift = self.weight, self.bias
        elif self.time == "concat":
            w, shift = self.weight, torch.addcmul(self.bias, t, self.time_weight)
        else:
            # (W h + b) * g(t) + c t: folding the per-unit gate into W and b scales an (out, in)
            # matrix instead of every (N, out) activation and tangent.
            gate = torch.sigmoid(torch.addcmul(self.gate_bias, t, self.gate_weight))
            w = self.weight * gate[:, None]
            shift = torch.addcmul(t * self.hyper_bias, self.bias, gate)
        wt = w.T
        return torch.addmm(shift, h, wt), None if tangents is None else tangents @ wt

    def _per_sample(self, t: Tensor, h: Tensor, tangents: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """The same layer with times ``t`` (N, 1): the gate differs per row, so it cannot fold into W."""
        wt = self.weight.T
        if self.time == "concat":
            return torch.addmm(torch.addcmul(self.bias, t, self.time_weight), h, wt), (
                None if tangents is None else tangents @ wt
            )
        gate = torch.sigmoid(torch.addcmul(self.gate_bias, t, self.gate_weight))  # (N, out)
        out = torch.addcmul(t * self.hyper_bias, torch.addmm(self.bias, h, wt), gate)
        return out, None if tangents is None else (tangents @ wt) * gate


def _uniform(shape: tuple[int, ...], bound: float, generator: torch.Generator | None) -> Tensor:
    return (torch.rand(shape, generator=generator) * 2 - 1) * bound


class ODENet(nn.Module):
    """MLP dynamics f(t, z) for a d-dimensional state, with forward-mode Jacobian propagation.

    Arguments:
        dim: the data dimension d.
        hidden: widths of the hidden layers, e.g. ``(64, 64, 64)``; ``()`` gives a single affine map.
        activation: one of :data:`ACTIVATIONS`.
        time: one of :data:`TIME_CONDITIONING`.
        final_activation: apply the activation to the output too. The seed tutorial's network,
            ``Chain(Dense(1, 3, tanh), Dense(3, 1, tanh))``, is ``ODENet(1, (3,), "tanh", "none",
            final_activation=True)``.
        linear: add a learnable linear term, f(t, z) = MLP(t, z) + a + B z. The MLP's output layer
            then starts at zero, so the initial field is exactly the linear part, which
            :meth:`init_linear` can fit to the data's mean and covariance.
        generator: RNG for the initial weights.

    Example:
        >>> net = ODENet(2, (16, 16), generator=torch.Generator().manual_seed(0))
        >>> z = torch.randn(5, 2)
        >>> f, jac = net.jacobian(torch.tensor(0.0), z)
        >>> f.shape, jac.shape
        (torch.Size([5, 2]), torch.Size([5, 2, 2]))
    """

    def __init__(
        self,
        dim: int,
        hidden: Sequence[int] = (64, 64, 64),
        activation: str = "tanh",
        time: str = "concatsquash",
        final_activation: bool = False,
        linear: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        check_int_range(dim, "dim", lo=1)
        for i, w in enumerate(hidden):
            check_int_range(w, f"hidden[{i}]", lo=1, hi=4096)
        if time not in TIME_CONDITIONING:
            raise ConfigError(f'Invalid time conditioning "{time}". Must be one of {list(TIME_CONDITIONING)}')
        self.dim = dim
        self.act = lookup(ACTIVATIONS, activation, "activation")
        self.final_activation = final_activation
        widths = [dim, *hidden, dim]
        self.layers = nn.ModuleList(_Layer(a, b, time, generator) for a, b in itertools.pairwise(widths))
        self.linear = linear
        if linear:
            self.lin_bias = nn.Parameter(torch.zeros(dim))
            self.lin_weight = nn.Parameter(torch.zeros(dim, dim))
            with torch.no_grad():  # the MLP starts as a zero residual on top of the linear field
                self.layers[-1].weight.zero_()
                self.layers[-1].bias.zero_()

    @torch.no_grad()
    def init_linear(self, mean: Tensor, cov: Tensor, duration: float) -> None:
        """Set a and B so that the linear field alone carries N(0, I) to N(mean, cov) in ``duration``.

        With B symmetric, dz/dt = a + B z gives z(T) = e^{BT} z₀ + M a, where M = ∫₀ᵀ e^{Bs} ds.
        Choosing e^{BT} = cov^{1/2} and a = M⁻¹ mean matches both moments.

        Arguments:
            mean: data mean, shape (d,).
            cov: data covariance, shape (d, d), symmetric positive definite.
            duration: t1 - t0 (may be negative).
        """
        if not self.linear:
            raise ConfigError("init_linear needs a network built with linear=True")
        evals, evecs = torch.linalg.eigh(cov.double())
        log_sd = 0.5 * evals.clamp_min(1e-12).log()  # eigenvalues of log(cov^{1/2})
        lam = log_sd / duration  # eigenvalues of B
        x = lam * duration
        # (e^x - 1)/x, continuous at 0
        phi = torch.where(x.abs() < 1e-8, 1 + x / 2, torch.expm1(x) / torch.where(x == 0, torch.ones_like(x), x))
        b = evecs @ torch.diag(lam) @ evecs.T
        m_inv = evecs @ torch.diag(1 / (phi * duration)) @ evecs.T
        self.lin_weight.copy_(b.to(self.lin_weight))
        self.lin_bias.copy_((m_inv @ mean.double()).to(self.lin_bias))

    def _run(self, t: Tensor, h: Tensor, tangents: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """Push the primal (N, d) and tangents (k, N, d) through the network."""
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            h, tangents = layer(t, h, tangents)
            if i < last or self.final_activation:
                pre = h
                h = self.act.fn(pre)
                if tangents is not None:
                    tangents = tangents * self.act.grad(pre, h)
        return h, tangents

    def _field(self, t: Tensor, z: Tensor, seeds: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """f(t, z) (N, d) and the tangents J·seeds (k, N, d), linear term included."""
        f, tangents = self._run(t, z, seeds)
        if self.linear:
            wt = self.lin_weight.T
            f = torch.addmm(f + self.lin_bias, z, wt)
            if tangents is not None and seeds is not None:
                tangents = tangents + seeds @ wt
        return f, tangents

    def forward(self, t: Tensor, z: Tensor) -> Tensor:
        """Evaluate f(t, z). ``t``: scalar tensor, or per-sample times (N, 1); ``z``: (N, d). Returns (N, d)."""
        return self._field(t, z, None)[0]

    def jacobian(self, t: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``f`` (N, d) and the full Jacobian ``J`` (N, d, d) with ``J[n, i, j] = ∂f_i/∂z_j``.

        Costs one forward pass with d tangents, so it is cheap for d ≤ 2 (the toy problems).
        """
        f, cols = self.jacobian_columns(t, z)
        return f, cols.permute(1, 2, 0)

    def jacobian_columns(self, t: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``f`` (N, d) and the Jacobian as stacked columns ``C`` (d, N, d): ``C[j, n, i] = ∂f_i/∂z_j``.

        This is the layout the tangents come out in; :meth:`jacobian` permutes it.
        """
        n, d = z.shape
        eye = torch.eye(d, dtype=z.dtype, device=z.device)[:, None, :].expand(d, n, d)
        f, cols = self._field(t, z, eye)
        assert cols is not None
        return f, cols

    def jvp(self, t: Tensor, z: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``f`` (N, d) and the Jacobian-vector product ``J v`` (N, d) for ``v`` of shape (N, d)."""
        f, jv = self._field(t, z, v[None])
        assert jv is not None
        return f, jv[0]
