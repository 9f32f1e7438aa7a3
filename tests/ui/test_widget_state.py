"""No sidebar control loses its value when Streamlit drops its widget state between runs.

Under load, Streamlit can drop a widget's state (a race between fragment reruns and full reruns); a number
input rebuilt without state shows its minimum (the time span fell to -1000, -1000 in the classroom). Here
AppTest deletes each control's state between two runs, and the control must come back with its last value.
"""

from __future__ import annotations

from typing import Any

import pytest
from streamlit.testing.v1 import AppTest, element_tree

from tests.apptest import TRAIN, fresh_caches  # noqa: F401 - fresh_caches is an autouse fixture

KINDS = ("number_input", "slider", "selectbox", "checkbox", "text_input")


def _controls(at: AppTest) -> dict[str, Any]:
    """Every keyed sidebar control of the Train page, by widget key."""
    return {w.key: w for kind in KINDS for w in at.sidebar.get(kind) if w.key and w.key.startswith("train_")}


def drop_widget_state(at: AppTest, key: str, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    """Run the page once after Streamlit lost the widget ``key``'s state: its session state is deleted,
    and the run's widget states (what a browser sends) lack it too, as when the frontend rebuilt it."""
    widget_ids = {w.id for kind in KINDS for w in at.get(kind) if getattr(w, "key", None) == key}
    del at.session_state[key]
    real = element_tree.get_widget_state
    with monkeypatch.context() as m:
        m.setattr(element_tree, "get_widget_state", lambda node: None if node.id in widget_ids else real(node))
        return at.run()


def _change(widget: Any) -> bool:
    """Give the widget a valid value other than its current one; False if it has none to offer."""
    kind, value = widget.type, widget.value
    if kind == "checkbox":
        widget.set_value(not value)
    elif widget.key == "train_target":
        # Its labels are formatted ("moons (2D)"), which AppTest's select_index cannot map back.
        widget.set_value("moons" if value != "moons" else "circles")
    elif kind == "selectbox":
        current = widget.index
        others = [i for i in range(len(widget.options)) if i != current]
        if not others:
            return False
        widget.select_index(others[-1])
    elif kind == "text_input":
        # A target parameter: a different valid number of the same shape (a location, a scale...).
        try:
            widget.set_value(", ".join(repr(float(p) * 1.5 + 0.5) for p in value.split(",")))
        except ValueError:
            return False
    elif kind == "slider":
        widget.set_value(widget.max if value != widget.max else widget.min)
    else:  # number_input: one step up, inside the bounds
        step = widget.step or 1
        new = value + step if widget.max is None or value + step <= widget.max else value - step
        widget.set_value(type(value)(round(new, 9)))
    return True


def test_every_sidebar_control_comes_back_with_its_last_value_after_its_state_is_dropped(monkeypatch):
    at = AppTest.from_file(TRAIN, default_timeout=60).run()
    assert not at.exception, at.exception
    keys = sorted(_controls(at))
    # The target goes last: picking one of another dimension loads its defaults into every other control.
    keys.sort(key=lambda k: k == "train_target")
    assert {"train_t0", "train_t1", "train_width", "train_solver", "train_seed", "train_preset"} <= set(keys)
    checked = []
    for key in keys:
        widget = _controls(at).get(key)
        if widget is None or widget.disabled:  # e.g. the batch size under "Full batch"
            continue
        old = widget.value
        if not _change(widget):
            continue
        at.run()
        assert not at.exception, at.exception
        want = _controls(at)[key].value
        assert want != old, f"{key} did not change"
        before = {k: w.value for k, w in _controls(at).items()}

        drop_widget_state(at, key, monkeypatch)
        assert not at.exception, at.exception
        after = {k: w.value for k, w in _controls(at).items()}
        assert after[key] == want, f"{key} came back as {after[key]!r}, not its last value {want!r}"
        assert after == before, "the other controls kept their values too"
        assert not [e.value for e in at.error if "time span" in e.value]
        checked.append(key)
    assert len(checked) >= 20, checked


def test_the_time_span_survives_losing_both_inputs_at_once(monkeypatch):
    at = AppTest.from_file(TRAIN, default_timeout=60).run()
    at.number_input(key="train_t0").set_value(0.25).run()
    at.number_input(key="train_t1").set_value(3.5).run()
    ids = {at.number_input(key="train_t0").id, at.number_input(key="train_t1").id}
    del at.session_state["train_t0"]
    del at.session_state["train_t1"]
    real = element_tree.get_widget_state
    with monkeypatch.context() as m:
        m.setattr(element_tree, "get_widget_state", lambda node: None if node.id in ids else real(node))
        at.run()
    assert not at.exception, at.exception
    assert (at.number_input(key="train_t0").value, at.number_input(key="train_t1").value) == (0.25, 3.5)
    assert not at.error, [e.value for e in at.error]
    config = at.session_state["train__config"]
    assert config.model.tspan == (0.25, 3.5)


@pytest.mark.parametrize("key", ["train_step_size", "train_rtol"])
def test_a_control_not_drawn_for_a_while_comes_back_with_its_last_value(key):
    """Streamlit drops the state of a widget a run does not draw (the step size under dopri5)."""
    at = AppTest.from_file(TRAIN, default_timeout=60).run()
    solver = at.selectbox(key="train_solver")
    fixed = "rk4" if key == "train_step_size" else "dopri5"
    other = "dopri5" if fixed == "rk4" else "rk4"
    solver.select(fixed).run()
    widget = at.number_input(key=key)
    want = round(widget.value * 2, 8)
    widget.set_value(want).run()
    at.selectbox(key="train_solver").select(other).run()
    assert key not in [w.key for w in at.number_input]
    at.run()
    at.selectbox(key="train_solver").select(fixed).run()
    assert not at.exception, at.exception
    assert at.number_input(key=key).value == want


def _proto_default(widget: Any) -> Any:
    """The default a widget's element carries: what a browser that lost its state shows (and sends back)."""
    default = widget.proto.default
    if widget.type == "slider":
        return [int(v) if float(v).is_integer() else v for v in default]
    if widget.type == "selectbox":
        return widget.options[default]
    return default


def _shown(widget: Any) -> Any:
    if widget.type == "slider":
        return [widget.value]
    if widget.type == "selectbox":
        return widget.options[widget.index]
    return widget.value


def test_every_sidebar_control_carries_its_current_value_as_its_default():
    """Under load the browser itself can lose a widget's state (in the classroom every number input of a
    tab fell to its minimum, the server then read t0 = t1 = -1000): it rebuilds the widget from the
    default its element carries, so that default must be the control's current value, not its minimum."""
    at = AppTest.from_file(TRAIN, default_timeout=60).run()
    for key in sorted(_controls(at)):
        widget = _controls(at).get(key)
        if key in ("train_target", "train_preset") or widget is None or widget.disabled:
            continue  # the target reloads every default; the preset picker is covered below
        old = widget.value
        if _change(widget):
            at.run()
            assert not at.exception, at.exception
            assert _controls(at)[key].value != old, key
    at.selectbox(key="train_preset").select_index(2).run()
    controls = _controls(at)
    assert len(controls) >= 20
    for key, widget in controls.items():
        assert _proto_default(widget) == _shown(widget), f"{key} would come back as its default"
