"""Code export: the snippet runs and reproduces the run's numbers."""

import re
import subprocess
import sys

import pytest

from cnfviz import ModelConfig, SolverConfig, TrainConfig, Trainer
from cnfviz.features.export import config_to_code
from cnfviz.training.presets import SEED_CONFIG

SMALL = TrainConfig(
    target="normal",
    target_params={"loc": 2.0, "scale": 0.5},
    model=ModelConfig(hidden=(8,), tspan=(0.0, 1.0)),
    solver=SolverConfig("rk4", step_size=0.25),
    adam_iters=15,
    lr=0.02,
    lbfgs_iters=4,
    batch_size=None,
    n_train=64,
    n_test=300,
    eval_every=0,
)


def test_exported_snippet_reproduces_the_run():
    code = config_to_code(SMALL, n_samples=7)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    printed = dict(re.findall(r"(\w+)=([-\d.e]+)", proc.stdout))
    assert "torch.Size([7, 1])" in proc.stdout
    expected = Trainer(SMALL).run().metrics
    for name in ("seed_tv", "tv", "test_nll", "integral"):
        assert float(printed[name]) == pytest.approx(getattr(expected, name), rel=1e-3, abs=1e-6), name


@pytest.mark.parametrize(
    "config",
    [
        SEED_CONFIG,
        TrainConfig(),
        TrainConfig(target="moons", lambda_kinetic=0.1),
        TrainConfig(target="moons", objective="ot-flow-matching"),
    ],
)
def test_snippet_rebuilds_the_same_config(config):
    namespace: dict = {}
    code = config_to_code(config)
    head = code.split("trainer = Trainer")[0]  # build the config, don't train
    exec(head, namespace)
    assert namespace["config"] == config


def test_custom_targets_read_their_data_from_a_file():
    code = config_to_code(TrainConfig(target="samples"))
    assert 'samples_from_csv("data.csv")' in code and "SamplesTarget" in code
    assert 'image_from_file("image.png")' in config_to_code(TrainConfig(target="image"))


def test_a_flow_matching_snippet_names_its_objective():
    code = config_to_code(TrainConfig(target="moons", objective="flow-matching"))
    assert "objective='flow-matching'" in code
    assert "objective" not in config_to_code(TrainConfig(target="moons"))


def test_the_snippet_caps_torchs_threads_as_the_app_does_before_training():
    code = config_to_code(TrainConfig(target="moons"))
    assert "from cnfviz.runtime.housekeeping import configure_threads" in code
    assert code.index("configure_threads()") < code.index("trainer.run()"), "capped before it trains"
    assert code.index("trainer = Trainer") < code.index("configure_threads()"), "not while the config is built"
