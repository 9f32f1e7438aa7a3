"""Lessons and sharing: a link restores a config, hides controls and may start training; the address bar
always holds the link to the current setup; the Share and Show code panels.

How the URL and the controls stay in step (prefix ``p``):

1. :func:`follow_link`, before the controls are drawn, reads ``st.query_params``. A non-empty query that
   this session did not write itself (a link just opened, the Learn page's ``?preset=seed``) is parsed
   with :func:`cnfviz.features.links.parse_query` and applied to the controls; its ``hide`` list becomes the
   session's lesson, its notices are kept to show, and ``autostart`` asks for one run.
2. :func:`sync_url`, after the controls are read, writes the current valid config back with
   :func:`cnfviz.features.links.config_to_query` (keeping ``hide``, dropping ``autostart``), so a reload or a
   copied address gives the same setup and never starts a second run. The last two queries written
   are remembered, so a stale echo of the previous write never re-applies an old config over an edit.
   An invalid config leaves the URL as it is; one with custom data (which a URL cannot carry) writes
   ``?data=own``, and a link with it says so when opened.

An empty query (plain ``/train``, or coming back from another page) keeps the session's settings.

Widget keys: ``p_link_notices`` (container of the warning about ignored link settings),
``p_link_notices_dismiss``, ``p_share`` (the "Share a link" expander), ``p_share_link`` and
``p_lesson_link`` (containers of the two links, each an ``st.code`` with a copy button),
``p_share_hide`` (multiselect of controls to hide), ``p_share_autostart`` (checkbox), ``p_code`` (the
"Show code" expander), ``p_code_block`` (container of the script) and ``p_custom_download`` (the custom
data, see :mod:`cnfviz.ui.custom_target`). Session keys: ``p__hidden``, ``p__link_notices``,
``p__url_mine``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import segno
import streamlit as st

from .._validation import ConfigError
from ..features.export import config_to_code
from ..features.links import CONTROLS as LINK_CONTROLS
from ..features.links import OWN_DATA, config_to_query, parse_query
from ..training.presets import default_config
from .custom_target import CONFIG_TARGETS, custom_download
from .layout import PRESENT_KEY
from .qr import local_only, qr_png
from .sidebar import DEFAULT_TARGET, ControlsResult, apply_config_to_state
from .text import plain

__all__ = [
    "CONTROL_LABELS",
    "Lesson",
    "code_panel",
    "follow_link",
    "link_qr",
    "link_url",
    "qr_popover",
    "share_panel",
    "show_lesson",
    "sync_url",
]

CONTROL_LABELS: dict[str, str] = {
    "target": "Target",
    "width": "Width",
    "depth": "Depth",
    "activation": "Activation",
    "time": "Time conditioning",
    "linear": "Linear term",
    "tspan": "Time span",
    "solver": "Solver",
    "tolerances": "Tolerances",
    "trace": "Trace estimator",
    "adjoint": "Adjoint",
    "adam_iters": "Adam iterations",
    "lr": "Learning rate",
    "lbfgs_iters": "LBFGS iterations",
    "batch": "Batch size",
    "lambdas": "Regularizers λ₁, λ₂",
    "seed": "Seed",
    "objective": "Objective",
}
"""How the lesson-link builder names the controls a link can hide."""


@dataclass(frozen=True)
class Lesson:
    """The session's lesson: the controls a link hides, and what in the link was ignored."""

    hidden: frozenset[str] = frozenset()
    notices: tuple[str, ...] = ()

    @property
    def controls_hidden(self) -> frozenset[str]:
        """What the sidebar hides: the lesson's controls, plus the presets while any is hidden (a preset
        would reset the fixed ones)."""
        return self.hidden | {"presets"} if self.hidden else frozenset()


def _query() -> dict[str, str]:
    """The link's settings: the query, less presentation mode (``present``, see :mod:`cnfviz.ui.layout`)."""
    return {k: str(v) for k, v in st.query_params.to_dict().items() if k != PRESENT_KEY}


def follow_link(prefix: str) -> Lesson:
    """Apply a link the session has not seen yet to the controls (call before drawing them).

    Returns:
        the session's :class:`Lesson` (empty when no link hid anything).
    """
    state = st.session_state
    query = _query()
    mine = state.get(f"{prefix}__url_mine") or []
    if query and query not in mine:
        link = parse_query(query)
        notices = list(link.notices)
        try:
            apply_config_to_state(prefix, link.config)
        except (ConfigError, ValueError) as err:
            notices.append(f"The controls cannot show this config ({err}); using the defaults.")
            apply_config_to_state(prefix, default_config(DEFAULT_TARGET))
        state[f"{prefix}__hidden"] = frozenset(link.hidden)
        state[f"{prefix}__link_notices"] = tuple(notices)
        state[f"{prefix}__url_mine"] = [query]
        if link.autostart:
            state[f"{prefix}__request"] = "train"  # carried out once by run_buttons
    return Lesson(frozenset(state.get(f"{prefix}__hidden") or ()), tuple(state.get(f"{prefix}__link_notices") or ()))


def _dismiss(prefix: str) -> None:
    st.session_state[f"{prefix}__link_notices"] = ()


def show_lesson(prefix: str, lesson: Lesson) -> None:
    """Say in the sidebar that a lesson fixes some controls, and show what a link got wrong."""
    if lesson.hidden:
        st.sidebar.caption(
            ":material/lock: Some controls are fixed by this lesson: "
            + ", ".join(CONTROL_LABELS.get(c, c) for c in sorted(lesson.hidden))
            + "."
        )
    if lesson.notices:
        with st.container(key=f"{prefix}_link_notices"):
            lines = "\n".join(f"- {plain(n)}" for n in lesson.notices)  # they quote the link's values
            st.warning(
                f"Some settings in the link were ignored; their defaults are used instead:\n{lines}",
                icon=":material/link_off:",
            )
            st.button("Dismiss", key=f"{prefix}_link_notices_dismiss", on_click=_dismiss, args=(prefix,))


def _shareable(controls: ControlsResult) -> bool:
    return controls.ok and controls.config is not None and controls.config.target not in CONFIG_TARGETS.values()


def sync_url(prefix: str, controls: ControlsResult, lesson: Lesson) -> None:
    """Write the current valid config into the address bar (keeping the lesson's ``hide``), or, for the
    user's own data, which no link carries, :data:`~cnfviz.features.links.OWN_DATA`."""
    if not controls.ok or controls.config is None:
        return
    want = config_to_query(controls.config, hidden=lesson.hidden) if _shareable(controls) else dict(OWN_DATA)
    state = st.session_state
    present = {PRESENT_KEY: "1"} if state.get(f"{prefix}__present") else {}
    if want != _query() or st.query_params.get(PRESENT_KEY) != present.get(PRESENT_KEY):
        st.query_params.from_dict({**want, **present})
    mine = state.get(f"{prefix}__url_mine") or []
    if not mine or mine[-1] != want:
        state[f"{prefix}__url_mine"] = [*mine[-1:], want]


def link_url(query: Mapping[str, str], base: str | None = None) -> str:
    """A link from a base URL (``st.context.url`` by default) and a query, commas and colons left readable.

    Example:
        >>> link_url({"target": "scipy:gamma", "hide": "solver,trace"}, "http://localhost:8501/train")
        'http://localhost:8501/train?target=scipy:gamma&hide=solver,trace'
    """
    if base is None:
        base = st.context.url  # None without a browser behind the session (AppTest)
    return f"{base or ''}?{urlencode(dict(query), safe=',:')}"


def _panel(label: str, short: str, icon: str, key: str, popover: bool) -> Any:
    """An expander, or a toolbar popover (``short`` label) that opens over the page without moving it."""
    if popover:
        return st.popover(short, icon=icon, key=key, help=label)
    return st.expander(label, icon=icon, key=key)


def share_panel(prefix: str, controls: ControlsResult, lesson: Lesson, *, popover: bool = False) -> None:
    """The "Share a link" expander (or popover): this exact setup as a link, and a lesson link that hides
    controls and may start training on open. ``st.code`` gives each link a copy button."""
    with _panel("Share a link", "Share", ":material/link:", f"{prefix}_share", popover):
        if controls.config is not None and controls.config.target in CONFIG_TARGETS.values():
            st.info(
                "A link carries the settings, not your data: uploads and drawings cannot go into a URL. "
                "**Show code** offers your data as a file, with a script that trains on it.",
                icon=":material/info:",
            )
            return
        if not controls.ok:
            st.info("Fix the settings in the sidebar first: a link holds a valid setup.", icon=":material/tune:")
            return
        relative = not (link_url({}).startswith("http"))
        st.markdown("**Copy link**: anyone who opens it gets exactly these settings.")
        with st.container(key=f"{prefix}_share_link"):
            st.code(link_url(config_to_query(controls.config, hidden=lesson.hidden)), language=None, wrap_lines=True)
        st.markdown("**Lesson link**: the same settings, with only the knobs of the day.")
        hide_key, auto_key = f"{prefix}_share_hide", f"{prefix}_share_autostart"
        if hide_key not in st.session_state:
            st.session_state[hide_key] = sorted(lesson.hidden)
        c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
        hide = c1.multiselect(
            "Hide these controls",
            list(LINK_CONTROLS),
            key=hide_key,
            format_func=lambda c: CONTROL_LABELS.get(c, c),
            placeholder="Show every control",
        )
        autostart = c2.checkbox("Start training on open", key=auto_key)
        with st.container(key=f"{prefix}_lesson_link"):
            query = config_to_query(controls.config, hidden=set(hide), autostart=autostart)
            lesson_link = link_url(query)
            st.code(lesson_link, language=None, wrap_lines=True)
        link_qr(prefix, lesson_link, relative=relative)
        note = " Put the app's address in front of it (the part before `?`)." if relative else ""
        st.caption(
            "Hover a link and press the copy icon at its right. The address bar always holds the first link, "
            f"too.{note}"
        )


def link_qr(prefix: str, link: str, *, relative: bool = False, width: int = 200, name: str = "link") -> None:
    """A link as a QR code to scan off a projector, with a warning when the link only works on this computer.

    Widget keys: ``p_<name>_qr`` (container of the picture), ``p_<name>_local`` (container of the warning);
    ``name`` tells two QR codes on one page apart."""
    if relative:
        return  # no host to scan to (no browser behind the session)
    if local_only(link):
        with st.container(key=f"{prefix}_{name}_local"):
            st.warning(
                "This link names this computer (localhost): students' devices cannot open it. Start the server "
                "with `--server.address 0.0.0.0` and open the app at this computer's network address (such as "
                "`http://192.168.1.20:8501`), then share that link.",
                icon=":material/wifi_off:",
            )
    try:
        picture = qr_png(link)
    except segno.DataOverflowError:  # a QR code holds about 2,300 characters of a link at medium correction
        with st.container(key=f"{prefix}_{name}_qr"):
            st.info(
                f"This link is {len(link):,} characters long, more than a QR code can hold: share it as text "
                "(copy it above), or shorten it (fewer mixture components or custom settings).",
                icon=":material/qr_code_2:",
            )
        return
    with st.container(key=f"{prefix}_{name}_qr"):
        st.image(picture, width=width, caption="Scan to open the lesson link.")


def qr_popover(prefix: str, controls: ControlsResult, lesson: Lesson) -> None:
    """A small "QR code" popover: the lesson link Share builds (this setup, its hidden controls and autostart),
    large enough to scan off a projector. Widget key: ``p_qr`` (the popover)."""
    with st.popover("QR code", icon=":material/qr_code_2:", key=f"{prefix}_qr", type="tertiary"):
        if not _shareable(controls):
            st.info("A link carries settings, not your data: there is no link to this run.", icon=":material/info:")
            return
        # The lesson link as Share builds it (its hidden controls and autostart), once Share has been set up.
        state = st.session_state
        hide = set(state.get(f"{prefix}_share_hide", lesson.hidden))
        link = link_url(
            config_to_query(controls.config, hidden=hide, autostart=bool(state.get(f"{prefix}_share_autostart")))
        )
        st.code(link, language=None, wrap_lines=True)
        link_qr(prefix, link, relative=not link.startswith("http"), width=320, name="present_link")


def code_panel(prefix: str, controls: ControlsResult, *, popover: bool = False) -> None:
    """The "Show code" expander (or popover): a short script that reproduces the current run with the cnfviz
    API."""
    with _panel("Show code", "Code", ":material/code:", f"{prefix}_code", popover):
        if not controls.ok or controls.config is None:
            st.info("Fix the settings in the sidebar first: the code reproduces a valid setup.", icon=":material/tune:")
            return
        st.caption("This run as a script: train, print the metrics, sample new data, as in the seed tutorial.")
        with st.container(key=f"{prefix}_code_block"):
            st.code(config_to_code(controls.config), language="python")
        if controls.config.target in CONFIG_TARGETS.values():
            st.caption("The script reads your data from a file next to it:")
            custom_download(prefix, controls.target)
