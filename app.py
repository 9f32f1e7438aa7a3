"""cnfviz: the Streamlit entry point. Run with ``streamlit run app.py``.

This one file is two things. Imported as a module (``streamlit run`` finds ``app = st.App(...)`` and serves it
as an ASGI app), it adds the live channel's routes (:mod:`cnfviz.ui.stream`: each run's Server-Sent Events
stream and the content-hashed scripts) to Streamlit's own on the same port, and warms the server. Run as
Streamlit's script (``__main__``: every page view, and AppTest), it declares the four pages.
"""

import streamlit as st

if __name__ == "__main__":
    st.set_page_config(page_title="cnfviz: watch a flow learn", page_icon=":material/waves:", layout="wide")

    pages = [
        st.Page("app_pages/home.py", title="Home", icon=":material/home:", url_path="home", default=True),
        st.Page("app_pages/train.py", title="Train", icon=":material/rocket_launch:", url_path="train"),
        st.Page("app_pages/compare.py", title="Compare", icon=":material/compare_arrows:", url_path="compare"),
        st.Page("app_pages/learn.py", title="Learn", icon=":material/school:", url_path="learn"),
    ]
    st.navigation(pages).run()
else:
    from cnfviz.runtime.server import warm_server
    from cnfviz.ui.stream import routes

    warm_server()  # in the background: torch, the optimizer's lazy imports, the worker processes, gc.freeze
    app = st.App("app.py", routes=routes())
