"""The toolbar: the run buttons (Train, Pause/Resume, Step, Stop, Continue, Reset) and any panels the page adds
as popovers, in one row; the learning rate and λ weights applied live; and the question before a live run
is discarded.

Buttons only record what was asked (in their callbacks); :func:`run_buttons` carries it out after the
controls have been read, so Train always uses the settings on screen, and draws the buttons afterwards,
so they show the new state. Widget keys (prefix ``p``): ``p_train_button``, ``p_pause_button`` (its label
reads Resume while paused), ``p_step_button``, ``p_stop_button``, ``p_continue_button`` (trains a run that
ended done or stopped on), ``p_reset_button``, and, while the settings differ from an active run's in more
than the learning rate and the λ weights (those apply at the next iteration, with a toast),
``p_discard_button`` ("Discard run and apply") and ``p_keep_button`` ("Keep running"). Only custom data
changing under a run (a new upload or stroke) asks
nothing: the run keeps its copy, and a note says so. Set ``st.session_state["p__request"] = "train"``
before this runs to start a run as if Train were pressed (a lesson link's autostart does).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import streamlit as st

from ..training.trainer import live_update
from .keys import widget_key as _k
from .session import JobHolder, job_holder
from .sidebar import ControlsResult, apply_config_to_state
from .text import plain

__all__ = ["FIRST_POINT_WAIT_SECONDS", "run_buttons"]

FIRST_POINT_WAIT_SECONDS = 0.4
"""After Train, how long the page may wait for the first iteration before it draws."""


def _request(prefix: str, what: str) -> None:
    st.session_state[f"{prefix}__request"] = what


def _keep_running(prefix: str) -> None:
    job = job_holder().get(prefix)
    if job is not None:
        apply_config_to_state(prefix, job.config)
    st.session_state.pop(f"{prefix}__request", None)


def _continue(prefix: str) -> None:
    # In the callback, before the controls are drawn: the sidebar takes the extended run's settings (more
    # iterations), so they still match the run and no "discard?" question follows.
    job = job_holder().get(prefix)
    if job is not None and job.continue_training():
        apply_config_to_state(prefix, job.config)


def _forget_views(prefix: str) -> None:
    for suffix in ("__figures", "__samples"):
        st.session_state.pop(f"{prefix}{suffix}", None)


def _carry_out(prefix: str, what: str | None, controls: ControlsResult, holder: JobHolder) -> None:
    job = holder.get(prefix)
    if what in ("train", "restart"):
        if controls.ok:
            _forget_views(prefix)
            try:
                job = holder.start(controls.config, name=prefix, target=controls.target)
            except Exception as err:  # building the model or the data failed: say so, keep the page alive
                st.session_state[f"{prefix}__start_error"] = f"{type(err).__name__}: {err}"
                return
            # Drawing the first loss point in this very run saves a polling interval.
            deadline = time.monotonic() + FIRST_POINT_WAIT_SECONDS
            while job.snapshot().iteration == 0 and job.alive and time.monotonic() < deadline:
                time.sleep(0.02)
    elif what == "reset":
        holder.discard(prefix)
        _forget_views(prefix)
    elif job is not None and what == "pause":
        job.pause()
    elif job is not None and what == "resume":
        job.resume()
    elif job is not None and what == "step":
        job.step()
    elif job is not None and what == "stop":
        job.stop()


def _apply_live(prefix: str, controls: ControlsResult, holder: JobHolder) -> None:
    """A new learning rate or λ weights under an active run go to the run itself, at its next iteration."""
    job = holder.get(prefix)
    if job is None or not controls.ok or controls.config is None:
        return
    snap = job.snapshot()
    if snap.active and not snap.loaded and live_update(snap.config, controls.config):
        try:
            job.update_config(controls.config)
        except ValueError:
            return
        st.toast("Applied to the run from its next iteration.", icon=":material/tune:")


def run_buttons(
    prefix: str, controls: ControlsResult, holder: JobHolder, *, tools: Sequence[Callable[[], None]] = ()
) -> None:
    """Carry out the last button press, then draw the toolbar (the buttons, then each of ``tools`` in a
    column of its own, e.g. a popover), any validation errors and, when the settings changed under an
    active run in a way it cannot take live, the question whether to discard it."""
    _carry_out(prefix, st.session_state.pop(f"{prefix}__request", None), controls, holder)
    _apply_live(prefix, controls, holder)
    start_error = st.session_state.pop(f"{prefix}__start_error", None)
    job = holder.get(prefix)
    snap = job.snapshot() if job is not None else None
    active = snap is not None and snap.active
    paused = active and job.trainer.paused
    stopping = active and job.trainer.stopping
    can_continue = job is not None and not active and job.can_continue
    # One row that wraps only on a narrow screen: buttons as wide as their labels.
    row = st.container(horizontal=True, gap="small", key=_k(prefix, "buttons"))
    cols = [row] * (6 + len(tools))
    cols[0].button(
        "Train",
        key=_k(prefix, "train_button"),
        type="primary",
        icon=":material/play_arrow:",
        disabled=active or not controls.ok,
        on_click=_request,
        args=(prefix, "train"),
        help="Start a run with the settings in the sidebar." if controls.ok else "Fix the settings first.",
    )
    cols[1].button(
        "Resume" if paused else "Pause",
        key=_k(prefix, "pause_button"),
        icon=":material/play_circle:" if paused else ":material/pause:",
        disabled=not active or stopping,
        on_click=_request,
        args=(prefix, "resume" if paused else "pause"),
    )
    cols[2].button(
        "Step",
        key=_k(prefix, "step_button"),
        icon=":material/skip_next:",
        disabled=not paused or stopping,
        on_click=_request,
        args=(prefix, "step"),
        help="One iteration while paused.",
    )
    cols[3].button(
        "Stop",
        key=_k(prefix, "stop_button"),
        icon=":material/stop:",
        disabled=not active or stopping,
        on_click=_request,
        args=(prefix, "stop"),
        help="End the run and keep its model and plots.",
    )
    cols[4].button(
        "Continue",
        key=_k(prefix, "continue_button"),
        icon=":material/fast_forward:",
        disabled=not can_continue,
        on_click=_continue,
        args=(prefix,),
        help="Train this run on from where it ended: the same model, optimizer and history. A run that finished "
        "gets as many Adam iterations again (and its time budget again).",
    )
    cols[5].button(
        "Reset",
        key=_k(prefix, "reset_button"),
        icon=":material/restart_alt:",
        disabled=job is None,
        on_click=_request,
        args=(prefix, "reset"),
        help="Stop and clear the run, its plots and results.",
    )
    for tool in tools:
        with row:
            tool()
    if start_error:
        st.error(f"The run could not start: {plain(start_error)}", icon=":material/error:")
    if not controls.ok and controls.waiting and len(controls.errors) == 1:
        st.info(plain(controls.waiting), icon=":material/upload_file:")
    elif not controls.ok:
        lines = "\n".join(f"- {plain(msg)}" for msg in controls.errors if msg != controls.waiting)
        st.error(f"Fix the settings in the sidebar before training:\n{lines}", icon=":material/tune:")
    elif active and controls.config == snap.config and controls.target != job.target:
        # Only the custom data changed (a new upload or stroke): no question, the run keeps its copy.
        st.info(
            "The run trains on your data as it was when you pressed Train. Stop it and press Train to use the changes.",
            icon=":material/info:",
        )
    elif active and controls.config != snap.config:
        with st.container(border=True, key=_k(prefix, "discard_prompt")):
            st.warning(
                "You changed the settings while a run is active. Discard the run and start again with the new "
                "settings, or keep it running (the sidebar goes back to its settings)?",
                icon=":material/warning:",
            )
            c1, c2 = st.columns(2)
            c1.button(
                "Discard run and apply",
                key=_k(prefix, "discard_button"),
                type="primary",
                on_click=_request,
                args=(prefix, "restart"),
                width="stretch",
            )
            c2.button(
                "Keep running",
                key=_k(prefix, "keep_button"),
                on_click=_keep_running,
                args=(prefix,),
                width="stretch",
            )
