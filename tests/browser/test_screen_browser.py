"""What a newcomer and a teacher see, in a real Chromium: the target and a trained flow before any click (at
1366×768, 1440×900 and on a 390×844 phone), every loss curve named on the chart, and the presentation
console's keys (T trains, space pauses, → steps).

Screenshots land in the artifacts folder (``screen-*.png``).
"""

from __future__ import annotations

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


def shot(app: StreamlitApp, name: str) -> None:
    app.page.screenshot(path=str(app.artifacts / f"screen-{name}.png"))  # the viewport: what a person sees first


@pytest.mark.parametrize("tab", list(VIEWPORTS), indirect=True)
def test_the_target_and_a_trained_flow_show_before_train(tab, request):
    app, page = tab, tab.page
    app.goto("train?target=moons")
    density = app.key("train_preview_density")
    density.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
    assert "after training" in density.inner_text().lower()
    assert app.key("train_preview_flow").locator(".js-plotly-plot").count() == 1
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
