"""A quick hyperparameter check in a real Chromium: open Compare, set up three widths of a flow on two moons
with a small budget (60 Adam iterations each), start, watch the progress rows and loss curves, and see the
densities and the metrics table with three rows at the end, and no error anywhere. And while a comparison
trains, the page follows its live stream: every run's curve and progress row move, and no script reruns.

Screenshots of each step land in the artifacts folder.
"""

from __future__ import annotations

import re
import time

import pytest

pytestmark = pytest.mark.browser

RUNS = ("width = 16", "width = 32", "width = 64")
# Each run's training-NLL line in the loss chart's frame (the left panel's lines, one per run, in run order).
RUN_POINTS_JS = """() => {
  const frame = document.querySelector('.st-key-compare_loss_chart iframe');
  const plot = frame && frame.contentDocument && frame.contentDocument.querySelector('.js-plotly-plot');
  if (!plot || !plot._fullData) return null;
  return plot._fullData.filter(t => t.xaxis === 'x' && t.mode === 'lines').map(t => t._length || 0);
}"""
STREAM_OPEN_JS = """() => {
  const frame = document.querySelector('.st-key-compare_loss_chart iframe');
  const live = frame && frame.contentWindow && frame.contentWindow.liveChart && frame.contentWindow.liveChart.live;
  const status = window.cnfvizStatus && window.cnfvizStatus['compare_live_status'];
  return Boolean(live && live.source && live.source.readyState === 1 && status && status.source
                 && status.source.readyState === 1);
}"""
ROW_TEXTS_JS = """() => Array.from(document.querySelectorAll('.st-key-compare_live_status .cnfviz-status-text'))
  .map(p => p.textContent)"""
DENSITY_PICTURES_JS = """(i) => {
  const frame = document.querySelector('.st-key-compare_live_density_' + i + ' iframe');
  const w = frame && frame.contentWindow;
  return w && w.liveChart ? w.liveChart.live.pictures || 0 : -1;
}"""


def rerun_requests(payloads: list[bytes]) -> int:
    """How many of the BackMsgs the page sent up its websocket ask for a script run."""
    from streamlit.proto.BackMsg_pb2 import BackMsg

    count = 0
    for payload in payloads:
        msg = BackMsg()
        try:
            msg.ParseFromString(payload if isinstance(payload, bytes) else payload.encode("latin-1"))
        except Exception:  # not a BackMsg: not a rerun
            continue
        count += msg.WhichOneof("type") == "rerun_script"
    return count


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
    # The loss chart is a live chart: its plot is inside the component's frame.
    app.until(lambda: page.evaluate(RUN_POINTS_JS), lambda n: n is not None, 30, "the loss chart")
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


def test_a_training_comparison_moves_every_run_without_a_script_rerun(app):
    page = app.page
    sent: list[bytes] = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(payload)))
    app.goto("compare")
    page.wait_for_selector(".st-key-compare_start_button", timeout=30_000)
    fill(app, "compare_adam_iters", "4000")  # long enough to watch; Stop all ends it
    page.get_by_text("3 runs: width = 32 · width = 64 · width = 128").wait_for(timeout=10_000)
    app.click_button("compare_start_button")
    app.until(lambda: page.evaluate(STREAM_OPEN_JS), bool, 120, "the loss chart's and the rows' streams to open")
    app.until(
        lambda: page.evaluate(RUN_POINTS_JS), lambda n: n and len(n) == 3 and min(n) >= 3, 120, "every run's points"
    )

    def iterations() -> list[int]:
        texts = page.evaluate(ROW_TEXTS_JS)
        return [int(m.group(1).replace(",", "")) if (m := re.match(r"iteration ([\d,]+)", t)) else -1 for t in texts]

    # The quiet window: nothing asks for a script run, while every run's curve and progress row move.
    before_sent, before_points, before_rows = len(sent), page.evaluate(RUN_POINTS_JS), iterations()
    page.wait_for_timeout(4500)
    after_points, after_rows = page.evaluate(RUN_POINTS_JS), iterations()
    reruns = rerun_requests(sent[before_sent:])
    app.screenshot("compare-04-live")
    assert len(after_points) == 3 and all(a > b for a, b in zip(after_points, before_points, strict=True)), (
        f"every run's curve grew from the stream: {before_points} -> {after_points}"
    )
    assert len(after_rows) == 3 and all(a > b >= 0 for a, b in zip(after_rows, before_rows, strict=True)), (
        f"every run's progress row moved: {before_rows} -> {after_rows}"
    )
    assert reruns == 0, f"{reruns} script reruns in 4.5 s of training (polling asked for about 4.5 per second)"
    assert all(page.evaluate(DENSITY_PICTURES_JS, i) >= 1 for i in range(3)), "each run's density came by the stream"

    # Stop all: the stream asks for a rerun, and the page ends with every run stopped and its results.
    app.click_button("compare_stop_button")
    page.wait_for_selector(".st-key-compare_metrics table", timeout=120_000)
    app.wait_idle()
    texts = [t for t in page.evaluate(ROW_TEXTS_JS)]
    assert len(texts) == 3 and all(t.startswith("stopped") for t in texts), texts
    assert app.errors() == []
