"""Shared validation helpers: every bad value raises a ConfigError that names the field and what is allowed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

__all__ = ["ConfigError", "check_choice", "check_int_range", "check_range", "lookup"]

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value is invalid. The message says which field, what it got and what is allowed."""


def lookup(registry: Mapping[str, T], name: str, what: str) -> T:
    """Return ``registry[name]`` or raise a ConfigError listing the valid names.

    Example:
        >>> lookup({"a": 1, "b": 2}, "a", "option")
        1
    """
    try:
        return registry[name]
    except (KeyError, TypeError):
        raise ConfigError(f'Invalid {what} "{name}". Must be one of {sorted(registry)}') from None


def check_choice(value: Any, choices: Iterable[Any], field: str) -> Any:
    """Raise a ConfigError unless ``value`` is one of ``choices``; return it otherwise."""
    choices = list(choices)
    if value not in choices:
        raise ConfigError(f'{field}: invalid value "{value}". Must be one of {choices}')
    return value


def check_range(
    value: Any,
    field: str,
    *,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
) -> float:
    """Check that ``value`` is a finite real number in the given range; return it as float.

    ``lo_open``/``hi_open`` make the bound strict. The error message spells out the range.
    """
    lo_s = "-inf" if lo is None else repr(lo)
    hi_s = "inf" if hi is None else repr(hi)
    rng = f"{'(' if lo_open or lo is None else '['}{lo_s}, {hi_s}{')' if hi_open or hi is None else ']'}"
    if isinstance(value, bool):
        raise ConfigError(f"{field} must be a number in {rng} (got {value!r})")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{field} must be a number in {rng} (got {value!r})") from None
    if v != v or v in (float("inf"), float("-inf")):
        raise ConfigError(f"{field} must be a finite number in {rng} (got {value!r})")
    if lo is not None and (v < lo or (lo_open and v == lo)):
        raise ConfigError(f"{field} must be in {rng} (got {value!r})")
    if hi is not None and (v > hi or (hi_open and v == hi)):
        raise ConfigError(f"{field} must be in {rng} (got {value!r})")
    return v


def check_int_range(value: Any, field: str, *, lo: int | None = None, hi: int | None = None) -> int:
    """Check that ``value`` is an integer in [lo, hi]; return it as int."""
    rng = f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{field} must be an integer in {rng} (got {value!r})")
    try:
        v = int(value)
        if isinstance(value, float) and v != value:
            raise ValueError
        if isinstance(value, str) and str(v) != value.strip():
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(f"{field} must be an integer in {rng} (got {value!r})") from None
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise ConfigError(f"{field} must be an integer in {rng} (got {value!r})")
    return v
