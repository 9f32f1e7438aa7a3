"""Train page: pick a target, press Train, and watch a continuous normalizing flow learn it.

A link restores its settings here (``?target=moons&hide=solver,trace&autostart=1``), and the address bar
follows the controls, so it always holds a shareable link: see :mod:`cnfviz.ui.links`. ``?present=1``
opens it in presentation mode (see :mod:`cnfviz.ui.layout`).
"""

import sys

import streamlit as st

PREFIX = "train"

# The page's shell first: on a cold server the import below (torch, scipy, plotly) takes seconds, and the
# browser paints what this run has sent so far.
title = st.container(horizontal=True, vertical_alignment="center", key=f"{PREFIX}_title")
title.title("Train a continuous normalizing flow", width="content")
loading = None
if "cnfviz.ui" not in sys.modules:
    loading = st.sidebar.empty()
    loading.info("Loading the training controls…", icon=":material/hourglass_top:")

from cnfviz.ui import (  # noqa: E402
    checkpoint_panel,
    cluster_notice,
    code_panel,
    config_controls,
    drawing_panel,
    follow_link,
    job_holder,
    live_views,
    page_style,
    presentation_button,
    presentation_mode,
    qr_popover,
    results,
    run_buttons,
    share_panel,
    show_lesson,
    sync_url,
)
from cnfviz.ui.layout import lesson_style  # noqa: E402
from cnfviz.ui.preview import preview_panel  # noqa: E402

if loading is not None:
    loading.empty()

present = presentation_mode(PREFIX)
page_style(PREFIX, present=present)
lesson = follow_link(PREFIX)
with title:
    presentation_button(PREFIX, present)
show_lesson(PREFIX, lesson)
lesson_style(PREFIX, lesson.hidden)  # a student sees no Share, Code, Load or Present
controls = config_controls(PREFIX, hidden=lesson.controls_hidden)
holder = job_holder()
# While a drawing trains the charts come first: the canvas folds from the run where Train was pressed (the
# button's request is carried out below) until Reset.
request = st.session_state.get(f"{PREFIX}__request")
drawing_panel(PREFIX, folded=request in ("train", "restart") or (holder.get(PREFIX) is not None and request != "reset"))
cluster_notice()
with st.container(key=f"{PREFIX}_toolbar"):
    run_buttons(
        PREFIX,
        controls,
        holder,
        tools=(
            lambda: share_panel(PREFIX, controls, lesson, popover=True),
            lambda: code_panel(PREFIX, controls, popover=True),
            lambda: checkpoint_panel(PREFIX, holder, popover=True),
        ),
    )
if present:
    with title:
        qr_popover(PREFIX, controls, lesson)
sync_url(PREFIX, controls, lesson)
live_views(PREFIX, holder, present=present)
preview_panel(PREFIX, controls, holder, present=present)  # before the first run: a picture at once
with st.container(key=f"{PREFIX}_page_caption"):
    st.caption(
        "An FFJORD flow learns to carry a standard Gaussian onto the target along an ODE. Change the settings in "
        "the sidebar, press **Train**, and watch the loss, the density and the flow as it learns."
    )
results(PREFIX, holder)
