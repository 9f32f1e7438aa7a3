"""The precomputed lessons: built by the script, round-tripped, refused when stale, and current."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from cnfviz.features import learn as explain

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "assets" / "learn" / "make_learn_assets.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("make_learn_assets", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_asset_script_builds_and_round_trips_on_a_tiny_config(tmp_path):
    path = _load_script().main(["--tiny", "--quiet", "--out", str(tmp_path / "learn.npz")])
    assets = explain.load_learn_assets(path)
    assert [r.t1 for r in assets.time_span] == [1.0, 10.0]
    assert [r.name for r in assets.regularizers] == ["none", "kinetic"]
    run = assets.time_span_for(10.0)
    assert run.learned.shape == run.xs.shape and run.path_density.shape[1] == run.xs.shape[0]
    assert assets.regularizer_for("kinetic").lambda_kinetic == explain.REGULARIZER_SETTINGS["kinetic"][0]
    assert assets.sampling.backward.shape[0] == assets.sampling.times.shape[0]
    with pytest.raises(KeyError):
        assets.time_span_for(3.0)
    # Saving again gives the same content (float32 storage is idempotent).
    again = explain.load_learn_assets(explain.save_learn_assets(assets, tmp_path / "again.npz"))
    np.testing.assert_array_equal(again.sampling.forward, assets.sampling.forward)
    assert again.time_span[0].seed_tv == assets.time_span[0].seed_tv


def test_stale_assets_are_refused(tmp_path, tiny_runs):
    runs, models = tiny_runs
    model, trainer = models["none"]
    span = explain.TimeSpanRun(1.0, *(np.zeros(3),) * 3, np.zeros(2), np.zeros((2, 3)), 0.1, 1.0, 0.0)
    assets = explain.LearnAssets(
        (span,), (runs["none"],), explain.sampling_demo(model, trainer.test_data[:5], n_samples=5), {"version": 0}
    )
    path = explain.save_learn_assets(assets, tmp_path / "old.npz")
    with pytest.raises(ValueError, match="regenerate"):
        explain.load_learn_assets(path)


def test_page_assets_are_current():
    """The committed file must load; regenerate it with the script when this fails."""
    assets = explain.load_learn_assets(SCRIPT.parent / "learn_assets.npz")
    assert [r.t1 for r in assets.time_span] == list(explain.TIME_SPAN_ENDS)
    assert {r.name for r in assets.regularizers} == set(explain.REGULARIZER_SETTINGS)
    short, long = assets.time_span_for(1.0), assets.time_span_for(10.0)
    assert long.seed_tv < short.seed_tv  # the point of the section
    none = assets.regularizer_for("none")
    assert all(r.kinetic < none.kinetic for r in assets.regularizers if r.lambda_kinetic > 0)
