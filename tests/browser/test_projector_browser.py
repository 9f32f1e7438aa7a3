"""The Train page as a projector shows it, in a real Chromium at 1366×768 with the sidebar open: the loss,
the density and the flow all on screen while training; a zoom into the loss curve that survives six seconds
of live updates; points that keep flowing; presentation mode, whose heatmaps fill the height of the screen
(1366×768 and 1440×900) with ticks and readouts the back row can read; and Continue after Stop.

Screenshots land in the artifacts folder (``projector-*.png``).
"""

from __future__ import annotations

import time

import pytest

from tests.browser.conftest import StreamlitApp

pytestmark = pytest.mark.browser

VIEWPORT = {"width": 1366, "height": 768}
LIVE_CHARTS = ("train_loss_chart", "train_density_chart", "train_flow_chart")


@pytest.fixture
def projector(browser, app_url, artifacts_dir, request):
    """A 1366×768 tab on the shared server; a failing test leaves a screenshot."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(30_000)
    app = StreamlitApp(page, app_url, artifacts_dir)
    yield app
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        try:
            page.screenshot(path=str(artifacts_dir / f"{request.node.name}-failure.png"))
        except Exception:  # a failed screenshot must not hide the failure itself
            pass
    context.close()


def chart_frame(app: StreamlitApp, key: str, ready: str = "true") -> object:
    """The frame of the live chart ``key`` once its plot is drawn (and the JS condition ``ready`` holds), looked
    up afresh each try: a rerun may replace the element, and a frame found before would be detached."""

    def drawn() -> object | None:
        try:
            frame = app.key(key).locator("iframe").last.element_handle(timeout=5_000).content_frame()
            ok = frame.evaluate(f"() => Boolean(window.liveChart && window.liveChart.reacts > 0 && ({ready}))")
            return frame if ok else None
        except Exception:  # not there yet, or detached while we looked
            return None

    return app.until(drawn, lambda f: f is not None, 90, f"the chart {key} to be drawn")


def chart_state(frame: object) -> dict:
    return frame.evaluate(
        """() => {
          const s = window.liveChart, L = s.div._fullLayout;
          // updates: redraws of the figure in place, by Plotly.react (a script run's new spec) or, on the
          // live stream, by extendTraces/restyle (new loss points).
          return {reacts: s.reacts, renders: s.renders, frames: s.frames, t: s.t ?? null,
                  updates: s.reacts + (s.live ? s.live.updates : 0),
                  x: L.xaxis.range.slice(), y: L.yaxis.range.slice(), auto: L.xaxis.autorange,
                  points: s.div._fullData[0]._length, last: s.div._fullData[0].x[s.div._fullData[0]._length - 1]};
        }"""
    )


def drag_zoom(page: object, frame: object) -> None:
    """A mouse drag over the inner 40 % of a chart's plot area (Plotly zooms to it)."""
    drag = frame.locator("rect.nsewdrag").first.bounding_box()
    x0, y0 = drag["x"] + 0.3 * drag["width"], drag["y"] + 0.3 * drag["height"]
    x1, y1 = drag["x"] + 0.7 * drag["width"], drag["y"] + 0.7 * drag["height"]
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=5)
    page.mouse.move(x1, y1, steps=5)
    page.mouse.up()


def screenshot(app: StreamlitApp, name: str) -> None:
    app.page.screenshot(path=str(app.artifacts / f"projector-{name}.png"))  # the viewport: what the class sees


def start_moons(app: StreamlitApp, query: str = "target=moons&adam=100000") -> None:
    app.goto(f"train?{query}")
    if "autostart=1" not in query:
        app.page.wait_for_selector(".st-key-train_train_button", timeout=30_000)
        app.click_button("train_train_button")
    app.until(app.iteration, lambda i: i >= 1, 60, "the first iteration")


def in_viewport(box: dict | None) -> bool:
    return (
        box is not None
        and box["x"] >= 0
        and box["y"] >= 0
        and box["x"] + box["width"] <= VIEWPORT["width"] + 0.5
        and box["y"] + box["height"] <= VIEWPORT["height"] + 0.5
    )


def test_one_screen_holds_every_live_chart_and_a_zoom_survives_training(projector):
    app, page = projector, projector.page
    start_moons(app)
    frames = {key: chart_frame(app, key) for key in LIVE_CHARTS}
    assert page.locator('[data-testid="stSidebar"]').is_visible(), "the sidebar is open"
    boxes = {key: app.key(key).bounding_box() for key in LIVE_CHARTS}
    assert all(in_viewport(b) for b in boxes.values()), boxes
    assert page.evaluate("() => document.scrollingElement.scrollTop") == 0, "nothing scrolled"
    assert page.get_by_role("button", name="Deploy").count() == 0, "no Deploy button"
    screenshot(app, "01-training")

    # A real drag-zoom on the loss chart: the inner 40 % of its plot area.
    loss = frames["train_loss_chart"]
    before = chart_state(loss)
    drag_zoom(page, loss)
    zoomed = app.until(lambda: chart_state(loss), lambda s: s["auto"] is False, 10, "the zoom to apply")
    assert before["auto"] is True
    assert zoomed["x"][1] - zoomed["x"][0] < 0.6 * zoomed["last"], (before, zoomed)
    # And one on the flow, whose figure sets its axis ranges from each model's paths.
    flow = frames["train_flow_chart"]
    flow_full = chart_state(flow)
    drag_zoom(page, flow)
    flow_before = app.until(lambda: chart_state(flow), lambda s: s["x"] != flow_full["x"], 10, "the flow zoom")
    it_before = app.iteration()
    screenshot(app, "02-zoomed")

    page.wait_for_timeout(6_000)
    after = chart_state(loss)
    assert app.iteration() > it_before, "the run kept training"
    assert after["updates"] > zoomed["updates"], "the loss chart was updated in place meanwhile"
    assert after["points"] > zoomed["points"], "with more points"
    assert after["x"] == pytest.approx(zoomed["x"]) and after["y"] == pytest.approx(zoomed["y"]), (zoomed, after)
    flow_after = chart_state(flow)
    assert flow_after["frames"] > flow_before["frames"] + 5, "the points kept flowing"
    assert flow_after["t"] != flow_before["t"]
    assert flow_after["x"] == pytest.approx(flow_before["x"]), "the flow kept its zoom"
    # The flow takes a new model at the start of a loop; its axes follow the model's paths, but not while the
    # user holds a zoom.
    redrawn = app.until(lambda: chart_state(flow), lambda s: s["reacts"] > flow_before["reacts"], 60, "a new model")
    assert redrawn["x"] == pytest.approx(flow_before["x"]) and redrawn["y"] == pytest.approx(flow_before["y"])
    assert all(in_viewport(app.key(key).bounding_box()) for key in LIVE_CHARTS), "nothing moved off screen"
    assert all(abs(app.key(k).bounding_box()["y"] - boxes[k]["y"]) < 1 for k in LIVE_CHARTS), "nothing jumped"
    screenshot(app, "03-zoom-kept")
    assert page.locator('[data-testid="stException"]').count() == 0
    app.click_button("train_stop_button")


def test_presentation_mode_hides_the_controls_and_keeps_the_live_views(projector):
    app, page = projector, projector.page
    start_moons(app, "target=moons&adam=100000&present=1&autostart=1")
    for key in LIVE_CHARTS:
        chart_frame(app, key)
    assert not page.locator('[data-testid="stSidebar"]').is_visible(), "no sidebar"
    # Issue 22: presentation mode is a console: the run buttons stay, the toolbar's panels do not.
    assert app.key("train_stop_button").is_visible() and not app.key("train_share").is_visible(), "the console only"
    boxes = [app.key(key).bounding_box() for key in LIVE_CHARTS]
    assert all(in_viewport(b) for b in boxes), boxes
    assert min(b["height"] for b in boxes) > 450, "taller charts than with the sidebar (400 px)"
    screenshot(app, "04-present")
    assert "present=1" in page.url
    app.click_button("train_present_exit")
    page.wait_for_selector(".st-key-train_stop_button", state="visible", timeout=30_000)
    app.click_button("train_stop_button")


def test_continue_after_stop_trains_on_from_the_same_run(projector):
    app, page = projector, projector.page
    start_moons(app)
    app.until(app.iteration, lambda i: i >= 5, 60, "a few iterations")
    assert app.button("train_continue_button").is_disabled(), "nothing to continue while it trains"
    app.click_button("train_stop_button")
    app.until(lambda: page.get_by_text("Stopped", exact=False).count(), lambda n: n > 0, 90, "the run to stop")
    app.wait_idle()
    stopped_at = app.iteration()
    loss_points = chart_state(chart_frame(app, "train_loss_chart"))["points"]
    screenshot(app, "05-stopped")
    app.until(lambda: app.button("train_continue_button").is_enabled(), bool, 30, "Continue to be enabled")
    started = time.monotonic()
    app.click_button("train_continue_button")
    app.until(app.iteration, lambda i: i > stopped_at + 3, 60, "training to continue")
    text = app.progress()
    assert text.startswith("Iteration") and "/ 100,000" in text, "the same run, not a new one"
    app.until(
        lambda: chart_state(chart_frame(app, "train_loss_chart"))["points"],
        lambda n: n > loss_points,
        30,
        "the loss curve to grow from where it was",
    )
    first = page.evaluate("() => document.querySelector('.st-key-train_loss_chart iframe') !== null")
    assert first and time.monotonic() - started < 60
    screenshot(app, "06-continued")
    app.click_button("train_stop_button")
    app.until(lambda: page.get_by_text("Stopped", exact=False).count(), lambda n: n > 0, 90, "the run to stop again")
    assert app.errors() == []


PLOT_GEOMETRY = """() => {
  const L = window.liveChart.div._fullLayout;
  const sizes = (sel) => [...document.querySelectorAll(sel)].map((e) => parseFloat(getComputedStyle(e).fontSize));
  const plots = Object.keys(L).filter((k) => /^yaxis\\d*$/.test(k)).map((k) => ({top: L[k]._offset, h: L[k]._length}));
  return {plots, ticks: Math.min(...sizes(".xtick text, .ytick text")), notes: Math.min(...sizes(".annotation-text"))};
}"""
"""Each plot area's top and height in the chart (px), and the smallest tick and annotation (t readout) type."""


@pytest.mark.parametrize("size", [(1366, 768), (1440, 900)], ids=["1366x768", "1440x900"])
def test_presentation_heatmaps_fill_the_height_of_the_screen(browser, app_url, artifacts_dir, request, size):
    width, height = size
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(30_000)
    app = StreamlitApp(page, app_url, artifacts_dir)
    try:
        start_moons(app, "target=moons&adam=100000&present=1&autostart=1")
        ready = {
            "train_density_chart": "/iteration/.test(window.liveChart.div.layout.title.text)",
            "train_flow_chart": "window.liveChart.anim !== null",
        }
        for key, when in ready.items():
            frame = chart_frame(app, key, when)
            box = app.key(key).bounding_box()
            geometry = frame.evaluate(PLOT_GEOMETRY)
            # Not a small square between empty bands: the plot area takes most of the chart, the chart reaches
            # the foot of the screen (the console's key hint below it), and nothing leaves the screen.
            assert min(p["h"] for p in geometry["plots"]) >= 0.65 * box["height"], (key, box, geometry)
            assert box["y"] >= 0 and box["y"] + box["height"] <= height + 0.5, (key, box)
            assert box["y"] + box["height"] >= height - 80, (key, box, "the chart fills the height available")
            assert geometry["ticks"] >= 20 and geometry["notes"] >= 20, (key, geometry)
        page.wait_for_timeout(500)
        page.screenshot(path=str(artifacts_dir / f"projector-present-fill-{request.node.callspec.id}.png"))
        assert app.errors() == []
        app.click_button("train_stop_button")
    finally:
        context.close()
