"""The operator's ``CNFVIZ_*`` variables: one declaration each, one reader, all in the README, and each bad value
an error that names its variable (issue 20 item 5, issue 21 item 6)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from cnfviz import ConfigError
from cnfviz._env import VARIABLES, environment_report, log_environment, markdown_table, read, read_or_default

ROOT = Path(__file__).resolve().parents[1]
CODE = [*sorted((ROOT / "cnfviz").rglob("*.py")), ROOT / "app.py", *sorted((ROOT / "app_pages").glob("*.py"))]


def test_every_variable_the_code_names_is_declared():
    named = {m for path in CODE for m in re.findall(r"CNFVIZ_[A-Z_]+[A-Z]", path.read_text())}
    assert named - set(VARIABLES) == set(), "declare them in cnfviz/_env.py"


def test_only_the_reader_touches_the_environment_for_them():
    for path in CODE:
        if path.name == "_env.py":
            continue
        text = path.read_text()
        assert not re.search(r"environ(\.get)?\(?\[?\s*[\"']CNFVIZ_", text), path
        assert not re.search(r"environ\.get\(\w*_ENV", text), f"{path} parses a CNFVIZ_ variable itself"


def test_the_readme_lists_every_variable_as_declared():
    readme = (ROOT / "README.md").read_text()
    assert markdown_table() in readme, "paste cnfviz._env.markdown_table() into the README"
    for name in VARIABLES:
        assert f"`{name}`" in readme


# (variable, value) -> what the error says; each is refused by name (0 included: never "off" by accident).
BAD = {
    "run-mb-text": ("CNFVIZ_MAX_RUN_MB", "abc", "a number in (0, inf) or none"),
    "run-mb-inf": ("CNFVIZ_MAX_RUN_MB", "inf", "a number in (0, inf) or none"),
    "run-mb-zero": ("CNFVIZ_MAX_RUN_MB", "0", "a number in (0, inf) or none"),
    "run-mb-negative": ("CNFVIZ_MAX_RUN_MB", "-5", "(0, inf)"),
    "step-seconds-nan": ("CNFVIZ_MAX_STEP_SECONDS", "nan", "(0, inf)"),
    "jobs-zero": ("CNFVIZ_MAX_JOBS", "0", "an integer in [1, 4096]"),
    "jobs-float": ("CNFVIZ_MAX_JOBS", "4.5", "an integer"),
    "jobs-off": ("CNFVIZ_MAX_JOBS", "off", "an integer"),
    "grace-a-day": ("CNFVIZ_RECONNECT_GRACE", "86400", "[0, 86400)"),
    "stack-size-zero": ("CNFVIZ_RAY_STACK_SIZE", "0", "[1, 1024]"),
    "server-mb-huge-int": ("CNFVIZ_SERVER_MB", "9" * 400, "a number"),
}


@pytest.mark.parametrize(("name", "value", "fragment"), list(BAD.values()), ids=list(BAD))
def test_a_bad_value_is_an_error_naming_its_variable(name, value, fragment):
    with pytest.raises(ConfigError) as err:
        read(name, {name: value})
    assert err.value.field == name
    assert str(err.value).startswith(f'{name}: invalid value "{value}". Must be') and fragment in str(err.value)


def test_values_defaults_and_the_words_that_lift_a_limit():
    assert read("CNFVIZ_MAX_RUN_MB", {"CNFVIZ_MAX_RUN_MB": " 512 "}) == 512.0
    assert read("CNFVIZ_MAX_RUN_MB", {"CNFVIZ_MAX_RUN_MB": "none"}) is None
    assert read("CNFVIZ_MAX_RUN_MB", {"CNFVIZ_MAX_RUN_MB": "OFF"}) is None
    assert read("CNFVIZ_MAX_RUN_MB", {}, default=2048) == 2048
    assert read("CNFVIZ_RECONNECT_GRACE", {"CNFVIZ_RECONNECT_GRACE": "0"}) == 0.0, "zero means zero"
    assert read("CNFVIZ_MAX_JOBS", {"CNFVIZ_MAX_JOBS": ""}) == 32
    assert read_or_default("CNFVIZ_MAX_JOBS", {"CNFVIZ_MAX_JOBS": "lots"}) == 32


def test_the_server_budget_refuses_a_zero_that_used_to_mean_no_limit(monkeypatch):
    from cnfviz.runtime.budget import RunBudget

    monkeypatch.setenv("CNFVIZ_MAX_RUN_MB", "0")
    with pytest.raises(ConfigError) as err:
        RunBudget.for_server()
    assert err.value.field == "CNFVIZ_MAX_RUN_MB"
    monkeypatch.setenv("CNFVIZ_MAX_RUN_MB", "none")
    assert RunBudget.for_server().max_bytes is not None, "the machine's memory still applies"


def test_start_up_logs_each_variable_or_its_error_and_what_happens_instead(caplog):
    env = {"CNFVIZ_MAX_JOBS": "0", "CNFVIZ_MAX_RUN_MB": "512", "CNFVIZ_MAX_STEP_SECONDS": "inf", "CNFVIZ_TYPO": "1"}
    with caplog.at_level(logging.INFO, logger="cnfviz"):
        lines = log_environment(env, force=True)
    assert lines == [line for _, _, line in environment_report(env)] and len(lines) == 4
    text = "\n".join(lines)
    assert 'CNFVIZ_MAX_JOBS: invalid value "0"' in text and "using the default (32)" in text
    assert "CNFVIZ_MAX_RUN_MB=512.0" in text
    assert 'CNFVIZ_MAX_STEP_SECONDS: invalid value "inf"' in text and "refused until it is fixed" in text
    assert "CNFVIZ_TYPO is not a cnfviz setting" in text
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 3, errors
    assert log_environment(env) == [], "once per process"
