"""The registry of named targets: their specs, and :func:`make_target` that builds any target by name."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .._validation import ConfigError, check_choice, lookup
from .base import Param, Target, _validate_params
from .builtin import _TOY_EXACT, _Gaussian2D, _make_mixture, _make_normal, _ToyTarget
from .distributions import SCIPY_PREFIX, _ScipyTarget, scipy_params

__all__ = ["TARGETS", "TargetSpec", "make_target", "target_names", "target_spec"]


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
