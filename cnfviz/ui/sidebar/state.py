"""A config shown in the controls: its widget values (:func:`config_to_state`), written into session state and
the values of record (:func:`apply_config_to_state`), and the base config the controls build on.

Call :func:`apply_config_to_state` from a callback, or before the controls are drawn in a run: Streamlit
refuses writes to a widget that already exists. Every setting with a widget key in the field table
(:attr:`~cnfviz.training.fields.Field.widget`) is written from the table; only the target, the widths and
the time span, drawn with several widgets, are written by hand.
"""

from __future__ import annotations

import functools
from collections.abc import MutableMapping
from typing import Any

import streamlit as st

from ..._validation import ConfigError
from ...targets import SCIPY_PREFIX, make_target
from ...training.config import TrainConfig
from ...training.fields import FIELDS
from ...training.presets import DEFAULT_TARGET, default_config, target_dim
from ..custom_target import CONFIG_TARGETS, CUSTOM_SOURCES, source_dim
from ..keys import session_key, widget_key
from .record import record
from .target import default_param_texts, param_key, param_text, target_choices
from .widgets import WIDTH_MAX, widget_value

__all__ = [
    "apply_config_to_state",
    "base_config",
    "config_to_state",
    "defaults_for",
    "load_dim_defaults",
    "picker_dim",
]


def config_to_state(prefix: str, config: TrainConfig, *, source: str | None = None) -> dict[str, Any]:
    """The widget values that show ``config``, by widget key (see :mod:`cnfviz.ui.sidebar`).

    Arguments:
        prefix: the page's widget-key prefix.
        config: the config to show.
        source: for a custom target (``samples``, ``image``), the picker entry to show, e.g. ``drawing``;
            by default the entry named like the target.

    Example:
        >>> from cnfviz.training.presets import SEED_CONFIG
        >>> values = config_to_state("train", SEED_CONFIG)
        >>> values["train_width"], values["train_t1"], values["train_param_normal_loc"]
        (3, 10.0, '6.0')
    """
    m, s = config.model, config.solver
    if config.target not in target_choices() and not config.target.startswith(SCIPY_PREFIX):
        raise ConfigError(f'the sidebar cannot show target "{config.target}"; it offers {list(target_choices())}')
    custom = config.target in CONFIG_TARGETS.values()
    picked = source if custom and CONFIG_TARGETS.get(source or "") == config.target else config.target
    k = functools.partial(widget_key, prefix)
    # Every setting one widget shows alone, from the table.
    values: dict[str, Any] = {k(f.widget): widget_value(f, f.get(config)) for f in FIELDS.values() if f.widget}
    # The settings drawn with several widgets (or with a default of their own when none).
    t0, t1 = (float(v) for v in m.tspan)
    values.update(
        {
            k("target"): picked,
            k("width"): min(max(m.hidden, default=32), WIDTH_MAX),
            k("depth"): len(m.hidden),
            k("t0"): t0,
            k("t1"): t1,
            k("step_size"): float(s.step_size) if s.step_size else abs(t1 - t0) / 8 or 0.125,
            k("full_batch"): config.batch_size is None,
            k("batch"): int(config.batch_size or 256),
        }
    )
    if custom:
        return values
    texts = default_param_texts(config.target)
    given = dict(config.target_params)
    try:
        given = make_target(config.target, given).params
    except ConfigError:
        pass
    for name in texts:
        if name in given:
            texts[name] = param_text(given[name])
        values[param_key(prefix, config.target, name)] = texts[name]
    return values


def apply_config_to_state(prefix: str, config: TrainConfig, state: MutableMapping[str, Any] | None = None) -> None:
    """Make the controls show ``config``: write its widget values into session state and the values of record.

    Call it in a widget callback, or before :func:`~cnfviz.ui.sidebar.config_controls` in a run. Fields no
    control shows (``device``) are kept as the base the controls build on.

    Arguments:
        prefix: the page's widget-key prefix, e.g. ``"train"``.
        config: the config to show.
        state: where to write; ``st.session_state`` by default.
    """
    state = st.session_state if state is None else state
    source = None
    if config.target in CONFIG_TARGETS.values():
        # Keep the custom source on screen (a drawing and a CSV both train as "samples").
        candidates = (state.get(widget_key(prefix, "target")), state.get(session_key(prefix, "custom_source")))
        source = next((c for c in candidates if CONFIG_TARGETS.get(c or "") == config.target), None)
    values = config_to_state(prefix, config, source=source)
    for key, value in values.items():
        state[key] = value
    record(prefix, state).update(values)
    state[session_key(prefix, "base_config")] = config
    state[session_key(prefix, "last_target")] = values[widget_key(prefix, "target")]
    dim = picker_dim(prefix, values[widget_key(prefix, "target")], state)
    if dim is not None:
        state[session_key(prefix, "dim")] = dim


def base_config(prefix: str, state: MutableMapping[str, Any] | None = None) -> TrainConfig:
    """The config the controls build on: the last one applied, or the fast default for the default target."""
    state = st.session_state if state is None else state
    base = state.get(session_key(prefix, "base_config"))
    return base if isinstance(base, TrainConfig) else default_config(DEFAULT_TARGET)


def picker_dim(prefix: str, picked: str, state: MutableMapping[str, Any] | None = None) -> int | None:
    """The dimension of a picker entry's target; None for a CSV not uploaded yet (or a bad name)."""
    if picked in CUSTOM_SOURCES:
        return source_dim(prefix, picked, state)
    try:
        return target_dim(picked)
    except ConfigError:
        return None


def defaults_for(picked: str, dim: int) -> TrainConfig:
    """The fast defaults for a picker entry (custom sources: those of their dimension)."""
    if picked in CUSTOM_SOURCES:
        return default_config("normal" if dim == 1 else "8gaussians").replace(target=CONFIG_TARGETS[picked])
    return default_config(picked)


def load_dim_defaults(prefix: str, picked: str, dim: int) -> None:
    """Load the fast defaults of ``dim`` for a custom source mid-run, leaving the (drawn) picker alone."""
    state = st.session_state
    config = defaults_for(picked, dim).replace(seed=int(state.get(widget_key(prefix, "seed"), 0)))
    values = record(prefix, state)
    for key, value in config_to_state(prefix, config, source=picked).items():
        if key != widget_key(prefix, "target"):
            state[key] = values[key] = value
    state[session_key(prefix, "base_config")] = config
    state[session_key(prefix, "dim")] = dim
    st.toast(f"Loaded the fast {dim}D defaults for your {dim}D data.")
