"""cnfviz: the Streamlit entry point. Run with ``streamlit run app.py``."""

import streamlit as st

st.set_page_config(page_title="cnfviz: watch a flow learn", page_icon=":material/waves:", layout="wide")

pages = [
    st.Page("app_pages/home.py", title="Home", icon=":material/home:", url_path="home", default=True),
    st.Page("app_pages/train.py", title="Train", icon=":material/rocket_launch:", url_path="train"),
    st.Page("app_pages/compare.py", title="Compare", icon=":material/compare_arrows:", url_path="compare"),
    st.Page("app_pages/learn.py", title="Learn", icon=":material/school:", url_path="learn"),
]
st.navigation(pages).run()
