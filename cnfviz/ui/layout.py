"""The Train page's frame: one screen at 1366×768, and presentation mode for a projector: a teaching console.

:func:`page_style` tightens Streamlit's page padding and title so that the toolbar, the status and the
three live charts fit one 1366×768 screen with the sidebar open. In presentation mode it hides the sidebar
and the toolbar's panels (Share, Code, Load), keeps the run buttons as a compact console bar (Train, Pause,
Step, Stop, Continue, Reset), enlarges the type for the back row, and binds keys (:data:`CONSOLE_KEYS`:
space pauses and resumes, → steps, T trains). :func:`presentation_mode` reads the mode from the link
(``?present=1``) or the session, and :func:`presentation_button` switches it.

Widget keys (prefix ``p``): ``p_present_button`` (enter), ``p_present_exit`` (leave). Session key:
``p__present``.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

import streamlit as st

__all__ = [
    "CONSOLE_KEYS",
    "PRESENT_KEY",
    "back_row",
    "console_script",
    "fill_height",
    "lesson_style",
    "page_style",
    "presentation_button",
    "presentation_mode",
]

PRESENT_KEY = "present"
"""The query parameter of presentation mode (``?present=1``)."""

_COMPACT = """
<style>
.stMainBlockContainer { padding-top: 3.4rem; padding-bottom: 3rem; }
.st-key-train_buttons button { padding-left: 0.6rem; padding-right: 0.6rem; min-height: 2.25rem; }
.stMainBlockContainer h1 { font-size: 1.7rem; padding: 0.1rem 0 0.2rem 0; }
.stMainBlockContainer [data-testid="stHeadingWithActionElements"] a { display: none; }
.st-key-train_status [data-testid="stMarkdownContainer"] p { font-size: 0.92rem; }
/* The question before a run is discarded floats over the page's corner: in the flow it pushed the charts
   184 px down, and back up once answered. */
.st-key-train_discard_prompt { position: fixed; right: 1.2rem; bottom: 1.2rem; z-index: 1000; max-width: 34rem;
  background: var(--background-color, #fff); box-shadow: 0 4px 18px rgba(0, 0, 0, 0.25); }
/* A phone: Plotly's toolbar would sit over every chart's title (a tap shows it), and a finger cannot use its
   tools anyway. The live charts, in their own frames, drop it in live_chart.js at the same width. */
@media (max-width: 640px) { .stMainBlockContainer .modebar-container { display: none !important; } }
</style>
"""
_STUDENT = """
<style>
.st-key-train_share, .st-key-train_code, .st-key-train_checkpoint, .st-key-train_present_button,
.st-key-train_present_exit { display: none !important; }
</style>
"""
_PRESENT = """
<style>
[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"], [data-testid="stExpandSidebarButton"],
.st-key-train_page_caption, .st-key-train_discard_prompt { display: none !important; }
/* The console: the run buttons only, big enough to hit from the lectern; Share, Code and Load stay out. */
.st-key-train_buttons > div:not([class*="_button"]) { display: none !important; }
.st-key-train_buttons button { min-height: 2.6rem; }
.st-key-train_buttons button p { font-size: 1.2rem; }
/* No app header (its menu is the teacher's, not the class's): the console bar takes its height instead. */
[data-testid="stHeader"] { display: none !important; }
.stMainBlockContainer { max-width: 100%; padding: 0.8rem 1.5rem 2rem 1.5rem; }
.st-key-train_status [data-testid="stMarkdownContainer"] p,
.st-key-train_status [data-testid="stProgress"] p { font-size: 1.35rem !important; }
.stMainBlockContainer h1 { font-size: 1.8rem; padding: 0; }
.cnfviz-keys { position: fixed; right: 1rem; bottom: 0.6rem; z-index: 1000; font-size: 1rem; color: #555;
  background: rgba(255, 255, 255, 0.85); padding: 0.15rem 0.6rem; border-radius: 0.4rem; }
</style>
"""

CONSOLE_KEYS = {" ": "pause_button", "ArrowRight": "step_button", "t": "train_button", "T": "train_button"}
"""Presentation mode's keys and the button each presses (``event.key`` → button key less the prefix). Space
on an idle page (no Pause to press) trains, so a lesson starts with one key too."""

_KEYS_HINT = '<div class="cnfviz-keys">Space: pause / resume · →: step · T: train</div>'

_SCRIPT = """
<script>
(() => {
  const prefix = PREFIX, keys = KEYS;
  window.__cnfvizConsole = window.__cnfvizConsole || {};
  if (window.__cnfvizConsole[prefix]) return;  // one listener per page, however often Streamlit reruns
  window.__cnfvizConsole[prefix] = true;
  const button = (name) => document.querySelector(`.st-key-${prefix}_${name} button`);
  document.addEventListener("keydown", (event) => {
    if (!button("present_exit")) return;  // presentation mode only
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    const el = event.target;
    if (el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName))) return;
    let name = keys[event.key];
    if (!name) return;
    event.preventDefault();  // space would scroll the page, or press the focused button
    let target = button(name);
    if (name === "pause_button" && (!target || target.disabled)) target = button("train_button");
    if (name === "step_button" && target && target.disabled) {
      const pause = button("pause_button");  // a running run: the first → pauses it, the next ones step
      if (pause && !pause.disabled && pause.innerText.includes("Pause")) target = pause;
    }
    if (target && !target.disabled) target.click();
  });
})();
</script>
"""


def console_script(prefix: str) -> str:
    """The ``<script>`` that binds :data:`CONSOLE_KEYS` to the run buttons of page ``prefix``."""
    return _SCRIPT.replace("PREFIX", json.dumps(prefix)).replace("KEYS", json.dumps(CONSOLE_KEYS))


def page_style(prefix: str, *, present: bool) -> None:
    """The compact page (and, in presentation mode, the console: no sidebar or panels, bigger type, keys)."""
    css = _COMPACT + (_PRESENT + _KEYS_HINT if present else "")
    st.html(css.replace("train_", f"{prefix}_"))
    if present:
        st.html(console_script(prefix), unsafe_allow_javascript=True)


BACK_ROW_PX = 20
"""The smallest type of a figure in presentation mode: ticks, legends and readouts (the flow's t) the back
row of a classroom can read."""


def back_row(fig: Any) -> Any:
    """``fig`` (a plotly figure) as a projector shows it: every text at least :data:`BACK_ROW_PX`, and plots
    that fill their chart's height.

    The figures set their tick and annotation fonts themselves, so the layout's font alone leaves them at
    11-13 px. The density and flow keep x and y at one scale (``scaleanchor``), which in a chart narrower
    than it is tall leaves a small square with empty bands above and below: here the axes are freed, so the
    picture takes the whole plot area, and ``layout.meta.fill`` asks the live chart to grow to the bottom of
    the screen (a 1440×900 projector has room below the 480 px chart).
    """
    fig.update_layout(
        font={"size": BACK_ROW_PX},
        title_font={"size": BACK_ROW_PX + 4},
        legend_font_size=BACK_ROW_PX,
        meta={**(fig.layout.meta or {}), "fill": True},
    )
    fig.update_xaxes(tickfont_size=BACK_ROW_PX, title_font_size=BACK_ROW_PX)
    fig.update_yaxes(tickfont_size=BACK_ROW_PX, title_font_size=BACK_ROW_PX)
    fig.update_annotations(font_size=BACK_ROW_PX)
    fill_height(fig)
    return fig


def fill_height(fig: Any) -> Any:
    """``fig`` with no axis tied to another's scale: each plot stretches to its whole domain (a 2D density
    drawn taller than wide, rather than a square with empty space above and below). The margins grow to
    hold the tick labels, which a square plot left room for below it and a full-height one does not."""
    for name in list(fig.layout):
        if name.startswith(("xaxis", "yaxis")):
            axis = fig.layout[name]
            axis.scaleanchor = None
            axis.constrain = None
            axis.automargin = True
    return fig


def lesson_style(prefix: str, hidden: Collection[str]) -> None:
    """On a lesson link (one that hides controls), a student sees the run buttons only: no Share, Code, Load
    or Present, which are the teacher's."""
    if hidden:
        st.html(_STUDENT.replace("train_", f"{prefix}_"))


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
            help="Presentation mode for a projector: big type, the live views and the run buttons only, with "
            "keys (space: pause, →: step, T: train). A link with `?present=1` opens in it.",
        )
