"""The control groups, one function each (target, network, ODE, training, advanced), each returning
``{field path: value}`` for the settings it shows.

A setting's group, the name that hides it, its widget and its place in the group all come from the field
table (:data:`~cnfviz.training.fields.FIELDS`): a field with a :attr:`~cnfviz.training.fields.Field.widget`
key is drawn by :func:`~cnfviz.ui.sidebar.widgets.table_control` in the group :func:`group_of` names, in
table order. So adding a setting touches the table and the engine, never this module. Drawn by hand are only
the settings no single widget can show: the target and its parameters, the widths (two sliders), the time
span (two numbers that must differ) and the batch size (a number, or "Full batch"). The step size shows
under fixed-grid solvers only, the tolerances under adaptive ones; the numbers of one hide name (the
tolerances, the two λ) sit side by side.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from ...features.links import CONTROLS
from ...flow.solver import FIXED_GRID_SOLVERS
from ...targets import SCIPY_PREFIX, TARGETS, Target
from ...training.config import TrainConfig
from ...training.fields import FIELDS, Field
from ..custom_target import CONFIG_TARGETS, CUSTOM_SOURCES, custom_target_controls
from ..keys import session_key, widget_key
from ..text import plain
from .presets import on_target_change
from .record import current, index_of
from .state import base_config, load_dim_defaults
from .target import named_target_controls, target_choices, target_label
from .widgets import DEPTH_MAX, WIDTH_MAX, number, table_control

__all__ = [
    "AFFINE_NOTE",
    "GROUPS",
    "Drawing",
    "Group",
    "TargetPick",
    "advanced_group",
    "controls_of",
    "fields_of",
    "group_of",
    "network_group",
    "ode_group",
    "route",
    "target_group",
    "training_group",
]

AFFINE_NOTE = (
    "Depth 0 has no hidden layer: the field is affine in z, and an affine flow can only turn the Gaussian "
    "into another Gaussian. Use depth 1 to 8 to learn any other shape."
)


@dataclass(frozen=True)
class Group:
    """A group of controls: its expander's title, whether it starts open, and whether it is drawn even when
    every control in it is hidden (it then still shows where an error of its settings lands)."""

    name: str
    title: str
    expanded: bool
    always: bool


GROUPS: dict[str, Group] = {
    "target": Group("target", "Target", True, False),
    "network": Group("network", "Network", True, False),
    "ode": Group("ode", "ODE", False, True),
    "training": Group("training", "Training", True, True),
    "advanced": Group("advanced", "Advanced", False, False),
}
"""The groups, in the order the sidebar draws them."""


def group_of(f: Field) -> str:
    """The group that draws setting ``f``: the Advanced one if the table says so; the target's for the target
    and its parameters; the ODE's for the solver, the time span and the trace; the network's for the rest of
    the model; else the training one."""
    if f.advanced:
        return "advanced"
    if f.kind in ("text", "params"):
        return "target"
    if f.section == "solver" or f.path in ("model.tspan", "model.trace"):
        return "ode"
    return "network" if f.section == "model" else "training"


# The hide names (features.links.CONTROLS) that cover a setting other than its own widget key's.
_CONTROLS_OF: dict[str, tuple[str, ...]] = {
    "model.hidden": ("width", "depth"),
    "model.final_activation": ("activation",),
    "solver.step_size": ("solver",),
    "solver.rtol": ("tolerances",),
    "solver.atol": ("tolerances",),
    "batch_size": ("batch",),
    "lambda_kinetic": ("lambdas",),
    "lambda_jacobian": ("lambdas",),
}


def controls_of(f: Field) -> tuple[str, ...]:
    """The hide names (``hide=`` in a link) whose hiding hides setting ``f``: ``()`` for one that always shows.

    Example:
        >>> controls_of(FIELDS["solver.rtol"]), controls_of(FIELDS["lr"]), controls_of(FIELDS["grad_clip"])
        (('tolerances',), ('lr',), ('advanced',))
    """
    if f.path in _CONTROLS_OF:
        return _CONTROLS_OF[f.path]
    if f.advanced:
        return ("advanced",)
    return (f.widget,) if f.widget in CONTROLS else ()


def _method(values: dict[str, Any], base: TrainConfig) -> str:
    return values.get("solver.method", base.solver.method)


# Settings shown only while another one allows them (their value stays the base's otherwise).
_APPLIES: dict[str, Callable[[dict[str, Any], TrainConfig], bool]] = {
    "solver.step_size": lambda values, base: _method(values, base) in FIXED_GRID_SOLVERS,
    "solver.rtol": lambda values, base: _method(values, base) not in FIXED_GRID_SOLVERS,
    "solver.atol": lambda values, base: _method(values, base) not in FIXED_GRID_SOLVERS,
}

_TIME_HELP = {
    "none": "none: f(z), no time input (the seed tutorial)",
    "concat": "concat: t is an extra input of every layer",
    "concatsquash": "concatsquash: FFJORD's gated layers",
}
# How a select box names its choices, where the bare value says too little.
_FORMAT: dict[str, Callable[[Any], str]] = {"model.time": lambda t: _TIME_HELP.get(t, t)}


@dataclass
class Drawing:
    """What every group needs while the controls are drawn: the page prefix, the config the controls build
    on, the hidden control names, where messages go (``errors``: (group, message) pairs; ``slots``: a
    place in each group drawn for a message the whole config raises), and ``seen``: the widget keys whose
    values go back into the record after drawing."""

    prefix: str
    base: TrainConfig
    hidden: frozenset[str] = frozenset()
    errors: list[tuple[str, str]] = field(default_factory=list)
    slots: dict[str, Any] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)

    def shown(self, name: str) -> bool:
        return name not in self.hidden

    def shows(self, f: Field) -> bool:
        names = controls_of(f)
        return not names or any(self.shown(n) for n in names)

    def key(self, name: str) -> str:
        return widget_key(self.prefix, name)


# ------------------------------------------------------------------------------------------ by hand


def _widths(d: Drawing, f: Field) -> tuple[int, ...]:
    width, depth = max(d.base.model.hidden, default=32), len(d.base.model.hidden)
    if d.shown("width"):
        width = st.slider(
            "Width (units per hidden layer)",
            1,
            WIDTH_MAX,
            value=current(st.session_state, d.key("width"), 1, WIDTH_MAX),
            key=d.key("width"),
        )
    if d.shown("depth"):
        depth = st.slider(
            "Depth (hidden layers)",
            0,
            DEPTH_MAX,
            value=current(st.session_state, d.key("depth"), 0, DEPTH_MAX),
            key=d.key("depth"),
            help="0 makes the field affine.",
        )
        if int(depth) == 0:
            st.caption(AFFINE_NOTE)
    return (int(width),) * int(depth)


def _tspan(d: Drawing, f: Field) -> tuple[float, float]:
    c0, c1 = st.columns(2)
    t0 = number(f, d.key("t0"), where=c0, label="t0 (base)")
    t1 = number(f, d.key("t1"), where=c1, label="t1 (data)")
    if t0 == t1:
        msg = f"The time span needs t0 ≠ t1 (both are {t0:g})."
        d.errors.append(("ode", msg))
        st.error(plain(msg))
    return float(t0), float(t1)


def _batch(d: Drawing, f: Field) -> int | None:
    full = st.checkbox(
        "Full batch",
        value=bool(st.session_state.get(d.key("full_batch"))),
        key=d.key("full_batch"),
        help="Every iteration uses the whole training set.",
    )
    batch = number(f, d.key("batch"), disabled=full)
    return None if full else int(batch)


_BY_HAND: dict[str, Callable[[Drawing, Field], Any]] = {
    "model.hidden": _widths,
    "model.tspan": _tspan,
    "batch_size": _batch,
}
"""The settings no single widget shows, each with the function that draws it and returns its value."""


def fields_of(group: str) -> tuple[Field, ...]:
    """The settings group ``group`` draws, in table order: those with a widget key, and those drawn by hand.

    Read from the table at each call, so a field added to it shows at once.
    """
    return tuple(f for f in FIELDS.values() if group_of(f) == group and (f.widget or f.path in _BY_HAND))


def _shares_a_name(f: Field, g: Field) -> bool:
    """Whether ``f`` and ``g`` are two of the few settings one hide name covers (the tolerances, the λ)."""
    names = controls_of(f)
    return len(names) == 1 and names == controls_of(g) and names[0] not in GROUPS and names[0] != f.widget


def _table_group(d: Drawing, name: str) -> dict[str, Any]:
    """Draw the group ``name`` from the table into its expander; its values by field path."""
    group = GROUPS[name]
    fields = [f for f in fields_of(name) if d.shows(f)]
    values: dict[str, Any] = {}
    if not fields and not group.always:
        return values
    with st.expander(group.title, expanded=group.expanded):
        i = 0
        while i < len(fields):
            f = fields[i]
            i += 1
            if f.path in _APPLIES and not _APPLIES[f.path](values, d.base):
                continue
            if f.path in _BY_HAND:
                values[f.path] = _BY_HAND[f.path](d, f)
                continue
            # The numbers of one hide name (the tolerances, λ₁ and λ₂) side by side.
            run = [f]
            while (
                f.numeric
                and i < len(fields)
                and fields[i].numeric
                and fields[i].path not in _BY_HAND
                and _shares_a_name(f, fields[i])
            ):
                run.append(fields[i])
                i += 1
            columns = st.columns(len(run)) if len(run) > 1 else [None]
            for g, where in zip(run, columns, strict=True):
                kwargs: dict[str, Any] = {"format_func": _FORMAT[g.path]} if g.path in _FORMAT else {}
                values[g.path] = table_control(g, d.key(g.widget or g.name), where=where, **kwargs)
        d.slots[name] = st.empty()
    return values


# ------------------------------------------------------------------------------------------ the groups


@dataclass(frozen=True)
class TargetPick:
    """What the target group read: ``values`` (``{"target": ..., "target_params": ...}`` as the config takes
    them), the picker entry, the built target (None while invalid), what the user still has to do for a
    custom one, and the base config (new when custom data of another dimension loaded its defaults)."""

    values: dict[str, Any]
    picked: str
    target: Target | None
    waiting: str | None
    base: TrainConfig


def target_group(d: Drawing) -> TargetPick:
    """The Target expander: the picker, the parameters or the custom source's controls, and the preview."""
    state = st.session_state
    prefix, show = d.prefix, d.shown("target")
    target_name = state.get(d.key("target"), d.base.target)
    params: dict[str, Any] = {}
    waiting: str | None = None
    target: Target | None = None
    base = d.base
    # A lesson that fixes the target shows no Target section at all.
    with st.expander("Target", expanded=True) if show else st.container():
        if show:
            options = list(target_choices())
            if target_name not in options:
                options.append(target_name)
            target_name = st.selectbox(
                "Distribution",
                options,
                index=index_of(state, d.key("target"), options),
                key=d.key("target"),
                format_func=target_label,
                help="1D densities, the FFJORD 2D toy sets, your own data (upload or draw), and every "
                "continuous scipy.stats distribution.",
                on_change=on_target_change,
                args=(prefix,),
            )
            if target_name in TARGETS:
                st.caption(TARGETS[target_name].description)
            elif target_name in CUSTOM_SOURCES:
                st.caption("Your own data. A link cannot carry it; **Show code** offers it as a file.")
            else:
                st.caption(f"scipy.stats.{target_name[len(SCIPY_PREFIX) :]}: shape parameters, loc and scale.")
        if target_name in CUSTOM_SOURCES:
            custom = custom_target_controls(prefix, target_name, show=show)
            state[session_key(prefix, "custom_source")] = target_name
            target, waiting = custom.target, custom.waiting
            if custom.error or custom.waiting:
                d.errors.append(("target", custom.error or custom.waiting or ""))
            elif target is not None and target.dim != state.get(session_key(prefix, "dim")):
                # Data of another dimension than the settings were made for: load its fast defaults
                # into the controls below, which this run has not drawn yet.
                load_dim_defaults(prefix, target_name, target.dim)
                base = d.base = base_config(prefix)
            values = {"target": CONFIG_TARGETS[target_name], "target_params": {}}
        else:
            target = named_target_controls(prefix, target_name, params, d.errors, show, d.seen)
            if target is not None:
                params = dict(target.params)
            values = {"target": target_name, "target_params": params}
    return TargetPick(values, target_name, target, waiting, base)


def network_group(d: Drawing) -> dict[str, Any]:
    """The Network expander: widths, activation, time conditioning, linear term; by field path."""
    return _table_group(d, "network")


def ode_group(d: Drawing) -> dict[str, Any]:
    """The ODE expander: time span, solver and its step or tolerances, trace, adjoint; by field path."""
    return _table_group(d, "ode")


def training_group(d: Drawing) -> dict[str, Any]:
    """The Training expander: iterations, learning rate, batch, λ, seed, time budget, objective; by field path."""
    return _table_group(d, "training")


def advanced_group(d: Drawing) -> dict[str, Any]:
    """The Advanced expander: the rarely changed settings the table marks ``advanced`` (0 stands for none)."""
    return _table_group(d, "advanced")


def route(field_path: str | None) -> str:
    """Which group a ConfigError belongs to, by the setting it names (:attr:`ConfigError.field`)."""
    path = (field_path or "").split(",")[0].split("[")[0].strip()  # "model.hidden[0]", "adam_iters, lbfgs_iters"
    f = FIELDS.get(path)
    if f is None:
        return "target" if path.startswith("target") else "training"
    return group_of(f)
