"""What a newcomer and a teacher see, in a real Chromium: the target and a trained flow before any click, its
points moving (at 1366×768, 1440×900 and on a 390×844 phone), a density picture newer than 2 s while a run
trains, no toolbar over a chart's title on a phone, the charts on the first screen while a drawing trains,
every loss curve named on the chart, and the presentation console's keys (T trains, space pauses, → steps).

Screenshots land in the artifacts folder (``screen-*.png``).
"""

from __future__ import annotations

import math
import os
import time

import pytest

from tests.browser.conftest import StreamlitApp

pytestmark = pytest.mark.browser

VIEWPORTS = {"laptop": (1366, 768), "desktop": (1440, 900), "phone": (390, 844)}


@pytest.fixture
def tab(browser, app_url, artifacts_dir, request):
    """A tab of the given viewport on the shared server; a failing test leaves a screenshot."""
    width, height = VIEWPORTS[getattr(request, "param", "laptop")]
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield StreamlitApp(page, app_url, artifacts_dir)
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        try:
            page.screenshot(path=str(artifacts_dir / f"{request.node.name}-failure.png"))
        except Exception:  # a failed screenshot must not hide the failure itself
            pass
    context.close()


MOTION = """() => {
  const s = window.liveChart, d = s.div, trace = s.anim ? d.data[s.anim.trace] : null;
  const label = d.layout.annotations && d.layout.annotations.length ? d.layout.annotations[0].text : null;
  const xy = trace ? [Array.from(trace.x).slice(0, 5), Array.from(trace.y).slice(0, 5)] : null;
  return {frames: s.frames, label: label, xy: xy};
}"""
"""The flow's animation, as the test sees it: frames drawn, the t readout and the first points' position."""


def chart_frame(app: StreamlitApp, key: str, timeout: float = 90.0) -> object:
    """The frame of the live chart ``key`` once its plot is drawn (looked up afresh each try: a rerun may
    replace the element, and a frame found before would be detached)."""

    def drawn() -> object | None:
        try:
            frame = app.key(key).locator("iframe").last.element_handle(timeout=5_000).content_frame()
            return frame if frame.evaluate("() => Boolean(window.liveChart && window.liveChart.reacts > 0)") else None
        except Exception:  # not there yet, or detached while we looked
            return None

    return app.until(drawn, lambda f: f is not None, timeout, f"the chart {key} to be drawn")


def overlap(a: dict | None, b: dict | None) -> bool:
    """Whether two bounding boxes intersect (a missing one intersects nothing)."""
    if a is None or b is None:
        return False
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and a["y"] < b["y"] + b["height"]
        and (b["y"] < a["y"] + a["height"])
    )


def visible_box(locator: object) -> dict | None:
    """The bounding box of the first match when it is shown, else None."""
    if locator.count() == 0 or not locator.first.is_visible():
        return None
    return locator.first.bounding_box()


def shot(app: StreamlitApp, name: str) -> None:
    app.page.screenshot(path=str(app.artifacts / f"screen-{name}.png"))  # the viewport: what a person sees first


@pytest.mark.parametrize("tab", list(VIEWPORTS), indirect=True)
def test_the_target_and_a_trained_flow_show_before_train(tab, request):
    app, page = tab, tab.page
    app.goto("train?target=moons")
    density = app.key("train_preview_density")
    density.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
    assert "after training" in density.inner_text().lower()
    flow = app.key("train_preview_flow").locator("iframe").first.element_handle(timeout=60_000).content_frame()
    flow.wait_for_function("() => window.liveChart && window.liveChart.reacts > 0", timeout=60_000)
    assert flow.locator(".js-plotly-plot").count() == 1
    # The trained flow moves: its points are carried z → x, frame after frame, with the t readout following.
    first = flow.evaluate(MOTION)
    page.wait_for_timeout(1_500)
    later = flow.evaluate(MOTION)
    assert later["frames"] >= first["frames"] + 5, (first, later)
    assert later["label"] != first["label"] and later["xy"] != first["xy"], (first, later)
    assert page.get_by_text("After training: a flow trained with these settings").count() == 1
    width, height = page.viewport_size["width"], page.viewport_size["height"]
    box = density.bounding_box()
    if width > 1000:
        assert box["y"] < 0.5 * height, "the picture is on the first screen, not below the fold"
    assert box["width"] <= width + 0.5
    shot(app, f"before-train-{request.node.callspec.id}")
    assert not app.errors()


def test_home_has_an_address_of_its_own(tab):
    app, page = tab, tab.page
    page.goto(f"{app.url}/home")
    page.wait_for_selector('[data-testid="stMainBlockContainer"] h1', timeout=60_000)
    assert "watch a flow learn" in page.locator("h1").first.inner_text()
    assert page.get_by_text("Page not found").count() == 0


def test_every_loss_curve_is_named_and_the_console_keys_work(tab):
    app, page = tab, tab.page
    app.goto("train?target=moons&adam=100000&present=1")
    page.wait_for_selector(".st-key-train_train_button button", timeout=30_000)
    assert not page.locator('[data-testid="stSidebar"]').is_visible()
    page.keyboard.press("t")  # starts a run from presentation mode
    app.until(app.iteration, lambda i: i >= 1, 90, "the first iteration")
    frame = app.key("train_loss_chart").locator("iframe").first.element_handle(timeout=60_000).content_frame()
    names = app.until(
        lambda: frame.evaluate("() => [...document.querySelectorAll('.legendtext')].map(e => e.textContent)"),
        lambda n: "test NLL" in n,
        120,
        "the first test NLL on the loss chart",
    )
    assert {"training NLL", "test NLL", "NFE per iteration"} <= set(names), names
    titles = frame.evaluate(
        "() => [...document.querySelectorAll('.g-xtitle, .g-x2title, .g-ytitle, .g-y2title')].map(e => e.textContent)"
    )
    assert {"iteration", "NLL (nats)", "NFE / iter"} <= set(titles), titles
    page.keyboard.press(" ")
    app.until(lambda: app.button("train_pause_button").inner_text(), lambda t: "Resume" in t, 30, "space to pause")
    app.until(app.progress, lambda t: "paused" in t, 30, "the run to pause")
    before = app.iteration()
    page.keyboard.press("ArrowRight")
    app.until(app.iteration, lambda i: i == before + 1, 30, "→ to step one iteration")
    shot(app, "console-paused")
    page.keyboard.press(" ")
    app.until(lambda: app.button("train_pause_button").inner_text(), lambda t: "Pause" in t, 30, "space to resume")
    app.click_button("train_reset_button")


DENSITY_TITLE = "() => window.liveChart.div.layout.title.text"


@pytest.mark.parametrize("tab", list(VIEWPORTS), indirect=True)
def test_a_density_picture_newer_than_two_seconds_while_training(tab, request):
    app, page = tab, tab.page
    app.goto("train?target=moons&adam=100000&autostart=1")
    app.until(app.iteration, lambda i: i >= 1, 90, "the first iteration")
    density = chart_frame(app, "train_density_chart")
    app.until(lambda: density.evaluate(DENSITY_TITLE), lambda t: "iteration" in t, 60, "the first density picture")
    # Once the run is warm: over 8 s, each new picture (its title names its iteration) comes within 2.5 s. The
    # job plans one every 1.5 s from the last one's start; the iteration in progress and the stream's 0.4 s
    # tick come on top. A machine running more than twice the work it has cores for stretches every step
    # alike, so the window and the bound stretch with it (2 cores: at load 9 the longest gap measured 2.3 s,
    # at load 13-15 3.5-4.4 s).
    page.wait_for_timeout(2_000)
    stretch = min(4.0, max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1) / 2))
    start = last_change = time.monotonic()
    title, titles, gaps = density.evaluate(DENSITY_TITLE), [], []
    while time.monotonic() - start < 8.0 * stretch:
        page.wait_for_timeout(100)
        now, current = time.monotonic(), density.evaluate(DENSITY_TITLE)
        if current != title:
            gaps.append(now - last_change)
            title, last_change = current, now
            titles.append(current)
    gaps.append(time.monotonic() - last_change)
    measured = (titles, [round(g, 2) for g in gaps], f"load stretch {stretch:.1f}")
    assert max(gaps) <= 2.5 * stretch and len(titles) >= 3, measured
    numbers = [int(t.rsplit(" ", 1)[-1].replace(",", "")) for t in titles]
    assert numbers == sorted(numbers) and numbers[-1] > numbers[0], "newer iterations each time"
    # No Plotly toolbar over a chart's title, and the density's two panel titles side by side, apart: on a
    # phone a tap shows the toolbar, so the pointer rests on each chart first.
    for key in ("train_loss_chart", "train_density_chart", "train_flow_chart"):
        frame = chart_frame(app, key)
        app.key(key).scroll_into_view_if_needed()
        box = app.key(key).bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.wait_for_timeout(300)
        title_box = visible_box(frame.locator(".gtitle"))
        assert title_box is not None, key
        modebar = visible_box(frame.locator(".modebar-container .modebar-group"))
        assert not overlap(title_box, modebar), (key, title_box, modebar)
        if request.node.callspec.id == "phone":
            assert modebar is None, f"{key}: no toolbar on a phone"
    density = chart_frame(app, "train_density_chart")
    subtitles = [density.locator(".annotation-text", has_text=t).first for t in ("True", "Learned")]
    boxes = [s.bounding_box() for s in subtitles]
    assert not overlap(*boxes), boxes
    app.key("train_density_chart").scroll_into_view_if_needed()
    page.evaluate("() => window.scrollBy(0, -120)")  # the density's title, clear of Streamlit's header
    page.mouse.move(5, page.viewport_size["height"] - 5)
    shot(app, f"training-{request.node.callspec.id}")
    app.click_button("train_stop_button")
    assert not app.errors()


def _draw_loop(page: object, canvas: object, fx: float, fy: float, radius: float) -> None:
    box = canvas.bounding_box()
    cx, cy = box["x"] + fx * box["width"], box["y"] + fy * box["height"]
    page.mouse.move(cx + radius, cy)
    page.mouse.down()
    for i in range(1, 41):
        a = 2 * math.pi * i / 40
        page.mouse.move(cx + radius * math.cos(a), cy + radius * math.sin(a))
    page.mouse.up()


def test_the_charts_are_on_the_first_screen_while_a_drawing_trains(tab):
    app, page = tab, tab.page
    app.goto("train?adam=100000")
    app.pick("train_target", "Draw", "Draw your own (2D)")
    canvas = app.key("train_draw_canvas").locator(".nsewdrag").first
    canvas.wait_for(state="visible", timeout=30_000)
    page.wait_for_timeout(300)  # plotly binds its drag handlers after the first paint
    _draw_loop(page, canvas, 0.35, 0.4, 50)
    app.until(lambda: page.get_by_text("1 stroke.").count(), lambda n: n > 0, 30, "the stroke")
    app.wait_idle()
    canvas_top = app.key("train_draw_panel").bounding_box()
    app.click_button("train_train_button")
    app.until(app.iteration, lambda i: i >= 1, 90, "the first iteration")
    for key in ("train_loss_chart", "train_density_chart", "train_flow_chart"):
        chart_frame(app, key)
    height = page.viewport_size["height"]
    page.evaluate("() => window.scrollTo(0, 0)")
    boxes = {
        key: app.key(key).bounding_box() for key in ("train_loss_chart", "train_density_chart", "train_flow_chart")
    }
    # The canvas (about 500 px) folded into one line: the charts start where it started, and show whole.
    assert all(b["y"] + b["height"] <= height + 0.5 for b in boxes.values()), (boxes, canvas_top)
    assert app.key("train_draw_panel").count() == 0 and app.key("train_draw_folded").is_visible()
    shot(app, "drawing-training")
    # The drawing is one click away, to change it for the next run.
    app.key("train_draw_folded").locator("summary").first.click()
    app.key("train_draw_canvas").locator(".nsewdrag").first.wait_for(state="visible", timeout=30_000)
    app.click_button("train_stop_button")
    assert not app.errors()
