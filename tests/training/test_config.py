"""Configs are validated when built, name the bad field and the allowed values, and round-trip through JSON."""

import pytest

from cnfviz import ConfigError, ModelConfig, SolverConfig, TrainConfig


def test_defaults_are_valid_and_round_trip_through_json():
    cfg = TrainConfig(target="moons", model=ModelConfig(hidden=(32, 16)), solver=SolverConfig("rk4", step_size=0.1))
    again = TrainConfig.from_json(cfg.to_json())
    assert again == cfg
    assert again.model.hidden == (32, 16) and again.solver.step_size == 0.1


def test_replace_validates_and_accepts_nested_dicts():
    cfg = TrainConfig()
    new = cfg.replace(lr=0.1, model={"hidden": (8,)}, solver={"method": "euler"})
    assert new.lr == 0.1 and new.model.hidden == (8,) and new.solver.method == "euler"
    assert cfg.lr != 0.1  # frozen: the original is untouched
    with pytest.raises(ConfigError, match=r"lr must be in \(0, 10\]"):
        cfg.replace(lr=-1)


def test_configs_are_frozen():
    cfg = TrainConfig()
    with pytest.raises(AttributeError):
        cfg.lr = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"adam_iters": -1}, r"adam_iters must be an integer in \[0, 1000000\]"),
        ({"adam_iters": 0, "lbfgs_iters": 0}, r"adam_iters \+ lbfgs_iters must be at least 1"),
        ({"batch_size": 0}, r"batch_size must be an integer in \[1, "),
        ({"n_train": 1}, r"n_train must be an integer in \[2, "),
        ({"lr": float("nan")}, r"lr must be a finite number"),
        ({"lambda_kinetic": -0.5}, r"lambda_kinetic must be in \[0, 10000"),
        ({"device": "tpu"}, r"device: invalid value \"tpu\". Must be one of \['auto', 'cpu', 'cuda', 'mps'\]"),
        ({"seed": 1.5}, r"seed must be an integer"),
        ({"max_seconds": 0}, r"max_seconds must be in \(0, inf\)"),
        ({"target": ""}, r"target must be a target name"),
    ],
)
def test_bad_training_values_name_the_field_and_range(changes, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**changes)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tspan": (1.0, 1.0)}, r"model.tspan must have t0 != t1"),
        ({"tspan": (0.0,)}, r"model.tspan must be a pair"),
        ({"hidden": (64, -3)}, r"model.hidden\[1\] must be an integer in \[1, 1024\]"),
        ({"hidden": 64}, r"model.hidden must be a list of layer widths"),
        ({"activation": "relu"}, r"Invalid activation \"relu\". Must be one of"),
        (
            {"time": "maybe"},
            r"model.time: invalid value \"maybe\". Must be one of \['none', 'concat', 'concatsquash'\]",
        ),
        ({"trace": "approx"}, r"Invalid trace estimator \"approx\". Must be one of \['exact', 'exact-autograd', "),
    ],
)
def test_bad_model_values_name_the_field_and_choices(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ModelConfig(**kwargs)


def test_unknown_json_fields_are_listed():
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \['learning_rate'\]. Valid fields: \['target'"):
        TrainConfig.from_dict({"learning_rate": 0.1})
    with pytest.raises(ConfigError, match="not valid JSON"):
        TrainConfig.from_json("{nope")
    with pytest.raises(ConfigError, match=r"model: unknown field\(s\) \['width'\]"):
        TrainConfig.from_dict({"model": {"width": 3}})


def test_one_list_of_devices_checks_the_config_the_field_table_and_the_device_choice():
    import pytest as _pytest

    from cnfviz import ConfigError as _ConfigError
    from cnfviz.training import config as config_module
    from cnfviz.training import device, fields

    assert fields.DEVICES is device.DEVICES is config_module.DEVICES
    assert fields.field_at("device").choices == device.DEVICES
    for name in device.DEVICES:
        assert device.resolve_device(name).type in ("cpu", "cuda", "mps")
    with _pytest.raises(_ConfigError) as err:
        device.resolve_device("tpu")
    assert err.value.field == "device" and list(err.value.allowed) == list(device.DEVICES)
