"""The training controls: one function draws every group and returns one validated :class:`~cnfviz.TrainConfig`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import streamlit as st

from ..._validation import ConfigError
from ...features.links import CONTROLS
from ...targets import Target
from ...training.config import TrainConfig
from ...training.device import device_label
from ..keys import session_key, widget_key
from .groups import Drawing, advanced_group, network_group, ode_group, route, target_group, training_group
from .presets import preset_picker
from .record import remember, restore
from .state import apply_config_to_state, base_config, config_to_state
from .widgets import with_values

__all__ = ["ControlsResult", "config_controls"]


@dataclass(frozen=True)
class ControlsResult:
    """What the controls say: one config, the target it names, and what is wrong with them.

    ``config`` and ``target`` are None when a control is invalid; ``errors`` then holds one message each.
    ``waiting`` says what the user still has to do before a custom target exists (upload, draw); it is
    not an error, and ``errors`` holds it too, so that ``ok`` stays False.
    """

    config: TrainConfig | None
    target: Target | None
    errors: tuple[str, ...]
    waiting: str | None = None

    @property
    def ok(self) -> bool:
        return self.config is not None and self.target is not None and not self.errors


def config_controls(
    prefix: str = "train",
    *,
    hidden: frozenset[str] = frozenset(),
    container: Any = None,
) -> ControlsResult:
    """Draw the training controls and read them into one config.

    Arguments:
        prefix: the widget-key prefix, usually the page name (``train`` → ``train_width``).
        hidden: names from :data:`CONTROLS` not to draw; they keep the base config's values.
        container: where to draw; ``st.sidebar`` by default.

    Returns:
        a :class:`ControlsResult`: the config and target, or the validation messages (each is also shown
        in the page, under its control).
    """
    unknown = set(hidden) - set(CONTROLS)
    if unknown:
        raise ValueError(f"unknown control name(s) {sorted(unknown)}. Valid names: {list(CONTROLS)}")
    state = st.session_state
    if session_key(prefix, "base_config") not in state:
        apply_config_to_state(prefix, base_config(prefix))
    base = base_config(prefix)
    seeds = {**config_to_state(prefix, base), widget_key(prefix, "preset"): None}
    restore(prefix, state, seeds)
    # The widget keys whose values go back into the record after drawing.
    d = Drawing(prefix, base, frozenset(hidden), seen=set(seeds))

    with st.sidebar if container is None else container:
        notice = state.pop(session_key(prefix, "notice"), None)
        if notice:
            st.toast(notice)
        if d.shown("device"):
            label = device_label()
            st.badge(label, icon=":material/memory:", color="green" if label.startswith("GPU") else "blue")
        if d.shown("presets"):
            preset_picker(prefix)
        pick = target_group(d)
        values = dict(pick.values)
        for group in (network_group, ode_group, training_group, advanced_group):
            values.update(group(d))

    config: TrainConfig | None = None
    if not d.errors:
        try:
            config = with_values(d.base, values)
        except ConfigError as err:
            group_name = route(err.field)
            d.errors.append((group_name, str(err)))
            slot = d.slots.get(group_name) or d.slots.get("training")
            if slot is not None:
                slot.error(str(err))
    state[session_key(prefix, "last_target")] = pick.picked
    remember(prefix, state, d.seen)
    if not d.errors:
        result = ControlsResult(config, pick.target, ())
    else:
        result = ControlsResult(None, None, tuple(m for _, m in d.errors), waiting=pick.waiting)
    # Kept for other code in the same run (a "share this config" link, the tests).
    state[session_key(prefix, "config")] = result.config
    return result
