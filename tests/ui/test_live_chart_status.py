"""The status row's own component (:func:`cnfviz.ui.status.live_status`): text in the page (a v2 component, no
iframe, no canvas) with the run's words, following the run's status-only stream, sized for the back row in
presentation mode; and on a server with the live channel the Train page draws its status row with it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cnfviz.ui import stream
from cnfviz.ui.status import STATUS_COMPONENT
from tests.apptest import TRAIN, fresh_caches, wait_for  # noqa: F401 - fresh_caches is an autouse fixture

STATIC = Path(stream.__file__).with_name("live_chart_static")


def component_data(at: AppTest, key: str) -> dict:
    found = [e for e in at.get("bidi_component") if e.key == key]
    assert found, f"no status component {key!r}"
    assert found[0].proto.component_name == STATUS_COMPONENT
    return json.loads(found[0].proto.json)


def test_the_component_carries_the_words_its_stream_and_presentation_mode():
    def script():
        from cnfviz.ui.status import live_status

        payload = {"text": "Iteration 3 / 10 · Adam", "value": 0.3, "figures": [["Loss", True], [" 2.1", False]]}
        live_status(payload, key="k", url="/_cnfviz/stream/abc", present=True)

    at = AppTest.from_function(script, default_timeout=60).run()
    assert not at.exception, at.exception
    data = component_data(at, "k")
    assert data["payload"]["text"] == "Iteration 3 / 10 · Adam" and data["payload"]["value"] == 0.3
    assert data["url"] == "/_cnfviz/stream/abc" and data["present"] is True
    element = next(e for e in at.get("bidi_component") if e.key == "k").proto
    assert "parts=status" in element.js_content, "the component follows the status part of the stream only"
    assert "canvas" not in element.js_content and "textContent" in element.js_content, "text, readable and selectable"


def test_presentation_mode_type_is_at_least_20_px():
    css = (STATIC / "live_status.css").read_text()
    rule = re.search(r"\.cnfviz-status\.cnfviz-present \{ font-size: ([\d.]+)rem", css)
    assert rule and float(rule.group(1)) * 16 >= 20, "the status line at 20 px or more (16 px root)"
    normal = re.search(r"^\.cnfviz-status \{ font-size: ([\d.]+)rem", css, re.M)
    assert normal and float(normal.group(1)) < float(rule.group(1))
    # The notes under it are not smaller than 20 px either in presentation mode.
    assert re.search(r"\.cnfviz-present \.cnfviz-status-note \{ font-size: 1em", css)


@pytest.fixture
def live_channel():
    stream._enabled.set()  # as if app.py had mounted the routes
    yield
    stream._enabled.clear()


def test_the_train_pages_status_row_follows_its_own_stream(live_channel):
    at = AppTest.from_file(TRAIN, default_timeout=60)
    at.query_params["target"] = "moons"
    at.query_params["adam"] = "100000"
    at.run()
    assert not at.get("bidi_component"), "no run, no status row: the hint only"
    at.button(key="train_train_button").click().run()
    assert not at.exception, at.exception
    data = component_data(at, "train_live_status")
    token = data["url"].rsplit("/", 1)[1]
    assert data["url"] == f"{stream.STREAM_PREFIX}/{token}", "the page's own URL space: no frame in between"
    bound = stream.binding(token)
    assert bound is not None and bound.job() is not None, "the run's token, the loss chart's too"
    loss = next(json.loads(c.proto.json_args) for c in at.get("component_instance") if c.key == "train_loss_chart")
    assert loss["stream"]["channel"] == token
    assert re.match(r"(Iteration [\d,]+ / 100,000 · Adam|Waiting for a free training slot)", data["payload"]["text"])
    assert 0.0 <= data["payload"]["value"] < 0.01 and data["payload"]["figures"][0] == ["Loss", True]
    assert not at.get("progress"), "no Streamlit progress bar beside it: one status row"

    at.button(key="train_stop_button").click().run()
    wait_for(at, lambda a: component_data(a, "train_live_status")["url"] is None, timeout=120)
    text = component_data(at, "train_live_status")["payload"]["text"]
    assert re.fullmatch(r"Iteration [\d,]+ / 100,000 · Adam · [\d.]+ s of training", text), text
    assert any("Stopped" in i.value for i in at.info), "the row's end box says how the run ended"
