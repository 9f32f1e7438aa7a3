"""A student opens the teacher's lesson link in Chromium: the hidden controls are not on the page, and
training runs without anyone pressing Train; the address bar keeps the lesson but not the autostart; the
teacher's Share, Code, Load and Present are not shown to the student. The teacher builds that link in Share."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

LESSON = "train?target=moons&hide=solver,trace&autostart=1"


def test_lesson_link_hides_controls_and_starts_training(app):
    page = app.page
    app.goto(LESSON)  # a fresh browser context: a new session, as a student's
    first = app.until(app.iteration, lambda i: i >= 1, 60, "training to start by itself")
    app.until(app.iteration, lambda i: i > first, 60, "the iteration count to increase")
    assert app.button("train_train_button").is_disabled(), "the run is active without a click on Train"

    page.locator('[data-testid="stSidebar"] summary').filter(has_text="ODE").click()
    app.key("train_t0").locator("input").first.wait_for(state="visible")
    for hidden in ("train_solver", "train_step_size", "train_trace", "train_preset"):
        assert app.key(hidden).count() == 0, f"{hidden} is on the page"
    assert page.get_by_text("Some controls are fixed by this lesson").is_visible()
    assert "autostart" not in page.url and "hide=solver%2Ctrace" in page.url and "target=moons" in page.url
    app.screenshot("lesson-01-autostarted")

    # Share, Code, Load and Present are the teacher's: a student on the lesson link sees none of them.
    for teachers in ("train_share", "train_code", "train_checkpoint", "train_present_button"):
        assert not app.key(teachers).first.is_visible(), f"{teachers} is shown to a student"

    app.click_button("train_stop_button")
    app.until(lambda: page.get_by_text("Stopped", exact=False).count(), lambda n: n > 0, 60, "the run to stop")
    assert app.errors() == []


def test_a_teacher_builds_the_lesson_link_in_share(new_app, app_url):
    """The teacher, on a plain link, opens Share: the setup's link (with a copy button), and a lesson link
    that hides the controls picked and starts training on open: the link the student above opened."""
    app = new_app(app_url).goto("train?target=moons")
    page = app.page
    page.wait_for_selector(".st-key-train_train_button", timeout=60_000)
    app.wait_idle()
    app.key("train_share").locator("button").first.click()  # the toolbar's Share popover
    link = app.key("train_share_link")
    link.wait_for(state="visible")
    text = app.until(link.inner_text, lambda t: t.startswith("http"), 20, "the link in the open popover")
    assert "/train?target=moons" in text and "hide=" not in text and "autostart" not in text
    link.hover()
    assert link.locator("button").count() >= 1, "the link has a copy button"

    picker = app.key("train_share_hide").locator("input").first
    for label in ("Solver", "Trace estimator"):
        picker.click()
        picker.fill(label)
        page.get_by_role("option", name=label, exact=True).click()
        app.wait_idle()
    app.key("train_share_autostart").locator("label").first.click()
    app.wait_idle()
    lesson = app.key("train_lesson_link")
    text = app.until(
        lesson.inner_text, lambda t: "hide=solver,trace" in t and "autostart=1" in t, 20, "the lesson link"
    )
    assert text.startswith("http") and "/train?target=moons" in text, text
    app.screenshot("lesson-02-share")
    assert app.errors() == []
