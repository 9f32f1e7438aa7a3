"""The one declaration of every TrainConfig setting, from which the CLI, links, sidebar and Compare derive theirs.

Each :class:`Field` names a setting by its dotted path into :class:`~cnfviz.TrainConfig` (``"lr"``,
``"model.hidden"``, ``"solver.max_nfe"``) and says, once, how every channel shows it: its kind, bounds or
choices, label and help, the ``cnfviz train`` flag, the link key, the word a link or flag uses for "none"
and whether Compare can vary it. The default is read from the dataclass, never repeated here.

Adding a setting is one entry in :data:`FIELDS` (plus its use in the engine): ``tests/training/test_fields.py``
fails until every dataclass field has an entry and every entry survives every channel.

Example:
    >>> FIELDS["batch_size"].flag, FIELDS["batch_size"].key, FIELDS["batch_size"].parse("full")
    ('--batch', 'batch', None)
    >>> FIELDS["model.hidden"].format((64, 64)), FIELDS["model.hidden"].default
    ('64,64', (64, 64, 64))
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._validation import ConfigError
from ..flow.config import TIME_BOUNDS, WIDTHS
from ..flow.divergence import TRACE_ESTIMATORS
from ..flow.dynamics import ACTIVATIONS, TIME_CONDITIONING
from ..flow.solver import SOLVERS
from .device import DEVICES
from .objectives import OBJECTIVES

if TYPE_CHECKING:
    from .config import TrainConfig

__all__ = ["DEVICES", "FIELDS", "KINDS", "NONE", "PLAIN_KINDS", "Field", "config_fields", "field_at", "number_text"]


KINDS: tuple[str, ...] = ("int", "float", "bool", "choice", "widths", "span", "text", "params")
"""``widths``: a tuple of ints (``model.hidden``); ``span``: a pair of floats (``model.tspan``); ``text`` and
``params``: the target and its parameters, which every channel handles by hand (a picker, ``p.<name>``)."""

PLAIN_KINDS: tuple[str, ...] = KINDS[:-2]
"""The kinds every channel derives from the table alone (all but the target and its parameters)."""


class _NoneWord:
    def __repr__(self) -> str:
        return "NONE"


NONE = _NoneWord()
"""What a flag's type returns for the field's :attr:`Field.none` word: "set to None", unlike argparse's
own ``None`` for "not given"."""


def number_text(v: Any) -> str:
    """Shortest text that parses back to exactly the same number.

    Example:
        >>> number_text(1e-05), number_text(2.0), number_text(True)
        ('1e-05', '2', '1')
    """
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, int):
        return str(v)
    text = repr(float(v))
    return text[:-2] if text.endswith(".0") else text


@dataclass(frozen=True)
class Field:
    """One setting of a :class:`~cnfviz.TrainConfig`, as every channel sees it.

    Arguments:
        path: the dotted path into the config, ``"lr"`` or ``"model.hidden"``.
        kind: one of :data:`KINDS`.
        label: how the sidebar and messages name it, e.g. ``"Learning rate"``.
        help: one line for the sidebar's tooltip and ``--help``.
        flag: the ``cnfviz train`` flag, e.g. ``"--adam-iters"``; a bool also gets ``--no-...``.
        key: the link's query key, e.g. ``"adam"`` (today's keys: old links keep opening).
        lo, hi: the bounds the config checks (``None``: unbounded on that side).
        lo_open: ``lo`` itself is refused (a learning rate must be > 0).
        choices: the allowed values of a ``choice`` field.
        none: the word for ``None`` in a link or a flag (``full``, ``fresh``, ``none``), for an optional
            value; ``None`` when the field cannot be none.
        zero_none: ``0`` on the command line means none too (``--batch 0``, as before the table).
        compare: the name of the Compare knob that varies this field (``None``: not a knob).
        compare_label: how Compare labels it (default: the knob's name).
        compare_help: Compare's one-line description of the knob (default: ``help``).
        widget: the sidebar's widget-key suffix (``train_<widget>``) when one widget shows the field alone;
            ``None`` for fields the sidebar draws with several widgets or not at all.
        advanced: the sidebar draws it in its "Advanced" expander.
        step, fmt: the sidebar number input's step and format.
        ui_lo, ui_hi: the number input's bounds where they differ from ``lo``/``hi`` (an open bound
            cannot be a widget's minimum; an unbounded time budget still needs a top).
        metavar: how ``--help`` names the flag's value.
    """

    path: str
    kind: str
    label: str
    help: str
    flag: str
    key: str
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    choices: tuple[str, ...] = ()
    none: str | None = None
    zero_none: bool = False
    compare: str | None = None
    compare_label: str | None = None
    compare_help: str | None = None
    widget: str | None = None
    advanced: bool = False
    step: float | None = None
    fmt: str | None = None
    ui_lo: float | None = None
    ui_hi: float | None = None
    metavar: str | None = None

    @functools.cached_property
    def name(self) -> str:
        """The attribute name, the path's last part (``hidden`` for ``model.hidden``)."""
        return self.path.rpartition(".")[2]

    @functools.cached_property
    def section(self) -> str | None:
        """``"model"`` or ``"solver"`` for a nested field, else ``None``."""
        head, dot, _ = self.path.partition(".")
        return head if dot else None

    @property
    def dest(self) -> str:
        """The ``argparse`` attribute of :attr:`flag`: ``--adam-iters`` is ``args.adam_iters``."""
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def default(self) -> Any:
        """The dataclass default (a fresh ``TrainConfig()``'s value): declared once, in the dataclass."""
        from .config import TrainConfig  # the config imports this table, so not at import time

        return self.get(TrainConfig())

    @property
    def optional(self) -> bool:
        return self.none is not None

    @property
    def numeric(self) -> bool:
        return self.kind in ("int", "float")

    def get(self, config: TrainConfig) -> Any:
        """This field's value in ``config``."""
        obj: Any = config
        for part in self.path.split("."):
            obj = getattr(obj, part)
        return obj

    def change(self, value: Any) -> dict[str, Any]:
        """The :meth:`TrainConfig.replace` keywords that set this field to ``value``."""
        return {self.section: {self.name: value}} if self.section else {self.name: value}

    def allowed(self) -> str:
        """What the config accepts, as text: ``"[0, 1000000]"``, ``"(0, 10]"``, ``"one of [...]"``."""
        if self.kind == "choice":
            return f"one of {list(self.choices)}"
        if self.kind == "bool":
            return "0 or 1"
        if self.numeric:
            left = "(" if self.lo_open or self.lo is None else "["
            right = ")" if self.hi is None else "]"
            lo = "-inf" if self.lo is None else number_text(self.lo)
            hi = "inf" if self.hi is None else number_text(self.hi)
            return f"{left}{lo}, {hi}{right}" + (f" or {self.none}" if self.none else "")
        return ""

    # ------------------------------------------------------------------ link text

    def parse(self, text: str) -> Any:
        """A link's (or a typed) value as this field's type, unchecked against the bounds (the config
        checks those); raises :class:`ConfigError` naming the field and saying what is expected."""
        if self.none is not None and text == self.none:
            return None
        try:
            if self.kind == "int":
                return int(text)
            if self.kind == "float":
                return float(text)
            if self.kind == "bool":
                word = text.lower()
                if word in ("1", "true", "yes", "on"):
                    return True
                if word in ("0", "false", "no", "off"):
                    return False
                raise self._bad(f"expected 0 or 1, got {text!r}")
            if self.kind == "widths":  # nothing at all: no hidden layer, an affine field
                return tuple(int(v) for v in text.split(",")) if text.strip() else ()
            if self.kind == "span":
                return tuple(float(v) for v in text.split(","))
        except ValueError as err:
            if isinstance(err, ConfigError):
                raise
            raise self._bad(self._expected()) from None
        return text

    def _expected(self) -> str:
        if self.kind == "widths":
            return "expected whole numbers separated by commas, such as 64,64"
        if self.kind == "span":
            return "expected two numbers t0,t1 such as 0,1"
        if self.none is not None:
            what = "a whole number such as 256" if self.kind == "int" else "a number such as 30"
            return f"expected {what}, or {self.none}"
        return "expected a whole number such as 500" if self.kind == "int" else "expected a number such as 0.01 or 1e-5"

    def _bad(self, message: str) -> ConfigError:
        return ConfigError(message, field=self.path, allowed=self.allowed() or None)

    def format(self, value: Any) -> str:
        """``value`` as link text that :meth:`parse` turns back into exactly ``value``."""
        if value is None:
            return self.none or "none"
        if self.kind == "bool":
            return str(int(value))
        if self.kind == "widths":
            return ",".join(map(str, value))
        if self.kind == "span":
            return f"{number_text(value[0])},{number_text(value[1])}"
        if self.numeric:
            return number_text(value)
        return str(value)

    # ------------------------------------------------------------------ command line

    def cli_type(self) -> Callable[[str], Any] | None:
        """The ``argparse`` ``type=`` of :attr:`flag`. Plain numbers keep ``int``/``float``, so a bad value
        reads "invalid int value" as before; an optional one also takes its :attr:`none` word."""
        if self.kind in ("bool", "choice", "text", "params"):
            return None
        if self.kind == "widths":
            return _widths
        if self.kind == "span":
            return float
        base: type = int if self.kind == "int" else float
        if self.none is None:
            return base
        none = self.none

        def parse(text: str) -> Any:
            return NONE if text.strip().lower() == none else base(text)

        parse.__name__ = base.__name__  # argparse names the type in its message: "invalid int value"
        return parse

    def cli_help(self) -> str:
        parts = [self.help]
        if self.none is not None:
            zero = "0 or " if self.zero_none else ""
            parts.append(f"({zero}{self.none} for none)")
        return " ".join(p for p in parts if p)


def _widths(text: str) -> tuple[int, ...]:
    import argparse  # only the command line reads this type

    try:
        return tuple(int(w) for w in text.split(",")) if text.strip() else ()
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected widths like 64,64,64, got {text!r}") from None


_TABLE: tuple[Field, ...] = (
    Field(
        "target",
        "text",
        "Distribution",
        "target name from the registry, or scipy:<name>",
        "--target",
        "target",
    ),
    Field(
        "target_params",
        "params",
        "Target parameters",
        "the target's parameters, one KEY=VALUE each",
        "--param",
        "p.<name>",
    ),
    # ------------------------------------------------------------------ the network
    Field(
        "model.hidden",
        "widths",
        "Hidden layers",
        'hidden layer widths, e.g. 64,64,64 (none at all, "", makes the field affine)',
        "--hidden",
        "hidden",
        lo=WIDTHS[0],
        hi=WIDTHS[1],
        metavar="W[,W...]",
    ),
    Field(
        "model.activation",
        "choice",
        "Activation",
        "activation of the hidden layers",
        "--activation",
        "act",
        choices=tuple(ACTIVATIONS),
        widget="activation",
    ),
    Field(
        "model.time",
        "choice",
        "Time conditioning",
        "how the network sees t: none, concat (an extra input) or concatsquash (FFJORD's gated layers)",
        "--time",
        "time",
        choices=tuple(TIME_CONDITIONING),
        widget="time",
    ),
    Field(
        "model.final_activation",
        "bool",
        "Activation on the output layer too",
        "The seed tutorial's network squashes its output with tanh as well.",
        "--final-activation",
        "final",
        widget="final_activation",
    ),
    Field(
        "model.linear",
        "bool",
        "Linear term a + B z",
        "Adds a learnable affine part to the field, started at the data's mean and spread.",
        "--linear",
        "linear",
        widget="linear",
    ),
    Field(
        "model.tspan",
        "span",
        "Time span",
        "t0 (base) and t1 (data); t0 != t1",
        "--tspan",
        "tspan",
        lo=TIME_BOUNDS[0],
        hi=TIME_BOUNDS[1],
        step=0.1,
        fmt="%.4g",
        metavar="T0 T1",
    ),
    Field(
        "model.trace",
        "choice",
        "Trace estimator",
        "How the divergence (trace of ∂f/∂z) in the log-density ODE is computed.",
        "--trace",
        "trace",
        choices=tuple(TRACE_ESTIMATORS),
        compare="trace",
        compare_help="divergence estimator",
        widget="trace",
    ),
    # ------------------------------------------------------------------ the ODE solver
    Field(
        "solver.method",
        "choice",
        "Solver",
        "Fixed-grid solvers (rk4, euler, ...) take steps of a set size; adaptive ones (dopri5, ...) choose "
        "steps to meet the tolerances.",
        "--solver",
        "solver",
        choices=SOLVERS,
        compare="solver",
        compare_help="ODE method used in training",
        widget="solver",
    ),
    Field(
        "solver.rtol",
        "float",
        "rtol",
        "relative tolerance of adaptive solvers",
        "--rtol",
        "rtol",
        lo=0,
        hi=1,
        lo_open=True,
        widget="rtol",
        step=1e-5,
        fmt="%.1e",
        ui_lo=0.0,
    ),
    Field(
        "solver.atol",
        "float",
        "atol",
        "absolute tolerance of adaptive solvers",
        "--atol",
        "atol",
        lo=0,
        hi=1,
        lo_open=True,
        widget="atol",
        step=1e-5,
        fmt="%.1e",
        ui_lo=0.0,
    ),
    Field(
        "solver.step_size",
        "float",
        "Step size",
        "step size of fixed-grid solvers",
        "--step-size",
        "step",
        lo=0,
        hi=100,
        lo_open=True,
        none="none",
        widget="step_size",
        step=0.025,
        fmt="%.4g",
        ui_lo=0.0,
    ),
    Field(
        "solver.adjoint",
        "bool",
        "Adjoint backpropagation",
        "O(1) memory, more function evaluations.",
        "--adjoint",
        "adjoint",
        widget="adjoint",
    ),
    Field(
        "solver.max_steps",
        "int",
        "Solver step limit",
        "most adaptive steps per solve; a stiff solve that needs more fails instead of grinding on",
        "--max-steps",
        "maxsteps",
        lo=10,
        hi=10**9,
        widget="max_steps",
        advanced=True,
        step=100,
    ),
    Field(
        "solver.max_nfe",
        "int",
        "Evaluation limit (NFE)",
        "most evaluations of the dynamics per solve, its backward pass included (0 in the sidebar: no cap)",
        "--max-nfe",
        "maxnfe",
        lo=10,
        hi=10**9,
        none="none",
        widget="max_nfe",
        advanced=True,
        step=500,
        ui_lo=0,
    ),
    # ------------------------------------------------------------------ training
    Field(
        "adam_iters",
        "int",
        "Adam iterations",
        "iterations of the Adam stage",
        "--adam-iters",
        "adam",
        lo=0,
        hi=1_000_000,
        widget="adam_iters",
        step=100,
    ),
    Field(
        "lr",
        "float",
        "Learning rate",
        "Adam learning rate",
        "--lr",
        "lr",
        lo=0,
        hi=10,
        lo_open=True,
        compare="lr",
        compare_help="Adam learning rate",
        widget="lr",
        step=1e-3,
        fmt="%.4g",
        ui_lo=0.0,
    ),
    Field(
        "lr_decay",
        "bool",
        "Cosine learning-rate decay",
        "Decay the Adam learning rate to lr × the final factor over the Adam stage (or the time budget).",
        "--lr-decay",
        "decay",
        widget="lr_decay",
        advanced=True,
    ),
    Field(
        "lr_min_factor",
        "float",
        "Final learning rate (× lr)",
        "where the cosine decay ends, as a fraction of the learning rate",
        "--lr-min-factor",
        "lrmin",
        lo=0,
        hi=1,
        widget="lr_min_factor",
        advanced=True,
        step=0.01,
        fmt="%.4g",
    ),
    Field(
        "lbfgs_iters",
        "int",
        "LBFGS iterations",
        "Run after Adam; 0 skips.",
        "--lbfgs-iters",
        "lbfgs",
        lo=0,
        hi=100_000,
        widget="lbfgs_iters",
        step=10,
    ),
    Field(
        "batch_size",
        "int",
        "Batch size",
        "minibatch size",
        "--batch",
        "batch",
        lo=1,
        hi=1_000_000,
        none="full",
        zero_none=True,
        step=64,
    ),
    Field(
        "n_train",
        "int",
        "Training-set size",
        "size of a fixed training set (0 in the sidebar: fresh samples every iteration)",
        "--n-train",
        "ntrain",
        lo=2,
        hi=10_000_000,
        none="fresh",
        zero_none=True,
        widget="n_train",
        advanced=True,
        step=100,
        ui_lo=0,
    ),
    Field(
        "n_test",
        "int",
        "Test samples",
        "fresh samples for the test NLL",
        "--n-test",
        "ntest",
        lo=10,
        hi=1_000_000,
        widget="n_test",
        advanced=True,
        step=500,
    ),
    Field(
        "lambda_kinetic",
        "float",
        "λ₁ kinetic",
        "∫‖f‖² dt",
        "--lambda-kinetic",
        "lk",
        lo=0,
        hi=1e4,
        compare="lambda_kinetic",
        compare_label="λ₁",
        compare_help="weight of the kinetic regularizer",
        widget="lambda_kinetic",
        step=0.01,
        fmt="%.4g",
    ),
    Field(
        "lambda_jacobian",
        "float",
        "λ₂ Jacobian",
        "∫‖∂f/∂z‖²_F dt",
        "--lambda-jacobian",
        "lj",
        lo=0,
        hi=1e4,
        compare="lambda_jacobian",
        compare_label="λ₂",
        compare_help="weight of the Jacobian regularizer",
        widget="lambda_jacobian",
        step=0.01,
        fmt="%.4g",
    ),
    Field(
        "seed",
        "int",
        "Seed",
        "seeds the data, the weights and the noise",
        "--seed",
        "seed",
        lo=0,
        hi=2**31 - 1,
        compare="seed",
        compare_help="random seed of data, weights and noise: is a difference just luck?",
        widget="seed",
        step=1,
    ),
    Field(
        "device",
        "choice",
        "Device",
        "auto (CUDA, then MPS, then CPU), cpu, cuda or mps",
        "--device",
        "device",
        choices=DEVICES,
    ),
    Field(
        "max_seconds",
        "float",
        "Time budget (s)",
        "Stop training after this many seconds (0: no limit). Choosing another target clears it.",
        "--max-seconds",
        "budget",
        lo=0,
        lo_open=True,
        none="none",
        widget="max_seconds",
        step=10.0,
        fmt="%g",
        ui_lo=0.0,
        ui_hi=86_400.0,
    ),
    Field(
        "eval_every",
        "int",
        "Test NLL every k iterations",
        "test NLL every k Adam iterations, with an accurate adaptive solver (0 = off)",
        "--eval-every",
        "eval",
        lo=0,
        hi=1_000_000,
        widget="eval_every",
        advanced=True,
        step=10,
    ),
    Field(
        "grad_clip",
        "float",
        "Gradient clip",
        "clip the gradient norm to this value (0 in the sidebar: no clipping)",
        "--grad-clip",
        "clip",
        lo=0,
        lo_open=True,
        none="none",
        widget="grad_clip",
        advanced=True,
        step=1.0,
        fmt="%g",
        ui_lo=0.0,
        ui_hi=1e6,
    ),
    Field(
        "objective",
        "choice",
        "Objective",
        "Likelihood solves the ODE every iteration; flow matching regresses the field onto straight "
        "noise-to-data velocities without a solve. Both report the same test NLL.",
        "--objective",
        "objective",
        choices=tuple(OBJECTIVES),
        compare="objective",
        compare_help="how the same network is trained: by likelihood, or by flow matching",
        widget="objective",
    ),
)

FIELDS: dict[str, Field] = {f.path: f for f in _TABLE}
"""Every setting of a TrainConfig, by dotted path, in the order the channels list them."""


def field_at(path: str) -> Field:
    """The field at ``path``; a ConfigError listing the paths for any other name.

    Example:
        >>> field_at("solver.max_nfe").key
        'maxnfe'
    """
    try:
        return FIELDS[path]
    except KeyError:
        raise ConfigError(f'no setting "{path}"; settings: {list(FIELDS)}', field=path, allowed=list(FIELDS)) from None


def config_fields(*, kinds: tuple[str, ...] = KINDS) -> Iterator[Field]:
    """The fields of the given kinds, in table order (the plain values: everything but target and params)."""
    return (f for f in _TABLE if f.kind in kinds)
