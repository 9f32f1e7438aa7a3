"""AppTest checks of lessons on the Train page: a link restores its config exactly, hides controls and
starts one run; garbage in a link falls back with a notice; every preset applies; the address bar follows
the controls; Share and Show code give a link and a script for the setup on screen.

``at.query_params`` stands in for the browser's address bar: AppTest sends it with every run and reads
back what the page wrote.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cnfviz import PRESETS, TrainConfig, default_config
from cnfviz.features.links import config_to_query
from cnfviz.training.presets import DEFAULT_TARGET, SEED_CONFIG
from tests.apptest import fresh_caches, iteration, progress, wait_for  # noqa: F401 - fresh_caches is an autouse fixture

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
TRAIN = str(ROOT / "app_pages" / "train.py")

# A config far from every default: the link must carry all of it, including fields no control shows.
LINKED = TrainConfig(
    target="mixture",
    target_params={"weights": [0.3, 0.7], "means": [-2.0, 1.5], "sds": [0.4, 0.8]},
    model={"hidden": (24, 24), "activation": "softplus", "time": "concat", "linear": False, "tspan": (0.0, 2.0)},
    solver={"method": "dopri5", "rtol": 3e-5, "atol": 1e-6},
    adam_iters=321,
    lr=0.02,
    lbfgs_iters=7,
    batch_size=128,
    lambda_kinetic=0.05,
    seed=11,
    eval_every=25,
    max_seconds=30.0,
)


def open_link(query: dict[str, str], *, via_app: bool = False) -> AppTest:
    """Open the Train page with ``query`` in the address bar (through ``app.py`` if ``via_app``)."""
    at = AppTest.from_file(APP if via_app else TRAIN, default_timeout=60)
    if via_app:
        at.run()
        at.switch_page("app_pages/train.py")
    at.query_params.update(query)
    at.run()
    assert not at.exception, at.exception
    return at


def widget_keys(at: AppTest) -> set[str]:
    widgets = (*at.slider, *at.selectbox, *at.number_input, *at.text_input, *at.checkbox, *at.button)
    return {w.key for w in widgets if w.key}


def links(at: AppTest) -> list[str]:
    """The Share panel's links, in order: this setup, then the lesson link."""
    return [c.value for c in at.code if c.value.startswith(("?", "http"))]


def script(at: AppTest) -> str:
    (code,) = [c.value for c in at.code if c.value.startswith("# Reproduce")]
    return code


# --------------------------------------------------------------------------------------------------
# Links
# --------------------------------------------------------------------------------------------------


def test_a_link_restores_its_config_exactly():
    at = open_link(config_to_query(LINKED))
    assert at.session_state["train__config"] == LINKED
    assert at.selectbox(key="train_target").value == "mixture"
    assert at.text_input(key="train_param_mixture_means").value == "-2.0, 1.5"
    assert at.slider(key="train_width").value == 24 and at.slider(key="train_depth").value == 2
    assert at.selectbox(key="train_solver").value == "dopri5"
    assert at.number_input(key="train_lr").value == 0.02
    assert not at.warning, [w.value for w in at.warning]
    assert at.query_params == config_to_query(LINKED), "the address bar keeps the link"


def test_hidden_controls_are_absent_and_the_lesson_says_so():
    at = open_link({"target": "moons", "hide": "solver,trace"})
    keys = widget_keys(at)
    assert "train_solver" not in keys and "train_step_size" not in keys and "train_trace" not in keys
    assert {"train_width", "train_t0", "train_adam_iters", "train_target"} <= keys
    assert "train_preset" not in keys, "a preset would reset the fixed controls"
    assert any("fixed by this lesson" in c.value for c in at.sidebar.caption)
    assert at.query_params["hide"] == "solver,trace", "the lesson survives in the address bar"
    assert at.session_state["train__config"] == default_config("moons")


def test_autostart_starts_one_run_only():
    at = open_link({"target": "normal", "adam": "40", "eval": "0", "autostart": "1"})
    wait_for(at, lambda a: iteration(a) > 0)
    job_id = at.session_state["train__drawn"][0]
    assert "autostart" not in at.query_params, "a reload must not start another run"
    wait_for(at, lambda a: bool(a.success))
    for _ in range(3):
        at.run()
    assert at.session_state["train__drawn"][0] == job_id, "no second run"
    assert not at.button(key="train_train_button").disabled


def test_garbage_in_a_link_falls_back_with_a_notice():
    at = open_link({"lr": "fast", "target": "unicorns", "hide": "bogus"})
    (warning,) = at.warning
    assert "ignored" in warning.value and "unicorns" in warning.value and "bogus" in warning.value
    config = at.session_state["train__config"]
    assert config.target == DEFAULT_TARGET and config.lr == default_config(DEFAULT_TARGET).lr
    assert "train_solver" in widget_keys(at), "nothing is hidden"
    assert at.query_params == config_to_query(config), "the address bar now holds the clean link"
    at.button(key="train_link_notices_dismiss").click().run()
    assert not at.warning


@pytest.mark.parametrize("query", [{"hidden": "0"}, {"tspan": "1,1", "seed": "-4"}, {"p.loc": "x", "batch": "[]"}])
def test_more_garbage_never_crashes(query):
    at = open_link(query)
    assert at.warning and isinstance(at.session_state["train__config"], TrainConfig)


def test_the_learn_pages_seed_link_loads_the_seed_tutorial():
    at = open_link({"preset": "seed"}, via_app=True)
    assert at.session_state["train__config"] == SEED_CONFIG
    assert at.slider(key="train_width").value == 3 and at.number_input(key="train_t1").value == 10.0
    assert at.query_params == config_to_query(SEED_CONFIG)


# --------------------------------------------------------------------------------------------------
# The address bar follows the controls
# --------------------------------------------------------------------------------------------------


def test_the_url_follows_config_edits_and_never_fights_them():
    at = open_link({"target": "moons"})
    at.slider(key="train_width").set_value(20).run()
    config = at.session_state["train__config"]
    assert config.model.hidden == (20, 20, 20)
    assert at.query_params == config_to_query(config) and at.query_params["hidden"] == "20,20,20"
    at.run()
    at.run()
    assert at.slider(key="train_width").value == 20, "the written URL is not applied back over the edit"
    at.number_input(key="train_t1").set_value(0.0).run()  # invalid: the URL keeps the last valid setup
    assert at.session_state["train__config"] is None
    assert at.query_params["hidden"] == "20,20,20"


def test_coming_back_without_a_query_keeps_the_session_settings():
    at = open_link({"target": "moons", "hide": "trace"})
    at.slider(key="train_width").set_value(12).run()
    at.query_params.clear()  # what a click on "Train" in the page menu sends
    at.run()
    assert at.slider(key="train_width").value == 12
    assert at.query_params["hidden"] == "12,12,12" and at.query_params["hide"] == "trace"


def test_a_new_link_in_the_same_session_applies():
    at = open_link({"target": "moons"})
    at.query_params.clear()
    at.query_params.update({"preset": "seed"})  # the Learn page's button
    at.run()
    assert at.session_state["train__config"] == SEED_CONFIG


# --------------------------------------------------------------------------------------------------
# Presets
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_in_the_picker_applies_its_config(name):
    at = AppTest.from_file(TRAIN, default_timeout=60).run()
    at.selectbox(key="train_preset").set_value(name).run()
    assert any(PRESETS[name].description == c.value for c in at.sidebar.caption)
    at.button(key="train_preset_apply").click().run()
    assert not at.exception, at.exception
    assert at.session_state["train__config"] == PRESETS[name].config
    assert at.query_params == config_to_query(PRESETS[name].config)


@pytest.mark.parametrize("name", [n for n, p in PRESETS.items() if p.compare])
def test_comparison_presets_link_to_the_compare_page(name):
    at = open_link({"target": "moons"}, via_app=True)
    at.selectbox(key="train_preset").set_value(name).run()
    at.button(key="train_preset_apply").click().run()
    assert at.session_state["train__config"] == PRESETS[name].config, "Train loads the preset's own config"
    (link,) = at.get("page_link")
    assert "Compare" in link.value
    assert link.proto.query_string == f"preset={name}" and link.proto.page.endswith("compare")


# --------------------------------------------------------------------------------------------------
# Share and Show code
# --------------------------------------------------------------------------------------------------


def test_share_gives_the_link_and_a_lesson_link():
    at = open_link(config_to_query(LINKED))
    share, _ = links(at)
    assert share.startswith("?") and "target=mixture" in share and "lr=0.02" in share
    at.multiselect(key="train_share_hide").set_value(["solver", "lr"]).run()
    at.checkbox(key="train_share_autostart").check().run()
    _, lesson = links(at)
    assert lesson.endswith("&hide=lr,solver&autostart=1")
    assert "hide" not in at.query_params, "building a lesson link does not hide anything here"


def test_show_code_builds_the_same_config():
    at = open_link(config_to_query(LINKED))
    code = script(at)
    assert "trainer.run()" in code and "FFJORDDistribution" in code
    head = code.split("trainer = ")[0]
    scope: dict = {}
    exec(head, scope)
    assert scope["config"] == at.session_state["train__config"] == LINKED
