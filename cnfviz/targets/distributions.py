"""Any continuous ``scipy.stats`` distribution as a 1D target (``scipy:<name>``)."""

from __future__ import annotations

import difflib
import functools
import math
import warnings
from typing import Any

import numpy as np
import scipy.special
import scipy.stats

from .._validation import ConfigError
from .base import Param, Target, _fmt

__all__ = ["SCIPY_PREFIX", "SLOW_SCIPY", "scipy_distributions", "scipy_examples", "scipy_params"]

SCIPY_PREFIX = "scipy:"
SLOW_SCIPY: frozenset[str] = frozenset(
    {"levy_stable", "studentized_range", "gausshyper", "ksone", "kstwo", "rel_breitwigner"}
)
"""scipy.stats distributions that take seconds to minutes to build or sample (numerical integration in scipy;
measured by ``benchmarks/bench_abuse.py``): the picker leaves them out, and a shared server refuses them
wherever they come from (a link, an uploaded config), since a scipy call cannot be interrupted."""


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
# rows of scipy 1.x's ``distcont``, to 3 significant digits; tests/targets/test_targets.py keeps them in step).
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
