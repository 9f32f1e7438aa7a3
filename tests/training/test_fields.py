"""The field table: every TrainConfig setting has one entry, and every entry survives every channel.

A new dataclass field without a table entry fails here, as does an entry that the CLI, links, the sidebar,
the exported code or Compare lose on the way.
"""

from __future__ import annotations

import dataclasses

import pytest
from streamlit.testing.v1 import AppTest

from cnfviz import ConfigError, TrainConfig, default_config
from cnfviz.cli import build_parser, config_from_args, main
from cnfviz.features.compare import KNOBS
from cnfviz.features.export import config_to_code
from cnfviz.features.links import config_to_query, parse_query
from cnfviz.training.fields import FIELDS, PLAIN_KINDS, Field, config_fields, field_at
from cnfviz.ui.sidebar import ADVANCED, config_to_state
from tests.apptest import fresh_caches  # noqa: F401 - an autouse fixture

BASE = default_config("normal")  # rk4 with a step, linear and lr_decay on: every kind of value is in play
# The sidebar shows a target's parameters, so what it reads back names them all.
SIDEBAR_BASE = BASE.replace(target_params={"loc": 6.0, "scale": 0.7})

# For every field: values that differ from BASE and are valid there (an optional field gets its none too).
VALUES: dict[str, list] = {
    "target": ["moons"],
    "target_params": [{"loc": 2.0}],
    "model.hidden": [(16, 16), (8,), ()],
    "model.activation": ["softplus"],
    "model.time": ["concat"],
    "model.final_activation": [True],
    "model.linear": [False],
    "model.tspan": [(0.0, 2.0), (-1.0, 0.5)],
    "model.trace": ["hutchinson-gaussian"],
    "solver.method": ["midpoint", "dopri5"],
    "solver.rtol": [1e-4],
    "solver.atol": [3e-6],
    "solver.step_size": [0.5],
    "solver.adjoint": [True],
    "solver.max_steps": [500],
    "solver.max_nfe": [800, None],
    "adam_iters": [123],
    "lr": [0.02],
    "lr_decay": [False],
    "lr_min_factor": [0.2],
    "lbfgs_iters": [5],
    "batch_size": [64, None],
    "n_train": [500],
    "n_test": [500],
    "lambda_kinetic": [0.1],
    "lambda_jacobian": [0.01],
    "seed": [7],
    "device": ["cpu"],
    "max_seconds": [30.0],
    "eval_every": [10],
    "grad_clip": [1.5],
    "objective": ["flow-matching"],
}

PLAIN = [f for f in config_fields(kinds=PLAIN_KINDS)]
CASES = [pytest.param(f, v, id=f"{f.path}={v!r}") for f in PLAIN for v in VALUES[f.path]]


def with_value(f: Field, value: object, base: TrainConfig = BASE) -> TrainConfig:
    return base.replace(**f.change(value))


def dataclass_paths(cls: type, prefix: str = "") -> list[str]:
    """Every leaf field of a (nested) config dataclass, as a dotted path."""
    out = []
    for field in dataclasses.fields(cls):
        kind = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
        if dataclasses.is_dataclass(kind):
            out += dataclass_paths(type(kind), f"{prefix}{field.name}.")
        else:
            out.append(prefix + field.name)
    return out


# --------------------------------------------------------------------------------------------------
# The table itself
# --------------------------------------------------------------------------------------------------


def test_every_dataclass_field_has_one_entry_and_every_entry_a_field():
    assert sorted(dataclass_paths(TrainConfig)) == sorted(FIELDS)
    assert set(VALUES) == set(FIELDS), "give every field test values"


def test_defaults_come_from_the_dataclass():
    cfg = TrainConfig()
    for f in FIELDS.values():
        assert f.default == f.get(cfg)


def test_flags_and_link_keys_are_unique_and_keep_todays_names():
    assert len({f.flag for f in FIELDS.values()}) == len(FIELDS)
    assert len({f.key for f in FIELDS.values()}) == len(FIELDS)
    # Links written before the table must keep opening.
    today = {
        "model.hidden": "hidden", "model.activation": "act", "model.time": "time", "model.linear": "linear",
        "model.final_activation": "final", "model.tspan": "tspan", "model.trace": "trace", "solver.method": "solver",
        "solver.rtol": "rtol", "solver.atol": "atol", "solver.step_size": "step", "solver.adjoint": "adjoint",
        "adam_iters": "adam", "lr": "lr", "lr_decay": "decay", "lbfgs_iters": "lbfgs", "batch_size": "batch",
        "n_train": "ntrain", "lambda_kinetic": "lk", "lambda_jacobian": "lj", "seed": "seed", "max_seconds": "budget",
        "solver.max_steps": "maxsteps", "lr_min_factor": "lrmin", "eval_every": "eval", "n_test": "ntest",
        "grad_clip": "clip", "device": "device", "objective": "objective",
    }  # fmt: skip
    assert {path: FIELDS[path].key for path in today} == today
    flags = {"batch_size": "--batch", "adam_iters": "--adam-iters", "solver.step_size": "--step-size"}
    assert {path: FIELDS[path].flag for path in flags} == flags


def test_an_unknown_path_lists_the_settings():
    with pytest.raises(ConfigError) as err:
        field_at("model.width")
    assert err.value.field == "model.width" and "model.hidden" in err.value.allowed


def _outside(f: Field) -> list[object]:
    """Values just outside the bounds the table declares for ``f``."""
    out: list[object] = []
    step = 1 if f.kind == "int" else 1e-9 * max(1.0, abs(f.lo or 0), abs(f.hi or 0))
    if f.lo is not None:
        out.append(f.lo if f.lo_open else f.lo - step)
    if f.hi is not None:
        out.append(f.hi + step)
    return out


@pytest.mark.parametrize("f", [f for f in PLAIN if f.numeric], ids=lambda f: f.path)
def test_the_config_refuses_values_outside_the_tables_bounds_naming_the_field(f):
    for value in _outside(f):
        with pytest.raises(ConfigError) as err:
            with_value(f, value)
        assert err.value.field == f.path and err.value.allowed, value
    for edge in (f.lo, f.hi):  # a closed bound itself is allowed
        if edge is not None and not (edge == f.lo and f.lo_open):
            base = BASE.replace(batch_size=None, lbfgs_iters=1)  # room for n_train = 2 and adam_iters = 0
            cfg = with_value(f, int(edge) if f.kind == "int" else float(edge), base)
            assert f.get(cfg) == edge


def test_widths_and_span_refuse_values_outside_their_bounds():
    for hidden, field in (((0, 4), "model.hidden[0]"), ((4, 1025), "model.hidden[1]")):
        with pytest.raises(ConfigError) as err:
            with_value(FIELDS["model.hidden"], hidden)
        assert err.value.field == field
    for span, field in (((0.0, 1001.0), "model.tspan[1]"), ((1.0, 1.0), "model.tspan")):
        with pytest.raises(ConfigError) as err:
            with_value(FIELDS["model.tspan"], span)
        assert err.value.field == field


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def cli_tokens(f: Field, value: object) -> list[str]:
    if f.kind == "bool":
        return [f.flag if value else f"--no-{f.flag[2:]}"]
    if f.kind == "span":
        return [f.flag, repr(value[0]), repr(value[1])]
    if value is None:
        return [f.flag, f.none]
    return [f"{f.flag}={f.format(value)}"]


def cli(*tokens: str) -> TrainConfig:
    return config_from_args(build_parser().parse_args(["train", "--target", "normal", *tokens]))


@pytest.mark.parametrize(("f", "value"), CASES)
def test_every_field_survives_the_command_line(f, value):
    cfg = cli(*cli_tokens(f, value))
    assert f.get(cfg) == value
    assert cfg == with_value(f, value)


def test_target_and_params_on_the_command_line():
    assert cli("--target", "moons") == default_config("moons")
    assert cli("--param", "loc=2").target_params == {"loc": "2"}


@pytest.mark.parametrize("f", [f for f in PLAIN if f.kind == "bool"], ids=lambda f: f.path)
def test_booleans_switch_both_ways_on_the_command_line(f):
    assert f.get(cli(f.flag)) is True
    assert f.get(cli(f"--no-{f.flag[2:]}")) is False


def test_the_fast_defaults_linear_and_lr_decay_can_be_switched_off():
    assert BASE.model.linear and BASE.lr_decay
    cfg = cli("--no-linear", "--no-lr-decay")
    assert not cfg.model.linear and not cfg.lr_decay


def test_an_optional_value_takes_its_none_word_and_zero_where_it_always_did():
    assert cli("--batch", "full").batch_size is None and cli("--batch", "0").batch_size is None
    assert cli("--n-train", "0").n_train is None and cli("--n-train", "fresh").n_train is None
    assert cli("--max-nfe", "none").solver.max_nfe is None and cli("--grad-clip", "none").grad_clip is None


@pytest.mark.parametrize("f", [f for f in PLAIN if f.numeric], ids=lambda f: f.path)
def test_a_bad_number_on_the_command_line_names_the_field(f, capsys):
    value = next(v for v in _outside(f) if not (f.zero_none and v == 0))  # --batch 0 means full batch
    with pytest.raises(ConfigError) as err:
        cli(f"{f.flag}={value!r}")
    assert err.value.field == f.path
    with pytest.raises(SystemExit) as exc:
        main(["train", "--target", "normal", f"{f.flag}={value!r}"])
    assert exc.value.code == 2
    message = capsys.readouterr().err
    assert message.startswith("cnfviz: error: ") and f.name in message and message.count("\n") == 1


@pytest.mark.parametrize("f", [f for f in PLAIN if f.kind == "choice"], ids=lambda f: f.path)
def test_a_bad_choice_on_the_command_line_lists_the_choices(f, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", f.flag, "nope"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and f.flag in err and "invalid choice: 'nope'" in err and f.choices[0] in err


# --------------------------------------------------------------------------------------------------
# Links
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("f", "value"), CASES)
def test_every_field_survives_a_link(f, value):
    cfg = with_value(f, value)
    query = config_to_query(cfg)
    assert query[f.key] == f.format(value)
    state = parse_query(query)
    assert state.notices == ()
    assert state.config == cfg


def test_target_and_params_survive_a_link():
    for cfg in (default_config("moons"), BASE.replace(target_params={"loc": 2.0})):
        state = parse_query(config_to_query(cfg))
        assert state.notices == () and state.config == cfg


def _bad_link_text(f: Field) -> str:
    if f.numeric:
        return f.format(_outside(f)[0])
    return {"bool": "maybe", "choice": "nope", "widths": "0,4", "span": "1,1"}[f.kind]


@pytest.mark.parametrize("f", PLAIN, ids=lambda f: f.path)
def test_a_bad_value_in_a_link_is_a_notice_naming_it(f):
    text = _bad_link_text(f)
    state = parse_query({"target": "normal", f.key: text})
    assert state.config == BASE, "the default is kept"
    assert len(state.notices) == 1 and f'Ignored "{f.key}={text}" in the link' in state.notices[0]


def test_words_that_are_no_number_are_notices_too():
    state = parse_query({"target": "normal", "adam": "lots", "batch": "half", "tspan": "0,x"})
    assert state.config == BASE and len(state.notices) == 3
    assert any("expected a whole number such as 256, or full" in n for n in state.notices)


# --------------------------------------------------------------------------------------------------
# Sidebar
# --------------------------------------------------------------------------------------------------


def _controls_app(config_json: str) -> None:
    import streamlit as st

    from cnfviz import TrainConfig
    from cnfviz.ui import apply_config_to_state, config_controls

    if "applied" not in st.session_state:
        apply_config_to_state("demo", TrainConfig.from_json(config_json))
        st.session_state.applied = True
    st.session_state.result = config_controls("demo")
    st.session_state.config = st.session_state.result.config


def _widget_value(f: Field, value: object) -> object:
    if f.kind == "bool":
        return bool(value)
    if f.numeric:
        return 0 if value is None else value
    return value


@pytest.mark.parametrize(
    "cfg", [default_config("moons"), SIDEBAR_BASE.replace(target_params={"loc": 2.0, "scale": 0.7})]
)
def test_target_and_params_survive_the_sidebar(cfg):
    at = AppTest.from_function(_controls_app, args=(cfg.to_json(),), default_timeout=60).run()
    assert not at.exception, at.exception
    assert at.session_state["config"] == cfg


@pytest.mark.parametrize(("f", "value"), CASES)
def test_every_field_survives_the_sidebar(f, value):
    cfg = with_value(f, value, SIDEBAR_BASE)
    if f.widget is not None:
        shown = config_to_state("demo", cfg)[f"demo_{f.widget}"]
        assert shown == _widget_value(f, value) and type(shown) is type(_widget_value(f, value))
    at = AppTest.from_function(_controls_app, args=(cfg.to_json(),), default_timeout=60).run()
    assert not at.exception, at.exception
    assert at.session_state["config"] == cfg


@pytest.mark.parametrize("f", [f for f in PLAIN if f.widget], ids=lambda f: f.path)
def test_every_widget_sets_its_field(f):
    # The tolerances are drawn for adaptive solvers only, the step size for fixed-grid ones.
    base = (
        SIDEBAR_BASE.replace(solver={"method": "dopri5"}) if f.path in ("solver.rtol", "solver.atol") else SIDEBAR_BASE
    )
    value = VALUES[f.path][0]
    at = AppTest.from_function(_controls_app, args=(base.to_json(),), default_timeout=60).run()
    key = f"demo_{f.widget}"
    if f.kind == "bool":
        widget = at.checkbox(key=key)
        (widget.check() if value else widget.uncheck()).run()
    elif f.kind == "choice":
        at.selectbox(key=key).select(value).run()
    else:
        at.number_input(key=key).set_value(_widget_value(f, value)).run()
    assert not at.exception, at.exception
    assert at.session_state["config"] == with_value(f, value, base)


def test_the_advanced_expander_sets_its_settings():
    at = AppTest.from_function(_controls_app, args=(SIDEBAR_BASE.to_json(),), default_timeout=60).run()
    drawn = {w.key for w in (*at.number_input, *at.checkbox)}
    assert {f"demo_{f.widget}" for f in ADVANCED} <= drawn
    at.number_input(key="demo_grad_clip").set_value(2.5)
    at.number_input(key="demo_n_train").set_value(400)
    at.checkbox(key="demo_lr_decay").uncheck()
    at.number_input(key="demo_max_nfe").set_value(0).run()
    assert not at.exception, at.exception
    cfg = at.session_state["config"]
    assert (cfg.grad_clip, cfg.n_train, cfg.lr_decay, cfg.solver.max_nfe) == (2.5, 400, False, None)
    assert cfg == SIDEBAR_BASE.replace(grad_clip=2.5, n_train=400, lr_decay=False, solver={"max_nfe": None})


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [("demo_n_train", 1, "n_train"), ("demo_max_nfe", 5, "solver.max_nfe"), ("demo_adam_iters", 0, None)],
)
def test_a_bad_value_in_the_sidebar_is_an_error_naming_it(key, value, field):
    at = AppTest.from_function(_controls_app, args=(SIDEBAR_BASE.to_json(),), default_timeout=60).run()
    if field is None:  # adam_iters 0 with lbfgs_iters 0: two settings at fault at once
        field = "adam_iters + lbfgs_iters"
    at.number_input(key=key).set_value(value).run()
    assert not at.exception, at.exception
    result = at.session_state["result"]
    assert result.config is None and len(result.errors) == 1 and field in result.errors[0]
    assert any(field in e.value for e in at.error), [e.value for e in at.error]


# --------------------------------------------------------------------------------------------------
# Exported code and Compare
# --------------------------------------------------------------------------------------------------


def _exported_config(code: str) -> TrainConfig:
    start = code.index("config = TrainConfig(")
    end = code.index("\n)\n", start) + 2
    scope: dict = {}
    exec("from cnfviz import ModelConfig, SolverConfig, TrainConfig\n" + code[start:end], scope)
    return scope["config"]


@pytest.mark.parametrize(("f", "value"), CASES)
def test_every_field_survives_the_exported_code(f, value):
    cfg = with_value(f, value)
    assert _exported_config(config_to_code(cfg)) == cfg


@pytest.mark.parametrize("f", [f for f in FIELDS.values() if f.compare], ids=lambda f: f.path)
def test_compare_knobs_of_one_field_set_just_that_field(f):
    knob = KNOBS[f.compare]
    value = VALUES[f.path][-1]
    cfg = knob.apply(BASE, f.format(value))
    assert knob.get(cfg) == f.get(cfg) == value
    assert cfg == with_value(f, value)
    assert knob.description and (f.compare_label or f.compare) == knob.label


def test_a_bad_knob_value_names_the_knob_and_carries_the_field():
    with pytest.raises(ConfigError) as err:
        KNOBS["lr"].apply(BASE, "-1")
    assert str(err.value).startswith("lr = -1: lr must be in (0, 10]") and err.value.field == "lr"
    with pytest.raises(ConfigError) as err:
        KNOBS["solver"].apply(BASE, "rk5")
    assert str(err.value).startswith('solver = rk5: invalid value "rk5"') and "dopri5" in err.value.allowed


def test_a_sweep_varies_the_new_flags_too():
    from cnfviz.runtime.sweep import sweep_configs

    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    args = parser.parse_args(
        ["sweep", "--target", "normal", "--vary", "lr_decay=true,false", "--vary", "max_nfe=none,800"]
    )
    grid = sweep_configs(train, args, config_from_args)
    assert [(cfg.lr_decay, cfg.solver.max_nfe) for _, _, cfg in grid] == [
        (True, None),
        (True, 800),
        (False, None),
        (False, 800),
    ]
    assert [label for label, _, _ in grid][1] == "lr_decay=true max_nfe=800"


def test_the_link_and_widget_key_tables_in_the_docs_list_every_field():
    import cnfviz.features.links
    import cnfviz.ui.sidebar

    for f in PLAIN:
        assert (
            f"\n{f.key} " in cnfviz.features.links.__doc__
            or f"/{f.key} " in cnfviz.features.links.__doc__
            or (f"\n{f.key}/" in cnfviz.features.links.__doc__)
        ), f.key
        if f.widget is not None:
            assert f"``p_{f.widget}``" in cnfviz.ui.sidebar.__doc__, f.widget


def _hidden_controls_app(config_json: str) -> None:
    import streamlit as st

    from cnfviz import TrainConfig
    from cnfviz.ui import apply_config_to_state, config_controls

    if "applied" not in st.session_state:
        apply_config_to_state("demo", TrainConfig.from_json(config_json))
        st.session_state.applied = True
    st.session_state.config = config_controls("demo", hidden=frozenset({"advanced"})).config


def test_a_hidden_advanced_expander_keeps_the_configs_values():
    cfg = SIDEBAR_BASE.replace(grad_clip=3.0, n_train=400, solver={"max_nfe": None})
    at = AppTest.from_function(_hidden_controls_app, args=(cfg.to_json(),), default_timeout=60).run()
    assert not at.exception, at.exception
    assert not {f"demo_{f.widget}" for f in ADVANCED} & {w.key for w in (*at.number_input, *at.checkbox)}
    assert at.session_state["config"] == cfg
    assert "advanced" in parse_query({"hide": "advanced"}).hidden
