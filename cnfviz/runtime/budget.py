"""A run's memory and time, estimated from its shape before it starts, and the limits a server or the CLI sets.

Training an FFJORD flow with direct backpropagation keeps, for every evaluation of the dynamics in the
forward solve, each layer's activations and their forward-mode tangents (d of them for the exact trace, one
for Hutchinson) until the backward pass. So the peak grows as

    batch × (evaluations stored) × Σ widths × (2 + 2 × tangents) × 4 bytes (float32)

and the adjoint method stores one evaluation at a time instead of all of them. :func:`estimate_run` turns a
:class:`~cnfviz.TrainConfig` into that figure without building anything, and :func:`check_run` refuses a
run over its :class:`RunBudget` with a :class:`~cnfviz.ConfigError` that names the setting to change and the
limit. Both are arithmetic on the config: far under a millisecond, and nothing is allocated.

The constants were measured by counting the bytes autograd saves (``tests/runtime/test_budget.py`` checks the
estimate against that count for several shapes) and the peak RSS of real runs (``benchmarks/bench_abuse.py``).

Environment (read when a budget is built, so a server's operator sets them before ``streamlit run``):
``CNFVIZ_MAX_RUN_MB`` (server 2048; CLI 80 % of RAM) and ``CNFVIZ_MAX_STEP_SECONDS`` (server 20 s; CLI none),
declared in :mod:`cnfviz._env`. ``none`` lifts a cap; ``0``, ``inf`` and text are errors that name the variable
(a server logs them at start-up, and refuses runs until they are fixed).

Neither may exceed what the machine has: a limit above its total RAM is lowered to it.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from typing import Any

from .._env import read
from .._validation import ConfigError
from ..flow.solver import MAX_FIXED_STEPS, STAGES, SolverConfig, check_time_grid, fixed_steps
from ..targets import SCIPY_PREFIX, SLOW_SCIPY, TARGETS
from ..training.config import TrainConfig
from ..training.objectives import OBJECTIVES, OT_CHUNK_SECONDS, OT_MAX_POINTS, ot_pairing_seconds

__all__ = [
    "CLI_MAX_STEP_SECONDS",
    "MAX_FIXED_STEPS",
    "SERVER_MAX_RUN_MB",
    "SERVER_MAX_STEP_SECONDS",
    "RunBudget",
    "RunEstimate",
    "check_run",
    "estimate_run",
    "fixed_steps",
    "machine_memory_bytes",
    "run_dim",
]

SERVER_MAX_RUN_MB = 2048
"""A shared classroom server's default cap per run: a 24 GB machine trains two runs at a time and holds
dozens of idle sessions' models; the 2D fast defaults need about 50 MB, and batch 10,000 of them about
1.1 GB."""
SERVER_MAX_STEP_SECONDS = 20.0
"""A server's default cap on one iteration's estimated time: a slower iteration means a frozen live view."""
CLI_MAX_STEP_SECONDS: float | None = None

FLOAT_BYTES = 4  # the trainer works in float32
# Floats kept per hidden unit, per sample and per stored evaluation: pre-activation and activation for the
# primal, twice that per tangent (counted: 4.06 with one tangent, 6.1 with two; softplus 6.8). The slack
# covers what the count leaves out: the backward pass's temporaries and the allocator's overhead (the peak
# RSS of real iterations was 1.1-1.3 times the count, benchmarks/bench_abuse.py).
_UNIT_FLOATS = 2.0
_UNIT_FLOATS_PER_TANGENT = 2.0
_SLACK = 1.35
_STATE_FLOATS = 4  # the augmented state (z, logp, regularizers) and the solver's stage copies
TYPICAL_ADAPTIVE_STEPS = 8
"""An adaptive solve's step count is unknown before it runs: the fast 2D defaults take 7 dopri5 steps at
first. The estimate assumes this many; ``solver.max_nfe`` bounds what a run that grows stiff can reach."""
_EVAL_CHUNK = 50_000  # FFJORD.log_prob's chunk: the test NLL is solved this many points at a time
_EVAL_LIVE = 3  # evaluations alive at once in a no-grad solve (stages being combined)
# Effective CPU throughput for these small matrix products, floating-point operations per second and thread:
# the 2D defaults at batch 1,024 and 4,096 ran at 14-16 GFLOP/s by this count on a busy 2-core machine; the
# lower figure keeps the time estimate on the safe side.
_CPU_FLOPS = 10e9
_BYTES_PER_MB = 1_000_000


def machine_memory_bytes() -> int | None:
    """Total physical memory of this machine, or None where the OS does not say."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


_MACHINE = machine_memory_bytes()


@dataclass(frozen=True)
class RunBudget:
    """The limits a run must fit before it may start.

    Arguments:
        max_bytes: the most memory one run may need; ``None`` for no cap (the machine's RAM still applies).
        max_step_seconds: the longest one iteration may be estimated to take; ``None`` for no cap.
        where: how messages name who set the limit, e.g. ``"this server"``.
        source: the setting that changes it, e.g. ``"CNFVIZ_MAX_RUN_MB"``.
        slow_targets: allow the scipy distributions in :data:`~cnfviz.targets.SLOW_SCIPY`, which take seconds
            to minutes to build or sample in a call nothing can interrupt (a server does not).

    Example:
        >>> RunBudget(max_bytes=10**9).max_bytes
        1000000000
    """

    max_bytes: int | None = SERVER_MAX_RUN_MB * _BYTES_PER_MB
    max_step_seconds: float | None = SERVER_MAX_STEP_SECONDS
    where: str = "this server"
    source: str = "CNFVIZ_MAX_RUN_MB"
    slow_targets: bool = False

    @classmethod
    def for_server(cls) -> RunBudget:
        """A shared server's limits: :data:`SERVER_MAX_RUN_MB` and :data:`SERVER_MAX_STEP_SECONDS`, or the
        environment's."""
        # A bad value raises, naming the variable: a typo never lifts a limit (logged at start-up too).
        mb = read("CNFVIZ_MAX_RUN_MB", default=SERVER_MAX_RUN_MB)
        seconds = read("CNFVIZ_MAX_STEP_SECONDS", default=SERVER_MAX_STEP_SECONDS)
        return cls(_capped(mb), seconds, "this server")

    @classmethod
    def for_cli(cls) -> RunBudget:
        """The command line's looser limits: 80 % of this machine's memory, no time cap (or the environment's)."""
        default = None if _MACHINE is None else 0.8 * _MACHINE / _BYTES_PER_MB
        mb = read("CNFVIZ_MAX_RUN_MB", default=default)  # a bad value ends the command, naming the variable
        seconds = read("CNFVIZ_MAX_STEP_SECONDS", default=CLI_MAX_STEP_SECONDS)
        return cls(_capped(mb), seconds, "this machine", slow_targets=True)


def _capped(mb: float | None) -> int | None:
    limit = None if mb is None else int(mb * _BYTES_PER_MB)
    if _MACHINE is not None and (limit is None or limit > _MACHINE):
        return _MACHINE  # whatever anyone sets, no run may need more than the machine has
    return limit


@dataclass(frozen=True)
class RunEstimate:
    """What a run will need, from its shape alone.

    ``peak_bytes`` is the estimated peak memory of a training iteration (plus the data and the test NLL's
    chunk); ``bytes_per_sample`` what one more sample in the batch adds; ``fixed_bytes`` what does not grow
    with the batch, of which ``data_bytes`` for the training and test points; ``stored_evaluations`` the
    evaluations of the dynamics kept for the backward pass; ``step_seconds`` the estimated time of one
    iteration on one CPU thread, of which ``ot_seconds`` for the OT pairing (serial, in chunks Stop can end between).
    """

    batch: int
    stored_evaluations: int
    evaluations_per_solve: int
    bytes_per_sample_evaluation: float
    bytes_per_sample: float
    fixed_bytes: float
    data_bytes: float
    peak_bytes: float
    step_seconds: float
    ot_seconds: float = 0.0


def _evaluations_per_solve(solver: SolverConfig, span: float) -> int:
    stages = STAGES.get(solver.method, 6)
    if solver.is_fixed_grid:
        steps = fixed_steps(solver, span)
    else:
        steps = TYPICAL_ADAPTIVE_STEPS
    evaluations = steps * stages
    return evaluations if solver.max_nfe is None else min(evaluations, solver.max_nfe)


MAX_OT_SECONDS = 1.0
"""The longest a server lets one iteration's OT pairing take. Stop is heard between its chunks (within some
0.1 s), but the pairing is serial work on one core that a stack cannot share, a whole iteration's time at this
size: a server limit only; the library's :class:`~cnfviz.Trainer` notes the estimate and trains."""


def _flow_matching(config: TrainConfig) -> bool:
    return OBJECTIVES[config.objective].coupling is not None


def _ot_seconds(config: TrainConfig, batch: int) -> float:
    return ot_pairing_seconds(batch) if OBJECTIVES[config.objective].coupling == "ot" else 0.0


def _batch(config: TrainConfig) -> int:
    # The trainer's own rule: a batch size, else the whole fixed training set, else 256 fresh points.
    if config.batch_size is not None:
        return config.batch_size if config.n_train is None else min(config.batch_size, config.n_train)
    return config.n_train if config.n_train is not None else 256


def estimate_run(config: TrainConfig, dim: int) -> RunEstimate:
    """Estimate a training run's peak memory and time per iteration from its shape, without building it.

    Arguments:
        config: the run.
        dim: the data dimension d (1 or 2 for the app's targets).

    Returns:
        the :class:`RunEstimate`.

    Example:
        >>> from cnfviz import default_config
        >>> est = estimate_run(default_config("moons"), 2)
        >>> 1e7 < est.peak_bytes < 1e8, est.stored_evaluations
        (True, 17)
    """
    m, solver = config.model, config.solver
    widths = list(m.hidden)
    tangents = dim if m.trace.startswith("exact") else 1
    regularizers = 2 if config.regularized else 0
    units = sum(widths)
    per_eval = FLOAT_BYTES * (
        units * (_UNIT_FLOATS + _UNIT_FLOATS_PER_TANGENT * tangents) * _SLACK
        + _STATE_FLOATS * (dim + 1 + regularizers) * (1 + tangents)
    )
    evaluations = _evaluations_per_solve(solver, abs(m.tspan[1] - m.tspan[0]))
    # Direct backprop keeps every evaluation's graph; the adjoint rebuilds one at a time. Either way the
    # backward pass holds about one evaluation's gradients on top.
    stored = (2 if solver.adjoint else evaluations) + 1
    batch = _batch(config)
    per_sample = per_eval * stored
    train_eval = per_eval
    fm = _flow_matching(config)
    if fm:
        # Flow matching trains on one evaluation of the network per sample (no solve, no trace); only its
        # test NLL and pictures solve the likelihood.
        train_eval = FLOAT_BYTES * (units * _UNIT_FLOATS * _SLACK + _STATE_FLOATS * (dim + 1))
        evaluations, stored, tangents_train = 1, 2, 0
        per_sample = train_eval * stored
    else:
        tangents_train = tangents
    data = 8 * dim * ((config.n_train or 0) + config.n_test)  # float64 samples
    if config.n_train is not None:
        data += (FLOAT_BYTES * dim + 8) * config.n_train  # the float32 copy and the shuffling permutation
    evaluation = per_eval * _EVAL_LIVE * min(config.n_test, _EVAL_CHUNK)
    # The fixed grid is built whole before the first step (float32 times, and torchdiffeq's copies of them).
    grid = 3 * FLOAT_BYTES * (fixed_steps(solver, abs(m.tspan[1] - m.tspan[0])) + 1)
    fixed = data + evaluation + grid
    layers = [dim, *widths, dim]
    macs = sum(a * b for a, b in itertools.pairwise(layers)) * (1 + tangents_train)
    # Forward, plus a backward pass about twice its cost; the adjoint solves again backwards.
    passes = 3 + (2 if solver.adjoint and not fm else 0)
    seconds = 2 * macs * passes * evaluations * batch / _CPU_FLOPS
    ot = _ot_seconds(config, batch)
    seconds += ot
    return RunEstimate(
        batch=batch,
        stored_evaluations=stored,
        evaluations_per_solve=evaluations,
        bytes_per_sample_evaluation=train_eval,
        bytes_per_sample=per_sample,
        fixed_bytes=fixed,
        data_bytes=data,
        peak_bytes=per_sample * batch + fixed,
        step_seconds=seconds,
        ot_seconds=ot,
    )


def _mb(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n:,.0f} bytes"


def _shape_text(config: TrainConfig, dim: int, est: RunEstimate) -> str:
    m, solver = config.model, config.solver
    if _flow_matching(config):
        return f"model.hidden {tuple(m.hidden)}, {config.objective}: one evaluation of the network per sample"
    tangents = dim if m.trace.startswith("exact") else 1
    how = "adjoint" if solver.adjoint else "direct backprop"
    return (
        f"model.hidden {tuple(m.hidden)}, {tangents} tangent{'s' if tangents != 1 else ''} ({m.trace} trace), "
        f"{est.evaluations_per_solve} evaluations per solve ({solver.method}, {how})"
    )


def _batch_field(config: TrainConfig) -> str:
    return "batch_size" if config.batch_size is not None or config.n_train is None else "n_train"


def check_run(config: TrainConfig, dim: int, budget: RunBudget | None = None) -> RunEstimate:
    """Refuse a run that would need more memory or time per iteration than ``budget`` allows.

    Arguments:
        config: the run.
        dim: the data dimension.
        budget: the limits; defaults to :meth:`RunBudget.for_server`.

    Returns:
        the run's :class:`RunEstimate`, when it fits.

    Raises:
        ConfigError: naming the setting to change (``batch_size`` when a smaller batch would fit, else
            ``model.hidden``), the estimate, the limit and where the limit comes from.

    Example:
        >>> from cnfviz import default_config
        >>> try:
        ...     check_run(default_config("moons", batch_size=1_000_000), 2, RunBudget(max_bytes=2 * 10**9))
        ... except ConfigError as err:
        ...     print(err.field)
        batch_size
    """
    budget = budget or RunBudget.for_server()
    name = config.target[len(SCIPY_PREFIX) :] if config.target.startswith(SCIPY_PREFIX) else None
    if not budget.slow_targets and name in SLOW_SCIPY:
        raise ConfigError(
            f"target {config.target} takes seconds to minutes to build or sample, in a call that cannot be "
            f"stopped, so {budget.where} does not train it; its slow ones are {sorted(SLOW_SCIPY)}",
            field="target",
            allowed="the target picker's choices",
        )
    check_time_grid(config.solver, config.model.tspan)
    est = estimate_run(config, dim)
    field = _batch_field(config)
    if budget.max_bytes is not None and est.peak_bytes > budget.max_bytes:
        fits = int((budget.max_bytes - est.fixed_bytes) // est.bytes_per_sample) if est.bytes_per_sample else 0
        limit = f"the limit for one run on {budget.where} is {_mb(budget.max_bytes)} ({budget.source})"
        need = f"this run would need about {_mb(est.peak_bytes)} of memory"
        if est.data_bytes > budget.max_bytes:
            raise ConfigError(
                f"{need}, most of it for its data (n_train {config.n_train}, n_test {config.n_test}); {limit}. "
                "Use fewer training or test points",
                field="n_train, n_test",
                allowed=limit,
            )
        if fits >= 1:
            raise ConfigError(
                f"{need}: {field} {est.batch:,} × {_mb(est.bytes_per_sample)} per sample "
                f"({_shape_text(config, dim, est)}); {limit}. Use {field} ≤ {fits:,} or a smaller network"
                + (
                    "" if _flow_matching(config) else ", fewer solver steps, the Hutchinson trace or the adjoint method"
                ),
                field=field,
                allowed=f"{field} ≤ {fits:,} with these settings",
            )
        raise ConfigError(
            f"{need} even for one sample ({_shape_text(config, dim, est)}); {limit}. Use fewer or narrower "
            "layers (model.hidden), fewer solver steps (solver.step_size) or the adjoint method (solver.adjoint)",
            field="model.hidden",
            allowed=limit,
        )
    if budget.max_step_seconds is not None and est.ot_seconds > MAX_OT_SECONDS:
        fits = OT_MAX_POINTS * max(1, int(MAX_OT_SECONDS / OT_CHUNK_SECONDS))
        raise ConfigError(
            f"the OT pairing of {field} {est.batch:,} would take about {est.ot_seconds:,.1f} s per iteration, "
            f"serial work on one core; on {budget.where} it may take {MAX_OT_SECONDS:g} s. Use "
            f"{field} ≤ {fits:,}, or objective flow-matching (independent pairs)",
            field=field,
            allowed=f"{field} ≤ {fits:,} for {config.objective}",
        )
    if budget.max_step_seconds is not None and est.step_seconds > budget.max_step_seconds:
        fits = max(1, int(est.batch * budget.max_step_seconds / est.step_seconds))
        raise ConfigError(
            f"one iteration of this run would take about {est.step_seconds:,.0f} s ({field} {est.batch:,}, "
            f"{_shape_text(config, dim, est)}); the limit on {budget.where} is {budget.max_step_seconds:g} s "
            f"(CNFVIZ_MAX_STEP_SECONDS). Use {field} ≤ {fits:,}, a smaller network or fewer solver steps",
            field=field,
            allowed=f"about {budget.max_step_seconds:g} s per iteration",
        )
    return est


def run_dim(config: TrainConfig, target: Any = None) -> int | None:
    """The run's data dimension: the given target's, else the named target's; None when unknown."""
    if target is not None and hasattr(target, "dim"):
        return int(target.dim)
    if config.target in TARGETS:
        return TARGETS[config.target].dim
    if config.target.startswith(SCIPY_PREFIX):
        return 1
    return 2 if config.target == "image" else None
