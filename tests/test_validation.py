"""The one guard for numbers and the errors that carry their field: every check helper, every config field."""

from __future__ import annotations

import math
import pickle
from typing import Any

import numpy as np
import pytest

from cnfviz import ConfigError, ModelConfig, SolverConfig, TrainConfig
from cnfviz._validation import MAX_INT, check_bool, check_choice, check_int_range, check_range, lookup

# value -> what check_int_range(value, "n", lo=0, hi=10**6) returns, or None when it must refuse
INT_CASES: dict[str, tuple[Any, int | None]] = {
    "int": (5, 5),
    "numpy-int64": (np.int64(7), 7),
    "numpy-uint8": (np.uint8(200), 200),
    "integral-float": (3.0, 3),
    "numpy-integral-float32": (np.float32(4.0), 4),
    "text": (" 12 ", 12),
    "fraction": (2.5, None),
    "inf": (math.inf, None),
    "-inf": (-math.inf, None),
    "nan": (math.nan, None),
    "numpy-nan": (np.float64("nan"), None),
    "huge-float": (1e300, None),
    "huge-int": (10**400, None),
    "huge-text": ("9" * 5000, None),
    "float-text": ("3.0", None),
    "inf-text": ("inf", None),
    "bool": (True, None),
    "numpy-bool": (np.bool_(True), None),
    "none": (None, None),
    "list": ([1], None),
    "array": (np.array([1, 2]), None),
    "complex": (1 + 0j, None),
    "over-hi": (10**6 + 1, None),
    "under-lo": (-1, None),
}


@pytest.mark.parametrize(("value", "expected"), list(INT_CASES.values()), ids=list(INT_CASES))
def test_the_integer_guard_accepts_integers_and_refuses_the_rest_by_name(value, expected):
    if expected is not None:
        got = check_int_range(value, "n", lo=0, hi=10**6)
        assert got == expected and type(got) is int
        return
    with pytest.raises(ConfigError) as err:
        check_int_range(value, "n", lo=0, hi=10**6)
    assert err.value.field == "n" and err.value.allowed == "[0, 1000000]"
    assert str(err.value).startswith("n must be an integer in [0, 1000000] (got ")
    assert len(str(err.value)) < 200, "a refused value is quoted short"


def test_the_integer_guard_has_a_ceiling_without_bounds():
    assert check_int_range(MAX_INT, "n") == MAX_INT
    for value in (MAX_INT + 1, -MAX_INT - 1, 1e19, float(2**63)):
        with pytest.raises(ConfigError, match="n must be an integer"):
            check_int_range(value, "n")


FLOAT_CASES: dict[str, tuple[Any, float | None]] = {
    "float": (0.5, 0.5),
    "numpy-float32": (np.float32(0.25), 0.25),
    "numpy-int": (np.int32(2), 2.0),
    "text": ("1e-3", 1e-3),
    "inf": (math.inf, None),
    "nan": (math.nan, None),
    "nan-text": ("nan", None),
    "numpy-longdouble-inf": (np.longdouble("inf"), None),
    "int-too-large-for-a-float": (10**400, None),
    "bool": (False, None),
    "none": (None, None),
    "object": (object(), None),
    "long-text": ("1" * 1000, None),
}


@pytest.mark.parametrize(("value", "expected"), list(FLOAT_CASES.values()), ids=list(FLOAT_CASES))
def test_the_float_guard_accepts_finite_numbers_only(value, expected):
    if expected is not None:
        assert check_range(value, "x", lo=0, hi=10) == pytest.approx(expected)
        return
    with pytest.raises(ConfigError) as err:
        check_range(value, "x", lo=0, hi=10)
    assert err.value.field == "x" and err.value.allowed == "[0, 10]"


def test_every_helper_fills_field_and_allowed():
    cases = [
        (lambda: check_choice("z", ["a", "b"], "model.time"), "model.time", ["a", "b"]),
        (lambda: check_bool(1, "lr_decay"), "lr_decay", "true or false"),
        (lambda: lookup({"a": 1}, "b", "activation", field="model.activation"), "model.activation", ["a"]),
        (lambda: lookup({"a": 1}, "b", "option"), "option", ["a"]),
        (lambda: check_range(20, "lr", lo=0, hi=10, lo_open=True), "lr", "(0, 10]"),
        (lambda: check_int_range(0, "n", lo=1), "n", "[1, inf]"),
    ]
    for call, field, allowed in cases:
        with pytest.raises(ConfigError) as err:
            call()
        assert (err.value.field, err.value.allowed) == (field, allowed)


def test_a_config_error_keeps_its_field_through_pickling():
    err = pickle.loads(pickle.dumps(ConfigError("lr must be in (0, 10]", field="lr", allowed="(0, 10]")))
    assert (str(err), err.field, err.allowed) == ("lr must be in (0, 10]", "lr", "(0, 10]")
    assert isinstance(err, ValueError)


# A bad value for each config field -> the field the error must carry.
FIELD_CASES: dict[str, tuple[Any, str]] = {
    "hidden-inf": (lambda: ModelConfig(hidden=(math.inf,)), "model.hidden[0]"),
    "hidden-not-a-list": (lambda: ModelConfig(hidden=64), "model.hidden"),
    "hidden-too-deep": (lambda: ModelConfig(hidden=(4,) * 9), "model.hidden"),
    "activation": (lambda: ModelConfig(activation="relu6"), "model.activation"),
    "time": (lambda: ModelConfig(time="later"), "model.time"),
    "linear": (lambda: ModelConfig(linear="yes"), "model.linear"),
    "tspan-pair": (lambda: ModelConfig(tspan=(0.0,)), "model.tspan"),
    "tspan-inf": (lambda: ModelConfig(tspan=(0.0, math.inf)), "model.tspan[1]"),
    "tspan-equal": (lambda: ModelConfig(tspan=(1.0, 1.0)), "model.tspan"),
    "trace": (lambda: ModelConfig(trace="guess"), "model.trace"),
    "solver-method": (lambda: SolverConfig(method="tsit5"), "solver.method"),
    "solver-rtol-nan": (lambda: SolverConfig(rtol=math.nan), "solver.rtol"),
    "solver-max-steps-inf": (lambda: SolverConfig(max_steps=math.inf), "solver.max_steps"),
    "solver-max-nfe-huge": (lambda: SolverConfig(max_nfe=1e300), "solver.max_nfe"),
    "solver-adjoint": (lambda: SolverConfig(adjoint="no"), "solver.adjoint"),
    "adam-inf": (lambda: TrainConfig(adam_iters=math.inf), "adam_iters"),
    "batch-huge": (lambda: TrainConfig(batch_size=1e300), "batch_size"),
    "n-train-nan": (lambda: TrainConfig(n_train=math.nan), "n_train"),
    "seed-huge": (lambda: TrainConfig(seed=10**30), "seed"),
    "lr-inf": (lambda: TrainConfig(lr=math.inf), "lr"),
    "max-seconds-inf": (lambda: TrainConfig(max_seconds=math.inf), "max_seconds"),
    "grad-clip-nan": (lambda: TrainConfig(grad_clip=math.nan), "grad_clip"),
    "device": (lambda: TrainConfig(device="tpu"), "device"),
    "lr-decay": (lambda: TrainConfig(lr_decay=1), "lr_decay"),
    "batch-over-n-train": (lambda: TrainConfig(batch_size=50, n_train=10), "batch_size"),
    "no-iterations": (lambda: TrainConfig(adam_iters=0, lbfgs_iters=0), "adam_iters, lbfgs_iters"),
    "unknown-key": (lambda: TrainConfig.from_dict({"lrr": 1}), "config"),
    "json-huge-int": (lambda: TrainConfig.from_json('{"seed": ' + "9" * 5000 + "}"), "config"),
    "json-deep": (lambda: TrainConfig.from_json("[" * 100_000 + "]" * 100_000), "config"),
    "json-inf": (lambda: TrainConfig.from_json('{"n_test": 1e999}'), "n_test"),
    "json-nan": (lambda: TrainConfig.from_json('{"lr": NaN}'), "lr"),
}


@pytest.mark.parametrize(("build", "field"), list(FIELD_CASES.values()), ids=list(FIELD_CASES))
def test_every_config_error_names_its_field(build, field):
    with pytest.raises(ConfigError) as err:
        build()
    assert err.value.field == field, str(err.value)


def test_numpy_scalars_build_the_same_config_as_python_numbers():
    a = TrainConfig(
        batch_size=np.int64(64), adam_iters=np.int32(5), lr=np.float32(0.5), model={"hidden": (np.int64(8),)}
    )
    b = TrainConfig(batch_size=64, adam_iters=5, lr=0.5, model={"hidden": (8,)})
    assert a == b and type(a.batch_size) is int and type(a.model.hidden[0]) is int
    assert TrainConfig.from_json(a.to_json()) == a
