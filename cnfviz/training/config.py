"""Typed, validated, frozen configuration: the model, and a whole training run.

The CLI, the app's sidebar and the tests all build these same objects. Every field is checked
when the object is built, and a bad value raises :class:`~cnfviz.ConfigError` naming the field and
the allowed values.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .._validation import ConfigError, check_bool, check_choice, check_int_range, check_keys, check_range
from ..flow.config import ModelConfig
from ..flow.solver import SolverConfig
from .fields import DEVICES, config_fields
from .objectives import OBJECTIVES, check_objective

__all__ = ["DEVICES", "TrainConfig"]


# The bounds of the numbers are declared once, in the field table (cnfviz/training/fields.py).
_INTS = tuple(f for f in config_fields(kinds=("int",)) if f.section is None)
_FLOATS = tuple(f for f in config_fields(kinds=("float",)) if f.section is None)


@dataclass(frozen=True)
class TrainConfig:
    """A complete, reproducible training run.

    Arguments:
        target: target name from :data:`~cnfviz.targets.TARGETS`, ``scipy:<name>``, or ``samples`` /
            ``image`` for custom data passed to the trainer.
        target_params: the target's parameters, e.g. ``{"loc": 6.0, "scale": 0.7}``.
        model: the :class:`ModelConfig`.
        solver: the training :class:`~cnfviz.flow.solver.SolverConfig`.
        adam_iters: iterations of the Adam stage (≥ 0).
        lr: Adam learning rate.
        lr_decay: cosine-decay the Adam learning rate to ``lr_min_factor * lr`` over the Adam stage,
            measured in iterations or, when ``max_seconds`` ends the run sooner, in time.
        lbfgs_iters: iterations of the LBFGS stage that follows Adam (0 to skip).
        batch_size: minibatch size; ``None`` trains full-batch on the ``n_train`` points.
        n_train: size of a fixed training set; ``None`` draws fresh samples every iteration
            (only for targets that can sample).
        n_test: fresh samples for the test NLL.
        lambda_kinetic: weight of λ₁ = ∫‖f‖² dt in the loss.
        lambda_jacobian: weight of λ₂ = ∫‖∂f/∂z‖²_F dt in the loss.
        seed: seeds the data, the weights and the noise.
        device: ``auto`` (CUDA, then MPS, then CPU), ``cpu``, ``cuda`` or ``mps``.
        max_seconds: wall-clock budget for training; ``None`` for none.
        eval_every: compute the test NLL (with an accurate adaptive solver) every k Adam iterations;
            0 disables it.
        grad_clip: clip the gradient norm to this value (``None`` to disable).
        objective: how the flow is trained, one of :data:`~cnfviz.training.objectives.OBJECTIVES`:
            ``likelihood`` (FFJORD's maximum likelihood, an ODE solve per iteration), ``flow-matching``
            (regression onto straight noise-to-data velocities, no solve) or ``ot-flow-matching`` (the
            same with noise and data paired by minibatch optimal transport). Flow matching needs a time
            input (``model.time`` not ``none``), no LBFGS stage and no regularizers.

    Example:
        >>> cfg = TrainConfig(target="normal", adam_iters=50)
        >>> cfg.replace(lr=0.01).lr
        0.01
    """

    target: str = "normal"
    target_params: dict[str, Any] = field(default_factory=dict)
    model: ModelConfig = field(default_factory=ModelConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    adam_iters: int = 500
    lr: float = 1e-3
    lr_decay: bool = False
    lr_min_factor: float = 0.05
    lbfgs_iters: int = 0
    batch_size: int | None = 256
    n_train: int | None = None
    n_test: int = 2000
    lambda_kinetic: float = 0.0
    lambda_jacobian: float = 0.0
    seed: int = 0
    device: str = "auto"
    max_seconds: float | None = None
    eval_every: int = 50
    grad_clip: float | None = None
    objective: str = "likelihood"

    def __post_init__(self) -> None:
        if not isinstance(self.target, str) or not self.target:
            raise ConfigError(f"target must be a target name (got {self.target!r})", field="target")
        if not isinstance(self.target_params, dict):
            raise ConfigError(
                f"target_params must be a mapping of parameter names to values (got {self.target_params!r})",
                field="target_params",
            )
        object.__setattr__(self, "target_params", dict(self.target_params))
        if isinstance(self.model, dict):
            object.__setattr__(self, "model", ModelConfig.from_dict(self.model))
        if isinstance(self.solver, dict):
            check_keys(self.solver, SolverConfig, "solver")
            object.__setattr__(self, "solver", SolverConfig(**self.solver))
        if not isinstance(self.model, ModelConfig):
            raise ConfigError(f"model must be a ModelConfig (got {type(self.model).__name__})", field="model")
        if not isinstance(self.solver, SolverConfig):
            raise ConfigError(f"solver must be a SolverConfig (got {type(self.solver).__name__})", field="solver")
        for f in _INTS:
            if not (f.optional and getattr(self, f.name) is None):
                object.__setattr__(self, f.name, check_int_range(getattr(self, f.name), f.name, lo=f.lo, hi=f.hi))
        if self.adam_iters + self.lbfgs_iters == 0:
            raise ConfigError(
                "adam_iters + lbfgs_iters must be at least 1 (got 0 for both)",
                field="adam_iters, lbfgs_iters",
                allowed="at least 1 in all",
            )
        if self.batch_size is not None and self.n_train is not None and self.batch_size > self.n_train:
            raise ConfigError(
                f"batch_size ({self.batch_size:,}) cannot exceed n_train ({self.n_train:,}): "
                f"use at most {self.n_train:,}, or no batch size to train on all of them at once",
                field="batch_size",
                allowed=f"[1, {self.n_train}] or none",
            )
        for f in _FLOATS:
            if not (f.optional and getattr(self, f.name) is None):
                value = check_range(getattr(self, f.name), f.name, lo=f.lo, hi=f.hi, lo_open=f.lo_open)
                object.__setattr__(self, f.name, value)
        check_choice(self.device, DEVICES, "device")
        for name in ("lr_decay",):
            object.__setattr__(self, name, check_bool(getattr(self, name), name))
        check_choice(self.objective, OBJECTIVES, "objective")
        check_objective(self)

    @property
    def regularized(self) -> bool:
        return self.lambda_kinetic > 0 or self.lambda_jacobian > 0

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (validated again). ``model`` and ``solver`` accept dicts of changes."""
        for key in ("model", "solver"):
            if isinstance(changes.get(key), dict):
                changes[key] = replace(getattr(self, key), **changes[key])
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict; :meth:`from_dict` inverts it exactly."""
        d = asdict(self)
        d["model"]["hidden"] = list(self.model.hidden)
        d["model"]["tspan"] = list(self.model.tspan)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        if not isinstance(d, dict):
            raise ConfigError(f"a TrainConfig must be built from a mapping (got {type(d).__name__})", field="config")
        check_keys(d, cls, "config")
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"config JSON is not valid JSON: {err}", field="config") from None
        except ValueError as err:  # an integer of thousands of digits: Python refuses to parse it
            raise ConfigError(f"config JSON is not usable: {str(err).split(';')[0]}", field="config") from None
        except RecursionError:
            raise ConfigError("config JSON is not usable: it is nested too deeply", field="config") from None
        return cls.from_dict(d)
