"""A setting's widget drawn from the field table alone: its label, help, bounds or choices, and its value.

A field of kind ``bool`` is a checkbox, ``choice`` a select box, ``int``/``float`` a number input; an
optional number shows its none as 0. Each widget takes its current value (or its value of record, see
:mod:`cnfviz.ui.sidebar.record`) as its default, so that one rebuilt without state does not fall to its minimum.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from ...training.config import TrainConfig
from ...training.fields import FIELDS, Field
from .record import current, index_of

__all__ = ["DEPTH_MAX", "WIDTH_MAX", "number", "table_control", "widget_value", "with_values"]

WIDTH_MAX = 256
"""The widest hidden layer the sidebar builds."""
DEPTH_MAX = 8
"""The most hidden layers the sidebar builds."""


def number(f: Field, key: str, *, where: Any = None, label: str | None = None, **kwargs: Any) -> Any:
    """The number input of setting ``f`` under ``key``: its label, bounds, step, format and help from the
    field table; its value from the widget's state (see :func:`~cnfviz.ui.sidebar.record.current`)."""
    cast: type = int if f.kind == "int" else float
    lo, hi = (f.lo if f.ui_lo is None else f.ui_lo), (f.hi if f.ui_hi is None else f.ui_hi)
    lo, hi = (None if lo is None else cast(lo)), (None if hi is None else cast(hi))
    return (st if where is None else where).number_input(
        label or f.label,
        lo,
        hi,
        value=current(st.session_state, key, lo, hi),
        step=None if f.step is None else cast(f.step),
        format=f.fmt,
        key=key,
        help=f.help or None,
        **kwargs,
    )


def table_control(f: Field, key: str, *, where: Any = None, **kwargs: Any) -> Any:
    """The one widget of setting ``f`` (a checkbox, a select box or a number input), its label, help and
    choices or bounds from the field table, and the field's value it shows: for an optional number, 0 reads
    as none."""
    state = st.session_state
    at = st if where is None else where
    if f.kind == "bool":
        return at.checkbox(f.label, value=bool(state.get(key)), key=key, help=f.help or None, **kwargs)
    if f.kind == "choice":
        options = list(f.choices)
        return at.selectbox(
            f.label, options, index=index_of(state, key, options), key=key, help=f.help or None, **kwargs
        )
    value = number(f, key, where=where, **kwargs)
    return None if f.optional and not value else value


def widget_value(f: Field, value: Any) -> Any:
    """How the widget of setting ``f`` shows ``value`` (an optional number's none as 0)."""
    if f.kind == "bool":
        return bool(value)
    if f.kind == "int":
        return int(value or 0)
    if f.kind == "float":
        return float(value or 0.0)
    return value


def with_values(config: TrainConfig, values: dict[str, Any], **changes: Any) -> TrainConfig:
    """``config`` with ``changes`` (as :meth:`TrainConfig.replace` takes them) and the settings ``values``
    (by dotted path) applied in one step, so that settings checked together are checked at their new values.

    Example:
        >>> from cnfviz import default_config
        >>> cfg = with_values(default_config("normal"), {"lr": 0.02, "solver.method": "dopri5"})
        >>> cfg.lr, cfg.solver.method
        (0.02, 'dopri5')
    """
    for path, value in values.items():
        for key, change in FIELDS[path].change(value).items():
            if isinstance(change, dict):
                changes[key] = {**changes.get(key, {}), **change}
            else:
                changes[key] = change
    return config.replace(**changes)
