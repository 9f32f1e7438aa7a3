"""The training controls: one function draws them all and returns one validated :class:`~cnfviz.TrainConfig`.

:func:`config_controls` reads every control into a single config (plus the built Target and any
validation messages), and :func:`apply_config_to_state` does the reverse, writing a config into the
widgets' session state, for presets, shareable URLs and "keep running". Call it from a callback, or
before the controls are drawn in a run: Streamlit refuses writes to a widget that already exists.

The package, one concept per module:

============== ===================================================================================
module         what it holds
============== ===================================================================================
``controls``   :func:`config_controls` and :class:`ControlsResult`: every group drawn, one config read
``groups``     one function per group (target, network, ODE, training, advanced), each returning
               ``{field path: value}``, drawn from the field table; the few hand-drawn settings
``widgets``    a setting's widget from its :class:`~cnfviz.training.fields.Field` alone
``record``     the values of record that bring a dropped widget back (keys: :mod:`cnfviz.ui.keys`)
``state``      a config as widget values, written into session state; the base config
``target``     the picker's entries, a target's parameter inputs, the built target and its preview
``presets``    the preset picker and the callbacks that load a whole config
============== ===================================================================================

Adding a setting touches the field table and the engine, never this package: a field with a ``widget``
key is drawn in the group :func:`~cnfviz.ui.sidebar.groups.group_of` names, in table order.

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
Streamlit may drop a widget's state between runs, and a number input rebuilt without its state shows its
minimum (see :mod:`cnfviz.ui.sidebar.record`). Every ``p__<name>`` key a page keeps is registered, with
what it holds, in :data:`cnfviz.ui.keys.SESSION_KEYS`.
A custom target trains as ``TrainConfig.target`` ``samples`` or ``image`` with empty ``target_params``;
the built target travels in :attr:`ControlsResult.target`. Uploading data of another dimension than the
settings were made for loads that dimension's fast defaults, as switching targets does.
A hidden control keeps the value of the last config applied (see :func:`apply_config_to_state`), as do
the field no control shows (``device``). Switching the target between
1D and 2D loads the new target's fast defaults (:func:`cnfviz.default_config`), since the two differ in
network, time span and iterations.
"""

from ...features.links import CONTROLS
from ...training.fields import FIELDS, Field
from ...training.presets import DEFAULT_TARGET
from .controls import ControlsResult, config_controls
from .groups import AFFINE_NOTE, GROUPS, group_of
from .state import apply_config_to_state, base_config, config_to_state
from .target import SLOW_SCIPY, build_target, default_param_texts, param_key, target_choices
from .widgets import DEPTH_MAX, WIDTH_MAX

__all__ = [
    "ADVANCED",
    "AFFINE_NOTE",
    "CONTROLS",
    "DEFAULT_TARGET",
    "DEPTH_MAX",
    "GROUPS",
    "SLOW_SCIPY",
    "WIDTH_MAX",
    "ControlsResult",
    "apply_config_to_state",
    "base_config",
    "build_target",
    "config_controls",
    "config_to_state",
    "group_of",
    "param_key",
    "target_choices",
]

ADVANCED: tuple[Field, ...] = tuple(f for f in FIELDS.values() if f.advanced)
"""The settings of the "Advanced" expander, in table order (the expander reads the table at each run)."""

# The name the target tests knew before the sidebar became a package.
_default_param_texts = default_param_texts
