"""The command line: train writes JSON and checkpoints, sample writes CSV, bad input is one clean line."""

import json
import subprocess
import sys

import numpy as np
import pytest

from cnfviz.cli import build_parser, config_from_args, main
from cnfviz.training.presets import SEED_CONFIG

FAST = [
    "--hidden",
    "8",
    "--solver",
    "rk4",
    "--step-size",
    "0.25",
    "--adam-iters",
    "4",
    "--eval-every",
    "0",
    "--n-test",
    "200",
    "--quiet",
]


def test_train_writes_json_with_the_promised_fields(tmp_path):
    out = tmp_path / "run.json"
    assert main(["train", "--target", "moons", *FAST, "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    for key in ("seed_tv", "tv", "test_nll", "train_seconds", "iterations", "nfe_forward", "config"):
        assert key in data, key
    assert data["iterations"] == 4 and data["config"]["target"] == "moons"
    assert data["config"]["model"]["hidden"] == [8]


def test_save_then_sample_to_csv(tmp_path):
    ckpt, csv = tmp_path / "flow.pt", tmp_path / "samples.csv"
    assert main(["train", "--target", "normal", *FAST, "--save", str(ckpt)]) == 0
    assert main(["sample", "--checkpoint", str(ckpt), "-n", "25", "--out", str(csv)]) == 0
    x = np.loadtxt(csv, delimiter=",", skiprows=1)
    assert x.shape == (25,) and np.isfinite(x).all()


def test_seed_preset_is_the_tutorial():
    args = build_parser().parse_args(["train", "--preset", "seed"])
    assert config_from_args(args) == SEED_CONFIG


def test_flags_fold_into_the_config():
    args = build_parser().parse_args(
        [
            "train",
            "--target",
            "scipy:gamma",
            "--param",
            "a=2",
            "--tspan",
            "0",
            "3",
            "--lr",
            "0.02",
            "--batch",
            "0",
            "--n-train",
            "100",
            "--trace",
            "hutchinson-gaussian",
            "--activation",
            "elu",
            "--time",
            "concat",
            "--adjoint",
        ]
    )
    cfg = config_from_args(args)
    assert cfg.target == "scipy:gamma" and cfg.target_params == {"a": "2"}
    assert cfg.model.tspan == (0.0, 3.0) and cfg.model.trace == "hutchinson-gaussian"
    assert cfg.model.activation == "elu" and cfg.model.time == "concat" and cfg.solver.adjoint
    assert cfg.lr == 0.02 and cfg.batch_size is None and cfg.n_train == 100


def test_training_on_a_csv(tmp_path):
    data = tmp_path / "data.csv"
    rng = np.random.default_rng(0)
    np.savetxt(data, rng.normal(size=(300, 2)), delimiter=",", header="x,y", comments="")
    out = tmp_path / "run.json"
    assert main(["train", "--data", str(data), *FAST, "--json", str(out)]) == 0
    assert json.loads(out.read_text())["density_kind"] == "estimate"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--target", "nope"], 'Invalid target "nope"'),
        (["train", "--target", "normal", "--param", "scale=-1"], "scale"),
        (["train", "--tspan", "1", "1"], "t0 != t1"),
        (["train", "--lr", "-3"], "lr must be in"),
        (["sample", "--checkpoint", "/nonexistent.pt"], "checkpoint not found"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("cnfviz: error: ") and message in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_the_module_entry_point_never_prints_a_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "cnfviz", "train", "--solver", "tsit5"], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "invalid choice: 'tsit5'" in proc.stderr


def test_objective_flag_trains_by_flow_matching(tmp_path):
    args = build_parser().parse_args(["train", "--target", "moons", "--objective", "ot-flow-matching"])
    assert config_from_args(args).objective == "ot-flow-matching"
    assert config_from_args(build_parser().parse_args(["train", "--target", "moons"])).objective == "likelihood"
    out = tmp_path / "fm.json"
    assert main(["train", "--target", "moons", "--objective", "flow-matching", *FAST, "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["config"]["objective"] == "flow-matching" and data["iterations"] == 4
    assert data["nfe_forward"] == 4 and data["nfe_backward"] == 0, "one field evaluation per iteration, no solve"
    assert data["sample_nfe"] > 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--objective", "mle"], "invalid choice: 'mle'"),
        (["train", "--preset", "seed", "--objective", "flow-matching"], 'model.time "none" cannot be trained'),
        (["train", "--objective", "flow-matching", "--lbfgs-iters", "5"], "lbfgs_iters must be 0 with objective"),
        (["train", "--objective", "flow-matching", "--lambda-kinetic", "0.1"], "lambda_kinetic (λ₁) must be 0"),
    ],
)
def test_bad_objective_combinations_are_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("cnfviz: error: ") and message in err and err.count("\n") == 1
