"""Presets and per-target defaults are valid, and say what they promise."""

import pytest

from cnfviz import PRESETS, default_config
from cnfviz.targets import TARGETS
from cnfviz.training.presets import SEED_CONFIG, target_dim


def test_seed_preset_is_the_tutorial():
    cfg = PRESETS["seed"].config
    assert cfg is SEED_CONFIG
    assert cfg.target == "normal" and cfg.target_params == {"loc": 6.0, "scale": 0.7}
    assert cfg.model.hidden == (3,) and cfg.model.time == "none" and cfg.model.final_activation
    assert cfg.model.tspan == (0.0, 10.0) and cfg.model.activation == "tanh"
    assert (cfg.adam_iters, cfg.lr, cfg.n_train, cfg.batch_size) == (20, 0.01, 100, None)
    assert cfg.lbfgs_iters > 0


def test_every_preset_has_a_title_a_one_line_description_and_a_config():
    expected = {"seed", "moons", "checkerboard", "short_tspan", "stiff", "hutchinson", "regularized"}
    assert expected <= set(PRESETS)
    for name, preset in PRESETS.items():
        assert preset.title and preset.description and "\n" not in preset.description, name
        assert preset.config.adam_iters + preset.config.lbfgs_iters > 0


def test_comparison_presets_differ_in_their_knob_only():
    a, b = (cfg for _, cfg in PRESETS["hutchinson"].compare)
    assert a.replace(model={"trace": b.model.trace}) == b and a.model.trace == "exact"
    a, b = (cfg for _, cfg in PRESETS["regularized"].compare)
    assert a.lambda_kinetic == 0 and b.lambda_kinetic > 0
    assert a.replace(lambda_kinetic=b.lambda_kinetic, lambda_jacobian=b.lambda_jacobian) == b


def test_short_time_span_preset_only_shortens_the_span():
    assert PRESETS["short_tspan"].config == SEED_CONFIG.replace(model={"tspan": (0.0, 1.0)})


@pytest.mark.parametrize("target", [*TARGETS, "scipy:gamma"])
def test_defaults_exist_for_every_target_and_fit_its_dimension(target):
    cfg = default_config(target)
    assert cfg.target == target
    assert target_dim(target) == (1 if target.startswith("scipy:") else TARGETS[target].dim)
    assert cfg.n_train is None  # known targets train on fresh samples


def test_defaults_accept_overrides_and_validate_them():
    assert default_config("moons", lr=0.02).lr == 0.02
    with pytest.raises(Exception, match="lr must be in"):
        default_config("moons", lr=-1.0)


def test_defaults_use_large_batches_on_a_gpu(monkeypatch):
    import torch

    import cnfviz.training.presets as presets

    monkeypatch.setattr(presets, "resolve_device", lambda name="auto": torch.device("cpu" if name == "cpu" else "cuda"))
    assert default_config("moons").batch_size == presets.GPU_BATCH >= 4096
    assert default_config("moons", device="cpu").batch_size < 4096
    assert default_config("moons", batch_size=64).batch_size == 64
