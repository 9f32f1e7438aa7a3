"""Shareable links restore a config exactly, hide controls, autostart, and survive garbage."""

import pytest

from cnfviz import PRESETS, default_config
from cnfviz.features.links import CONTROLS, config_to_query, parse_query
from cnfviz.training.presets import SEED_CONFIG


@pytest.mark.parametrize(
    "config",
    [
        default_config("moons"),
        default_config("moons", lr=0.0123456789, seed=7, max_seconds=12.5, lambda_kinetic=0.1),
        default_config("scipy:gamma", {"a": 2.5, "scale": 0.5}),
        default_config("mixture", {"weights": [0.3, 0.7], "means": [-2.0, 3.0], "sds": [0.5, 1.0]}),
        default_config("8gaussians").replace(
            model={"hidden": (16, 8), "tspan": (0.0, 2.0), "trace": "exact-autograd"},
            solver={"method": "dopri5", "rtol": 1e-7, "adjoint": True},
            batch_size=None,
            n_train=300,
        ),
        SEED_CONFIG,
        *[p.config for p in PRESETS.values()],
    ],
)
def test_a_link_restores_the_config_exactly(config):
    query = config_to_query(config)
    assert all(isinstance(v, str) for v in query.values())
    state = parse_query(query)
    assert state.notices == ()
    assert state.config == config


def test_links_are_short_and_readable():
    assert config_to_query(default_config("moons")) == {"target": "moons"}
    q = config_to_query(default_config("moons", lr=0.02), hidden={"trace", "solver"}, autostart=True)
    assert q == {"target": "moons", "lr": "0.02", "hide": "solver,trace", "autostart": "1"}


def test_hand_written_lesson_link():
    state = parse_query({"target": "moons", "hidden": "16,16", "hide": "solver,trace", "autostart": "1"})
    assert state.notices == ()
    assert state.config == default_config("moons").replace(model={"hidden": (16, 16)})
    assert state.hidden == {"solver", "trace"} and state.autostart


def test_preset_links():
    assert parse_query({"preset": "seed"}).config == SEED_CONFIG
    assert parse_query({"preset": "seed", "lbfgs": "5"}).config == SEED_CONFIG.replace(lbfgs_iters=5)


@pytest.mark.parametrize(
    ("query", "notice"),
    [
        ({"target": "unicorns"}, 'Invalid target "unicorns"'),
        ({"target": "normal", "p.scale": "-1"}, "scale"),
        ({"lr": "fast"}, 'Ignored "lr=fast"'),
        ({"lr": "-3"}, "lr must be in"),
        ({"hidden": "64,x"}, 'Ignored "hidden=64,x"'),
        ({"tspan": "1,1"}, "t0 != t1"),
        ({"solver": "tsit5"}, 'Invalid solver "tsit5"'),
        ({"wat": "1"}, 'Unknown setting "wat"'),
        ({"preset": "nope"}, 'Unknown preset "nope"'),
        ({"hide": "solver,everything"}, 'Cannot hide unknown control "everything"'),
        ({"autostart": "maybe"}, "Ignored autostart"),
    ],
)
def test_garbage_falls_back_to_defaults_with_a_notice(query, notice):
    state = parse_query(query)
    assert any(notice in n for n in state.notices), state.notices
    assert state.config.target in ("normal", "moons") or state.config == default_config(state.config.target)


def test_good_values_survive_next_to_bad_ones():
    state = parse_query({"target": "moons", "lr": "oops", "seed": "4", "hide": "seed,bogus"})
    assert state.config == default_config("moons", seed=4)
    assert state.hidden == {"seed"} and len(state.notices) == 2


def test_every_control_can_be_hidden():
    assert parse_query({"hide": ",".join(CONTROLS)}).hidden == set(CONTROLS)


@pytest.mark.parametrize("objective", ["flow-matching", "ot-flow-matching"])
def test_a_link_carries_the_objective(objective):
    config = default_config("8gaussians", objective=objective, eval_every=500, batch_size=256)
    query = config_to_query(config)
    assert query["objective"] == objective
    state = parse_query(query)
    assert state.notices == () and state.config == config


def test_a_link_without_an_objective_opens_as_likelihood():
    assert "objective" not in config_to_query(default_config("moons"))
    assert parse_query({"target": "moons", "lr": "0.02"}).config.objective == "likelihood"


def test_the_objective_applies_after_the_settings_it_depends_on():
    # Written first, it still meets the seed preset's network only after time=concat and lbfgs=0 fixed it.
    state = parse_query({"objective": "flow-matching", "preset": "seed", "time": "concat", "lbfgs": "0"})
    assert state.notices == ()
    assert state.config.objective == "flow-matching" and state.config.model.time == "concat"


def test_an_objective_that_cannot_work_is_dropped_with_a_notice():
    state = parse_query({"preset": "seed", "objective": "flow-matching"})
    assert state.config == SEED_CONFIG
    (notice,) = state.notices
    assert notice.startswith('Ignored "objective=flow-matching" in the link: model.time "none" cannot be trained')
    (bad,) = parse_query({"objective": "maximum"}).notices
    assert "Must be one of ['likelihood', 'flow-matching', 'ot-flow-matching']" in bad
    assert parse_query({"hide": "objective"}).hidden == {"objective"}
