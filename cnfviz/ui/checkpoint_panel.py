"""Load a checkpoint on the Train page: its model is shown like a finished run, and the sidebar moves to its settings.

The uploader's ``on_change`` callback does the work, so it runs once per upload (never again on a rerun)
and before the sidebar is drawn, while its widgets may still be changed. It loads the file with
:func:`cnfviz.load_checkpoint` (``weights_only=True``, at most :data:`MAX_CHECKPOINT_MB`), starts an
evaluate-only job under the page's name, which computes the plots and final metrics of the loaded weights
and ends "done", and then writes the checkpoint's config into the controls
(:func:`~cnfviz.ui.apply_config_to_state`), so that **Train** trains the same setup from scratch.
**Continue** trains the loaded model on, like a stopped run: a checkpoint that carries its training state
(the Adam moments, the iteration count, the random streams and the loss history) goes on exactly where the
saved run was; an older one, weights only, goes on with a fresh optimizer, and says so.
A checkpoint of custom data (target ``samples`` or ``image``) carries its samples (``target_data``), and
the job is shown on a :class:`~cnfviz.targets.SamplesTarget` rebuilt from them, as an uploaded CSV would be.
A bad file changes nothing: the panel says what is wrong and the page goes on as before.

Widget keys (prefix ``p``): ``p_checkpoint`` (the expander) and ``p_checkpoint_upload`` (the file
uploader). Session key: ``p__checkpoint``, the :class:`LoadedCheckpoint` of the last upload.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

import streamlit as st

from .._validation import ConfigError
from ..targets import SamplesTarget, Target, make_target
from ..training.checkpoint import checkpoint_bytes, load_checkpoint
from ..training.config import TrainConfig
from .custom_target import CONFIG_TARGETS
from .keys import widget_key as _key
from .session import JobHolder, job_holder
from .sidebar import WIDTH_MAX, apply_config_to_state
from .text import plain

__all__ = [
    "MAX_CHECKPOINT_MB",
    "LoadedCheckpoint",
    "checkpoint_panel",
    "checkpoint_run",
    "download_bytes",
    "load_upload",
]

MAX_CHECKPOINT_MB = 8
"""The largest checkpoint the panel takes: the widest network the sidebar builds (8 layers of 256) is
1.9 MB of weights, 6.2 MB with its training state (the Adam moments double it; 5,000 iterations of history
and a 20,000-sample permutation add 0.5 MB), with room for the samples of a custom target."""


@dataclass(frozen=True)
class LoadedCheckpoint:
    """What one upload gave: an error, or the job that shows it (and notes on what could not follow)."""

    file_id: str
    name: str
    error: str | None = None
    config: TrainConfig | None = None
    job_id: str | None = None
    notes: tuple[str, ...] = ()


def _state_key(prefix: str) -> str:
    return f"{prefix}__checkpoint"


def checkpoint_run(config: TrainConfig, info: dict[str, Any]) -> tuple[TrainConfig, Target]:
    """The config and target to show a loaded checkpoint with.

    A named target is built from the config, whose parameters then list every value as the sidebar reads
    them back (a config that leaves them to the defaults would otherwise differ from the controls, and the
    page would ask whether to discard the run). Custom data is rebuilt from the samples it carries.

    Raises:
        ConfigError: target parameters that do not build, custom data without its samples, or samples
            that do not make a target.
    """
    if config.target not in CONFIG_TARGETS.values():
        target = make_target(config.target, config.target_params)
        return config.replace(target_params=dict(target.params)), target
    data = info.get("target_data")
    if data is None:
        raise ConfigError(
            f'this checkpoint was trained on your own data (target "{config.target}") but does not carry it, '
            "so its density cannot be drawn; `cnfviz sample` still samples from it"
        )
    try:
        return config, SamplesTarget(data, name="samples")
    except ConfigError as err:
        raise ConfigError(f"the checkpoint's own data cannot be shown: {err}") from None


def load_upload(
    prefix: str,
    holder: JobHolder,
    file_id: str,
    name: str,
    data: bytes,
    state: MutableMapping[str, Any] | None = None,
) -> LoadedCheckpoint:
    """Load ``data`` as a checkpoint and start showing it under ``prefix``; never raises for a bad file.

    Call it from a callback (or before the controls are drawn): on success it moves the controls to the
    checkpoint's config, in ``state`` (``st.session_state`` by default).
    """
    try:
        model, config, info = load_checkpoint(data, max_bytes=MAX_CHECKPOINT_MB * 1_000_000)
        config, target = checkpoint_run(config, info)
        resume = info.get("training")
        job = holder.start(
            config, name=prefix, target=target, init_state=model.state_dict(), evaluate_only=True, resume=resume
        )
    except ConfigError as err:
        return LoadedCheckpoint(file_id, name, error=str(err))
    except Exception as err:  # the model or its target could not be built in a way no check foresaw
        return LoadedCheckpoint(file_id, name, error=f"the checkpoint could not be shown ({type(err).__name__}: {err})")
    notes = []
    if resume is None:
        notes.append("It holds weights only (an older cnfviz saved it), so Continue trains on with a fresh optimizer.")
    hidden = config.model.hidden
    if len(set(hidden)) > 1 or max(hidden, default=0) > WIDTH_MAX:
        notes.append(
            f"Its network (hidden layers {' × '.join(map(str, hidden))}) is not one the sidebar builds (the same "
            f"width in every layer, at most {WIDTH_MAX}), so Train would train the nearest one the sidebar shows."
        )
    if config.target == "image":
        notes.append("Its picture is shown as the samples it carries, so the target density is an estimate.")
    try:
        apply_config_to_state(prefix, config, state)
    except (ConfigError, ValueError) as err:
        notes.append(f"The sidebar cannot show its settings ({err}), so it keeps its own.")
    return LoadedCheckpoint(file_id, name, config=config, job_id=job.job_id, notes=tuple(notes))


def download_bytes(
    model: Any,
    config: TrainConfig,
    *,
    training: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> tuple[bytes, bool]:
    """The Download button's checkpoint, and whether it carries the run's training state: it does when the
    state is given and the file stays within :data:`MAX_CHECKPOINT_MB`, so that this panel takes it back;
    otherwise the weights alone (Continue after a Load then starts a fresh optimizer). ``kwargs`` go to
    :func:`~cnfviz.training.checkpoint.checkpoint_bytes` (``extra``, ``target_data``)."""
    if training is not None:
        data = checkpoint_bytes(model, config, training=training, **kwargs)
        if len(data) <= MAX_CHECKPOINT_MB * 1_000_000:
            return data, True
    return checkpoint_bytes(model, config, **kwargs), False


def _on_upload(prefix: str) -> None:
    state = st.session_state
    upload = state.get(_key(prefix, "checkpoint_upload"))
    if upload is None:  # the file was removed: the model stays on screen, the message goes
        state.pop(_state_key(prefix), None)
        return
    seen = state.get(_state_key(prefix))
    if isinstance(seen, LoadedCheckpoint) and seen.file_id == upload.file_id:
        return
    # The session's holder as of now (not one captured when the widget was drawn).
    state[_state_key(prefix)] = load_upload(prefix, job_holder(), upload.file_id, upload.name, upload.getvalue())


def _describe(config: TrainConfig) -> str:
    m = config.model
    layers = " × ".join(str(w) for w in m.hidden) if m.hidden else "no hidden layer (an affine field)"
    return (
        f"a flow for {config.target}, hidden layers {layers}, {m.activation}, t from {m.tspan[0]:g} to {m.tspan[1]:g}"
    )


def checkpoint_panel(prefix: str, holder: JobHolder, *, popover: bool = False) -> None:
    """The "Load a checkpoint" expander: upload a ``.pt`` file to see its model as a finished run (which
    Continue trains on).

    Draw it after :func:`~cnfviz.ui.run_buttons` and before :func:`~cnfviz.ui.live_views`. While a run
    trains, the uploader is disabled (loading would replace the run).
    """
    job = holder.get(prefix)
    snap = job.snapshot() if job is not None else None
    training = snap is not None and not snap.loaded and snap.active  # (a loaded model that Continue trains is a run)
    loaded = st.session_state.get(_state_key(prefix))
    if not isinstance(loaded, LoadedCheckpoint):
        loaded = None
    icon, key = ":material/upload_file:", _key(prefix, "checkpoint")
    # A popover opens over the page (the Train page's toolbar); an expander pushes what follows down.
    box = (
        st.popover("Load", icon=icon, key=key, help="Load a checkpoint")
        if popover
        else st.expander("Load a checkpoint", icon=icon, key=key)
    )
    with box:
        st.file_uploader(
            "A checkpoint (.pt) saved by cnfviz",
            type=["pt"],
            key=_key(prefix, "checkpoint_upload"),
            max_upload_size=MAX_CHECKPOINT_MB,
            on_change=_on_upload,
            args=(prefix,),
            disabled=training,
            help="The **Download the checkpoint** button below a finished run, or `cnfviz train --save`, writes "
            f"one. At most {MAX_CHECKPOINT_MB} MB. Only weights, numbers and text are read from it, never code.",
        )
        if training:
            st.caption("Stop the run first: loading a checkpoint replaces it.")
        if loaded is None:
            st.caption("See a flow you trained before: its density, trajectories, metrics and samples, as after a run.")
        elif loaded.error:
            st.error(f"Could not load {plain(loaded.name)}: {plain(loaded.error)}", icon=":material/error:")
        else:
            current = job is not None and job.job_id == loaded.job_id
            what = plain(_describe(loaded.config)) if loaded.config is not None else "a flow"
            st.success(
                f"Loaded {plain(loaded.name)}: {what}."
                + (" The plots and metrics below are its model's." if current else ""),
                icon=":material/check_circle:",
            )
            st.caption(
                "The sidebar holds its settings now: **Continue** trains this model on, **Train** trains the same "
                "setup from scratch."
            )
            for note in loaded.notes:
                st.caption(plain(note))
