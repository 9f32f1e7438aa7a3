"""Two people on a server that trains one run at a time: the second is told their place in the queue, and
when the first closes their tab (which stops their run), the second one's run starts by itself."""

from __future__ import annotations

import re
import time

import pytest

pytestmark = pytest.mark.browser


def iteration(app) -> int:
    bar = app.page.locator('[data-testid="stProgress"]')
    m = re.search(r"Iteration ([\d,]+)", bar.first.inner_text() if bar.count() else "")
    return int(m.group(1).replace(",", "")) if m else -1


def wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def test_second_tab_queues_until_the_first_closes(start_server, new_app):
    url = start_server("capped", {"CNFVIZ_MAX_JOBS": "1"})
    first, second = new_app(url), new_app(url)
    for app in (first, second):
        app.goto("train")
        iters = app.key("train_adam_iters").locator("input").first
        iters.fill("100000")
        iters.press("Enter")
        app.wait_idle()

    first.click_button("train_train_button")
    wait(lambda: iteration(first) > 0, 60, "the first tab's run to train")
    second.click_button("train_train_button")
    wait(lambda: second.page.get_by_text("number 1 in the queue").count() > 0, 30, "the queue position")
    second.screenshot("queue-01-waiting")
    assert iteration(second) <= 0, "a queued run does not train"

    first.page.context.close()  # the session ends, its cached JobHolder is released, its run stops
    wait(lambda: iteration(second) > 0, 60, "the queued run to start once the first tab closed")
    second.screenshot("queue-02-training")
    second.click_button("train_stop_button")
    wait(lambda: second.page.get_by_text("Stopped", exact=False).count() > 0, 90, "the run to stop")
    assert second.errors() == []
