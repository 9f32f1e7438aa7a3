"""learn page (under construction)."""

import streamlit as st

st.title("Learn")
