"""Tests for cnfviz.targets: sampling, exact and estimated densities, scipy targets, data loaders, errors."""

from __future__ import annotations

import io
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
from PIL import Image

from cnfviz import targets as T
from cnfviz._validation import ConfigError
from cnfviz.targets import (
    TARGETS,
    ImageTarget,
    Param,
    SamplesTarget,
    Target,
    builtin,
    distributions,
    image_from_file,
    make_target,
    samples_from_csv,
    scipy_distributions,
    scipy_params,
    target_names,
)

TOYS = ["8gaussians", "pinwheel", "swissroll", "circles", "moons", "2spirals", "checkerboard", "rings"]


def _square_image() -> np.ndarray:
    """16x16 black picture with a bright 4x4 square: columns 10..13, rows 4..7 -> x in [1, 3], y in [0, 2]."""
    img = np.zeros((16, 16))
    img[4:8, 10:14] = 1.0
    return img


def _samples_2d() -> np.ndarray:
    rng = np.random.default_rng(42)
    return rng.normal([1.0, -1.0], [1.0, 0.5], size=(300, 2))


def _build(key: str) -> Target:
    """Every kind of target the tests cover, by a short key."""
    if key == "scipy:gamma":
        return make_target("scipy:gamma", a=2)
    if key == "samples1d":
        return SamplesTarget(np.random.default_rng(7).normal(2.0, 1.5, size=500))
    if key == "samples2d":
        return SamplesTarget(_samples_2d())
    if key == "image":
        img = _square_image()
        img[12, 2] = 0.5  # a second, dimmer blob so sampling has to weigh pixels
        return ImageTarget(img)
    return make_target(key)


ALL_KEYS = [*TARGETS, "scipy:gamma", "samples1d", "samples2d", "image"]


@pytest.fixture(scope="module", params=ALL_KEYS)
def target(request: pytest.FixtureRequest) -> Target:
    return _build(request.param)


def _grid_pdf(t: Target, resolution: int) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    axes = t.grid(resolution)
    if t.dim == 1:
        return axes, t.pdf(axes[0][:, None])
    xx, yy = np.meshgrid(*axes, indexing="ij")
    return axes, t.pdf(np.stack([xx.ravel(), yy.ravel()], axis=1)).reshape(xx.shape)


def _integral(t: Target, resolution: int) -> float:
    axes, p = _grid_pdf(t, resolution)
    if t.dim == 1:
        return float(np.trapezoid(p, axes[0]))
    return float(np.trapezoid(np.trapezoid(p, axes[1], axis=1), axes[0]))


# --------------------------------------------------------------------------------------------------
# Properties every target has
# --------------------------------------------------------------------------------------------------


def test_registry_contents() -> None:
    assert target_names(1) == ["normal", "mixture"]
    assert set(target_names(2)) == {*TOYS, "gaussian2d"}
    assert target_names() == list(TARGETS)
    for name, spec in TARGETS.items():
        t = make_target(name)
        assert spec.name == t.name == name
        assert spec.dim == t.dim
        assert spec.density_kind == t.density_kind
        assert spec.description and "\n" not in spec.description
        assert {p.name for p in spec.params} == set(t.params)
    estimates = {n for n, s in TARGETS.items() if s.density_kind == "estimate"}
    assert estimates == {"pinwheel", "swissroll", "circles", "moons", "2spirals", "rings"}


def test_sample_shape_dtype_reproducible(target: Target) -> None:
    x = target.sample(2000, seed=3)
    assert x.shape == (2000, target.dim)
    assert x.dtype == np.float64
    assert np.all(np.isfinite(x))
    np.testing.assert_array_equal(x, target.sample(2000, seed=3))
    assert not np.array_equal(x, target.sample(2000, seed=4))
    assert target.sample(0, seed=0).shape == (0, target.dim)
    assert target.sample(1, seed=0).shape == (1, target.dim)


def test_samples_inside_bounds(target: Target) -> None:
    assert target.bounds.shape == (target.dim, 2)
    assert np.all(target.bounds[:, 0] < target.bounds[:, 1])
    x = target.sample(20_000, seed=0)
    inside = np.all((x >= target.bounds[:, 0]) & (x <= target.bounds[:, 1]), axis=1)
    assert inside.mean() > 0.99


def test_density_integrates_to_one(target: Target) -> None:
    resolution = 4000 if target.dim == 1 else 300
    tol = 1e-2 if target.dim == 1 else 2e-2
    assert _integral(target, resolution) == pytest.approx(1.0, abs=tol)


def test_log_prob_shape_and_no_nan(target: Target) -> None:
    x = np.concatenate([target.sample(50, seed=1), np.full((3, target.dim), np.nan), np.full((2, target.dim), 1e6)])
    lp = target.log_prob(x)
    assert lp.shape == (55,) and lp.dtype == np.float64
    assert not np.any(np.isnan(lp))
    assert np.all(np.isfinite(lp[:50]))  # samples lie where the density is positive
    assert np.all(lp[50:53] == -np.inf)
    np.testing.assert_allclose(target.pdf(x), np.exp(lp))
    with pytest.raises(ValueError, match="shape"):
        target.log_prob(np.zeros((4, 3)))


def test_grid_axes(target: Target) -> None:
    axes = target.grid(17)
    assert len(axes) == target.dim
    for ax, (lo, hi) in zip(axes, target.bounds, strict=True):
        assert ax.shape == (17,)
        assert ax[0] == lo and ax[-1] == hi
        np.testing.assert_allclose(np.diff(ax), (hi - lo) / 16)
    with pytest.raises(ConfigError, match="resolution"):
        target.grid(1)


def test_params_json_and_label(target: Target) -> None:
    import json

    assert json.loads(json.dumps(target.params)) == target.params
    assert isinstance(target.label, str) and target.label
    assert target.density_kind in ("exact", "estimate")


# --------------------------------------------------------------------------------------------------
# Analytic values
# --------------------------------------------------------------------------------------------------


def test_normal_matches_scipy() -> None:
    t = make_target("normal")
    assert t.params == {"loc": 6.0, "scale": 0.7}
    assert t.label == "Normal(6, 0.7)"
    x = np.linspace(2, 10, 50)[:, None]
    np.testing.assert_allclose(t.log_prob(x), scipy.stats.norm(6.0, 0.7).logpdf(x[:, 0]), rtol=1e-12)
    np.testing.assert_allclose(t.log_prob(x[:, 0]), t.log_prob(x))  # flat input accepted in 1D


def test_mixture_matches_hand_computation() -> None:
    t = make_target("mixture", weights=[1, 3], means=[-1, 2], sds=[0.5, 2.0])
    assert t.params["weights"] == [0.25, 0.75]
    x = np.array([-1.0, 0.0, 2.0, 5.0])

    def npdf(v: np.ndarray, m: float, s: float) -> np.ndarray:
        return np.exp(-0.5 * ((v - m) / s) ** 2) / (s * math.sqrt(2 * math.pi))

    expected = np.log(0.25 * npdf(x, -1, 0.5) + 0.75 * npdf(x, 2, 2.0))
    np.testing.assert_allclose(t.log_prob(x[:, None]), expected, rtol=1e-12)


def test_gaussian2d_matches_scipy() -> None:
    t = make_target("gaussian2d", mean=[1, -2], cov=[2.0, 0.6, 0.6, 0.5])
    mvn = scipy.stats.multivariate_normal([1, -2], [[2.0, 0.6], [0.6, 0.5]])
    x = np.random.default_rng(0).normal(size=(100, 2)) * 2
    np.testing.assert_allclose(t.log_prob(x), mvn.logpdf(x), rtol=1e-10)
    s = t.sample(100_000, seed=0)
    np.testing.assert_allclose(s.mean(axis=0), [1, -2], atol=0.02)
    np.testing.assert_allclose(np.cov(s.T), [[2.0, 0.6], [0.6, 0.5]], atol=0.03)


def test_8gaussians_entropy_and_geometry() -> None:
    t = make_target("8gaussians")
    x = t.sample(200_000, seed=0)
    assert -t.log_prob(x).mean() == pytest.approx(2.84, abs=0.02)
    # Centres sit on a circle of radius 4/1.414 with sd 0.5/1.414, one eighth of the points each.
    angle = np.round(np.arctan2(x[:, 1], x[:, 0]) / (np.pi / 4)) % 8
    np.testing.assert_allclose(np.bincount(angle.astype(int), minlength=8) / len(x), 1 / 8, atol=0.005)
    assert np.median(np.linalg.norm(x, axis=1)) == pytest.approx(4 / 1.414, abs=0.05)


def test_checkerboard_density() -> None:
    t = make_target("checkerboard")
    black = np.array([[-3.0, 1.0], [-3.0, -3.0], [-1.0, 3.0], [1.0, 1.0], [3.0, 3.0], [3.9, -0.1]])
    white = np.array([[-3.0, -1.0], [-1.0, 1.0], [1.0, 3.0], [3.0, 1.0], [-3.0, 3.0]])
    outside = np.array([[4.2, 1.0], [0.0, -4.3]])
    np.testing.assert_allclose(t.pdf(black), 1 / 32)
    assert np.all(t.log_prob(white) == -np.inf)
    assert np.all(t.log_prob(outside) == -np.inf)
    assert np.all(np.isfinite(t.log_prob(t.sample(10_000, seed=0))))


def test_toy_generators_follow_ffjord_scaling() -> None:
    r = np.linalg.norm(make_target("circles").sample(40_000, seed=0), axis=1)
    assert np.median(r[r > 2.25]) == pytest.approx(3.0, abs=0.05)
    assert np.median(r[r < 2.25]) == pytest.approx(1.5, abs=0.05)
    r = np.linalg.norm(make_target("rings").sample(40_000, seed=0), axis=1)
    for radius in (3.0, 2.25, 1.5, 0.75):
        assert np.mean(np.abs(r - radius) < 0.3) == pytest.approx(0.25, abs=0.01)
    # Moons: the arcs' means are (0, 2/pi) and (1, 0.5 - 2/pi); 2x + (-1, -0.2) maps the average to (0, 0.3).
    np.testing.assert_allclose(make_target("moons").sample(100_000, seed=0).mean(axis=0), [0.0, 0.3], atol=0.01)
    spirals = make_target("2spirals").sample(100_000, seed=0)
    np.testing.assert_allclose(spirals.mean(axis=0), 0.0, atol=0.02)  # two mirror-image arms
    assert np.abs(spirals).max() < 4.0
    roll = make_target("swissroll").sample(100_000, seed=0)
    assert np.linalg.norm(roll, axis=1).max() < 4.5
    assert np.median(np.linalg.norm(roll, axis=1)) == pytest.approx(1.95, abs=0.1)  # |t|/5 for t ~ 1.5pi(1+2U)
    arms = make_target("pinwheel").sample(100_000, seed=0)
    assert np.median(np.linalg.norm(arms, axis=1)) == pytest.approx(2.0, abs=0.05)  # 2 * (1 + 0.3 N) radially


def test_estimates_are_lazy_and_cached() -> None:
    # Building a target builds no histogram; its first density does, and later targets reuse it.
    builtin._toy_histogram.cache_clear()
    t = make_target("pinwheel")
    assert builtin._toy_histogram.cache_info().currsize == 0
    t.log_prob(np.zeros((1, 2)))
    assert builtin._toy_histogram.cache_info().currsize == 1
    make_target("pinwheel").log_prob(np.zeros((1, 2)))
    assert builtin._toy_histogram.cache_info().hits >= 1


# --------------------------------------------------------------------------------------------------
# Samples agree with densities
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "cdf"),
    [
        ("normal", scipy.stats.norm(6.0, 0.7).cdf),
        ("mixture", lambda x: 0.5 * scipy.stats.norm.cdf(x, -2, 0.5) + 0.5 * scipy.stats.norm.cdf(x, 2, 0.5)),
        ("scipy:gamma", scipy.stats.gamma(2).cdf),
    ],
)
def test_1d_samples_match_cdf(key: str, cdf: object) -> None:
    x = _build(key).sample(5000, seed=0)[:, 0]
    assert scipy.stats.kstest(x, cdf).pvalue > 1e-3


@pytest.mark.parametrize("key", [*target_names(2), "image"])
def test_2d_samples_match_density(key: str) -> None:
    """Total variation between a 10x10 histogram of samples and the density's mass per bin.

    SamplesTarget is left out on purpose: it resamples its points, while its density is a smoother KDE.
    """
    t = _build(key)
    bins, sub = 10, 30
    (xlo, xhi), (ylo, yhi) = t.bounds
    # Midpoints of a sub x sub grid inside each bin give the bin's mass.
    fx = xlo + (np.arange(bins * sub) + 0.5) * (xhi - xlo) / (bins * sub)
    fy = ylo + (np.arange(bins * sub) + 0.5) * (yhi - ylo) / (bins * sub)
    xx, yy = np.meshgrid(fx, fy, indexing="ij")
    p = t.pdf(np.stack([xx.ravel(), yy.ravel()], axis=1)).reshape(bins, sub, bins, sub)
    mass = p.sum(axis=(1, 3)) * ((xhi - xlo) * (yhi - ylo) / (bins * sub) ** 2)
    x = t.sample(100_000, seed=1)
    hist, _, _ = np.histogram2d(x[:, 0], x[:, 1], bins=bins, range=t.bounds)
    tv = 0.5 * np.abs(hist / len(x) - mass / mass.sum()).sum()
    assert tv < 0.02


# --------------------------------------------------------------------------------------------------
# scipy family
# --------------------------------------------------------------------------------------------------


def test_scipy_gamma() -> None:
    t = make_target("scipy:gamma", a=2)
    assert t.name == "scipy:gamma" and t.dim == 1 and t.density_kind == "exact"
    assert t.params == {"a": 2.0, "loc": 0.0, "scale": 1.0}
    assert "gamma" in t.label and "a=2" in t.label
    x = np.array([[0.5], [1.0], [3.0], [-1.0]])
    np.testing.assert_allclose(t.log_prob(x)[:3], scipy.stats.gamma(2).logpdf(x[:3, 0]))
    assert t.log_prob(x)[3] == -np.inf  # outside the support
    lo, hi = scipy.stats.gamma(2).ppf([0.001, 0.999])
    np.testing.assert_allclose(t.bounds[0], [lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo)])


def test_scipy_norm_loc_scale_and_strings() -> None:
    t = make_target("scipy:norm", loc="3", scale="0.5")
    assert t.params == {"loc": 3.0, "scale": 0.5}
    x = np.linspace(1, 5, 9)[:, None]
    np.testing.assert_allclose(t.log_prob(x), scipy.stats.norm(3, 0.5).logpdf(x[:, 0]))
    assert make_target("scipy:gamma", {"a": "2.5"}).params["a"] == 2.5


def test_scipy_heavy_tails_get_a_usable_range() -> None:
    (lo, hi) = make_target("scipy:cauchy").bounds[0]
    assert -60 < lo < -30 and 30 < hi < 60  # from the 1%..99% quantiles (+-31.8), not +-318


def test_scipy_params_and_names() -> None:
    params = scipy_params("beta")
    assert [p.name for p in params] == ["a", "b", "loc", "scale"]
    assert params[0].required and not params[2].required
    assert params[3].min == 0 and params[3].min_open
    names = scipy_distributions()
    assert {"norm", "gamma", "beta", "cauchy", "t"} <= set(names) and "poisson" not in names
    assert all(isinstance(getattr(scipy.stats, n), scipy.stats.rv_continuous) for n in names)


# scipy's example shape values: a private table, read in one guarded place (targets.distributions._scipy_examples)


def test_scipys_private_example_table_is_still_where_and_what_cnfviz_reads() -> None:
    # Imported directly, so that a scipy that moves or reshapes it fails here, loudly, rather than only
    # dropping the examples to the fallback table.
    from scipy.stats._distr_params import distcont

    assert len(distcont) > 80
    assert all(isinstance(name, str) and isinstance(args, (list, tuple)) for name, args in distcont)
    first: dict[str, tuple] = {}
    for name, args in distcont:
        first.setdefault(name, tuple(args))
    assert {n: T.scipy_examples(n) for n in first} == first, "the first row of each name, as scipy lists it"
    # Rows that repeat a name disagree (truncnorm: (-1.10, 2.73) then (0.1, 2.0)): the first one is used.
    assert T.scipy_examples("truncnorm") == pytest.approx((-1.0978730080013919, 2.730675410903198))
    assert T.scipy_examples("norm") == () and T.scipy_examples("not_a_distribution") == ()


def test_scipy_example_fallback_matches_scipy_and_is_used_without_the_private_table(monkeypatch) -> None:
    from scipy.stats._distr_params import distcont

    first: dict[str, tuple] = {}
    for name, args in distcont:
        first.setdefault(name, tuple(args))
    for name, values in distributions._SCIPY_EXAMPLES_FALLBACK.items():
        dist = getattr(scipy.stats, name)
        assert len(values) == dist.numargs, name
        assert values == pytest.approx(first[name], rel=5e-3), name
        assert np.isfinite(dist(*values).logpdf(dist(*values).median())), name
        make_target(f"scipy:{name}", **dict(zip(dist.shapes.replace(" ", "").split(","), values, strict=True)))
    # No private table (a module set to None makes its import raise ImportError): the fallback answers.
    monkeypatch.setitem(sys.modules, "scipy.stats._distr_params", None)
    distributions._scipy_examples.cache_clear()
    try:
        assert distributions._scipy_examples() == distributions._SCIPY_EXAMPLES_FALLBACK
        assert T.scipy_examples("gamma") == (1.99,) and T.scipy_examples("kappa4") == ()
        assert "e.g. 1.99" in scipy_params("gamma")[0].help
    finally:
        distributions._scipy_examples.cache_clear()


@pytest.mark.parametrize("name", ["gamma", "beta", "truncnorm", "powerlaw", "gengamma", "kappa4", "pearson3", "f"])
def test_the_sidebars_starting_shape_values_are_the_librarys_examples(name) -> None:
    from cnfviz.ui.sidebar import _default_param_texts

    texts = _default_param_texts(f"scipy:{name}")
    shapes = [p.name for p in scipy_params(name) if p.required]
    examples = T.scipy_examples(name)
    assert len(examples) == len(shapes) > 0
    for shape, value in zip(shapes, examples, strict=True):
        assert float(texts[shape]) == float(f"{value:.4g}"), (name, shape, texts[shape], value)
    for shape, value in zip(shapes, examples, strict=True):  # and the parameter help quotes the same value
        assert f"e.g. {value:.3g})" in next(p.help for p in scipy_params(name) if p.name == shape)
    assert texts["loc"] == "0.0" and texts["scale"] == "1.0"


def test_scipy_errors() -> None:
    with pytest.raises(ConfigError, match=r"missing.*\['a'\]"):
        make_target("scipy:gamma")
    with pytest.raises(ConfigError, match=r"discrete.*continuous scipy\.stats"):
        make_target("scipy:poisson", mu=2)
    with pytest.raises(ConfigError, match=r"notadist.*scipy:norm.*scipy_distributions"):
        make_target("scipy:notadist")
    with pytest.raises(ConfigError, match=r"Did you mean.*gamma"):
        scipy_params("gama")
    with pytest.raises(ConfigError, match=r"scale.*\(0\.0, inf\)"):
        make_target("scipy:norm", scale=-1)
    with pytest.raises(ConfigError, match="a=-1"):
        make_target("scipy:gamma", a=-1)
    with pytest.raises(ConfigError, match=r"a=0.*b=2"):
        make_target("scipy:beta", a=0, b=2)
    with pytest.raises(ConfigError, match=r"unknown parameter.*\['shape'\].*\['a', 'loc', 'scale'\]"):
        make_target("scipy:gamma", a=2, shape=1)


# --------------------------------------------------------------------------------------------------
# Validation errors
# --------------------------------------------------------------------------------------------------


def test_unknown_target_lists_choices() -> None:
    with pytest.raises(ConfigError) as err:
        make_target("banana")
    msg = str(err.value)
    assert str(sorted(TARGETS)) in msg and "scipy:<name>" in msg
    with pytest.raises(ConfigError, match="SamplesTarget"):
        make_target("samples")
    with pytest.raises(ConfigError, match="ImageTarget"):
        make_target("image")


def test_unknown_parameter_lists_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"normal: unknown parameter.*\['sigma'\].*\['loc', 'scale'\]"):
        make_target("normal", sigma=1.0)
    with pytest.raises(ConfigError, match=r"unknown parameter.*Valid parameters: \[\]"):
        make_target("moons", noise=0.1)


@pytest.mark.parametrize(
    ("name", "params", "match"),
    [
        ("normal", {"scale": 0}, r"normal\.scale must be in \(0\.0, inf\)"),
        ("normal", {"scale": "abc"}, r"normal\.scale must be a number"),
        ("normal", {"loc": float("nan")}, r"normal\.loc must be a finite number"),
        ("mixture", {"weights": [1, 0]}, r"mixture\.weights\[1\] must be in \(0\.0, inf\)"),
        ("mixture", {"sds": "0.5,-1"}, r"mixture\.sds\[1\]"),
        ("mixture", {"means": [0, 1, 2]}, "same length.*'means': 3"),
        ("mixture", {"weights": []}, "weights must be a non-empty list"),
        ("gaussian2d", {"mean": [0, 0, 0]}, r"gaussian2d\.mean must be a list of 2 numbers"),
        ("gaussian2d", {"cov": [1, 0.5, 0.4, 1]}, "cov must be symmetric"),
        ("gaussian2d", {"cov": [1, 2, 2, 1]}, "cov must be positive-definite"),
        ("gaussian2d", {"cov": [-1, 0, 0, 1]}, "cov must be positive-definite"),
    ],
)
def test_bad_values_name_the_parameter(name: str, params: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        make_target(name, params)


def test_strings_and_list_strings_accepted() -> None:
    t = make_target("mixture", {"weights": "0.3,0.7", "means": "[-1, 1]"}, sds="0.2 0.4")
    assert t.params == {"weights": [0.3, 0.7], "means": [-1.0, 1.0], "sds": [0.2, 0.4]}
    assert make_target("normal", loc="2.5").params["loc"] == 2.5
    assert make_target("gaussian2d", cov=np.array([[2.0, 0.0], [0.0, 1.0]])).params["cov"] == [
        2.0,
        0.0,
        0.0,
        1.0,
    ]
    # kwargs override the params mapping
    assert make_target("normal", {"loc": 1.0}, loc=2.0).params["loc"] == 2.0


def test_param_validate() -> None:
    p = Param("n", 3, "int", min=0, min_open=True)
    assert p.validate("4") == 4
    assert p.validate(np.int64(2)) == 2
    with pytest.raises(ConfigError, match=r"n must be an integer in \[1, inf\]"):
        p.validate(0)
    with pytest.raises(ConfigError, match=r"x\.n"):
        p.validate(1.5, "x")
    assert Param("w", (1.0,), "floats").validate(2) == [2.0]
    with pytest.raises(ConfigError, match=r"dim: invalid value"):
        target_names(3)


def test_spec_round_trip(target: Target) -> None:
    if target.name in ("samples", "image"):
        with pytest.raises(ConfigError, match="Target"):
            make_target(**target.spec())
        return
    rebuilt = make_target(**target.spec())
    assert rebuilt == target and hash(rebuilt) == hash(target)
    x = target.sample(20, seed=0)
    np.testing.assert_array_equal(rebuilt.log_prob(x), target.log_prob(x))
    assert target.spec() == {"name": target.name, "params": target.params}


def test_mixture_spec_round_trip_is_exact() -> None:
    for seed in range(20):
        w = np.random.default_rng(seed).random(5) + 0.1
        t = make_target("mixture", weights=w, means=np.arange(5.0), sds=np.ones(5))
        assert math.fsum(t.params["weights"]) == pytest.approx(1.0, abs=1e-12)
        assert make_target(**t.spec()) == t


def test_equality_depends_on_params() -> None:
    assert make_target("normal") != make_target("normal", loc=0.0)
    assert make_target("normal") == make_target("normal", loc="6")
    a = SamplesTarget(np.arange(20.0))
    assert a == SamplesTarget(np.arange(20.0)) and a != SamplesTarget(np.arange(20.0) * 2)


def test_sample_rejects_bad_n() -> None:
    t = make_target("normal")
    with pytest.raises(ConfigError, match="n must be an integer"):
        t.sample(-1)
    with pytest.raises(ConfigError, match="n must be an integer"):
        t.sample(2.5)
    assert t.sample(np.int64(3), seed=0).shape == (3, 1)


def test_bounds_are_read_only() -> None:
    t = make_target("normal")
    with pytest.raises(ValueError):
        t.bounds[0, 0] = 0.0


# --------------------------------------------------------------------------------------------------
# SamplesTarget and CSV
# --------------------------------------------------------------------------------------------------


def test_samples_target_resamples_given_points() -> None:
    data = _samples_2d()
    t = SamplesTarget(data, name="mydata")
    assert t.dim == 2 and t.density_kind == "estimate" and "mydata" in t.label
    x = t.sample(500, seed=0)
    assert {tuple(r) for r in x} <= {tuple(r) for r in data}
    kde = scipy.stats.gaussian_kde(data.T)
    np.testing.assert_allclose(t.log_prob(data[:20]), kde.logpdf(data[:20].T), rtol=1e-8)
    assert np.all(t.bounds[:, 0] < data.min(axis=0)) and np.all(t.bounds[:, 1] > data.max(axis=0))


def test_samples_target_errors() -> None:
    with pytest.raises(ConfigError, match="at least 10"):
        SamplesTarget(np.zeros((5, 2)))
    with pytest.raises(ConfigError, match=r"shape \(n,\), \(n, 1\) or \(n, 2\)"):
        SamplesTarget(np.zeros((20, 3)))
    bad = np.arange(20.0)
    bad[7] = np.nan
    with pytest.raises(ConfigError, match=r"finite.*row 7"):
        SamplesTarget(bad)
    with pytest.raises(ConfigError, match="degenerate"):
        SamplesTarget(np.ones(20))
    with pytest.raises(ConfigError, match="numeric"):
        SamplesTarget(["a"] * 20)


def _csv(rows: list[str], header: str | None = None, sep: str = ",") -> str:
    return "\n".join(([header] if header else []) + [r.replace(",", sep) for r in rows]) + "\n"


ROWS2 = [f"{i},{i * 0.5}" for i in range(12)]


@pytest.mark.parametrize("sep", [",", ";", "\t", "  "])
@pytest.mark.parametrize("header", [None, "x,y"])
def test_csv_two_columns(sep: str, header: str | None) -> None:
    text = _csv(ROWS2, header.replace(",", sep) if header else None, sep)
    x = samples_from_csv(text)
    assert x.shape == (12, 2) and x.dtype == np.float64
    np.testing.assert_array_equal(x[:, 0], np.arange(12))
    np.testing.assert_array_equal(x[:, 1], np.arange(12) * 0.5)


def test_csv_one_column_and_sources(tmp_path: Path) -> None:
    text = "value\n" + "\n".join(str(v) for v in np.linspace(-1, 1, 15))
    expected = np.linspace(-1, 1, 15)[:, None]
    np.testing.assert_allclose(samples_from_csv(text), expected)
    np.testing.assert_allclose(samples_from_csv(text.encode("utf-8-sig")), expected)
    np.testing.assert_allclose(samples_from_csv(io.BytesIO(text.encode())), expected)
    np.testing.assert_allclose(samples_from_csv(io.StringIO(text)), expected)
    path = tmp_path / "data.csv"
    path.write_text(text)
    np.testing.assert_allclose(samples_from_csv(path), expected)
    np.testing.assert_allclose(samples_from_csv(str(path)), expected)
    assert SamplesTarget(samples_from_csv(text)).dim == 1


@pytest.mark.parametrize(
    ("text", "kwargs", "match"),
    [
        ("", {}, "empty"),
        ("\n\n# only a comment\n", {}, "empty"),
        (_csv([f"{i},{i},{i}" for i in range(12)]), {}, "3 columns; expected 1 or 2"),
        (_csv([*ROWS2[:4], "4,abc", *ROWS2[5:]], "x,y"), {}, "line 6, column 2: 'abc' is not a number"),
        (_csv([*ROWS2[:3], "3,nan", *ROWS2[4:]]), {}, "line 4, column 2.*not finite"),
        (_csv([*ROWS2[:3], "3", *ROWS2[4:]]), {}, "line 4 has 1 column; every row needs the 2 columns"),
        (_csv(ROWS2[:5]), {}, r"at least 10 data rows \(got 5\)"),
        (_csv(ROWS2), {"max_rows": 10}, "12 data rows; the limit is 10"),
        (_csv(ROWS2), {"max_bytes": 20}, "larger than the limit of 20 bytes"),
        (b"\xff\xfe\x00garbage", {}, "UTF-8"),
        ("missing_file.csv", {}, "not found"),
    ],
)
def test_csv_errors(text: str | bytes, kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        samples_from_csv(text, **kwargs)


# --------------------------------------------------------------------------------------------------
# ImageTarget and image files
# --------------------------------------------------------------------------------------------------


def test_image_bright_square() -> None:
    t = ImageTarget(_square_image())
    assert t.dim == 2 and t.density_kind == "exact"
    np.testing.assert_array_equal(t.bounds, [[-4, 4], [-4, 4]])
    x = t.sample(5000, seed=0)
    assert np.all((x[:, 0] >= 1) & (x[:, 0] <= 3) & (x[:, 1] >= 0) & (x[:, 1] <= 2))  # row 0 is the top
    assert x[:, 0].std() > 0.4 and x[:, 1].std() > 0.4  # uniform within pixels, not pixel corners
    np.testing.assert_allclose(t.pdf(np.array([[2.0, 1.0], [1.1, 1.9]])), 1 / 4)  # 2x2 square of mass 1
    assert np.all(t.log_prob(np.array([[0.0, 0.0], [-2.0, 1.0], [2.0, -1.0], [2.0, 5.0]])) == -np.inf)


def test_image_invert_uint8_extent() -> None:
    paper = np.full((16, 16), 255, dtype=np.uint8)
    paper[4:8, 10:14] = 0  # dark stroke on white paper
    t = ImageTarget(paper, extent=(0.0, 16.0, 0.0, 8.0), invert=True)
    assert t.params == {"height": 16, "width": 16, "extent": [0.0, 16.0, 0.0, 8.0], "invert": True}
    x = t.sample(2000, seed=0)
    assert np.all((x[:, 0] >= 10) & (x[:, 0] <= 14) & (x[:, 1] >= 4) & (x[:, 1] <= 6))
    assert _integral(t, 401) == pytest.approx(1.0, abs=2e-2)


def test_image_errors() -> None:
    with pytest.raises(ConfigError, match="all black"):
        ImageTarget(np.zeros((8, 8)))
    with pytest.raises(ConfigError, match="all white"):
        ImageTarget(np.ones((8, 8)), invert=True)
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        ImageTarget(np.full((8, 8), 2.0))
    with pytest.raises(ConfigError, match=r"shape \(H, W\)"):
        ImageTarget(np.ones((8, 8, 3)))
    with pytest.raises(ConfigError, match="xmin < xmax"):
        ImageTarget(np.ones((8, 8)), extent=(1, -1, 0, 1))


def test_image_from_file_png(tmp_path: Path) -> None:
    pixels = np.zeros((10, 20), dtype=np.uint8)
    pixels[2:5, 12:18] = 255
    path = tmp_path / "pic.png"
    Image.fromarray(pixels).convert("RGB").save(path)
    img = image_from_file(path)
    assert img.shape == (10, 20) and img.dtype == np.float64
    np.testing.assert_allclose(img, pixels / 255.0)
    np.testing.assert_allclose(image_from_file(path.read_bytes()), img)
    with open(path, "rb") as f:
        np.testing.assert_allclose(image_from_file(f), img)
    x = ImageTarget(img).sample(1000, seed=0)  # pixels are 0.4 wide and 0.8 tall
    assert np.all((x[:, 0] >= 0.8) & (x[:, 0] <= 3.2) & (x[:, 1] >= 0.0) & (x[:, 1] <= 2.4))


def test_image_from_file_downsamples_and_flattens_alpha(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    Image.fromarray(np.full((100, 300), 128, dtype=np.uint8)).save(path)
    img = image_from_file(path, max_pixels=3000)
    assert img.size <= 3000 and img.shape[1] / img.shape[0] == pytest.approx(3.0, rel=0.05)
    clear = Image.new("RGBA", (4, 4), (0, 0, 0, 0))  # fully transparent reads as white paper
    buf = io.BytesIO()
    clear.save(buf, format="PNG")
    np.testing.assert_allclose(image_from_file(buf.getvalue()), 1.0)


def test_image_from_file_rejects_non_images(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a readable image"):
        image_from_file(b"this is not a picture")
    path = tmp_path / "notes.txt"
    path.write_text("x,y\n1,2\n")
    with pytest.raises(ConfigError, match="not a readable image"):
        image_from_file(path)


def test_import_does_not_pull_in_streamlit() -> None:
    code = "import sys, cnfviz.targets; assert 'streamlit' not in sys.modules"
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_constant_samples_are_degenerate_even_with_rounding() -> None:
    with pytest.raises(ConfigError, match="degenerate"):
        SamplesTarget(np.full((20, 1), 1.5))
    with pytest.raises(ConfigError, match="degenerate"):
        SamplesTarget(np.column_stack([np.linspace(0, 1, 20), np.full(20, 0.1)]))
