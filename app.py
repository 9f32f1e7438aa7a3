"""cnfviz: the Streamlit entry point. Run with ``streamlit run app.py``."""

import streamlit as st

st.set_page_config(page_title="cnfviz: watch a flow learn", page_icon=":material/waves:", layout="wide")

pages = [
    st.Page("app_pages/home.py", title="Home", icon=":material/home:", url_path="start", default=True),
    st.Page("app_pages/train.py", title="Train", icon=":material/rocket_launch:", url_path="train"),
    st.Page("app_pages/compare.py", title="Compare", icon=":material/compare_arrows:", url_path="compare"),
    st.Page("app_pages/learn.py", title="Learn", icon=":material/school:", url_path="learn"),
]
# The home page lives at "/" (a default page still reserves its url_path, here "start", and serves nothing
# there); "/home", which a reader types or an old link holds, leads to it too.
home_alias = st.Page(lambda: st.switch_page(pages[0]), title="Home", url_path="home", visibility="hidden")
st.navigation([*pages, home_alias]).run()
