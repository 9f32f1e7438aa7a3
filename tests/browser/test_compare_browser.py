"""A quick hyperparameter check in a real Chromium: open Compare, set up three widths of a flow on two moons
with a small budget (60 Adam iterations each), start, watch the progress rows and loss curves, and see the
densities and the metrics table with three rows at the end, and no error anywhere.

Screenshots of each step land in the artifacts folder.
"""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.browser

RUNS = ("width = 16", "width = 32", "width = 64")


def fill(app, key: str, text: str) -> None:
    box = app.key(key).locator("input").first
    box.fill(text)
    box.press("Enter")
    app.wait_idle()


def test_three_run_comparison_to_the_metrics_table(app):
    page = app.page
    app.goto("compare")
    page.wait_for_selector(".st-key-compare_start_button", timeout=30_000)

    picker = page.locator(".st-key-compare_target input").first
    picker.click()
    picker.fill("moons")
    page.get_by_role("option", name="moons (2D)").click()
    app.wait_idle()
    fill(app, "compare_adam_iters", "60")
    fill(app, "compare_values_width", "16, 32, 64")
    page.get_by_text(f"3 runs: {' · '.join(RUNS)}").wait_for(timeout=10_000)
    app.screenshot("compare-01-setup")

    started = time.monotonic()
    app.click_button("compare_start_button")
    page.wait_for_selector('[data-testid="stProgress"]', timeout=30_000)
    page.wait_for_selector(".st-key-compare_loss_chart .js-plotly-plot", timeout=30_000)
    app.screenshot("compare-02-running")

    page.wait_for_selector(".st-key-compare_metrics table", timeout=80_000)
    app.wait_idle()
    page.wait_for_timeout(500)  # let plotly finish drawing the density grid
    print(f"\nthree-run comparison, start to metrics table: {time.monotonic() - started:.1f} s")
    page.set_viewport_size({"width": 1440, "height": 2800})  # Streamlit scrolls inside the page: show it all
    page.wait_for_timeout(500)
    app.screenshot("compare-03-done")

    rows = page.locator(".st-key-compare_metrics table tbody tr")
    assert rows.count() == 3
    assert [rows.nth(i).locator("td, th").all_inner_texts()[1].strip() for i in range(3)] == list(RUNS)
    assert page.locator(".st-key-compare_metrics table").get_by_text("★").count() == 1
    for i in range(3):
        assert app.key(f"compare_density_chart_{i}").locator(".js-plotly-plot").count() == 1
    assert app.errors() == []
