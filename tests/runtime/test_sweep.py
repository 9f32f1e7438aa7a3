"""``cnfviz sweep``: the grid product of --vary flags, trained at once, each run as ``cnfviz train`` trains it."""

from __future__ import annotations

import json

import pytest

from cnfviz.cli import build_parser, main
from cnfviz.runtime.sweep import parse_vary

FAST = ["--target", "moons", "--hidden", "8", "--adam-iters", "5", "--batch", "32", "--n-test", "200"]
FAST += ["--eval-every", "0", "--quiet"]


def train_parser():
    return build_parser()._subparsers._group_actions[0].choices["train"]


def test_a_sweep_trains_the_grid_product_and_each_run_scores_as_cnfviz_train_does(tmp_path):
    out = tmp_path / "sweep.json"
    assert main(["sweep", *FAST, "--vary", "seed=0,1", "--vary", "lr=0.01,0.03", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert set(data) >= {"runs", "wall_seconds", "stacks"} and data["wall_seconds"] > 0
    labels = [r["label"] for r in data["runs"]]
    assert labels == ["seed=0 lr=0.01", "seed=0 lr=0.03", "seed=1 lr=0.01", "seed=1 lr=0.03"]
    for run in data["runs"]:
        assert {"label", "config", "iterations", "train_seconds", "test_nll", "status"} <= set(run)
        assert run["status"] == "done" and run["iterations"] == 5
    assert [(r["config"]["seed"], r["config"]["lr"]) for r in data["runs"]] == [
        (0, 0.01),
        (0, 0.03),
        (1, 0.01),
        (1, 0.03),
    ]
    assert len(data["stacks"]) == 1 and data["stacks"][0]["runs"] == labels, "one shape: one stack"
    alone = tmp_path / "alone.json"
    assert main(["train", *FAST, "--seed", "1", "--lr", "0.03", "--json", str(alone)]) == 0
    assert data["runs"][3]["test_nll"] == pytest.approx(json.loads(alone.read_text())["test_nll"], abs=1e-4)


def test_list_and_pair_values_and_switches_parse_into_train_options():
    axes = dict(parse_vary(train_parser(), ["hidden=8x8,16", "tspan=0:0.5,-1:1", "adjoint=true,false"]))
    assert axes["hidden"] == [["--hidden=8,8"], ["--hidden=16"]]
    assert axes["tspan"] == [["--tspan", "0", "0.5"], ["--tspan=-1", "1"]]
    assert axes["adjoint"] == [["--adjoint"], ["--no-adjoint"]]


def test_shapes_that_differ_form_their_own_stacks(tmp_path):
    out = tmp_path / "sweep.json"
    assert main(["sweep", *FAST, "--vary", "hidden=8,4x4", "--vary", "seed=0,1", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert [r["config"]["model"]["hidden"] for r in data["runs"]] == [[8], [8], [4, 4], [4, 4]]
    assert sorted(len(s["runs"]) for s in data["stacks"]) == [2, 2]


@pytest.mark.parametrize(
    ("vary", "message"),
    [
        ("foo=1,2", "'foo' is not a train option a sweep can vary"),
        ("lr", "--vary expects KEY=V1,V2"),
        ("lr=abc", "argument --lr: invalid float value: 'abc'"),
        ("lr=0.1,", "expected comma-separated values"),
        ("json=a,b", "'json' is not a train option a sweep can vary"),
        ("tspan=0,1", "expected T0:T1"),
        ("lr=-5,0.1", "lr must be"),
    ],
)
def test_a_bad_vary_is_one_line_and_exit_2(vary, message, capsys):
    with pytest.raises(SystemExit) as err:
        main(["sweep", *FAST, "--vary", vary])
    assert err.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cnfviz: error:") and message in lines[0], lines


def test_a_sweep_needs_a_vary_and_refuses_a_single_checkpoint(capsys):
    for argv, message in (
        (["sweep", *FAST], "at least one --vary"),
        (["sweep", *FAST, "--vary", "seed=0,1", "--save", "x.pt"], "--save"),
    ):
        with pytest.raises(SystemExit) as err:
            main(argv)
        assert err.value.code == 2 and message in capsys.readouterr().err


def test_a_local_sweep_says_it_trained_in_this_process(tmp_path):
    import os

    out = tmp_path / "sweep.json"
    assert main(["sweep", *FAST, "--vary", "seed=0,1", "--backend", "local", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["backend"] == "local" and data["pid"] == os.getpid()
    # Local runs train in threads of the CLI's own process.
    assert [r["worker_pid"] for r in data["runs"]] == [os.getpid()] * 2
    assert all("node_id" not in r for r in data["runs"])
