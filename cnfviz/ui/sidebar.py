"""The training controls: one function draws them all and returns one validated :class:`~cnfviz.TrainConfig`.

:func:`config_controls` reads every control into a single config (plus the built Target and any
validation messages), and :func:`apply_config_to_state` does the reverse, writing a config into the
widgets' session state, for presets, shareable URLs and "keep running". Call it from a callback, or
before the controls are drawn in a run: Streamlit refuses writes to a widget that already exists.

Widget keys, for a page prefix ``p`` (the Train page uses ``train``), by control name (the names
:func:`config_controls` accepts in ``hidden``):

============== ===================================================================================
control        widget keys
============== ===================================================================================
presets        ``p_preset`` (selectbox of :data:`~cnfviz.PRESETS`, its one-line description below),
               ``p_preset_apply`` (button "Apply"), ``p_preset_default`` (button "Fast defaults"),
               and for a comparison preset a link to the Compare page in the container ``p_preset_compare``
target         ``p_target`` (selectbox: ``normal``, ``moons``, ``scipy:gamma`` ..., and the custom sources
               ``samples``, ``image``, ``drawing``, see :mod:`cnfviz.ui.custom_target`), one text input
               per parameter, ``p_param_<target>_<name>`` with the target's non-alphanumerics as ``_``
               (``train_param_normal_loc``, ``train_param_scipy_gamma_a``), and ``p_target_preview``
width, depth   ``p_width``, ``p_depth`` (sliders: every hidden layer has the same width)
activation     ``p_activation`` (selectbox), ``p_final_activation`` (checkbox)
time           ``p_time`` (selectbox: none, concat, concatsquash)
linear         ``p_linear`` (checkbox: a learnable linear term a + B z in the field)
tspan          ``p_t0``, ``p_t1``
solver         ``p_solver`` (selectbox), ``p_step_size`` (fixed-grid solvers only)
tolerances     ``p_rtol``, ``p_atol`` (adaptive solvers only)
trace          ``p_trace``
adjoint        ``p_adjoint``
adam_iters     ``p_adam_iters``
lr             ``p_lr``
lbfgs_iters    ``p_lbfgs_iters``
batch          ``p_batch``, ``p_full_batch``
lambdas        ``p_lambda_kinetic`` (λ₁), ``p_lambda_jacobian`` (λ₂)
seed           ``p_seed``
objective      ``p_objective`` (selectbox: likelihood, flow-matching, ot-flow-matching)
time budget    ``p_max_seconds`` (seconds, 0 for none; a new target clears it)
advanced       one widget per setting of :data:`ADVANCED`, keyed by its :attr:`~cnfviz.training.fields.Field.widget`:
               ``p_lr_decay``, ``p_lr_min_factor``, ``p_n_train`` (0: fresh samples), ``p_n_test``,
               ``p_eval_every``, ``p_grad_clip`` (0: none), ``p_max_steps``, ``p_max_nfe`` (0: no cap)
device         the GPU/CPU badge (no widget)
============== ===================================================================================

The config last read is also kept in ``st.session_state["p__config"]`` (None while invalid).

The values of record live outside widget state, in ``st.session_state["p__values"]`` (widget key → value):
Streamlit may drop a widget's state between runs (a widget not drawn in a run, a race between a fragment
rerun and a full rerun), and a number input rebuilt without its state shows its minimum. So before each
control is drawn its widget state is seeded from the record whenever it is missing, and after the
controls are drawn their values are written back; :func:`apply_config_to_state` writes the record too.
A custom target trains as ``TrainConfig.target`` ``samples`` or ``image`` with empty ``target_params``;
the built target travels in :attr:`ControlsResult.target`. Uploading data of another dimension than the
settings were made for loads that dimension's fast defaults, as switching targets does.
A hidden control keeps the value of the last config applied (see :func:`apply_config_to_state`), as do
the field no control shows (``device``). Switching the target between
1D and 2D loads the new target's fast defaults (:func:`cnfviz.default_config`), since the two differ in
network, time span and iterations.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go
import streamlit as st
from streamlit.errors import StreamlitAPIException, StreamlitWidgetAlreadyInstantiatedError

from .._validation import ConfigError
from ..features.links import CONTROLS
from ..figures.plots import target_preview_figure
from ..flow.solver import FIXED_GRID_SOLVERS
from ..targets import (
    SCIPY_PREFIX,
    TARGETS,
    Param,
    Target,
    make_target,
    scipy_distributions,
    scipy_examples,
    scipy_params,
)
from ..targets import SLOW_SCIPY as _SLOW_SCIPY
from ..training.config import TrainConfig
from ..training.device import device_label
from ..training.fields import FIELDS, Field
from ..training.presets import DEFAULT_TARGET, PRESETS, default_config, target_dim
from .custom_target import CONFIG_TARGETS, CUSTOM_SOURCES, custom_target_controls, source_dim
from .text import plain

__all__ = [
    "CONTROLS",
    "DEFAULT_TARGET",
    "SLOW_SCIPY",
    "ControlsResult",
    "apply_config_to_state",
    "base_config",
    "build_target",
    "config_controls",
    "config_to_state",
    "param_key",
    "target_choices",
]


# Constructing these takes seconds (numerical integration in scipy), too slow for a picker that
# rebuilds its preview on every change; the library keeps the list (links and the run budget use it too).
SLOW_SCIPY = _SLOW_SCIPY

WIDTH_MAX = 256
DEPTH_MAX = 8
ADVANCED: tuple[Field, ...] = tuple(f for f in FIELDS.values() if f.advanced)
"""The settings of the "Advanced" expander, in table order."""
_TIME_HELP = {
    "none": "none: f(z), no time input (the seed tutorial)",
    "concat": "concat: t is an extra input of every layer",
    "concatsquash": "concatsquash: FFJORD's gated layers",
}


@dataclass(frozen=True)
class ControlsResult:
    """What the controls say: one config, the target it names, and what is wrong with them.

    ``config`` and ``target`` are None when a control is invalid; ``errors`` then holds one message each.
    ``waiting`` says what the user still has to do before a custom target exists (upload, draw); it is
    not an error, and ``errors`` holds it too, so that ``ok`` stays False.
    """

    config: TrainConfig | None
    target: Target | None
    errors: tuple[str, ...]
    waiting: str | None = None

    @property
    def ok(self) -> bool:
        return self.config is not None and self.target is not None and not self.errors


def _key(prefix: str, name: str) -> str:
    return f"{prefix}_{name}"


def _base_key(prefix: str) -> str:
    return f"{prefix}__base_config"


def _slug(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z]+", "_", text)


def param_key(prefix: str, target: str, name: str) -> str:
    """The widget key of a target parameter, e.g. ``param_key("train", "scipy:gamma", "a")``.

    Example:
        >>> param_key("train", "scipy:gamma", "a")
        'train_param_scipy_gamma_a'
    """
    return f"{prefix}_param_{_slug(target)}_{name}"


@functools.cache
def target_choices() -> tuple[str, ...]:
    """Every target the picker offers: the registry (1D first), then ``scipy:<name>`` for each continuous
    scipy.stats distribution except the few that take seconds to build (:data:`SLOW_SCIPY`)."""
    names = sorted(TARGETS, key=lambda n: TARGETS[n].dim)
    custom = tuple(CUSTOM_SOURCES)
    return (*names, *custom, *(SCIPY_PREFIX + n for n in scipy_distributions() if n not in SLOW_SCIPY))


def _target_label(name: str) -> str:
    if name in CUSTOM_SOURCES:
        return CUSTOM_SOURCES[name]
    if name.startswith(SCIPY_PREFIX):
        return f"scipy: {name[len(SCIPY_PREFIX) :]} (1D)"
    spec = TARGETS.get(name)
    return f"{name} ({spec.dim}D)" if spec else name


def _param_specs(target: str) -> tuple[Param, ...]:
    if target.startswith(SCIPY_PREFIX):
        return scipy_params(target[len(SCIPY_PREFIX) :])
    spec = TARGETS.get(target)
    if spec is None:
        raise ConfigError(f'Invalid target "{target}". Must be one of {sorted(TARGETS)} or scipy:<name>')
    return spec.params


def _param_text(value: Any) -> str:
    """Text for a parameter's input box that parses back to exactly ``value``."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(_param_text(v) for v in value)
    return repr(value) if isinstance(value, float) else str(value)


def _default_param_texts(target: str) -> dict[str, str]:
    specs = _param_specs(target)
    example = scipy_examples(target[len(SCIPY_PREFIX) :]) if target.startswith(SCIPY_PREFIX) else ()
    out = {}
    shape_i = 0
    for p in specs:
        if p.required:
            value = example[shape_i] if shape_i < len(example) else None
            shape_i += 1
            # scipy's table holds values like 1.9932305483800778: a start need not show sixteen digits.
            out[p.name] = _param_text(float(f"{value:.4g}") if isinstance(value, (int, float)) else value)
        else:
            out[p.name] = _param_text(list(p.default) if isinstance(p.default, tuple) else p.default)
    return out


def config_to_state(prefix: str, config: TrainConfig, *, source: str | None = None) -> dict[str, Any]:
    """The widget values that show ``config``, by widget key (see the module docstring).

    Arguments:
        prefix: the page's widget-key prefix.
        config: the config to show.
        source: for a custom target (``samples``, ``image``), the picker entry to show, e.g. ``drawing``;
            by default the entry named like the target.

    Example:
        >>> from cnfviz.training.presets import SEED_CONFIG
        >>> values = config_to_state("train", SEED_CONFIG)
        >>> values["train_width"], values["train_t1"], values["train_param_normal_loc"]
        (3, 10.0, '6.0')
    """
    m, s = config.model, config.solver
    if config.target not in target_choices() and not config.target.startswith(SCIPY_PREFIX):
        raise ConfigError(f'the sidebar cannot show target "{config.target}"; it offers {list(target_choices())}')
    custom = config.target in CONFIG_TARGETS.values()
    picked = source if custom and CONFIG_TARGETS.get(source or "") == config.target else config.target
    t0, t1 = (float(v) for v in m.tspan)
    k = functools.partial(_key, prefix)
    values: dict[str, Any] = {
        k("target"): picked,
        k("width"): min(max(m.hidden, default=32), WIDTH_MAX),
        k("depth"): len(m.hidden),
        k("activation"): m.activation,
        k("final_activation"): bool(m.final_activation),
        k("time"): m.time,
        k("linear"): bool(m.linear),
        k("t0"): t0,
        k("t1"): t1,
        k("solver"): s.method,
        k("step_size"): float(s.step_size) if s.step_size else abs(t1 - t0) / 8 or 0.125,
        k("rtol"): float(s.rtol),
        k("atol"): float(s.atol),
        k("trace"): m.trace,
        k("adjoint"): bool(s.adjoint),
        k("adam_iters"): int(config.adam_iters),
        k("lr"): float(config.lr),
        k("lbfgs_iters"): int(config.lbfgs_iters),
        k("full_batch"): config.batch_size is None,
        k("batch"): int(config.batch_size or 256),
        k("lambda_kinetic"): float(config.lambda_kinetic),
        k("lambda_jacobian"): float(config.lambda_jacobian),
        k("seed"): int(config.seed),
        k("objective"): config.objective,
        k("max_seconds"): float(config.max_seconds or 0.0),
    }
    for f in ADVANCED:
        values[k(f.widget or f.name)] = _widget_value(f, f.get(config))
    if custom:
        return values
    texts = _default_param_texts(config.target)
    given = dict(config.target_params)
    try:
        given = make_target(config.target, given).params
    except ConfigError:
        pass
    for name in texts:
        if name in given:
            texts[name] = _param_text(given[name])
        values[param_key(prefix, config.target, name)] = texts[name]
    return values


def apply_config_to_state(prefix: str, config: TrainConfig, state: MutableMapping[str, Any] | None = None) -> None:
    """Make the controls show ``config``: write its widget values into session state.

    Call it in a widget callback, or before :func:`config_controls` in a run. Fields no control shows
    (``n_train``, ``eval_every`` ...) are kept as the base the controls build on.

    Arguments:
        prefix: the page's widget-key prefix, e.g. ``"train"``.
        config: the config to show.
        state: where to write; ``st.session_state`` by default.
    """
    state = st.session_state if state is None else state
    source = None
    if config.target in CONFIG_TARGETS.values():
        # Keep the custom source on screen (a drawing and a CSV both train as "samples").
        candidates = (state.get(_key(prefix, "target")), state.get(f"{prefix}__custom_source"))
        source = next((c for c in candidates if CONFIG_TARGETS.get(c or "") == config.target), None)
    values = config_to_state(prefix, config, source=source)
    for key, value in values.items():
        state[key] = value
    _record(prefix, state).update(values)
    state[_base_key(prefix)] = config
    state[f"{prefix}__last_target"] = values[_key(prefix, "target")]
    dim = _picker_dim(prefix, values[_key(prefix, "target")], state)
    if dim is not None:
        state[f"{prefix}__dim"] = dim


def _record(prefix: str, state: MutableMapping[str, Any]) -> dict[str, Any]:
    """The controls' values of record, by widget key (see the module docstring); created empty."""
    record = state.get(f"{prefix}__values")
    if not isinstance(record, dict):
        record = {}
        state[f"{prefix}__values"] = record
    return record


def _restore(prefix: str, state: MutableMapping[str, Any], fallbacks: dict[str, Any]) -> None:
    """Seed every widget whose state is missing: from the record, else from ``fallbacks`` (by widget key)."""
    record = _record(prefix, state)
    for key, fallback in fallbacks.items():
        if key not in state:
            state[key] = record.get(key, fallback)


def _remember(prefix: str, state: MutableMapping[str, Any], keys: set[str]) -> None:
    """Write the values of the controls drawn in this run back into the record, and the record into the
    state of those not drawn.

    A control not drawn (the step size under dopri5) keeps under its key the value it was first seeded
    with, which Streamlit brings back over the widget's own when it next draws it; so that value is
    refreshed from the record. Streamlit refuses that write for a widget drawn in this run, which tells the
    two apart.
    """
    record = _record(prefix, state)
    for key in keys:
        if key not in state:
            continue
        if key not in record:
            record[key] = state[key]
            continue
        try:
            state[key] = record[key]
        except StreamlitWidgetAlreadyInstantiatedError:
            record[key] = state[key]


def _default(state: MutableMapping[str, Any], key: str, lo: float | None = None, hi: float | None = None) -> Any:
    """A widget's current value, to pass as its default too (clamped to ``[lo, hi]``).

    The browser keeps a widget's value by its id; one that lost it (it happens under load, e.g. when the
    sidebar is rebuilt) shows the widget's default and sends that back: without a default of its own a
    number input shows its minimum, and the run then reads -1000 for both ends of the time span."""
    value = state.get(key)
    if value is None or lo is None or hi is None or isinstance(value, bool):
        return value
    return type(value)(min(max(value, lo), hi))


def _index(state: MutableMapping[str, Any], key: str, options: list[Any]) -> int:
    """The position of a select box's current value among ``options`` (0 if it is none of them)."""
    value = state.get(key)
    return options.index(value) if value in options else 0


def _number(f: Field, key: str, *, where: Any = None, label: str | None = None, **kwargs: Any) -> Any:
    """The number input of setting ``f`` under ``key``: its label, bounds, step, format and help from the
    field table; its value from the widget's state (see :func:`_default`)."""
    cast: type = int if f.kind == "int" else float
    lo, hi = (f.lo if f.ui_lo is None else f.ui_lo), (f.hi if f.ui_hi is None else f.ui_hi)
    lo, hi = (None if lo is None else cast(lo)), (None if hi is None else cast(hi))
    return (st if where is None else where).number_input(
        label or f.label,
        lo,
        hi,
        value=_default(st.session_state, key, lo, hi),
        step=None if f.step is None else cast(f.step),
        format=f.fmt,
        key=key,
        help=f.help or None,
        **kwargs,
    )


def _table_control(f: Field, key: str, **kwargs: Any) -> Any:
    """The one widget of setting ``f`` (a checkbox, a select box or a number input), its label, help and
    choices or bounds from the field table, and the field's value it shows: for an optional number, 0 reads
    as none."""
    state = st.session_state
    if f.kind == "bool":
        return st.checkbox(f.label, value=bool(state.get(key)), key=key, help=f.help or None, **kwargs)
    if f.kind == "choice":
        options = list(f.choices)
        index = _index(state, key, options)
        return st.selectbox(f.label, options, index=index, key=key, help=f.help or None, **kwargs)
    value = _number(f, key, **kwargs)
    return None if f.optional and not value else value


def _widget_value(f: Field, value: Any) -> Any:
    """How the widget of setting ``f`` shows ``value`` (an optional number's none as 0)."""
    if f.kind == "bool":
        return bool(value)
    if f.kind == "int":
        return int(value or 0)
    if f.kind == "float":
        return float(value or 0.0)
    return value


def _with_values(config: TrainConfig, values: dict[str, Any], **changes: Any) -> TrainConfig:
    """``config`` with ``changes`` (as :meth:`TrainConfig.replace` takes them) and the settings ``values``
    (by dotted path) applied in one step, so that settings checked together are checked at their new values."""
    for path, value in values.items():
        for key, change in FIELDS[path].change(value).items():
            if isinstance(change, dict):
                changes[key] = {**changes.get(key, {}), **change}
            else:
                changes[key] = change
    return config.replace(**changes)


def base_config(prefix: str, state: MutableMapping[str, Any] | None = None) -> TrainConfig:
    """The config the controls build on: the last one applied, or the fast default for the default target."""
    state = st.session_state if state is None else state
    base = state.get(_base_key(prefix))
    return base if isinstance(base, TrainConfig) else default_config(DEFAULT_TARGET)


def _picker_dim(prefix: str, picked: str, state: MutableMapping[str, Any] | None = None) -> int | None:
    """The dimension of a picker entry's target; None for a CSV not uploaded yet (or a bad name)."""
    if picked in CUSTOM_SOURCES:
        return source_dim(prefix, picked, state)
    try:
        return target_dim(picked)
    except ConfigError:
        return None


def _defaults_for(picked: str, dim: int) -> TrainConfig:
    """The fast defaults for a picker entry (custom sources: those of their dimension)."""
    if picked in CUSTOM_SOURCES:
        return default_config("normal" if dim == 1 else "8gaussians").replace(target=CONFIG_TARGETS[picked])
    return default_config(picked)


@st.cache_resource(max_entries=64, show_spinner=False)
def _cached_target(name: str, params_json: str) -> Target:
    return make_target(name, json.loads(params_json))


def build_target(name: str, params: dict[str, Any]) -> Target:
    """The target ``name`` with ``params``, cached across sessions (targets are immutable)."""
    return _cached_target(name, json.dumps(params, sort_keys=True))


@st.cache_data(max_entries=64, show_spinner=False)
def _cached_preview(name: str, params_json: str) -> go.Figure:
    return target_preview_figure(_cached_target(name, params_json))


# --------------------------------------------------------------------------------------------------
# Callbacks (they run before the page, so they may write widget state)
# --------------------------------------------------------------------------------------------------


def _notice(prefix: str, text: str) -> None:
    st.session_state[f"{prefix}__notice"] = text


def _on_target_change(prefix: str) -> None:
    state = st.session_state
    new = state[_key(prefix, "target")]
    if new in CUSTOM_SOURCES:
        state[f"{prefix}__custom_source"] = new
    new_dim = _picker_dim(prefix, new)
    old_dim = state.get(f"{prefix}__dim")
    if new_dim is not None and new_dim != old_dim:
        seed = state.get(_key(prefix, "seed"), 0)
        apply_config_to_state(prefix, _defaults_for(new, new_dim).replace(seed=int(seed)))
        what = f"your data ({_target_label(new)})" if new in CUSTOM_SOURCES else new
        _notice(prefix, f"Loaded the fast {new_dim}D defaults for {what}.")
    # A preset's time budget belongs to its target: a new target trains without one unless asked.
    state[_key(prefix, "max_seconds")] = 0.0
    state[f"{prefix}__last_target"] = new


def _apply_preset(prefix: str, config: TrainConfig, message: str) -> None:
    apply_config_to_state(prefix, config)
    _notice(prefix, message)


def _apply_named_preset(prefix: str) -> None:
    name = st.session_state.get(_key(prefix, "preset"))
    if name in PRESETS:
        _apply_preset(prefix, PRESETS[name].config, f"Loaded the preset: {PRESETS[name].title}.")


def _apply_fast_defaults(prefix: str) -> None:
    state = st.session_state
    target = state.get(_key(prefix, "target"), DEFAULT_TARGET)
    if target in CUSTOM_SOURCES:
        dim = _picker_dim(prefix, target) or state.get(f"{prefix}__dim") or 2
        seed = int(state.get(_key(prefix, "seed"), 0))
        _apply_preset(prefix, _defaults_for(target, dim).replace(seed=seed), f"Fast {dim}D defaults for your data.")
        return
    params = {}
    try:
        for p in _param_specs(target):
            text = str(state.get(param_key(prefix, target, p.name), "")).strip()
            if text:
                params[p.name] = p.validate(text, target)
        config = default_config(target, params)
        make_target(target, params)
    except ConfigError:
        config = default_config(target)
    _apply_preset(prefix, config.replace(seed=int(state.get(_key(prefix, "seed"), 0))), f"Fast defaults for {target}.")


# --------------------------------------------------------------------------------------------------
# Drawing
# --------------------------------------------------------------------------------------------------


AFFINE_NOTE = (
    "Depth 0 has no hidden layer: the field is affine in z, and an affine flow can only turn the Gaussian "
    "into another Gaussian. Use depth 1 to 8 to learn any other shape."
)


def _route(field: str | None) -> str:
    """Which control group a ConfigError belongs to, by the setting it names (:attr:`ConfigError.field`)."""
    path = (field or "").split(",")[0].split("[")[0].strip()  # "model.hidden[0]", "adam_iters, lbfgs_iters"
    f = FIELDS.get(path)
    if f is None:
        return "target" if path.startswith("target") else "training"
    if f.advanced:
        return "advanced"
    if f.kind in ("text", "params"):
        return "target"
    if f.section == "solver" or f.path in ("model.tspan", "model.trace"):
        return "ode"
    return "network" if f.section == "model" else "training"


def _load_dim_defaults(prefix: str, picked: str, dim: int) -> None:
    """Load the fast defaults of ``dim`` for a custom source mid-run, leaving the (drawn) picker alone."""
    state = st.session_state
    config = _defaults_for(picked, dim).replace(seed=int(state.get(_key(prefix, "seed"), 0)))
    record = _record(prefix, state)
    for key, value in config_to_state(prefix, config, source=picked).items():
        if key != _key(prefix, "target"):
            state[key] = record[key] = value
    state[_base_key(prefix)] = config
    state[f"{prefix}__dim"] = dim
    st.toast(f"Loaded the fast {dim}D defaults for your {dim}D data.")


def _named_target_controls(
    prefix: str,
    target_name: str,
    params: dict[str, Any],
    errors: list[tuple[str, str]],
    show: bool,
    seen: set[str],
) -> Target | None:
    """The parameter inputs and preview of a named target; fills ``params`` and ``errors`` (and ``seen``
    with the widget keys of its inputs), returns the target."""
    state = st.session_state
    try:
        specs = _param_specs(target_name)
    except ConfigError as err:
        errors.append(("target", str(err)))
        return None
    defaults = {param_key(prefix, target_name, n): v for n, v in _default_param_texts(target_name).items()}
    _restore(prefix, state, defaults)
    seen.update(defaults)
    ok = True
    for p in specs:
        key = param_key(prefix, target_name, p.name)
        if show:
            st.text_input(
                p.name + (" (required)" if p.required else ""),
                value=str(state.get(key, "")),
                key=key,
                help=p.help or None,
            )
        text = str(state.get(key, "")).strip()
        if not text:
            if p.required:
                ok = False
                msg = f"{target_name}: parameter {p.name} is required ({p.help})"
                errors.append(("target", msg))
                if show:
                    st.error(plain(msg))
            continue
        try:
            params[p.name] = p.validate(text, target_name)
        except ConfigError as err:
            ok = False
            errors.append(("target", str(err)))
            if show:
                st.error(plain(err))
    if not ok:
        return None
    try:
        target = build_target(target_name, params)
    except ConfigError as err:
        errors.append(("target", str(err)))
        if show:
            st.error(plain(err))
        return None
    if show:
        st.plotly_chart(
            _cached_preview(target_name, json.dumps(dict(target.params), sort_keys=True)),
            key=_key(prefix, "target_preview"),
            config={"displayModeBar": False, "staticPlot": True},
        )
        st.caption("Preview: the target's density and samples from it.")
    return target


def _preset_picker(prefix: str) -> None:
    """The preset selectbox with its one-line description, Apply, Fast defaults, and the Compare link."""
    k = functools.partial(_key, prefix)
    name = st.selectbox(
        "Preset",
        list(PRESETS),
        index=list(PRESETS).index(preset) if (preset := st.session_state.get(k("preset"))) in PRESETS else None,
        key=k("preset"),
        format_func=lambda n: PRESETS[n].title,
        placeholder="Choose a preset or lesson…",
        help="Named set-ups, from the seed tutorial to experiments that go wrong on purpose.",
    )
    if name is not None:
        st.caption(PRESETS[name].description)
    c1, c2 = st.columns(2)
    c1.button(
        "Apply",
        key=k("preset_apply"),
        type="primary" if name is not None else "secondary",
        icon=":material/check:",
        disabled=name is None,
        on_click=_apply_named_preset,
        args=(prefix,),
        width="stretch",
        help="Load the chosen preset into the controls below.",
    )
    c2.button(
        "Fast defaults",
        key=k("preset_default"),
        help="A good, fast setup for the chosen target.",
        on_click=_apply_fast_defaults,
        args=(prefix,),
        width="stretch",
    )
    if name is not None and PRESETS[name].compare:
        with st.container(key=k("preset_compare")):
            _compare_link(name)


def _compare_link(name: str) -> None:
    labels = " and ".join(label for label, _ in PRESETS[name].compare)
    label = f"Compare {labels} side by side"
    try:
        st.page_link(
            "app_pages/compare.py", label=label, icon=":material/compare_arrows:", query_params={"preset": name}
        )
    except StreamlitAPIException:  # the page runs outside app.py (a test), without the navigation
        st.markdown(f":material/compare_arrows: [{label}](compare?preset={name})")


def config_controls(
    prefix: str = "train",
    *,
    hidden: frozenset[str] = frozenset(),
    container: Any = None,
) -> ControlsResult:
    """Draw the training controls and read them into one config.

    Arguments:
        prefix: the widget-key prefix, usually the page name (``train`` → ``train_width``).
        hidden: names from :data:`CONTROLS` not to draw; they keep the base config's values.
        container: where to draw; ``st.sidebar`` by default.

    Returns:
        a :class:`ControlsResult`: the config and target, or the validation messages (each is also shown
        in the page, under its control).
    """
    unknown = set(hidden) - set(CONTROLS)
    if unknown:
        raise ValueError(f"unknown control name(s) {sorted(unknown)}. Valid names: {list(CONTROLS)}")
    state = st.session_state
    if _base_key(prefix) not in state:
        apply_config_to_state(prefix, base_config(prefix))
    base = base_config(prefix)
    k = functools.partial(_key, prefix)
    seeds = {**config_to_state(prefix, base), k("preset"): None}
    _restore(prefix, state, seeds)
    seen = set(seeds)  # the widget keys whose values go back into the record after drawing

    def shown(name: str) -> bool:
        return name not in hidden

    errors: list[tuple[str, str]] = []
    slots: dict[str, Any] = {}
    container = st.sidebar if container is None else container

    with container:
        notice = state.pop(f"{prefix}__notice", None)
        if notice:
            st.toast(notice)
        if shown("device"):
            label = device_label()
            st.badge(label, icon=":material/memory:", color="green" if label.startswith("GPU") else "blue")
        if shown("presets"):
            _preset_picker(prefix)

        # ---------------------------------------------------------------- target
        target_name = state.get(k("target"), base.target)
        params: dict[str, Any] = {}
        waiting: str | None = None
        # A lesson that fixes the target shows no Target section at all.
        with st.expander("Target", expanded=True) if shown("target") else st.container():
            if shown("target"):
                options = list(target_choices())
                if target_name not in options:
                    options.append(target_name)
                target_name = st.selectbox(
                    "Distribution",
                    options,
                    index=_index(state, k("target"), options),
                    key=k("target"),
                    format_func=_target_label,
                    help="1D densities, the FFJORD 2D toy sets, your own data (upload or draw), and every "
                    "continuous scipy.stats distribution.",
                    on_change=_on_target_change,
                    args=(prefix,),
                )
                if target_name in TARGETS:
                    st.caption(TARGETS[target_name].description)
                elif target_name in CUSTOM_SOURCES:
                    st.caption("Your own data. A link cannot carry it; **Show code** offers it as a file.")
                else:
                    st.caption(f"scipy.stats.{target_name[len(SCIPY_PREFIX) :]}: shape parameters, loc and scale.")
            target: Target | None = None
            if target_name in CUSTOM_SOURCES:
                custom = custom_target_controls(prefix, target_name, show=shown("target"))
                state[f"{prefix}__custom_source"] = target_name
                target, waiting = custom.target, custom.waiting
                if custom.error or custom.waiting:
                    errors.append(("target", custom.error or custom.waiting or ""))
                elif target is not None and target.dim != state.get(f"{prefix}__dim"):
                    # Data of another dimension than the settings were made for: load its fast defaults
                    # into the controls below, which this run has not drawn yet.
                    _load_dim_defaults(prefix, target_name, target.dim)
                    base = base_config(prefix)
            else:
                target = _named_target_controls(prefix, target_name, params, errors, shown("target"), seen)
                if target is not None:
                    params = dict(target.params)

        # ---------------------------------------------------------------- network
        m = base.model
        width, depth = max(m.hidden, default=32), len(m.hidden)
        activation, final_activation, time_mode, linear = m.activation, m.final_activation, m.time, m.linear
        if any(shown(name) for name in ("width", "depth", "activation", "time", "linear")):
            with st.expander("Network", expanded=True):
                if shown("width"):
                    width = st.slider(
                        "Width (units per hidden layer)",
                        1,
                        WIDTH_MAX,
                        value=_default(state, k("width"), 1, WIDTH_MAX),
                        key=k("width"),
                    )
                if shown("depth"):
                    depth = st.slider(
                        "Depth (hidden layers)",
                        0,
                        DEPTH_MAX,
                        value=_default(state, k("depth"), 0, DEPTH_MAX),
                        key=k("depth"),
                        help="0 makes the field affine.",
                    )
                    if int(depth) == 0:
                        st.caption(AFFINE_NOTE)
                if shown("activation"):
                    activation = _table_control(FIELDS["model.activation"], k("activation"))
                    final_activation = _table_control(FIELDS["model.final_activation"], k("final_activation"))
                if shown("time"):
                    time_mode = _table_control(
                        FIELDS["model.time"], k("time"), format_func=lambda t: _TIME_HELP.get(t, t)
                    )
                if shown("linear"):
                    linear = _table_control(FIELDS["model.linear"], k("linear"))
                slots["network"] = st.empty()
        hidden_widths = (int(width),) * int(depth) if (shown("width") or shown("depth")) else m.hidden

        # ---------------------------------------------------------------- ODE
        s = base.solver
        t0, t1 = m.tspan
        method, step_size, rtol, atol, trace, adjoint = s.method, s.step_size, s.rtol, s.atol, m.trace, s.adjoint
        with st.expander("ODE", expanded=False):
            if shown("tspan"):
                c0, c1 = st.columns(2)
                t0 = _number(FIELDS["model.tspan"], k("t0"), where=c0, label="t0 (base)")
                t1 = _number(FIELDS["model.tspan"], k("t1"), where=c1, label="t1 (data)")
                if t0 == t1:
                    msg = f"The time span needs t0 ≠ t1 (both are {t0:g})."
                    errors.append(("ode", msg))
                    st.error(plain(msg))
            if shown("solver"):
                method = _table_control(FIELDS["solver.method"], k("solver"))
            if method in FIXED_GRID_SOLVERS:
                if shown("solver"):
                    step_size = _number(FIELDS["solver.step_size"], k("step_size"))
            elif shown("tolerances"):
                c0, c1 = st.columns(2)
                rtol = _number(FIELDS["solver.rtol"], k("rtol"), where=c0)
                atol = _number(FIELDS["solver.atol"], k("atol"), where=c1)
            if shown("trace"):
                trace = _table_control(FIELDS["model.trace"], k("trace"))
            if shown("adjoint"):
                adjoint = _table_control(FIELDS["solver.adjoint"], k("adjoint"))
            slots["ode"] = st.empty()

        # ---------------------------------------------------------------- training
        adam_iters, lr, lbfgs_iters = base.adam_iters, base.lr, base.lbfgs_iters
        batch_size, lam1, lam2, seed = base.batch_size, base.lambda_kinetic, base.lambda_jacobian, base.seed
        objective = base.objective
        with st.expander("Training", expanded=True):
            if shown("objective"):
                objective = _table_control(FIELDS["objective"], k("objective"))
            if shown("adam_iters"):
                adam_iters = _number(FIELDS["adam_iters"], k("adam_iters"))
            if shown("lr"):
                lr = _number(FIELDS["lr"], k("lr"))
            if shown("lbfgs_iters"):
                lbfgs_iters = _number(FIELDS["lbfgs_iters"], k("lbfgs_iters"))
            if shown("batch"):
                full = st.checkbox(
                    "Full batch",
                    value=bool(state.get(k("full_batch"))),
                    key=k("full_batch"),
                    help="Every iteration uses the whole training set.",
                )
                batch = _number(FIELDS["batch_size"], k("batch"), disabled=full)
                batch_size = None if full else int(batch)
            if shown("lambdas"):
                c0, c1 = st.columns(2)
                lam1 = _number(FIELDS["lambda_kinetic"], k("lambda_kinetic"), where=c0)
                lam2 = _number(FIELDS["lambda_jacobian"], k("lambda_jacobian"), where=c1)
            if shown("seed"):
                seed = _number(FIELDS["seed"], k("seed"))
            budget = _number(FIELDS["max_seconds"], k("max_seconds"))
            slots["training"] = st.empty()

        # ---------------------------------------------------------------- advanced
        # The rarely changed settings, each drawn from the field table alone; 0 stands for none.
        advanced: dict[str, Any] = {}
        if shown("advanced"):
            with st.expander("Advanced", expanded=False):
                for f in ADVANCED:
                    advanced[f.path] = _table_control(f, k(f.widget or f.name))
                slots["advanced"] = st.empty()

    config: TrainConfig | None = None
    if not errors:
        try:
            custom = target_name in CUSTOM_SOURCES
            config = _with_values(
                base,
                advanced,
                target=CONFIG_TARGETS[target_name] if custom else target_name,
                target_params={} if custom else params,
                model={
                    "hidden": hidden_widths,
                    "activation": activation,
                    "final_activation": bool(final_activation),
                    "time": time_mode,
                    "linear": bool(linear),
                    "tspan": (float(t0), float(t1)),
                    "trace": trace,
                },
                solver={
                    "method": method,
                    "step_size": float(step_size)
                    if method in FIXED_GRID_SOLVERS and step_size is not None
                    else s.step_size,
                    "rtol": float(rtol),
                    "atol": float(atol),
                    "adjoint": bool(adjoint),
                },
                adam_iters=int(adam_iters),
                lr=float(lr),
                lbfgs_iters=int(lbfgs_iters),
                batch_size=batch_size,
                lambda_kinetic=float(lam1),
                lambda_jacobian=float(lam2),
                seed=int(seed),
                objective=objective,
                max_seconds=float(budget) if budget else None,
            )
        except ConfigError as err:
            group = _route(err.field)
            errors.append((group, str(err)))
            slot = slots.get(group) or slots.get("training")
            if slot is not None:
                slot.error(str(err))
    state[f"{prefix}__last_target"] = target_name
    _remember(prefix, state, seen)
    if not errors:
        result = ControlsResult(config, target, ())
    else:
        result = ControlsResult(None, None, tuple(m for _, m in errors), waiting=waiting)
    # Kept for other code in the same run (a "share this config" link, the tests).
    state[f"{prefix}__config"] = result.config
    return result
