"""Named configurations: the seed tutorial, the fast defaults per target, and teaching presets."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..flow.config import ModelConfig
from ..flow.solver import SolverConfig
from ..targets import SCIPY_PREFIX, target_spec
from .config import TrainConfig
from .device import resolve_device
from .objectives import FLOW_MATCHING

__all__ = [
    "BUDGET_ITERS",
    "DEFAULT_TARGET",
    "GPU_BATCH",
    "PRESETS",
    "SEED_CONFIG",
    "Preset",
    "budget_decides",
    "default_config",
    "target_dim",
]

# The DiffEqFlux tutorial, step for step: Chain(Dense(1, 3, tanh), Dense(3, 1, tanh)) without a time
# input, tspan (0, 10), 100 samples of Normal(6, 0.7), Adam(0.01) for 20 iterations, then LBFGS.
# Tsit5 becomes dopri5 (same order; torchdiffeq has no Tsit5) at OrdinaryDiffEq's default
# tolerances, reltol 1e-3 and abstol 1e-6. Optim's LBFGS runs until its line search gives up; 30
# iterations reach the same place here (benchmarks/bench_seed.py).
SEED_CONFIG = TrainConfig(
    target="normal",
    target_params={"loc": 6.0, "scale": 0.7},
    model=ModelConfig(hidden=(3,), activation="tanh", time="none", final_activation=True, tspan=(0.0, 10.0)),
    solver=SolverConfig("dopri5", rtol=1e-3, atol=1e-6),
    adam_iters=20,
    lr=0.01,
    lbfgs_iters=30,
    batch_size=None,
    n_train=100,
    eval_every=0,
    seed=0,
)

# Chosen by measurement (benchmarks/README.md): a concatsquash net plus a linear term fitted to the
# data's mean and covariance before training, fixed-step RK4 guarded by periodic adaptive checks,
# fresh samples every iteration, and a cosine-decayed learning rate.
_DEFAULT_1D = TrainConfig(
    target="normal",
    model=ModelConfig(hidden=(32, 32), activation="tanh", time="concatsquash", linear=True, tspan=(0.0, 1.0)),
    solver=SolverConfig("rk4", step_size=0.25),
    adam_iters=600,
    lr=1e-2,
    lr_decay=True,
    batch_size=256,
    n_train=None,
    eval_every=100,
)
_DEFAULT_2D = TrainConfig(
    target="8gaussians",
    model=ModelConfig(hidden=(64, 64, 64), activation="tanh", time="concatsquash", linear=True, tspan=(0.0, 0.5)),
    solver=SolverConfig("rk4", step_size=0.125),
    adam_iters=2000,
    lr=1e-2,
    lr_decay=True,
    batch_size=128,
    n_train=None,
    eval_every=100,
)


GPU_BATCH = 4096

# What the app opens on, and what a link without a target means.
DEFAULT_TARGET = "8gaussians"


def target_dim(target: str) -> int:
    """The dimension of a named target without building it (scipy targets are 1D)."""
    if target.startswith(SCIPY_PREFIX):
        return 1
    return target_spec(target).dim


BUDGET_ITERS = 1_000_000
"""The Adam iterations of a run whose time budget alone ends it (the most a config accepts)."""


def budget_decides(config: TrainConfig) -> TrainConfig:
    """``config`` with its Adam stage ended by its time budget rather than by its default iteration count, for a
    flow-matching run with a budget: what ``--max-seconds`` without ``--adam-iters`` means for one. Its iterations
    take milliseconds, so the default 2,000 would end it seconds into any budget; a likelihood run's default count
    is of the size of the budgets people give, and stays. The cosine learning rate then follows the clock (the
    trainer's progress is the larger of the two fractions).

    Example:
        >>> budget_decides(default_config("moons", objective="flow-matching", max_seconds=5.0)).adam_iters
        1000000
        >>> budget_decides(default_config("moons", max_seconds=5.0)).adam_iters
        2000
    """
    if config.max_seconds is None or config.objective not in FLOW_MATCHING:
        return config
    return config.replace(adam_iters=BUDGET_ITERS)


def default_config(target: str = "normal", params: Mapping[str, Any] | None = None, **overrides: Any) -> TrainConfig:
    """A good, fast configuration for ``target``; ``overrides`` replace any field.

    On a CUDA machine the batch grows to :data:`GPU_BATCH`: a GPU runs the same small network
    on thousands of points in about the time a CPU takes for a hundred.

    Example:
        >>> default_config("moons").model.hidden
        (64, 64, 64)
    """
    base = _DEFAULT_1D if target_dim(target) == 1 else _DEFAULT_2D
    if resolve_device(str(overrides.get("device", "auto"))).type == "cuda":
        base = base.replace(batch_size=GPU_BATCH)
    return base.replace(target=target, target_params=dict(params or {}), **overrides)


@dataclass(frozen=True)
class Preset:
    """A named configuration with a one-line description.

    ``compare`` lists labelled configs to run side by side (the Compare page); ``config`` is the
    one the Train page loads.
    """

    title: str
    description: str
    config: TrainConfig
    compare: tuple[tuple[str, TrainConfig], ...] = field(default_factory=tuple)


def _presets() -> dict[str, Preset]:
    moons = default_config("moons")
    checker = default_config("checkerboard").replace(adam_iters=4000, max_seconds=90.0)
    stiff = default_config("checkerboard").replace(
        model={"tspan": (0.0, 10.0)},
        solver={"method": "dopri5", "rtol": 1e-5, "atol": 1e-5, "max_steps": 400},
        lr=0.05,
        lr_decay=False,
        adam_iters=300,
        eval_every=0,
    )
    hutch = moons.replace(adam_iters=600, max_seconds=20.0)
    # Lesson-sized (benchmarks/README.md, "Many runs at once"): thirty of these train as one stack and
    # all finish within two minutes on two cores; the time cap keeps that promise on a busier server.
    # Its learning rate is 3x the default's: at 0.01 its 400 iterations left the moons half-formed (grid TV
    # 0.23 against 0.17 for the Two moons preset); 0.03 reaches 0.13-0.18 (seeds 0-2) at the same cost.
    classroom = moons.replace(
        model={"hidden": (32, 32)}, batch_size=64, adam_iters=400, lr=0.03, eval_every=100, max_seconds=110.0
    )
    # The same network and the same number of iterations, with no clock: under a wall-clock cap the machine's
    # load decided how many iterations each objective got (45 against 1,300 on a busy server), and so the
    # winner. The test NLL every 100 iterations puts every run, whatever its loss, on one live chart.
    by_likelihood = default_config("8gaussians").replace(adam_iters=1000, max_seconds=None, eval_every=100)
    by_fm = by_likelihood.replace(objective="flow-matching")
    by_ot = by_likelihood.replace(objective="ot-flow-matching")
    reg = moons.replace(adam_iters=600, max_seconds=20.0)
    return {
        "seed": Preset(
            "Seed tutorial",
            "The DiffEqFlux tutorial exactly: Normal(6, 0.7), a 10-parameter net, tspan (0, 10), Adam then LBFGS.",
            SEED_CONFIG,
        ),
        "moons": Preset(
            "Two moons in 10 seconds",
            "The default fast set-up learns two moons in about ten seconds.",
            moons.replace(max_seconds=10.0),
        ),
        "classroom": Preset(
            "Classroom (30 at once)",
            "Two moons with a lesson-sized flow: a class of thirty trains at once, each run done within two minutes.",
            classroom,
        ),
        "checkerboard": Preset(
            "Checkerboard (hard)",
            "Sharp edges and empty squares: a continuous flow needs many iterations to carve them out.",
            checker,
        ),
        "short_tspan": Preset(
            "Too-short time span",
            "The seed tutorial with tspan (0, 1): a tanh-bounded field cannot carry N(0, 1) all the way to 6.",
            SEED_CONFIG.replace(model={"tspan": (0.0, 1.0)}),
        ),
        "stiff": Preset(
            "Stiff dynamics",
            "A long time span and a high learning rate: watch NFE per iteration climb until the solver gives up.",
            stiff,
        ),
        "hutchinson": Preset(
            "Hutchinson vs exact",
            "The same flow with the exact trace and a one-probe Hutchinson estimate: noisier loss, similar result.",
            hutch,
            compare=(("exact trace", hutch), ("Hutchinson", hutch.replace(model={"trace": "hutchinson-rademacher"}))),
        ),
        "regularized": Preset(
            "Regularized vs not",
            "Kinetic and Jacobian penalties (λ₁ = λ₂ = 0.1) make straighter, simpler paths.",
            reg.replace(lambda_kinetic=0.1, lambda_jacobian=0.1),
            compare=(("no regularizer", reg), ("λ₁ = λ₂ = 0.1", reg.replace(lambda_kinetic=0.1, lambda_jacobian=0.1))),
        ),
        "two_ways": Preset(
            "Two ways to train",
            "One network, one target, 1,000 iterations each: by likelihood (an ODE solve per step) and by flow "
            "matching (regression onto straight paths, no solve), independent or OT-paired. Same test NLL read-out.",
            by_fm,
            compare=(("likelihood", by_likelihood), ("flow matching", by_fm), ("OT flow matching", by_ot)),
        ),
    }


class _Presets(Mapping[str, Preset]):
    """The preset table, built on first use: the fast defaults ask which device there is (a CUDA machine
    gets a bigger batch), and importing cnfviz must not probe devices."""

    @functools.cached_property
    def _table(self) -> dict[str, Preset]:
        return _presets()

    def __getitem__(self, name: str) -> Preset:
        return self._table[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)

    def __repr__(self) -> str:
        return f"PRESETS({list(self)})"


PRESETS: Mapping[str, Preset] = _Presets()
