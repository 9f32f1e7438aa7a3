"""The Train page's frame: one screen at 1366×768, and presentation mode for a projector.

:func:`page_style` tightens Streamlit's page padding and title so that the toolbar, the status and the
three live charts fit one 1366×768 screen with the sidebar open; in presentation mode it also hides the
sidebar and the toolbar and enlarges the type. :func:`presentation_mode` reads the mode from the link
(``?present=1``) or the session, and :func:`presentation_button` switches it.

Widget keys (prefix ``p``): ``p_present_button`` (enter), ``p_present_exit`` (leave). Session key:
``p__present``.
"""

from __future__ import annotations

import streamlit as st

__all__ = ["PRESENT_KEY", "page_style", "presentation_button", "presentation_mode"]

PRESENT_KEY = "present"
"""The query parameter of presentation mode (``?present=1``)."""

_COMPACT = """
<style>
.stMainBlockContainer { padding-top: 3.4rem; padding-bottom: 3rem; }
.st-key-train_buttons button { padding-left: 0.6rem; padding-right: 0.6rem; min-height: 2.25rem; }
.stMainBlockContainer h1 { font-size: 1.7rem; padding: 0.1rem 0 0.2rem 0; }
.stMainBlockContainer [data-testid="stHeadingWithActionElements"] a { display: none; }
.st-key-train_status [data-testid="stMarkdownContainer"] p { font-size: 0.92rem; }
</style>
"""
_PRESENT = """
<style>
[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"], [data-testid="stExpandSidebarButton"],
.st-key-train_toolbar, .st-key-train_page_caption { display: none !important; }
.stMainBlockContainer { max-width: 100%; padding-left: 1.5rem; padding-right: 1.5rem; }
.st-key-train_status [data-testid="stMarkdownContainer"] p,
.st-key-train_status [data-testid="stProgress"] p { font-size: 1.35rem !important; }
.stMainBlockContainer h1 { font-size: 2.1rem; }
</style>
"""


def page_style(prefix: str, *, present: bool) -> None:
    """The compact page (and, in presentation mode, no sidebar or toolbar and bigger type)."""
    css = _COMPACT + (_PRESENT if present else "")
    st.html(css.replace("train_", f"{prefix}_"))


def presentation_mode(prefix: str) -> bool:
    """Whether the page is in presentation mode: ``?present=1`` in the link turns it on (``0`` off), and the
    session remembers it."""
    state = st.session_state
    raw = st.query_params.get(PRESENT_KEY)
    if raw is not None and state.get(f"{prefix}__present_seen") != raw:
        state[f"{prefix}__present"] = raw.strip().lower() in ("1", "true", "yes", "on")
        state[f"{prefix}__present_seen"] = raw
    return bool(state.get(f"{prefix}__present", False))


def _set(prefix: str, on: bool) -> None:
    st.session_state[f"{prefix}__present"] = on
    # The link's value is taken as seen, so it does not switch the mode back before the URL follows.
    st.session_state[f"{prefix}__present_seen"] = st.query_params.get(PRESENT_KEY)


def presentation_button(prefix: str, present: bool) -> None:
    """Enter presentation mode (in the toolbar), or leave it (a small button, the only control left)."""
    if present:
        st.button(
            "Exit presentation",
            key=f"{prefix}_present_exit",
            icon=":material/close_fullscreen:",
            type="tertiary",
            on_click=_set,
            args=(prefix, False),
        )
    else:
        st.button(
            "Present",
            key=f"{prefix}_present_button",
            icon=":material/fit_screen:",
            type="tertiary",
            on_click=_set,
            args=(prefix, True),
            help="Presentation mode for a projector: big type, the live views only, no controls. A link with "
            "`?present=1` opens in it.",
        )
