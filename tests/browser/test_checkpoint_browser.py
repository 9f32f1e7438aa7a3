"""Load → Continue in a real Chromium, on the app's default (process) backend: a checkpoint saved with its
training state is uploaded through the toolbar's Load popover, shown as the saved run's end (its iteration),
and Continue trains it on from there.
"""

from __future__ import annotations

import pytest

from cnfviz import TrainConfig, TrainingJob
from cnfviz.training.checkpoint import checkpoint_bytes

pytestmark = pytest.mark.browser

SAVED_ITERS = 30


def test_load_then_continue_trains_on_in_the_browser(start_server, new_app, tmp_path):
    config = TrainConfig(
        target="normal",
        model={"hidden": (8, 8)},
        solver={"method": "rk4", "step_size": 0.25},
        batch_size=64,
        adam_iters=SAVED_ITERS,
        eval_every=10,
        n_test=200,
        seed=2,
    )
    saved = TrainingJob(config, compute_final_metrics=False).start().join(120)
    path = tmp_path / "run.pt"
    path.write_bytes(checkpoint_bytes(saved.model, config, training=saved.training_state()))

    app = new_app(start_server("checkpoint-process", {"CNFVIZ_BACKEND": "process"})).goto("train")
    page = app.page
    page.wait_for_selector(".st-key-train_train_button", timeout=60_000)
    app.click_button("train_checkpoint")  # the toolbar's Load popover
    page.locator('.st-key-train_checkpoint_upload input[type="file"]').set_input_files(str(path))
    app.until(
        lambda: page.get_by_text("Loaded run.pt", exact=False).count(), lambda n: n > 0, 60, "the checkpoint to load"
    )
    page.keyboard.press("Escape")  # close the popover
    continue_button = app.button("train_continue_button")
    app.until(continue_button.is_enabled, bool, 60, "Continue to be offered for the loaded model")
    app.screenshot("checkpoint-01-loaded")

    continue_button.click()
    # It goes on from the saved run's iteration (a finished run gets as many Adam iterations again).
    app.until(app.iteration, lambda i: i > SAVED_ITERS, 60, "training to continue past the saved iteration")
    assert f"/ {2 * SAVED_ITERS:,}" in app.progress()
    app.until(lambda: page.get_by_text("Done", exact=False).count(), lambda n: n > 0, 120, "the continued run to end")
    app.until(app.iteration, lambda i: i == 2 * SAVED_ITERS, 30, "the continued run's last iteration")
    app.screenshot("checkpoint-02-continued")
    assert app.errors() == []
