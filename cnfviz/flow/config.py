"""The flow's configuration: the dynamics network, the time span and the divergence estimator.

Typed, validated and frozen: a bad value raises :class:`~cnfviz.ConfigError` naming the field and
the allowed values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._validation import ConfigError, check_bool, check_choice, check_int_range, check_keys, check_range, lookup
from .divergence import TRACE_ESTIMATORS
from .dynamics import ACTIVATIONS, TIME_CONDITIONING

__all__ = ["TIME_BOUNDS", "WIDTHS", "ModelConfig"]

WIDTHS: tuple[int, int] = (1, 1024)
"""The fewest and most units of a hidden layer."""
TIME_BOUNDS: tuple[float, float] = (-1000, 1000)
"""Where t0 and t1 may lie."""


@dataclass(frozen=True)
class ModelConfig:
    """The FFJORD model: dynamics network, time span and divergence estimator.

    Arguments:
        hidden: hidden layer widths of the dynamics MLP, e.g. ``(64, 64, 64)``; ``()`` makes the
            field affine, f(t, z) = W z + b (linear flows have an analytic log-determinant).
        activation: one of ``tanh``, ``softplus``, ``elu``, ``silu``.
        time: time conditioning, one of ``none``, ``concat``, ``concatsquash``.
        final_activation: apply the activation to the output layer too (the seed tutorial does).
        linear: add a learnable linear term a + B z to the field, fitted to the data's mean and
            covariance before training, so the MLP only learns the shape beyond a Gaussian.
        tspan: ``(t0, t1)``; base samples live at t0 and data at t1. ``t0 != t1``.
        trace: divergence estimator, one of :data:`~cnfviz.flow.divergence.TRACE_ESTIMATORS`.

    Example:
        >>> ModelConfig(hidden=(3,), time="none", final_activation=True, tspan=(0.0, 10.0)).tspan
        (0.0, 10.0)
    """

    hidden: tuple[int, ...] = (64, 64, 64)
    activation: str = "tanh"
    time: str = "concatsquash"
    final_activation: bool = False
    linear: bool = False
    tspan: tuple[float, float] = (0.0, 1.0)
    trace: str = "exact"

    def __post_init__(self) -> None:
        hidden = self.hidden
        if isinstance(hidden, int) or not isinstance(hidden, (tuple, list)):
            raise ConfigError(
                f"model.hidden must be a list of layer widths, e.g. [64, 64] (got {hidden!r})",
                field="model.hidden",
                allowed=f"a list of up to 8 widths in [{WIDTHS[0]}, {WIDTHS[1]}]",
            )
        if len(hidden) > 8:
            raise ConfigError(
                f"model.hidden must have at most 8 layers (got {len(hidden)})",
                field="model.hidden",
                allowed="0 to 8 layers",
            )
        object.__setattr__(
            self,
            "hidden",
            tuple(check_int_range(w, f"model.hidden[{i}]", lo=WIDTHS[0], hi=WIDTHS[1]) for i, w in enumerate(hidden)),
        )
        lookup(ACTIVATIONS, self.activation, "activation", field="model.activation")
        check_choice(self.time, TIME_CONDITIONING, "model.time")
        for name in ("final_activation", "linear"):
            object.__setattr__(self, name, check_bool(getattr(self, name), f"model.{name}"))
        if not isinstance(self.tspan, (tuple, list)) or len(self.tspan) != 2:
            raise ConfigError(
                f"model.tspan must be a pair (t0, t1) (got {self.tspan!r})", field="model.tspan", allowed="(t0, t1)"
            )
        t0 = check_range(self.tspan[0], "model.tspan[0]", lo=TIME_BOUNDS[0], hi=TIME_BOUNDS[1])
        t1 = check_range(self.tspan[1], "model.tspan[1]", lo=TIME_BOUNDS[0], hi=TIME_BOUNDS[1])
        if t0 == t1:
            raise ConfigError(
                f"model.tspan must have t0 != t1 (got ({t0}, {t1}))", field="model.tspan", allowed="t0 != t1"
            )
        object.__setattr__(self, "tspan", (t0, t1))
        lookup(TRACE_ESTIMATORS, self.trace, "trace estimator", field="model.trace")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        check_keys(d, cls, "model")
        d = dict(d)
        if "hidden" in d and isinstance(d["hidden"], list):
            d["hidden"] = tuple(d["hidden"])
        if "tspan" in d and isinstance(d["tspan"], list):
            d["tspan"] = tuple(d["tspan"])
        return cls(**d)
