"""The Compare page: set up two to six runs, train them under the server's job cap, and show them side by side.

The page reads its controls into a list of :class:`~cnfviz.features.compare.Run` (:func:`comparison_setup`), starts
one :class:`~cnfviz.TrainingJob` per run in the session's :class:`~cnfviz.ui.JobHolder` under the names
``compare_0`` ... ``compare_5`` (:func:`comparison_buttons`), so the runs queue on the same server-wide
slots as the Train page and stop when the tab closes, then draws a progress row per run and the overlaid
loss curves, polling only while a run is active (:func:`comparison_live`), and at the end a grid of the
learned densities and the metrics table (:func:`comparison_results`)::

    holder = job_holder()
    setup = comparison_setup()
    comparison_buttons(setup, holder)
    comparison_live(holder)
    comparison_results(holder)

Where the live channel is mounted (``app.py``: :mod:`cnfviz.ui.stream`), nothing polls: the page gets one stream
token for its comparison (:func:`~cnfviz.ui.stream.compare_token`), the loss chart extends every run's curves
from it and hands each run's new density to that run's chart, the progress rows follow its status part, and a
script reruns only when a run changes state. Elsewhere (AppTest) the live part polls every
:data:`COMPARE_POLL_SECONDS` while a run is active.

``?preset=hutchinson`` (or any name in :data:`~cnfviz.features.compare.COMPARE_PRESETS`) in the URL opens the page
on that preset's runs.

Widget keys:

==============================  ===================================================================
key                             widget
==============================  ===================================================================
``compare_mode``                radio: ``knob`` (One knob), ``table`` (Table of runs), ``files``
                                (Config files), ``preset`` (Preset)
``compare_target``              selectbox: the target (modes knob and table)
``compare_adam_iters``          number input: Adam iterations per run (modes knob and table)
``compare_knob``                selectbox: the knob to vary, a name in :data:`~cnfviz.features.compare.KNOBS`
``compare_values_<knob>``       text input: 2 to 6 values, e.g. ``16, 32, 64`` (numeric knobs)
``compare_choices_<knob>``      multiselect: 2 to 6 choices (``solver``, ``trace``)
``compare_table``               data editor: one row per run, columns ``label`` and
                                :data:`~cnfviz.features.compare.TABLE_KNOBS` (a blank cell keeps the default)
``compare_upload``              file uploader: 2 to 6 config JSON files, as the Train page downloads them
``compare_preset``              selectbox: a comparison preset
``compare_budget``              number input: seconds of training per run (every mode)
``compare_start_button``        button: start the comparison (replaces the last one)
``compare_stop_button``         button: stop every run of the comparison
``compare_loss_chart``          chart: every run's loss and NFE per iteration (a live chart where the live
                                channel is mounted)
``compare_live_status``         the progress rows as one live status component (live channel only)
``compare_live_density_<i>``    chart: run i's density while the runs train
``compare_target_chart``        chart: the target density (2D targets, after the end)
``compare_density_chart_<i>``   chart: run i's learned density (after the end; i counts from 0)
``compare_metrics``             container of the metrics table
``compare_open_<i>``            button: open run i's config on the Train page
==============================  ===================================================================
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from .._text import MAX_LABEL_CHARS, figure_text, printable
from .._validation import ConfigError
from ..features.compare import (
    BEST_MARK,
    COLUMNS,
    COMPARE_PRESETS,
    KNOBS,
    MAX_RUNS,
    TABLE_KNOBS,
    Run,
    RunOutcome,
    config_summary,
    parameter_count,
    results_table,
    runs_from_configs,
    runs_from_knob,
    runs_from_preset,
    runs_from_table,
    with_budget,
)
from ..features.links import config_to_query
from ..figures.compare import loss_curves_figure, run_color, run_density_figure, target_density_figure
from ..figures.plots import decimate, nfe_per_iteration
from ..runtime.job import Snapshot, TrainingJob
from ..targets import SCIPY_PREFIX, TARGETS, scipy_params
from ..training.config import TrainConfig
from ..training.presets import PRESETS, default_config, target_dim
from . import stream
from .keys import widget_key
from .live_chart import chart_spec, live_chart
from .session import JobHolder, job_holder, job_slots
from .sidebar import target_choices
from .status import format_duration, live_status
from .text import plain

__all__ = [
    "COMPARE_POLL_SECONDS",
    "DEFAULT_BUDGET_SECONDS",
    "DEFAULT_ITERATIONS",
    "MAX_CONFIG_MB",
    "MODES",
    "Setup",
    "compare_loss_spec",
    "compare_series",
    "compare_targets",
    "comparison_buttons",
    "comparison_live",
    "comparison_results",
    "comparison_setup",
    "live_density_specs",
    "metrics_table_rows",
    "progress_payload",
    "run_status_text",
]

PREFIX = "compare"
MODES: dict[str, str] = {"knob": "One knob", "table": "Table of runs", "files": "Config files", "preset": "Preset"}
"""The ways to set up a comparison, by ``compare_mode`` value."""
_DEFAULT_TARGET = "moons"
DEFAULT_BUDGET_SECONDS = 120
"""The default time cap per run: only a safety net. Runs end by their iterations, the same for every run, so
the machine's load cannot decide the comparison; a cap short enough to bite gave likelihood 45 iterations
against 1,300 for flow matching on a busy server."""
SETUP_HEIGHT_WHILE_RUNNING = 170
"""While a comparison runs, its set-up box scrolls in this many pixels, so the progress is on screen at 768."""
DEFAULT_ITERATIONS: dict[int, int] = {1: 300, 2: 400}
"""Adam iterations per run by default, by target dimension (the fast defaults' own counts, if lower):
the same count for every run keeps a comparison fair, and small counts keep it quick."""
COMPARE_POLL_SECONDS = 1.0
"""How often the progress rows and the loss chart refresh while a run is active."""
LOSS_CHART_HEIGHT = 380
"""The loss chart's height in pixels (what :func:`~cnfviz.figures.compare.loss_curves_figure` draws)."""
MAX_CONFIG_MB = 1
"""The largest config file the upload takes (a config is about a kilobyte)."""
_PLOT_CONFIG = {"displaylogo": False}
_CHOICE_DEFAULTS = {
    "solver": ("rk4", "dopri5"),
    "trace": ("exact", "hutchinson-rademacher"),
    "objective": ("likelihood", "flow-matching", "ot-flow-matching"),
}
_STARTED = f"{PREFIX}__started"
_DRAWN = f"{PREFIX}__drawn"
_REQUEST = f"{PREFIX}__request"
_QUERY = f"{PREFIX}__query"
_FIGURES = f"{PREFIX}__figures"


def _k(name: str) -> str:
    return widget_key(PREFIX, name)


@st.cache_data(show_spinner=False)
def compare_targets() -> tuple[str, ...]:
    """The targets the picker offers: those that need no parameters (the registry, and the scipy
    distributions without shape parameters). Others, and custom data, come in through config files."""
    out = []
    for name in target_choices():
        if name.startswith(SCIPY_PREFIX):
            if not any(p.required for p in scipy_params(name[len(SCIPY_PREFIX) :])):
                out.append(name)
        elif name in TARGETS and not any(p.required for p in TARGETS[name].params):
            out.append(name)
    return tuple(out)


def _target_label(name: str) -> str:
    if name.startswith(SCIPY_PREFIX):
        return f"scipy: {name[len(SCIPY_PREFIX) :]} (1D)"
    return f"{name} ({TARGETS[name].dim}D)"


# --------------------------------------------------------------------------------------------------
# Setup
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """What the controls describe: the runs (empty while invalid) and one message per problem."""

    runs: tuple[Run, ...]
    errors: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return bool(self.runs) and not self.errors


def _apply_link() -> str | None:
    """Open on the link's ``?preset=`` once per new value; a notice if it names no comparison preset."""
    preset = st.query_params.get("preset")
    if preset is None:
        return None
    if preset not in COMPARE_PRESETS:
        return f'The link asks for preset "{preset}", which has no comparison; try one of {list(COMPARE_PRESETS)}.'
    state = st.session_state
    if state.get(_QUERY) != preset:
        state[_QUERY] = preset
        state[_k("mode")] = "preset"
        state[_k("preset")] = preset
    return None


def _default_iterations(target: str) -> int:
    return min(default_config(target).adam_iters, DEFAULT_ITERATIONS[target_dim(target)])


def _on_target_change() -> None:
    # A 1D and a 2D target differ in speed, and so in the iterations a quick comparison can afford.
    target = st.session_state[_k("target")]
    st.session_state[_k("adam_iters")] = _default_iterations(target)


def _base_controls() -> TrainConfig:
    state = st.session_state
    choices = compare_targets()
    if state.get(_k("target")) not in choices:
        state[_k("target")] = _DEFAULT_TARGET
        state[_k("adam_iters")] = _default_iterations(_DEFAULT_TARGET)
    c1, c2 = st.columns([3, 2])
    target = c1.selectbox(
        "Target",
        choices,
        format_func=_target_label,
        key=_k("target"),
        on_change=_on_target_change,
        help="Every run learns this distribution, starting from its fast defaults.",
    )
    iters = c2.number_input(
        "Adam iterations per run",
        min_value=1,
        max_value=100_000,
        step=100,
        key=_k("adam_iters"),
        help="The same for every run, so that the comparison is fair (the learning rate decays over them).",
    )
    base = default_config(target, adam_iters=int(iters))
    st.caption(f"Fast defaults for this target: {config_summary(base)}.")
    return base


def _suggestion(knob: str, base: TrainConfig) -> str:
    width = max(base.model.hidden, default=32)
    t1 = base.model.tspan[1]
    return {
        "width": f"{max(1, width // 2)}, {width}, {width * 2}",
        "depth": "1, 2, 3",
        "t1": f"{t1 / 2:g}, {t1:g}, {t1 * 2:g}",
        "lambda_kinetic": "0, 0.01, 0.1",
        "lambda_jacobian": "0, 0.01, 0.1",
        "lambdas": "0, 0.01, 0.1",
        "lr": f"{base.lr / 3:.1g}, {base.lr:g}, {base.lr * 3:.1g}",
        "seed": "0, 1, 2",
    }[knob]


def _knob_setup() -> list[Run]:
    base = _base_controls()
    c1, c2 = st.columns([2, 3])
    name = c1.selectbox(
        "Knob to vary",
        list(KNOBS),
        format_func=lambda n: f"{KNOBS[n].label}: {KNOBS[n].description}",
        key=_k("knob"),
    )
    knob = KNOBS[name]
    if knob.kind == "choice":
        values: Any = c2.multiselect(
            f"Values of {knob.label} (2 to {MAX_RUNS})",
            list(knob.choices),
            default=list(_CHOICE_DEFAULTS.get(name, knob.choices[:2])),
            max_selections=MAX_RUNS,
            key=_k(f"choices_{name}"),
        )
    else:
        values = c2.text_input(
            f"Values of {knob.label} (2 to {MAX_RUNS}, separated by commas)",
            value=_suggestion(name, base),
            key=_k(f"values_{name}"),
        )
    return runs_from_knob(base, knob, values)


def _table_rows(base: TrainConfig) -> list[dict[str, Any]]:
    first = {"label": "fast defaults", **{n: KNOBS[n].get(base) for n in TABLE_KNOBS}}
    width = max(base.model.hidden, default=32)
    second = {**first, "label": "half as wide", "width": max(1, width // 2)}
    return [first, second]


def _table_setup() -> list[Run]:
    base = _base_controls()
    number = st.column_config.NumberColumn
    columns = {
        "label": st.column_config.TextColumn("label", help="The run's name in the legend and the table."),
        "width": number("width", min_value=1, max_value=1024, step=1, help=KNOBS["width"].description),
        "depth": number("depth", min_value=0, max_value=8, step=1, help=KNOBS["depth"].description),
        "t1": number("t1", help=KNOBS["t1"].description),
        "solver": st.column_config.SelectboxColumn("solver", options=list(KNOBS["solver"].choices)),
        "trace": st.column_config.SelectboxColumn("trace", options=list(KNOBS["trace"].choices)),
        "lambda_kinetic": number(
            KNOBS["lambda_kinetic"].label, min_value=0.0, help=KNOBS["lambda_kinetic"].description
        ),
        "lambda_jacobian": number(
            KNOBS["lambda_jacobian"].label, min_value=0.0, help=KNOBS["lambda_jacobian"].description
        ),
        "lr": number("lr", min_value=0.0, format="%g", help=KNOBS["lr"].description),
    }
    rows = st.data_editor(
        _table_rows(base), key=_k("table"), num_rows="dynamic", column_config=columns, width="stretch"
    )
    st.caption(f"One row per run (2 to {MAX_RUNS}); add rows at the bottom. A blank cell keeps the fast default.")
    return runs_from_table(base, rows)


def _files_setup() -> list[Run]:
    files = st.file_uploader(
        f"Config files (2 to {MAX_RUNS}), as the Train page's **Download the config** saves them",
        type=["json"],
        accept_multiple_files=True,
        key=_k("upload"),
        max_upload_size=MAX_CONFIG_MB,
    )
    if not files:
        st.info(
            "Train a flow on the Train page, download its config (JSON), change what you want to compare, and "
            "drop the files here. All runs must learn the same target."
        )
        return []
    items = []
    for f in files:
        if f.size > MAX_CONFIG_MB * 1_000_000:
            raise ConfigError(f"{f.name} has {f.size:,} bytes; a config file is at most {MAX_CONFIG_MB} MB")
        try:
            text = f.getvalue().decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(
                f"{f.name} is not a text (JSON) file: upload the config JSON the Train page saves"
            ) from None
        items.append((PurePath(f.name).stem, text))
    return runs_from_configs(items)


def _preset_setup() -> list[Run]:
    name = st.selectbox(
        "Comparison preset", list(COMPARE_PRESETS), format_func=lambda n: PRESETS[n].title, key=_k("preset")
    )
    st.caption(PRESETS[name].description)
    runs = runs_from_preset(name)
    st.caption(f"Every run: {config_summary(runs[0].config)}.")
    return runs


_SETUPS: dict[str, Callable[[], list[Run]]] = {
    "knob": _knob_setup,
    "table": _table_setup,
    "files": _files_setup,
    "preset": _preset_setup,
}


def comparison_setup() -> Setup:
    """Draw the set-up controls and read them into runs; never raises for bad input."""
    notice = _apply_link()
    if notice:
        st.warning(plain(notice))  # it quotes the link
    state = st.session_state
    if state.get(_k("budget")) is None:
        state[_k("budget")] = DEFAULT_BUDGET_SECONDS
    errors: list[str] = []
    runs: list[Run] = []
    _, entries = _entries(job_holder())
    with st.container(border=True, height=SETUP_HEIGHT_WHILE_RUNNING if _active(entries) else "content"):
        mode = st.radio("Set up the runs with", list(MODES), format_func=MODES.get, horizontal=True, key=_k("mode"))
        try:
            runs = _SETUPS[mode]()
        except ConfigError as err:
            errors.extend(getattr(err, "problems", None) or [str(err)])
        except Exception as err:  # e.g. a config file whose values break a target: say so, keep the page alive
            errors.append(f"{type(err).__name__}: {err}")
        c1, c2 = st.columns([1, 2], vertical_alignment="bottom")
        budget = c1.number_input(
            "Safety time cap per run (seconds)",
            min_value=1,
            max_value=600,
            step=5,
            key=_k("budget"),
            help="Every run trains for its iterations (the same number for each, so the comparison is fair "
            "whatever else the machine does); this cap only stops a run that would take far too long. Runs that "
            "hit it have done fewer iterations, which the results table shows.",
        )
        if runs:
            try:
                runs = with_budget(runs, max_seconds=float(budget))
            except ConfigError as err:
                errors.append(str(err))
        if runs and not errors:
            cap = job_slots().capacity
            rounds = math.ceil(len(runs) / cap)
            when = (
                "They all train at once (runs of one network shape as one stack)"
                if rounds == 1
                else f"This server trains {cap} at a time"
            )
            iters = sorted({r.config.adam_iters for r in runs})
            each = f"{iters[0]:,} iterations each" if len(iters) == 1 else f"{iters[0]:,} to {iters[-1]:,} iterations"
            c2.caption(
                f"{len(runs)} runs: {' · '.join(_label(r.label) for r in runs)}; {each}. {when}; none trains "
                f"longer than {format_duration(float(budget))}."
            )
        for message in errors:
            st.error(plain(message), icon=":material/error:")  # messages quote file names, labels and values
    return Setup(tuple(runs) if not errors else (), tuple(errors))


# --------------------------------------------------------------------------------------------------
# Jobs
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Started:
    """A comparison this session started: its runs, the jobs' names and ids in the holder (None where a
    job could not be built, with the reason in ``errors``)."""

    uid: str
    runs: tuple[Run, ...]
    names: tuple[str, ...]
    job_ids: tuple[str | None, ...]
    errors: tuple[str, ...]


@dataclass(frozen=True)
class _Entry:
    index: int
    run: Run
    job: TrainingJob | None
    snap: Snapshot | None
    error: str

    @property
    def job_name(self) -> str:
        return _job_name(self.index)


def _job_name(i: int) -> str:
    return f"{PREFIX}_{i}"


def _entries(holder: JobHolder) -> tuple[_Started | None, list[_Entry]]:
    started: _Started | None = st.session_state.get(_STARTED)
    if started is None:
        return None, []
    entries = []
    for i, (run, name, job_id, error) in enumerate(
        zip(started.runs, started.names, started.job_ids, started.errors, strict=True)
    ):
        job = holder.get(name) if job_id is not None else None
        if job_id is not None and (job is None or job.job_id != job_id):
            # The holder no longer has this comparison's jobs (its session cache was cleared).
            st.session_state.pop(_STARTED, None)
            return None, []
        entries.append(_Entry(i, run, job, job.snapshot() if job is not None else None, error))
    return started, entries


def _active(entries: list[_Entry]) -> bool:
    return any(e.snap is not None and (e.snap.active or e.snap.finishing) for e in entries)


def _start(runs: tuple[Run, ...], holder: JobHolder) -> None:
    for i in range(MAX_RUNS):
        holder.discard(_job_name(i))
    st.session_state.pop(_FIGURES, None)
    job_ids: list[str | None] = []
    errors: list[str] = []
    for i, run in enumerate(runs):
        try:
            job = holder.start(run.config, name=_job_name(i))
            job_ids.append(job.job_id)
            errors.append("")
        except Exception as err:  # building the model or the data failed: this run fails, the others go on
            job_ids.append(None)
            errors.append(f"{type(err).__name__}: {err}")
    st.session_state[_STARTED] = _Started(
        uuid.uuid4().hex, runs, tuple(_job_name(i) for i in range(len(runs))), tuple(job_ids), tuple(errors)
    )


def _request(what: str) -> None:
    st.session_state[_REQUEST] = what


def comparison_buttons(setup: Setup, holder: JobHolder) -> None:
    """Carry out the last button press, then draw Start and Stop all."""
    what = st.session_state.pop(_REQUEST, None)
    _, entries = _entries(holder)
    if what == "start" and setup.ok and not _active(entries):
        _start(setup.runs, holder)
        st.rerun()  # the set-up box folds to a few lines, so the progress below is on screen
    elif what == "stop":
        for e in entries:
            if e.job is not None:
                e.job.stop()
    _, entries = _entries(holder)
    active = _active(entries)
    # Buttons as wide as their labels, in one row: a third of a column cut "Start the comparison" short.
    c1 = c2 = st.container(horizontal=True, gap="small")
    c1.button(
        "Start the comparison",
        key=_k("start_button"),
        type="primary",
        icon=":material/play_arrow:",
        disabled=active or not setup.ok,
        on_click=_request,
        args=("start",),
        help="Stop the runs first" if active else None,
    )
    c2.button(
        "Stop all",
        key=_k("stop_button"),
        icon=":material/stop:",
        disabled=not active,
        on_click=_request,
        args=("stop",),
    )


# --------------------------------------------------------------------------------------------------
# Live: a progress row per run, and the loss curves
# --------------------------------------------------------------------------------------------------


def run_status_text(snap: Snapshot) -> str:
    """One line for a run's progress row.

    Example:
        >>> from cnfviz import TrainingJob, default_config
        >>> job = TrainingJob(default_config("normal", adam_iters=3, eval_every=0, n_test=100))
        >>> run_status_text(job.start().join(60).snapshot()).startswith("done")
        True
    """
    head = f"iteration {snap.iteration:,} / {snap.total:,}"
    if snap.state == "queued":
        where = f" (#{snap.queue_position})" if snap.queue_position else ""
        return f"queued{where}: waiting for a free training slot"
    budget = snap.config.max_seconds
    if snap.state in ("running", "paused") and (
        snap.iteration >= snap.total or (budget is not None and snap.elapsed >= budget)
    ):
        return f"{head} · computing the final metrics…"
    if snap.state == "paused":
        return f"{head} · paused"
    if snap.state == "running" and snap.iteration == 0:
        return "starting…"
    if snap.state == "running":
        loss = "" if snap.loss is None else f" · loss {snap.loss:.3f}"
        return f"{head} · {snap.its_per_sec:.0f} it/s{loss}"
    took = f"{snap.iteration:,} iterations in {format_duration(snap.elapsed)}"
    return f"{snap.state}: {snap.reason} · {took}"


def _fraction(snap: Snapshot) -> float:
    if not snap.active:
        return 1.0 if snap.state == "done" else snap.progress
    budget = snap.config.max_seconds
    by_time = min(1.0, snap.elapsed / budget) if budget else 0.0
    return max(snap.progress, by_time)


def _swatch(label: str, i: int) -> str:
    return f"<span style='color:{run_color(i)};font-size:1.2em'>■</span> **{_label(label)}**"


def _label(text: str) -> str:
    """A run's label as markdown shows it literally: on one line, invisible characters marked, cut short."""
    return plain(" ".join(str(text).splitlines()), MAX_LABEL_CHARS)


def _progress_row(e: _Entry) -> None:
    c1, c2 = st.columns([1, 3], vertical_alignment="center")
    c1.markdown(_swatch(e.run.label, e.index), unsafe_allow_html=True)
    if e.snap is None:
        c2.error(f"Could not start: {plain(e.error)}", icon=":material/error:")
    elif e.snap.state == "failed":
        c2.error(f"Failed: {plain(e.snap.reason)}. The others carry on.", icon=":material/error:")
    else:
        c2.progress(_fraction(e.snap), text=run_status_text(e.snap))


def comparison_live(holder: JobHolder) -> None:
    """A progress row per run, the overlaid loss curves and each run's live density. Where the live channel is
    mounted they follow the comparison's stream; elsewhere they poll while a run is active."""
    started, entries = _entries(holder)
    active = _active(entries)
    st.session_state[_DRAWN] = (started.uid if started else None, active)
    # Where the live channel is mounted, the fragment binds the comparison's stream itself (on every run of it,
    # fragment runs too), so that the stream always knows the states the page last drew.
    live: dict[str, Any] | None = {} if stream.enabled() else None
    st.fragment(_live, run_every=COMPARE_POLL_SECONDS if active and live is None else None)(holder, live)


def _live(holder: JobHolder, live: dict[str, Any] | None = None) -> None:
    started, entries = _entries(holder)
    if started is None:
        st.info(
            "Set up two to six runs above and press **Start the comparison**: a progress row and a loss curve "
            "per run appear here, and the learned densities and a metrics table when they are done."
        )
        return
    active = _active(entries)
    drawn = st.session_state.get(_DRAWN)
    if drawn is not None and drawn[1] and (started.uid, active) != drawn:
        st.rerun()  # the last run ended: a full rerun draws the results and stops the polling
    st.subheader("Progress")
    curves = _curves(entries)
    token: str | None = None
    if live is None:
        for e in entries:
            _progress_row(e)
        st.plotly_chart(loss_curves_figure(curves), key=_k("loss_chart"), config=_PLOT_CONFIG)
    else:
        token = _bind(holder, entries) if active else None
        rows = progress_payload([(e.index, e.run.label, e.snap, e.error) for e in entries])
        live_status(rows, key=_k("live_status"), url=f"{stream.STREAM_PREFIX}/{token}" if token else None)
        _streamed_loss_chart(entries, curves, token)
    st.caption(
        "Left: the negative log-likelihood, lower is better: a likelihood run's training NLL (line) and every "
        "run's test NLL (dots; a flow-matching run has only these), one scale for all. Middle: the ODE function "
        "evaluations per iteration, the cost of one step. Right (flow matching only): its own regression loss. "
        "Colours match the rows above."
    )
    if active and live is None:
        _live_densities(started, entries)
    elif active:
        _streamed_densities(started, entries, token)


def _bind(holder: JobHolder, entries: list[_Entry]) -> str:
    """The comparison's stream token, bound to the runs as this script run draws them."""
    runs = [(e.index, e.job_name, e.snap) for e in entries if e.snap is not None]
    errors = {str(e.index): e.error for e in entries if e.snap is None}
    labels = [e.run.label for e in entries]
    return stream.compare_token(holder, runs, height=LOSS_CHART_HEIGHT, labels=labels, errors=errors)


def _curves(entries: list[_Entry]) -> list[tuple[str, Mapping[str, np.ndarray]]]:
    """``(label, history)`` per run, in order, as the loss chart draws them (a run that never started: none)."""
    return [(e.run.label, e.snap.history if e.snap is not None else {}) for e in entries]


def _streamed_loss_chart(
    entries: list[_Entry], curves: list[tuple[str, Mapping[str, np.ndarray]]], token: str | None
) -> None:
    spec = compare_loss_spec(curves, height=LOSS_CHART_HEIGHT)
    follow = None
    if token:
        _, series = compare_series(curves)
        versions = [e.snap.visuals_version if e.snap.visuals is not None else -1 for e in entries if e.snap is not None]
        follow = {
            "url": f"../..{stream.STREAM_PREFIX}/{token}",
            "channel": token,
            "role": "loss",
            "n": [len(x) for x, _ in series],
            "v": versions,
            # The runs' states as drawn: a rerun that the stream asked for changes them, so the frame gets new
            # arguments and opens the next stream even when no point or picture changed (a stop while finishing).
            "drawn": [list(mode) for mode in stream.compare_drawn([e.snap for e in entries if e.snap is not None])],
        }
    asked = live_chart(spec, key=_k("loss_chart"), height=LOSS_CHART_HEIGHT, stream=follow)
    seen = f"{PREFIX}__stream_rerun"
    if asked is not None and asked != st.session_state.get(seen):
        # The stream saw a run change state: the whole page redraws (its rows, buttons, results, next stream).
        st.session_state[seen] = asked
        st.rerun()


# --------------------------------------------------------------------------------------------------
# The live channel's view of a comparison (no st.* calls: cnfviz.ui.stream builds its messages with these)
# --------------------------------------------------------------------------------------------------


def _is_regression(history: Mapping[str, np.ndarray]) -> bool:
    # As loss_curves_figure decides it: a flow-matching run computes no training NLL (all NaN).
    nll = np.asarray(history.get("nll", np.zeros(0)), dtype=np.float64)
    return bool(len(nll)) and bool(np.isnan(nll).all())


def compare_series(
    curves: Sequence[tuple[str, Mapping[str, np.ndarray]]], *, max_points: int = 600
) -> tuple[tuple[str, ...], list[tuple[np.ndarray, np.ndarray]]]:
    """The traces of :func:`~cnfviz.figures.compare.loss_curves_figure` in its order, as the live channel
    extends them: each trace's name (``"nll:0"``, ``"test:0"``, ``"fm:1"``, ``"nfe:1"``: what and whose; when the
    names change, the figure does) and its ``(x, y)``, shapes (n,) each.

    Arguments:
        curves: ``(label, history)`` per run, in order, as the figure takes them.
        max_points: each curve is decimated to at most this many points, as in the figure.
    """
    names: list[str] = []
    series: list[tuple[np.ndarray, np.ndarray]] = []
    for i, (_, history) in enumerate(curves):
        it = np.asarray(history.get("iteration", np.zeros(0)))
        test = (
            np.asarray(history.get("test_iteration", np.zeros(0))),
            np.asarray(history.get("test_nll", np.zeros(0))),
        )
        if _is_regression(history):
            names.append(f"test:{i}")
            series.append(test)
            loss = history.get("loss")
            if loss is not None and len(loss) == len(it) and len(it):
                names.append(f"fm:{i}")
                series.append(decimate(it, np.asarray(loss), max_points))
        else:
            nll = np.asarray(history.get("nll", np.zeros(0)), dtype=np.float64)
            names.append(f"nll:{i}")
            series.append(decimate(it, nll, max_points))
            if len(test[0]):
                names.append(f"test:{i}")
                series.append(test)
        nfe = history.get("nfe")
        if nfe is not None and len(nfe) == len(it) and len(nfe):
            names.append(f"nfe:{i}")
            series.append(decimate(it, nfe_per_iteration(nfe), max_points))
    return tuple(names), series


def compare_loss_spec(
    curves: Sequence[tuple[str, Mapping[str, np.ndarray]]], *, height: int = LOSS_CHART_HEIGHT
) -> str:
    """The loss chart's live-chart spec: every run's curves (:func:`~cnfviz.figures.compare.loss_curves_figure`)."""
    return chart_spec(loss_curves_figure(list(curves), height=height))


def progress_payload(runs: Sequence[tuple[int, str, Snapshot | None, str]]) -> dict[str, Any]:
    """The progress rows as the live status component draws them, from ``(index, label, snapshot or None,
    error)`` per run: ``{"rows": [{"label", "color", "text", "value", "kind"}]}`` (``kind`` ``"error"``: a run
    that could not start or failed, whose text says why)."""
    rows = []
    for i, label, snap, error in runs:
        # The component writes text nodes, never HTML or markdown: user text needs no escaping, only its
        # invisible characters marked and its length cut (as the page's own rows show it).
        shown = printable(" ".join(str(label).splitlines()), MAX_LABEL_CHARS)
        row: dict[str, Any] = {"label": shown, "color": run_color(i), "kind": "progress"}
        if snap is None:
            row.update(kind="error", text=f"Could not start: {printable(error)}", value=0.0)
        elif snap.state == "failed":
            row.update(kind="error", text=f"Failed: {printable(snap.reason)}. The others carry on.", value=0.0)
        else:
            row.update(text=run_status_text(snap), value=round(float(_fraction(snap)), 4))
        rows.append(row)
    return {"rows": rows}


def _density_figures(
    labels: Sequence[str], views: Mapping[int, Any], *, only: Collection[int] | None = None
) -> dict[str, go.Figure]:
    """Each run's density figure on the comparison's shared scale (and the target's, in 2D), for the runs in
    ``only`` (all by default): ``{"target": ..., "0": ..., ...}``."""
    figures: dict[str, go.Figure] = {}
    if not views:
        return figures
    first = next(iter(views.values()))
    true_max = float(first.true.max()) if first.true is not None else None
    learned_max = max(float(v.learned.max()) for v in views.values())
    one_d = len(first.axes) == 1
    y_max = min(learned_max, 3 * true_max) if true_max else learned_max
    if one_d and true_max:
        y_max = max(y_max, true_max)
    z_max = true_max if true_max else None
    height = _heatmap_height(_per_row(len(views) + 1, one_d=False))
    if not one_d and only is None:
        figures["target"] = target_density_figure(first, z_max=z_max, height=height)
    for i, view in views.items():
        if only is not None and i not in only:
            continue
        figures[str(i)] = run_density_figure(
            view,
            label=labels[i],
            color=run_color(i),
            y_max=y_max if one_d else None,
            z_max=None if one_d else z_max,
            height=None if one_d else height,
        )
    return figures


def _small(fig: go.Figure, iteration: int) -> go.Figure:
    # The live densities sit in one row under the loss chart; the title says how old each is.
    title = fig.layout.title.text or ""
    fig.update_layout(height=LIVE_DENSITY_HEIGHT, title={"text": f"{title} · it {iteration:,}", "font": {"size": 13}})
    return fig


def live_density_specs(
    runs: Sequence[tuple[int, str, Snapshot | None, str]], changed: Collection[int]
) -> dict[int, str]:
    """The live density charts' specs of the runs in ``changed``, from ``(index, label, snapshot or None,
    error)`` per run: each on the scale the runs' current pictures share."""
    labels = [label for _, label, _, _ in runs]
    views = {i: snap.visuals.density for i, _, snap, _ in runs if snap is not None and snap.visuals is not None}
    figures = _density_figures(labels, views, only=set(changed))
    out = {}
    for i, _, snap, _ in runs:
        if str(i) in figures and snap is not None and snap.visuals is not None:
            out[i] = chart_spec(_small(figures[str(i)], snap.visuals.iteration))
    return out


# --------------------------------------------------------------------------------------------------
# Results: the densities and the metrics table
# --------------------------------------------------------------------------------------------------


LIVE_DENSITY_HEIGHT = 230
"""The live densities' height in pixels (one row under the loss chart)."""


def _live_densities(started: _Started, entries: list[_Entry]) -> None:
    """While the runs train: each run's latest density, small, in one row (the results show them large)."""
    figures = _figures(started, entries)
    shown = [e for e in entries if str(e.index) in figures]
    if not shown:
        return
    columns = st.columns(max(len(entries), 3))
    for col, e in zip(columns, shown, strict=False):
        fig = go.Figure(figures[str(e.index)])
        fig.update_layout(height=LIVE_DENSITY_HEIGHT, title={"font": {"size": 13}})
        col.plotly_chart(fig, key=_k(f"live_density_{e.index}"), config=_PLOT_CONFIG)
        iteration = e.snap.visuals.iteration if e.snap is not None and e.snap.visuals is not None else 0
        col.caption(f"at iteration {iteration:,}")


def _waiting_spec(label: str, i: int) -> str:
    fig = go.Figure(layout={"height": LIVE_DENSITY_HEIGHT})
    fig.update_layout(
        title={
            "text": f"<span style='color:{run_color(i)}'>■</span> {figure_text(label)}: on its way",
            "font": {"size": 13},
        }
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return chart_spec(fig)


def _streamed_densities(started: _Started, entries: list[_Entry], token: str | None) -> None:
    """While the runs train, on the live channel: one live chart per run, which takes that run's new densities
    from the page's stream (the loss chart hands them over)."""
    runs = [(e.index, e.run.label, e.snap, e.error) for e in entries]
    specs = live_density_specs(runs, [e.index for e in entries])
    columns = st.columns(max(len(entries), 3))
    for col, e in zip(columns, entries, strict=False):
        if e.snap is None:
            continue
        with col:
            live_chart(
                specs.get(e.index) or _waiting_spec(e.run.label, e.index),
                key=_k(f"live_density_{e.index}"),
                height=LIVE_DENSITY_HEIGHT,
                stream={"channel": token, "role": "density", "index": e.index} if token else None,
            )


def _per_row(cells: int, one_d: bool) -> int:
    """Figures per row of the density grid: all in one row up to 3 (1D) or 4 (2D), else two rows."""
    return cells if cells <= (3 if one_d else 4) else math.ceil(cells / 2)


def _heatmap_height(per_row: int) -> int:
    # Square heatmaps: the height follows the width of a column on a wide page, plus title and ticks.
    return min(420, round(760 / per_row) + 70)


def _figures(started: _Started, entries: list[_Entry]) -> dict[str, go.Figure]:
    """The density figures of a finished comparison, built once and kept in session state."""
    stamp = (started.uid, tuple(e.snap.visuals_version if e.snap else -1 for e in entries))
    cache = st.session_state.get(_FIGURES)
    if cache and cache["stamp"] == stamp:
        return cache["figures"]
    views = {e.index: e.snap.visuals.density for e in entries if e.snap is not None and e.snap.visuals is not None}
    figures = _density_figures([r.label for r in started.runs], views)
    st.session_state[_FIGURES] = {"stamp": stamp, "figures": figures}
    return figures


def _outcome(e: _Entry) -> RunOutcome:
    if e.job is not None and e.snap is not None:
        return RunOutcome.from_snapshot(e.run.label, e.snap, e.job.model.num_parameters)
    try:
        params = parameter_count(e.run.config)
    except ConfigError:
        params = 0
    return RunOutcome(e.run.label, "failed", e.error, 0, 0.0, 0, 0, params, None)


def _cell(column: str, value: Any) -> str:
    if value is None:
        return "–"
    if column in ("seed TV", "grid TV"):
        return f"{value:.4f}"
    if column == "test NLL":
        return f"{value:.3f}"
    if column == "wall time (s)":
        return f"{value:.1f}"
    if column == "NFE / iteration":
        return f"{value:.1f}"
    return f"{int(value):,}"


def metrics_table_rows(outcomes: list[RunOutcome]) -> list[dict[str, str]]:
    """The results table as text cells (Markdown), the best of each column on a green background.

    Example:
        >>> from cnfviz.training.metrics import Metrics
        >>> m = Metrics(0.01, 0.02, 0.0, 1.0, 1.2, "exact")
        >>> rows = metrics_table_rows([RunOutcome("a", "done", "", 10, 1.0, 160, 320, 99, m),
        ...                            RunOutcome("b", "failed", "NaN", 3, 0.5, 48, 96, 99, None)])
        >>> rows[0]["best"], rows[0]["test NLL"], rows[1]["test NLL"]
        ('★', ':green-background[**1.200**]', '–')
    """
    table = results_table(outcomes)
    rows = []
    for i, row in enumerate(table.rows):
        out = {"best": row["best"], "run": _label(row["run"]), "state": row["state"]}
        for col in COLUMNS:
            text = _cell(col, row[col])
            out[col] = f":green-background[**{text}**]" if i in table.best.get(col, ()) else text
        rows.append(out)
    return rows


def _open_button(e: _Entry) -> None:
    if st.button(
        "Open on the Train page",
        key=_k(f"open_{e.index}"),
        icon=":material/open_in_new:",
        help="The Train page with this run's settings, to look closer (trajectories, vector field, samples).",
    ):
        st.switch_page("app_pages/train.py", query_params=config_to_query(e.run.config))


def _density_caption(e: _Entry, one_d: bool) -> str:
    nll = e.snap.metrics.test_nll if e.snap is not None and e.snap.metrics is not None else None
    score = f"; test NLL {nll:.3f}" if nll is not None else ""
    if one_d:
        return f"Learned pdf (colour) against the true one (dark){score}."
    return f"Learned density, brighter is denser{score}."


def comparison_results(holder: JobHolder) -> None:
    """Once every run has ended: the learned densities side by side and the metrics table."""
    started, entries = _entries(holder)
    if started is None or not entries or _active(entries):
        return
    figures = _figures(started, entries)
    one_d = "target" not in figures and any(
        e.snap is not None and e.snap.visuals is not None and len(e.snap.visuals.density.axes) == 1 for e in entries
    )
    st.subheader("Learned densities")
    cells: list[_Entry | None] = ([] if one_d or "target" not in figures else [None]) + list(entries)
    per_row = _per_row(len(cells), one_d)
    for start in range(0, len(cells), per_row):
        columns = st.columns(per_row)
        for col, cell in zip(columns, cells[start : start + per_row], strict=False):
            with col:
                if cell is None:
                    st.plotly_chart(figures["target"], key=_k("target_chart"), config=_PLOT_CONFIG)
                    st.caption("The target, on the runs' colour scale.")
                    continue
                fig = figures.get(str(cell.index))
                if fig is not None:
                    st.plotly_chart(fig, key=_k(f"density_chart_{cell.index}"), config=_PLOT_CONFIG)
                    st.caption(_density_caption(cell, one_d))
                else:
                    st.markdown(_swatch(cell.run.label, cell.index), unsafe_allow_html=True)
                    st.info("No picture: this run ended before its model could be drawn.")
                _open_button(cell)

    st.subheader("Metrics")
    outcomes = [_outcome(e) for e in entries]
    with st.container(key=_k("metrics")):
        st.table(metrics_table_rows(outcomes), hide_index=True)
    finished = [o for o in outcomes if o.state == "done"]
    if len({o.iterations for o in finished}) > 1:
        st.caption(
            ":material/warning: The runs did different numbers of iterations (some hit the time cap), so the "
            "faster runs had more training: compare with care, or raise the time cap."
        )
    st.caption(
        f"{BEST_MARK} marks the lowest test NLL; green cells are the best of each column (lower is better) among the "
        "runs that finished. TVs and NLL use an accurate adaptive solver; wall time is training time, which also "
        "depends on what else the server runs at the same time; NFE counts "
        "dynamics evaluations in training (forward solves, and in total with the backward pass)."
    )
