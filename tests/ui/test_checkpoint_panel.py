"""The Train page's "Load a checkpoint" panel: a checkpoint shows its model exactly like a finished run (status,
plots, metrics, samples, downloads), the sidebar moves to its settings, custom data comes back from the samples
it carries, one upload loads once, and a bad file changes nothing but a message.
"""

from __future__ import annotations

import importlib
import re

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from cnfviz import TrainConfig, Trainer, TrainingJob, load_checkpoint, make_target
from cnfviz.figures.views import LIVE_SOLVER
from cnfviz.targets import ImageTarget, SamplesTarget
from cnfviz.training.checkpoint import checkpoint_bytes
from cnfviz.ui.checkpoint_panel import MAX_CHECKPOINT_MB, LoadedCheckpoint, download_bytes, load_upload
from cnfviz.ui.session import JobHolder
from cnfviz.ui.views import _checkpoint_data
from tests.apptest import TRAIN, fresh_caches, iteration, live_charts, wait_for  # noqa: F401 - fresh_caches is autouse

# The package re-exports the panel function under the module's name, so fetch the module itself.
panel_module = importlib.import_module("cnfviz.ui.checkpoint_panel")

FAST = {"solver": {"method": "rk4", "step_size": 0.25}, "adam_iters": 4, "eval_every": 0, "n_test": 200}


@pytest.fixture(scope="module")
def gamma() -> Trainer:
    config = TrainConfig(
        target="scipy:gamma", target_params={"a": 2.0}, model={"hidden": (12, 12)}, batch_size=64, seed=5, **FAST
    )
    trainer = Trainer(config)
    trainer.run(final_metrics=False)
    return trainer


@pytest.fixture(scope="module")
def custom() -> Trainer:
    data = np.random.default_rng(3).normal(loc=2.0, scale=0.5, size=(300, 1))
    config = TrainConfig(target="samples", model={"hidden": (8,)}, batch_size=64, **FAST)
    trainer = Trainer(config, target=SamplesTarget(data, name="samples"))
    trainer.run(final_metrics=False)
    return trainer


def seen(markdown: str) -> str:
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown)


def upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.file_uploader(key="train_checkpoint_upload").set_value((name, data, "application/octet-stream")).run()
    assert not at.exception, at.exception
    return at


def shown(at: AppTest) -> AppTest:
    """Wait until both the status and the results show the loaded model's end."""
    return wait_for(
        at, lambda a: bool(a.get("table")) and any("loaded from a checkpoint" in seen(s.value) for s in a.success)
    )


def chart_keys(at: AppTest) -> set[str]:
    return {c.proto.id for c in at.get("plotly_chart")} | set(live_charts(at))


def test_a_checkpoint_shows_like_a_finished_run(gamma):
    at = AppTest.from_file(TRAIN, default_timeout=60).run()
    upload(at, "gamma.pt", checkpoint_bytes(gamma.model, gamma.config))
    shown(at)
    assert not at.error and not at.warning, [e.value for e in (*at.error, *at.warning)]
    # The sidebar holds the checkpoint's settings, so Train trains the same setup from scratch.
    assert at.selectbox(key="train_target").value == "scipy:gamma"
    assert at.text_input(key="train_param_scipy_gamma_a").value == "2.0"
    assert at.slider(key="train_width").value == 12 and at.slider(key="train_depth").value == 2
    config = at.session_state["train__config"]
    assert config.model == gamma.config.model and config.solver == gamma.config.solver and config.seed == 5
    assert not at.button(key="train_train_button").disabled
    # Status, metrics and plots, as after a run.
    assert any(seen(s.value).startswith("Loaded gamma.pt: a flow for scipy:gamma") for s in at.success)
    metrics = at.table[0].value
    assert list(metrics["metric"]) == ["seed TV", "grid TV", "KL", "test NLL", "∫p"]
    # The very figures an evaluation of the checkpoint's weights gives.
    expected = Trainer(gamma.config, init_state=gamma.model.state_dict()).evaluate()
    assert list(metrics["value"]) == [
        f"{v:.4g}" for v in (expected.seed_tv, expected.tv, expected.kl, expected.test_nll, expected.integral)
    ]
    assert any("train_density_chart" in k for k in chart_keys(at))
    # Samples come from exactly the loaded weights, and every download is offered.
    at.number_input(key="train_sample_n").set_value(50).run()
    at.button(key="train_sample_button").click().run()
    assert not at.exception and not at.error
    gen = torch.Generator().manual_seed(gamma.config.seed + 12_345)
    expected = gamma.model.sample(50, generator=gen, solver=LIVE_SOLVER).double().numpy()
    np.testing.assert_array_equal(at.session_state["train__samples"][1], expected)
    downloads = {b.proto.id for b in at.get("download_button")}
    for key in ("train_samples_download", "train_checkpoint_download", "train_config_download"):
        assert any(key in d for d in downloads), key


def test_one_upload_loads_once(gamma):
    at = AppTest.from_file(TRAIN, default_timeout=60).run()
    upload(at, "gamma.pt", checkpoint_bytes(gamma.model, gamma.config))
    shown(at)
    loaded = at.session_state["train__checkpoint"]
    assert isinstance(loaded, LoadedCheckpoint) and loaded.error is None
    for _ in range(3):
        at.run()
    assert at.session_state["train__checkpoint"] == loaded
    assert at.session_state["train__drawn"][0] == loaded.job_id, "no second job on reruns"
    # Removing the file keeps the model on screen and drops the message.
    at.file_uploader(key="train_checkpoint_upload").set_value(None).run()
    assert not at.exception
    assert "train__checkpoint" not in at.session_state
    assert at.session_state["train__drawn"][0] == loaded.job_id and at.get("table")


def test_custom_data_comes_back_from_the_checkpoint(custom):
    data = custom.target.data
    state: dict = {}
    holder = JobHolder(None)
    try:
        loaded = load_upload(
            "t", holder, "id-1", "mine.pt", checkpoint_bytes(custom.model, custom.config, target_data=data), state
        )
        assert loaded.error is None, loaded.error
        job = holder.get("t").join(60)
        assert isinstance(job.target, SamplesTarget)
        np.testing.assert_array_equal(job.target.data, data)
        x = torch.linspace(0, 4, 9, dtype=next(custom.model.parameters()).dtype)[:, None]
        torch.testing.assert_close(job.model.log_prob(x), custom.model.log_prob(x), rtol=0, atol=0)
        snap = job.snapshot()
        assert snap.state == "done" and snap.metrics is not None and snap.metrics.density_kind == "estimate"
        assert state["t_target"] == "samples", "the picker shows the CSV source"
        assert state["t_width"] == 8 and state["t_depth"] == 1
        # Without its data, the checkpoint cannot be shown, and nothing starts.
        bare = load_upload("u", holder, "id-2", "bare.pt", checkpoint_bytes(custom.model, custom.config), {})
        assert "does not carry it" in bare.error and holder.get("u") is None
    finally:
        holder.close()


def test_training_runs_are_not_replaced_by_an_upload():
    at = AppTest.from_file(TRAIN, default_timeout=60).run()
    at.selectbox(key="train_target").set_value("normal").run()
    at.number_input(key="train_adam_iters").set_value(100_000).run()
    at.button(key="train_train_button").click().run()
    wait_for(at, lambda a: iteration(a) >= 1)
    assert at.file_uploader(key="train_checkpoint_upload").disabled
    assert any("Stop the run first" in c.value for c in at.caption)
    at.button(key="train_stop_button").click().run()


def test_a_bad_checkpoint_changes_nothing_but_says_why(gamma):
    at = AppTest.from_file(TRAIN, default_timeout=60).run()
    before = at.session_state["train__config"]
    good = checkpoint_bytes(gamma.model, gamma.config)
    upload(at, "half.pt", good[: len(good) // 2])
    (error,) = at.error
    assert seen(error.value).startswith("Could not load half.pt: the checkpoint is cut short")
    assert at.session_state["train__config"] == before and not at.get("table")
    upload(at, "gamma.pt", good)
    assert not at.error
    shown(at)


def test_the_page_reads_at_most_its_cap(monkeypatch):
    seen_kwargs = {}

    def spy(data, **kwargs):
        seen_kwargs.update(kwargs)
        return load_checkpoint(data, **kwargs)

    monkeypatch.setattr(panel_module, "load_checkpoint", spy)
    at = AppTest.from_file(TRAIN, default_timeout=60).run()
    upload(at, "big.pt", b"\0" * (MAX_CHECKPOINT_MB * 1_000_000 + 1))
    assert seen_kwargs["max_bytes"] == MAX_CHECKPOINT_MB * 1_000_000
    assert any("larger than the limit of 8,000,000 bytes" in seen(e.value) for e in at.error)


def test_custom_checkpoints_from_the_page_carry_their_data(custom):
    """The page's Download button stores a custom target's samples (a picture's, as samples of it)."""
    np.testing.assert_array_equal(_checkpoint_data(custom.target), custom.target.data)
    picture = _checkpoint_data(ImageTarget(np.pad(np.ones((4, 4)), 4)))
    assert picture.shape == (10_000, 2) and np.all(np.abs(picture) <= 2.0 + 1e-9), "only the bright middle"
    assert _checkpoint_data(make_target("moons")) is None


def _continued(at: AppTest, past: int) -> AppTest:
    """Press Continue and wait until the run has trained past iteration ``past`` and ended."""
    assert not at.button(key="train_continue_button").disabled, "Continue is offered for a loaded model"
    at.button(key="train_continue_button").click().run()
    assert not at.exception, at.exception
    return wait_for(
        at, lambda a: iteration(a) > past and any(s.value.startswith("**Done**") for s in a.success), timeout=120
    )


def test_load_then_continue_trains_the_saved_run_on():
    config = TrainConfig(target="normal", model={"hidden": (8, 8)}, batch_size=64, seed=3, **FAST)
    saved = TrainingJob(config, compute_final_metrics=False).start().join(120)
    history = saved.snapshot().history
    at = AppTest.from_file(TRAIN, default_timeout=60).run()
    upload(at, "run.pt", checkpoint_bytes(saved.model, config, training=saved.training_state()))
    shown(at)
    loaded = at.session_state["train__checkpoint"]
    assert loaded.error is None and not any("fresh optimizer" in n for n in loaded.notes)
    _continued(at, FAST["adam_iters"])
    # A finished run gets as many Adam iterations again, after the saved ones, whose history it keeps.
    assert iteration(at) == 2 * FAST["adam_iters"]
    job = at.session_state["train__drawn"][0]
    snap = next(j for j in _jobs() if j.job_id == job).snapshot()
    assert list(snap.history["iteration"]) == list(range(1, 2 * FAST["adam_iters"] + 1))
    np.testing.assert_array_equal(snap.history["loss"][: FAST["adam_iters"]], history["loss"])
    assert not any("fresh Adam optimizer" in c.value for c in at.caption)
    # The sidebar follows the extended run, so no "discard?" question appears.
    assert at.number_input(key="train_adam_iters").value == 2 * FAST["adam_iters"]


def test_a_weights_only_checkpoint_continues_with_a_fresh_optimizer_on_the_page(gamma):
    at = AppTest.from_file(TRAIN, default_timeout=60).run()
    upload(at, "gamma.pt", checkpoint_bytes(gamma.model, gamma.config))
    shown(at)
    assert any("Continue trains on with a fresh optimizer" in n for n in at.session_state["train__checkpoint"].notes)
    _continued(at, 0)
    assert iteration(at) == gamma.config.adam_iters
    assert any("fresh Adam optimizer" in c.value for c in at.caption)


def _jobs() -> list:
    from cnfviz.runtime.job import _live

    return list(_live)


def test_the_download_carries_the_training_state_while_it_fits_the_panels_cap(monkeypatch):
    config = TrainConfig(target="normal", model={"hidden": (16, 16)}, batch_size=64, **FAST)
    job = TrainingJob(config, compute_final_metrics=False).start().join(120)
    data, with_state = download_bytes(job.model, config, training=job.training_state())
    assert with_state and load_checkpoint(data)[2]["training"]["trainer"]["adam_done"] == FAST["adam_iters"]
    bare = checkpoint_bytes(job.model, config)
    # A cap between the two sizes: the panel could not take the full file back, so the weights alone come.
    monkeypatch.setattr(panel_module, "MAX_CHECKPOINT_MB", (len(bare) + len(data)) / 2 / 1e6)
    small, with_state = download_bytes(job.model, config, training=job.training_state())
    assert not with_state and small == bare and "training" not in load_checkpoint(small)[2]
    assert download_bytes(job.model, config) == (bare, False)
