"""The numbers behind the Learn page: small, exact demonstrations of the ideas behind FFJORD.

Each demo returns plain numpy arrays in a frozen dataclass, so the page can cache it and
:mod:`cnfviz.figures.learn` can draw it. The cheap demos (change of variables, a linear flow,
Hutchinson's estimator) run live; the ones that train flows (time span, regularizers, sampling)
are precomputed by ``assets/learn/make_learn_assets.py`` with :func:`build_learn_assets` and
stored with :func:`save_learn_assets`.

Example:
    >>> demo = affine_change_of_variables(2.0, 1.0, n_samples=100)
    >>> round(demo.integral, 3)
    1.0
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..figures.views import LIVE_SOLVER, density_path_view
from ..flow.config import ModelConfig
from ..flow.divergence import TRACE_ESTIMATORS, draw_noise
from ..flow.dynamics import ODENet
from ..flow.ffjord import FFJORD, standard_normal_logprob
from ..flow.solver import SolverConfig, odesolve
from ..training.config import TrainConfig
from ..training.metrics import model_log_prob, seed_tv
from ..training.presets import SEED_CONFIG, default_config
from ..training.trainer import Trainer

__all__ = [
    "ASSET_VERSION",
    "FLOW_MATCHING_PAIRINGS",
    "HUTCHINSON_NOISES",
    "REGULARIZER_CONFIG",
    "REGULARIZER_SETTINGS",
    "TIME_SPAN_CONFIG",
    "TIME_SPAN_ENDS",
    "AffineDemo",
    "FlowMatchingDemo",
    "HutchinsonDemo",
    "LearnAssets",
    "LinearFlowDemo",
    "RegularizerRun",
    "SamplingDemo",
    "TimeSpanRun",
    "affine_change_of_variables",
    "build_learn_assets",
    "fit",
    "flow_matching_demo",
    "hutchinson_demo",
    "hutchinson_variance",
    "likelihood_iteration_cost",
    "linear_field_matrix",
    "linear_flow_demo",
    "load_learn_assets",
    "marginal_velocity",
    "regularizer_run",
    "sampling_demo",
    "save_learn_assets",
    "time_span_run",
]

# Bump when the stored layout changes, so the page refuses stale files instead of misreading them.
ASSET_VERSION = 1

HUTCHINSON_NOISES: tuple[str, ...] = ("gaussian", "rademacher")

# The seed tutorial, trained with each of these end times; the tutorial's choice is 10.
TIME_SPAN_CONFIG: TrainConfig = SEED_CONFIG
TIME_SPAN_ENDS: tuple[float, ...] = (1.0, 2.0, 4.0, 6.0, 8.0, 10.0)

# A small 2D flow on two moons: long enough to bend its paths when unregularized, short enough
# (about half a minute per run on one core) to precompute four variants.
REGULARIZER_CONFIG: TrainConfig = default_config(
    "moons",
    model=ModelConfig(hidden=(32, 32), activation="tanh", time="concatsquash", tspan=(0.0, 1.0)),
    solver=SolverConfig("rk4", step_size=0.125),
    adam_iters=600,
    lr=1e-2,
    lr_decay=True,
    batch_size=256,
    eval_every=0,
)
# name -> (lambda_kinetic, lambda_jacobian); "none" must be present, it is the reference run.
# Weights of 0.1 halve λ₁ but barely change the picture; 0.5 makes the straightening visible at
# the price of 0.1-0.3 nats of likelihood, a trade-off the page shows in its table.
REGULARIZER_SETTINGS: dict[str, tuple[float, float]] = {
    "none": (0.0, 0.0),
    "kinetic": (0.5, 0.0),
    "jacobian": (0.0, 0.5),
    "both": (0.5, 0.5),
}

# The linear-flow demo's field keeps a fixed anisotropic stretch on top of the chosen trace, so
# the paths are not just circles or rays, while its trace (the only thing log p sees) stays as set.
_LINEAR_SHEAR = 0.6


# --------------------------------------------------------------------------------------------------
# 1. Change of variables
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AffineDemo:
    """x = a·z + b for z ~ N(0, 1): the change-of-variables density and samples that test it.

    ``xs`` (R,): evaluation grid; ``p_z`` (R,): N(0, 1) on it; ``p_x`` (R,): p_z((x − b)/a)/|a|;
    ``samples`` (n,): pushed samples a·z + b; ``integral``: ∫p_x dx on the grid (≈ 1).
    """

    a: float
    b: float
    xs: np.ndarray
    p_z: np.ndarray
    p_x: np.ndarray
    samples: np.ndarray
    integral: float


def _normal_pdf(x: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * x**2) / math.sqrt(2 * math.pi)


def affine_change_of_variables(
    a: float, b: float, *, n_samples: int = 4000, resolution: int = 400, seed: int = 0
) -> AffineDemo:
    """The density of x = a·z + b, z ~ N(0, 1), from the change-of-variables formula.

    Arguments:
        a: scale, nonzero (a negative scale flips the axis; the density only sees |a|).
        b: shift.
        n_samples: samples z pushed through the map, to check the formula against.
        resolution: grid points R; the grid covers both N(0, 1) and N(b, a²) to ±4 sd.
        seed: seeds the samples.

    Returns:
        An :class:`AffineDemo`.

    Example:
        >>> demo = affine_change_of_variables(-0.5, 2.0, n_samples=10, resolution=5)
        >>> demo.xs.shape, demo.samples.shape
        ((5,), (10,))
    """
    if a == 0 or not math.isfinite(a):
        raise ValueError(f"a must be a finite nonzero scale: x = 0·z + b is not invertible (got a = {a})")
    lo, hi = min(-4.0, b - 4 * abs(a)), max(4.0, b + 4 * abs(a))
    xs = np.linspace(lo, hi, resolution)
    p_x = _normal_pdf((xs - b) / a) / abs(a)
    z = np.random.default_rng(seed).standard_normal(n_samples)
    return AffineDemo(
        a=float(a),
        b=float(b),
        xs=xs,
        p_z=_normal_pdf(xs),
        p_x=p_x,
        samples=a * z + b,
        integral=float(np.trapezoid(p_x, xs)),
    )


# --------------------------------------------------------------------------------------------------
# 2. Instantaneous change of variables: a linear flow with an analytic answer
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LinearFlowDemo:
    """Points carried by dz/dt = A z, with log p along each path from the ODE and from the formula.

    ``matrix`` (2, 2): A; ``times`` (T,); ``paths`` (T, n, 2); ``logp_ode`` (T, n): log p(z(t))
    integrated with d log p/dt = −tr(∂f/∂z); ``logp_exact`` (T, n): log N(z(0)) − tr(A)·t.
    """

    matrix: np.ndarray
    times: np.ndarray
    paths: np.ndarray
    logp_ode: np.ndarray
    logp_exact: np.ndarray


class _LogDensityODE(nn.Module):
    """The augmented state [z, log p] (N, d + 1) with d log p/dt = −tr(∂f/∂z), the exact trace."""

    def __init__(self, net: ODENet) -> None:
        super().__init__()
        self.net = net
        self.trace = TRACE_ESTIMATORS["exact"].fn

    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        f, div, _ = self.trace(self.net, t, y[:, : self.net.dim], None, False)
        return torch.cat([f, -div[:, None]], 1)


def linear_field_matrix(trace: float, rotation: float) -> np.ndarray:
    """A (2, 2) with the given trace: a fixed stretch along x, squeeze along y, plus a rotation.

    Example:
        >>> float(np.trace(linear_field_matrix(0.5, 2.0)))
        0.5
    """
    return np.array(
        [[trace / 2 + _LINEAR_SHEAR, -rotation], [rotation, trace / 2 - _LINEAR_SHEAR]],
        dtype=np.float64,
    )


def linear_flow_demo(
    trace: float,
    rotation: float,
    *,
    t1: float = 1.0,
    n_paths: int = 6,
    n_times: int = 41,
    seed: int = 0,
    solver: SolverConfig | None = None,
) -> LinearFlowDemo:
    """Integrate the instantaneous change of variables for f(z) = A z and compare with tr(A)·t.

    The field is a cnfviz :class:`~cnfviz.flow.dynamics.ODENet` with no hidden layer and no activation,
    i.e. exactly z ↦ A z, so the divergence comes from the same forward-mode Jacobian FFJORD uses.

    Arguments:
        trace: tr(A), the divergence; log p falls by trace·t along every path.
        rotation: the antisymmetric part ω; it turns the paths without changing any density.
        t1: end time.
        n_paths: starting points z(0) ~ N(0, I), drawn with ``seed``.
        n_times: output times T from 0 to t1.
        solver: ODE solver; defaults to a tight dopri5.

    Returns:
        A :class:`LinearFlowDemo`.

    Example:
        >>> demo = linear_flow_demo(1.0, 0.0, n_paths=2, n_times=3)
        >>> bool(np.allclose(demo.logp_ode, demo.logp_exact, atol=1e-4))
        True
    """
    matrix = linear_field_matrix(trace, rotation)
    net = ODENet(2, (), activation="tanh", time="none", final_activation=False)
    with torch.no_grad():
        net.layers[0].weight.copy_(torch.as_tensor(matrix))
        net.layers[0].bias.zero_()
    net = net.double()  # float64: the comparison with the formula should show the method, not rounding
    z0 = torch.randn((n_paths, 2), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    times = torch.linspace(0.0, t1, n_times, dtype=torch.float64)
    y0 = torch.cat([z0, standard_normal_logprob(z0)[:, None]], 1)
    with torch.no_grad():
        yt = odesolve(_LogDensityODE(net), y0, times, solver or SolverConfig("dopri5", rtol=1e-8, atol=1e-8))
    t = times.numpy()
    return LinearFlowDemo(
        matrix=matrix,
        times=t,
        paths=yt[..., :2].numpy(),
        logp_ode=yt[..., 2].numpy(),
        logp_exact=standard_normal_logprob(z0).numpy()[None, :] - np.trace(matrix) * t[:, None],
    )


# --------------------------------------------------------------------------------------------------
# 3. The exact trace against Hutchinson's estimator
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HutchinsonDemo:
    """Many Hutchinson estimates of one Jacobian's trace, next to the exact value.

    ``estimates[noise]`` (n,): estimates each averaging ``probes`` probes εᵀJε; ``theory_var[noise]``:
    the variance of one such estimate from :func:`hutchinson_variance`; ``exact``: tr J.
    """

    dim: int
    probes: int
    exact: float
    estimates: dict[str, np.ndarray]
    theory_var: dict[str, float]


def hutchinson_variance(jacobian: np.ndarray, noise: str) -> float:
    """Variance of one single-probe estimate εᵀJε for a (d, d) matrix J.

    With S = (J + Jᵀ)/2, Gaussian probes give 2‖S‖²_F; Rademacher probes (εᵢ² = 1) drop the diagonal
    and give 2(‖S‖²_F − Σᵢ Sᵢᵢ²), never more.

    Example:
        >>> hutchinson_variance(np.diag([1.0, 2.0]), "rademacher")
        0.0
    """
    s = 0.5 * (jacobian + jacobian.T)
    frob = float(np.sum(s**2))
    if noise == "gaussian":
        return 2 * frob
    if noise == "rademacher":
        return 2 * (frob - float(np.sum(np.diag(s) ** 2)))
    raise ValueError(f'Invalid noise "{noise}". Must be one of {list(HUTCHINSON_NOISES)}')


def hutchinson_demo(
    dim: int,
    probes: int = 1,
    *,
    n_estimates: int = 2000,
    hidden: Sequence[int] = (64, 64),
    seed: int = 0,
) -> HutchinsonDemo:
    """Hutchinson estimates of tr(∂f/∂z) for a random network f at one random point.

    Arguments:
        dim: dimension d of z.
        probes: probes averaged into each estimate (the variance falls as 1/probes).
        n_estimates: how many estimates to draw per noise kind.
        hidden: the random :class:`~cnfviz.flow.dynamics.ODENet`'s hidden widths.
        seed: seeds the network, the point and the probes.

    Returns:
        A :class:`HutchinsonDemo`.

    Example:
        >>> demo = hutchinson_demo(1, n_estimates=5)
        >>> bool(np.allclose(demo.estimates["rademacher"], demo.exact, atol=1e-5))  # 1D Rademacher is exact
        True
    """
    gen = torch.Generator().manual_seed(seed)
    net = ODENet(dim, tuple(hidden), activation="tanh", time="none", generator=gen)
    z = torch.randn((1, dim), generator=gen)
    t = torch.tensor(0.0)
    with torch.no_grad():
        jac = net.jacobian(t, z)[1][0].double().numpy()
        # One row per probe: the same point repeated, each with its own ε; one JVP per row.
        zs = z.expand(n_estimates * probes, dim)
        estimates, theory = {}, {}
        for noise in HUTCHINSON_NOISES:
            eps = draw_noise(noise, zs, gen)
            jv = net.jvp(t, zs, eps)[1]
            single = (eps * jv).sum(-1).double().numpy()
            estimates[noise] = single.reshape(n_estimates, probes).mean(1)
            theory[noise] = hutchinson_variance(jac, noise) / probes
    return HutchinsonDemo(dim=dim, probes=probes, exact=float(np.trace(jac)), estimates=estimates, theory_var=theory)


# --------------------------------------------------------------------------------------------------
# Training helpers for the precomputed demos
# --------------------------------------------------------------------------------------------------


def fit(config: TrainConfig) -> tuple[FFJORD, Trainer]:
    """Train a flow for a demo; returns the model and its trainer (for the data it saw).

    Raises:
        RuntimeError: when training failed; a demo built on a broken model would teach the wrong thing.
    """
    trainer = Trainer(config)
    result = trainer.run(final_metrics=False)
    if result.status == "failed":
        raise RuntimeError(f"training for the Learn page failed: {result.reason}")
    return trainer.model, trainer


def _numpy(x: Tensor) -> np.ndarray:
    return x.detach().double().cpu().numpy()


# --------------------------------------------------------------------------------------------------
# 4. Why the time span matters
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimeSpanRun:
    """The seed tutorial trained with time span (0, t1).

    ``xs`` (R,): grid; ``learned``/``true`` (R,): densities at t1; ``path_times`` (T,) from 0 to t1;
    ``path_density`` (T, R): p(x, t) while the flow carries N(0, 1) to the data; ``seed_tv``: the
    tutorial's figure ½·mean|p_model − p_true| on the training points; ``nll``: their mean −log p.
    """

    t1: float
    xs: np.ndarray
    learned: np.ndarray
    true: np.ndarray
    path_times: np.ndarray
    path_density: np.ndarray
    seed_tv: float
    nll: float
    seconds: float


def time_span_run(
    config: TrainConfig,
    t1: float,
    *,
    bounds: tuple[float, float] = (-4.0, 9.0),
    resolution: int = 200,
    n_times: int = 41,
) -> TimeSpanRun:
    """Train ``config`` with its time span set to (0, t1) and record its densities.

    Arguments:
        config: a 1D configuration, e.g. :data:`TIME_SPAN_CONFIG` (the seed tutorial).
        t1: end time of the span.
        bounds: the x range of the grid; it must contain N(0, 1) and the data.
        resolution: grid points R.
        n_times: times T of the density path.
    """
    start = time.perf_counter()
    model, trainer = fit(config.replace(model={"tspan": (0.0, float(t1))}))
    seconds = time.perf_counter() - start
    path = density_path_view(model, np.array([bounds]), resolution=resolution, n_times=n_times)
    xs = path.xs
    train_data = trainer.train_data
    assert train_data is not None, "the time-span demo trains on a fixed set, like the tutorial"
    return TimeSpanRun(
        t1=float(t1),
        xs=xs,
        learned=np.exp(model_log_prob(model, xs[:, None])),
        true=trainer.target.pdf(xs[:, None]),
        path_times=path.times,
        path_density=path.density,
        seed_tv=seed_tv(model, trainer.target, train_data),
        nll=float(-np.mean(model_log_prob(model, train_data))),
        seconds=seconds,
    )


# --------------------------------------------------------------------------------------------------
# 5. Kinetic and Jacobian regularizers
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegularizerRun:
    """A 2D flow trained with weights (lambda_kinetic, lambda_jacobian), measured the same way as all others.

    ``kinetic``/``jacobian``: mean λ₁ = ∫‖f‖² dt and λ₂ = ∫‖∂f/∂z‖²_F dt over held-out data (exact
    trace); ``nll``: their mean −log p; ``nfe``: function evaluations an adaptive solver needs for
    that density; ``straightness``: mean displacement / path length (1 = straight lines);
    ``times`` (T,) and ``paths`` (T, n, 2): base points carried from t0 to t1.
    """

    name: str
    lambda_kinetic: float
    lambda_jacobian: float
    kinetic: float
    jacobian: float
    nll: float
    nfe: int
    straightness: float
    times: np.ndarray
    paths: np.ndarray
    seconds: float


def _straightness(paths: np.ndarray) -> float:
    """Mean over paths (T, n, d) of |end − start| / length: 1 for straight lines, smaller for bends."""
    length = np.linalg.norm(np.diff(paths, axis=0), axis=-1).sum(0)
    displacement = np.linalg.norm(paths[-1] - paths[0], axis=-1)
    return float(np.mean(displacement / np.maximum(length, 1e-12)))


def regularizer_run(
    name: str,
    model: FFJORD,
    lambdas: tuple[float, float],
    data: np.ndarray,
    *,
    n_paths: int = 150,
    n_times: int = 41,
    seed: int = 0,
    seconds: float = 0.0,
) -> RegularizerRun:
    """Measure a trained 2D flow: its regularizers, likelihood, solver cost and trajectories.

    Arguments:
        name: label of the setting, e.g. ``"kinetic"``.
        model: the trained flow.
        lambdas: the (lambda_kinetic, lambda_jacobian) weights it was trained with (recorded only).
        data: held-out points (N, 2) to measure λ₁, λ₂ and the NLL on.
        n_paths: base points whose trajectories are recorded.
        n_times: times T along each trajectory.
        seed: seeds the base points (the same for every run, so the panels compare like with like).
        seconds: training time, recorded only.
    """
    p = next(model.parameters())
    x = torch.as_tensor(np.asarray(data, dtype=np.float32)).to(p.device)
    with torch.no_grad():
        logpx, kinetic, jac = model(x, regularize=True, trace="exact", solver=LIVE_SOLVER)
        model.reset_nfe()
        model.log_prob(x, solver=LIVE_SOLVER, trace="exact")
        nfe = model.nfe_forward
    assert kinetic is not None and jac is not None
    times, paths = model.trajectories(
        n_paths, n_times, generator=torch.Generator().manual_seed(seed), solver=LIVE_SOLVER
    )
    paths_np = _numpy(paths)
    return RegularizerRun(
        name=name,
        lambda_kinetic=float(lambdas[0]),
        lambda_jacobian=float(lambdas[1]),
        kinetic=float(kinetic.mean()),
        jacobian=float(jac.mean()),
        nll=float(-logpx.mean()),
        nfe=int(nfe),
        straightness=_straightness(paths_np),
        times=_numpy(times),
        paths=paths_np,
        seconds=seconds,
    )


# --------------------------------------------------------------------------------------------------
# 6. Sampling by integrating forwards, density by integrating backwards
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SamplingDemo:
    """Base samples pushed t0 → t1 and data pulled t1 → t0, at the same times.

    ``times`` (T,) from t0 to t1; ``forward`` (T, n, d): ``forward[0]`` = z ~ N(0, I) and
    ``forward[-1]`` = transform(z); ``backward`` (T, m, d): ``backward[-1]`` = the data x and
    ``backward[0]`` = inverse(x); ``pulled_mean`` (d,), ``pulled_cov`` (d, d): of inverse(x), ≈ 0 and I
    for a good flow.
    """

    times: np.ndarray
    forward: np.ndarray
    backward: np.ndarray
    pulled_mean: np.ndarray
    pulled_cov: np.ndarray


def sampling_demo(
    model: FFJORD, data: np.ndarray, *, n_samples: int = 500, n_times: int = 11, seed: int = 0
) -> SamplingDemo:
    """Run a trained flow both ways over ``n_times`` times.

    Arguments:
        model: the trained flow.
        data: points (m, d) to pull back to the base.
        n_samples: base samples to push forward.
        n_times: frames T from t0 to t1.
        seed: seeds the base samples.
    """
    p = next(model.parameters())
    t0, t1 = model.tspan
    times = torch.linspace(t0, t1, n_times, dtype=p.dtype, device=p.device)
    _, forward = model.trajectories(n_samples, times, generator=torch.Generator().manual_seed(seed), solver=LIVE_SOLVER)
    x = torch.as_tensor(np.asarray(data, dtype=np.float32)).to(p.device)
    with torch.no_grad():
        # inverse() returns only the end point; the intermediate frames need the same solve with
        # every output time, run from t1 down to t0 through the model's own dynamics.
        backward = odesolve(model.net, x, times.flip(0), LIVE_SOLVER).flip(0)
    pulled = _numpy(backward[0])
    return SamplingDemo(
        times=_numpy(times),
        forward=_numpy(forward),
        backward=_numpy(backward),
        pulled_mean=pulled.mean(0),
        pulled_cov=np.atleast_2d(np.cov(pulled, rowvar=False)),
    )


# --------------------------------------------------------------------------------------------------
# 7. Two ways to train: straight conditional paths, curved marginal paths
# --------------------------------------------------------------------------------------------------

FLOW_MATCHING_PAIRINGS: tuple[str, ...] = ("independent", "ot")


@dataclass(frozen=True)
class FlowMatchingDemo:
    """Flow matching's two kinds of path, for data from a mixture of K isotropic Gaussians, tspan (0, 1).

    ``means`` (K, 2) and ``sd``: the mixture; ``x0`` (n, 2): noise points; ``x1`` (n, 2): the data point
    each is paired with (``pairing``: independent or minibatch OT); ``times`` (T,) and ``marginal``
    (T, n, 2): the paths from ``x0`` along the exact marginal field of independent flow matching, the field
    a flow-matching network learns; ``crossings``: how many of the n(n − 1)/2 pairs of straight conditional
    paths x0 → x1 cross; ``pair_cost``: mean ‖x1 − x0‖²; ``marginal_straightness``: mean
    |end − start| / path length of the marginal paths (1 is straight); ``marginal_end_error``: the largest
    distance from a marginal path's end to the nearest mixture mean, in sds.
    """

    pairing: str
    means: np.ndarray
    sd: float
    x0: np.ndarray
    x1: np.ndarray
    times: np.ndarray
    marginal: np.ndarray
    crossings: int
    pair_cost: float
    marginal_straightness: float
    marginal_end_error: float


def marginal_velocity(x: np.ndarray, s: float, means: np.ndarray, sd: float) -> np.ndarray:
    """E[x1 − x0 | x_s = x] for x0 ~ N(0, I), x1 ~ an equal mixture of N(μ_k, sd² I), x_s = (1 − s) x0 + s x1.

    Given component k, (x_s, x1 − x0) is jointly Gaussian: x_s ~ N(s μ_k, v I) with v = (1 − s)² + s² sd²,
    and Cov(x1 − x0, x_s) = (s sd² − (1 − s)) I, so E[x1 − x0 | x_s, k] = μ_k + (s sd² − (1 − s))/v · (x − s μ_k);
    the components are weighted by their posterior given x.

    Arguments:
        x: points, shape (n, d).
        s: the time, in [0, 1].
        means: mixture means, shape (K, d).
        sd: the components' standard deviation (> 0).

    Returns:
        the velocity, shape (n, d).
    """
    v = (1 - s) ** 2 + s**2 * sd**2
    diff = x[:, None, :] - s * means[None]  # (n, K, d)
    logw = -0.5 * (diff**2).sum(-1) / v
    w = np.exp(logw - logw.max(1, keepdims=True))
    w /= w.sum(1, keepdims=True)
    per = means[None] + (s * sd**2 - (1 - s)) / v * diff
    return (w[..., None] * per).sum(1)


def _segments_cross(a0: np.ndarray, a1: np.ndarray) -> int:
    """How many pairs of the segments a0[i] → a1[i] (each (n, 2)) properly intersect."""
    d = a1 - a0
    i, j = np.triu_indices(len(a0), 1)

    def orient(p: np.ndarray, q: np.ndarray, r: np.ndarray) -> np.ndarray:
        return np.sign((q[:, 0] - p[:, 0]) * (r[:, 1] - p[:, 1]) - (q[:, 1] - p[:, 1]) * (r[:, 0] - p[:, 0]))

    p, p2, q, q2 = a0[i], a0[i] + d[i], a0[j], a0[j] + d[j]
    hit = (orient(p, p2, q) * orient(p, p2, q2) < 0) & (orient(q, q2, p) * orient(q, q2, p2) < 0)
    return int(hit.sum())


def flow_matching_demo(
    pairing: str = "independent",
    *,
    n_paths: int = 40,
    modes: int = 8,
    radius: float = 3.0,
    sd: float = 0.3,
    steps: int = 60,
    seed: int = 0,
) -> FlowMatchingDemo:
    """Straight conditional paths (what flow matching regresses on) against the curved marginal paths (what
    the learned field integrates), on a ring of ``modes`` Gaussians.

    Example:
        >>> demo = flow_matching_demo("ot", n_paths=12)
        >>> demo.x1.shape, demo.marginal.shape
        ((12, 2), (61, 12, 2))
    """
    from ..training.objectives import ot_pairing

    if pairing not in FLOW_MATCHING_PAIRINGS:
        raise ValueError(f'Invalid pairing "{pairing}". Must be one of {list(FLOW_MATCHING_PAIRINGS)}')
    rng = np.random.default_rng(seed)
    angles = 2 * np.pi * np.arange(modes) / modes
    means = radius * np.stack([np.cos(angles), np.sin(angles)], 1)
    x0 = rng.standard_normal((n_paths, 2))
    x1 = means[rng.integers(modes, size=n_paths)] + sd * rng.standard_normal((n_paths, 2))
    if pairing == "ot":
        x1 = x1[ot_pairing(torch.as_tensor(x0), torch.as_tensor(x1)).numpy()]
    # RK4 on the analytic marginal field: smooth, so a fixed grid of `steps` is accurate to plotting precision.
    times = np.linspace(0.0, 1.0, steps + 1)
    paths = [x0]
    x, h = x0, 1.0 / steps
    for k in range(steps):
        s = times[k]
        k1 = marginal_velocity(x, s, means, sd)
        k2 = marginal_velocity(x + h / 2 * k1, s + h / 2, means, sd)
        k3 = marginal_velocity(x + h / 2 * k2, s + h / 2, means, sd)
        k4 = marginal_velocity(x + h * k3, s + h, means, sd)
        x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        paths.append(x)
    marginal = np.stack(paths)
    length = np.linalg.norm(np.diff(marginal, axis=0), axis=-1).sum(0)
    chord = np.linalg.norm(marginal[-1] - marginal[0], axis=-1)
    nearest = np.linalg.norm(marginal[-1][:, None] - means[None], axis=-1).min(1)
    return FlowMatchingDemo(
        pairing=pairing,
        means=means,
        sd=sd,
        x0=x0,
        x1=x1,
        times=times,
        marginal=marginal,
        crossings=_segments_cross(x0, x1),
        pair_cost=float(((x1 - x0) ** 2).sum(1).mean()),
        marginal_straightness=float(np.mean(chord / np.maximum(length, 1e-12))),
        marginal_end_error=float(nearest.max() / sd),
    )


def likelihood_iteration_cost(config: TrainConfig) -> int | None:
    """Evaluations of the field (with its Jacobian) in one likelihood iteration's forward solve, for a
    fixed-grid solver; None for an adaptive one, whose count varies. Flow matching makes one, without a Jacobian.

    Example:
        >>> likelihood_iteration_cost(default_config("8gaussians"))  # rk4, step 0.125 over (0, 0.5)
        16
    """
    s = config.solver
    stages = {"euler": 1, "midpoint": 2, "rk4": 4, "explicit_adams": 1, "implicit_adams": 1}.get(s.method)
    if not s.is_fixed_grid or not s.step_size or stages is None:
        return None
    t0, t1 = config.model.tspan
    return math.ceil(round(abs(t1 - t0) / s.step_size, 9)) * stages


# --------------------------------------------------------------------------------------------------
# Precomputed assets
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LearnAssets:
    """Everything the Learn page precomputes: ``meta`` holds the configs (as dicts) and timings."""

    time_span: tuple[TimeSpanRun, ...]
    regularizers: tuple[RegularizerRun, ...]
    sampling: SamplingDemo
    meta: dict[str, Any]

    def time_span_for(self, t1: float) -> TimeSpanRun:
        """The run whose end time is ``t1``."""
        for run in self.time_span:
            if math.isclose(run.t1, t1):
                return run
        raise KeyError(f"no time-span run with t1 = {t1}; have {[r.t1 for r in self.time_span]}")

    def regularizer_for(self, name: str) -> RegularizerRun:
        """The run trained with the setting ``name``."""
        for run in self.regularizers:
            if run.name == name:
                return run
        raise KeyError(f'no regularizer run "{name}"; have {[r.name for r in self.regularizers]}')


def build_learn_assets(
    time_span_config: TrainConfig = TIME_SPAN_CONFIG,
    time_span_ends: Sequence[float] = TIME_SPAN_ENDS,
    regularizer_config: TrainConfig = REGULARIZER_CONFIG,
    regularizer_settings: Mapping[str, tuple[float, float]] = REGULARIZER_SETTINGS,
    *,
    n_eval: int = 500,
    progress: Callable[[str], None] | None = None,
) -> LearnAssets:
    """Train every flow the Learn page shows and measure it.

    Arguments:
        time_span_config: 1D run trained once per entry of ``time_span_ends``.
        time_span_ends: end times t1.
        regularizer_config: 2D run trained once per entry of ``regularizer_settings``.
        regularizer_settings: name -> (lambda_kinetic, lambda_jacobian); must include ``"none"``,
            whose model also serves the sampling demo.
        n_eval: held-out points for the regularizer measures and the sampling demo.
        progress: called with a line of text after each run.
    """
    if "none" not in regularizer_settings:
        raise ValueError(f'regularizer_settings must include "none" (got {list(regularizer_settings)})')
    say = progress or (lambda _: None)
    spans = []
    for t1 in time_span_ends:
        run = time_span_run(time_span_config, t1)
        say(f"time span (0, {t1:g}): seed TV {run.seed_tv:.4f}, NLL {run.nll:.3f}, {run.seconds:.1f} s")
        spans.append(run)
    regs = []
    sampling = None
    for name, (lk, lj) in regularizer_settings.items():
        start = time.perf_counter()
        model, trainer = fit(regularizer_config.replace(lambda_kinetic=lk, lambda_jacobian=lj))
        seconds = time.perf_counter() - start
        held_out = trainer.test_data[:n_eval]
        run = regularizer_run(name, model, (lk, lj), held_out, seconds=seconds)
        say(
            f"regularizer {name}: λ₁ {run.kinetic:.3f}, λ₂ {run.jacobian:.3f}, NLL {run.nll:.3f}, "
            f"NFE {run.nfe}, straightness {run.straightness:.4f}, {seconds:.1f} s"
        )
        regs.append(run)
        if name == "none":
            sampling = sampling_demo(model, held_out)
    assert sampling is not None
    meta = {
        "version": ASSET_VERSION,
        "time_span_config": time_span_config.to_dict(),
        "regularizer_config": regularizer_config.to_dict(),
        "regularizer_target": regularizer_config.target,
    }
    return LearnAssets(tuple(spans), tuple(regs), sampling, meta)


def _pack(prefix: str, obj: Any, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """Split a dataclass into arrays (stored under ``prefix.field``) and JSON-able scalars (returned)."""
    scalars = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, np.ndarray):
            # float32 halves the file; the figures cannot show the difference.
            arrays[f"{prefix}.{f.name}"] = value.astype(np.float32) if value.dtype.kind == "f" else value
        else:
            scalars[f.name] = value
    return scalars


def _unpack(cls: type, prefix: str, arrays: Any, scalars: dict[str, Any]) -> Any:
    values = dict(scalars)
    for f in fields(cls):
        key = f"{prefix}.{f.name}"
        if key in arrays:
            values[f.name] = np.asarray(arrays[key], dtype=np.float64)
    return cls(**values)


def save_learn_assets(assets: LearnAssets, path: str | Path) -> Path:
    """Write ``assets`` to one ``.npz`` file (arrays plus a JSON header); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    header = {
        "meta": assets.meta,
        "time_span": [_pack(f"time_span.{i}", r, arrays) for i, r in enumerate(assets.time_span)],
        "regularizers": [_pack(f"regularizers.{i}", r, arrays) for i, r in enumerate(assets.regularizers)],
        "sampling": _pack("sampling", assets.sampling, arrays),
    }
    with path.open("wb") as fh:
        np.savez_compressed(fh, header=np.array(json.dumps(header)), **arrays)
    return path


def load_learn_assets(path: str | Path) -> LearnAssets:
    """Read a file written by :func:`save_learn_assets`.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file was written by another :data:`ASSET_VERSION`.
    """
    with np.load(Path(path), allow_pickle=False) as npz:
        header = json.loads(str(npz["header"]))
        version = header["meta"].get("version")
        if version != ASSET_VERSION:
            raise ValueError(f"Learn assets have version {version}, expected {ASSET_VERSION}: regenerate them")
        return LearnAssets(
            time_span=tuple(_unpack(TimeSpanRun, f"time_span.{i}", npz, s) for i, s in enumerate(header["time_span"])),
            regularizers=tuple(
                _unpack(RegularizerRun, f"regularizers.{i}", npz, s) for i, s in enumerate(header["regularizers"])
            ),
            sampling=_unpack(SamplingDemo, "sampling", npz, header["sampling"]),
            meta=header["meta"],
        )
