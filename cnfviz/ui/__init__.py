"""Streamlit building blocks of the app: the only part of cnfviz that imports streamlit.

Pages stay thin: they read the controls into one config (:func:`config_controls`), hand it to the
library through the session's :class:`JobHolder`, and draw the views::

    lesson = follow_link("train")                # a shared link, applied before the controls
    controls = config_controls("train", hidden=lesson.controls_hidden)
    holder = job_holder()
    run_buttons("train", controls, holder)
    sync_url("train", controls, lesson)          # the address bar follows the controls
    checkpoint_panel("train", holder)            # a loaded checkpoint shows like a finished run
    live_views("train", holder)
    results("train", holder)

Widget keys are prefixed with the page (``train_target``, ``train_width``, ``train_train_button``...);
each module's docstring lists its keys.
"""

# plotly and Streamlit use pandas when it is in sys.modules; imported lazily by whichever session
# first needs it, another session's thread can find it there half-initialised ("partially initialized
# module 'pandas' has no attribute 'Series'"). Importing it here, under the import lock, before any page
# runs, closes that window.
import pandas  # noqa: F401

from .actions import run_buttons
from .checkpoint_panel import checkpoint_panel
from .cluster_notice import cluster_notice
from .compare import comparison_buttons, comparison_live, comparison_results, comparison_setup
from .custom_target import CUSTOM_SOURCES, custom_target_controls, drawing_panel, drawing_samples
from .layout import page_style, presentation_button, presentation_mode
from .links import Lesson, code_panel, follow_link, qr_popover, share_panel, show_lesson, sync_url
from .live_chart import live_chart
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
    "CUSTOM_SOURCES",
    "DEFAULT_MAX_JOBS",
    "DEFAULT_TARGET",
    "MAX_JOBS_ENV",
    "POLL_SECONDS",
    "ControlsResult",
    "JobHolder",
    "Lesson",
    "apply_config_to_state",
    "base_config",
    "checkpoint_panel",
    "cluster_notice",
    "code_panel",
    "comparison_buttons",
    "comparison_live",
    "comparison_results",
    "comparison_setup",
    "config_controls",
    "config_to_state",
    "custom_target_controls",
    "drawing_panel",
    "drawing_samples",
    "follow_link",
    "format_duration",
    "job_holder",
    "job_slots",
    "live_chart",
    "live_views",
    "max_jobs",
    "metrics_rows",
    "page_style",
    "param_key",
    "presentation_button",
    "presentation_mode",
    "progress_text",
    "qr_popover",
    "render_status",
    "results",
    "run_buttons",
    "samples_csv",
    "share_panel",
    "show_lesson",
    "sync_url",
    "target_choices",
]
