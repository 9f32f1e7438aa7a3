"""Streamlit building blocks of the app: the only part of cnfviz that imports streamlit.

Pages stay thin: they read the controls into one config (:func:`config_controls`), hand it to the
library through the session's :class:`JobHolder`, and draw the views::

    controls = config_controls("train")
    holder = job_holder()
    run_buttons("train", controls, holder)
    live_views("train", holder)
    results("train", holder)

Widget keys are prefixed with the page (``train_target``, ``train_width``, ``train_train_button``...);
each module's docstring lists its keys.
"""

from .actions import run_buttons
from .session import DEFAULT_MAX_JOBS, MAX_JOBS_ENV, JobHolder, job_holder, job_slots, max_jobs
from .sidebar import (
    CONTROLS,
    DEFAULT_TARGET,
    ControlsResult,
    apply_config_to_state,
    base_config,
    config_controls,
    config_to_state,
    param_key,
    target_choices,
)
from .status import format_duration, progress_text, render_status
from .views import POLL_SECONDS, live_views, metrics_rows, results, samples_csv

__all__ = [
    "CONTROLS",
    "DEFAULT_MAX_JOBS",
    "DEFAULT_TARGET",
    "MAX_JOBS_ENV",
    "POLL_SECONDS",
    "ControlsResult",
    "JobHolder",
    "apply_config_to_state",
    "base_config",
    "config_controls",
    "config_to_state",
    "format_duration",
    "job_holder",
    "job_slots",
    "live_views",
    "max_jobs",
    "metrics_rows",
    "param_key",
    "progress_text",
    "render_status",
    "results",
    "run_buttons",
    "samples_csv",
    "target_choices",
]
