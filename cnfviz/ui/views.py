"""The live views of a run on one screen: status, loss, learned-vs-true density and the flow, side by side,
each updated in place; and the results once a run ends.

Every live chart is a :func:`~cnfviz.ui.live_chart.live_chart`, which updates one Plotly div with
``Plotly.react`` instead of remounting it: a user's zoom and pan survive the updates and nothing blanks.
The status and the loss poll every :data:`POLL_SECONDS` while a run is active (every
:data:`STEADY_POLL_SECONDS` once it has trained a while); the density and flow figures are built once per
``visuals_version`` of the job and cached (as JSON) in session state, and their fragment looks for a new
version every :data:`HEAVY_POLL_SECONDS`. The flow's points move on the client, z → x in a loop, all the
time: the server sends the paths once per model version, never per frame.

The layout keeps its place: the status row has a fixed height (the end of a run and the solver's notes
appear in it without moving anything), the three charts have fixed heights, and the explanations sit
below them.

Widget keys (prefix ``p``): ``p_status`` (container of the status row), ``p_loss_chart``,
``p_density_chart``, ``p_flow_chart`` (the live charts), ``p_field_overlay`` (toggle: the vector field over
the flow), ``p_metrics`` (container of the metrics table), ``p_sample_n``, ``p_sample_button``,
``p_samples_chart``, ``p_samples_download``, ``p_checkpoint_download``, ``p_config_download``.
"""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import streamlit as st
import torch

from ..figures.plots import density_figure, flow_figure, loss_figure, loss_series, samples_figure
from ..figures.views import LIVE_SOLVER, Visuals
from ..flow.solver import SolverError
from ..runtime.job import Snapshot, TrainingJob
from ..targets import ImageTarget, SamplesTarget, Target
from ..training.metrics import Metrics
from . import stream
from .checkpoint_panel import download_bytes
from .keys import widget_key as _k
from .layout import back_row
from .live_chart import Animation, chart_spec, live_chart
from .session import JobHolder, job_slots
from .status import render_status
from .text import plain

__all__ = [
    "CHART_HEIGHT",
    "CHECKPOINT_IMAGE_SAMPLES",
    "FAST_POLL_FOR_SECONDS",
    "HEAVY_POLL_SECONDS",
    "POLL_SECONDS",
    "PRESENT_CHART_HEIGHT",
    "STEADY_POLL_SECONDS",
    "live_specs",
    "live_views",
    "loss_chart_spec",
    "loss_curves",
    "metrics_rows",
    "refresh_costs",
    "respec",
    "results",
    "samples_csv",
]

POLL_SECONDS = 0.5
"""How often the status and loss refresh while a run is young..."""
STEADY_POLL_SECONDS = 1.0
"""...and once it has trained for :data:`FAST_POLL_FOR_SECONDS` (each refresh costs the server a script run
and the browser a redraw; both share a classroom laptop's cores with the training)."""
FAST_POLL_FOR_SECONDS = 15.0
HEAVY_POLL_SECONDS = 2.0
"""How often the density and flow look for new plot data while a run is active."""
CHART_HEIGHT = 400
"""The live charts' height in pixels: with the sidebar open, the toolbar, the status and all three charts
fit a 1366×768 screen."""
PRESENT_CHART_HEIGHT = 480
"""...and in presentation mode (no sidebar, no toolbar)."""
CHECKPOINT_IMAGE_SAMPLES = 10_000
"""A picture target travels in a checkpoint as this many of its samples (the loaded run estimates its
density from them)."""
_PLOT_CONFIG = {"displaylogo": False}
_COSTS_KEY = "__refresh_costs"


def _snapshot(holder: JobHolder, prefix: str) -> tuple[TrainingJob | None, Snapshot | None]:
    job = holder.get(prefix)
    return job, (job.snapshot() if job is not None else None)


def live_views(prefix: str, holder: JobHolder, *, present: bool = False) -> None:
    """Draw the status row, then the loss, the density and the flow side by side.

    On a server that mounts the live channel (:mod:`cnfviz.ui.stream`) nothing polls: the charts follow the
    run on the page's stream and the page reruns only when the run changes state. Elsewhere (AppTest, a
    page run on its own) the fragments poll while the page's job is active, as they always did.
    ``present``: the taller charts and bigger type of presentation mode."""
    _, snap = _snapshot(holder, prefix)
    mode = _poll_mode(snap)
    st.session_state[f"{prefix}__drawn"] = mode
    _, active, fast, queued, _ = mode
    height = PRESENT_CHART_HEIGHT if present else CHART_HEIGHT
    live = None
    status_live = None
    if stream.enabled():
        # The status row is its own component on its own stream (only the status part of the run's stream).
        status_live = {"key": _k(prefix, "live_status"), "url": None, "present": present}
    if snap is not None and active and stream.enabled():
        overlay = bool(st.session_state.get(_k(prefix, "field_overlay"), False))
        token = stream.stream_token(holder, prefix, snap, height=height, present=present, overlay=overlay)
        live = {
            "url": f"../..{stream.STREAM_PREFIX}/{token}",
            "channel": token,
            "status": _k(prefix, "status"),
            # As drawn: a rerun the stream asked for changes it, so the frame reopens its stream even when no
            # point or picture changed.
            "drawn": list(stream.drawn_mode(snap)),
        }
        # The status component lives in the page itself (no iframe): its URL is the page's, not a frame's.
        status_live = {**(status_live or {}), "url": f"{stream.STREAM_PREFIX}/{token}"}
    poll = (POLL_SECONDS if fast else STEADY_POLL_SECONDS) if active and live is None else None
    with st.container(key=_k(prefix, "status")):
        st.fragment(_status, run_every=poll)(prefix, holder, status_live)
    if snap is None:
        return
    c_loss, c_views = st.columns([0.8, 2.7], gap="small")
    with c_loss:
        st.fragment(_loss, run_every=poll)(prefix, holder, height, present, live)
    with c_views:
        # A queued run has no new plots: its page polls only its place in the line.
        heavy = HEAVY_POLL_SECONDS if active and not queued and live is None else None
        st.fragment(_heavy_views, run_every=heavy)(prefix, holder, height, present, live)


def _poll_mode(snap: Snapshot | None) -> tuple[str | None, bool, bool, bool, bool]:
    """``(job id, active, fast polling, queued, training)``: when it changes, the page's polling must change too."""
    active = snap is not None and (snap.active or snap.finishing)  # finishing: its final pictures and metrics
    queued = active and snap.state == "queued"
    fast = active and not queued and snap.elapsed < FAST_POLL_FOR_SECONDS
    # Last, whether it trains: a run that has just ended redraws its buttons while its final metrics come.
    return (snap.job_id if snap else None, active, fast, queued, bool(snap is not None and snap.active))


def _status(prefix: str, holder: JobHolder, live: dict[str, Any] | None = None) -> None:
    _, snap = _snapshot(holder, prefix)
    drawn = st.session_state.get(f"{prefix}__drawn")
    if drawn is not None and drawn[1] and _poll_mode(snap) != drawn:
        # The run ended (or was replaced, left the queue, or is old enough for the slower polling): a full
        # rerun redraws the buttons and the results, and sets the polling anew.
        st.rerun()
    render_status(
        snap,
        stopping=bool(snap is not None and snap.active and snap.stopping),
        capacity=job_slots().capacity,
        live=live,
        present=bool(live and live.get("present")),
    )


def _big(fig: go.Figure, present: bool) -> go.Figure:
    if present:
        back_row(fig)  # ticks, legends and the t readout at 20 px
    return fig


def _record_cost(name: str, seconds: float) -> None:
    costs = st.session_state.setdefault(_COSTS_KEY, {})
    n, total, worst = costs.get(name, (0, 0.0, 0.0))
    costs[name] = (n + 1, total + seconds, max(worst, seconds))


def refresh_costs() -> dict[str, tuple[int, float, float]]:
    """What this session's refreshes cost the server so far, per chart: ``(refreshes, total seconds, worst
    seconds)`` of building and serialising its figure (or finding it cached)."""
    return dict(st.session_state.get(_COSTS_KEY, {}))


def _loss_figure(snap: Snapshot, lbfgs_from: int | None, height: int, present: bool) -> go.Figure:
    # The figure names its curves (legend below) and titles its axes per objective: see loss_figure.
    return _big(loss_figure(snap.history, lbfgs_from=lbfgs_from, height=height), present)


def _typed(a: np.ndarray) -> dict[str, str]:
    """An array as plotly.js's typed-array JSON (what plotly.py writes for numpy arrays)."""
    a = np.asarray(a)
    a = a.astype(np.int32) if a.dtype.kind in "iu" else a.astype(np.float32)
    return {"dtype": "i4" if a.dtype.kind == "i" else "f4", "bdata": base64.b64encode(a.tobytes()).decode("ascii")}


def _loss_spec(prefix: str, snap: Snapshot, height: int, present: bool) -> str:
    """The loss chart's spec. Building a plotly figure costs tens of ms, twice a second: the figure is built
    when its set of curves changes, and otherwise its layout and trace styles are reused with new arrays."""
    cfg = snap.config
    lbfgs_from = cfg.adam_iters + 1 if cfg.lbfgs_iters and cfg.adam_iters else None
    names, curves, lbfgs = loss_series(snap.history, lbfgs_from=lbfgs_from)
    stamp = (snap.job_id, names, lbfgs, height, present, not len(curves[0][0]))
    key = f"{prefix}__loss_skeleton"
    skeleton = st.session_state.get(key)
    if skeleton is None or skeleton[0] != stamp:
        fig = _loss_figure(snap, lbfgs_from, height, present)
        plain_fig = json.loads(pio.to_json(fig, validate=False))
        styles = [{k: v for k, v in t.items() if k not in ("x", "y")} for t in plain_fig["data"]]
        st.session_state[key] = (stamp, json.dumps(plain_fig["layout"]), styles)
        return chart_spec(fig)
    _, layout, styles = skeleton
    return respec(layout, styles, curves)


def respec(layout: str, styles: list[dict[str, Any]], curves: list[tuple[np.ndarray, np.ndarray]]) -> str:
    """A live chart's spec from a figure's layout (JSON), its trace styles (each trace's JSON less ``x`` and
    ``y``) and new ``(x, y)`` arrays for them: what a refresh sends when only the data changed."""
    data = [{**style, "x": _typed(x), "y": _typed(y)} for style, (x, y) in zip(styles, curves, strict=True)]
    return f'{{"figure": {{"data": {json.dumps(data)}, "layout": {layout}}}, "anim": null}}'


def loss_curves(snap: Snapshot) -> tuple[tuple[str, ...], list[tuple[np.ndarray, np.ndarray]]]:
    """The loss chart's traces as the live channel extends them: their names (and ``"LBFGS"`` once the chart
    marks that stage: the figure changes then) and each trace's ``(x, y)``, in the chart's trace order."""
    cfg = snap.config
    lbfgs_from = cfg.adam_iters + 1 if cfg.lbfgs_iters and cfg.adam_iters else None
    names, curves, lbfgs = loss_series(snap.history, lbfgs_from=lbfgs_from)
    return (*names, *(("LBFGS",) if lbfgs else ())), curves


def loss_chart_spec(snap: Snapshot, *, height: int, present: bool, overlay: bool = False) -> str:
    """The loss chart's whole spec for ``snap`` (what the live channel sends when a curve appears)."""
    cfg = snap.config
    lbfgs_from = cfg.adam_iters + 1 if cfg.lbfgs_iters and cfg.adam_iters else None
    return chart_spec(_loss_figure(snap, lbfgs_from, height, present))


def _loss(prefix: str, holder: JobHolder, height: int, present: bool, live: dict[str, Any] | None = None) -> None:
    _, snap = _snapshot(holder, prefix)
    if snap is None:
        return
    start = time.perf_counter()
    spec = _loss_spec(prefix, snap, height, present)
    _record_cost("loss", time.perf_counter() - start)
    if live is not None:
        _, curves = loss_curves(snap)
        vis_version = snap.visuals_version if snap.visuals is not None else -1
        live = {**live, "role": "loss", "n": [len(x) for x, _ in curves], "v": vis_version}
    asked = live_chart(spec, key=_k(prefix, "loss_chart"), height=height, stream=live)
    seen = f"{prefix}__stream_rerun"
    if asked is not None and asked != st.session_state.get(seen):
        # The stream saw the run change state (or the chart gain a curve): this fragment run was triggered by
        # that, and the whole page must redraw (buttons, results, the next stream).
        st.session_state[seen] = asked
        st.rerun()


def _cached_spec(prefix: str, stamp: tuple[Any, ...], name: str, build: Callable[[], str]) -> str:
    """The JSON of a figure built once per (job, visuals version, options) stamp."""
    key = f"{prefix}__figures"
    cache = st.session_state.get(key)
    if not cache or cache["stamp"] != stamp:
        cache = {"stamp": stamp, "specs": {}}
        st.session_state[key] = cache
    specs = cache["specs"]
    if name not in specs:
        specs[name] = build()
    return specs[name]


def _density_spec(vis: Visuals, height: int, present: bool) -> str:
    fig = density_figure(vis.density, height=height, compact=True)
    fig.update_layout(title={"text": f"Density at iteration {vis.iteration:,}"}, margin={"t": 70, "l": 35})
    return chart_spec(_big(fig, present))


def _flow_spec(vis: Visuals, height: int, present: bool, overlay: bool) -> str:
    flow = flow_figure(
        vis.trajectories, field=vis.field if overlay else None, density_path=vis.density_path, height=height
    )
    flow.figure.update_layout(margin={"t": 70, "l": 40})
    animation = Animation(
        trace=flow.moving,
        paths=flow.paths,
        t0=flow.t0,
        t1=flow.t1,
        field_trace=flow.field,
        field_times=flow.field_times,
        field_x=flow.field_x,
        field_y=flow.field_y,
        label=flow.label,
    )
    return chart_spec(_big(flow.figure, present), animation)


def live_specs(snap: Snapshot, *, height: int, present: bool, overlay: bool) -> tuple[str, str]:
    """The density and flow charts' specs for ``snap``'s pictures (which must exist), as the page draws them."""
    vis = snap.visuals
    assert vis is not None
    return _density_spec(vis, height, present), _flow_spec(vis, height, present, overlay)


def _waiting_spec(what: str, height: int) -> str:
    fig = go.Figure(layout={"height": height, "title": {"text": f"{what}: the first picture is on its way"}})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return chart_spec(fig)


def _heavy_views(
    prefix: str, holder: JobHolder, height: int, present: bool, live: dict[str, Any] | None = None
) -> None:
    _, snap = _snapshot(holder, prefix)
    if snap is None:
        return
    vis = snap.visuals
    if vis is None and live is not None:
        # The charts wait for their first pictures on the page's stream.
        c_density, c_flow = st.columns([1.6, 1], gap="small")
        with c_density:
            live_chart(
                _waiting_spec("Density", height),
                key=_k(prefix, "density_chart"),
                height=height,
                stream={**live, "role": "density"},
            )
        with c_flow:
            live_chart(
                _waiting_spec("Flow", height),
                key=_k(prefix, "flow_chart"),
                height=height,
                stream={**live, "role": "flow"},
            )
        return
    if vis is None:
        st.container(height=height, border=False).caption(
            "The density and the flow appear after the first iterations." if snap.active else ""
        )
        return
    overlay_key = _k(prefix, "field_overlay")
    overlay = bool(st.session_state.get(overlay_key, False))
    stamp = (snap.job_id, snap.visuals_version, height, present, overlay)
    c_density, c_flow = st.columns([1.6, 1], gap="small")
    start = time.perf_counter()
    density = _cached_spec(prefix, stamp, "density", lambda: _density_spec(vis, height, present))
    _record_cost("density", time.perf_counter() - start)
    start = time.perf_counter()
    flow = _cached_spec(prefix, stamp, "flow", lambda: _flow_spec(vis, height, present, overlay))
    _record_cost("flow", time.perf_counter() - start)
    with c_density:
        live_chart(
            density,
            key=_k(prefix, "density_chart"),
            height=height,
            stream=None if live is None else {**live, "role": "density"},
        )
    with c_flow:
        live_chart(
            flow,
            key=_k(prefix, "flow_chart"),
            height=height,
            stream=None if live is None else {**live, "role": "flow"},
            immediate=snap.state != "running",
        )
        st.toggle(
            "Vector field",
            key=overlay_key,
            help="Draw the velocity f(t, x) that moves the points: arrows at the points' t (2D), or the colour "
            "behind the paths (1D).",
        )
    if not present:
        _captions(vis, snap)


def _captions(vis: Visuals, snap: Snapshot) -> None:
    one_d = len(vis.density.axes) == 1
    refresh = " They refresh every few seconds while training." if snap.state == "running" else ""
    if one_d:
        density = "Grey bars: the training data; dark line: the true density; orange: the density the flow has learned."
        flow = (
            "Each white line is one sample's path x(t) from the base N(0, 1) at t0 to data at t1, over the "
            "density p(x, t) of the flowing distribution; the dots flow along them."
        )
    else:
        density = (
            "Left: the target density; right: the learned one, with white dots sampled from the flow. One colour "
            "scale for both: the same colour means the same density."
        )
        flow = (
            "Points of the base Gaussian (grey, t0) flow to data space (t1) along their paths; the colour marks "
            "where each started, so you can see how the flow cuts and folds space."
        )
    st.caption(f"The model at iteration {vis.iteration:,}.{refresh} {density} {flow}")


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
        data=lambda: download_bytes(
            model,
            cfg,
            extra=extra,
            target_data=_checkpoint_data(job.target),
            # Its optimizer, counters and history, so that a loaded copy can be continued (None: weights only).
            training=job.training_state() if hasattr(job, "training_state") else None,
        )[0],
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
