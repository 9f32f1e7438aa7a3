"""Shared validation helpers: every bad value raises a ConfigError that names the field and what is allowed."""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable, Mapping
from dataclasses import fields
from typing import Any, TypeVar

import numpy as np

__all__ = [
    "MAX_INT",
    "ConfigError",
    "check_bool",
    "check_choice",
    "check_int_range",
    "check_keys",
    "check_range",
    "check_writable",
    "lookup",
]

T = TypeVar("T")

MAX_INT = 2**63 - 1
"""No integer setting may exceed this magnitude, bounds or not: nothing in cnfviz counts further, and a
value such as ``1e300`` must be refused rather than turned into a 300-digit int."""


class ConfigError(ValueError):
    """A configuration value is invalid. The message says which field, what it got and what is allowed.

    Arguments:
        message: the whole sentence, as shown to a person.
        field: the setting at fault, as a dotted path (``"batch_size"``, ``"model.hidden[0]"``), or
            several separated by ``", "``; ``None`` when no single setting is to blame.
        allowed: what would be accepted, as text (``"[1, 1024]"``) or a list of choices.

    Code routes an error by ``field``, never by the message's wording.

    Example:
        >>> err = ConfigError("lr must be in (0, 10] (got 20)", field="lr", allowed="(0, 10]")
        >>> err.field, err.allowed, str(err)
        ('lr', '(0, 10]', 'lr must be in (0, 10] (got 20)')
    """

    def __init__(self, message: str = "", *, field: str | None = None, allowed: Any = None) -> None:
        super().__init__(message)
        self.field = field
        self.allowed = allowed

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword attributes survive pickling (a process pool, a Ray worker) as well as the message.
        return (_rebuild, (str(self), self.field, self.allowed))


def _rebuild(message: str, field: str | None, allowed: Any) -> ConfigError:
    return ConfigError(message, field=field, allowed=allowed)


def lookup(registry: Mapping[str, T], name: str, what: str, *, field: str | None = None) -> T:
    """Return ``registry[name]`` or raise a ConfigError listing the valid names.

    ``field`` names the setting for :attr:`ConfigError.field` (default: ``what``).

    Example:
        >>> lookup({"a": 1, "b": 2}, "a", "option")
        1
    """
    try:
        return registry[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f'Invalid {what} "{name}". Must be one of {sorted(registry)}', field=field or what, allowed=sorted(registry)
        ) from None


def check_choice(value: Any, choices: Iterable[Any], field: str) -> Any:
    """Raise a ConfigError unless ``value`` is one of ``choices``; return it otherwise."""
    choices = list(choices)
    try:
        ok = value in choices
    except Exception:  # an object whose == raises (a numpy array) is no choice either
        ok = False
    if not ok:
        raise ConfigError(f'{field}: invalid value "{value}". Must be one of {choices}', field=field, allowed=choices)
    return value


def check_bool(value: Any, field: str) -> bool:
    """``value`` as a bool: ``True``/``False`` or a numpy bool; anything else (1, "yes") is refused."""
    if isinstance(value, bool):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    raise ConfigError(f"{field} must be true or false (got {value!r})", field=field, allowed="true or false")


def _real(value: Any) -> float | None:
    """``value`` as a float if it is a real number (numpy scalars, numeric text included), else None.

    Never raises: an int too large for a float becomes ``±inf``, which the callers refuse as non-finite."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, str):
        if len(value) > 100:  # no number needs this, and int("9" * 10**6) is slow
            return None
        try:
            return float(value.strip())
        except ValueError:
            return None
    if not isinstance(value, numbers.Real) and not hasattr(value, "__float__"):
        return None
    if isinstance(value, numbers.Integral):
        try:
            return float(int(value))
        except OverflowError:
            return math.inf if int(value) > 0 else -math.inf
    try:
        return float(value)
    except OverflowError:
        return math.inf
    except (TypeError, ValueError):
        return None


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

    ``lo_open``/``hi_open`` make the bound strict. The error message spells out the range. Numpy scalars and
    numeric text are accepted; NaN, ±inf, booleans and numbers too large for a float are refused.
    """
    lo_s = "-inf" if lo is None else repr(lo)
    hi_s = "inf" if hi is None else repr(hi)
    rng = f"{'(' if lo_open or lo is None else '['}{lo_s}, {hi_s}{')' if hi_open or hi is None else ']'}"
    v = _real(value)
    if v is None:
        raise ConfigError(f"{field} must be a number in {rng} (got {_shown(value)})", field=field, allowed=rng)
    if not math.isfinite(v):
        raise ConfigError(f"{field} must be a finite number in {rng} (got {_shown(value)})", field=field, allowed=rng)
    if lo is not None and (v < lo or (lo_open and v == lo)):
        raise ConfigError(f"{field} must be in {rng} (got {_shown(value)})", field=field, allowed=rng)
    if hi is not None and (v > hi or (hi_open and v == hi)):
        raise ConfigError(f"{field} must be in {rng} (got {_shown(value)})", field=field, allowed=rng)
    return v


def check_int_range(value: Any, field: str, *, lo: int | None = None, hi: int | None = None) -> int:
    """Check that ``value`` is an integer in [lo, hi]; return it as int.

    Accepts Python and numpy integers, integral floats (``3.0``) and integer text (``"3"``). Refuses
    booleans, fractions, NaN, ±inf and anything beyond ±:data:`MAX_INT`, with a ConfigError (never an
    ``OverflowError``).

    Example:
        >>> check_int_range("12", "n", lo=1)
        12
    """
    rng = f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
    bad = ConfigError(f"{field} must be an integer in {rng} (got {_shown(value)})", field=field, allowed=rng)
    if isinstance(value, (bool, np.bool_)):
        raise bad
    if isinstance(value, numbers.Integral):
        v = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if len(text) > 20 or not text.lstrip("+-").isdigit():
            raise bad
        v = int(text)
    else:
        f = _real(value)
        if f is None or not math.isfinite(f) or f != math.floor(f) or abs(f) > MAX_INT:
            raise bad
        v = int(f)
    if abs(v) > MAX_INT or (lo is not None and v < lo) or (hi is not None and v > hi):
        raise bad
    return v


def _shown(value: Any) -> str:
    """``repr(value)``, cut short: a refused value is quoted, never printed whole."""
    try:
        text = repr(value)
    except Exception:
        text = f"a {type(value).__name__}"
    return text if len(text) <= 80 else f"{text[:60]}… ({len(text):,} characters)"


def check_keys(d: dict[str, Any], cls: type, what: str) -> None:
    """Refuse keys of `d` that are not fields of the dataclass `cls` (`what` names it in the error)."""
    valid = [f.name for f in fields(cls)]
    unknown = [k for k in d if k not in valid]
    if unknown:
        raise ConfigError(f"{what}: unknown field(s) {unknown}. Valid fields: {valid}", field=what, allowed=valid)


def check_writable(path: str, flag: str) -> None:
    """Refuse an output path that cannot be written, before any work is done for it (``-`` is stdout for
    ``--json``).

    Raises:
        ConfigError: with ``field=flag``, saying why (a directory, a missing folder, no permission).
    """
    if path == "-" and flag == "--json":
        return
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        problem = "is a directory"
    elif not os.path.isdir(folder):
        problem = f"cannot be written: the folder {folder} does not exist"
    else:
        existed = os.path.exists(path)
        try:  # permissions alone do not tell (root, read-only mounts, /proc): try it
            with open(path, "ab"):
                pass
        except OSError as err:
            problem = f"cannot be written: {err.strerror or err}"
        else:
            if not existed:
                os.remove(path)
            return
    raise ConfigError(f"{flag} {path} {problem}", field=flag, allowed="a writable file path")
