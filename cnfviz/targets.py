"""Target distributions for a flow to learn: a registry of 1D/2D densities, scipy.stats, data and images.

Every target draws reproducible samples and evaluates a log-density. A density is either ``"exact"``
(analytic, or the definition of the target) or an ``"estimate"`` (histogram or KDE), and the UI labels the
estimates as such.

Example:
    >>> t = make_target("normal", loc=0.0, scale=1.0)
    >>> t.sample(4, seed=0).shape
    (4, 1)
    >>> round(float(t.log_prob(np.zeros((1, 1)))[0]), 4)
    -0.9189
"""

from __future__ import annotations

import abc
import csv
import difflib
import functools
import io
import json
import math
import os
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
import scipy.special
import scipy.stats
from scipy.ndimage import gaussian_filter, map_coordinates

from cnfviz._validation import ConfigError, check_choice, check_int_range, check_range, lookup

__all__ = [
    "SLOW_SCIPY",
    "TARGETS",
    "ImageTarget",
    "Param",
    "SamplesTarget",
    "Target",
    "TargetSpec",
    "image_from_file",
    "make_target",
    "samples_from_csv",
    "scipy_distributions",
    "scipy_examples",
    "scipy_params",
    "target_names",
    "target_spec",
]

SCIPY_PREFIX = "scipy:"
SLOW_SCIPY: frozenset[str] = frozenset(
    {"levy_stable", "studentized_range", "gausshyper", "ksone", "kstwo", "rel_breitwigner"}
)
"""scipy.stats distributions that take seconds to minutes to build or sample (numerical integration in scipy;
measured by ``benchmarks/bench_abuse.py``): the picker leaves them out, and a shared server refuses them
wherever they come from (a link, an uploaded config), since a scipy call cannot be interrupted."""

# The plotting window of every FFJORD toy set: the original plots use [-4, 4]^2, and the widest sets
# (pinwheel, circles, 8gaussians) leave ~1e-4 of their mass beyond 4, so a half-unit margin covers it.
_TOY_BOUNDS = np.array([[-4.5, 4.5], [-4.5, 4.5]])

# Estimated densities: enough samples that a 256^2 histogram is smooth after a one-bin blur, with a fixed
# seed so every process builds the same picture.
_ESTIMATE_SAMPLES = 1_000_000
_ESTIMATE_BINS = 256
_ESTIMATE_SEED = 0

_MIN_SAMPLES = 10


# --------------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# Base class
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# 1D targets
# --------------------------------------------------------------------------------------------------


class _Mixture1D(Target):
    """A 1D Gaussian mixture; ``normal`` is the one-component case."""

    def __init__(
        self, name: str, params: dict[str, Any], weights: list[float], means: list[float], sds: list[float]
    ) -> None:
        self._w = np.asarray(weights, dtype=np.float64)
        self._mu = np.asarray(means, dtype=np.float64)
        self._sd = np.asarray(sds, dtype=np.float64)
        # 4 sd on each side leaves ~6e-5 of the mass outside.
        bounds = [[float(np.min(self._mu - 4 * self._sd)), float(np.max(self._mu + 4 * self._sd))]]
        if name == "normal":
            label = f"Normal({_fmt(means[0])}, {_fmt(sds[0])})"
        else:
            label = f"Mixture of {len(weights)} Gaussians"
        super().__init__(name=name, dim=1, params=params, density_kind="exact", bounds=bounds, label=label)

    def _sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        k = rng.choice(len(self._w), size=n, p=self._w)
        return self._mu[k] + self._sd[k] * rng.standard_normal(n)

    def _log_prob(self, x: np.ndarray) -> np.ndarray:
        z = (x - self._mu) / self._sd  # (n, K) by broadcasting the (n, 1) points
        comp = np.log(self._w) - 0.5 * z**2 - np.log(self._sd) - 0.5 * math.log(2 * math.pi)
        return scipy.special.logsumexp(comp, axis=1)


def _make_normal(loc: float, scale: float) -> Target:
    return _Mixture1D("normal", {"loc": loc, "scale": scale}, [1.0], [loc], [scale])


def _make_mixture(weights: list[float], means: list[float], sds: list[float]) -> Target:
    lengths = {"weights": len(weights), "means": len(means), "sds": len(sds)}
    if len(set(lengths.values())) != 1:
        raise ConfigError(f"mixture: weights, means and sds must have the same length (got {lengths})")
    total = math.fsum(weights)
    # Already-normalised weights stay untouched, so make_target(**t.spec()) rebuilds bit-identical params.
    if abs(total - 1.0) > 1e-12:
        weights = [w / total for w in weights]
    params = {"weights": weights, "means": means, "sds": sds}
    return _Mixture1D("mixture", params, weights, means, sds)


# --------------------------------------------------------------------------------------------------
# scipy.stats targets
# --------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _scipy_names() -> tuple[str, ...]:
    return tuple(
        sorted(
            n
            for n in dir(scipy.stats)
            if not n.startswith("_") and isinstance(getattr(scipy.stats, n), scipy.stats.rv_continuous)
        )
    )


def scipy_distributions() -> list[str]:
    """Names of every continuous ``scipy.stats`` distribution (``rv_continuous`` instances), sorted.

    Example:
        >>> "gamma" in scipy_distributions() and "poisson" not in scipy_distributions()
        True
    """
    return list(_scipy_names())


def _scipy_dist(dist_name: str) -> scipy.stats.rv_continuous:
    """Return ``scipy.stats.<dist_name>`` or raise a ConfigError that says what does work."""
    obj = getattr(scipy.stats, dist_name, None) if isinstance(dist_name, str) and dist_name.isidentifier() else None
    if isinstance(obj, scipy.stats.rv_continuous) and not dist_name.startswith("_"):
        return obj
    hint = (
        f"Any continuous scipy.stats distribution name works as '{SCIPY_PREFIX}<name>', e.g. "
        + ", ".join(SCIPY_PREFIX + n for n in ("norm", "gamma", "beta", "lognorm", "t"))
        + f" ({len(_scipy_names())} in all, see scipy_distributions())"
    )
    if isinstance(obj, scipy.stats.rv_discrete):
        raise ConfigError(f"scipy.stats.{dist_name} is a discrete distribution; targets must be continuous. {hint}")
    close = difflib.get_close_matches(str(dist_name), _scipy_names(), n=3)
    did_you_mean = f" Did you mean {close}?" if close else ""
    raise ConfigError(f'Unknown scipy.stats distribution "{dist_name}".{did_you_mean} {hint}')


# Working shape values for common distributions, for a scipy whose private table below has moved (the first
# rows of scipy 1.x's ``distcont``, to 3 significant digits; tests/test_targets.py keeps them in step).
_SCIPY_EXAMPLES_FALLBACK: dict[str, tuple[float, ...]] = {
    "beta": (2.31, 0.627),
    "chi2": (55.0,),
    "f": (29.0, 18.0),
    "gamma": (1.99,),
    "genextreme": (-0.1,),
    "loggamma": (0.414,),
    "lognorm": (0.954,),
    "pareto": (2.62,),
    "powerlaw": (1.66,),
    "skewnorm": (4.0,),
    "t": (2.74,),
    "truncnorm": (-1.1, 2.73),
    "vonmises": (3.99,),
    "weibull_min": (1.79,),
}


@functools.cache
def _scipy_examples() -> dict[str, tuple[Any, ...]]:
    # The one place that reads scipy's private test table (``scipy.stats._distr_params.distcont``: rows of
    # (name, shape values), some names several times; the first row of each is the plain case).
    table: dict[str, tuple[Any, ...]] = {}
    try:
        from scipy.stats._distr_params import distcont

        for name, args in distcont:
            table.setdefault(str(name), tuple(args))
    except (ImportError, TypeError, ValueError):  # the private table moved or changed shape
        table = {}
    return {**_SCIPY_EXAMPLES_FALLBACK, **table}


def scipy_examples(dist_name: str) -> tuple[Any, ...]:
    """Working values of ``scipy.stats.<dist_name>``'s shape parameters, in order, or ``()`` when none is known.

    They come from scipy's own test table (private, hence a small built-in fallback for common
    distributions); the parameter help of :func:`scipy_params` and the app's starting values use them.

    Example:
        >>> [round(v, 2) for v in scipy_examples("gamma")]
        [1.99]
        >>> scipy_examples("norm")
        ()
    """
    return _scipy_examples().get(dist_name, ())


def scipy_params(dist_name: str) -> tuple[Param, ...]:
    """Parameters of ``scipy.stats.<dist_name>``: its shape parameters (required) plus ``loc`` and ``scale``.

    Arguments:
        dist_name: a continuous distribution name without the ``scipy:`` prefix, e.g. ``"gamma"``.

    Returns:
        ``Param`` tuple; shape parameters have ``default=None`` (required) and an example value in ``help``.

    Example:
        >>> [p.name for p in scipy_params("gamma")]
        ['a', 'loc', 'scale']
    """
    dist = _scipy_dist(dist_name)
    shapes = [s.strip() for s in (dist.shapes or "").split(",") if s.strip()]
    example = scipy_examples(dist_name)
    params = []
    for i, s in enumerate(shapes):
        eg = f"; e.g. {example[i]:.3g}" if i < len(example) and np.isscalar(example[i]) else ""
        params.append(Param(s, None, "float", help=f"shape parameter '{s}' of scipy.stats.{dist_name} (required{eg})"))
    params.append(Param("loc", 0.0, "float", help="location: shifts the distribution"))
    params.append(Param("scale", 1.0, "float", min=0.0, min_open=True, help="scale: stretches the distribution"))
    return tuple(params)


class _ScipyTarget(Target):
    """A continuous ``scipy.stats`` distribution, frozen at validated parameters."""

    def __init__(self, dist_name: str, params: dict[str, Any]) -> None:
        dist = _scipy_dist(dist_name)
        name = SCIPY_PREFIX + dist_name
        shape_names = [p.name for p in scipy_params(dist_name)][:-2]
        shapes = [params[s] for s in shape_names]
        loc, scale = params["loc"], params["scale"]
        shape_txt = ", ".join(f"{s}={_fmt(v)}" for s, v in zip(shape_names, shapes, strict=True))
        bad = ConfigError(
            f"{name}: scipy.stats.{dist_name} rejects the shape parameter(s) {shape_txt or '(none)'}"
            f" with loc={_fmt(loc)}, scale={_fmt(scale)}; see scipy.stats.{dist_name} docs for valid ranges"
        )
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore", RuntimeWarning)
                frozen = dist(*shapes, loc=loc, scale=scale)
                support = np.asarray(frozen.support(), dtype=np.float64)
                median = float(frozen.ppf(0.5))
                ok = not np.isnan(support).any() and np.isfinite(median) and not np.isnan(frozen.logpdf(median))
                bounds = _scipy_bounds(frozen) if ok else None
        except (ValueError, TypeError, ArithmeticError, OverflowError):
            raise bad from None
        if not ok or bounds is None:
            raise bad
        self._frozen = frozen
        label = f"scipy {dist_name}({', '.join(x for x in [shape_txt, _loc_scale_txt(loc, scale)] if x)})"
        super().__init__(name=name, dim=1, params=params, density_kind="exact", bounds=[bounds], label=label)

    def _sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.asarray(self._frozen.rvs(size=n, random_state=rng), dtype=np.float64)

    def _log_prob(self, x: np.ndarray) -> np.ndarray:
        return self._frozen.logpdf(x[:, 0])


def _loc_scale_txt(loc: float, scale: float) -> str:
    parts = ([f"loc={_fmt(loc)}"] if loc != 0 else []) + ([f"scale={_fmt(scale)}"] if scale != 1 else [])
    return ", ".join(parts)


def _scipy_bounds(frozen: Any) -> list[float] | None:
    """Plot range from the 0.1%..99.9% quantiles plus a 10% margin; 1%..99% for heavy tails."""
    lo, hi = (float(v) for v in frozen.ppf([0.001, 0.999]))
    lo1, hi1 = (float(v) for v in frozen.ppf([0.01, 0.99]))
    # Heavy tails (cauchy: 636 vs 64) would squash the bulk into a few pixels; a light tail grows ~1.3-2.2x.
    if not (math.isfinite(lo) and math.isfinite(hi)) or (hi - lo) > 3 * (hi1 - lo1):
        lo, hi = lo1, hi1
    if not (math.isfinite(lo) and math.isfinite(hi)) or not hi > lo:
        return None
    margin = 0.1 * (hi - lo)
    return [lo - margin, hi + margin]


# --------------------------------------------------------------------------------------------------
# 2D toy sets (rtqichen/ffjord lib/toy_data.py, reimplemented with numpy and an explicit Generator)
# --------------------------------------------------------------------------------------------------


_EIGHT_CENTRES = (
    4.0
    * np.array(
        [(1, 0), (-1, 0), (0, 1), (0, -1)]
        + [(sx / math.sqrt(2), sy / math.sqrt(2)) for sx, sy in [(1, 1), (1, -1), (-1, 1), (-1, -1)]]
    )
    / 1.414  # FFJORD divides by 1.414, not sqrt(2); kept so the data match the paper's
)
_EIGHT_SD = 0.5 / 1.414


def _gen_8gaussians(rng: np.random.Generator, n: int) -> np.ndarray:
    idx = rng.integers(8, size=n)
    return _EIGHT_CENTRES[idx] + _EIGHT_SD * rng.standard_normal((n, 2))


def _logp_8gaussians(x: np.ndarray) -> np.ndarray:
    d2 = np.sum((x[:, None, :] - _EIGHT_CENTRES[None]) ** 2, axis=-1)  # (n, 8)
    comp = -0.5 * d2 / _EIGHT_SD**2 - math.log(2 * math.pi * _EIGHT_SD**2) - math.log(8)
    return scipy.special.logsumexp(comp, axis=1)


def _gen_pinwheel(rng: np.random.Generator, n: int) -> np.ndarray:
    radial_sd, tangential_sd, rate, arms = 0.3, 0.1, 0.25, 5
    feats = rng.standard_normal((n, 2)) * np.array([radial_sd, tangential_sd])
    feats[:, 0] += 1.0
    labels = rng.permutation(np.arange(n) % arms)  # balanced arms, like the original's equal classes
    angle = 2 * math.pi * labels / arms + rate * np.exp(feats[:, 0])
    c, s = np.cos(angle), np.sin(angle)
    return 2 * np.stack([feats[:, 0] * c + feats[:, 1] * s, -feats[:, 0] * s + feats[:, 1] * c], axis=1)


def _gen_swissroll(rng: np.random.Generator, n: int) -> np.ndarray:
    # sklearn make_swiss_roll(noise=1.0): t ~ 1.5*pi*(1 + 2U), point (t cos t, 21U, t sin t) + N(0, I3);
    # FFJORD keeps columns 0 and 2 and divides by 5.
    t = 1.5 * math.pi * (1 + 2 * rng.random(n))
    noise = rng.standard_normal((n, 3))
    return np.stack([t * np.cos(t) + noise[:, 0], t * np.sin(t) + noise[:, 2]], axis=1) / 5


def _gen_circles(rng: np.random.Generator, n: int) -> np.ndarray:
    # sklearn make_circles(factor=0.5, noise=0.08): n//2 evenly spaced points on the unit circle, the rest on
    # the radius-0.5 circle, shuffled, plus N(0, 0.08^2); FFJORD scales by 3.
    n_out, n_in = n // 2, n - n // 2
    ang_out = np.linspace(0, 2 * math.pi, n_out, endpoint=False)
    ang_in = np.linspace(0, 2 * math.pi, n_in, endpoint=False)
    pts = np.concatenate(
        [np.stack([np.cos(ang_out), np.sin(ang_out)], 1), 0.5 * np.stack([np.cos(ang_in), np.sin(ang_in)], 1)]
    )
    pts = pts[rng.permutation(n)] + 0.08 * rng.standard_normal((n, 2))
    return 3 * pts


def _gen_moons(rng: np.random.Generator, n: int) -> np.ndarray:
    # sklearn make_moons(noise=0.1): an upper half circle and a lower one shifted by (1, 0.5), evenly spaced,
    # shuffled, plus N(0, 0.1^2); FFJORD maps x -> 2x + (-1, -0.2).
    n_out, n_in = n // 2, n - n // 2
    a_out = np.linspace(0, math.pi, n_out)
    a_in = np.linspace(0, math.pi, n_in)
    pts = np.concatenate(
        [np.stack([np.cos(a_out), np.sin(a_out)], 1), np.stack([1 - np.cos(a_in), 0.5 - np.sin(a_in)], 1)]
    )
    pts = pts[rng.permutation(n)] + 0.1 * rng.standard_normal((n, 2))
    return 2 * pts + np.array([-1.0, -0.2])


def _gen_2spirals(rng: np.random.Generator, n: int) -> np.ndarray:
    # Angle sqrt(U) * 3*pi (540 degrees), jittered by U*0.5; half the points mirrored through the origin.
    t = np.sqrt(rng.random(n)) * 540 * (2 * math.pi) / 360
    pts = np.stack([-np.cos(t) * t + 0.5 * rng.random(n), np.sin(t) * t + 0.5 * rng.random(n)], axis=1)
    pts[: n // 2] *= -1
    pts = pts / 3 + 0.1 * rng.standard_normal((n, 2))
    return pts[rng.permutation(n)]


def _gen_checkerboard(rng: np.random.Generator, n: int) -> np.ndarray:
    x1 = 4 * rng.random(n) - 2
    x2 = rng.random(n) - 2 * rng.integers(0, 2, size=n) + np.floor(x1) % 2
    return 2 * np.stack([x1, x2], axis=1)


def _logp_checkerboard(x: np.ndarray) -> np.ndarray:
    # Eight 2x2 squares in [-4, 4)^2 whose cell indices floor(x/2) + floor(y/2) are even; area 32.
    cells = np.floor(x / 2)
    inside = np.all((x >= -4) & (x < 4), axis=1) & ((cells.sum(axis=1) % 2) == 0)
    return np.where(inside, -math.log(32.0), -np.inf)


def _gen_rings(rng: np.random.Generator, n: int) -> np.ndarray:
    # Four concentric circles of radius 3, 2.25, 1.5, 0.75 with evenly spaced points (the innermost takes the
    # remainder), shuffled, plus N(0, 0.08^2) added after the scaling.
    counts = [n // 4, n // 4, n // 4, n - 3 * (n // 4)]
    parts = []
    for radius, k in zip((1.0, 0.75, 0.5, 0.25), counts, strict=True):
        a = np.linspace(0, 2 * math.pi, k, endpoint=False)
        parts.append(radius * np.stack([np.cos(a), np.sin(a)], axis=1))
    pts = 3.0 * np.concatenate(parts)[rng.permutation(n)]
    return pts + 0.08 * rng.standard_normal((n, 2))


_TOY_GENERATORS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "8gaussians": _gen_8gaussians,
    "pinwheel": _gen_pinwheel,
    "swissroll": _gen_swissroll,
    "circles": _gen_circles,
    "moons": _gen_moons,
    "2spirals": _gen_2spirals,
    "checkerboard": _gen_checkerboard,
    "rings": _gen_rings,
}

_TOY_LABELS = {
    "8gaussians": "8 Gaussians",
    "pinwheel": "Pinwheel",
    "swissroll": "Swiss roll",
    "circles": "Circles",
    "moons": "Moons",
    "2spirals": "2 spirals",
    "checkerboard": "Checkerboard",
    "rings": "Rings",
}

_TOY_EXACT: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "8gaussians": _logp_8gaussians,
    "checkerboard": _logp_checkerboard,
}


@functools.cache
def _toy_histogram(name: str) -> np.ndarray:
    """Log of a smoothed, normalised 256^2 histogram of 10^6 samples of toy set ``name`` over _TOY_BOUNDS.

    Built on first use and cached for the process (~0.2 s); the same fixed seed gives every process the same
    estimate.
    """
    pts = _TOY_GENERATORS[name](np.random.default_rng(_ESTIMATE_SEED), _ESTIMATE_SAMPLES)
    lo, hi = _TOY_BOUNDS[:, 0], _TOY_BOUNDS[:, 1]
    cell = (hi - lo) / _ESTIMATE_BINS
    idx = np.floor((pts - lo) / cell).astype(np.int64)
    keep = np.all((idx >= 0) & (idx < _ESTIMATE_BINS), axis=1)
    flat = idx[keep, 0] * _ESTIMATE_BINS + idx[keep, 1]  # bincount is several times faster than histogram2d
    counts = np.bincount(flat, minlength=_ESTIMATE_BINS**2).reshape(_ESTIMATE_BINS, _ESTIMATE_BINS)
    dens = gaussian_filter(counts.astype(np.float64), sigma=1.0, mode="constant")
    # Bilinear interpolation between cell centres, held constant in the outer half-cells, integrates to
    # exactly sum(values) * cell area, so this normalisation makes the interpolated density integrate to 1.
    dens /= dens.sum() * cell[0] * cell[1]
    with np.errstate(divide="ignore"):
        logd = np.log(dens)
    logd.setflags(write=False)
    return logd


class _ToyTarget(Target):
    """One of the FFJORD 2D toy sets: an exact density where one is known, a histogram estimate otherwise."""

    def __init__(self, name: str) -> None:
        self._gen = _TOY_GENERATORS[name]
        self._exact = _TOY_EXACT.get(name)
        kind = "exact" if self._exact is not None else "estimate"
        super().__init__(name=name, dim=2, params={}, density_kind=kind, bounds=_TOY_BOUNDS, label=_TOY_LABELS[name])

    def _sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self._gen(rng, n)

    def _log_prob(self, x: np.ndarray) -> np.ndarray:
        if self._exact is not None:
            return self._exact(x)
        return _interp_log_table(_toy_histogram(self.name), self.bounds, x)


def _interp_log_table(log_table: np.ndarray, bounds: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Bilinearly interpolate a cell-centred density table (given as its log) at points x (n, 2)."""
    bins = np.array(log_table.shape, dtype=np.float64)
    lo, hi = bounds[:, 0], bounds[:, 1]
    coords = (x - lo) / (hi - lo) * bins - 0.5  # index space, cell centres at integers
    dens = map_coordinates(np.exp(log_table), coords.T, order=1, mode="nearest")
    inside = np.all((x >= lo) & (x <= hi), axis=1)
    dens = np.where(inside, np.maximum(dens, 0.0), 0.0)
    return np.log(dens)


# --------------------------------------------------------------------------------------------------
# 2D Gaussian
# --------------------------------------------------------------------------------------------------


class _Gaussian2D(Target):
    """A 2D Gaussian with a full covariance."""

    def __init__(self, mean: list[float], cov: list[float]) -> None:
        m = np.asarray(mean, dtype=np.float64)
        c = np.asarray(cov, dtype=np.float64).reshape(2, 2)
        if not math.isclose(c[0, 1], c[1, 0], rel_tol=1e-9, abs_tol=1e-12):
            raise ConfigError(
                f"gaussian2d.cov must be symmetric: cov[0][1]={_fmt(c[0, 1])} != cov[1][0]={_fmt(c[1, 0])} "
                "(row-major [c00, c01, c10, c11])"
            )
        c = 0.5 * (c + c.T)
        eig = np.linalg.eigvalsh(c)
        if eig.min() <= 1e-12 * max(1.0, float(np.abs(eig).max())):
            raise ConfigError(
                f"gaussian2d.cov must be positive-definite (eigenvalues {[_fmt(e) for e in eig]}; "
                "need c00 > 0 and c00*c11 - c01^2 > 0)"
            )
        self._mean = m
        self._chol = np.linalg.cholesky(c)
        sd = np.sqrt(np.diag(c))
        bounds = np.stack([m - 4 * sd, m + 4 * sd], axis=1)
        label = f"Gaussian2D(mean=[{_fmt(m[0])}, {_fmt(m[1])}])"
        params = {"mean": [float(v) for v in m], "cov": [float(v) for v in c.ravel()]}
        super().__init__(name="gaussian2d", dim=2, params=params, density_kind="exact", bounds=bounds, label=label)

    def _sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self._mean + rng.standard_normal((n, 2)) @ self._chol.T

    def _log_prob(self, x: np.ndarray) -> np.ndarray:
        z = np.linalg.solve(self._chol, (x - self._mean).T)  # whitened points, (2, n)
        log_det = np.sum(np.log(np.diag(self._chol)))
        return -0.5 * np.sum(z**2, axis=0) - log_det - math.log(2 * math.pi)


# --------------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetSpec:
    """A registry entry: everything a UI needs to offer a target, and the factory that builds it.

    Attributes:
        name: registry name.
        dim: 1 or 2.
        description: one line.
        params: the parameters, in display order.
        density_kind: ``"exact"`` or ``"estimate"``.
        factory: called with the validated parameters as keywords; returns the Target.
    """

    name: str
    dim: int
    description: str
    params: tuple[Param, ...]
    density_kind: str
    factory: Callable[..., Target]


def _toy_spec(name: str, description: str) -> TargetSpec:
    kind = "exact" if name in _TOY_EXACT else "estimate"
    return TargetSpec(name, 2, description, (), kind, functools.partial(_ToyTarget, name))


TARGETS: dict[str, TargetSpec] = {
    spec.name: spec
    for spec in [
        TargetSpec(
            "normal",
            1,
            "Normal(loc, scale), the reference tutorial's Normal(6, 0.7) by default",
            (
                Param("loc", 6.0, "float", help="mean"),
                Param("scale", 0.7, "float", min=0.0, min_open=True, help="standard deviation (> 0)"),
            ),
            "exact",
            _make_normal,
        ),
        TargetSpec(
            "mixture",
            1,
            "Mixture of 1D Gaussians with weights, means and standard deviations",
            (
                Param("weights", (0.5, 0.5), "floats", min=0.0, min_open=True, help="> 0, normalised to sum 1"),
                Param("means", (-2.0, 2.0), "floats", help="one mean per component"),
                Param("sds", (0.5, 0.5), "floats", min=0.0, min_open=True, help="standard deviations (> 0)"),
            ),
            "exact",
            _make_mixture,
        ),
        _toy_spec("8gaussians", "Eight Gaussians on a circle of radius 2.83 (FFJORD)"),
        _toy_spec("pinwheel", "Five curved arms (FFJORD)"),
        _toy_spec("swissroll", "A noisy 2D Swiss roll spiral (FFJORD)"),
        _toy_spec("circles", "Two noisy concentric circles of radius 3 and 1.5 (FFJORD)"),
        _toy_spec("moons", "Two interleaving half circles (FFJORD)"),
        _toy_spec("2spirals", "Two interleaved spirals (FFJORD)"),
        _toy_spec("checkerboard", "Uniform on eight squares of a 4x4 checkerboard in [-4, 4]^2 (FFJORD)"),
        _toy_spec("rings", "Four noisy concentric rings (FFJORD)"),
        TargetSpec(
            "gaussian2d",
            2,
            "A 2D Gaussian with mean and full covariance",
            (
                Param("mean", (0.0, 0.0), "floats", help="[mx, my]", length=2),
                Param(
                    "cov",
                    (1.0, 0.0, 0.0, 1.0),
                    "floats",
                    help="row-major [c00, c01, c10, c11], SPD",
                    length=4,
                ),
            ),
            "exact",
            _Gaussian2D,
        ),
    ]
}


def target_names(dim: int | None = None) -> list[str]:
    """Registry target names in display order, optionally only those of dimension ``dim`` (1 or 2).

    Example:
        >>> target_names(1)
        ['normal', 'mixture']
    """
    if dim is not None:
        check_choice(dim, (1, 2), "dim")
    return [name for name, spec in TARGETS.items() if dim is None or spec.dim == dim]


def make_target(name: str, params: Mapping[str, Any] | None = None, **kwargs: Any) -> Target:
    """Build a validated target.

    Arguments:
        name: a registry name (see ``TARGETS``) or ``"scipy:<name>"`` for any continuous scipy.stats
            distribution.
        params: parameter values; numbers may be strings (``"2.5"``), lists may be ``"0.3,0.7"``.
        **kwargs: more parameter values, overriding ``params``.

    Returns:
        the Target.

    Raises:
        ConfigError: for an unknown target or parameter, a missing one, or a bad value; the message lists
            what is valid.

    Example:
        >>> make_target("scipy:gamma", a="2").label
        'scipy gamma(a=2)'
        >>> make_target(**make_target("mixture", weights="1,3").spec()).params["weights"]
        [0.25, 0.75]
    """
    given = {**(dict(params) if params is not None else {}), **kwargs}
    if isinstance(name, str) and name.startswith(SCIPY_PREFIX):
        dist_name = name[len(SCIPY_PREFIX) :]
        values = _validate_params(name, scipy_params(dist_name), given)
        return _ScipyTarget(dist_name, values)
    if name in ("samples", "image"):
        cls = "SamplesTarget" if name == "samples" else "ImageTarget"
        raise ConfigError(f'Target "{name}" is built from data: use {cls}(...) rather than make_target')
    spec = target_spec(name)
    return spec.factory(**_validate_params(name, spec.params, given))


def target_spec(name: str) -> TargetSpec:
    """The registry entry of a named target, or a ConfigError listing the names (and the scipy form)."""
    try:
        return lookup(TARGETS, name, "target")
    except ConfigError as err:
        raise ConfigError(
            f"{err}, or '{SCIPY_PREFIX}<name>' for a continuous scipy.stats distribution, e.g. 'scipy:gamma'"
        ) from None


# --------------------------------------------------------------------------------------------------
# Targets from data
# --------------------------------------------------------------------------------------------------


class SamplesTarget(Target):
    """The distribution of a given set of points: resampling for samples, a Gaussian KDE for the density.

    Arguments:
        samples: points, shape (n, d) with d in {1, 2}, or (n,) for 1D; n >= 10, all finite.
        name: a name for the data set, shown in the label.
        max_kde_points: the KDE uses at most this many points (a fixed random subset), because evaluating a
            KDE costs (points x queries) and a 200^2 grid against 10^5 points would take minutes.

    Example:
        >>> t = SamplesTarget(np.arange(20.0))
        >>> t.dim, t.density_kind, t.sample(3, seed=1).shape
        (1, 'estimate', (3, 1))
    """

    def __init__(self, samples: np.ndarray | Sequence[Any], name: str = "samples", max_kde_points: int = 2000) -> None:
        try:
            data = np.array(samples, dtype=np.float64)
        except (TypeError, ValueError):
            raise ConfigError("samples must be a numeric array of shape (n, 1) or (n, 2)") from None
        if data.ndim == 1:
            data = data[:, None]
        if data.ndim != 2 or data.shape[1] not in (1, 2):
            raise ConfigError(f"samples must have shape (n,), (n, 1) or (n, 2) (got {data.shape})")
        n, d = data.shape
        if n < _MIN_SAMPLES:
            raise ConfigError(f"samples: need at least {_MIN_SAMPLES} points (got {n})")
        if not np.all(np.isfinite(data)):
            bad = int(np.flatnonzero(~np.all(np.isfinite(data), axis=1))[0])
            raise ConfigError(f"samples must be finite (row {bad} is {data[bad].tolist()})")
        # Relative to the data's magnitude: a constant column has a variance of ~1e-32, not 0.
        spread = data.std(axis=0)
        scale = np.maximum(np.abs(data).max(axis=0), 1.0)
        if np.any(spread <= 1e-9 * scale):
            raise ConfigError("samples are degenerate (zero spread); a density cannot be estimated")
        max_kde_points = check_int_range(_plain_int(max_kde_points), "max_kde_points", lo=_MIN_SAMPLES)
        kde_data = data
        if n > max_kde_points:
            kde_data = data[np.random.default_rng(0).choice(n, max_kde_points, replace=False)]
        try:
            kde = scipy.stats.gaussian_kde(kde_data.T)
            bw = np.sqrt(np.diag(kde.covariance))
            np.linalg.cholesky(kde.covariance)
        except (np.linalg.LinAlgError, ValueError):
            raise ConfigError(
                "samples are degenerate (zero spread, or all on a line in 2D); a density cannot be estimated"
            ) from None
        if not np.all(np.isfinite(bw)) or np.any(bw <= 0):
            raise ConfigError("samples are degenerate (zero spread); a density cannot be estimated")
        data.setflags(write=False)
        self.data = data
        self._kde = kde
        span = data.max(axis=0) - data.min(axis=0)
        # Three kernel widths past the extreme points leave a negligible share of the KDE's mass outside.
        margin = np.maximum(0.1 * span, 3 * bw)
        bounds = np.stack([data.min(axis=0) - margin, data.max(axis=0) + margin], axis=1)
        params = {"n": int(n), "dim": int(d)}
        super().__init__(
            name=name, dim=d, params=params, density_kind="estimate", bounds=bounds, label=f"{name} (n={n})"
        )

    def _sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.data[rng.integers(self.data.shape[0], size=n)]

    def _log_prob(self, x: np.ndarray) -> np.ndarray:
        # evaluate() is ~3x faster than logpdf(); logpdf only where the density underflows to 0.
        dens = self._kde.evaluate(x.T)
        out = np.log(dens)
        tiny = dens <= 0
        if tiny.any():
            out[tiny] = self._kde.logpdf(x[tiny].T)
        return out

    def _key(self) -> tuple[Any, ...]:
        return (*super()._key(), self.data.shape, hash(self.data.tobytes()))


class ImageTarget(Target):
    """A grayscale picture as a piecewise-constant 2D density.

    Each pixel is a rectangle of the ``extent``; row 0 is the TOP of the picture (largest y). With
    ``invert=False`` bright pixels are likely (density proportional to intensity); with ``invert=True`` dark
    pixels are likely (density proportional to 1 - intensity), for dark strokes on white paper.

    Arguments:
        image: intensities, shape (H, W), floats in [0, 1] or uint8 (0..255).
        extent: ``(xmin, xmax, ymin, ymax)`` of the picture, as in matplotlib's ``imshow``.
        invert: use 1 - intensity as the weight.

    Example:
        >>> img = np.zeros((4, 4)); img[0, 0] = 1.0  # top-left pixel only
        >>> x = ImageTarget(img).sample(100, seed=0)
        >>> bool(np.all((x[:, 0] < -2) & (x[:, 1] > 2)))
        True
    """

    def __init__(
        self, image: np.ndarray, extent: Sequence[float] = (-4.0, 4.0, -4.0, 4.0), invert: bool = False
    ) -> None:
        arr = np.asarray(image)
        if arr.ndim != 2 or min(arr.shape) < 1:
            raise ConfigError(f"image must be a 2D grayscale array of shape (H, W) (got shape {arr.shape})")
        if arr.dtype == np.uint8:
            img = arr.astype(np.float64) / 255.0
        else:
            try:
                img = arr.astype(np.float64)
            except (TypeError, ValueError):
                raise ConfigError(f"image must be numeric (got dtype {arr.dtype})") from None
            if not np.all(np.isfinite(img)) or img.min() < 0 or img.max() > 1:
                raise ConfigError("image values must be finite and in [0, 1] (or a uint8 array)")
        ext = _split_floats(list(extent) if not isinstance(extent, str) else extent, "extent")
        if len(ext) != 4:
            raise ConfigError(f"extent must be 4 numbers (xmin, xmax, ymin, ymax) (got {extent!r})")
        xmin, xmax, ymin, ymax = (check_range(v, f"extent[{i}]") for i, v in enumerate(ext))
        if not (xmin < xmax and ymin < ymax):
            raise ConfigError(f"extent must have xmin < xmax and ymin < ymax (got {[xmin, xmax, ymin, ymax]})")
        weights = 1.0 - img if invert else img
        total = weights.sum()
        if not total > 0:
            which = "white (1.0)" if invert else "black (0)"
            raise ConfigError(f"image is all {which}: it has no mass to learn (try invert={not invert})")
        h, w = img.shape
        self._dx, self._dy = (xmax - xmin) / w, (ymax - ymin) / h
        self._extent = (xmin, xmax, ymin, ymax)
        self._prob = (weights / total).ravel()
        with np.errstate(divide="ignore"):
            self._log_density = np.log(weights / (total * self._dx * self._dy))
        img.setflags(write=False)
        self.image = img
        params = {
            "height": int(h),
            "width": int(w),
            "extent": [xmin, xmax, ymin, ymax],
            "invert": bool(invert),
        }
        label = f"image {w}x{h}" + (" (inverted)" if invert else "")
        super().__init__(
            name="image",
            dim=2,
            params=params,
            density_kind="exact",
            bounds=[[xmin, xmax], [ymin, ymax]],
            label=label,
        )

    def _sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        h, w = self.image.shape
        xmin, _, _, ymax = self._extent
        row, col = np.divmod(rng.choice(h * w, size=n, p=self._prob), w)
        u = rng.random((n, 2))
        return np.stack([xmin + (col + u[:, 0]) * self._dx, ymax - (row + u[:, 1]) * self._dy], axis=1)

    def _log_prob(self, x: np.ndarray) -> np.ndarray:
        h, w = self.image.shape
        xmin, xmax, ymin, ymax = self._extent
        col = np.floor((x[:, 0] - xmin) / self._dx).astype(np.int64)
        row = np.floor((ymax - x[:, 1]) / self._dy).astype(np.int64)
        # The far edges belong to the last column / bottom row, so the closed extent is all inside.
        col = np.where(x[:, 0] == xmax, w - 1, col)
        row = np.where(x[:, 1] == ymin, h - 1, row)
        inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
        out = np.full(x.shape[0], -np.inf)
        out[inside] = self._log_density[row[inside], col[inside]]
        return out

    def _key(self) -> tuple[Any, ...]:
        return (*super()._key(), self.image.shape, hash(self.image.tobytes()))


# --------------------------------------------------------------------------------------------------
# Loading data
# --------------------------------------------------------------------------------------------------


def _read_bytes(data: str | bytes | os.PathLike | IO, max_bytes: int, what: str) -> bytes | str:
    """Read raw content from a path, bytes, text or a file object, refusing more than ``max_bytes``."""
    too_big = ConfigError(f"{what} is larger than the limit of {max_bytes:,} bytes ({max_bytes / 1e6:.3g} MB)")
    if isinstance(data, (bytes, bytearray, memoryview)):
        raw: bytes | str = bytes(data)
    elif isinstance(data, str) and not os.path.isfile(data):
        if "\n" not in data and data.strip().lower().endswith((".csv", ".txt", ".tsv", ".dat")):
            raise ConfigError(f"{what} file not found: {data!r}")
        raw = data
    elif isinstance(data, (str, os.PathLike)):
        path = os.fspath(data)
        try:
            if os.path.getsize(path) > max_bytes:
                raise too_big
            with open(path, "rb") as f:
                raw = f.read()
        except OSError as err:
            raise ConfigError(f"cannot read {what} file {path!r}: {err.strerror or err}") from None
    elif hasattr(data, "read"):
        raw = data.read(max_bytes + 1)
    else:
        raise ConfigError(f"{what}: expected text, bytes, a path or a file object (got {type(data).__name__})")
    size = len(raw.encode("utf-8")) if isinstance(raw, str) else len(raw)
    if size > max_bytes:
        raise too_big
    return raw


def _parse_number(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def _not_a_number(lineno: int, col: int, cell: str) -> ConfigError:
    """The error for a cell that is no number, with a hint for the usual causes (decimal commas, odd
    separators, prose)."""
    shown = cell if len(cell) <= 40 else cell[:40] + "…"
    if re.fullmatch(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d*)?", cell):
        digits = cell.replace(",", "")
        hint = f"thousands separators are not understood: write {digits}"
        if cell.count(",") == 1 and "." not in cell:
            hint += f", or {cell.replace(',', '.')} if the comma is a decimal point"
    elif re.fullmatch(r"[-+]?\d+,\d+", cell):
        hint = f"decimal commas are not understood: write {cell.replace(',', '.')}"
    elif re.fullmatch(rf"{_NUMBER}\s*[^\w\s.+-]\s*{_NUMBER}", cell):
        hint = "separate the columns with a comma, a semicolon, a tab or spaces"
    else:
        hint = "every cell after an optional header row must be a number such as 1.5, -2 or 3e-4"
    return ConfigError(f"CSV line {lineno}, column {col}: {shown!r} is not a number; {hint}")


def samples_from_csv(
    data: str | bytes | os.PathLike | IO, *, max_rows: int = 100_000, max_bytes: int = 5_000_000
) -> np.ndarray:
    """Parse 1 or 2 numeric columns of samples from CSV-like text.

    The separator is ``;``, ``,``, a tab or whitespace (taken from the first line). A first row with no
    numeric cell is a header and is skipped; blank lines and lines starting with ``#`` are ignored.

    Arguments:
        data: CSV text, bytes, a file object (e.g. an upload), or a path (a ``str`` is a path only when it is
            an existing file).
        max_rows: the most data rows accepted.
        max_bytes: the largest input accepted.

    Returns:
        samples, shape (n, d) with d in {1, 2}, float64, 10 <= n <= max_rows.

    Raises:
        ConfigError: empty input, more than 2 columns, a non-numeric or non-finite cell (with its line and
            column), ragged rows, fewer than 10 rows, or input over the row/byte limits.

    Example:
        >>> samples_from_csv("x,y\\n" + "\\n".join(f"{i},{2 * i}" for i in range(10))).shape
        (10, 2)
    """
    max_rows = check_int_range(_plain_int(max_rows), "max_rows", lo=_MIN_SAMPLES)
    max_bytes = check_int_range(_plain_int(max_bytes), "max_bytes", lo=1)
    raw = _read_bytes(data, max_bytes, "CSV")
    try:
        text = raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw.lstrip("\ufeff")
    except UnicodeDecodeError:
        raise ConfigError("CSV is not UTF-8 text: expected a text file with 1 or 2 columns of numbers") from None
    lines = [(i + 1, ln.strip()) for i, ln in enumerate(text.splitlines())]
    lines = [(i, ln) for i, ln in lines if ln and not ln.startswith("#")]
    if not lines:
        raise ConfigError("CSV is empty: expected 1 or 2 numeric columns of samples")
    first = lines[0][1]
    sep = next((s for s in (";", ",", "\t") if s in first), None)

    def cells(line: str) -> list[str]:
        # csv's reader keeps a quoted "1,234" one cell, where a split would make two columns of it.
        parts = next(csv.reader([line], delimiter=sep, skipinitialspace=True)) if sep else line.split()
        return [p.strip().strip("\"'").strip() for p in parts]

    if all(_parse_number(c) is None for c in cells(first)):
        lines = lines[1:]
    if not lines:
        raise ConfigError(f"CSV needs at least {_MIN_SAMPLES} data rows (got 0: only a header)")
    # The first data row sets the columns; its cells are checked first, so prose says "not a number"
    # rather than counting its words as columns.
    first_no, first_row = lines[0][0], cells(lines[0][1])
    for c, cell in enumerate(first_row):
        if _parse_number(cell) is None:
            raise _not_a_number(first_no, c + 1, cell)
    ncol = len(first_row)
    if ncol > 2:
        raise ConfigError(f"CSV has {ncol} columns; expected 1 or 2 numeric columns (x, or x and y)")
    if len(lines) > max_rows:
        raise ConfigError(f"CSV has {len(lines):,} data rows; the limit is {max_rows:,}")
    if len(lines) < _MIN_SAMPLES:
        raise ConfigError(f"CSV needs at least {_MIN_SAMPLES} data rows (got {len(lines)})")
    out = np.empty((len(lines), ncol))
    for r, (lineno, line) in enumerate(lines):
        row = cells(line)
        if len(row) != ncol:
            raise ConfigError(
                f"CSV line {lineno} has {len(row)} column{'s' if len(row) != 1 else ''}; every row needs the "
                f"{ncol} column{'s' if ncol != 1 else ''} of the first data row (line {first_no})"
            )
        for c, cell in enumerate(row):
            v = _parse_number(cell)
            if v is None:
                raise _not_a_number(lineno, c + 1, cell)
            if not math.isfinite(v):
                raise ConfigError(
                    f"CSV line {lineno}, column {c + 1}: {cell!r} is not finite; "
                    "samples must be finite numbers (no NaN or inf)"
                )
            out[r, c] = v
    return out


IMAGE_FORMATS = "PNG, JPEG, GIF, BMP or WebP"
_PILLOW_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")
"""The only decoders a picture may reach, picked by the file's content (its magic bytes), never by its name:
Pillow's other plugins include PostScript, which hands the file to Ghostscript."""
MAX_IMAGE_PIXELS = 25_000_000
"""The largest picture :func:`image_from_file` decodes (5,000 × 5,000): it is shrunk to 256 × 256 anyway,
and a small file can claim a huge size (a "decompression bomb")."""


def image_from_file(
    data: bytes | os.PathLike | IO, *, max_pixels: int = 256 * 256, max_source_pixels: int = MAX_IMAGE_PIXELS
) -> np.ndarray:
    """Load a picture as grayscale intensities, shrunk to at most ``max_pixels`` pixels.

    Transparent areas count as white paper (the picture is composited over white before conversion).

    Arguments:
        data: file bytes, a path, or a file object (e.g. an upload).
        max_pixels: larger pictures are downsampled (aspect ratio kept) to at most this many pixels.
        max_source_pixels: refuse pictures with more pixels than this, before decoding them.

    Returns:
        intensities, shape (H, W), float64 in [0, 1] (0 black, 1 white), H * W <= max_pixels.

    Raises:
        ConfigError: if the data is empty, not a readable image, or too large.
    """
    from PIL import Image, UnidentifiedImageError  # imported here so that loading cnfviz.targets stays light

    max_pixels = check_int_range(_plain_int(max_pixels), "max_pixels", lo=1)
    max_source_pixels = check_int_range(_plain_int(max_source_pixels), "max_source_pixels", lo=1)
    src = io.BytesIO(bytes(data)) if isinstance(data, (bytes, bytearray, memoryview)) else data
    if isinstance(src, io.BytesIO) and not src.getbuffer().nbytes:
        raise ConfigError(f"the picture file is empty (0 bytes); expected a {IMAGE_FORMATS} picture")
    side = math.isqrt(max_source_pixels)
    too_big = f"the limit is {max_source_pixels:,} pixels (about {side:,} × {side:,}); shrink the picture first"
    try:
        with warnings.catch_warnings():
            # Pillow only warns below twice its own limit; ours is lower and checked just below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(src, formats=_PILLOW_FORMATS)
        with im:
            if im.format not in (*_PILLOW_FORMATS, "MPO"):  # MPO: the JPEG plugin's multi-picture JPEG
                raise UnidentifiedImageError(im.format)
            w, h = im.size
            if w * h == 0:
                raise ConfigError(f"the picture has no pixels ({w} × {h})")
            if w * h > max_source_pixels:
                raise ConfigError(f"the picture is {w:,} × {h:,} pixels; {too_big}")
            im.load()
            scale = 255.0
            if im.mode.startswith("I;16") or im.mode == "I":
                # 16-bit grayscale (PNG): Pillow's conversion to 8 bits would clip everything above 255 to white.
                levels = np.asarray(im, dtype=np.float64) / 65535.0
                gray = Image.fromarray(np.clip(levels, 0.0, 1.0).astype(np.float32), mode="F")
                scale = 1.0
            elif im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                gray = Image.alpha_composite(bg, rgba).convert("L")
            else:
                gray = im.convert("L")
    except UnidentifiedImageError:
        raise ConfigError(
            f"not a readable image: the file is not a {IMAGE_FORMATS} picture (or its header is damaged)"
        ) from None
    except Image.DecompressionBombError as err:
        count = re.search(r"\((\d+) pixels\)", str(err))
        size = f"has {int(count.group(1)):,} pixels" if count else "is far too large"
        raise ConfigError(f"the picture {size}; {too_big}") from None
    except (OSError, ValueError, SyntaxError, EOFError) as err:
        detail = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        raise ConfigError(f"not a readable image: the file is damaged or cut short ({detail})") from None
    w, h = gray.size
    if w * h > max_pixels:
        s = math.sqrt(max_pixels / (w * h))
        size = (max(1, int(w * s)), max(1, int(h * s)))
        gray.thumbnail(size, Image.Resampling.LANCZOS)
    return np.clip(np.asarray(gray, dtype=np.float64) / scale, 0.0, 1.0)
