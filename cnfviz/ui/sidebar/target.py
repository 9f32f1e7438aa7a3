"""The target picker's pieces: the entries it offers, a target's parameter inputs, the built target and its preview.

Widget keys (prefix ``p``): ``p_target`` (the picker), one text input per parameter,
``p_param_<target>_<name>`` (:func:`param_key`), and ``p_target_preview`` (the preview chart).
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from ..._validation import ConfigError
from ...figures.plots import target_preview_figure
from ...targets import (
    SCIPY_PREFIX,
    TARGETS,
    Param,
    Target,
    make_target,
    scipy_distributions,
    scipy_examples,
    scipy_params,
)
from ...targets import SLOW_SCIPY as _SLOW_SCIPY
from ..custom_target import CUSTOM_SOURCES
from ..keys import widget_key
from ..text import plain
from .record import restore

__all__ = [
    "SLOW_SCIPY",
    "build_target",
    "default_param_texts",
    "named_target_controls",
    "param_key",
    "param_specs",
    "param_text",
    "target_choices",
    "target_label",
]

# Constructing these takes seconds (numerical integration in scipy), too slow for a picker that
# rebuilds its preview on every change; the library keeps the list (links and the run budget use it too).
SLOW_SCIPY = _SLOW_SCIPY


def _slug(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z]+", "_", text)


def param_key(prefix: str, target: str, name: str) -> str:
    """The widget key of a target parameter, e.g. ``param_key("train", "scipy:gamma", "a")``.

    Example:
        >>> param_key("train", "scipy:gamma", "a")
        'train_param_scipy_gamma_a'
    """
    return f"{prefix}_param_{_slug(target)}_{name}"


@functools.cache
def target_choices() -> tuple[str, ...]:
    """Every target the picker offers: the registry (1D first), then ``scipy:<name>`` for each continuous
    scipy.stats distribution except the few that take seconds to build (:data:`SLOW_SCIPY`)."""
    names = sorted(TARGETS, key=lambda n: TARGETS[n].dim)
    custom = tuple(CUSTOM_SOURCES)
    return (*names, *custom, *(SCIPY_PREFIX + n for n in scipy_distributions() if n not in SLOW_SCIPY))


def target_label(name: str) -> str:
    """How the picker names an entry: ``moons (2D)``, ``scipy: gamma (1D)``, or a custom source's title."""
    if name in CUSTOM_SOURCES:
        return CUSTOM_SOURCES[name]
    if name.startswith(SCIPY_PREFIX):
        return f"scipy: {name[len(SCIPY_PREFIX) :]} (1D)"
    spec = TARGETS.get(name)
    return f"{name} ({spec.dim}D)" if spec else name


def param_specs(target: str) -> tuple[Param, ...]:
    """The parameters of a named target; a ConfigError listing the targets for any other name."""
    if target.startswith(SCIPY_PREFIX):
        return scipy_params(target[len(SCIPY_PREFIX) :])
    spec = TARGETS.get(target)
    if spec is None:
        raise ConfigError(f'Invalid target "{target}". Must be one of {sorted(TARGETS)} or scipy:<name>')
    return spec.params


def param_text(value: Any) -> str:
    """Text for a parameter's input box that parses back to exactly ``value``."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(param_text(v) for v in value)
    return repr(value) if isinstance(value, float) else str(value)


def default_param_texts(target: str) -> dict[str, str]:
    """What a target's parameter inputs show at first, by parameter name (a required scipy shape: scipy's
    example value)."""
    specs = param_specs(target)
    example = scipy_examples(target[len(SCIPY_PREFIX) :]) if target.startswith(SCIPY_PREFIX) else ()
    out = {}
    shape_i = 0
    for p in specs:
        if p.required:
            value = example[shape_i] if shape_i < len(example) else None
            shape_i += 1
            # scipy's table holds values like 1.9932305483800778: a start need not show sixteen digits.
            out[p.name] = param_text(float(f"{value:.4g}") if isinstance(value, (int, float)) else value)
        else:
            out[p.name] = param_text(list(p.default) if isinstance(p.default, tuple) else p.default)
    return out


@st.cache_resource(max_entries=64, show_spinner=False)
def _cached_target(name: str, params_json: str) -> Target:
    return make_target(name, json.loads(params_json))


def build_target(name: str, params: dict[str, Any]) -> Target:
    """The target ``name`` with ``params``, cached across sessions (targets are immutable)."""
    return _cached_target(name, json.dumps(params, sort_keys=True))


@st.cache_data(max_entries=64, show_spinner=False)
def _cached_preview(name: str, params_json: str) -> go.Figure:
    return target_preview_figure(_cached_target(name, params_json))


def named_target_controls(
    prefix: str,
    target_name: str,
    params: dict[str, Any],
    errors: list[tuple[str, str]],
    show: bool,
    seen: set[str],
) -> Target | None:
    """The parameter inputs and preview of a named target; fills ``params`` and ``errors`` (and ``seen``
    with the widget keys of its inputs), returns the target."""
    state = st.session_state
    try:
        specs = param_specs(target_name)
    except ConfigError as err:
        errors.append(("target", str(err)))
        return None
    defaults = {param_key(prefix, target_name, n): v for n, v in default_param_texts(target_name).items()}
    restore(prefix, state, defaults)
    seen.update(defaults)
    ok = True
    for p in specs:
        key = param_key(prefix, target_name, p.name)
        if show:
            st.text_input(
                p.name + (" (required)" if p.required else ""),
                value=str(state.get(key, "")),
                key=key,
                help=p.help or None,
            )
        text = str(state.get(key, "")).strip()
        if not text:
            if p.required:
                ok = False
                msg = f"{target_name}: parameter {p.name} is required ({p.help})"
                errors.append(("target", msg))
                if show:
                    st.error(plain(msg))
            continue
        try:
            params[p.name] = p.validate(text, target_name)
        except ConfigError as err:
            ok = False
            errors.append(("target", str(err)))
            if show:
                st.error(plain(err))
    if not ok:
        return None
    try:
        target = build_target(target_name, params)
    except ConfigError as err:
        errors.append(("target", str(err)))
        if show:
            st.error(plain(err))
        return None
    if show:
        st.plotly_chart(
            _cached_preview(target_name, json.dumps(dict(target.params), sort_keys=True)),
            key=widget_key(prefix, "target_preview"),
            config={"displayModeBar": False, "staticPlot": True},
        )
        st.caption("Preview: the target's density and samples from it.")
    return target
