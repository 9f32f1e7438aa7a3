"""The Compare page under AppTest: it renders, runs a small comparison to the end (progress rows, loss curves,
one density chart per run, the metrics table with a best mark), rejects bad input without an exception,
opens a preset from the link, stops every run, and lets a failed run fail alone.

AppTest has no browser, so a loop of ``at.run()`` stands in for the page's ``run_every`` polling. All AppTest
instances share one session id, so every test starts from cleared caches (which also stops the jobs of the
previous test through the session cache's ``on_release``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cnfviz import default_config
from cnfviz.features.compare import BEST_MARK
from cnfviz.features.links import config_to_query
from tests.apptest import fresh_caches, progress_texts, wait_for  # noqa: F401 - fresh_caches is an autouse fixture

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
TINY = {"target": "normal", "adam_iters": 20}


def seen(markdown: str) -> str:
    """A message as the reader sees it: user text in it is backslash-escaped markdown."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown)


def compare_page(query: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    at.switch_page("app_pages/compare.py").run()
    assert not at.exception, at.exception
    return at


def setup_knob(at: AppTest, values: str, *, target: str = "normal", iters: int = 20, knob: str = "width") -> AppTest:
    at.selectbox(key="compare_target").set_value(target).run()
    at.number_input(key="compare_adam_iters").set_value(iters).run()
    at.selectbox(key="compare_knob").set_value(knob).run()
    at.text_input(key=f"compare_values_{knob}").set_value(values).run()
    assert not at.exception, at.exception
    return at


def ended(at: AppTest) -> bool:
    return bool(at.get("table"))


def chart_keys(at: AppTest) -> list[str]:
    return [c.key for c in at.get("plotly_chart")]


def chart(at: AppTest, key: str) -> dict:
    return json.loads(next(c for c in at.get("plotly_chart") if c.key == key).proto.spec)


def config_json(**changes) -> bytes:
    return default_config("normal", adam_iters=20, **changes).to_json().encode()


# --------------------------------------------------------------------------------------------------


def test_page_opens_with_a_knob_comparison_ready_to_start():
    at = compare_page()
    assert at.title[0].value == "Compare runs"
    assert at.radio(key="compare_mode").value == "knob"
    assert at.selectbox(key="compare_target").value == "moons"
    assert at.number_input(key="compare_adam_iters").value == 400, "a quick, equal number of iterations per run"
    # Issue 22: the cap is a safety net now (it was 20 s): runs end by their iterations, equal for all.
    assert at.number_input(key="compare_budget").value == 120
    assert at.text_input(key="compare_values_width").value == "32, 64, 128"
    assert not at.button(key="compare_start_button").disabled
    assert at.button(key="compare_stop_button").disabled
    assert any("3 runs: width = 32 · width = 64 · width = 128" in seen(c.value) for c in at.caption)
    assert not at.error and at.info, "no errors, and a hint where the progress will be"


def test_a_small_comparison_runs_to_the_end_and_opens_a_run_on_the_train_page():
    at = setup_knob(compare_page(), "4, 8")
    at.button(key="compare_start_button").click().run()
    assert not at.exception, at.exception
    assert at.button(key="compare_start_button").disabled and not at.button(key="compare_stop_button").disabled
    assert "compare_loss_chart" in chart_keys(at)
    wait_for(at, ended)

    texts = progress_texts(at)
    assert len(texts) == 2 and all(t.startswith("done: finished all iterations · 20 iterations") for t in texts)
    loss = chart(at, "compare_loss_chart")
    assert [t["name"] for t in loss["data"] if t.get("showlegend") is not False] == ["width = 4", "width = 8"]
    keys = chart_keys(at)
    assert [k for k in keys if k.startswith("compare_density_chart_")] == [
        "compare_density_chart_0",
        "compare_density_chart_1",
    ]
    table = at.table[0].value
    assert [seen(r) for r in table["run"]] == ["width = 4", "width = 8"]  # st.table renders markdown
    assert list(table["best"]).count(BEST_MARK) == 1
    for column in ("seed TV", "grid TV", "test NLL", "wall time (s)", "NFE forward", "NFE total", "parameters"):
        assert column in table.columns
    assert list(table["iterations"]) == ["20", "20"]
    assert list(table["parameters"]) == ["62", "150"]
    assert not at.error and not at.button(key="compare_start_button").disabled

    at.button(key="compare_open_1").click().run()
    assert not at.exception, at.exception
    expected = config_to_query(default_config("normal", adam_iters=20, max_seconds=120.0, model={"hidden": (8, 8)}))
    # The Train page may add the values it fills in itself (e.g. the target's parameters).
    assert expected.items() <= dict(at.query_params).items(), dict(at.query_params)


@pytest.mark.parametrize(
    ("values", "messages"),
    [
        ("0, abc, 16", ["width = 0:", "[1, 1024]", "width = abc:"]),
        ("16", ["needs 2 to 6 runs; got 1 value of width"]),
        ("1, 2, 3, 4, 5, 6, 7", ["got 7 values"]),
    ],
)
def test_bad_knob_values_show_an_error_and_block_start(values, messages):
    at = setup_knob(compare_page(), values)
    errors = " ".join(seen(e.value) for e in at.error)
    assert all(m in errors for m in messages), errors
    assert at.button(key="compare_start_button").disabled
    assert not at.get("progress")


def test_choice_knobs_use_a_multiselect():
    at = compare_page()
    at.selectbox(key="compare_knob").set_value("trace").run()
    assert at.multiselect(key="compare_choices_trace").value == ["exact", "hutchinson-rademacher"]
    at.multiselect(key="compare_choices_trace").set_value(["exact"]).run()
    assert not at.exception and "got 1 value of trace" in seen(at.error[0].value)


def test_preset_link_loads_the_presets_two_runs():
    at = compare_page({"preset": "hutchinson"})
    assert at.radio(key="compare_mode").value == "preset"
    assert at.selectbox(key="compare_preset").value == "hutchinson"
    assert any("2 runs: exact trace · Hutchinson" in seen(c.value) for c in at.caption)
    assert not at.error and not at.button(key="compare_start_button").disabled
    at.selectbox(key="compare_preset").set_value("regularized").run()
    pinned = any("2 runs: no regularizer · λ₁ = λ₂ = 0.1" in seen(c.value) for c in at.caption)
    assert pinned, "the link does not pin it"


def test_unknown_preset_in_the_link_is_a_notice():
    at = compare_page({"preset": "seed"})
    assert not at.exception
    assert "has no comparison" in seen(at.warning[0].value) and at.radio(key="compare_mode").value == "knob"


def test_table_mode_builds_runs_from_rows_and_names_bad_cells():
    at = compare_page()
    at.radio(key="compare_mode").set_value("table").run()
    assert any("2 runs: fast defaults · half as wide" in seen(c.value) for c in at.caption)
    at.session_state["compare_table"] = {
        "edited_rows": {1: {"width": 0}},
        "added_rows": [{"label": "fast", "lr": 0.05}],
        "deleted_rows": [],
    }
    at.run()
    assert not at.exception
    assert seen(at.error[0].value).startswith("row 2, width = 0:") and at.button(key="compare_start_button").disabled


def test_config_files_become_runs_and_a_failing_run_fails_alone():
    at = compare_page()
    at.radio(key="compare_mode").set_value("files").run()
    assert at.info and at.button(key="compare_start_button").disabled
    # An adaptive solver with a 10-step limit at a tight tolerance gives up at once.
    stiff = {"method": "dopri5", "rtol": 1e-9, "atol": 1e-9, "max_steps": 10}
    at.file_uploader(key="compare_upload").set_value(
        [
            ("good.json", config_json(), "application/json"),
            ("stiff.json", config_json(solver=stiff), "application/json"),
        ]
    ).run()
    assert not at.exception and not at.error
    assert any("2 runs: good · stiff" in seen(c.value) for c in at.caption)
    at.button(key="compare_start_button").click().run()
    wait_for(at, ended)
    failed = [seen(e.value) for e in at.error]
    assert len(failed) == 1 and failed[0].startswith("Failed:") and "others carry on" in failed[0]
    table = at.table[0].value
    assert list(table["state"]) == ["done", "failed"] and list(table["best"]) == [BEST_MARK, ""]


def test_config_files_on_different_targets_are_rejected():
    at = compare_page()
    at.radio(key="compare_mode").set_value("files").run()
    moons = default_config("moons").to_json().encode()
    at.file_uploader(key="compare_upload").set_value(
        [("a.json", config_json(), "application/json"), ("b.json", moons, "application/json")]
    ).run()
    assert not at.exception and "a comparison needs one target" in seen(at.error[0].value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe binary", "not a text (JSON) file"),
        (b"[1, 2]", "must be built from a mapping"),
        (b'{"model": 5}', "model must be a ModelConfig"),
    ],
)
def test_broken_config_files_show_an_error_not_an_exception(content, message):
    at = compare_page()
    at.radio(key="compare_mode").set_value("files").run()
    at.file_uploader(key="compare_upload").set_value(
        [("good.json", config_json(), "application/json"), ("bad.json", content, "application/json")]
    ).run()
    assert not at.exception, at.exception
    assert message in seen(at.error[0].value) and at.button(key="compare_start_button").disabled


def test_stop_all_stops_running_and_queued_runs(monkeypatch):
    monkeypatch.setenv("CNFVIZ_MAX_JOBS", "2")  # the scheduler admits 32 by default
    at = setup_knob(compare_page(), "4, 8, 16", iters=100_000)
    at.button(key="compare_start_button").click().run()
    wait_for(
        at, lambda a: any(t.startswith("iteration") and not t.startswith("iteration 0 ") for t in progress_texts(a))
    )
    assert any(t.startswith("queued (#1)") for t in progress_texts(at)), "the job cap is 2: the third run waits"
    at.button(key="compare_stop_button").click().run()
    assert not at.exception, at.exception
    wait_for(at, ended)
    texts = progress_texts(at)
    assert all(t.startswith("stopped") for t in texts), texts
    assert "cancelled while waiting" in texts[2]
    assert list(at.table[0].value["best"]) == ["", "", ""], "runs that stopped early compete for nothing"
    assert at.button(key="compare_stop_button").disabled and not at.button(key="compare_start_button").disabled


def test_the_two_ways_preset_lists_its_three_objectives():
    at = compare_page({"preset": "two_ways"})
    assert at.selectbox(key="compare_preset").value == "two_ways"
    assert any("3 runs: likelihood · flow matching · OT flow matching" in c.value for c in at.caption)
    assert not at.error and not at.button(key="compare_start_button").disabled


def test_the_objective_knob_trains_one_network_three_ways_with_comparable_figures():
    at = compare_page()
    at.selectbox(key="compare_target").set_value("normal").run()
    at.number_input(key="compare_adam_iters").set_value(20).run()
    at.selectbox(key="compare_knob").set_value("objective").run()
    choices = at.multiselect(key="compare_choices_objective")
    assert choices.value == ["likelihood", "flow-matching", "ot-flow-matching"]
    at.button(key="compare_start_button").click().run()
    assert not at.exception, at.exception
    wait_for(at, ended, timeout=120)
    loss = chart(at, "compare_loss_chart")
    names = [t["name"] for t in loss["data"] if t.get("showlegend") is not False]
    assert names == [
        "objective = likelihood",
        "objective = flow-matching (test NLL)",
        "objective = ot-flow-matching (test NLL)",
    ]
    table = at.table[0].value
    assert list(table["iterations"]) == ["20", "20", "20"]
    assert all(v not in ("–", "") for v in table["test NLL"]) and all(v not in ("–", "") for v in table["sampling NFE"])
    cost = list(table["NFE / iteration"])
    assert cost[1:] == [":green-background[**1.0**]"] * 2, "flow matching: one evaluation, no solve, the cheapest"
