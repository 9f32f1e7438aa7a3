"""The preset picker and the callbacks that load a whole config into the controls (a preset, fast defaults,
the defaults of a target of another dimension).

Callbacks run before the page, so they may write widget state. Widget keys (prefix ``p``): ``p_preset``,
``p_preset_apply``, ``p_preset_default``, and the container ``p_preset_compare``.
"""

from __future__ import annotations

import functools

import streamlit as st
from streamlit.errors import StreamlitAPIException

from ..._validation import ConfigError
from ...targets import make_target
from ...training.config import TrainConfig
from ...training.presets import DEFAULT_TARGET, PRESETS, default_config
from ..custom_target import CUSTOM_SOURCES
from ..keys import session_key, widget_key
from .state import apply_config_to_state, defaults_for, picker_dim
from .target import param_key, param_specs, target_label

__all__ = ["on_target_change", "preset_picker"]


def _notice(prefix: str, text: str) -> None:
    st.session_state[session_key(prefix, "notice")] = text


def on_target_change(prefix: str) -> None:
    """The picker's callback: a target of another dimension loads its fast defaults; any new target
    drops the time budget."""
    state = st.session_state
    new = state[widget_key(prefix, "target")]
    if new in CUSTOM_SOURCES:
        state[session_key(prefix, "custom_source")] = new
    new_dim = picker_dim(prefix, new)
    old_dim = state.get(session_key(prefix, "dim"))
    if new_dim is not None and new_dim != old_dim:
        seed = state.get(widget_key(prefix, "seed"), 0)
        apply_config_to_state(prefix, defaults_for(new, new_dim).replace(seed=int(seed)))
        what = f"your data ({target_label(new)})" if new in CUSTOM_SOURCES else new
        _notice(prefix, f"Loaded the fast {new_dim}D defaults for {what}.")
    # A preset's time budget belongs to its target: a new target trains without one unless asked.
    state[widget_key(prefix, "max_seconds")] = 0.0
    state[session_key(prefix, "last_target")] = new


def _apply_preset(prefix: str, config: TrainConfig, message: str) -> None:
    apply_config_to_state(prefix, config)
    _notice(prefix, message)


def _apply_named_preset(prefix: str) -> None:
    name = st.session_state.get(widget_key(prefix, "preset"))
    if name in PRESETS:
        _apply_preset(prefix, PRESETS[name].config, f"Loaded the preset: {PRESETS[name].title}.")


def _apply_fast_defaults(prefix: str) -> None:
    state = st.session_state
    target = state.get(widget_key(prefix, "target"), DEFAULT_TARGET)
    seed = int(state.get(widget_key(prefix, "seed"), 0))
    if target in CUSTOM_SOURCES:
        dim = picker_dim(prefix, target) or state.get(session_key(prefix, "dim")) or 2
        _apply_preset(prefix, defaults_for(target, dim).replace(seed=seed), f"Fast {dim}D defaults for your data.")
        return
    params = {}
    try:
        for p in param_specs(target):
            text = str(state.get(param_key(prefix, target, p.name), "")).strip()
            if text:
                params[p.name] = p.validate(text, target)
        config = default_config(target, params)
        make_target(target, params)
    except ConfigError:
        config = default_config(target)
    _apply_preset(prefix, config.replace(seed=seed), f"Fast defaults for {target}.")


def preset_picker(prefix: str) -> None:
    """The preset selectbox with its one-line description, Apply, Fast defaults, and the Compare link."""
    k = functools.partial(widget_key, prefix)
    name = st.selectbox(
        "Preset",
        list(PRESETS),
        index=list(PRESETS).index(preset) if (preset := st.session_state.get(k("preset"))) in PRESETS else None,
        key=k("preset"),
        format_func=lambda n: PRESETS[n].title,
        placeholder="Choose a preset or lesson…",
        help="Named set-ups, from the seed tutorial to experiments that go wrong on purpose.",
    )
    if name is not None:
        st.caption(PRESETS[name].description)
    c1, c2 = st.columns(2)
    c1.button(
        "Apply",
        key=k("preset_apply"),
        type="primary" if name is not None else "secondary",
        icon=":material/check:",
        disabled=name is None,
        on_click=_apply_named_preset,
        args=(prefix,),
        width="stretch",
        help="Load the chosen preset into the controls below.",
    )
    c2.button(
        "Fast defaults",
        key=k("preset_default"),
        help="A good, fast setup for the chosen target.",
        on_click=_apply_fast_defaults,
        args=(prefix,),
        width="stretch",
    )
    if name is not None and PRESETS[name].compare:
        with st.container(key=k("preset_compare")):
            _compare_link(name)


def _compare_link(name: str) -> None:
    labels = " and ".join(label for label, _ in PRESETS[name].compare)
    label = f"Compare {labels} side by side"
    try:
        st.page_link(
            "app_pages/compare.py", label=label, icon=":material/compare_arrows:", query_params={"preset": name}
        )
    except StreamlitAPIException:  # the page runs outside app.py (a test), without the navigation
        st.markdown(f":material/compare_arrows: [{label}](compare?preset={name})")
