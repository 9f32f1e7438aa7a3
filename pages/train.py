"""Train page: pick a target, press Train, and watch a continuous normalizing flow learn it."""

import streamlit as st

from cnfviz.ui import config_controls, job_holder, live_views, results, run_buttons
from cnfviz.ui.navigation import ensure_app_navigation

ensure_app_navigation()

PREFIX = "train"

st.title("Train a continuous normalizing flow")
st.caption(
    "An FFJORD flow learns to carry a standard Gaussian onto the target along an ODE. Change the settings in "
    "the sidebar, press **Train**, and watch the loss, the density and the trajectories as it learns."
)
controls = config_controls(PREFIX)
holder = job_holder()
run_buttons(PREFIX, controls, holder)
live_views(PREFIX, holder)
results(PREFIX, holder)
