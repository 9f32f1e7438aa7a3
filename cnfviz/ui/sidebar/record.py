"""The controls' values of record: widget values kept outside widget state, so that a dropped widget comes back.

Streamlit may drop a widget's state between runs (a widget not drawn in a run, a race between a fragment
rerun and a full rerun under load), and a number input rebuilt without its state shows its minimum: the
classroom saw the time span fall to -1000, -1000. So the values of record live in
``st.session_state["p__values"]`` (widget key → value), a key no widget owns. Before each control is
drawn, its widget state is seeded from the record whenever it is missing (:func:`restore`); after the
controls are drawn, their values are written back (:func:`remember`); applying a config writes the
record too (:func:`cnfviz.ui.sidebar.state.apply_config_to_state`).

Example:
    >>> state = {}
    >>> record("train", state)["train_lr"] = 0.01
    >>> restore("train", state, {"train_lr": 0.5, "train_seed": 0})
    >>> state["train_lr"], state["train_seed"]
    (0.01, 0)
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from streamlit.errors import StreamlitWidgetAlreadyInstantiatedError

from ..keys import session_key

__all__ = ["current", "index_of", "record", "remember", "restore"]


def record(prefix: str, state: MutableMapping[str, Any]) -> dict[str, Any]:
    """The controls' values of record, by widget key; created empty."""
    key = session_key(prefix, "values")
    values = state.get(key)
    if not isinstance(values, dict):
        values = {}
        state[key] = values
    return values


def restore(prefix: str, state: MutableMapping[str, Any], fallbacks: dict[str, Any]) -> None:
    """Seed every widget whose state is missing: from the record, else from ``fallbacks`` (by widget key)."""
    values = record(prefix, state)
    for key, fallback in fallbacks.items():
        if key not in state:
            state[key] = values.get(key, fallback)


def remember(prefix: str, state: MutableMapping[str, Any], keys: set[str]) -> None:
    """Write the values of the controls drawn in this run back into the record, and the record into the
    state of those not drawn.

    A control not drawn (the step size under dopri5) keeps under its key the value it was first seeded
    with, which Streamlit brings back over the widget's own when it next draws it; so that value is
    refreshed from the record. Streamlit refuses that write for a widget drawn in this run, which tells the
    two apart.
    """
    values = record(prefix, state)
    for key in keys:
        if key not in state:
            continue
        if key not in values:
            values[key] = state[key]
            continue
        try:
            state[key] = values[key]
        except StreamlitWidgetAlreadyInstantiatedError:
            values[key] = state[key]


def current(state: MutableMapping[str, Any], key: str, lo: float | None = None, hi: float | None = None) -> Any:
    """A widget's current value, to pass as its default too (clamped to ``[lo, hi]``).

    The browser keeps a widget's value by its id; one that lost it (it happens under load, e.g. when the
    sidebar is rebuilt) shows the widget's default and sends that back: without a default of its own a
    number input shows its minimum, and the run then reads -1000 for both ends of the time span."""
    value = state.get(key)
    if value is None or lo is None or hi is None or isinstance(value, bool):
        return value
    return type(value)(min(max(value, lo), hi))


def index_of(state: MutableMapping[str, Any], key: str, options: list[Any]) -> int:
    """The position of a select box's current value among ``options`` (0 if it is none of them)."""
    value = state.get(key)
    return options.index(value) if value in options else 0
