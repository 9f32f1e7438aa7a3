"""cnfviz: the Streamlit entry point. Run with ``streamlit run app.py``.

This one file is two things. Imported as a module (``streamlit run`` finds ``app = st.App(...)`` and serves it
as an ASGI app), it adds the live channel's routes (:mod:`cnfviz.ui.stream`: each run's Server-Sent Events
stream and the content-hashed scripts) to Streamlit's own on the same port, and warms the server before it
answers. Run as Streamlit's script (``__main__``: every page view, and AppTest), it declares the four pages.
"""

import streamlit as st

if __name__ == "__main__":
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
else:
    from cnfviz.runtime.server import warm_server
    from cnfviz.ui.stream import routes

    # torch, the optimizer's lazy imports, the worker processes, gc.freeze: before the server answers, so that
    # the first students of a class meet a warm server (a warm-up that hangs is given up on after a minute).
    warm_server().join(60)
    app = st.App("app.py", routes=routes())
