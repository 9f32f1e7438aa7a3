"""The trainer: an Adam stage, then an optional LBFGS stage, with live metrics and clean failure.

The trainer is built to run in a background thread. It reports every iteration to a callback,
obeys ``stop``/``pause``/``step`` requests between iterations (and between LBFGS function
evaluations), and on any failure (a NaN, a solver that gives up) it restores the last parameters
that gave a finite loss and ends with a reason instead of an exception.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch

from .._validation import ConfigError
from ..flow.ffjord import FFJORD
from ..flow.solver import SolverConfig, SolverError, SolverInterrupted, check_time_grid
from ..targets import Target, make_target
from .config import TrainConfig
from .device import resolve_device
from .metrics import EVAL_SOLVER, Metrics, evaluate
from .objectives import OBJECTIVES, flow_matching_loss, objective_notes

__all__ = [
    "FINAL_EVAL_MIN_SECONDS",
    "FINAL_EVAL_SHARE",
    "LIVE_FIELDS",
    "IterationRecord",
    "TrainResult",
    "Trainer",
    "build_target",
    "lbfgs_max_evaluations",
    "live_update",
    "load_weights",
    "problems_text",
    "train",
    "weight_problems",
]

# A fixed-step solver is refined when its NLL and an adaptive solve's NLL differ by more than
# this many nats: the flow has started to exploit the discretisation error.
SOLVER_GAP_TOLERANCE = 0.05
_EVAL_POINTS = 1000

FINAL_EVAL_SHARE = 0.1
"""The share of a run's time budget its final metrics may take, after training has spent the budget."""
FINAL_EVAL_MIN_SECONDS = 1.0
"""The least time a budgeted run's final metrics get: enough for the cheap figures (seed TV, test NLL)."""


LIVE_FIELDS = ("lr", "lambda_kinetic", "lambda_jacobian")
"""The settings a run can take mid-run (:meth:`Trainer.update_config`)."""


def live_update(old: TrainConfig, new: TrainConfig) -> bool:
    """Whether ``new`` differs from ``old`` only in :data:`LIVE_FIELDS` (and does differ).

    Example:
        >>> from cnfviz import TrainConfig
        >>> a = TrainConfig(target="normal")
        >>> live_update(a, a.replace(lr=0.05)), live_update(a, a.replace(adam_iters=7)), live_update(a, a)
        (True, False, False)
    """
    if old == new:
        return False
    same = {name: getattr(old, name) for name in LIVE_FIELDS}
    return new.replace(**same) == old


def lbfgs_max_evaluations(lbfgs_iters: int) -> int:
    """The most loss evaluations an LBFGS stage of ``lbfgs_iters`` iterations makes (each is one recorded
    iteration: the line search evaluates the loss more than once per LBFGS step).

    Example:
        >>> lbfgs_max_evaluations(50), lbfgs_max_evaluations(0)
        (63, 0)
    """
    return lbfgs_iters * 5 // 4 + 1 if lbfgs_iters > 0 else 0


class _Stop(Exception):
    """Raised inside the LBFGS closure to leave ``optimizer.step`` early."""


@dataclass(frozen=True)
class IterationRecord:
    """What one training iteration reports.

    ``iteration`` counts from 1 across both stages. In the LBFGS stage each record is one
    function evaluation of the closure (line searches included). ``nfe_forward`` and
    ``nfe_backward`` count the training solves so far (not evaluations or plots); ``nfe_iter`` is
    this iteration's forward NFE. ``test_nll`` is set only on evaluation iterations, and is
    computed with an accurate adaptive solver.

    With a flow-matching objective, ``loss`` is the regression loss, ``nll`` is NaN (no training
    likelihood is computed: ``test_nll`` is the comparable figure), and each iteration counts one
    forward NFE, its single evaluation of the field.
    """

    iteration: int
    stage: str
    loss: float
    nll: float
    kinetic: float | None
    jacobian: float | None
    nfe_forward: int
    nfe_backward: int
    nfe_iter: int
    elapsed: float
    lr: float
    grad_norm: float
    test_nll: float | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainResult:
    """How a run ended. ``status`` is ``done``, ``stopped`` or ``failed``; ``reason`` says why."""

    status: str
    reason: str
    iterations: int
    train_seconds: float
    eval_seconds: float
    history: list[IterationRecord] = field(default_factory=list)
    metrics: Metrics | None = None
    last: IterationRecord | None = None

    def summary(self) -> dict[str, Any]:
        last = self.last
        return {
            "status": self.status,
            "reason": self.reason,
            "iterations": self.iterations,
            "train_seconds": self.train_seconds,
            "eval_seconds": self.eval_seconds,
            "final_loss": last.loss if last else None,
            "nfe_forward": last.nfe_forward if last else 0,
            "nfe_backward": last.nfe_backward if last else 0,
            **(self.metrics.to_dict() if self.metrics else {}),
        }


def _cpu(value: Any) -> Any:
    """``value`` with every tensor in it (nested dicts and lists) on the CPU."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cpu(v) for v in value)
    return value


def _adam(params: list[torch.nn.Parameter], lr: float) -> torch.optim.Adam:
    """Adam with torch's fused kernel where the device has one: the same update, one kernel for every tensor
    instead of a Python loop over them (a quarter of a flow-matching iteration on a CPU, by measurement)."""
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except RuntimeError:  # a device without the fused kernel
        return torch.optim.Adam(params, lr=lr)


def _grad_norm(params: list[torch.nn.Parameter], clip: float | None) -> float:
    """The gradients' total 2-norm before clipping, clipping them to ``clip`` when set, with the numbers of
    ``torch.nn.utils.clip_grad_norm_`` (which also multiplies every gradient by 1.0 when it does not clip,
    and costs as much again as the norm on a small network).
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    if clip is not None:
        coef = clip / (norm + 1e-6)
        if bool(coef < 1):
            torch._foreach_mul_(grads, coef)
    return float(norm)


def _cosine(progress: float, floor: float) -> float:
    """Cosine decay from 1 to ``floor`` as ``progress`` goes from 0 to 1."""
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def build_target(config: TrainConfig) -> Target:
    """The config's named target; custom ``samples``/``image`` targets must be passed in instead."""
    if config.target in ("samples", "image"):
        raise ConfigError(f'target "{config.target}" needs its data: pass target=... to the Trainer')
    return make_target(config.target, config.target_params)


def weight_problems(model: FFJORD, state: Mapping[str, torch.Tensor]) -> list[str]:
    """What keeps ``state`` from loading into ``model``, one phrase each (empty: it fits).

    A wrong shape says most about a different network, so those come first.

    Example:
        >>> from cnfviz import ModelConfig
        >>> small, wide = FFJORD(1, ModelConfig(hidden=(4,))), FFJORD(1, ModelConfig(hidden=(8,)))
        >>> weight_problems(small, wide.state_dict())[0]
        'net.layers.0.weight has shape (8, 1) where (4, 1) is expected'
    """
    own = model.state_dict()
    problems = []
    for name, value in state.items():
        if name in own and (not isinstance(value, torch.Tensor) or value.shape != own[name].shape):
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            problems.append(f"{name} has shape {got} where {tuple(own[name].shape)} is expected")
    problems += [f"{name} is missing" for name in own if name not in state]
    problems += [f"{name} is not part of this network" for name in state if name not in own]
    for name, value in state.items():
        if name in own and isinstance(value, torch.Tensor) and value.shape == own[name].shape:
            if not bool(torch.isfinite(value).all()):
                problems.append(f"{name} holds NaN or infinite values")
    return problems


def problems_text(problems: list[str]) -> str:
    """The first problem, and how many more: ``"x is missing (and 2 more)"``."""
    return problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")


def load_weights(model: FFJORD, state: Mapping[str, torch.Tensor]) -> None:
    """Load ``state`` into ``model``, or raise :class:`ConfigError` saying which weights do not fit
    (:func:`weight_problems` lists them all).

    Example:
        >>> from cnfviz import ModelConfig
        >>> small, wide = FFJORD(1, ModelConfig(hidden=(4,))), FFJORD(1, ModelConfig(hidden=(8,)))
        >>> try:
        ...     load_weights(small, wide.state_dict())
        ... except ConfigError as err:
        ...     print(str(err).replace(": ", ":\\n", 1))
        the weights do not fit this network:
        net.layers.0.weight has shape (8, 1) where (4, 1) is expected (and 5 more)
    """
    problems = weight_problems(model, state)
    if problems:
        raise ConfigError(f"the weights do not fit this network: {problems_text(problems)}", field="state_dict")
    own = model.state_dict()
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})


class Trainer:
    """Trains one FFJORD model on one target according to a :class:`~cnfviz.training.config.TrainConfig`.

    Arguments:
        config: the run.
        target: the distribution; defaults to ``make_target(config.target, config.target_params)``.
            Custom samples or images are passed here.
        callback: called with each :class:`IterationRecord`, from the training thread.
        on_pause: called from the training thread each time it starts waiting while paused (after
            a single step too), e.g. to refresh plots of the paused model.
        keep_history: keep every :class:`IterationRecord` in ``history`` (and in the result). A
            long-lived job that logs through ``callback`` can turn it off to keep memory flat.
        init_state: start from these weights (a model ``state_dict``, e.g. from a checkpoint) instead of
            a fresh initialisation; they must fit the network the config describes.

    The controls (:meth:`stop`, :meth:`pause`, :meth:`resume`, :meth:`step`) are thread-safe. :meth:`stop` also
    ends a solve in progress at its next evaluation of the dynamics, and an OT pairing between two chunks.

    Raises:
        ConfigError: for a fixed time grid too fine to build or to solve (``solver.step_size``, see
            :func:`~cnfviz.flow.solver.check_time_grid`), before anything is allocated, as on every channel.
            A shared server's per-run limits (``cnfviz.runtime.budget.check_run``: memory, seconds per
            iteration, the OT pairing's 1 s) are not applied to a library user's own machine; a large OT
            batch is noted in :attr:`notes` with its estimated pairing time.

    Example:
        >>> cfg = TrainConfig(target="normal", adam_iters=3, batch_size=64, eval_every=0)
        >>> result = Trainer(cfg).run()
        >>> result.status, result.iterations
        ('done', 3)
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        target: Target | None = None,
        callback: Callable[[IterationRecord], None] | None = None,
        on_pause: Callable[[], None] | None = None,
        keep_history: bool = True,
        init_state: Mapping[str, torch.Tensor] | None = None,
    ) -> None:
        # Before anything is allocated: a fixed time grid too fine to build or to solve is refused here too, with
        # the words the server and the CLI use (cnfviz.runtime.budget.check_run asks the same question).
        check_time_grid(config.solver, config.model.tspan)
        self.config = config
        self.on_pause = on_pause
        self.keep_history = keep_history
        self._nfe = [0, 0]  # training forward, backward NFE
        self._last: IterationRecord | None = None
        self.target = target if target is not None else build_target(config)
        if self.target.dim != 1 and self.target.dim != 2:
            raise ConfigError(f"target dimension must be 1 or 2 (got {self.target.dim})")
        self.callback = callback
        self.device = resolve_device(config.device)
        self.model = FFJORD(
            self.target.dim, config.model, config.solver, generator=torch.Generator().manual_seed(config.seed)
        ).to(self.device)
        self.train_solver: SolverConfig = config.solver
        self._coupling = OBJECTIVES[config.objective].coupling
        self._data_rng = np.random.default_rng(config.seed)
        self._noise = torch.Generator().manual_seed(config.seed + 1)
        self.train_data = self.target.sample(config.n_train, seed=config.seed) if config.n_train is not None else None
        # Held-out data and the seed-TV points come from their own streams so they never overlap
        # the training samples.
        self.test_data = self.target.sample(config.n_test, seed=config.seed + 1_000_003)
        if config.model.linear:
            fit = (
                self.train_data
                if self.train_data is not None
                else self.target.sample(10_000, seed=config.seed + 5_000_011)
            )
            self.model.init_from_data(self._to_tensor(fit))
        if init_state is not None:
            load_weights(self.model, init_state)
        self._from_weights = init_state is not None
        self.tv_points = (
            self.train_data if self.train_data is not None else self.target.sample(100, seed=config.seed + 2_000_003)
        )
        self.history: list[IterationRecord] = []
        self.notes: list[str] = objective_notes(config)
        self._stop = threading.Event()
        self._resume = threading.Event()
        self._resume.set()
        self._steps = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._good_state: dict[str, torch.Tensor] | None = None
        self._live_state: dict[str, torch.Tensor] | None = None  # the model's own tensors, by state_dict name
        self._params = list(self.model.parameters())
        self._iteration = 0
        self._train_seconds = 0.0
        self._eval_seconds = 0.0
        self._clock_start = 0.0
        self._stage = "adam"
        self._perm: np.ndarray | None = None
        self._perm_pos = 0
        # Progress through the stages, so that a stopped run can be continued (see :meth:`rearm`).
        self._adam_opt: torch.optim.Adam | None = None
        self._adam_done = 0
        self._lbfgs_evals = 0
        self._lbfgs_finished = False
        # Set by a scheduler (cnfviz.runtime.scheduler) to train the Adam stage in a stack with runs of the same shape.
        self.stacker: Any = None
        self.stack_group: Any = None  # the stack this run trains in now, if any

    # ------------------------------------------------------------------ controls
    def stop(self) -> None:
        """Ask the run to end after the current iteration."""
        self._stop.set()
        self._resume.set()

    def rearm(self) -> None:
        """Clear a stop request, so that the next :meth:`run` continues where the stopped one left off.

        The Adam stage continues with its optimizer state and learning-rate schedule; an interrupted
        LBFGS stage starts a new LBFGS solve from the best point so far, with the evaluations left.
        """
        self._stop.clear()

    def update_config(self, config: TrainConfig) -> None:
        """Switch to ``config`` from the next iteration on, when it differs from the current one only in
        :data:`LIVE_FIELDS` (the learning rate, the λ weights), which a running optimizer can take
        mid-run; any thread may call it. Anything else raises ``ValueError``: it needs a new run."""
        if not live_update(self.config, config):
            raise ValueError("only the learning rate and the λ weights can change during a run")
        self.config = config  # one reference swap: the training thread sees the old or the new config whole

    def extend(self, *, adam_iters: int | None = None, max_seconds: float | None = None) -> None:
        """Raise the Adam iterations or the time budget of a run that ended, so that the next :meth:`run`
        (after :meth:`rearm`) trains on."""
        changes: dict[str, Any] = {}
        if adam_iters is not None:
            changes["adam_iters"] = max(int(adam_iters), self._adam_done)
        if max_seconds is not None:
            changes["max_seconds"] = max_seconds
        if changes:
            self.config = self.config.replace(**changes)

    def training_state(self) -> dict[str, Any]:
        """Everything but the weights that the next iteration depends on, as tensors and plain values (a
        checkpoint can hold it under ``weights_only=True``): the Adam moments, the counters, the data and
        noise streams, the solver's step. Read it while the run is not training (ended, paused or stopped);
        :meth:`load_training_state` on a trainer of the same config and weights makes it train on exactly
        as this one would."""
        opt = self._adam_opt
        return {
            "iteration": self._iteration,
            "adam_done": self._adam_done,
            "adam_iters": self.config.adam_iters,
            "nfe": list(self._nfe),
            "train_seconds": float(self._train_seconds),
            "lbfgs_evals": self._lbfgs_evals,
            "lbfgs_finished": self._lbfgs_finished,
            "step_size": self.train_solver.step_size,
            "optimizer": None if opt is None else copy.deepcopy(_cpu(opt.state_dict())),
            # numpy's generator state holds 128-bit integers: as JSON text it is a plain string.
            "data_rng": json.dumps(self._data_rng.bit_generator.state),
            "noise": self._noise.get_state().clone(),
            "perm": None if self._perm is None else torch.from_numpy(np.array(self._perm, dtype=np.int64)),
            "perm_pos": self._perm_pos,
            "notes": list(self.notes),
        }

    def load_training_state(self, state: Mapping[str, Any]) -> None:
        """Take up a run where :meth:`training_state` left it (call before :meth:`run`). The weights are the
        model's own (``init_state``); ``state`` must come from a trainer of the same network."""
        self._iteration = int(state["iteration"])
        self._adam_done = int(state["adam_done"])
        if int(state["adam_iters"]) != self.config.adam_iters:
            self.config = self.config.replace(adam_iters=max(int(state["adam_iters"]), self._adam_done))
        self._nfe = [int(n) for n in state["nfe"]]
        self._train_seconds = float(state["train_seconds"])
        self._lbfgs_evals = int(state["lbfgs_evals"])
        self._lbfgs_finished = bool(state["lbfgs_finished"])
        if state["step_size"] is not None:
            self.train_solver = replace(self.train_solver, step_size=float(state["step_size"]))
        if state["optimizer"] is not None:
            self._adam_opt = _adam(list(self.model.parameters()), self.config.lr)
            self._adam_opt.load_state_dict(state["optimizer"])
        self._data_rng.bit_generator.state = json.loads(state["data_rng"])
        self._noise.set_state(state["noise"])
        self._perm = None if state["perm"] is None else state["perm"].numpy().copy()
        self._perm_pos = int(state["perm_pos"])
        self.notes[:] = list(state["notes"])

    @property
    def adam_finished(self) -> bool:
        """Every Adam iteration of the config is done."""
        return self._adam_done >= self.config.adam_iters

    @property
    def out_of_time(self) -> bool:
        """The time budget is spent."""
        return self._out_of_time()

    def pause(self) -> None:
        self._resume.clear()

    def resume(self) -> None:
        self._resume.set()

    def step(self) -> None:
        """While paused, allow exactly one more iteration."""
        self._steps.release()

    @property
    def paused(self) -> bool:
        return not self._resume.is_set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _gate(self) -> None:
        """Block while paused (unless a single step was granted); raise _Stop when asked to stop."""
        if self._stop.is_set():
            raise _Stop
        if self._resume.is_set():
            return
        self._pause_clock()
        with self._away():
            if self.on_pause is not None:
                self.on_pause()
            while not self._resume.is_set() and not self._stop.is_set():
                if self._steps.acquire(timeout=0.05):
                    break
        self._start_clock()
        if self._stop.is_set():
            raise _Stop

    def _away(self) -> contextlib.AbstractContextManager[Any]:
        """While inside, this run's stack (if any) does not wait for it: it is paused, evaluating or plotting."""
        group = self.stack_group
        return group.away(self) if group is not None else contextlib.nullcontext()

    # ------------------------------------------------------------------ clock
    def _start_clock(self) -> None:
        self._clock_start = time.perf_counter()

    def _pause_clock(self) -> None:
        self._train_seconds += time.perf_counter() - self._clock_start
        self._clock_start = time.perf_counter()

    def _elapsed(self) -> float:
        return self._train_seconds + (time.perf_counter() - self._clock_start)

    def _out_of_time(self) -> bool:
        return self.config.max_seconds is not None and self._elapsed() >= self.config.max_seconds

    # ------------------------------------------------------------------ data
    def _to_tensor(self, x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x, dtype=np.float32), device=self.device)

    def _batch(self) -> torch.Tensor:
        cfg = self.config
        if self.train_data is None:
            n = cfg.batch_size or 256
            return self._to_tensor(self.target.sample(n, seed=int(self._data_rng.integers(2**31))))
        n_train = len(self.train_data)
        if cfg.batch_size is None or cfg.batch_size >= n_train:
            return self._full_train
        if self._perm is None or self._perm_pos + cfg.batch_size > n_train:
            self._perm = self._data_rng.permutation(n_train)
            self._perm_pos = 0
        idx = self._perm[self._perm_pos : self._perm_pos + cfg.batch_size]
        self._perm_pos += cfg.batch_size
        return self._full_train[torch.as_tensor(idx, device=self.device)]

    # ------------------------------------------------------------------ loss
    def _loss(self, x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        cfg = self.config
        if self._coupling is not None:
            loss = flow_matching_loss(
                self.model.net,
                x,
                self.model.tspan,
                coupling=self._coupling,
                generator=generator,
                should_stop=self._stop.is_set,  # the OT pairing hears Stop between its chunks
            )
            return loss, {"nll": math.nan, "kinetic": None, "jacobian": None}
        logpx, kinetic, jac = self.model(x, regularize=cfg.regularized, solver=self.train_solver, generator=generator)
        return self._loss_terms(logpx, kinetic, jac)

    def _loss_terms(
        self, logpx: torch.Tensor, kinetic: torch.Tensor | None, jac: torch.Tensor | None
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """The training loss from the solve's outputs (each (N,)); a stacked solve calls it per member."""
        cfg = self.config
        nll = -logpx.mean()
        loss = nll
        parts: dict[str, Any] = {"nll": float(nll.detach()), "kinetic": None, "jacobian": None}
        if kinetic is not None and jac is not None:
            loss = loss + cfg.lambda_kinetic * kinetic.mean() + cfg.lambda_jacobian * jac.mean()
            parts["kinetic"] = float(kinetic.detach().mean())
            parts["jacobian"] = float(jac.detach().mean())
        return loss, parts

    # The members a stack (cnfviz.runtime.stack) calls in place of a solo iteration's own steps: each
    # stacked member draws, checks, records and keeps its last good weights exactly as it does alone.
    @property
    def noise_generator(self) -> torch.Generator:
        """The generator of this run's training randomness (Hutchinson probes, flow-matching draws)."""
        return self._noise

    def loss_terms(
        self, logpx: torch.Tensor, kinetic: torch.Tensor | None, jac: torch.Tensor | None
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """The training loss and its parts from a solve's outputs, each (N,), as this run weighs them."""
        return self._loss_terms(logpx, kinetic, jac)

    def check_loss(self, loss: float) -> None:
        """Raise ``FloatingPointError`` when ``loss`` is not finite (the run then fails with its last good model)."""
        self._check_loss(loss)

    def remember_good(self) -> None:
        """Keep the current weights as the last good ones (the loss they gave was finite)."""
        self._remember_good()

    def _remember_good(self) -> None:
        # Every iteration keeps a copy, so it is a copy into buffers kept from the first call, not a new state_dict.
        live = self._live_state
        if self._good_state is None or live is None:
            self._live_state = live = {k: v.detach() for k, v in self.model.state_dict(keep_vars=True).items()}
            self._good_state = {k: v.clone() for k, v in live.items()}
            return
        with torch.no_grad():
            torch._foreach_copy_(list(self._good_state.values()), list(live.values()))

    def _restore_good(self) -> str:
        """Put the last good weights back after a failure; the words that end the failure's reason."""
        if self._good_state is not None:
            self.model.load_state_dict(self._good_state)
            return " - kept the last good model"
        if self._from_weights:
            return " - kept the weights it started from"
        return " - before any iteration gave a finite loss, so there is no trained model to keep"

    @property
    def has_good_model(self) -> bool:
        """The model holds weights worth showing: some iteration gave a finite loss (after a failure, the last
        such weights are back), or the run started from given weights. False for a run that failed at its
        first iteration from a fresh initialisation: its final pictures and metrics are skipped."""
        return self._good_state is not None or self._from_weights

    def _record(
        self, loss: float, parts: dict[str, Any], lr: float, grad_norm: float, nfe: tuple[int, int], **extra: Any
    ) -> IterationRecord:
        self._iteration += 1
        self._nfe[0] += nfe[0]
        self._nfe[1] += nfe[1]
        rec = IterationRecord(
            iteration=self._iteration,
            stage=self._stage,
            loss=loss,
            nll=parts["nll"],
            kinetic=parts["kinetic"],
            jacobian=parts["jacobian"],
            nfe_forward=self._nfe[0],
            nfe_backward=self._nfe[1],
            nfe_iter=nfe[0],
            elapsed=self._elapsed(),
            lr=lr,
            grad_norm=grad_norm,
            **extra,
        )
        self._last = rec
        if self.keep_history:
            with self._lock:
                self.history.append(rec)
        if self.callback is not None:
            self.callback(rec)
        return rec

    # ------------------------------------------------------------------ evaluation during training
    def _periodic_eval(self) -> tuple[float | None, str | None]:
        """Test NLL with an accurate solver; for fixed-grid training, also guard the discretisation."""
        self._pause_clock()
        t = time.perf_counter()
        note = None
        try:
            x = self._to_tensor(self.test_data[:_EVAL_POINTS])
            with torch.no_grad():
                nll = float(-self.model.log_prob(x, solver=EVAL_SOLVER, trace="exact").mean())
                if self.train_solver.is_fixed_grid:
                    nll_fixed = float(-self.model.log_prob(x, solver=self.train_solver, trace="exact").mean())
                    gap = abs(nll_fixed - nll)
                    if gap > SOLVER_GAP_TOLERANCE:
                        step = self.train_solver.step_size or abs(self.model.tspan[1] - self.model.tspan[0])
                        self.train_solver = replace(self.train_solver, step_size=step / 2)
                        note = (
                            f"The coarse solver ({self.train_solver.method}) was too optimistic here: its test NLL "
                            f"was {gap:.3f} nats off the accurate dopri5's; now finer (step size halved to "
                            f"{step / 2:g})"
                        )
                        self.notes.append(note)
        except SolverError:
            nll = None
        finally:
            self._eval_seconds += time.perf_counter() - t
            self._start_clock()
        return (nll if nll is not None and math.isfinite(nll) else None), note

    def _progress(self, it: int) -> float:
        """How far the Adam stage is, in [0, 1]: by iterations, or by the time budget if that ends it sooner."""
        cfg = self.config
        frac = it / (cfg.adam_iters - 1) if cfg.adam_iters > 1 else 1.0
        if cfg.max_seconds is not None:
            frac = max(frac, self._elapsed() / cfg.max_seconds)
        return min(frac, 1.0)

    # ------------------------------------------------------------------ stages
    def _adam(self) -> None:
        if self._adam_opt is None:
            self._adam_opt = _adam(list(self.model.parameters()), self.config.lr)
        self._stage = "adam"
        while self._adam_done < self.config.adam_iters:
            # Joining, switching or leaving a stack happens here, between iterations: the shape can
            # change (the solver guard halves the step), and a paused or stopped run leaves.
            group = self.stack_group = self.stacker.group_for(self) if self.stacker is not None else None
            lr, x = self._adam_begin()
            if group is None:
                loss, parts, nfe = self._forward_backward(x)
            else:
                loss, parts, nfe = group.submit(self, x)
            self._adam_end(loss, parts, lr, nfe)
        self._leave_stack()

    def _leave_stack(self) -> None:
        if self.stacker is not None:
            self.stacker.leave(self)
        self.stack_group = None

    # The Adam iteration in three parts. A stacked iteration (cnfviz.runtime.stack) shares the first and the
    # last with a solo one and replaces only the forward and backward pass, so every member keeps
    # its own data, schedule, optimizer, checks and records exactly as it would alone.
    def _adam_begin(self) -> tuple[float, torch.Tensor]:
        """Wait at the gate, check the time budget, set this iteration's learning rate; returns ``(lr, batch)``."""
        cfg = self.config
        opt = self._adam_opt
        assert opt is not None
        self._gate()
        if self._out_of_time():
            raise _Stop("time budget reached")
        lr = cfg.lr  # read at each iteration: the learning rate and the λ weights may change live
        if cfg.lr_decay:
            lr = cfg.lr * _cosine(self._progress(self._adam_done), cfg.lr_min_factor)
        for group in opt.param_groups:
            group["lr"] = lr
        x = self._batch()
        opt.zero_grad(set_to_none=True)
        return lr, x

    def _forward_backward(self, x: torch.Tensor) -> tuple[float, dict[str, Any], tuple[int, int]]:
        """Solve, check the loss, remember the parameters, backpropagate; returns ``(loss, parts, nfe)``."""
        f0, b0 = self.model.nfe_forward, self.model.nfe_backward
        loss, parts = self._loss(x, self._noise)
        self._check_loss(float(loss.detach()))
        self._remember_good()
        loss.backward()
        if self._coupling is not None:
            return float(loss.detach()), parts, (1, 0)  # one evaluation of the field, no solve
        return float(loss.detach()), parts, (self.model.nfe_forward - f0, self.model.nfe_backward - b0)

    def _check_loss(self, loss: float) -> None:
        if not math.isfinite(loss):
            raise FloatingPointError(f"the loss became {loss} at iteration {self._iteration + 1}")

    def _adam_end(self, loss: float, parts: dict[str, Any], lr: float, nfe: tuple[int, int]) -> None:
        """Clip, check and apply the gradient, evaluate when due, and record the iteration."""
        cfg = self.config
        opt = self._adam_opt
        assert opt is not None
        it = self._adam_done
        grad_norm = _grad_norm(self._params, cfg.grad_clip)
        if not math.isfinite(grad_norm):
            raise FloatingPointError(f"the gradient became {grad_norm} at iteration {self._iteration + 1}")
        opt.step()
        test, note = (None, None)
        if cfg.eval_every and ((it + 1) % cfg.eval_every == 0 or it + 1 == cfg.adam_iters):
            with self._away():
                test, note = self._periodic_eval()
        self._record(loss, parts, lr, grad_norm, nfe, test_nll=test, note=note)
        self._adam_done += 1

    def _lbfgs(self) -> None:
        cfg = self.config
        self._stage = "lbfgs"
        if self.train_data is not None:
            x = self._full_train
        else:
            x = self._to_tensor(self.target.sample(max(cfg.batch_size or 0, 1000), seed=cfg.seed + 3_000_017))
        # The closure must be deterministic for the line search: the same probe noise every call.
        noise_seed = cfg.seed + 4_000_037
        max_eval = lbfgs_max_evaluations(cfg.lbfgs_iters) - self._lbfgs_evals
        if self._lbfgs_finished or max_eval < 1:
            return
        opt = torch.optim.LBFGS(
            self.model.parameters(),
            lr=1.0,
            max_iter=cfg.lbfgs_iters,
            max_eval=max_eval,
            tolerance_grad=1e-9,
            tolerance_change=1e-12,
            history_size=20,
            line_search_fn="strong_wolfe",
        )
        best = {"loss": math.inf, "state": None}

        def closure() -> torch.Tensor:
            self._gate()
            if self._out_of_time():
                raise _Stop("time budget reached")
            opt.zero_grad(set_to_none=True)
            f0, b0 = self.model.nfe_forward, self.model.nfe_backward
            loss, parts = self._loss(x, torch.Generator().manual_seed(noise_seed))
            if not torch.isfinite(loss):
                raise FloatingPointError(f"the loss became {float(loss.detach())} during LBFGS")
            if float(loss.detach()) < best["loss"]:
                best["loss"] = float(loss.detach())
                best["state"] = copy.deepcopy(self.model.state_dict())
                self._remember_good()
            loss.backward()
            grad_norm = math.sqrt(
                sum(float(p.grad.pow(2).sum()) for p in self.model.parameters() if p.grad is not None)
            )
            nfe = (self.model.nfe_forward - f0, self.model.nfe_backward - b0)
            self._lbfgs_evals += 1
            self._record(float(loss.detach()), parts, 1.0, grad_norm, nfe)
            return loss

        try:
            opt.step(closure)
            self._lbfgs_finished = True
        finally:
            # Like Optim.jl's allow_f_increases=false: keep the best point the line searches visited.
            if best["state"] is not None:
                self.model.load_state_dict(best["state"])

    # ------------------------------------------------------------------ run
    def run(self, *, final_metrics: bool = True) -> TrainResult:
        """Train to the end (or until stopped, out of time, or failed) and return the result.

        Never raises for training failures: a NaN or a solver failure ends the run with
        ``status="failed"`` and the last good parameters restored.
        """
        cfg = self.config
        self.model.train()
        self.model.reset_nfe()
        self._full_train = self._to_tensor(self.train_data) if self.train_data is not None else None
        status, reason = "done", "finished all iterations"
        # A stop request also ends a solve in progress, at its next evaluation of the dynamics.
        self.model.interrupt = self._stop.is_set
        self._start_clock()
        try:
            if cfg.adam_iters:
                self._adam()
            if cfg.lbfgs_iters and not self._out_of_time():
                self._lbfgs()
            elif cfg.lbfgs_iters:
                reason = "time budget reached"
        except _Stop as stop:
            if stop.args:
                reason = str(stop.args[0])
            else:
                status, reason = "stopped", "stopped by the user"
        except SolverInterrupted:
            # The solve raised before the optimizer's step (LBFGS also restores its best point), so
            # the model is the one the last completed iteration left.
            status, reason = "stopped", "stopped by the user"
        except (FloatingPointError, SolverError) as err:
            status, reason = "failed", str(err) + self._restore_good()
        except Exception as err:
            status, reason = "failed", f"{type(err).__name__}: {err}{self._restore_good()}"
        finally:
            self._leave_stack()
            self.model.interrupt = None
        self._pause_clock()
        self.model.eval()
        result = TrainResult(
            status=status,
            reason=reason,
            iterations=self._iteration,
            train_seconds=self._train_seconds,
            eval_seconds=self._eval_seconds,
            history=list(self.history),
            last=self._last,
        )
        if final_metrics and (status != "failed" or self.has_good_model):
            result.metrics = self.evaluate()  # (a run that failed before any good iteration has no model to measure)
        return result

    def evaluate(
        self,
        resolution: int | None = None,
        *,
        max_seconds: float | str | None = "budget",
        on_metric: Callable[[Metrics], None] | None = None,
    ) -> Metrics | None:
        """Final metrics of the current model, cheapest first, or None when the model cannot be evaluated.

        Arguments:
            resolution: the grid's points per axis (default: :func:`~cnfviz.training.metrics.grid_metrics`'s).
            max_seconds: wall seconds the metrics may take; the figures not reached by then are NaN (named in
                ``Metrics.cut``). ``"budget"`` (the default): :meth:`final_eval_seconds`, so that a run's time
                budget bounds its final evaluation too. None: no bound.
            on_metric: called with the figures so far after each one (see :func:`~cnfviz.training.metrics.evaluate`).
        """
        seconds = self.final_eval_seconds() if max_seconds == "budget" else max_seconds
        assert seconds is None or isinstance(seconds, (int, float))
        try:
            return evaluate(
                self.model,
                self.target,
                self.tv_points,
                self.test_data,
                resolution=resolution,
                max_seconds=seconds,
                on_metric=on_metric,
            )
        except SolverError:
            return None

    def final_eval_seconds(self) -> float | None:
        """The wall seconds a run's final metrics may take: with a time budget, :data:`FINAL_EVAL_SHARE` of it
        (at least :data:`FINAL_EVAL_MIN_SECONDS`), so a ``--max-seconds 60`` run ends in about 66 s; without
        one, no bound (None)."""
        budget = self.config.max_seconds
        return None if budget is None else max(FINAL_EVAL_MIN_SECONDS, FINAL_EVAL_SHARE * budget)


def train(
    config: TrainConfig, *, target: Target | None = None, final_metrics: bool = True, **kwargs: Any
) -> tuple[FFJORD, TrainResult]:
    """Build a :class:`Trainer`, run it, and return ``(model, result)``.

    ``final_metrics=False`` skips the end-of-run evaluation (a fine grid at a tight tolerance),
    which can cost as much as a short training run.

    Example:
        >>> model, result = train(TrainConfig(target="normal", adam_iters=2, eval_every=0))
        >>> result.status
        'done'
    """
    trainer = Trainer(config, target=target, **kwargs)
    return trainer.model, trainer.run(final_metrics=final_metrics)
