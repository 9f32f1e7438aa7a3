"""The live channel in a real Chromium: after Train the loss plot, the status row and the pictures move with no
script rerun (no message goes up the page's websocket while the run trains), the page redraws once when the
run ends, and a second run downloads no plotly again (the browser's cache answers). The status row is its own
component on its own stream (not written by the loss chart's frame), and says how the run ended after Stop.
"""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.browser

FRAME_JS = """(key) => {
  const frame = document.querySelector('.st-key-' + key + ' iframe');
  return frame && frame.contentWindow && frame.contentWindow.liveChart ? frame.contentWindow : null;
}"""
LOSS_POINTS_JS = """() => {
  const frame = document.querySelector('.st-key-train_loss_chart iframe');
  const plot = frame && frame.contentDocument && frame.contentDocument.querySelector('.js-plotly-plot');
  if (!plot || !plot._fullData || !plot._fullData.length) return -1;
  return plot._fullData[0]._length ?? -1;
}"""
LIVE_JS = """() => {
  const frame = document.querySelector('.st-key-train_loss_chart iframe');
  const live = frame && frame.contentWindow && frame.contentWindow.liveChart && frame.contentWindow.liveChart.live;
  return live ? {events: live.events, points: live.points, open: !!live.source && live.source.readyState === 1,
                 pictures: live.lastVisuals ? live.lastVisuals.version : -1} : null;
}"""
STATUS_JS = """() => {
  const s = window.cnfvizStatus && window.cnfvizStatus['train_live_status'];
  const row = document.querySelector('.st-key-train_live_status .cnfviz-status');
  return s ? {events: s.events, open: !!s.source && s.source.readyState === 1, url: s.url, inPage: !!row,
              size: row ? parseFloat(getComputedStyle(row.querySelector('.cnfviz-status-text')).fontSize) : 0} : null;
}"""
LOSS_URL_JS = """() => {
  const frame = document.querySelector('.st-key-train_loss_chart iframe');
  const live = frame && frame.contentWindow && frame.contentWindow.liveChart && frame.contentWindow.liveChart.live;
  return live ? live.key : null;
}"""
PICTURES_JS = """() => {
  const frame = document.querySelector('.st-key-train_density_chart iframe');
  const w = frame && frame.contentWindow;
  return w && w.liveChart ? (w.liveChart.live.pictures || 0) : -1;
}"""


def test_training_moves_the_page_without_reruns_and_plotly_is_fetched_once(app):
    page = app.page
    sent: list[float] = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda _payload: sent.append(page.evaluate("Date.now()"))))
    # Bytes on the wire per plotly request, from Chromium's own network log (a cache hit moves none).
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    plotly_ids: dict[str, str] = {}
    plotly_bytes: list[int] = []
    cdp.on(
        "Network.requestWillBeSent",
        lambda e: (
            plotly_ids.__setitem__(e["requestId"], e["request"]["url"]) if "plotly" in e["request"]["url"] else None
        ),
    )
    cdp.on(
        "Network.loadingFinished",
        lambda e: plotly_bytes.append(int(e["encodedDataLength"])) if e["requestId"] in plotly_ids else None,
    )
    app.goto("train?target=moons&adam=3000")
    app.click_button("train_train_button")
    app.until(lambda: page.evaluate(LIVE_JS), lambda v: v is not None and v["open"], 120, "the stream to open")
    first = app.until(lambda: page.evaluate(LOSS_POINTS_JS), lambda n: n >= 1, 60, "the first loss point")
    app.until(lambda: page.evaluate(PICTURES_JS), lambda n: n >= 1, 60, "a picture from the stream")

    def text_iteration() -> int:
        m = re.search(r"Iteration ([\d,]+)", app.progress())
        return int(m.group(1).replace(",", "")) if m else -1

    # A quiet window of the run: the loss and the status row move, nothing goes up the websocket.
    app.until(lambda: page.evaluate(LOSS_POINTS_JS), lambda n: n > first + 5, 60, "the loss plot to grow")
    before_frames, before_points, before_it = len(sent), page.evaluate(LOSS_POINTS_JS), text_iteration()
    before_status = page.evaluate(STATUS_JS)
    page.wait_for_timeout(4000)
    after_points, after_it = page.evaluate(LOSS_POINTS_JS), text_iteration()
    after_status = page.evaluate(STATUS_JS)
    reruns = len(sent) - before_frames
    assert after_points > before_points, "the loss plot grew from the stream"
    assert after_it > before_it, "the status row's iteration moved from the stream"
    # Today's polling sends ~9 rerun requests in 4 s; a state change (a new curve) may ask for one.
    assert reruns <= 1, f"{reruns} messages went up the websocket in 4 s of training"
    assert app.errors() == []
    # The status row is text in the page, on its own stream (the loss chart's stream carries no status).
    assert after_status["inPage"] and after_status["open"] and "parts=status" in after_status["url"], after_status
    assert after_status["events"] > before_status["events"], "the row's own stream moved it"
    assert page.evaluate(LOSS_URL_JS).endswith("parts=loss,visuals")
    assert after_status["size"] >= 12

    # Stop: the stream asks for one rerun and the page shows how the run ended.
    app.click_button("train_stop_button")
    app.until(lambda: page.get_by_text("Stopped", exact=False).count(), lambda n: n > 0, 90, "the run to stop")
    app.wait_idle()
    # The row, right after Stop: the run's last iteration and its training time, and no stream left open.
    app.until(app.progress, lambda t: t.endswith("of training"), 60, "the status row to say the run ended")
    assert text_iteration() >= after_it, app.progress()
    # Its stream stays open while the final metrics come (the row may still change), then closes.
    app.until(lambda: page.evaluate(STATUS_JS)["open"], lambda o: not o, 90, "the row's stream to close")
    app.wait_idle()
    assert app.progress().endswith("of training") and text_iteration() >= after_it, app.progress()
    assert plotly_bytes and max(plotly_bytes) > 1_000_000, f"the first page open fetched plotly: {plotly_bytes}"
    assert sum(plotly_bytes) < 2_000_000, f"once, gzipped, for three charts: {plotly_bytes}"
    assert all("/_cnfviz/assets/plotly-" in url for url in plotly_ids.values()), plotly_ids
    fetched = len(plotly_bytes)

    # A second run: Reset, then Train. The charts' pages load plotly from the browser's cache.
    app.click_button("train_reset_button")
    app.wait_idle()
    app.click_button("train_train_button")
    app.until(lambda: page.evaluate(LOSS_POINTS_JS), lambda n: n >= 1, 60, "the second run's first loss point")
    page.wait_for_timeout(500)
    later = plotly_bytes[fetched:]
    assert sum(later) < 2_000, f"the second run downloaded plotly again: {later}"
    app.screenshot("live-channel-second-run")
