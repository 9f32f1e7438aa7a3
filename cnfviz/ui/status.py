"""The status bar of a run: progress, stage, speed and ETA, the current loss and NFE, and how the run ended."""

from __future__ import annotations

import math

import streamlit as st

from ..job import Snapshot
from .text import plain

__all__ = ["format_duration", "progress_text", "render_status"]


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
    head = f"Iteration {snap.iteration:,} / {snap.total:,} · {stage}"
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


def render_status(snap: Snapshot | None, *, stopping: bool = False, capacity: int | None = None) -> None:
    """Draw the status of a run (or a hint when there is none).

    Arguments:
        snap: the job's snapshot, or None before the first run.
        stopping: the user pressed Stop and the job is winding down.
        capacity: the server's cap on concurrent runs, shown to queued users.
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
        st.info(f"Waiting for a free training slot: you are {where}{cap}. Training starts by itself.")
    st.progress(snap.progress, text=progress_text(snap, stopping=stopping))
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Loss", "–" if snap.loss is None else f"{snap.loss:.4f}")
    c2.metric("NFE forward", f"{snap.nfe_forward:,}", help="Function evaluations of the dynamics, forward solves.")
    c3.metric("NFE backward", f"{snap.nfe_backward:,}", help="Function evaluations in the backward pass.")
    c4.metric("Training time", format_duration(snap.elapsed))
    if snap.state == "done":
        st.success(f"**Done**: {plain(snap.reason)}.", icon=":material/check_circle:")
    elif snap.state == "stopped":
        st.info(f"**Stopped**: {plain(snap.reason)}.", icon=":material/stop_circle:")
    elif snap.state == "failed":
        st.error(
            f"**Failed**: {plain(snap.reason)}. The plots and downloads below show the last good model.",
            icon=":material/error:",
        )
    for note in snap.notes:
        st.caption(f":material/info: {plain(note)}")
