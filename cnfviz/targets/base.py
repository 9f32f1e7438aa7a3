"""Target parameters and the :class:`Target` interface every distribution implements."""

from __future__ import annotations

import abc
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validation import ConfigError, check_choice, check_int_range, check_range

__all__ = ["MAX_LIST_ITEMS", "Param", "Target"]

MAX_LIST_ITEMS = 32
"""The most numbers a list parameter holds (a mixture's components): every such list, at full precision
(25 characters and a comma each), fits a link's value (:data:`cnfviz.features.links.MAX_VALUE_CHARS`), so a
link the app writes, it reads back."""


@dataclass(frozen=True)
class Param:
    """Describes one target parameter, so a UI can build a widget and validate input as the user types.

    Attributes:
        name: the keyword name, e.g. ``"scale"``.
        default: the default value; ``None`` means the parameter is required. Lists are given as tuples.
        kind: ``"float"``, ``"int"`` or ``"floats"`` (a list of floats; ``"0.3,0.7"`` is accepted).
        min: smallest allowed value (of every element for ``"floats"``), or ``None`` for no bound.
        max: largest allowed value, or ``None``.
        min_open: if True the minimum itself is not allowed (e.g. ``scale > 0``).
        help: one line for a tooltip.
        length: for ``"floats"``, the required number of elements, or ``None`` for any non-empty list.

    Example:
        >>> Param("scale", 1.0, "float", min=0.0, min_open=True).validate("2.5")
        2.5
    """

    name: str
    default: Any
    kind: str
    min: float | None = None
    max: float | None = None
    min_open: bool = False
    help: str = ""
    length: int | None = None

    @property
    def required(self) -> bool:
        """True when the parameter has no default and must be given."""
        return self.default is None

    def validate(self, value: Any, where: str = "") -> Any:
        """Coerce ``value`` to this parameter's kind and check its range.

        Arguments:
            value: a number, a numeric string, or for ``"floats"`` a sequence or a comma-separated string.
            where: prefix for error messages, usually the target name.

        Returns:
            ``float``, ``int`` or ``list[float]`` (JSON-serialisable).

        Raises:
            ConfigError: naming the parameter and the allowed range.
        """
        field = f"{where}.{self.name}" if where else self.name
        if self.kind == "float":
            return check_range(value, field, lo=self.min, hi=self.max, lo_open=self.min_open)
        if self.kind == "int":
            lo = None if self.min is None else (math.floor(self.min) + 1 if self.min_open else math.ceil(self.min))
            hi = None if self.max is None else math.floor(self.max)
            return check_int_range(_plain_int(value), field, lo=lo, hi=hi)
        if self.kind == "floats":
            items = _split_floats(value, field)
            if self.length is not None and len(items) != self.length:
                raise ConfigError(f"{field} must be a list of {self.length} numbers (got {len(items)}: {value!r})")
            if len(items) > MAX_LIST_ITEMS:
                raise ConfigError(
                    f"{field} holds {len(items):,} numbers; the limit is {MAX_LIST_ITEMS}",
                    field=field,
                    allowed=f"at most {MAX_LIST_ITEMS} numbers",
                )
            return [
                check_range(v, f"{field}[{i}]", lo=self.min, hi=self.max, lo_open=self.min_open)
                for i, v in enumerate(items)
            ]
        raise ConfigError(f'Param {self.name}: unknown kind "{self.kind}". Must be one of {["float", "int", "floats"]}')


def _plain_int(value: Any) -> Any:
    # numpy integers are not ``int`` instances, which check_int_range would reject.
    return int(value) if isinstance(value, np.integer) else value


def _split_floats(value: Any, field: str) -> list[Any]:
    """Turn ``"0.3,0.7"``, ``"[0.3 0.7]"``, a scalar or a sequence into a non-empty list of raw items."""
    if isinstance(value, str):
        # The CLI passes lists as text; brackets and any of , ; whitespace separate the numbers.
        items: list[Any] = [s for s in re.split(r"[,;\s]+", value.strip().strip("[]()")) if s]
    elif isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        items = [value]
    elif isinstance(value, (Sequence, np.ndarray)):
        items = list(np.asarray(value, dtype=object).ravel()) if isinstance(value, np.ndarray) else list(value)
    else:
        raise ConfigError(f"{field} must be a list of numbers (got {value!r})")
    if not items:
        raise ConfigError(f"{field} must be a non-empty list of numbers (got {value!r})")
    return items


def _validate_params(where: str, specs: Sequence[Param], given: Mapping[str, Any]) -> dict[str, Any]:
    """Check names, fill defaults and validate values; return a complete, JSON-serialisable dict."""
    valid = [p.name for p in specs]
    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise ConfigError(f"{where}: unknown parameter(s) {unknown}. Valid parameters: {valid}")
    missing = [p.name for p in specs if p.required and given.get(p.name) is None]
    if missing:
        raise ConfigError(f"{where}: missing required parameter(s) {missing}. Parameters: {valid}")
    out: dict[str, Any] = {}
    for p in specs:
        raw = given.get(p.name)
        if raw is None:
            raw = list(p.default) if isinstance(p.default, tuple) else p.default
        out[p.name] = p.validate(raw, where)
    return out


def _fmt(v: float) -> str:
    return f"{v:g}"


class Target(abc.ABC):
    """A distribution to learn, in 1 or 2 dimensions.

    Attributes:
        name: registry name, e.g. ``"normal"``, ``"scipy:gamma"``, ``"8gaussians"``, ``"samples"``.
        dim: 1 or 2.
        params: validated, complete parameters (JSON-serialisable).
        density_kind: ``"exact"`` or ``"estimate"``.
        bounds: plotting range ``[lo, hi]`` per axis, shape (dim, 2), covering nearly all the mass.
        label: short human label, e.g. ``"Normal(6, 0.7)"``.
    """

    name: str
    dim: int
    params: dict[str, Any]
    density_kind: str
    bounds: np.ndarray
    label: str

    def __init__(
        self,
        *,
        name: str,
        dim: int,
        params: dict[str, Any],
        density_kind: str,
        bounds: np.ndarray | Sequence[Sequence[float]],
        label: str,
    ) -> None:
        self.name = name
        self.dim = check_choice(dim, (1, 2), "Target.dim")
        self.params = params
        self.density_kind = check_choice(density_kind, ("exact", "estimate"), "Target.density_kind")
        b = np.array(bounds, dtype=np.float64).reshape(dim, 2)
        if not (np.all(np.isfinite(b)) and np.all(b[:, 0] < b[:, 1])):
            raise ConfigError(f"{name}: bounds must be finite with lo < hi on every axis (got {b.tolist()})")
        b.setflags(write=False)  # shared by every caller; a stray in-place edit would move every plot
        self.bounds = b
        self.label = label

    @abc.abstractmethod
    def _sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Draw ``n`` samples, shape (n, dim) or (n,) for dim 1."""

    @abc.abstractmethod
    def _log_prob(self, x: np.ndarray) -> np.ndarray:
        """Log-density at finite points ``x`` of shape (n, dim); returns (n,)."""

    def sample(self, n: int, seed: int | None = None) -> np.ndarray:
        """Draw samples.

        Arguments:
            n: number of samples (>= 0).
            seed: seed for ``np.random.default_rng``; the same seed gives identical output; ``None``: random.

        Returns:
            samples, shape (n, dim), float64.
        """
        n = check_int_range(_plain_int(n), "n", lo=0)
        rng = np.random.default_rng(seed)
        out = np.asarray(self._sample(rng, n), dtype=np.float64).reshape(n, self.dim)
        return np.ascontiguousarray(out)

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """Log-density.

        Arguments:
            x: points, shape (n, dim); for dim 1 a flat (n,) array is also accepted.

        Returns:
            log p(x), shape (n,), float64; ``-inf`` outside the support or at non-finite points, never NaN.
        """
        x = np.asarray(x, dtype=np.float64)
        if self.dim == 1 and x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"{self.name}: log_prob expects points of shape (n, {self.dim}), got {x.shape}")
        out = np.full(x.shape[0], -np.inf)
        finite = np.all(np.isfinite(x), axis=1)
        if finite.any():
            with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
                out[finite] = np.asarray(self._log_prob(x[finite]), dtype=np.float64).reshape(-1)
        out[np.isnan(out)] = -np.inf
        return out

    def pdf(self, x: np.ndarray) -> np.ndarray:
        """Density ``exp(log_prob(x))``, shape (n,)."""
        return np.exp(self.log_prob(x))

    def grid(self, resolution: int) -> tuple[np.ndarray, ...]:
        """Evenly spaced evaluation axes over ``bounds``.

        Arguments:
            resolution: number of points per axis (>= 2).

        Returns:
            ``(xs,)`` for 1D or ``(xs, ys)`` for 2D, each of shape (resolution,).
        """
        r = check_int_range(_plain_int(resolution), "resolution", lo=2)
        return tuple(np.linspace(lo, hi, r) for lo, hi in self.bounds)

    def spec(self) -> dict[str, Any]:
        """``{"name": ..., "params": {...}}``; ``make_target(**spec)`` rebuilds an equal target (not data)."""
        return {"name": self.name, "params": json.loads(json.dumps(self.params))}

    def _key(self) -> tuple[Any, ...]:
        return (type(self).__name__, self.name, json.dumps(self.params, sort_keys=True))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Target) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label!r} name={self.name!r} dim={self.dim} {self.density_kind}>"
