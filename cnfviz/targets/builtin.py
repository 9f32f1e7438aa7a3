"""The named targets: 1D normals and mixtures, FFJORD's 2D toy sets, and the 2D Gaussian."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.special
import scipy.stats
from scipy.ndimage import gaussian_filter, map_coordinates

from .._validation import ConfigError
from .base import Target, _fmt

__all__ = []

# The plotting window of every FFJORD toy set: the original plots use [-4, 4]^2, and the widest sets
# (pinwheel, circles, 8gaussians) leave ~1e-4 of their mass beyond 4, so a half-unit margin covers it.
_TOY_BOUNDS = np.array([[-4.5, 4.5], [-4.5, 4.5]])

# Estimated densities: enough samples that a 256^2 histogram is smooth after a one-bin blur, with a fixed
# seed so every process builds the same picture.
_ESTIMATE_SAMPLES = 1_000_000
_ESTIMATE_BINS = 256
_ESTIMATE_SEED = 0


MIN_RELATIVE_SD = 1e-5
"""The narrowest component, relative to how far it sits from 0: the trainer works in float32, whose steps
near x are x × 1.2e-7, so a narrower bump is under a hundred float32 values wide and trains to nonsense."""
MAX_REACH = 1e15
"""How far from 0 a density may reach (mean ± 4 sd): beyond, float32 squares of the positions overflow."""


def _check_resolvable(name: str, mu: np.ndarray, sd: np.ndarray) -> None:
    """Refuse a mixture that float32 cannot draw, naming the parameter that makes it so (not its bounds)."""
    field = f"{name}.scale" if name == "normal" else f"{name}.sds"
    where = f"{name}.loc" if name == "normal" else f"{name}.means"
    reach = np.abs(mu) + 4 * sd
    if np.any(reach > MAX_REACH):
        i = int(np.argmax(reach))
        raise ConfigError(
            f"{field} {sd[i]:g} with {where} {mu[i]:g} reaches {reach[i]:.3g} from 0; the trainer works in float32, "
            f"where its squares overflow. Use values with |mean| + 4 × sd ≤ {MAX_REACH:g} (rescale your units)",
            field=field,
            allowed=f"|mean| + 4 sd ≤ {MAX_REACH:g}",
        )
    narrow = sd < MIN_RELATIVE_SD * np.maximum(np.abs(mu), 1.0)
    if np.any(narrow):
        i = int(np.argmax(narrow))
        least = MIN_RELATIVE_SD * max(abs(float(mu[i])), 1.0)
        raise ConfigError(
            f"{field} {sd[i]:g} is too narrow for float32 (the trainer's precision) at {where} {mu[i]:g}: the bump "
            f"would be under a hundred representable numbers wide. Use {field} ≥ {least:.3g}, or a mean nearer 0",
            field=field,
            allowed=f"≥ {least:.3g}",
        )


class _Mixture1D(Target):
    """A 1D Gaussian mixture; ``normal`` is the one-component case."""

    def __init__(
        self, name: str, params: dict[str, Any], weights: list[float], means: list[float], sds: list[float]
    ) -> None:
        self._w = np.asarray(weights, dtype=np.float64)
        self._mu = np.asarray(means, dtype=np.float64)
        self._sd = np.asarray(sds, dtype=np.float64)
        _check_resolvable(name, self._mu, self._sd)
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
