"""The Train page's live views and the truths they tell: the three charts side by side (no tabs), one
colour scale for the true and learned densities, a flow that animates on the client, iteration counts
and a progress bar that agree with the run (LBFGS stage, time budget), NFE backward only when there is a
backward solve, the time-budget control, rounded scipy starts, the address of a run on one's own data,
presentation mode, learning rate and λ applied live, and Continue after Done or Stop."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from cnfviz import PRESETS, TrainConfig, TrainingJob
from cnfviz.features.links import parse_query
from cnfviz.training.trainer import Trainer, lbfgs_max_evaluations
from cnfviz.ui.status import progress_text, progress_value, run_total
from tests.apptest import TRAIN, fresh_caches, iteration, live_charts, progress, wait_for  # noqa: F401


def floats(b64: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(b64), dtype=np.float32)


def train_page(**query: str) -> AppTest:
    at = AppTest.from_file(TRAIN, default_timeout=60)
    for k, v in query.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, at.exception
    return at


def run_to_end(at: AppTest) -> AppTest:
    at.button(key="train_train_button").click().run()
    assert not at.exception, at.exception
    return wait_for(at, lambda a: bool(a.get("table")) and bool(a.success or a.error), timeout=90)


# --------------------------------------------------------------------------------------------------
# One screen
# --------------------------------------------------------------------------------------------------


def test_a_run_shows_loss_density_and_flow_together_with_one_colour_scale():
    at = train_page()
    at.selectbox(key="train_target").set_value("moons").run()
    at.number_input(key="train_adam_iters").set_value(25).run()
    run_to_end(at)
    charts = live_charts(at)
    assert set(charts) == {"train_loss_chart", "train_density_chart", "train_flow_chart"}
    assert not at.tabs, "no tabs: every view is on screen"
    assert not [c.key for c in at.get("plotly_chart") if c.key.endswith("_chart")], "each live chart updates in place"

    heat = [t for t in charts["train_density_chart"]["figure"]["data"] if t["type"] == "heatmap"]
    assert len(heat) == 2
    assert heat[0]["zmin"] == heat[1]["zmin"] == 0 and heat[0]["zmax"] == heat[1]["zmax"] > 0, "one colour scale"
    assert [h.get("showscale", True) for h in heat] == [False, True], "one colour bar, for both"
    assert all(h["zsmooth"] == "best" for h in heat)

    flow = charts["train_flow_chart"]
    anim, data = flow["anim"], flow["figure"]["data"]
    paths = floats(anim["xy"]).reshape(anim["T"], anim["n"], 2)
    base = next(t for t in data if t.get("name") == "z (t0)")
    base_xy = np.stack([floats(base["x"]["bdata"]), floats(base["y"]["bdata"])], 1)
    np.testing.assert_array_equal(paths[0], base_xy), "the points start at the base samples"
    moving = data[anim["trace"]]
    assert moving["name"] == "samples at t" and anim["T"] == 41 and anim["n"] == len(base_xy)
    assert np.abs(paths[-1] - paths[0]).mean() > 0.05, "and end somewhere else: the flow moves them"
    assert anim["t0"] == 0.0 and anim["t1"] == 0.5


def test_the_vector_field_overlays_the_flow_on_request():
    at = train_page()
    at.selectbox(key="train_target").set_value("moons").run()
    at.number_input(key="train_adam_iters").set_value(5).run()
    run_to_end(at)
    assert "field" not in (live_charts(at)["train_flow_chart"]["anim"] or {})
    at.toggle(key="train_field_overlay").set_value(True).run()
    anim = live_charts(at)["train_flow_chart"]["anim"]
    field = anim["field"]
    assert len(field["times"]) == len(field["x"]) == 11
    assert len(floats(field["x"][0])) == 3 * 21 * 21, "an arrow (tail, tip, gap) per grid point"


# --------------------------------------------------------------------------------------------------
# Status truths
# --------------------------------------------------------------------------------------------------


def finished(config: TrainConfig) -> TrainingJob:
    job = TrainingJob(config, compute_final_metrics=False).start().join(120)
    assert not job.alive
    return job


def test_lbfgs_evaluations_never_count_past_the_total():
    # The seed tutorial's "Iteration 58 / 50 · LBFGS": each line-search evaluation is an iteration.
    cfg = TrainConfig(target="normal", adam_iters=3, lbfgs_iters=6, eval_every=0, n_test=100, batch_size=64)
    snap = finished(cfg).snapshot()
    assert snap.stage == "lbfgs" and snap.iteration > cfg.adam_iters + 1
    total = run_total(snap)
    assert total == 3 + lbfgs_max_evaluations(6) == 3 + 8
    assert snap.iteration <= total
    assert f"Iteration {snap.iteration:,} / {total:,} · LBFGS" in progress_text(snap)
    assert progress_value(snap) == 1.0


def test_done_by_the_time_budget_fills_the_bar():
    cfg = TrainConfig(target="normal", adam_iters=1_000_000, max_seconds=0.3, eval_every=0, n_test=100)
    snap = finished(cfg).snapshot()
    assert snap.state == "done" and snap.reason == "time budget reached"
    assert snap.iteration < cfg.adam_iters and progress_value(snap) == 1.0


def _status_app(backward: int) -> None:
    import dataclasses

    from cnfviz import TrainConfig, TrainingJob
    from cnfviz.ui import render_status

    snap = TrainingJob(TrainConfig(target="normal", adam_iters=5, eval_every=0)).snapshot()
    render_status(dataclasses.replace(snap, state="running", nfe_forward=480, nfe_backward=backward, iteration=2))


@pytest.mark.parametrize("backward", [0, 1234])
def test_nfe_backward_shows_only_with_a_backward_solve(backward):
    at = AppTest.from_function(_status_app, args=(backward,), default_timeout=30).run()
    assert not at.exception, at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "480 forward" in text
    assert ("1,234 backward (adjoint)" in text) is bool(backward)
    assert ("backward" in text) is bool(backward)
    assert not at.get("metric"), "one compact line, not four boxes"


# --------------------------------------------------------------------------------------------------
# Controls
# --------------------------------------------------------------------------------------------------


def test_the_time_budget_is_visible_and_a_new_target_clears_it():
    at = train_page()
    at.selectbox(key="train_preset").set_value("moons").run()
    at.button(key="train_preset_apply").click().run()
    assert PRESETS["moons"].config.max_seconds == 10.0
    assert at.number_input(key="train_max_seconds").value == 10.0
    assert at.session_state["train__config"].max_seconds == 10.0
    at.selectbox(key="train_target").set_value("8gaussians").run()
    assert at.number_input(key="train_max_seconds").value == 0.0
    assert at.session_state["train__config"].max_seconds is None
    at.number_input(key="train_max_seconds").set_value(30.0).run()
    assert at.session_state["train__config"].max_seconds == 30.0


def test_scipy_starts_are_rounded():
    at = train_page()
    at.selectbox(key="train_target").set_value("scipy:gamma").run()
    assert at.text_input(key="train_param_scipy_gamma_a").value == "1.993"
    assert at.session_state["train__config"].target_params["a"] == 1.993


def _own_data_app() -> None:
    import numpy as np
    import streamlit as st

    from cnfviz import TrainConfig
    from cnfviz.targets import SamplesTarget
    from cnfviz.ui import ControlsResult, sync_url
    from cnfviz.ui.links import Lesson

    data = SamplesTarget(np.random.default_rng(0).normal(size=(50, 2)))
    sync_url("train", ControlsResult(TrainConfig(target="samples"), data, ()), Lesson())
    st.caption("the address follows")


def test_a_run_on_ones_own_data_says_so_in_the_address():
    at = AppTest.from_function(_own_data_app, default_timeout=30)
    at.query_params["target"] = "8gaussians"
    at.run()
    assert not at.exception, at.exception
    assert dict(at.query_params) == {"data": ["own"]} or {k: v for k, v in at.query_params.items()} == {
        "data": "own"
    }, f"not another target's settings: {dict(at.query_params)}"
    link = parse_query({"data": "own"})
    assert len(link.notices) == 1 and "own data" in link.notices[0] and "Unknown" not in link.notices[0]


def test_presentation_mode_by_link_and_back():
    at = train_page(present="1", target="moons")
    assert at.session_state["train__present"] is True
    assert not at.warning, "present is not an unknown link setting"
    assert at.button(key="train_present_exit")
    assert at.query_params["present"] in ("1", ["1"]) and at.query_params["target"] in ("moons", ["moons"])
    at.button(key="train_present_exit").click().run()
    assert at.session_state["train__present"] is False
    assert "present" not in at.query_params
    assert at.button(key="train_present_button")


# --------------------------------------------------------------------------------------------------
# Live knobs and Continue
# --------------------------------------------------------------------------------------------------


def test_learning_rate_and_lambda_change_at_the_next_iteration():
    cfg = TrainConfig(target="normal", adam_iters=8, lr=0.01, eval_every=0, n_test=100, batch_size=64)
    records = []

    def on_iteration(rec: object) -> None:
        records.append(rec)
        if rec.iteration == 3:
            trainer.update_config(cfg.replace(lr=0.05, lambda_kinetic=0.1))

    trainer = Trainer(cfg, callback=on_iteration, keep_history=False)
    trainer.run(final_metrics=False)
    assert [r.lr for r in records] == [0.01] * 3 + [0.05] * 5
    assert all(r.kinetic is None for r in records[:3]) and all(r.kinetic is not None for r in records[3:])
    assert all(r.loss > r.nll for r in records[3:]), "the kinetic term joins the loss"
    with pytest.raises(ValueError, match="learning rate"):
        trainer.update_config(cfg.replace(seed=9))


def test_a_live_learning_rate_asks_nothing():
    at = train_page()
    at.number_input(key="train_adam_iters").set_value(100_000).run()
    at.button(key="train_train_button").click().run()
    wait_for(at, lambda a: iteration(a) >= 2)
    at.number_input(key="train_lr").set_value(0.02).run()
    assert not at.exception, at.exception
    assert not at.warning, "no Discard/Keep question"
    assert any("next iteration" in t.value for t in at.toast)
    assert at.number_input(key="train_lr").value == 0.02
    at.run()
    assert not at.warning, "the run took the new rate: the settings match it again"
    at.button(key="train_stop_button").click().run()


def test_continue_trains_a_finished_run_on():
    cfg = TrainConfig(target="normal", adam_iters=6, eval_every=0, n_test=100, batch_size=64)
    job = finished(cfg)
    assert job.snapshot().state == "done" and job.can_continue
    assert job.continue_training()
    job.join(120)
    snap = job.snapshot()
    assert snap.state == "done" and snap.iteration == 12 and snap.config.adam_iters == 12
    assert list(snap.history["iteration"]) == list(range(1, 13)), "one history, carried on"
    assert not job.can_continue or job.continue_training()


def test_continue_after_stop_picks_up_where_it_stopped():
    cfg = TrainConfig(target="normal", adam_iters=100_000, eval_every=0, n_test=100, batch_size=64)
    job = TrainingJob(cfg, compute_final_metrics=False).start()
    wait = wait_until(lambda: job.snapshot().iteration >= 3)
    assert wait
    job.stop()
    job.join(60)
    stopped = job.snapshot()
    assert stopped.state == "stopped"
    assert job.continue_training()
    assert wait_until(lambda: job.snapshot().iteration >= stopped.iteration + 3)
    assert job.snapshot().config.adam_iters == 100_000, "a stopped run had iterations left: no more added"
    job.stop()
    job.join(60)
    it = job.snapshot().history["iteration"]
    assert list(it) == list(range(1, len(it) + 1))


def test_the_continue_button_after_stop():
    at = train_page()
    at.number_input(key="train_adam_iters").set_value(100_000).run()
    at.button(key="train_train_button").click().run()
    wait_for(at, lambda a: iteration(a) >= 2)
    assert at.button(key="train_continue_button").disabled
    at.button(key="train_stop_button").click().run()
    wait_for(at, lambda a: any("Stopped" in i.value for i in a.info), timeout=60)
    stopped_at = iteration(at)
    assert not at.button(key="train_continue_button").disabled
    at.button(key="train_continue_button").click().run()
    assert not at.exception, at.exception
    wait_for(at, lambda a: iteration(a) > stopped_at + 2)
    assert "/ 100,000" in progress(at) and not at.warning
    at.button(key="train_stop_button").click().run()


def wait_until(ok: object, timeout: float = 60.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
