"""Shared for the Learn lessons' tests: two tiny 2D flows, trained once for the whole session."""

import pytest
import torch

from cnfviz import ModelConfig, SolverConfig
from cnfviz.features import learn as explain


@pytest.fixture(scope="session")
def tiny_runs():
    """Two tiny 2D flows, unregularized and with a heavy kinetic weight, measured on the same data."""
    # A toy version of the page's 2D regularizer run: seconds, not minutes.
    tiny_2d = explain.REGULARIZER_CONFIG.replace(
        model=ModelConfig(hidden=(16,), tspan=(0.0, 1.0)),
        solver=SolverConfig("rk4", step_size=0.25),
        adam_iters=30,
        batch_size=128,
        n_test=200,
    )
    torch.set_num_threads(1)
    runs, models = {}, {}
    for name, lk in (("none", 0.0), ("kinetic", 1.0)):
        model, trainer = explain.fit(tiny_2d.replace(lambda_kinetic=lk))
        runs[name] = explain.regularizer_run(name, model, (lk, 0.0), trainer.test_data, n_paths=30, n_times=21)
        models[name] = (model, trainer)
    return runs, models
