"""The session-state keys of a page: one widget-key helper, and every ``{prefix}__name`` key registered."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import cnfviz.ui
from cnfviz.ui.keys import SESSION_KEYS, session_key, widget_key

UI = Path(cnfviz.ui.__file__).parent


def _own_keys_used() -> dict[str, set[str]]:
    """Every ``__name`` a module under cnfviz/ui keeps after a prefix (``f"{prefix}__dim"``, ``"__figures"``,
    ``session_key(prefix, "dim")``), with the modules that use it."""
    used: dict[str, set[str]] = {}
    for path in UI.rglob("*.py"):
        if path.name == "keys.py":  # the registry itself
            continue
        text = path.read_text()
        names = set(re.findall(r"\}__([a-z_]+)", text)) | set(re.findall(r'"__([a-z_]+)"', text))
        names |= set(re.findall(r'session_key\([^,()]+,\s*"([a-z_]+)"\)', text))
        for name in names - {"init", "doc", "all"}:
            used.setdefault(name, set()).add(path.relative_to(UI).as_posix())
    return used


def test_every_session_key_under_ui_is_registered():
    used = _own_keys_used()
    assert {"values", "base_config", "dim", "config", "request"} <= set(used), "the scan finds the keys"
    unregistered = {
        name: where
        for name, where in used.items()
        if name not in SESSION_KEYS and not any(k.endswith("_") and name.startswith(k) for k in SESSION_KEYS)
    }
    assert not unregistered, f"register these in cnfviz.ui.keys.SESSION_KEYS: {unregistered}"
    assert all(text.strip() for text in SESSION_KEYS.values()), "each key says what it holds"


def test_session_key_refuses_an_unregistered_name_and_builds_a_registered_one():
    assert session_key("train", "values") == "train__values"
    assert session_key("train", "custom_drawing") == "train__custom_drawing"  # the custom_ family
    with pytest.raises(ValueError, match='unregistered session key "valeus"'):
        session_key("train", "valeus")


def test_one_widget_key_helper_in_the_ui():
    assert widget_key("compare", "seed") == "compare_seed"
    copies = [
        p.relative_to(UI).as_posix()
        for p in UI.rglob("*.py")
        if re.search(r'return f"\{(prefix|PREFIX)\}_\{name\}"', p.read_text())
    ]
    assert copies == ["keys.py"], f"only cnfviz.ui.keys may define the widget-key helper: {copies}"
