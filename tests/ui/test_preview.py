"""The picture before Train: the shipped flow moves from z (t0) to x (t1) in the live chart's component."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from cnfviz.ui.preview import PREVIEW_HEIGHT, preview_flow_spec
from cnfviz.ui.preview_data import load_preview

TRAIN = str(Path(__file__).resolve().parents[2] / "app_pages" / "train.py")


@pytest.mark.parametrize(("kind", "name"), [("target", "moons"), ("target", "normal")])
def test_the_preview_flow_animates_every_shipped_trajectory_frame(kind, name):
    preview = load_preview(kind, name)
    spec = json.loads(preview_flow_spec(preview, height=PREVIEW_HEIGHT))
    anim, paths = spec["anim"], preview.trajectories.paths
    assert anim["T"] == len(preview.trajectories.times) == paths.shape[0] >= 10, "every stored time is a frame"
    assert anim["n"] == paths.shape[1]
    assert (anim["t0"], anim["t1"]) == pytest.approx((preview.trajectories.times[0], preview.trajectories.times[-1]))
    xy = np.frombuffer(base64.b64decode(anim["xy"]), dtype=np.float32).reshape(anim["T"], anim["n"], 2)
    if paths.shape[2] == 2:
        np.testing.assert_allclose(xy, paths, atol=1e-3)
    else:  # 1D: the points move in (t, x)
        np.testing.assert_allclose(xy[..., 1], paths[..., 0], atol=1e-3)
        np.testing.assert_allclose(xy[:, 0, 0], preview.trajectories.times, atol=1e-5)
    assert np.abs(xy[-1] - xy[0]).max() > 0.5, "the points really travel"
    moving = spec["figure"]["data"][anim["trace"]]
    assert moving["mode"] == "markers"
    assert spec["figure"]["layout"]["title"]["text"] == "After training: the flow"


def test_presentation_preview_flow_is_sized_for_the_back_row():
    spec = json.loads(preview_flow_spec(load_preview("target", "moons"), height=520, present=True))
    layout = spec["figure"]["layout"]
    assert layout["xaxis"]["tickfont"]["size"] == 20 and "scaleanchor" not in layout["yaxis"]
    assert "meta" not in layout, "as tall as the density beside it, not grown to the screen's foot"


def test_the_page_draws_the_preview_flow_as_a_live_chart():
    at = AppTest.from_file(TRAIN, default_timeout=60)
    at.query_params["target"] = "moons"
    at.run()
    assert not at.exception, at.exception
    charts = {c.key: json.loads(c.proto.json_args) for c in at.get("component_instance")}
    flow = json.loads(charts["train_preview_flow_chart"]["spec"])
    assert flow["anim"]["T"] > 1 and charts["train_preview_flow_chart"]["height"] == PREVIEW_HEIGHT
