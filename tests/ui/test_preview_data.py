"""The shipped previews: one per preset and built-in target, current with its config, a proper density."""

from __future__ import annotations

import numpy as np
import pytest

from cnfviz.training.presets import target_dim
from cnfviz.ui.preview_data import (
    PREVIEW_DIR,
    expected_config,
    find_preview,
    load_preview,
    preview_entries,
    save_preview,
)

ENTRIES = preview_entries()


def _mass(axes: tuple[np.ndarray, ...], density: np.ndarray) -> float:
    if len(axes) == 1:
        return float(np.trapezoid(density, axes[0]))
    xs, ys = axes
    return float(np.trapezoid(np.trapezoid(density, xs, axis=1), ys))


@pytest.mark.parametrize(("kind", "name"), ENTRIES, ids=[f"{k}-{n}" for k, n in ENTRIES])
def test_every_preset_and_target_ships_a_current_preview_whose_density_integrates_to_one(kind, name):
    preview = load_preview(kind, name)
    assert preview is not None, f"no preview for {kind} {name!r}: run `python assets/make_previews.py {name}`"
    assert preview.config == expected_config(kind, name), (
        f"the preview of {kind} {name!r} is stale (its config changed): run `python assets/make_previews.py {name}`"
    )
    assert preview.trained.adam_iters <= preview.config.adam_iters and preview.trained.max_seconds is None
    assert preview.iterations > 0
    d = preview.density
    assert np.isfinite(d.learned).all() and (d.learned >= 0).all()
    assert _mass(d.axes, d.learned) == pytest.approx(1.0, abs=0.1)
    if d.true is not None:
        assert _mass(d.axes, d.true) == pytest.approx(1.0, abs=0.05)
    times, paths = preview.trajectories.times, preview.trajectories.paths
    assert paths.shape[0] == len(times) and paths.shape[2] == target_dim(preview.config.target)


def test_the_previews_stay_small():
    total = sum(p.stat().st_size for p in PREVIEW_DIR.glob("*.npz"))
    assert 0 < total < 2_000_000
    assert {p.name for p in PREVIEW_DIR.glob("*.npz")} == {f"{k}-{n}.npz" for k, n in ENTRIES}, "no orphans"


def test_a_preset_finds_its_own_preview_and_a_changed_setting_falls_back_to_the_targets(tmp_path):
    moons = expected_config("preset", "moons")
    preview, exact = find_preview(moons)
    assert exact and preview.kind == "preset" and preview.name == "moons"
    preview, exact = find_preview(moons.replace(lr=0.0123))
    assert not exact and (preview.kind, preview.name) == ("target", "moons")
    assert find_preview(moons.replace(target_params={"noise": 0.3})) is None
    # A file round-trips through save and load.
    again = load_preview("target", "moons", save_preview(preview, tmp_path).parent)
    assert again.config == preview.config and again.iterations == preview.iterations
    np.testing.assert_array_equal(again.density.learned, preview.density.learned.astype(np.float32))
