"""The live views of a run: status and loss (polled), the heavy figures (redrawn only when they change),
and the results once a run ends.

Streamlit remounts a plotly chart whenever its figure changes, which loses the zoom and stops an
animation. So the status and loss poll every :data:`POLL_SECONDS` while a run is active (every
:data:`STEADY_POLL_SECONDS` once it has trained a while); the density,
trajectory and vector-field figures are built once per ``visuals_version`` of the job and cached in
session state, so re-sending them between versions sends the very same figure and nothing remounts.
While the run trains, the trajectory figure has no animation (it would be reset by the next version);
it gains its slider and Play button when the run pauses or ends, and then does not change until the
user steps or resumes.

Widget keys (prefix ``p``): ``p_loss_chart``, ``p_view`` (the figure tabs), ``p_density_chart``,
``p_trajectory_chart``, ``p_density_path_chart``, ``p_field_chart``, ``p_metrics`` (container of the
metrics table), ``p_sample_n``, ``p_sample_button``, ``p_samples_chart``, ``p_samples_download``,
``p_checkpoint_download``, ``p_config_download``.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from ..checkpoint import checkpoint_bytes
from ..job import Snapshot, TrainingJob
from ..metrics import Metrics
from ..plots import (
    density_figure,
    density_path_figure,
    field_figure,
    loss_figure,
    samples_figure,
    trajectory_figure,
)
from ..solver import SolverError
from ..targets import ImageTarget, SamplesTarget, Target
from ..visuals import LIVE_SOLVER
from .session import JobHolder, job_slots
from .status import render_status
from .text import plain

__all__ = [
    "CHECKPOINT_IMAGE_SAMPLES",
    "FAST_POLL_FOR_SECONDS",
    "HEAVY_POLL_SECONDS",
    "POLL_SECONDS",
    "STEADY_POLL_SECONDS",
    "VIEW_TABS",
    "live_views",
    "metrics_rows",
    "results",
    "samples_csv",
]

POLL_SECONDS = 0.5
"""How often the status and loss refresh while a run is young..."""
STEADY_POLL_SECONDS = 1.0
"""...and once it has trained for :data:`FAST_POLL_FOR_SECONDS`. Each refresh remounts the loss chart, which
costs the browser's CPU; a watching browser on the same two cores as the server slowed training by a
third at two refreshes a second."""
FAST_POLL_FOR_SECONDS = 15.0
HEAVY_POLL_SECONDS = 2.0
"""How often the heavy figures look for new plot data while a run is active."""
VIEW_TABS = ("Density", "Trajectories", "Vector field")
CHECKPOINT_IMAGE_SAMPLES = 10_000
"""A picture target travels in a checkpoint as this many of its samples (the loaded run estimates its
density from them)."""
_PLOT_CONFIG = {"displaylogo": False}


def _k(prefix: str, name: str) -> str:
    return f"{prefix}_{name}"


def _snapshot(holder: JobHolder, prefix: str) -> tuple[TrainingJob | None, Snapshot | None]:
    job = holder.get(prefix)
    return job, (job.snapshot() if job is not None else None)


def live_views(prefix: str, holder: JobHolder) -> None:
    """Draw the status, the loss and the heavy figures of the page's job, polling only while it is active."""
    _, snap = _snapshot(holder, prefix)
    mode = _poll_mode(snap)
    st.session_state[f"{prefix}__drawn"] = mode
    _, active, fast, queued = mode
    poll = (POLL_SECONDS if fast else STEADY_POLL_SECONDS) if active else None
    st.fragment(_status_and_loss, run_every=poll)(prefix, holder)
    # A queued run has no new plots: its page polls only its place in the line (thirty waiting tabs
    # polling fast cost a classroom's server as much CPU as a run).
    st.fragment(_heavy_views, run_every=HEAVY_POLL_SECONDS if active and not queued else None)(prefix, holder)


def _poll_mode(snap: Snapshot | None) -> tuple[str | None, bool, bool, bool]:
    """``(job id, active, fast polling, queued)``: when it changes, the page's polling must change too."""
    active = snap is not None and snap.active
    queued = active and snap.state == "queued"
    fast = active and not queued and snap.elapsed < FAST_POLL_FOR_SECONDS
    return (snap.job_id if snap else None, active, fast, queued)


def _status_and_loss(prefix: str, holder: JobHolder) -> None:
    job, snap = _snapshot(holder, prefix)
    drawn = st.session_state.get(f"{prefix}__drawn")
    if drawn is not None and drawn[1] and _poll_mode(snap) != drawn:
        # The run ended (or was replaced, left the queue, or is old enough for the slower polling): a full rerun redraws
        # the buttons and the results, and sets the polling anew.
        st.rerun()
    render_status(
        snap,
        stopping=bool(job is not None and snap is not None and snap.active and job.trainer.stopping),
        capacity=job_slots().capacity,
    )
    if snap is None:
        return
    cfg = snap.config
    lbfgs_from = cfg.adam_iters + 1 if cfg.lbfgs_iters and cfg.adam_iters else None
    st.plotly_chart(loss_figure(snap.history, lbfgs_from=lbfgs_from), key=_k(prefix, "loss_chart"), config=_PLOT_CONFIG)
    test = f", and the test NLL (blue) every {cfg.eval_every} iterations" if cfg.eval_every else ""
    st.caption(
        "The training negative log-likelihood per iteration (lower is better; orange)"
        f"{test}. Dotted, right axis: the ODE function evaluations (NFE) per iteration, which grow when the "
        "dynamics get harder to integrate (with adaptive solvers)."
    )


def _figure_cache(prefix: str, stamp: tuple[Any, ...]) -> dict[str, go.Figure]:
    """Figures built for one (job, visuals version, animated) stamp; a new stamp starts an empty cache."""
    key = f"{prefix}__figures"
    cache = st.session_state.get(key)
    if not cache or cache["stamp"] != stamp:
        cache = {"stamp": stamp, "figures": {}}
        st.session_state[key] = cache
    return cache["figures"]


def _chart(figures: dict[str, go.Figure], name: str, build: Callable[[], go.Figure], key: str) -> None:
    if name not in figures:
        figures[name] = build()
    st.plotly_chart(figures[name], key=key, config=_PLOT_CONFIG)


def _heavy_views(prefix: str, holder: JobHolder) -> None:
    _, snap = _snapshot(holder, prefix)
    if snap is None:
        return
    vis = snap.visuals
    if vis is None:
        if snap.active:
            st.caption("The density, trajectory and vector-field plots appear after the first iterations.")
        return
    animate = snap.state not in ("running", "queued")
    figures = _figure_cache(prefix, (snap.job_id, snap.visuals_version, animate))
    one_d = len(vis.density.axes) == 1
    refresh = " These plots refresh every few seconds while training." if snap.state == "running" else ""
    st.caption(f"The model at iteration {vis.iteration:,}.{refresh}")
    tabs = st.tabs(list(VIEW_TABS), key=_k(prefix, "view"), on_change="rerun")
    with tabs[0]:
        if tabs[0].open:
            _chart(figures, "density", lambda: density_figure(vis.density), _k(prefix, "density_chart"))
            if one_d:
                st.caption(
                    "Grey bars: the training data. Dark line: the true density. Orange: the density the flow "
                    "has learned; training pulls it onto the dark line."
                )
            else:
                st.caption(
                    "Left: the target density. Right: the density the flow has learned, with white dots "
                    "sampled from the flow; training makes the two pictures match."
                )
    with tabs[1]:
        if tabs[1].open:
            _chart(
                figures,
                "trajectories",
                lambda: trajectory_figure(vis.trajectories, animate=animate),
                _k(prefix, "trajectory_chart"),
            )
            play = (
                "Press Play, or drag the slider, to watch the samples move over t."
                if animate
                else "Pause the run (or let it finish) to play the animation over t."
            )
            if one_d:
                st.caption(f"Each line is one sample's path x(t) from the base N(0, 1) at t0 to data at t1. {play}")
            else:
                st.caption(
                    "Each line carries one point of the base Gaussian (grey dots, t0) to data space (t1); the "
                    f"colour marks where it started, so you can see how the flow cuts and folds space. {play}"
                )
            if one_d and vis.density_path is not None:
                _chart(
                    figures,
                    "density_path",
                    lambda: density_path_figure(vis.density_path, vis.trajectories),
                    _k(prefix, "density_path_chart"),
                )
                st.caption(
                    "Brightness: the density p(x, t) of the flowing distribution, from N(0, 1) at t0 to the "
                    "learned density at t1. White lines follow individual samples."
                )
    with tabs[2]:
        if tabs[2].open:
            _chart(figures, "field", lambda: field_figure(vis.field), _k(prefix, "field_chart"))
            if one_d:
                st.caption(
                    "Colour: the velocity f(t, x) that moves a sample at position x and time t; red pushes it "
                    "up, blue pushes it down, white leaves it still."
                )
            else:
                st.caption(
                    "Arrows: the velocity f(t, z) that moves points at time t (colour: speed). Drag the slider "
                    "to choose t."
                )


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


def metrics_rows(metrics: Metrics) -> list[dict[str, str]]:
    """The metrics table: one row per figure, with what it means.

    Example:
        >>> m = Metrics(seed_tv=0.01, tv=0.02, kl=0.003, integral=0.999, test_nll=1.07, density_kind="exact")
        >>> [r["metric"] for r in metrics_rows(m)][:2]
        ['seed TV', 'grid TV']
    """
    return [
        {"metric": "seed TV", "value": f"{metrics.seed_tv:.4g}", "meaning": "½·mean |p_model − p_true| at the data"},
        {"metric": "grid TV", "value": f"{metrics.tv:.4g}", "meaning": "½ ∫ |p_model − p_true| (0 is perfect)"},
        {"metric": "KL", "value": f"{metrics.kl:.4g}", "meaning": "KL(p_true ‖ p_model) on the grid"},
        {"metric": "test NLL", "value": f"{metrics.test_nll:.4g}", "meaning": "held-out negative log-likelihood"},
        {"metric": "∫p", "value": f"{metrics.integral:.4g}", "meaning": "the learned density's mass (should be 1)"},
    ]


def samples_csv(samples: np.ndarray) -> str:
    """Samples (n, d) as CSV text with a header (``x`` or ``x1,x2``).

    Example:
        >>> samples_csv(np.array([[1.0, 2.0]])).splitlines()
        ['x1,x2', '1,2']
    """
    samples = np.asarray(samples)
    header = "x" if samples.shape[1] == 1 else ",".join(f"x{i + 1}" for i in range(samples.shape[1]))
    buf = io.StringIO()
    np.savetxt(buf, samples, delimiter=",", fmt="%.7g", header=header, comments="")
    return buf.getvalue()


def results(prefix: str, holder: JobHolder) -> None:
    """After a run: the metrics table, "Generate n samples" with a CSV download, and the checkpoint and
    config downloads. Draws nothing while a run is active or before the first."""
    st.fragment(_results)(prefix, holder)


def _results(prefix: str, holder: JobHolder) -> None:
    job, snap = _snapshot(holder, prefix)
    if job is None or snap is None or snap.active:
        return
    cfg = snap.config
    st.subheader("Results")
    with st.container(key=_k(prefix, "metrics")):
        if snap.metrics is not None:
            st.table(metrics_rows(snap.metrics))
            kind = "exact" if snap.metrics.density_kind == "exact" else "a histogram/KDE estimate"
            cost = snap.metrics.sample_nfe
            sampling = (
                f" Sampling cost: {cost:,} function evaluations to draw 10,000 samples (dopri5 at 1e-5)."
                if cost is not None
                else ""
            )
            st.caption(f"Measured with an accurate adaptive solver; the true density here is {kind}.{sampling}")
        else:
            st.warning("The final metrics could not be computed for this model (the ODE solver gave up).")

    state = st.session_state
    n_key = _k(prefix, "sample_n")
    if n_key not in state:
        state[n_key] = 1000
    c1, c2 = st.columns([2, 1], vertical_alignment="bottom")
    n = c1.number_input("Samples to generate", 1, 20_000, step=500, key=n_key)
    store = f"{prefix}__samples"
    if c2.button("Generate samples", key=_k(prefix, "sample_button"), width="stretch"):
        try:
            gen = torch.Generator().manual_seed(cfg.seed + 12_345)
            samples = job.model.sample(int(n), generator=gen, solver=LIVE_SOLVER).double().cpu().numpy()
            state[store] = (job.job_id, samples)
        except (SolverError, RuntimeError, ValueError) as err:
            st.error(f"Sampling failed: {plain(err)}")
    stored = state.get(store)
    if stored is not None and stored[0] == job.job_id:
        samples = stored[1]
        st.plotly_chart(
            samples_figure(samples, target=job.target), key=_k(prefix, "samples_chart"), config=_PLOT_CONFIG
        )
        st.caption("Fresh samples pushed through the trained flow, over the true density (1D) or as points (2D).")
        st.download_button(
            f"Download {len(samples):,} samples (CSV)",
            data=samples_csv(samples),
            file_name=f"cnfviz-samples-{_slug(cfg.target)}.csv",
            mime="text/csv",
            key=_k(prefix, "samples_download"),
            on_click="ignore",
        )
    extra = {"metrics": snap.metrics.to_dict()} if snap.metrics is not None else {}
    model = job.model
    c1, c2 = st.columns(2)
    c1.download_button(
        "Download the checkpoint (.pt)",
        data=lambda: checkpoint_bytes(model, cfg, extra=extra, target_data=_checkpoint_data(job.target)),
        file_name=f"cnfviz-{_slug(cfg.target)}.pt",
        mime="application/octet-stream",
        key=_k(prefix, "checkpoint_download"),
        on_click="ignore",
        width="stretch",
    )
    c2.download_button(
        "Download the config (JSON)",
        data=cfg.to_json(),
        file_name=f"cnfviz-{_slug(cfg.target)}.json",
        mime="application/json",
        key=_k(prefix, "config_download"),
        on_click="ignore",
        width="stretch",
    )


def _checkpoint_data(target: Target) -> np.ndarray | None:
    """The samples a custom target travels with in a checkpoint: it has no name to be rebuilt from."""
    if isinstance(target, SamplesTarget):
        return np.asarray(target.data)
    if isinstance(target, ImageTarget):
        return target.sample(CHECKPOINT_IMAGE_SAMPLES, seed=0)
    return None


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text)
