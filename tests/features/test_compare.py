"""Comparisons: runs built from a knob, a table, configs or a preset differ from the base in exactly what was
asked, bad input is rejected with messages that name the value and the rule, and the results table marks
the best runs and columns correctly."""

from __future__ import annotations

import json

import pytest

from cnfviz import FFJORD, PRESETS, TrainingJob, default_config
from cnfviz.features.compare import (
    BEST_MARK,
    COLUMNS,
    COMPARE_PRESETS,
    KNOBS,
    MAX_RUNS,
    CompareError,
    RunOutcome,
    config_summary,
    differences,
    parameter_count,
    results_table,
    runs_from_configs,
    runs_from_knob,
    runs_from_preset,
    runs_from_table,
    split_values,
    with_budget,
)
from cnfviz.training.config import ConfigError
from cnfviz.training.metrics import Metrics
from cnfviz.training.presets import SEED_CONFIG

BASE = default_config("normal")

# knob -> (values as typed, the value each run must have, the config fields the knob may change)
KNOB_CASES = {
    "width": ("16, 32, 64", [16, 32, 64], {"model.hidden"}),
    "depth": ("0, 1, 3", [0, 1, 3], {"model.hidden"}),
    "t1": ("0.5; 2", [0.5, 2.0], {"model.tspan"}),
    "solver": (["dopri5", "euler", "rk4"], ["dopri5", "euler", "rk4"], {"solver.method"}),
    "trace": (["exact", "hutchinson-gaussian"], ["exact", "hutchinson-gaussian"], {"model.trace"}),
    "lambda_kinetic": ("0 0.1", [0.0, 0.1], {"lambda_kinetic"}),
    "lambda_jacobian": ("0, 1e-2", [0.0, 0.01], {"lambda_jacobian"}),
    "lambdas": ("0.01, 0.1", [0.01, 0.1], {"lambda_kinetic", "lambda_jacobian"}),
    "lr": ("0.003, 0.01, 0.03", [0.003, 0.01, 0.03], {"lr"}),
    "seed": ("0, 1, 2, 3", [0, 1, 2, 3], {"seed"}),
    "objective": (
        ["likelihood", "flow-matching", "ot-flow-matching"],
        ["likelihood", "flow-matching", "ot-flow-matching"],
        {"objective"},
    ),
}


def flat(config) -> dict:
    out = {}
    for key, value in config.to_dict().items():
        if isinstance(value, dict) and key in ("model", "solver"):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


def outcome(label, nll=None, *, state="done", seconds=1.0, it=10, fwd=160, bwd=320, params=100, tv=0.1):
    metrics = None if nll is None else Metrics(tv / 2, tv, 0.0, 1.0, nll, "exact")
    return RunOutcome(label, state, "", it, seconds, fwd, bwd, params, metrics)


# --------------------------------------------------------------------------------------------------
# One knob
# --------------------------------------------------------------------------------------------------


def test_every_knob_is_covered():
    assert set(KNOB_CASES) == set(KNOBS)


@pytest.mark.parametrize("name", list(KNOB_CASES))
def test_knob_runs_differ_from_the_base_only_in_that_knob(name):
    text, expected, fields = KNOB_CASES[name]
    runs = runs_from_knob(BASE, name, text)
    knob = KNOBS[name]
    assert [knob.get(r.config) for r in runs] == expected
    base = flat(BASE)
    for run in runs:
        changed = {k for k, v in flat(run.config).items() if v != base[k]}
        assert changed <= fields, f"{run.label} also changed {changed - fields}"
    assert [r.label for r in runs] == [f"{knob.label} = {v:g}" if isinstance(v, float) else f"{knob.label} = {v}"
                                       for v in expected]  # fmt: skip


def test_width_and_depth_keep_the_other_dimension():
    base = default_config("moons")  # 64 x 3
    assert [r.config.model.hidden for r in runs_from_knob(base, "width", [8, 16])] == [(8, 8, 8), (16, 16, 16)]
    assert [r.config.model.hidden for r in runs_from_knob(base, "depth", "1, 2")] == [(64,), (64, 64)]


def test_a_fixed_grid_solver_on_an_adaptive_base_gets_a_step_size():
    runs = runs_from_knob(SEED_CONFIG, "solver", "dopri5, rk4")
    assert runs[0].config == SEED_CONFIG
    assert runs[1].config.solver.method == "rk4" and runs[1].config.solver.step_size == pytest.approx(10 / 8)


@pytest.mark.parametrize("values", ["32", "", "1, 2, 3, 4, 5, 6, 7"])
def test_fewer_than_two_or_more_than_six_values_are_rejected(values):
    with pytest.raises(CompareError, match=f"needs 2 to {MAX_RUNS} runs"):
        runs_from_knob(BASE, "width", values)


def test_bad_values_name_themselves_and_the_allowed_range_all_at_once():
    with pytest.raises(CompareError) as err:
        runs_from_knob(BASE, "width", "0, abc, 16, 5000")
    problems = err.value.problems
    assert len(problems) == 3
    assert problems[0].startswith("width = 0:") and "[1, 1024]" in problems[0]
    assert problems[1].startswith("width = abc:") and "integer" in problems[1]
    assert problems[2].startswith("width = 5000:") and "[1, 1024]" in problems[2]


@pytest.mark.parametrize(
    ("knob", "values", "expect"),
    [
        ("lr", "0.01, 0", ["lr = 0:", "(0, 10]"]),
        ("lr", "0.01, nope", ["lr = nope:", "(0, 10]"]),
        ("depth", "2, 9", ["depth = 9:", "[0, 8]"]),
        ("t1", "1, 0", ["t1 = 0:", "t0 != t1"]),
        ("lambdas", "0, -1", ["λ₁ = λ₂ = -1:", "lambda_kinetic"]),
        ("solver", ["rk4", "rk5"], ["solver = rk5:", "dopri5"]),
        ("seed", "1, -1", ["seed = -1:", "[0, 2147483647]"]),
    ],
)
def test_bad_values_reuse_the_config_validation(knob, values, expect):
    with pytest.raises(CompareError) as err:
        runs_from_knob(BASE, knob, values)
    assert all(part in str(err.value) for part in expect), str(err.value)
    assert isinstance(err.value, ConfigError)


def test_a_value_listed_twice_is_rejected():
    with pytest.raises(CompareError, match="width = 8 is listed twice"):
        runs_from_knob(BASE, "width", "8, 16, 8")


def test_unknown_knob_lists_the_knobs():
    with pytest.raises(ConfigError, match=r"Invalid knob \"colour\". Must be one of"):
        runs_from_knob(BASE, "colour", "1, 2")


def test_split_values_accepts_commas_semicolons_and_spaces():
    assert split_values(" 1,2 ;3  4,, ") == ["1", "2", "3", "4"]


# --------------------------------------------------------------------------------------------------
# A table of runs, explicit configs, presets
# --------------------------------------------------------------------------------------------------


def test_table_rows_keep_the_base_in_blank_cells_and_are_named_after_their_changes():
    rows = [
        {"label": "base", "width": None, "lr": float("nan")},
        {"label": "", "width": 8.0, "depth": 1, "trace": "hutchinson-rademacher"},
        {"lr": "0.05", "solver": " "},
    ]
    runs = runs_from_table(BASE, rows)
    assert runs[0].config == BASE and runs[0].label == "base"
    assert runs[1].config.model.hidden == (8,) and runs[1].config.model.trace == "hutchinson-rademacher"
    assert runs[1].label == "width = 8, depth = 1, trace = hutchinson-rademacher"
    assert runs[2].label == "lr = 0.05" and runs[2].config == BASE.replace(lr=0.05)


def test_bad_table_cells_name_the_row_and_the_knob():
    with pytest.raises(CompareError) as err:
        runs_from_table(BASE, [{"width": 0}, {"solver": "bogus"}, {"colour": "red"}])
    p = err.value.problems
    assert p[0].startswith("row 1, width = 0:") and "[1, 1024]" in p[0]
    assert p[1].startswith("row 2, solver = bogus:") and "rk4" in p[1]
    assert p[2].startswith("row 3: unknown column")


def test_table_rejects_equal_rows_equal_labels_and_wrong_counts():
    with pytest.raises(CompareError, match=r"row 2 .* is the same run as row 1"):
        runs_from_table(BASE, [{}, {"width": BASE.model.hidden[0]}])
    with pytest.raises(CompareError, match='label "a" names more than one run'):
        runs_from_table(BASE, [{"label": "a"}, {"label": "a", "lr": 0.5}])
    with pytest.raises(CompareError, match="needs 2 to 6 runs; got 1 row"):
        runs_from_table(BASE, [{}])


def test_configs_from_objects_dicts_and_train_page_json():
    other = BASE.replace(lr=0.03, model={"hidden": (8, 8)})
    third = BASE.replace(seed=4)
    runs = runs_from_configs([("", BASE), ("small", other.to_dict()), ("cnfviz-normal", third.to_json())])
    assert [r.label for r in runs] == ["run 1", "small", "cnfviz-normal"]
    assert [r.config for r in runs] == [BASE, other, third]


def test_bad_configs_name_the_run_and_the_field():
    bad = json.loads(BASE.to_json())
    bad["model"]["hidden"] = [0]
    with pytest.raises(CompareError) as err:
        runs_from_configs([("a", BASE), ("b", bad), ("c", "{not json"), ("d", {"colour": 1})])
    p = err.value.problems
    assert p[0].startswith("run 2 (b):") and "model.hidden[0]" in p[0]
    assert p[1].startswith("run 3 (c):") and "not valid JSON" in p[1]
    assert p[2].startswith("run 4 (d):") and "unknown field" in p[2]


def test_configs_must_share_one_buildable_target():
    with pytest.raises(CompareError, match='learns "moons" but run 1 learns "normal"'):
        runs_from_configs([("a", BASE), ("b", default_config("moons"))])
    gamma = default_config("scipy:gamma")  # the shape parameter a is required
    with pytest.raises(CompareError, match="the target cannot be built"):
        runs_from_configs([("a", gamma), ("b", gamma.replace(lr=0.1))])


def test_presets_load_their_comparison_lists():
    assert set(COMPARE_PRESETS) == {"hutchinson", "regularized", "two_ways"}
    for name in COMPARE_PRESETS:
        runs = runs_from_preset(name)
        assert [(r.label, r.config) for r in runs] == list(PRESETS[name].compare)
    hutch = runs_from_preset("hutchinson")
    assert differences(hutch[0].config, hutch[1].config) == ["trace = hutchinson-rademacher"]
    with pytest.raises(
        ConfigError, match=r"comparison preset \"seed\". Must be one of \['hutchinson', 'regularized', 'two_ways'\]"
    ):
        runs_from_preset("seed")


def test_a_budget_applies_to_every_run_and_is_validated():
    runs = with_budget(runs_from_preset("regularized"), max_seconds=7.0, adam_iters=30)
    assert {(r.config.max_seconds, r.config.adam_iters) for r in runs} == {(7.0, 30)}
    with pytest.raises(ConfigError, match="max_seconds"):
        with_budget(runs, max_seconds=0.0)


def test_config_summary_says_what_trains():
    text = config_summary(SEED_CONFIG)
    for part in ("normal", "net 3×1 tanh", "t ∈ [0, 10]", "dopri5", "LBFGS 30 it", "full batch"):
        assert part in text


# --------------------------------------------------------------------------------------------------
# Parameter counts and the results table
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("config", [SEED_CONFIG, default_config("moons"), BASE.replace(model={"hidden": ()})])
def test_parameter_count_is_the_built_models(config):
    dim = 1 if config.target == "normal" else 2
    assert parameter_count(config) == FFJORD(dim, config.model).num_parameters
    assert parameter_count(SEED_CONFIG) == 10


def test_results_table_marks_the_lowest_test_nll_and_each_columns_best():
    table = results_table(
        [
            outcome("a", 1.50, seconds=3.0, fwd=100, bwd=100, tv=0.30),
            outcome("b", 1.20, seconds=5.0, fwd=300, bwd=600, tv=0.10, params=900),
            outcome("c", 1.30, seconds=3.0, fwd=250, bwd=0, tv=0.20, params=50),
        ]
    )
    assert table.best_run == 1
    assert [r["best"] for r in table.rows] == ["", BEST_MARK, ""]
    assert table.best["test NLL"] == (1,)
    assert table.best["grid TV"] == (1,) and table.best["seed TV"] == (1,)
    assert table.best["wall time (s)"] == (0, 2), "ties share the mark"
    assert table.best["NFE / iteration"] == (0,)
    assert "NFE total" not in table.best, "more iterations in the same budget cost more NFE: not a score"
    assert "parameters" not in table.best, "a parameter count is not a score"
    assert list(table.rows[0]) == ["best", "run", "state", *COLUMNS]


def test_costs_within_their_tolerance_tie_and_a_column_of_ties_has_no_best():
    table = results_table(
        [
            outcome("a", 1.0, seconds=4.00, it=10, fwd=160),
            outcome("b", 1.1, seconds=4.05, it=10, fwd=161),
            outcome("c", 1.2, seconds=3.00, it=10, fwd=160),
        ]
    )
    assert table.best["wall time (s)"] == (2,)
    assert "NFE / iteration" not in table.best, "every run ties: no winner to show"
    assert results_table([outcome("a", 1.0), outcome("b", 1.0)]).best_run == 0, "one star, even on a tie"


def test_nfe_and_parameter_columns():
    row = results_table([outcome("a", 1.0, it=20, fwd=320, bwd=640, params=1234)]).rows[0]
    assert row["NFE forward"] == 320 and row["NFE total"] == 960 and row["NFE / iteration"] == 48.0
    assert row["parameters"] == 1234


def test_only_finished_runs_compete_and_missing_values_stay_empty():
    table = results_table(
        [
            outcome("failed", 0.5, state="failed"),
            outcome("stopped", 0.7, state="stopped"),
            outcome("done", 1.0),
            outcome("queued-then-cancelled", None, state="stopped", it=0, fwd=0, bwd=0),
        ]
    )
    assert table.best_run == 2
    last = table.rows[3]
    assert last["test NLL"] is None and last["NFE / iteration"] is None and last["wall time (s)"] is None
    assert results_table([outcome("x", None, state="stopped")]).best_run is None


def test_outcome_from_a_real_job():
    config = default_config("normal", model={"hidden": (4,)}, adam_iters=6, eval_every=0, n_test=100)
    job = TrainingJob(config).start().join(60)
    snap = job.snapshot()
    out = RunOutcome.from_snapshot("tiny", snap, job.model.num_parameters)
    assert out.state == "done" and out.iterations == 6 and out.metrics is not None
    assert out.parameters == parameter_count(config)
    assert out.nfe_forward == snap.nfe_forward > 0
    row = results_table([out]).rows[0]
    assert row["test NLL"] == pytest.approx(snap.metrics.test_nll) and row["best"] == BEST_MARK


def test_the_two_ways_preset_trains_one_network_by_each_objective():
    runs = runs_from_preset("two_ways")
    assert [r.config.objective for r in runs] == ["likelihood", "flow-matching", "ot-flow-matching"]
    assert len({(r.config.target, r.config.model, r.config.max_seconds, r.config.seed) for r in runs}) == 1
    assert differences(runs[0].config, runs[2].config) == ["objective = ot-flow-matching"]
    assert config_summary(runs[1].config).startswith("8gaussians · flow-matching · net 64×3")
    assert "flow-matching" not in config_summary(runs[0].config)


def test_the_objective_knob_builds_valid_runs_or_says_why_not():
    runs = runs_from_knob(default_config("moons"), "objective", ["likelihood", "flow-matching"])
    assert [r.label for r in runs] == ["objective = likelihood", "objective = flow-matching"]
    with pytest.raises(CompareError, match="lambda_kinetic"):
        runs_from_knob(default_config("moons", lambda_kinetic=0.1), "objective", ["likelihood", "flow-matching"])


def test_the_results_table_shows_the_sampling_cost():
    m = lambda nfe: Metrics(0.01, 0.02, 0.0, 1.0, 1.0, "exact", sample_nfe=nfe)  # noqa: E731
    runs = [RunOutcome(name, "done", "", 10, 1.0, 10, 0, 9, m(nfe)) for name, nfe in (("a", 80), ("b", 32))]
    table = results_table(runs)
    assert [r["sampling NFE"] for r in table.rows] == [80, 32]
    assert table.best["sampling NFE"] == (1,)
