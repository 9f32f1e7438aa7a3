"""One line under the page title saying where runs train, when that is not simply this server."""

from __future__ import annotations

import streamlit as st

from .session import backend_notice, job_backend

__all__ = ["cluster_notice"]


def cluster_notice() -> None:
    """Nothing on a plain server; a caption naming the Ray cluster runs train on, or a warning that the cluster
    in ``$CNFVIZ_RAY_ADDRESS`` did not answer at start-up and runs train on this server instead."""
    notice = backend_notice()
    if notice is None:
        return
    if job_backend().name == "ray":
        st.caption(notice)
    else:
        st.warning(notice)
