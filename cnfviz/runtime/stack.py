"""Stacked training: runs of one network shape share each solve as one batched model.

R runs whose networks have the same shape train together: their weights get a leading run axis
(``torch.stack`` of each run's own leaf parameters, so backpropagation fills each run's ``.grad``
directly), every layer becomes one batched matmul, and the augmented state of all runs, shape
(R, N, d + 1 + r), is integrated on each run's own fixed time grid in one loop. The loop repeats
torchdiffeq's fixed-grid arithmetic (time reversal, grid, Runge-Kutta stages) elementwise, so each
run's numbers are the ones its solo solve gives, up to the summation order of the matmuls.

Everything but the forward and backward pass (data, learning rate, clipping, optimizer, checks,
records) stays with each run's :class:`~cnfviz.training.trainer.Trainer`; a :class:`StackGroup` only
replaces ``Trainer._forward_backward``.

Flow-matching runs stack too, more simply: they need no solve, so each member draws its own times,
noise and pairing exactly as it would alone, and the R fields are evaluated once, batched, at the
per-sample times (R, N, 1) (:func:`stacked_flow_matching_losses`).
"""

from __future__ import annotations

import atexit
import contextlib
import math
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import Tensor

from ..flow.divergence import TRACE_ESTIMATORS, draw_noise
from ..flow.dynamics import ODENet
from ..flow.ffjord import standard_normal_logprob
from ..flow.solver import SolverConfig, SolverInterrupted
from ..training.config import TrainConfig
from ..training.objectives import FLOW_MATCHING, OBJECTIVES, draw_flow_matching
from .housekeeping import name_native_thread

if TYPE_CHECKING:
    from ..training.trainer import Trainer

__all__ = [
    "FLOW_MATCHING_STACKS_ON_CPU",
    "STACKABLE_METHODS",
    "STACKABLE_OBJECTIVES",
    "STACKABLE_TIMES",
    "STACKABLE_TRACES",
    "STACK_THREAD_NAME",
    "VISUAL_SHARE",
    "StackGroup",
    "StackKey",
    "batch_rows",
    "grid_steps",
    "plan_stack_key",
    "stack_key",
    "stacked_flow_matching_losses",
    "stacked_losses",
]

FLOW_MATCHING_STACKS_ON_CPU = False
"""Whether flow-matching runs stack on a CPU. Off, by measurement (benchmarks/README.md): an iteration is a few
milliseconds, and the stack's per-round hand-offs cost more than batching saves (0.71x for one run, 0.45x
for 8, 0.86x for 16, 1.25x for 30), while likelihood runs, whose iterations are solves, gain 2.5-3x. On a GPU,
where a tiny run is all kernel-launch overhead, they stack."""

STACK_THREAD_NAME = "cnfviz-stack"

# Fixed-grid methods the stacked loop reproduces, with their evaluations per step.
STACKABLE_METHODS: dict[str, int] = {"euler": 1, "midpoint": 2, "rk4": 4}

VISUAL_SHARE = 0.2
"""At most this share of a stack's wall time goes to refreshing its members' live plots (one at a time)."""

# How long a round waits for a member that is due but late (its thread starved of the GIL, say)
# before it goes without it; the late member joins the next round.
_STRAGGLER_SECONDS = 0.5
_ONE_THIRD = 1 / 3
_TWO_THIRDS = 2 / 3

# Live stacks, so that interpreter exit can end their workers: a daemon thread still inside torch when
# the interpreter finalizes aborts the whole process.
_live: weakref.WeakSet[StackGroup] = weakref.WeakSet()


@atexit.register
def _stop_live_stacks() -> None:
    groups = list(_live)
    for group in groups:
        group.shutdown()
    for group in groups:
        group.join(10)


def grid_steps(step_size: float | None, tspan: tuple[float, float]) -> int:
    """Steps of the equal-step grid :func:`cnfviz.flow.solver.odesolve` uses for a span, as it computes them."""
    if step_size is None:
        return 1
    t = torch.tensor([tspan[1], tspan[0]], dtype=torch.float32)
    return max(1, math.ceil(float(abs(t[-1] - t[0])) / step_size - 1e-9))


STACKABLE_TIMES: tuple[str, ...] = ("none", "concat", "concatsquash")
"""Time conditionings :class:`_StackedNet` reproduces (tests/runtime/test_stack.py proves each against ODENet)."""

STACKABLE_TRACES: tuple[str, ...] = ("exact", "hutchinson-gaussian", "hutchinson-rademacher")
"""Trace estimators the stacked dynamics reproduce: the forward-mode ones (``exact-autograd`` trains alone)."""

STACKABLE_OBJECTIVES: tuple[str, ...] = ("likelihood", *sorted(FLOW_MATCHING))
"""Objectives a stack trains: the likelihood solve, and every flow-matching coupling that
:func:`~cnfviz.training.objectives.draw_flow_matching` draws."""


class StackKey(NamedTuple):
    """What a run must share with its stack-mates: its network's shape, its batch rows, and for a likelihood run the
    solve (trace estimator, regularizers, fixed-grid method and step count). Equal keys stack; runs of different
    objectives never share one.

    A typed tuple rather than a dataclass so that it stays what the keys always were to their users (a hashable
    tuple, e.g. ``key[:3] == (dim, hidden, activation)``), with named fields.
    """

    dim: int
    hidden: tuple[int, ...]
    activation: str
    time: str
    final_activation: bool
    linear: bool
    batch_rows: int
    objective: str
    trace: str | None  # None: flow matching makes no solve
    regularized: bool
    method: str | None
    steps: int
    device: str


def batch_rows(config: TrainConfig, train_rows: int | None) -> int:
    """Rows of each training batch: the batch size, or the whole training set when it is smaller (or unset).

    Arguments:
        config: the run.
        train_rows: rows of the fixed training set (``config.n_train``), or None when every batch is drawn fresh.
    """
    if train_rows is None:
        return config.batch_size or 256
    return train_rows if config.batch_size is None or config.batch_size >= train_rows else config.batch_size


def plan_stack_key(
    config: TrainConfig,
    *,
    dim: int,
    device: str | torch.device,
    solver: SolverConfig | None = None,
) -> StackKey | None:
    """The :class:`StackKey` of a run, from plain values; None when it cannot be stacked (it then trains alone).

    Shape: dimension, widths, activation, time conditioning, final activation, linear term, batch
    rows, trace estimator, regularized or not, fixed-grid method and step count, device. An adaptive
    solver, the adjoint, an NFE cap the grid exceeds, or a choice the stack does not reproduce exactly
    (:data:`STACKABLE_METHODS`, :data:`STACKABLE_TIMES`, :data:`STACKABLE_TRACES`, :data:`STACKABLE_OBJECTIVES`)
    trains alone.

    A flow-matching run makes no solve in training, so its key is the network shape, batch rows,
    objective and device alone. On a CPU it trains alone unless :data:`FLOW_MATCHING_STACKS_ON_CPU` is set.

    Arguments:
        config: the run.
        dim: the data dimension d.
        device: the device it trains on.
        solver: the training solver now (the solver guard may have halved the config's step); default ``config.solver``.

    Example:
        >>> from cnfviz import TrainConfig
        >>> cfg = TrainConfig(target="moons", solver={"method": "rk4", "step_size": 0.25})
        >>> key = plan_stack_key(cfg, dim=2, device="cpu")
        >>> key.method, key.steps, key.trace
        ('rk4', 4, 'exact')
        >>> plan_stack_key(TrainConfig(target="moons", solver={"method": "dopri5"}), dim=2, device="cpu") is None
        True
    """
    solver = solver if solver is not None else config.solver
    device = str(torch.device(device))
    rows = batch_rows(config, config.n_train)
    m = config.model
    if config.objective not in STACKABLE_OBJECTIVES or m.time not in STACKABLE_TIMES:
        return None
    shape = (dim, tuple(m.hidden), m.activation, m.time, m.final_activation, m.linear, rows)
    if config.objective in FLOW_MATCHING:
        if torch.device(device).type == "cpu" and not FLOW_MATCHING_STACKS_ON_CPU:
            return None
        return StackKey(*shape, config.objective, None, False, None, 0, device)
    if solver.method not in STACKABLE_METHODS or solver.adjoint or m.trace not in STACKABLE_TRACES:
        return None
    steps = grid_steps(solver.step_size, m.tspan)
    if solver.max_nfe is not None and steps * STACKABLE_METHODS[solver.method] > solver.max_nfe:
        return None  # alone, the solve fails on its NFE cap: let it, with the solo message
    return StackKey(*shape, config.objective, m.trace, config.regularized, solver.method, steps, device)


def stack_key(trainer: Trainer) -> StackKey | None:
    """The :class:`StackKey` of a built run as it stands now (its solver may have been refined), or None when it
    cannot be stacked now: :func:`plan_stack_key` over the trainer's public state."""
    return plan_stack_key(trainer.config, dim=trainer.target.dim, device=trainer.device, solver=trainer.train_solver)


class _StackedNet:
    """R :class:`~cnfviz.flow.dynamics.ODENet` of one shape, evaluated together with forward-mode tangents."""

    def __init__(self, nets: Sequence[ODENet]) -> None:
        first = nets[0]
        self.dim = first.dim
        self.act = first.act
        self.final_activation = first.final_activation
        self.time = first.layers[0].time
        self.layers: list[dict[str, Tensor]] = []
        for i, layer in enumerate(first.layers):
            names = [name for name, _ in layer.named_parameters()]
            self.layers.append({n: torch.stack([getattr(net.layers[i], n) for net in nets]) for n in names})
        self.linear = first.linear
        if self.linear:
            self.lin_bias = torch.stack([net.lin_bias for net in nets])[:, None, :]  # (R, 1, d)
            self.lin_wt = torch.stack([net.lin_weight for net in nets]).transpose(1, 2)  # (R, d, d)

    def _layer(self, p: dict[str, Tensor], t: Tensor, h: Tensor, tan: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """``t`` (R, 1), ``h`` (R, N, in), ``tan`` (R, k, N, in) -> (R, N, out), (R, k, N, out)."""
        if self.time == "none":
            w, shift = p["weight"], p["bias"]
        elif self.time == "concat":
            w, shift = p["weight"], torch.addcmul(p["bias"], t, p["time_weight"])
        else:  # concatsquash, folded into W and b as ODENet does
            gate = torch.sigmoid(torch.addcmul(p["gate_bias"], t, p["gate_weight"]))
            w = p["weight"] * gate[:, :, None]
            shift = torch.addcmul(t * p["hyper_bias"], p["bias"], gate)
        wt = w.transpose(1, 2)
        out = torch.baddbmm(shift[:, None, :], h, wt)
        return out, None if tan is None else _bmm_tangents(tan, wt)

    def field_per_sample(self, t: Tensor, z: Tensor) -> Tensor:
        """f (R, N, d) at per-sample times ``t`` (R, N, 1) for states ``z`` (R, N, d), as ``_Layer._per_sample``."""
        h = z
        last = len(self.layers) - 1
        for i, p in enumerate(self.layers):
            wt = p["weight"].transpose(1, 2)
            if self.time == "none":
                h = torch.baddbmm(p["bias"][:, None, :], h, wt)
            elif self.time == "concat":
                h = torch.baddbmm(torch.addcmul(p["bias"][:, None, :], t, p["time_weight"][:, None, :]), h, wt)
            else:  # the gate differs per row, so it cannot fold into W
                gate = torch.sigmoid(torch.addcmul(p["gate_bias"][:, None, :], t, p["gate_weight"][:, None, :]))
                h = torch.addcmul(t * p["hyper_bias"][:, None, :], torch.baddbmm(p["bias"][:, None, :], h, wt), gate)
            if i < last or self.final_activation:
                h = self.act.fn(h)
        if self.linear:
            h = torch.baddbmm(h + self.lin_bias, z, self.lin_wt)
        return h

    def field(self, t: Tensor, z: Tensor, seeds: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """f (R, N, d) and tangents J·seeds (R, k, N, d) at times ``t`` (R,) for states ``z`` (R, N, d)."""
        tc = t[:, None]
        h, tan = z, seeds
        last = len(self.layers) - 1
        for i, p in enumerate(self.layers):
            h, tan = self._layer(p, tc, h, tan)
            if i < last or self.final_activation:
                pre = h
                h = self.act.fn(pre)
                if tan is not None:
                    tan = tan * self.act.grad(pre, h)[:, None]
        if self.linear:
            h = torch.baddbmm(h + self.lin_bias, z, self.lin_wt)
            if tan is not None and seeds is not None:
                tan = tan + _bmm_tangents(seeds, self.lin_wt)
        return h, tan


def _bmm_tangents(tan: Tensor, wt: Tensor) -> Tensor:
    r, k, n, w_in = tan.shape
    return torch.bmm(tan.reshape(r, k * n, w_in), wt).reshape(r, k, n, wt.shape[-1])


class _StackedAugmented:
    """The augmented dynamics of :class:`~cnfviz.flow.ffjord.FFJORD` for R runs: state (R, N, d + 1 + r)."""

    def __init__(self, net: _StackedNet, exact: bool, eps: Tensor | None, regularize: bool) -> None:
        self.net = net
        self.exact = exact
        self.eps = eps  # (R, N, d) Hutchinson probes, one draw per run and solve
        self.regularize = regularize

    def __call__(self, t: Tensor, y: Tensor) -> Tensor:
        d = self.net.dim
        z = y[..., :d]
        r, n, _ = z.shape
        if self.exact:
            eye = torch.eye(d, dtype=z.dtype, device=z.device)[None, :, None, :].expand(r, d, n, d)
            f, cols = self.net.field(t, z, eye)
            assert cols is not None
            div = cols.diagonal(dim1=1, dim2=3).sum(-1)
            frob = cols.pow(2).sum((1, 3)) if self.regularize else None
        else:
            assert self.eps is not None
            f, jv = self.net.field(t, z, self.eps[:, None])
            assert jv is not None
            jv = jv[:, 0]
            div = (self.eps * jv).sum(-1)
            frob = jv.pow(2).sum(-1) if self.regularize else None
        if frob is not None:
            return torch.cat([f, div[..., None], f.pow(2).sum(-1, keepdim=True), frob[..., None]], -1)
        return torch.cat([f, div[..., None]], -1)


def _time_grid(tspan: tuple[float, float], steps: int, like: Tensor) -> tuple[Tensor, bool]:
    """The solver's grid for the density solve t1 -> t0, as torchdiffeq builds it; and whether time is reversed."""
    t = torch.tensor([tspan[1], tspan[0]], dtype=like.dtype, device=like.device)
    if steps == 1:
        grid = t  # no step size: torchdiffeq steps once per output time
    else:
        grid = torch.linspace(float(t[0]), float(t[-1]), steps + 1, dtype=t.dtype, device=t.device)
    reversed_ = bool(t[0] > t[1])
    # torchdiffeq integrates a decreasing span as dy/ds = -f(-s, y) on s = -t.
    return (-grid if reversed_ else grid), reversed_


def _integrate(func: Callable[[Tensor, Tensor], Tensor], y0: Tensor, grids: Tensor, method: str) -> Tensor:
    """Integrate ``func`` from ``y0`` (R, N, D) along per-run grids (R, n + 1); returns the end state (R, N, D)."""
    y = y0
    for k in range(grids.shape[1] - 1):
        t0, t1 = grids[:, k], grids[:, k + 1]
        dt_t = t1 - t0
        dt = dt_t[:, None, None]
        f0 = func(t0, y)
        if method == "euler":
            dy = dt * f0
        elif method == "midpoint":
            half_dt = 0.5 * dt
            dy = dt * func(t0 + 0.5 * dt_t, y + f0 * half_dt)
        else:  # rk4, torchdiffeq's 3/8-rule variant
            k1 = f0
            k2 = func(t0 + dt_t * _ONE_THIRD, y + dt * k1 * _ONE_THIRD)
            k3 = func(t0 + dt_t * _TWO_THIRDS, y + dt * (k2 - k1 * _ONE_THIRD))
            k4 = func(t1, y + dt * (k1 - k2 + k3))
            dy = (k1 + 3 * (k2 + k3) + k4) * dt * 0.125
        y = y + dy
    return y


def stacked_losses(
    trainers: Sequence[Any],
    batches: Sequence[Tensor],
    noises: Sequence[Tensor | None],
    interrupt: Callable[[], bool] | None = None,
) -> list[tuple[Tensor, dict[str, Any]]]:
    """Each run's training loss, from one stacked solve; the runs must share a :func:`stack_key`.

    Arguments:
        trainers: R trainers (their models' parameters are stacked, not copied).
        batches: each run's batch, shape (N, d).
        noises: each run's Hutchinson probes (N, d), or None with the exact trace.
        interrupt: checked at every evaluation of the dynamics, and again at each one on the way back
            through the backward pass; when it returns True the solve raises
            :class:`~cnfviz.flow.solver.SolverInterrupted` (a stop must not wait for a long round).

    Returns:
        ``(loss, parts)`` per run, as ``Trainer._loss`` returns them; ``loss`` backpropagates into
        that run's parameters only.
    """
    first = trainers[0]
    cfg, solver = first.config, first.train_solver
    net = _StackedNet([tr.model.net for tr in trainers])
    exact = TRACE_ESTIMATORS[cfg.model.trace].noise is None
    x = torch.stack(list(batches))
    eps = None if exact else torch.stack([e for e in noises if e is not None])
    regularize = cfg.regularized
    aug = _StackedAugmented(net, exact, eps, regularize)
    steps = grid_steps(solver.step_size, cfg.model.tspan)
    made = [_time_grid(tr.config.model.tspan, steps, x) for tr in trainers]
    grids = torch.stack([g for g, _ in made])
    sign = torch.tensor([-1.0 if rev else 1.0 for _, rev in made], dtype=x.dtype, device=x.device)
    reversed_all = all(rev for _, rev in made)
    forward_all = not any(rev for _, rev in made)

    def check(grad: Tensor | None = None) -> None:
        if interrupt is not None and interrupt():
            raise SolverInterrupted("stop requested")

    def func(t: Tensor, y: Tensor) -> Tensor:
        check()
        # The same negations torchdiffeq's _ReverseFunc applies, per run (exact in floating point).
        if reversed_all:
            out = -1.0 * aug(-t, y)
        elif forward_all:
            out = aug(t, y)
        else:
            out = sign[:, None, None] * aug(sign * t, y)
        if interrupt is not None and out.requires_grad:
            out.register_hook(check)
        return out

    d = first.target.dim
    y0 = torch.cat([x, x.new_zeros(*x.shape[:2], 1 + (2 if regularize else 0))], -1)
    yt = _integrate(func, y0, grids, solver.method)
    out = []
    for i, tr in enumerate(trainers):
        yi = yt[i]
        logpx = standard_normal_logprob(yi[:, :d]) + yi[:, d]
        kinetic, jac = (yi[:, d + 1].abs(), yi[:, d + 2].abs()) if regularize else (None, None)
        out.append(tr.loss_terms(logpx, kinetic, jac))
    return out


def stacked_flow_matching_losses(
    trainers: Sequence[Any], draws: Sequence[tuple[Tensor, Tensor, Tensor]]
) -> list[tuple[Tensor, dict[str, Any]]]:
    """Each flow-matching run's regression loss, from one batched evaluation of the R fields.

    Arguments:
        trainers: R trainers of one :func:`stack_key` (their models' parameters are stacked, not copied).
        draws: each run's ``(t, x_t, u)`` from :func:`~cnfviz.training.objectives.draw_flow_matching`, shapes
            (N, 1), (N, d), (N, d).

    Returns:
        ``(loss, parts)`` per run, as ``Trainer._loss`` returns them; ``loss`` backpropagates into
        that run's parameters only.
    """
    net = _StackedNet([tr.model.net for tr in trainers])
    t = torch.stack([d[0] for d in draws])  # (R, N, 1)
    xt = torch.stack([d[1] for d in draws])
    ut = torch.stack([d[2] for d in draws])
    per_run = (net.field_per_sample(t, xt) - ut).pow(2).sum(-1).mean(-1)  # (R,)
    return [(per_run[i], {"nll": math.nan, "kinetic": None, "jacobian": None}) for i in range(len(trainers))]


def _add_nfe(model: Any, evals: int) -> None:
    """Count a stacked solve's evaluations as the run's own forward NFE, under its counter lock if it has one."""
    lock = getattr(model, "_nfe_lock", None)
    with lock if lock is not None else contextlib.nullcontext():
        model.nfe_forward += evals


@dataclass
class _Request:
    trainer: Any
    x: Tensor
    eps: Tensor | None
    draw: tuple[Tensor, Tensor, Tensor] | None = None  # a flow-matching run's (t, x_t, u)
    done: threading.Event = field(default_factory=threading.Event)
    loss: float = math.nan
    parts: dict[str, Any] = field(default_factory=dict)
    nfe: tuple[int, int] = (0, 0)
    error: BaseException | None = None


class StackGroup:
    """The runs of one :func:`stack_key`, trained by one worker thread in rounds.

    Each member's own thread prepares its iteration (gate, batch, learning rate), calls
    :meth:`submit`, and finishes it (clip, step, records) when the round is done. A round starts when
    every member that is not :meth:`away` (paused, evaluating, plotting) has submitted. Members join
    and leave between iterations (:meth:`add`, :meth:`remove`).

    Arguments:
        key: the shared :func:`stack_key`.
        on_round: called by the worker after each round with the number of runs in it (statistics).
    """

    def __init__(self, key: tuple[Any, ...], on_round: Callable[[int, float], None] | None = None) -> None:
        self.key = key
        self.on_round = on_round
        self._cond = threading.Condition()
        self._members: dict[int, Any] = {}
        self._away: dict[int, int] = {}
        self._pending: dict[int, _Request] = {}
        self._closed = False
        self.rounds = 0
        self.run_iterations = 0
        self._born = time.perf_counter()
        self._visual_seconds = 0.0
        self._refreshing: int | None = None
        self._last_visual: dict[int, float] = {}
        self._thread = threading.Thread(target=self._work, name=STACK_THREAD_NAME, daemon=True)
        self._thread.start()
        _live.add(self)

    def shutdown(self) -> None:
        """Ask every member to stop (they leave at once, mid-round if need be); the worker then ends."""
        with self._cond:
            members = list(self._members.values())
        for trainer in members:
            trainer.stop()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    # ------------------------------------------------------------------ membership
    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def size(self) -> int:
        with self._cond:
            return len(self._members)

    def add(self, trainer: Any) -> None:
        with self._cond:
            self._members[id(trainer)] = trainer
            self._cond.notify_all()

    def remove(self, trainer: Any) -> bool:
        """Take a member out; returns True when the group is now empty and has closed."""
        with self._cond:
            self._members.pop(id(trainer), None)
            self._away.pop(id(trainer), None)
            self._last_visual.pop(id(trainer), None)
            if not self._members:
                self._closed = True
            self._cond.notify_all()
            return self._closed

    @contextlib.contextmanager
    def away(self, trainer: Any) -> Iterator[None]:
        """While inside, rounds do not wait for this member."""
        key = id(trainer)
        with self._cond:
            self._away[key] = self._away.get(key, 0) + 1
            self._cond.notify_all()
        try:
            yield
        finally:
            with self._cond:
                if key in self._away:
                    self._away[key] -= 1
                    if not self._away[key]:
                        del self._away[key]

    # ------------------------------------------------------------------ one iteration
    def submit(self, trainer: Any, x: Tensor) -> tuple[float, dict[str, Any], tuple[int, int]]:
        """The stacked stand-in for ``Trainer._forward_backward``: blocks until this run's round is done.

        The probe noise (or a flow-matching run's times, noise and pairing) is drawn here, from the run's
        own generator, exactly as its solo iteration draws it.
        """
        coupling = OBJECTIVES[trainer.config.objective].coupling
        if coupling is not None:
            draw = draw_flow_matching(
                x,
                trainer.model.tspan,
                coupling=coupling,
                generator=trainer.noise_generator,
                should_stop=lambda: trainer.stopping,
            )
            req = _Request(trainer, x, None, draw)
        else:
            est = TRACE_ESTIMATORS[trainer.config.model.trace]
            eps = draw_noise(est.noise, x, trainer.noise_generator) if est.noise else None
            req = _Request(trainer, x, eps)
        with self._cond:
            if self._closed or id(trainer) not in self._members:
                raise RuntimeError("submitted to a stack this run is not a member of")
            self._pending[id(trainer)] = req
            self._cond.notify_all()
        req.done.wait()
        if req.error is not None:
            raise req.error
        trainer.check_loss(req.loss)
        return req.loss, req.parts, req.nfe

    def _next_round(self) -> list[_Request] | None:
        with self._cond:
            since: float | None = None
            while True:
                if self._closed and not self._pending:
                    return None
                if self._pending:
                    since = since if since is not None else time.perf_counter()
                    late = [k for k in self._members if k not in self._pending and k not in self._away]
                    if not late or time.perf_counter() - since > _STRAGGLER_SECONDS:
                        batch = list(self._pending.values())
                        self._pending.clear()
                        return batch
                self._cond.wait(0.05)

    def _work(self) -> None:
        name_native_thread(STACK_THREAD_NAME)
        while True:
            batch = self._next_round()
            if batch is None:
                return
            start = time.perf_counter()
            try:
                self._compute(batch)
            except BaseException as err:  # the round failed as a whole: each member fails with it
                for req in batch:
                    req.error = err if isinstance(err, Exception) else RuntimeError(str(err))
            finally:
                for req in batch:
                    req.done.set()
            self.rounds += 1
            self.run_iterations += len(batch)
            if self.on_round is not None:
                with contextlib.suppress(Exception):  # statistics must never stop the worker
                    self.on_round(len(batch), time.perf_counter() - start)

    @staticmethod
    def _compute(batch: list[_Request]) -> None:
        live = batch
        while live:
            try:
                StackGroup._solve(live)
                return
            except SolverInterrupted:
                stopped = [r for r in live if r.trainer.stopping]
                if not stopped:
                    raise
            # The runs that asked to stop end now, as a solo run does mid-solve; the others solve
            # again without them, with the same batches and probes, so their numbers do not change.
            for req in stopped:
                req.error = SolverInterrupted("stop requested")
                req.done.set()  # now, not after its mates' new solve
            live = [r for r in live if not r.trainer.stopping]
            for req in live:
                for p in req.trainer.model.parameters():
                    p.grad = None

    @staticmethod
    def _solve(batch: list[_Request]) -> None:
        trainers = [r.trainer for r in batch]

        def interrupt() -> bool:
            return any(tr.stopping for tr in trainers)

        if batch[0].draw is not None:
            StackGroup._solve_flow_matching(batch)
            return
        losses = stacked_losses(trainers, [r.x for r in batch], [r.eps for r in batch], interrupt)
        evals = grid_steps(trainers[0].train_solver.step_size, trainers[0].config.model.tspan)
        evals *= STACKABLE_METHODS[trainers[0].train_solver.method]
        finite = []
        for req, (loss, parts) in zip(batch, losses, strict=True):
            req.loss, req.parts, req.nfe = float(loss.detach()), parts, (evals, 0)
            if math.isfinite(req.loss):
                req.trainer.remember_good()
                finite.append(loss)
        # A run whose loss is not finite fails alone: it gets no backward pass, and its mates'
        # gradients never touch its slice of the stacked weights.
        if finite:
            torch.stack(finite).sum().backward()
        for tr in trainers:
            _add_nfe(tr.model, evals)

    @staticmethod
    def _solve_flow_matching(batch: list[_Request]) -> None:
        trainers = [r.trainer for r in batch]
        draws = [r.draw for r in batch if r.draw is not None]
        losses = stacked_flow_matching_losses(trainers, draws)
        finite = []
        for req, (loss, parts) in zip(batch, losses, strict=True):
            # One evaluation of the field and no solve, counted as the solo iteration counts it.
            req.loss, req.parts, req.nfe = float(loss.detach()), parts, (1, 0)
            if math.isfinite(req.loss):
                req.trainer.remember_good()
                finite.append(loss)
        if finite:  # a run whose loss is not finite fails alone, as in a likelihood stack
            torch.stack(finite).sum().backward()

    # ------------------------------------------------------------------ live plots
    def visual_turn(self, trainer: Any, first: bool) -> bool:
        """May this member refresh its live plots now? One at a time, oldest first, within :data:`VISUAL_SHARE`
        of the stack's wall time (a member's ``first`` pictures skip the share, not the line)."""
        key = id(trainer)
        with self._cond:
            if self._refreshing is not None:
                return False
            elapsed = time.perf_counter() - self._born
            if not first and self._visual_seconds > VISUAL_SHARE * elapsed:
                return False
            mine = self._last_visual.get(key, -math.inf)
            for other in self._members:
                if other != key and other not in self._away and self._last_visual.get(other, -math.inf) < mine:
                    return False
            self._refreshing = key
            return True

    def visual_done(self, trainer: Any, seconds: float) -> None:
        with self._cond:
            if self._refreshing == id(trainer):
                self._refreshing = None
            self._visual_seconds += seconds
            self._last_visual[id(trainer)] = time.perf_counter()
