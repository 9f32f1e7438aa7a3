"""AppTest checks of the Streamlit app: every page renders, and the Train page trains, pauses, stops,
loads presets, rejects bad input and asks before discarding a live run.

AppTest has no browser, so a loop of ``at.run()`` stands in for the page's ``run_every`` polling. All
AppTest instances share one session id, so every test starts from cleared caches (which also stops the
jobs of the previous test through the session cache's ``on_release``).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from cnfviz import TrainConfig, default_config
from cnfviz.runtime.job import JobSlots
from cnfviz.training.presets import SEED_CONFIG
from cnfviz.ui import DEFAULT_MAX_JOBS, DEFAULT_TARGET, JobHolder, config_to_state, max_jobs, progress_text
from tests.apptest import (  # noqa: F401 - fresh_caches is an autouse fixture
    fresh_caches,
    iteration,
    live_chart_figure,
    progress,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
TRAIN = str(ROOT / "app_pages" / "train.py")
PAGES = sorted(p.name for p in (ROOT / "app_pages").glob("*.py"))


def train_page() -> AppTest:
    at = AppTest.from_file(TRAIN, default_timeout=60).run()
    assert not at.exception, at.exception
    return at


def chart(at: AppTest, key: str) -> dict:
    """The figure of the chart ``key``: a plotly chart, or a live chart (its figure travels as JSON)."""
    charts = [c for c in at.get("plotly_chart") if key in c.proto.id or getattr(c, "key", None) == key]
    if charts:
        return json.loads(charts[0].proto.spec)
    return live_chart_figure(at, key)


def trace_values(trace: dict, axis: str) -> np.ndarray:
    v = trace[axis]
    if isinstance(v, dict):  # plotly sends numpy arrays as base64 typed arrays
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
    return np.asarray(v, dtype=float)


def ended(at: AppTest) -> bool:
    return bool(at.success or at.get("table") or any("Stopped" in i.value for i in at.info))


def start_long_run(at: AppTest) -> AppTest:
    at.number_input(key="train_adam_iters").set_value(100_000).run()
    at.button(key="train_train_button").click().run()
    assert not at.exception, at.exception
    return wait_for(at, lambda a: iteration(a) >= 2)


# --------------------------------------------------------------------------------------------------
# Smoke
# --------------------------------------------------------------------------------------------------


def test_app_opens_on_home_with_preview_and_link():
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, at.exception
    assert any("continuous normalizing flow" in m.value for m in at.markdown)
    assert at.get("page_link"), "the home page links to Train"
    assert at.get("image") or at.info, "the preview (or a note that it is missing) is shown"


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders(page):
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page(f"app_pages/{page}").run()
    assert not at.exception, at.exception


def test_no_pages_folder_beside_app_py():
    # Streamlit runs a folder named pages/ next to the main script as a legacy multipage app until
    # st.navigation is first called: a fresh server's first /train would skip app.py for every session
    # (tests/browser/test_train_browser.py checks the first request end to end).
    assert not (ROOT / "pages").exists()
    assert len(PAGES) == 4


def test_train_page_opens_idle_with_fast_defaults():
    at = train_page()
    assert at.selectbox(key="train_target").value == DEFAULT_TARGET
    assert at.number_input(key="train_adam_iters").value == default_config(DEFAULT_TARGET).adam_iters
    assert not at.button(key="train_train_button").disabled
    assert at.button(key="train_pause_button").disabled
    assert at.button(key="train_stop_button").disabled
    assert not at.error


# --------------------------------------------------------------------------------------------------
# A whole run
# --------------------------------------------------------------------------------------------------


def test_train_until_done_shows_loss_and_metrics():
    at = train_page()
    at.selectbox(key="train_target").set_value("mixture").run()
    at.number_input(key="train_adam_iters").set_value(40).run()
    at.button(key="train_train_button").click().run()
    assert not at.exception, at.exception
    assert at.button(key="train_train_button").disabled, "Train is disabled while the run is active"
    # The status and the results are two fragments, each with its own snapshot: wait for both to show the end.
    wait_for(at, lambda a: bool(a.get("table")) and bool(a.success or a.error), timeout=60)
    assert at.success and "Done" in at.success[0].value
    loss = chart(at, "train_loss_chart")
    x = trace_values(loss["data"][0], "x")
    assert len(x) >= 10 and x[-1] == 40
    names = [t.get("name") for t in loss["data"]]
    assert "test NLL" in names and "NFE per iteration" in names
    metrics = list(at.table[0].value["metric"])
    for metric in ("seed TV", "grid TV", "test NLL", "∫p"):
        assert metric in metrics
    chart(at, "train_density_chart")
    assert not at.button(key="train_train_button").disabled
    # Generate samples after the run, with a CSV download.
    at.number_input(key="train_sample_n").set_value(200).run()
    at.button(key="train_sample_button").click().run()
    assert not at.exception, at.exception
    chart(at, "train_samples_chart")
    keys = {b.proto.id for b in at.get("download_button")}
    for key in ("train_samples_download", "train_checkpoint_download", "train_config_download"):
        assert any(key in k for k in keys), key


def test_pause_step_resume_stop():
    at = start_long_run(train_page())
    at.button(key="train_pause_button").click().run()
    wait_for(at, lambda a: "paused" in progress(a))
    assert at.button(key="train_pause_button").label == "Resume"
    time.sleep(1.0)  # the iteration in flight when Pause was pressed finishes
    at.run()
    paused_at = iteration(at)
    time.sleep(0.6)
    at.run()
    assert iteration(at) == paused_at, "no iterations while paused"
    at.button(key="train_step_button").click().run()
    wait_for(at, lambda a: iteration(a) == paused_at + 1)
    time.sleep(0.4)
    at.run()
    assert iteration(at) == paused_at + 1, "Step runs exactly one iteration"
    at.button(key="train_pause_button").click().run()  # Resume
    wait_for(at, lambda a: iteration(a) > paused_at + 2)
    at.button(key="train_stop_button").click().run()
    wait_for(at, ended, timeout=60)
    assert any("Stopped" in i.value for i in at.info)
    assert not at.error
    at.button(key="train_reset_button").click().run()
    assert not at.get("progress") and not at.get("table")


# --------------------------------------------------------------------------------------------------
# Controls
# --------------------------------------------------------------------------------------------------


def test_seed_preset_reproduces_the_tutorial():
    at = train_page()
    assert at.button(key="train_preset_apply").disabled, "nothing to apply before a preset is chosen"
    at.selectbox(key="train_preset").set_value("seed").run()
    assert any("DiffEqFlux tutorial" in c.value for c in at.sidebar.caption), "the one-line description shows"
    at.button(key="train_preset_apply").click().run()
    assert not at.exception, at.exception
    assert at.session_state["train__config"] == SEED_CONFIG
    expected = config_to_state("train", SEED_CONFIG)
    assert at.slider(key="train_width").value == 3 and at.slider(key="train_depth").value == 1
    assert at.number_input(key="train_t1").value == 10.0
    assert at.text_input(key="train_param_normal_loc").value == expected["train_param_normal_loc"]
    assert at.checkbox(key="train_full_batch").value


def test_switching_to_a_2d_target_loads_its_defaults():
    at = train_page()
    at.selectbox(key="train_target").set_value("moons").run()
    assert not at.exception, at.exception
    cfg = at.session_state["train__config"]
    assert isinstance(cfg, TrainConfig) and cfg.target == "moons"
    assert cfg.model.hidden == (64, 64, 64) and cfg.model.tspan == (0.0, 0.5)


def test_bad_scipy_shape_shows_an_error_and_disables_train():
    at = train_page()
    at.selectbox(key="train_target").set_value("scipy:gamma").run()
    at.text_input(key="train_param_scipy_gamma_a").set_value("-1").run()
    assert not at.exception, at.exception
    assert any("gamma" in e.value for e in at.error)
    assert at.button(key="train_train_button").disabled
    at.text_input(key="train_param_scipy_gamma_a").set_value("two").run()
    assert not at.exception and any("number" in e.value for e in at.error)
    at.text_input(key="train_param_scipy_gamma_a").set_value("2").run()
    assert not at.error and not at.button(key="train_train_button").disabled


def test_empty_time_span_shows_an_error():
    at = train_page()
    at.number_input(key="train_t1").set_value(0.0).run()
    assert not at.exception, at.exception
    assert any("t0" in e.value for e in at.error)
    assert at.button(key="train_train_button").disabled
    assert at.session_state["train__config"] is None


def test_changing_the_config_while_running_asks_first():
    at = start_long_run(train_page())
    width = at.slider(key="train_width").value
    at.slider(key="train_width").set_value(width + 8).run()
    assert any("changed the settings" in w.value for w in at.warning)
    at.button(key="train_keep_button").click().run()
    assert at.slider(key="train_width").value == width, "Keep running restores the run's settings"
    assert not at.warning
    first_iteration = iteration(at)
    at.slider(key="train_width").set_value(width + 8).run()
    at.button(key="train_discard_button").click().run()
    assert not at.exception, at.exception
    assert not at.warning
    wait_for(at, lambda a: 0 < iteration(a))
    assert at.session_state["train__config"].model.hidden[0] == width + 8
    assert iteration(at) <= first_iteration + 50
    at.button(key="train_stop_button").click().run()


# --------------------------------------------------------------------------------------------------
# Session plumbing
# --------------------------------------------------------------------------------------------------


def test_jobs_beyond_the_cap_queue_with_their_position():
    assert max_jobs({"CNFVIZ_MAX_JOBS": "3"}) == 3 and max_jobs({"CNFVIZ_MAX_JOBS": "0"}) == DEFAULT_MAX_JOBS
    slots = JobSlots(1)
    first, second = JobHolder(slots), JobHolder(slots)
    cfg = TrainConfig(target="normal", adam_iters=100_000, batch_size=32, eval_every=0)
    try:
        a = first.start(cfg)
        deadline = time.monotonic() + 30
        while a.snapshot().state != "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        b = second.start(cfg)
        time.sleep(0.2)
        snap = b.snapshot()
        assert snap.state == "queued" and snap.queue_position == 1
        assert progress_text(snap) == "Waiting for a free training slot"
        first.close()
        deadline = time.monotonic() + 30
        while b.snapshot().state == "queued" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert b.snapshot().state in ("running", "paused", "done")
    finally:
        first.close()
        second.close()
    assert not any(t.name.startswith("job-") and t.is_alive() for t in threading.enumerate() if t is a._thread)


# --------------------------------------------------------------------------------------------------
# The controls as a building block (for other pages: presets, shareable URLs, hidden controls)
# --------------------------------------------------------------------------------------------------


def _controls_app(config_json: str, hidden: tuple[str, ...]) -> None:
    import streamlit as st

    from cnfviz import TrainConfig
    from cnfviz.ui import apply_config_to_state, config_controls

    if "applied" not in st.session_state:
        apply_config_to_state("demo", TrainConfig.from_json(config_json))
        st.session_state.applied = True
    st.session_state.result = config_controls("demo", hidden=frozenset(hidden)).config


@pytest.mark.parametrize("hidden", [(), ("width", "depth", "solver", "tolerances", "lambdas", "target")])
def test_apply_config_round_trips_through_the_controls(hidden):
    config = TrainConfig(
        target="mixture",
        target_params={"weights": [0.25, 0.75], "means": [-1.5, 2.0], "sds": [0.4, 0.9]},
        model={"hidden": (24, 24, 24), "activation": "softplus", "time": "concat", "linear": True, "tspan": (0.0, 2.0)},
        solver={"method": "dopri5", "rtol": 3e-5, "atol": 1e-6, "adjoint": True},
        adam_iters=321,
        lr=0.02,
        lbfgs_iters=7,
        batch_size=None,
        n_train=300,
        lambda_kinetic=0.05,
        lambda_jacobian=0.01,
        seed=11,
        eval_every=25,
    )
    at = AppTest.from_function(_controls_app, args=(config.to_json(), hidden), default_timeout=60).run()
    assert not at.exception, at.exception
    assert at.session_state["result"] == config
    drawn = {w.key for w in (*at.slider, *at.selectbox, *at.number_input, *at.text_input, *at.checkbox)}
    if "width" in hidden:
        assert "demo_width" not in drawn and "demo_rtol" not in drawn and "demo_target" not in drawn
        assert "demo_adam_iters" in drawn
    else:
        assert {"demo_width", "demo_rtol", "demo_param_mixture_weights"} <= drawn


def _failed_status_app(trained: bool) -> None:
    import dataclasses

    from cnfviz import TrainConfig, TrainingJob
    from cnfviz.ui import render_status

    job = TrainingJob(TrainConfig(target="normal", adam_iters=2, eval_every=0, n_test=50))
    if trained:
        job.start().join(60)
    snap = job.snapshot()
    reason = "the loss became nan at iteration 3 - kept the last good model"
    render_status(dataclasses.replace(snap, state="failed", reason=reason, iteration=2))


def test_a_failed_run_says_why_and_points_at_the_last_good_model():
    at = AppTest.from_function(_failed_status_app, args=(True,), default_timeout=60).run()
    assert not at.exception, at.exception
    (error,) = at.error
    assert "Failed" in error.value and "nan at iteration 3" in error.value and "last good model" in error.value
    assert "The plots and downloads below show the last good model" in error.value


def test_a_run_that_failed_with_no_pictures_points_at_none():
    at = AppTest.from_function(_failed_status_app, args=(False,), default_timeout=60).run()
    assert not at.exception, at.exception
    (error,) = at.error
    assert "nan at iteration 3" in error.value and "The plots and downloads below" not in error.value


def test_the_objective_select_box_round_trips_and_explains_what_cannot_work():
    config = default_config("moons", objective="ot-flow-matching", eval_every=500)
    at = AppTest.from_function(_controls_app, args=(config.to_json(), ()), default_timeout=60).run()
    assert not at.exception, at.exception
    assert at.session_state["result"] == config
    box = at.selectbox(key="demo_objective")
    assert box.value == "ot-flow-matching" and box.options == ["likelihood", "flow-matching", "ot-flow-matching"]
    box.set_value("likelihood").run()
    assert at.session_state["result"] == config.replace(objective="likelihood")
    at.selectbox(key="demo_time").set_value("none").run()
    assert at.session_state["result"].model.time == "none", "a likelihood run may drop the time input"
    at.selectbox(key="demo_objective").set_value("flow-matching").run()
    assert not at.exception, at.exception
    assert at.session_state["result"] is None
    assert any('model.time "none" cannot be trained with objective "flow-matching"' in e.value for e in at.error)


def test_the_objective_control_can_be_hidden():
    config = default_config("moons", objective="flow-matching")
    at = AppTest.from_function(_controls_app, args=(config.to_json(), ("objective",)), default_timeout=60).run()
    assert not at.exception, at.exception
    assert "demo_objective" not in {w.key for w in at.selectbox}
    assert at.session_state["result"] == config


def test_a_flow_matching_run_shows_its_loss_test_nll_and_sampling_cost():
    at = train_page()
    at.number_input(key="train_adam_iters").set_value(60).run()
    at.selectbox(key="train_objective").set_value("ot-flow-matching").run()
    at.button(key="train_train_button").click().run()
    assert not at.exception, at.exception
    wait_for(at, lambda a: bool(a.get("table")) and bool(a.success or a.error), timeout=90)
    assert at.success and "Done" in at.success[0].value
    loss = chart(at, "train_loss_chart")
    names = [t.get("name") for t in loss["data"]]
    assert names[0] == "flow-matching loss" and "test NLL" in names
    assert any("Sampling cost:" in c.value and "function evaluations" in c.value for c in at.caption)
    chart(at, "train_density_chart")
