"""Train page: pick a target, press Train, and watch a continuous normalizing flow learn it.

A link restores its settings here (``?target=moons&hide=solver,trace&autostart=1``), and the address bar
follows the controls, so it always holds a shareable link: see :mod:`cnfviz.ui.lessons`.
"""

import streamlit as st

from cnfviz.ui import (
    checkpoint_panel,
    cluster_notice,
    code_panel,
    config_controls,
    drawing_panel,
    follow_link,
    job_holder,
    live_views,
    results,
    run_buttons,
    share_panel,
    show_lesson,
    sync_url,
)
from cnfviz.ui.navigation import ensure_app_navigation

ensure_app_navigation()

PREFIX = "train"

st.title("Train a continuous normalizing flow")
st.caption(
    "An FFJORD flow learns to carry a standard Gaussian onto the target along an ODE. Change the settings in "
    "the sidebar, press **Train**, and watch the loss, the density and the trajectories as it learns."
)
lesson = follow_link(PREFIX)
show_lesson(PREFIX, lesson)
controls = config_controls(PREFIX, hidden=lesson.controls_hidden)
drawing_panel(PREFIX)
holder = job_holder()
cluster_notice()
run_buttons(PREFIX, controls, holder)
sync_url(PREFIX, controls, lesson)
share_panel(PREFIX, controls, lesson)
code_panel(PREFIX, controls)
checkpoint_panel(PREFIX, holder)
live_views(PREFIX, holder)
results(PREFIX, holder)
