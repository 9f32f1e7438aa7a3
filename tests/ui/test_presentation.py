"""The Train page as a teaching console and a first picture: what AppTest can see of presentation mode, the
lesson link in its QR code, a student's view of a lesson, and the preview before Train."""

from __future__ import annotations

import json
from pathlib import Path

import plotly.graph_objects as go
from streamlit.testing.v1 import AppTest

from cnfviz.ui.layout import BACK_ROW_PX, CONSOLE_KEYS, back_row, console_script

TRAIN = str(Path(__file__).resolve().parents[2] / "app_pages" / "train.py")


def train_page(**query: str) -> AppTest:
    at = AppTest.from_file(TRAIN, default_timeout=60)
    for k, v in query.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, at.exception
    return at


def _html(at: AppTest) -> str:
    return "\n".join(str(h.proto.body) for h in at.get("html"))


def test_the_console_keys_press_the_run_buttons_of_the_page():
    assert CONSOLE_KEYS[" "] == "pause_button" and CONSOLE_KEYS["ArrowRight"] == "step_button"
    script = console_script("train")
    assert script.count("<script>") == 1 and '"train"' in script
    assert json.dumps(CONSOLE_KEYS) in script, "the same table drives the page's keys"
    assert "present_exit" in script, "keys act in presentation mode only"


def test_back_row_type_reaches_ticks_and_readouts():
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1]))
    fig.update_xaxes(tickfont={"size": 9})
    fig.add_annotation(text="t = 0.00", font={"size": 12}, showarrow=False)
    back_row(fig)
    assert fig.layout.xaxis.tickfont.size == BACK_ROW_PX == 20
    assert fig.layout.yaxis.tickfont.size == BACK_ROW_PX and fig.layout.annotations[0].font.size == BACK_ROW_PX


def test_presentation_mode_keeps_the_run_buttons_and_binds_the_keys():
    at = train_page(present="1", target="moons")
    assert not at.button(key="train_train_button").disabled, "a run can start from presentation mode"
    html = _html(at)
    assert "keydown" in html and "Space: pause" in html
    assert ".st-key-train_toolbar" not in html.split("</style>")[1], "the toolbar is not hidden any more"


def test_the_qr_code_carries_the_lesson_link_share_builds():
    at = AppTest.from_file(TRAIN, default_timeout=60)
    at.query_params["present"] = "1"
    at.query_params["target"] = "moons"
    at.session_state["train_share_hide"] = ["solver", "trace"]
    at.session_state["train_share_autostart"] = True
    at.run()
    assert not at.exception, at.exception
    links = [c.value for c in at.code if "target=moons" in c.value]
    lesson = [v for v in links if "hide=" in v and "autostart=1" in v]
    assert len(lesson) >= 2, links  # Share's lesson link, and the QR code's, the same
    assert len(set(lesson)) == 1


def test_a_student_on_a_lesson_sees_no_teacher_panels_and_a_teacher_does():
    assert ".st-key-train_share" not in _html(train_page(target="moons"))
    assert ".st-key-train_share" in _html(train_page(target="moons", hide="solver"))


def test_before_train_the_page_shows_the_target_and_a_trained_flow():
    at = train_page(target="moons")
    charts = {c.proto.id for c in at.get("plotly_chart")}
    assert charts, "the preview's charts"
    captions = " ".join(c.value for c in at.caption)
    assert "After training: a flow trained with these settings for 500 iterations" in captions
