"""The status bar of a run: progress, stage, speed and ETA, the current loss and NFE, and how the run ended.

Where the live channel is mounted (:mod:`cnfviz.ui.stream`), the progress line and the figures under it are
:func:`live_status`: a small component of its own, text in the page's DOM (no iframe, no canvas), which follows
the run's status stream between script runs, so it depends on no chart's frame. The same component draws the
Compare page's progress rows.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from pathlib import Path
from typing import Any

import streamlit as st

from ..runtime.job import Snapshot
from ..training.trainer import lbfgs_max_evaluations
from .text import plain

__all__ = [
    "STATUS_COMPONENT",
    "STATUS_NOTE_HEIGHT",
    "format_duration",
    "live_status",
    "progress_text",
    "progress_value",
    "render_status",
    "run_total",
]

STATUS_COMPONENT = "cnfviz_live_status"
"""The status component's name (a Streamlit v2 component: HTML, CSS and JS mounted in the page itself)."""
_STATIC = Path(__file__).with_name("live_chart_static")
_component_lock = threading.Lock()
_component: list[Any] = []

STATUS_NOTE_HEIGHT = 76
"""Pixels kept for the end of a run and the solver's notes, so that nothing moves when they appear."""


def format_duration(seconds: float | None) -> str:
    """A short human duration.

    Example:
        >>> format_duration(4.2), format_duration(125), format_duration(7300), format_duration(None)
        ('4.2 s', '2 min 5 s', '2 h 1 min', '–')
    """
    if seconds is None or not math.isfinite(seconds):
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def progress_text(snap: Snapshot, *, stopping: bool = False) -> str:
    """One line for the progress bar: iteration, stage, iterations/s and ETA (or what the run is doing)."""
    if snap.loaded:
        return (
            "Loaded from a checkpoint · computing its plots and metrics…" if snap.active else "Loaded from a checkpoint"
        )
    stage = "LBFGS" if snap.stage == "lbfgs" else "Adam"
    head = f"Iteration {snap.iteration:,} / {run_total(snap):,} · {stage}"
    if snap.state == "queued":
        return "Waiting for a free training slot"
    if stopping:
        return f"{head} · stopping, then computing the final metrics…"
    if snap.state == "running" and snap.iteration >= snap.total:
        return f"{head} · computing the final metrics…"
    if snap.state == "paused":
        return f"{head} · paused"
    if snap.state == "running":
        return f"{head} · {snap.its_per_sec:.1f} it/s · ETA {format_duration(snap.eta_seconds)}"
    return f"{head} · {format_duration(snap.elapsed)} of training"


def run_total(snap: Snapshot) -> int:
    """The iterations a run makes at most: its Adam iterations plus the loss evaluations its LBFGS stage may
    make (each is an iteration of the history, and a line search makes several per LBFGS step)."""
    cfg = snap.config
    return cfg.adam_iters + lbfgs_max_evaluations(cfg.lbfgs_iters)


def progress_value(snap: Snapshot) -> float:
    """The progress bar's fill in [0, 1]: full once a run is done (a time budget or an LBFGS stage that
    converged early ends it before its last iteration), else iterations over :func:`run_total`, or the time
    spent over a time budget when that is further along."""
    if snap.loaded:
        return 0.0 if snap.active else 1.0
    if snap.state == "done":
        return 1.0
    total = run_total(snap)
    by_iterations = min(1.0, snap.iteration / total) if total else 0.0
    # A time budget that ends the run first fills the bar by time, as its ETA counts (not 1.6 % at "ETA 3 s").
    budget = snap.config.max_seconds
    return max(by_iterations, min(1.0, snap.elapsed / budget)) if budget else by_iterations


def _figures(snap: Snapshot) -> str:
    parts = ["**Loss** " + ("–" if snap.loss is None else f"{snap.loss:.4f}"), f"**NFE** {snap.nfe_forward:,} forward"]
    if snap.nfe_backward:
        parts[-1] += f" + {snap.nfe_backward:,} backward (adjoint)"
    parts.append(f"**Training time** {format_duration(snap.elapsed)}")
    budget = snap.config.max_seconds
    if budget is not None:
        parts[-1] += f" of a {format_duration(budget)} budget"
    return " · ".join(parts)


def _status_component() -> Any:
    # Registered once per process; Streamlit puts the definition on each runtime that mounts it (AppTest's too).
    with _component_lock:
        if not _component:
            _component.append(
                st.components.v2.component(
                    STATUS_COMPONENT,
                    css=(_STATIC / "live_status.css").read_text(),
                    js=(_STATIC / "live_status.js").read_text(),
                    isolate_styles=False,  # the page's presentation-mode type sizes reach it
                )
            )
        return _component[0]


def live_status(payload: dict[str, Any], *, key: str, url: str | None = None, present: bool = False) -> None:
    """The status row as text in the page, following ``url`` (a stream of :mod:`cnfviz.ui.stream`) between
    script runs.

    Arguments:
        payload: what to show now: a run's status (``text``, ``value`` in [0, 1], ``figures`` as
            ``[words, bold]`` parts, ``notes``), or ``{"rows": [{"label", "color", "text", "value", "kind"}]}``
            (``kind`` ``"error"``: a run that failed, shown as an alert instead of a bar).
        key: the element's key (also the browser's handle on it: ``window.cnfvizStatus[key]``).
        url: the stream, or None while nothing changes (a run that ended).
        present: presentation mode's type (at least 20 px).
    """
    text = json.dumps(payload, sort_keys=True)
    rev = hashlib.blake2b(f"{text}|{url}|{present}".encode(), digest_size=8).hexdigest()
    data = {"key": key, "rev": rev, "payload": payload, "url": url, "present": bool(present)}
    _status_component()(key=key, data=data, height="content")


def render_status(
    snap: Snapshot | None,
    *,
    stopping: bool = False,
    capacity: int | None = None,
    live: dict[str, Any] | None = None,
    present: bool = False,
) -> None:
    """Draw the status of a run (or a hint when there is none).

    Arguments:
        snap: the job's snapshot, or None before the first run.
        stopping: the user pressed Stop and the job is winding down.
        capacity: the server's cap on concurrent runs, shown to queued users.
        live: where the live channel is mounted: ``{"key": the status component's key, "url": the run's
            stream or None}``; the progress line, the figures and the notes are then :func:`live_status`.
        present: presentation mode (the live status's bigger type).
    """
    if snap is None:
        st.info("Pick a target in the sidebar and press **Train**: the plots below come alive within a second.")
        return
    if snap.state == "queued":
        where = f"number **{snap.queue_position}** in the queue" if snap.queue_position else "in the queue"
        cap = ""
        if capacity:
            cap = (
                " (this server trains one run at a time)" if capacity == 1 else f" ({capacity} runs train at once here)"
            )
        why = f" Waiting because {snap.reason}." if snap.reason else ""
        st.info(f"Waiting for a free training slot: you are {where}{cap}.{why} Training starts by itself.")
    left, right = st.columns([1.5, 1], vertical_alignment="top")
    if live is not None:
        from .stream import status_payload

        with left:
            live_status(status_payload(snap, stopping=stopping), key=live["key"], url=live["url"], present=present)
        _ending(snap, right, notes=False)
        return
    left.progress(progress_value(snap), text=progress_text(snap, stopping=stopping))
    left.markdown(
        _figures(snap),
        help="NFE: evaluations of the dynamics f(t, z) by the ODE solver, summed over the forward solves. Direct "
        "backpropagation differentiates through those solves and needs none of its own; with the adjoint "
        "method the backward pass solves an ODE too, and its evaluations are shown after the +.",
    )
    _ending(snap, right, notes=True)


def _ending(snap: Snapshot, column: Any, *, notes: bool) -> None:
    # A fixed height: the end of a run and the notes appear without moving the charts below.
    with column.container(height=STATUS_NOTE_HEIGHT, border=False):
        if snap.state == "done":
            st.success(f"**Done**: {plain(snap.reason)}.", icon=":material/check_circle:")
        elif snap.state == "stopped":
            st.info(f"**Stopped**: {plain(snap.reason)}.", icon=":material/stop_circle:")
        elif snap.state == "failed":
            # A run that failed before any good iteration has no pictures and says so in its reason.
            kept = " The plots and downloads below show the last good model." if snap.visuals is not None else ""
            st.error(f"**Failed**: {plain(snap.reason)}.{kept}", icon=":material/error:")
        for note in snap.notes if notes else ():
            st.caption(f":material/info: {plain(note)}")
