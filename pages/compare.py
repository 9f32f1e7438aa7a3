"""compare page (under construction)."""

import streamlit as st

st.title("Compare")
