"""compare page (under construction)."""

import streamlit as st

from cnfviz.ui.navigation import ensure_app_navigation

ensure_app_navigation()

st.title("Compare")
