"""A run's budget: the memory estimate agrees with what autograd really keeps, and an oversized run is refused
by name before anything is allocated, wherever runs start (the library's job, the CLI)."""

from __future__ import annotations

import os

import pytest
import torch

from cnfviz import FFJORD, ConfigError, TrainConfig, TrainingJob, default_config
from cnfviz.cli import main
from cnfviz.runtime.budget import RunBudget, check_run, estimate_run, machine_memory_bytes, run_dim

MOONS = default_config("moons")
NORMAL = default_config("normal")


def saved_bytes(config: TrainConfig, dim: int, n: int) -> int:
    """The bytes autograd keeps for the backward pass of one training loss on n points: every tensor saved by
    any operation of the forward solve, counted once per storage."""
    torch.manual_seed(0)
    model = FFJORD(dim, config.model, config.solver)
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        logp, _, _ = model(torch.randn(n, dim), regularize=config.regularized)
    (-logp.mean()).backward()  # the graph was real: it backpropagates
    return sum(storages.values())


SHAPES = {
    "2d-default": (MOONS, 2),
    "2d-wide": (MOONS.replace(model={"hidden": (256, 256)}), 2),
    "2d-deep": (MOONS.replace(model={"hidden": (32,) * 8}), 2),
    "2d-hutchinson": (MOONS.replace(model={"trace": "hutchinson-rademacher"}), 2),
    "2d-regularized": (MOONS.replace(lambda_kinetic=0.1, lambda_jacobian=0.1), 2),
    "2d-euler-fine": (MOONS.replace(solver={"method": "euler", "step_size": 0.05}), 2),
    "2d-softplus": (MOONS.replace(model={"activation": "softplus"}), 2),
    "1d-default": (NORMAL, 1),
    "1d-midpoint": (NORMAL.replace(solver={"method": "midpoint", "step_size": 0.1}), 1),
}


@pytest.mark.parametrize(("config", "dim"), list(SHAPES.values()), ids=list(SHAPES))
def test_the_estimate_is_within_half_to_three_times_what_autograd_keeps(config, dim):
    n = 512
    measured = saved_bytes(config, dim, n)
    estimated = estimate_run(config.replace(batch_size=n), dim).bytes_per_sample * n
    assert 0.5 <= estimated / measured <= 3.0, (estimated, measured)


def test_the_estimate_grows_as_the_shape_says():
    base = estimate_run(MOONS, 2)
    assert estimate_run(MOONS.replace(batch_size=MOONS.batch_size * 10), 2).bytes_per_sample == base.bytes_per_sample
    wide = estimate_run(MOONS.replace(model={"hidden": (128, 128, 128)}), 2)
    assert wide.bytes_per_sample_evaluation == pytest.approx(2 * base.bytes_per_sample_evaluation, rel=0.05)
    fine = estimate_run(MOONS.replace(solver={"step_size": 0.0625}), 2)  # twice the rk4 steps
    assert fine.evaluations_per_solve == 2 * base.evaluations_per_solve == 32
    hutch = estimate_run(MOONS.replace(model={"trace": "hutchinson-gaussian"}), 2)
    assert hutch.bytes_per_sample_evaluation < 0.75 * base.bytes_per_sample_evaluation
    adjoint = estimate_run(MOONS.replace(solver={"adjoint": True}), 2)
    assert adjoint.stored_evaluations == 3 and adjoint.bytes_per_sample < base.bytes_per_sample / 5
    assert adjoint.step_seconds > base.step_seconds  # the adjoint solves again, backwards


def test_adaptive_solvers_assume_typical_steps_capped_by_the_nfe_cap():
    dopri = MOONS.replace(solver={"method": "dopri5"})
    assert estimate_run(dopri, 2).evaluations_per_solve == 48
    assert estimate_run(dopri.replace(solver={"max_nfe": 20}), 2).evaluations_per_solve == 20


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_batch_one_million_is_refused_by_name_without_allocating():
    config = default_config("moons", batch_size=1_000_000)
    before = _rss()
    with pytest.raises(ConfigError) as err:
        TrainingJob(config)
    grown = _rss() - before
    assert grown < 30e6, f"the refusal allocated {grown / 1e6:.0f} MB"
    assert err.value.field == "batch_size"
    text = str(err.value)
    assert "batch_size 1,000,000" in text and "CNFVIZ_MAX_RUN_MB" in text and "2.0 GB" in text
    assert "Use batch_size ≤ 18," in text  # the largest batch that fits, said as a number


def test_full_batch_training_is_budgeted_on_n_train():
    with pytest.raises(ConfigError) as err:
        check_run(MOONS.replace(batch_size=None, n_train=2_000_000), 2, RunBudget.for_server())
    assert err.value.field == "n_train"


def test_a_network_too_large_even_for_one_sample_names_the_network():
    huge = MOONS.replace(model={"hidden": (1024,) * 8}, solver={"method": "euler", "step_size": 0.0001})
    with pytest.raises(ConfigError) as err:
        check_run(huge.replace(batch_size=1), 2, RunBudget(max_bytes=10**9))
    assert err.value.field == "model.hidden" and "even for one sample" in str(err.value)


def test_the_time_per_iteration_is_budgeted_too():
    slow = MOONS.replace(model={"hidden": (1024,) * 8}, solver={"adjoint": True}, batch_size=20_000)
    with pytest.raises(ConfigError) as err:
        check_run(slow, 2, RunBudget(max_bytes=None, max_step_seconds=20.0))
    assert err.value.field == "batch_size" and "CNFVIZ_MAX_STEP_SECONDS" in str(err.value)


def test_the_defaults_and_presets_fit_a_server():
    from cnfviz import PRESETS

    for name, preset in PRESETS.items():
        for config in (preset.config, *(c for _, c in preset.compare)):
            est = check_run(config, run_dim(config) or 2, RunBudget.for_server())
            assert est.peak_bytes < 100e6, name


def test_the_limits_come_from_the_environment_and_never_exceed_the_machine(monkeypatch):
    monkeypatch.setenv("CNFVIZ_MAX_RUN_MB", "10")
    assert RunBudget.for_server().max_bytes == 10_000_000
    with pytest.raises(ConfigError, match=r"limit for one run on this server is 10\.0 MB"):
        check_run(MOONS.replace(batch_size=1000), 2)
    monkeypatch.setenv("CNFVIZ_MAX_RUN_MB", "1e12")
    assert RunBudget.for_server().max_bytes == machine_memory_bytes()
    assert RunBudget.for_cli().max_bytes == machine_memory_bytes()
    monkeypatch.setenv("CNFVIZ_MAX_RUN_MB", "inf")
    with pytest.raises(ConfigError) as err:
        RunBudget.for_server()
    assert err.value.field == "CNFVIZ_MAX_RUN_MB"
    monkeypatch.delenv("CNFVIZ_MAX_RUN_MB")
    cli = RunBudget.for_cli()
    assert cli.max_bytes == int(0.8 * machine_memory_bytes()) and cli.max_step_seconds is None


def test_the_cli_refuses_more_than_the_machine_has(capsys):
    before = _rss()
    with pytest.raises(SystemExit) as exc:
        main(["train", "--target", "moons", "--batch", "1000000", "--hidden", "1024,1024,1024", "--quiet"])
    assert exc.value.code == 2 and _rss() - before < 30e6
    err = capsys.readouterr().err
    assert err.startswith("cnfviz: error: this run would need about") and "on this machine" in err
    assert err.count("\n") == 1


def test_a_loaded_checkpoint_is_budgeted_for_evaluation_not_for_its_training_batch():
    config = NORMAL.replace(batch_size=1_000_000, model={"hidden": (4,)}, n_test=100, eval_every=0)
    with pytest.raises(ConfigError):
        TrainingJob(config)
    state = FFJORD(1, config.model).state_dict()
    job = TrainingJob(config, init_state=state, evaluate_only=True)
    assert job.start().join(60).snapshot().state == "done"
