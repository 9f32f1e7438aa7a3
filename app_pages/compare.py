"""Compare page: train two to six flows that differ in one knob (or a few) side by side, and see which learns best."""

import streamlit as st

from cnfviz.ui import comparison_buttons, comparison_live, comparison_results, comparison_setup, job_holder

st.title("Compare runs")
st.caption(
    "Train two to six flows side by side: vary one knob, or write each run's settings, press **Start**, and watch "
    "their losses; at the end, compare the learned densities and the metrics. The runs all train at once "
    "(variants of one network shape as one stack), beside the Train page's runs."
)
holder = job_holder()
setup = comparison_setup()
comparison_buttons(setup, holder)
comparison_live(holder)
comparison_results(holder)
