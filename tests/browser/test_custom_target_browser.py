"""Your own target in Chromium: upload a CSV, or draw with the mouse on the canvas, press Train, and watch
the iterations advance with no error on the page."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytestmark = pytest.mark.browser


def train_and_stop(app, name: str) -> None:
    app.click_button("train_train_button")
    first = app.until(app.iteration, lambda i: i >= 1, 60, "the first iteration")
    app.until(app.iteration, lambda i: i > first, 60, "the iteration count to increase")
    app.screenshot(name)
    assert app.errors() == []
    app.click_button("train_stop_button")
    app.until(lambda: app.page.get_by_text("Stopped", exact=False).count(), lambda n: n > 0, 60, "the run to stop")


def current_preview(app) -> object:
    """The sidebar preview's plot as the latest script run drew it. While a rerun replaces the chart (a new
    stroke, a new upload), Streamlit briefly keeps the previous one on the page, marked stale, beside the
    new one: two plots under the one key, of which only the fresh one tells what the flow will learn."""
    return app.page.locator('.st-key-train_custom_preview:not([data-stale="true"]) .js-plotly-plot')


def test_upload_a_csv_and_train(app):
    app.goto("train")
    app.pick("train_target", "Upload", "Upload samples (CSV)")
    assert app.button("train_train_button").is_disabled(), "nothing to train on before the upload"
    rng = np.random.default_rng(0)
    ring = rng.normal(size=(400, 2))
    ring = 2.5 * ring / np.linalg.norm(ring, axis=1, keepdims=True) + 0.2 * rng.normal(size=(400, 2))
    content = "x,y\n" + "\n".join(f"{a:.4f},{b:.4f}" for a, b in ring)
    app.key("train_csv_upload").locator('input[type="file"]').set_input_files(
        files=[{"name": "ring.csv", "mimeType": "text/csv", "buffer": content.encode()}]
    )
    current_preview(app).wait_for(state="visible", timeout=30_000)
    app.wait_idle()
    assert app.errors() == []
    app.screenshot("custom-01-csv-uploaded")
    train_and_stop(app, "custom-02-csv-training")


def test_draw_a_target_and_train(app):
    page = app.page
    app.goto("train")
    app.pick("train_target", "Draw", "Draw your own (2D)")
    canvas = app.key("train_draw_canvas").locator(".nsewdrag").first
    canvas.wait_for(state="visible", timeout=30_000)
    page.wait_for_timeout(300)  # plotly binds its drag handlers after the first paint

    def loop(fx: float, fy: float, radius: float) -> None:
        box = canvas.bounding_box()
        cx, cy = box["x"] + fx * box["width"], box["y"] + fy * box["height"]
        page.mouse.move(cx + radius, cy)
        page.mouse.down()
        for i in range(1, 41):
            a = 2 * math.pi * i / 40
            page.mouse.move(cx + radius * math.cos(a), cy + radius * math.sin(a))
        page.mouse.up()

    loop(0.3, 0.35, 45)
    app.until(lambda: page.get_by_text("1 stroke.").count(), lambda n: n > 0, 30, "the first stroke")
    app.wait_idle()
    loop(0.7, 0.65, 55)
    app.until(lambda: page.get_by_text("2 strokes.").count(), lambda n: n > 0, 30, "the second stroke")
    current_preview(app).wait_for(state="visible", timeout=30_000)
    app.wait_idle()
    app.screenshot("custom-03-drawn")
    train_and_stop(app, "custom-04-drawing-training")
