"""The sidebar's groups are drawn from the field table: a setting added there shows in its group, unedited."""

from __future__ import annotations

import dataclasses

import pytest
from streamlit.testing.v1 import AppTest

from cnfviz import default_config
from cnfviz.training import fields as fields_module
from cnfviz.training.fields import FIELDS
from cnfviz.ui.sidebar import GROUPS, group_of
from cnfviz.ui.sidebar.groups import controls_of, fields_of, route
from cnfviz.ui.sidebar.widgets import with_values
from tests.apptest import fresh_caches  # noqa: F401 - an autouse fixture

BASE = default_config("normal").replace(target_params={"loc": 6.0, "scale": 0.7})


def _controls_app(config_json: str) -> None:
    import streamlit as st

    from cnfviz import TrainConfig
    from cnfviz.ui import apply_config_to_state, config_controls

    if "applied" not in st.session_state:
        apply_config_to_state("demo", TrainConfig.from_json(config_json))
        st.session_state.applied = True
    st.session_state.result = config_controls("demo")
    st.session_state.config = st.session_state.result.config


def _expander_of(at: AppTest, key: str) -> str:
    """The label of the expander that holds the widget ``key``."""
    for expander in at.sidebar.expander:
        if any(
            getattr(w, "key", None) == key
            for kind in ("selectbox", "number_input", "checkbox")
            for w in expander.get(kind)
        ):
            return expander.label
    raise AssertionError(f"{key} is in no expander")


def test_every_field_the_sidebar_draws_belongs_to_exactly_one_group():
    drawn = [f.path for group in GROUPS for f in fields_of(group)]
    assert len(drawn) == len(set(drawn))
    assert {f.path for f in FIELDS.values() if f.widget} <= set(drawn)
    assert {"model.hidden", "model.tspan", "batch_size"} <= set(drawn), "the hand-drawn ones"
    assert [group_of(FIELDS[p]) for p in ("model.activation", "solver.method", "lr", "grad_clip")] == [
        "network",
        "ode",
        "training",
        "advanced",
    ]
    # A config error lands in the group that draws its setting.
    assert [route(p) for p in ("model.hidden[0]", "adam_iters, lbfgs_iters", "solver.max_nfe", "target_params")] == [
        "network",
        "training",
        "advanced",
        "target",
    ]


def test_a_setting_given_a_widget_in_the_table_appears_in_its_group_and_sets_its_field(monkeypatch):
    # "device" has a table entry but no widget: giving it one in the table alone must draw it.
    device = dataclasses.replace(FIELDS["device"], widget="device_choice")
    monkeypatch.setitem(fields_module.FIELDS, "device", device)
    assert group_of(device) == "training" and controls_of(device) == ()
    at = AppTest.from_function(_controls_app, args=(BASE.to_json(),), default_timeout=60).run()
    assert not at.exception, at.exception
    box = at.selectbox(key="demo_device_choice")
    assert box.label == "Device" and list(box.options) == list(device.choices)
    assert _expander_of(at, "demo_device_choice") == "Training"
    box.select("cpu").run()
    assert not at.exception, at.exception
    assert at.session_state["config"] == BASE.replace(device="cpu")


@pytest.mark.parametrize(("path", "title"), [("n_test", "Training"), ("solver.max_steps", "ODE")])
def test_a_setting_taken_out_of_advanced_moves_to_its_own_group(monkeypatch, path, title):
    f = dataclasses.replace(FIELDS[path], advanced=False)
    monkeypatch.setitem(fields_module.FIELDS, path, f)
    at = AppTest.from_function(_controls_app, args=(BASE.to_json(),), default_timeout=60).run()
    assert not at.exception, at.exception
    key = f"demo_{f.widget}"
    assert _expander_of(at, key) == title
    value = at.number_input(key=key).value + 7
    at.number_input(key=key).set_value(value).run()
    assert not at.exception, at.exception
    assert at.session_state["config"] == with_values(BASE, {path: value})
