"""The live-chart component: its folder serves plotly.js from the plotly package, its spec carries the
figure and the animation exactly, and re-sending the same figure changes nothing the browser sees."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import plotly
import plotly.graph_objects as go
from streamlit.testing.v1 import AppTest

from cnfviz.ui.live_chart import Animation, chart_spec, static_dir
from tests.apptest import fresh_caches, live_charts  # noqa: F401 - fresh_caches is an autouse fixture


def floats(b64: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(b64), dtype=np.float32)


def test_the_folder_holds_our_page_and_plotlys_own_script():
    root = static_dir()
    assert {p.name for p in root.iterdir()} >= {"index.html", "live_chart.js", "plotly.min.js"}
    bundled = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    assert (root / "plotly.min.js").read_bytes() == bundled.read_bytes()
    page = (root / "index.html").read_text()
    assert '<script src="plotly.min.js">' in page and "http" not in page, "nothing fetched from the internet"
    assert static_dir() == root, "assembled once, under a name that follows the contents"


def test_the_spec_carries_the_figure_and_the_animation_exactly():
    rng = np.random.default_rng(0)
    paths = rng.normal(size=(5, 7, 2)).astype(np.float32)
    arrows = [rng.normal(size=9).astype(np.float32) for _ in range(3)]
    fig = go.Figure(go.Scatter(x=[1, 2, 3], y=[4, 5, 6], name="curve"))
    anim = Animation(
        trace=0,
        paths=paths,
        t0=0.0,
        t1=0.5,
        field_trace=1,
        field_times=(0.0, 0.25, 0.5),
        field_x=tuple(arrows),
        field_y=tuple(a + 1 for a in arrows),
        label=0,
    )
    spec = json.loads(chart_spec(fig, anim))
    assert spec["figure"]["data"][0]["name"] == "curve"
    a = spec["anim"]
    assert (a["T"], a["n"], a["trace"], a["t1"]) == (5, 7, 0, 0.5)
    np.testing.assert_array_equal(floats(a["xy"]).reshape(5, 7, 2), paths)
    np.testing.assert_array_equal(floats(a["field"]["y"][2]), arrows[2] + 1)
    assert a["field"]["times"] == [0.0, 0.25, 0.5]
    assert json.loads(chart_spec(fig))["anim"] is None


def _two_charts(label: str) -> None:
    import plotly.graph_objects as go

    from cnfviz.ui.live_chart import chart_spec, live_chart

    live_chart(chart_spec(go.Figure(go.Scatter(x=[0, 1], y=[0, 1], name=label))), key="a", height=300)
    live_chart(chart_spec(go.Figure(go.Bar(x=[0], y=[1]))), key="b", height=200)


def test_the_same_figure_keeps_its_revision_and_a_new_one_gets_another():
    at = AppTest.from_function(_two_charts, args=("first",), default_timeout=30).run()
    assert not at.exception, at.exception
    args = {c.key: json.loads(c.proto.json_args) for c in at.get("component_instance")}
    assert set(args) == {"a", "b"} and args["a"]["height"] == 300
    assert live_charts(at)["a"]["figure"]["data"][0]["name"] == "first"
    at.run()
    again = {c.key: json.loads(c.proto.json_args) for c in at.get("component_instance")}
    assert again["a"]["rev"] == args["a"]["rev"], "the browser skips a figure it already drew"
    other = AppTest.from_function(_two_charts, args=("second",), default_timeout=30).run()
    changed = {c.key: json.loads(c.proto.json_args) for c in other.get("component_instance")}
    assert changed["a"]["rev"] != args["a"]["rev"] and changed["b"]["rev"] == args["b"]["rev"]
