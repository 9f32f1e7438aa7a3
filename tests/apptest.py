"""Shared helpers for the AppTest suites: fresh Streamlit caches per test, and polling a page.

AppTest has no browser, so a loop of ``at.run()`` stands in for the page's ``run_every`` polling. All
AppTest instances share one session id, so every test starts from cleared caches (which also stops the
jobs of the previous test through the session cache's ``on_release``).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from cnfviz.ui.session import PARKING

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
TRAIN = str(ROOT / "app_pages" / "train.py")


@pytest.fixture(autouse=True)
def fresh_caches() -> Iterator[None]:
    """Clear Streamlit's caches around a test and wait for its training threads to end.

    AppTest instances share one session id, so a holder parked by one test's release would be handed
    to the next test's page as a "reconnect": the parking lot is emptied too.
    """
    st.cache_resource.clear()
    st.cache_data.clear()
    PARKING.clear()
    yield
    st.cache_resource.clear()  # releases (parks) the session's JobHolder, which suspends its jobs
    st.cache_data.clear()
    PARKING.clear()  # ...and closes them
    for thread in threading.enumerate():
        if thread.name.startswith("job-"):
            thread.join(timeout=20)


def live_charts(at: AppTest) -> dict[str, dict]:
    """The live charts on the page (:func:`cnfviz.ui.live_chart.live_chart`), by key: each one's parsed spec,
    ``{"figure": plotly JSON, "anim": animation or None}``."""
    out = {}
    for c in at.get("component_instance"):
        if c.proto.component_name.endswith("cnfviz_live_chart"):
            out[c.key] = json.loads(json.loads(c.proto.json_args)["spec"])
    return out


def live_chart_figure(at: AppTest, key: str) -> dict:
    """The plotly figure (JSON) of the live chart ``key``; fails the test if there is none."""
    charts = live_charts(at)
    assert key in charts, f"no live chart {key}: {sorted(charts)}"
    return charts[key]["figure"]


def progress_texts(at: AppTest) -> list[str]:
    return [p.proto.text for p in at.get("progress")]


def progress(at: AppTest) -> str:
    texts = progress_texts(at)
    return texts[0] if texts else ""


def iteration(at: AppTest) -> int:
    text = progress(at)
    return int(text.split()[1].replace(",", "")) if text.startswith("Iteration") else 0


def wait_for(at: AppTest, done: Callable[[AppTest], bool], timeout: float = 60.0) -> AppTest:
    """Rerun the page until ``done(at)``, as the browser's polling would; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        at.run()
        assert not at.exception, at.exception
        if done(at):
            return at
        if time.monotonic() > deadline:
            pytest.fail(f"timed out; progress: {progress_texts(at)}; errors: {[e.value for e in at.error]}")
        time.sleep(0.2)
