"""A person's first minute with the app, in a real Chromium: open it, go to Train, pick moons, press Train,
watch the loss plot grow, pause (the iteration count stops), resume, stop, and see no error anywhere.

Screenshots of each step land in the artifacts folder, with ``browser-timings.json`` holding the time
from the click on Train to the first loss point on screen (reported, not asserted: timings belong to
benchmarks).
"""

from __future__ import annotations

import json
import re
import time
from typing import TypeVar

import pytest

pytestmark = pytest.mark.browser

T = TypeVar("T")

# Points of the first trace of the loss chart as plotly drew them (-1 while there is no chart). The chart is a
# live chart: its plot lives in the component's (same-origin) iframe.
LOSS_POINTS_JS = """() => {
  const frame = document.querySelector('.st-key-train_loss_chart iframe');
  const doc = frame && frame.contentDocument;
  const plot = doc && doc.querySelector('.js-plotly-plot');
  if (!plot || !plot._fullData || !plot._fullData.length) return -1;
  return plot._fullData[0]._length ?? -1;
}"""


def test_train_moons_pause_resume_stop(app, artifacts_dir):
    page = app.page
    app.goto()
    app.screenshot("01-home")
    page.get_by_role("link", name="Train a flow now").click()
    page.wait_for_selector(".st-key-train_train_button", timeout=30_000)
    app.wait_idle()

    picker = page.locator(".st-key-train_target input").first
    picker.click()
    picker.fill("moons")
    page.get_by_role("option", name="moons (2D)").click()
    app.until(picker.input_value, lambda v: v.startswith("moons"), 20, "the picker to show moons")
    app.wait_idle()  # picking a 2D target loads its fast defaults into the sidebar
    total = int(app.key("train_adam_iters").locator("input").first.input_value())
    app.screenshot("02-train-moons-idle")

    def loss_points() -> int:
        return page.evaluate(LOSS_POINTS_JS)

    def progress() -> str:
        bar = page.locator('[data-testid="stProgress"]')
        return bar.first.inner_text() if bar.count() else ""

    def iteration() -> int:
        m = re.search(r"Iteration ([\d,]+)", progress())
        return int(m.group(1).replace(",", "")) if m else -1

    clicked = time.perf_counter()
    app.click_button("train_train_button")
    first = app.until(loss_points, lambda n: n >= 1, 60, "the first loss point")
    first_seconds = time.perf_counter() - clicked
    # The status row follows its own stream, which may draw a moment after the loss chart's first point.
    app.until(progress, lambda t: f"/ {total:,}" in t, 10, "the status row to show the settings on screen")
    (artifacts_dir / "browser-timings.json").write_text(
        json.dumps({"train_click_to_first_loss_point_s": round(first_seconds, 3), "points": first}, indent=2)
    )
    print(f"\nTrain click -> first loss point on screen: {first_seconds:.2f} s")

    # The loss plot keeps growing while the run trains.
    second = app.until(loss_points, lambda n: n > first, 60, "a second update of the loss plot")
    app.until(loss_points, lambda n: n > second, 60, "a third update of the loss plot")
    app.screenshot("03-training")

    app.click_button("train_pause_button")
    app.until(progress, lambda t: "paused" in t, 30, "the run to pause")
    page.wait_for_timeout(1000)  # the iteration in flight when Pause was pressed finishes
    paused_at = iteration()
    page.wait_for_timeout(2000)
    assert iteration() == paused_at, "the iteration count moved while paused"
    assert app.button("train_pause_button").inner_text().strip().endswith("Resume")
    app.screenshot("04-paused")

    app.click_button("train_pause_button")  # now labelled Resume
    app.until(iteration, lambda i: i > paused_at, 60, "training to resume")

    app.click_button("train_stop_button")
    app.until(
        lambda: page.get_by_text("Stopped", exact=False).count(),
        lambda n: n > 0,
        90,
        "the run to stop and report it",
    )
    app.wait_idle()
    page.wait_for_selector(".st-key-train_metrics table", timeout=60_000)  # the results of a stopped run
    page.wait_for_timeout(500)
    app.screenshot("05-stopped")
    assert app.errors() == []


def test_a_fresh_servers_first_request_for_a_page_runs_the_apps_navigation(start_server, new_app):
    """No request has opened ``/`` yet: ``/train`` must still run through ``app.py``'s ``st.navigation``
    (its titled links in the sidebar, its page config), for the first session and a second one."""
    url = start_server("first-request-train", {})
    for session in ("first", "second"):
        app = new_app(url).goto("train")
        page = app.page
        page.wait_for_selector(".st-key-train_train_button", timeout=60_000)
        nav = page.locator('[data-testid="stSidebarNav"] a')
        links = [nav.nth(i).inner_text().split()[-1] for i in range(nav.count())]  # after the icon's name
        assert links == ["Home", "Train", "Compare", "Learn"], f"{session} session: {links}"
        assert page.title() == "cnfviz: watch a flow learn", f"{session} session: {page.title()!r}"
        assert page.evaluate("() => new URL(location.href).pathname") == "/train"
        assert not page.locator('[data-testid="stException"]').count()
