"""Comparisons: two to six training runs that differ in one knob (or a few), and the table of their results.

A comparison is a list of labelled :class:`Run` s. Build it from a base config and one knob with several
values (:func:`runs_from_knob`), from rows of knob values (:func:`runs_from_table`), from explicit
configs such as the Train page's JSON downloads (:func:`runs_from_configs`), or from a preset's
``compare`` list (:func:`runs_from_preset`). Every builder validates all of its input at once and
raises a :class:`CompareError` whose ``problems`` each name the bad value and what is allowed.

After training, :func:`results_table` lines the runs up (seed TV, grid TV, test NLL, wall time, NFE,
parameter count) and marks the best of each column and the best run overall.

Example:
    >>> from cnfviz import default_config
    >>> runs = runs_from_knob(default_config("normal"), "width", "16, 32")
    >>> [r.label for r in runs], runs[1].config.model.hidden
    (['width = 16', 'width = 32'], (32, 32))
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._validation import ConfigError, check_int_range, lookup
from ..flow.config import ModelConfig
from ..flow.ffjord import FFJORD
from ..flow.solver import FIXED_GRID_SOLVERS
from ..targets import make_target
from ..training.config import TrainConfig
from ..training.fields import FIELDS, Field
from ..training.presets import PRESETS, target_dim

if TYPE_CHECKING:
    from ..runtime.job import Snapshot
    from ..training.metrics import Metrics

__all__ = [
    "BEST_COLUMNS",
    "BEST_MARK",
    "COLUMNS",
    "COMPARE_PRESETS",
    "KNOBS",
    "MAX_RUNS",
    "MIN_RUNS",
    "TABLE_KNOBS",
    "CompareError",
    "Knob",
    "ResultsTable",
    "Run",
    "RunOutcome",
    "config_summary",
    "differences",
    "parameter_count",
    "results_table",
    "runs_from_configs",
    "runs_from_knob",
    "runs_from_preset",
    "runs_from_table",
    "split_values",
    "with_budget",
]

MIN_RUNS = 2
MAX_RUNS = 6


class CompareError(ConfigError):
    """A comparison cannot be built. ``problems`` holds one message per bad value or run."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True)
class Run:
    """One run of a comparison: a short label (legend, table row) and its config."""

    label: str
    config: TrainConfig


# --------------------------------------------------------------------------------------------------
# Knobs
# --------------------------------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    """A value as a label shows it: ``16``, ``0.01``, ``rk4``."""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _parse_int(raw: Any, lo: int, hi: int) -> int:
    try:
        return check_int_range(raw.strip() if isinstance(raw, str) else raw, "value", lo=lo, hi=hi)
    except ConfigError as err:
        raise ConfigError(f"must be an integer in [{lo}, {hi}]", field=err.field, allowed=err.allowed) from None


def _number(raw: Any, kind: type) -> Any:
    """A number typed as text becomes ``kind``; anything else is left for the config to reject, whose
    message names the field and its range."""
    if isinstance(raw, str):
        try:
            return kind(raw.strip())
        except ValueError:
            return raw.strip()
    return raw


def _width(c: TrainConfig) -> int:
    return max(c.model.hidden, default=0)


def _set_width(c: TrainConfig, width: int) -> TrainConfig:
    depth = len(c.model.hidden) or 1
    return c.replace(model={"hidden": (width,) * depth})


def _set_depth(c: TrainConfig, depth: int) -> TrainConfig:
    width = max(c.model.hidden, default=32)
    return c.replace(model={"hidden": (width,) * depth})


def _set_lambdas(c: TrainConfig, value: float) -> TrainConfig:
    return c.replace(lambda_kinetic=value, lambda_jacobian=value)


def _set_solver(c: TrainConfig, method: str) -> TrainConfig:
    changes: dict[str, Any] = {"method": method}
    if method in FIXED_GRID_SOLVERS and c.solver.step_size is None:
        # Without a step size a fixed-grid method takes one step over the whole span.
        t0, t1 = c.model.tspan
        changes["step_size"] = abs(t1 - t0) / 8
    return c.replace(solver=changes)


@dataclass(frozen=True)
class Knob:
    """A hyperparameter a comparison can vary.

    Arguments:
        name: registry key, e.g. ``"width"``.
        label: how labels and messages name it, e.g. ``"λ₁"``.
        kind: ``"int"``, ``"float"`` or ``"choice"``.
        description: one line for help texts.
        get: reads the knob's value from a config.
        set: a copy of a config with the knob at a value (validated by the config).
        choices: the allowed values of a ``"choice"`` knob.
        lo, hi: bounds an ``"int"`` knob checks itself, where the config cannot (a depth builds a tuple).
    """

    name: str
    label: str
    kind: str
    description: str
    get: Callable[[TrainConfig], Any]
    set: Callable[[TrainConfig, Any], TrainConfig]
    choices: tuple[str, ...] = ()
    lo: int | None = None
    hi: int | None = None

    def parse(self, raw: Any) -> Any:
        """``raw`` (text or a number) as this knob's type; raises ConfigError saying what is allowed.

        The message is the rule alone (``must be an integer in [0, 8]``): :meth:`apply` names the knob."""
        if self.kind == "int" and self.lo is not None and self.hi is not None:
            return _parse_int(raw, self.lo, self.hi)
        if self.kind in ("int", "float"):
            return _number(raw, int if self.kind == "int" else float)
        value = raw.strip() if isinstance(raw, str) else raw
        if value not in self.choices:
            choices = list(self.choices)
            raise ConfigError(f'invalid value "{value}". Must be one of {choices}', field=self.name, allowed=choices)
        return value

    def apply(self, config: TrainConfig, raw: Any) -> TrainConfig:
        """``config`` with this knob set to ``raw``; raises ConfigError naming the knob, the value and the rule."""
        try:
            return self.set(config, self.parse(raw))
        except ConfigError as err:
            raise ConfigError(
                f"{self.label} = {_fmt(raw)}: {err}", field=err.field or self.name, allowed=err.allowed
            ) from None

    def text(self, config: TrainConfig) -> str:
        """``"width = 64"``: the knob's value in ``config``, as labels show it."""
        return f"{self.label} = {_fmt(self.get(config))}"


# Knobs that are not one field each; the others come from the field table (``Field.compare``).
_DERIVED_KNOBS = (
    Knob("width", "width", "int", "units in every hidden layer", _width, _set_width),
    Knob(
        "depth",
        "depth",
        "int",
        "hidden layers (0: an affine field)",
        lambda c: len(c.model.hidden),
        _set_depth,
        lo=0,
        hi=8,
    ),
    Knob(
        "t1",
        "t1",
        "float",
        "end of the time span (t0, t1)",
        lambda c: c.model.tspan[1],
        lambda c, v: c.replace(model={"tspan": (c.model.tspan[0], v)}),
    ),
    Knob("lambdas", "λ₁ = λ₂", "float", "both regularizer weights at once", lambda c: c.lambda_kinetic, _set_lambdas),
)
# A fixed-grid solver needs a step size as well, so the solver knob sets more than its field.
_SETTERS: dict[str, Callable[[TrainConfig, Any], TrainConfig]] = {"solver": _set_solver}
_ORDER = (
    *("width", "depth", "t1", "solver", "trace"),
    *("lambda_kinetic", "lambda_jacobian", "lambdas", "lr", "objective", "seed"),
)


def _field_knob(f: Field) -> Knob:
    assert f.compare is not None

    def set_field(c: TrainConfig, v: Any) -> TrainConfig:
        return c.replace(**f.change(v))

    return Knob(
        f.compare,
        f.compare_label or f.compare,
        f.kind,
        f.compare_help or f.help,
        f.get,
        _SETTERS.get(f.compare, set_field),
        choices=f.choices,
    )


def _knobs() -> dict[str, Knob]:
    knobs = {k.name: k for k in _DERIVED_KNOBS}
    knobs.update({f.compare: _field_knob(f) for f in FIELDS.values() if f.compare is not None})
    # The order the Compare page lists them in: the network, the ODE, the loss, then the rest.
    return {name: knobs[name] for name in sorted(knobs, key=lambda n: (*_ORDER, n).index(n))}


KNOBS: dict[str, Knob] = _knobs()
"""The knobs a comparison can vary, by name."""

TABLE_KNOBS: tuple[str, ...] = ("width", "depth", "t1", "solver", "trace", "lambda_kinetic", "lambda_jacobian", "lr")
"""The knobs of :func:`runs_from_table`, one column each, in order."""


def _knob(knob: str | Knob) -> Knob:
    return knob if isinstance(knob, Knob) else lookup(KNOBS, knob, "knob")


def split_values(text: str) -> list[str]:
    """The values typed in one box: separated by commas, semicolons or spaces.

    Example:
        >>> split_values("16, 32  64;128")
        ['16', '32', '64', '128']
    """
    return [v for v in re.split(r"[,;\s]+", text.strip()) if v]


def _check_count(n: int, what: str) -> str | None:
    if MIN_RUNS <= n <= MAX_RUNS:
        return None
    return f"A comparison needs {MIN_RUNS} to {MAX_RUNS} runs; got {n} {what}."


def _check_distinct(runs: Sequence[Run], what: Callable[[int], str]) -> list[str]:
    problems = []
    seen: dict[str, int] = {}
    for i, run in enumerate(runs):
        key = run.config.to_json()
        if key in seen:
            problems.append(f"{what(i)} is the same run as {what(seen[key])}: nothing would differ.")
        else:
            seen[key] = i
    return problems


def runs_from_knob(base: TrainConfig, knob: str | Knob, values: str | Sequence[Any]) -> list[Run]:
    """One run per value of ``knob``, each equal to ``base`` but for that knob.

    Arguments:
        base: the config every run starts from.
        knob: a name from :data:`KNOBS` (or a :class:`Knob`).
        values: 2 to 6 values, as a list or as text like ``"16, 32, 64"``.

    Returns:
        the runs, labelled ``"<knob> = <value>"``, in the order given.

    Raises:
        CompareError: too few or too many values, a value the knob or the config rejects (each
            message names the value and the allowed range), or the same value twice.

    Example:
        >>> from cnfviz import default_config
        >>> [r.label for r in runs_from_knob(default_config("moons"), "solver", ["rk4", "dopri5"])]
        ['solver = rk4', 'solver = dopri5']
    """
    k = _knob(knob)
    items = split_values(values) if isinstance(values, str) else list(values)
    count = _check_count(len(items), f"value{'s' if len(items) != 1 else ''} of {k.label}")
    if count:
        raise CompareError([count])
    runs, problems = [], []
    for raw in items:
        try:
            config = k.apply(base, raw)
        except ConfigError as err:
            problems.append(str(err))
            continue
        runs.append(Run(k.text(config), config))
    if problems:
        raise CompareError(problems)
    labels = [r.label for r in runs]
    problems = [f"{label} is listed twice." for label in dict.fromkeys(x for x in labels if labels.count(x) > 1)]
    if problems:
        raise CompareError(problems)
    return runs


def _blank(value: Any) -> bool:
    return (
        value is None
        or (isinstance(value, float) and math.isnan(value))
        or (isinstance(value, str) and not value.strip())
    )


def runs_from_table(base: TrainConfig, rows: Sequence[Mapping[str, Any]]) -> list[Run]:
    """One run per row: ``base`` with the row's knob values (:data:`TABLE_KNOBS`); a blank cell keeps ``base``.

    A row may carry a ``label``; without one it is named after what differs from ``base``.

    Raises:
        CompareError: the wrong number of rows, or bad cells (each message names the row, the knob and
            the allowed values), or two rows that are the same run.

    Example:
        >>> from cnfviz import default_config
        >>> runs = runs_from_table(default_config("normal"), [{"label": "base"}, {"width": 8, "lr": 0.03}])
        >>> [r.label for r in runs]
        ['base', 'width = 8, lr = 0.03']
    """
    count = _check_count(len(rows), f"row{'s' if len(rows) != 1 else ''}")
    if count:
        raise CompareError([count])
    runs, problems = [], []
    for i, row in enumerate(rows, start=1):
        unknown = [key for key in row if key != "label" and key not in KNOBS]
        if unknown:
            problems.append(f"row {i}: unknown column(s) {unknown}; columns: {['label', *TABLE_KNOBS]}")
            continue
        config, ok = base, True
        for name, raw in row.items():
            if name == "label" or _blank(raw):
                continue
            try:
                config = KNOBS[name].apply(config, raw)
            except ConfigError as err:
                problems.append(f"row {i}, {err}")
                ok = False
        if ok:
            label = row.get("label")
            label = str(label).strip() if not _blank(label) else ", ".join(differences(base, config)) or "base"
            runs.append(Run(label, config))
    if problems:
        raise CompareError(problems)
    problems = _check_distinct(runs, lambda i: f"row {i + 1} ({runs[i].label})")
    problems += _check_labels(runs)
    if problems:
        raise CompareError(problems)
    return runs


def _check_labels(runs: Sequence[Run]) -> list[str]:
    labels = [r.label for r in runs]
    return [
        f'The label "{label}" names more than one run.' for label in sorted({x for x in labels if labels.count(x) > 1})
    ]


def _as_config(item: TrainConfig | Mapping[str, Any] | str) -> TrainConfig:
    if isinstance(item, TrainConfig):
        return item
    if isinstance(item, str):
        return TrainConfig.from_json(item)
    if isinstance(item, Mapping):
        return TrainConfig.from_dict(dict(item))
    raise ConfigError(f"expected a TrainConfig, a mapping or JSON text (got {type(item).__name__})")


def _target_text(c: TrainConfig) -> str:
    return f'"{c.target}"' + (f" {c.target_params}" if c.target_params else "")


def runs_from_configs(items: Sequence[tuple[str, TrainConfig | Mapping[str, Any] | str]]) -> list[Run]:
    """Runs from labelled configs: :class:`~cnfviz.TrainConfig` objects, dicts, or JSON text as the Train
    page's "Download the config" writes it. An empty label becomes ``"run k"``.

    All runs must learn the same target with the same parameters, which must be buildable.

    Raises:
        CompareError: the wrong number of configs, a config that does not validate (the message names
            the run and the field), runs on different targets, two equal runs or two equal labels.

    Example:
        >>> from cnfviz import default_config
        >>> base = default_config("normal")
        >>> [r.label for r in runs_from_configs([("", base), ("fast", base.replace(lr=0.05))])]
        ['run 1', 'fast']
    """
    count = _check_count(len(items), f"config{'s' if len(items) != 1 else ''}")
    if count:
        raise CompareError([count])
    runs, problems = [], []
    for i, (label, item) in enumerate(items, start=1):
        name = (label or "").strip() or f"run {i}"
        try:
            runs.append(Run(name, _as_config(item)))
        except ConfigError as err:
            problems.append(f"run {i} ({name}): {err}")
    if problems:
        raise CompareError(problems)
    first = runs[0].config
    for i, run in enumerate(runs[1:], start=2):
        c = run.config
        if (c.target, c.target_params) != (first.target, first.target_params):
            problems.append(
                f"run {i} ({run.label}) learns {_target_text(c)} but run 1 learns {_target_text(first)}: "
                "a comparison needs one target."
            )
    if not problems:
        try:
            make_target(first.target, first.target_params)
        except (ValueError, TypeError) as err:  # ConfigError, or a value scipy itself rejects
            problems.append(f"the target cannot be built: {err}")
    problems += _check_distinct(runs, lambda i: f"run {i + 1} ({runs[i].label})")
    problems += _check_labels(runs)
    if problems:
        raise CompareError(problems)
    return runs


class _ComparePresets(Sequence[str]):
    """The names of the presets with a comparison, read from :data:`~cnfviz.training.presets.PRESETS` on first use."""

    def _names(self) -> tuple[str, ...]:
        return tuple(name for name, preset in PRESETS.items() if preset.compare)

    def __getitem__(self, index: Any) -> Any:
        return self._names()[index]

    def __len__(self) -> int:
        return len(self._names())

    def __repr__(self) -> str:
        return repr(self._names())


COMPARE_PRESETS: Sequence[str] = _ComparePresets()
"""Names of the presets that carry a comparison (``hutchinson``, ``regularized``)."""


def runs_from_preset(name: str) -> list[Run]:
    """The labelled runs of a comparison preset.

    Example:
        >>> [r.label for r in runs_from_preset("hutchinson")]
        ['exact trace', 'Hutchinson']
    """
    preset = lookup({n: PRESETS[n] for n in COMPARE_PRESETS}, name, "comparison preset")
    return [Run(label, config) for label, config in preset.compare]


def with_budget(runs: Sequence[Run], *, max_seconds: float | None = None, adam_iters: int | None = None) -> list[Run]:
    """The same runs with a training budget: ``max_seconds`` each, and/or ``adam_iters`` Adam iterations.

    Raises:
        ConfigError: a budget the config rejects (e.g. ``max_seconds`` ≤ 0).
    """
    changes: dict[str, Any] = {}
    if max_seconds is not None:
        changes["max_seconds"] = max_seconds
    if adam_iters is not None:
        changes["adam_iters"] = adam_iters
    return [Run(r.label, r.config.replace(**changes)) for r in runs]


def differences(base: TrainConfig, config: TrainConfig) -> list[str]:
    """The knobs in which ``config`` differs from ``base``, as ``"<knob> = <value>"``.

    Example:
        >>> from cnfviz import default_config
        >>> differences(default_config("normal"), default_config("normal", lr=0.05))
        ['lr = 0.05']
    """
    names = (*TABLE_KNOBS, "objective", "seed")
    return [KNOBS[n].text(config) for n in names if KNOBS[n].get(config) != KNOBS[n].get(base)]


def config_summary(config: TrainConfig) -> str:
    """One line that says what a config trains.

    Example:
        >>> from cnfviz import default_config
        >>> config_summary(default_config("normal"))
        'normal · net 32×2 tanh (concatsquash, linear term) · t ∈ [0, 1] · rk4, step 0.25 · exact trace · Adam 600 it, lr 0.01 (cosine decay) · batch 256'
    """  # noqa: E501
    m, s = config.model, config.solver
    net = "affine field" if not m.hidden else f"net {'×'.join(map(str, (m.hidden[0], len(m.hidden))))} {m.activation}"
    if m.hidden and len(set(m.hidden)) > 1:
        net = f"net {'-'.join(map(str, m.hidden))} {m.activation}"
    extras = [m.time] + (["linear term"] if m.linear else [])
    solver = f"{s.method}, step {_fmt(s.step_size)}" if s.is_fixed_grid and s.step_size else s.method
    if not s.is_fixed_grid:
        solver += f" (rtol {_fmt(s.rtol)})"
    parts = [
        config.target + (f" {config.target_params}" if config.target_params else ""),
        *([config.objective] if config.objective != "likelihood" else []),
        f"{net} ({', '.join(extras)})",
        f"t ∈ [{_fmt(m.tspan[0])}, {_fmt(m.tspan[1])}]",
        solver,
        f"{m.trace} trace",
        f"Adam {config.adam_iters} it, lr {_fmt(config.lr)}" + (" (cosine decay)" if config.lr_decay else ""),
    ]
    if config.lbfgs_iters:
        parts.append(f"LBFGS {config.lbfgs_iters} it")
    parts.append("full batch" if config.batch_size is None else f"batch {config.batch_size}")
    if config.regularized:
        parts.append(f"λ₁ {_fmt(config.lambda_kinetic)}, λ₂ {_fmt(config.lambda_jacobian)}")
    if config.max_seconds is not None:
        parts.append(f"at most {_fmt(config.max_seconds)} s")
    return " · ".join(parts)


@functools.lru_cache(maxsize=256)
def _count(dim: int, model: ModelConfig) -> int:
    return FFJORD(dim, model).num_parameters


def parameter_count(config: TrainConfig, dim: int | None = None) -> int:
    """Trainable parameters of the flow ``config`` builds (``dim``: the data dimension, read from a named
    target when None).

    Example:
        >>> from cnfviz.training.presets import SEED_CONFIG
        >>> parameter_count(SEED_CONFIG)  # Dense(1, 3) + Dense(3, 1)
        10
    """
    return _count(target_dim(config.target) if dim is None else dim, config.model)


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunOutcome:
    """How one run of a comparison ended, with the figures the results table needs.

    ``metrics`` is None when the run had none (cancelled while queued, or the solver gave up).
    """

    label: str
    state: str
    reason: str
    iterations: int
    train_seconds: float
    nfe_forward: int
    nfe_backward: int
    parameters: int
    metrics: Metrics | None

    @classmethod
    def from_snapshot(cls, label: str, snap: Snapshot, parameters: int) -> RunOutcome:
        return cls(
            label=label,
            state=snap.state,
            reason=snap.reason,
            iterations=snap.iteration,
            train_seconds=snap.elapsed,
            nfe_forward=snap.nfe_forward,
            nfe_backward=snap.nfe_backward,
            parameters=parameters,
            metrics=snap.metrics,
        )


COLUMNS: tuple[str, ...] = (
    "seed TV",
    "grid TV",
    "test NLL",
    "iterations",
    "wall time (s)",
    "NFE forward",
    "NFE total",
    "NFE / iteration",
    "sampling NFE",
    "parameters",
)
"""The figures of :func:`results_table`, in order."""

BEST_COLUMNS: dict[str, float] = {
    "seed TV": 0.0,
    "grid TV": 0.0,
    "test NLL": 0.0,
    "wall time (s)": 0.02,
    "NFE / iteration": 0.02,
    "sampling NFE": 0.02,
}
"""The columns whose lowest value is marked best, with the relative tolerance within which values tie.

Timings and NFE jitter by a few percent between equal runs, hence their tolerance. NFE forward and
total are left out: they grow with the iterations a run managed in its time budget, so the lowest is
not the best; NFE per iteration is the fair cost of training, and the sampling NFE (to draw 10,000 samples
with the adaptive solver) the cost of using the flow. A parameter count is a size, not a score.
"""

BEST_MARK = "★"


@dataclass(frozen=True)
class ResultsTable:
    """The results of a comparison.

    ``rows``: one dict per run with ``best`` (``★`` on the best run), ``run``, ``state`` and the
    :data:`COLUMNS` (None where a run has no value). ``best``: for each of the :data:`BEST_COLUMNS`, the
    row indices holding its lowest value (ties, within the column's tolerance, share it; a column in
    which every run ties has no best). ``best_run``: the row with the lowest test NLL, or None. Only runs
    that finished (``done``, including those that used up their time budget) compete: a stopped or
    failed run stopped early.
    """

    rows: tuple[dict[str, Any], ...]
    best: dict[str, tuple[int, ...]]
    best_run: int | None


def _figures(o: RunOutcome) -> dict[str, Any]:
    m = o.metrics
    total = o.nfe_forward + o.nfe_backward
    return {
        "seed TV": m.seed_tv if m else None,
        "grid TV": m.tv if m else None,
        "test NLL": m.test_nll if m else None,
        "iterations": o.iterations,
        "wall time (s)": o.train_seconds if o.iterations else None,
        "NFE forward": o.nfe_forward if o.iterations else None,
        "NFE total": total if o.iterations else None,
        "NFE / iteration": total / o.iterations if o.iterations else None,
        "sampling NFE": m.sample_nfe if m else None,
        "parameters": o.parameters,
    }


def results_table(outcomes: Sequence[RunOutcome]) -> ResultsTable:
    """Line up the outcomes of a comparison and mark the best.

    Example:
        >>> from cnfviz.training.metrics import Metrics
        >>> m = lambda nll: Metrics(0.01, 0.02, 0.0, 1.0, nll, "exact")
        >>> a = RunOutcome("a", "done", "", 10, 1.0, 160, 320, 99, m(1.5))
        >>> b = RunOutcome("b", "done", "", 10, 2.0, 200, 400, 42, m(1.2))
        >>> table = results_table([a, b])
        >>> table.best_run, table.best["wall time (s)"], [r["best"] for r in table.rows]
        (1, (0,), ['', '★'])
    """
    figures = [_figures(o) for o in outcomes]
    eligible = [i for i, o in enumerate(outcomes) if o.state == "done"]
    best: dict[str, tuple[int, ...]] = {}
    for col, tol in BEST_COLUMNS.items():
        values = {
            i: figures[i][col] for i in eligible if figures[i][col] is not None and math.isfinite(figures[i][col])
        }
        if not values:
            continue
        low = min(values.values())
        winners = tuple(i for i, v in values.items() if math.isclose(v, low, rel_tol=tol, abs_tol=0.0))
        if len(winners) < len(values) or len(values) == 1:
            best[col] = winners
    nlls = {i: figures[i]["test NLL"] for i in eligible if figures[i]["test NLL"] is not None}
    finite = {i: v for i, v in nlls.items() if math.isfinite(v)}
    best_run = min(finite, key=finite.__getitem__) if finite else None
    rows = tuple(
        {"best": BEST_MARK if i == best_run else "", "run": o.label, "state": o.state, **figures[i]}
        for i, o in enumerate(outcomes)
    )
    return ResultsTable(rows, best, best_run)
