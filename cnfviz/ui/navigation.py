"""Make every page run under ``app.py``'s ``st.navigation``, even when a server's first request is a page URL.

Streamlit still honours its legacy multipage mode for a folder named ``pages/`` next to the main
script: until some session has run ``app.py`` (which calls ``st.navigation``), a request for
``/train`` runs ``pages/train.py`` on its own, with file-name navigation and none of the app's
page config, for every session. Each page calls :func:`ensure_app_navigation` first; if the legacy
mode is still on, it switches it off and reruns, so the request goes through ``app.py``.
"""

from __future__ import annotations

import streamlit as st

__all__ = ["ensure_app_navigation"]


def ensure_app_navigation() -> None:
    """Leave Streamlit's legacy ``pages/`` mode if it is still active (reruns the script once)."""
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # a Streamlit without the legacy mode
        return
    if getattr(PagesManager, "uses_pages_directory", False):
        # What st.navigation itself does on its first call; app.py will call it on the rerun.
        PagesManager.uses_pages_directory = False
        # Rerun at most once per session: a rerun drops the widget event of the run it replaces.
        if not st.session_state.get(_MARK):
            st.session_state[_MARK] = True
            st.rerun()


_MARK = "_cnfviz_navigation_checked"
