"""home page (under construction)."""

import streamlit as st

st.title("Home")
