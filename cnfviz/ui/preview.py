"""A picture at once: before Train, the target large and what a trained flow makes of it.

The Train page draws :func:`preview_panel` while its session has no run: the target's density next to the
density a flow learned with these settings (a shipped preview, see :mod:`cnfviz.ui.preview_data`), and that
flow's points moving along their trajectories from z (t0) to x (t1) in a loop, in the live flow chart's
component (:mod:`cnfviz.ui.live_chart`: the frames are drawn by the browser, no server work per frame),
labelled "after training". The first run replaces it with the live views. A target
without a shipped preview (a drawing, a CSV, a scipy distribution, other parameters) shows large alone.

Widget keys (prefix ``p``): ``p_preview`` (container), ``p_preview_density``, ``p_preview_target`` (the
charts), ``p_preview_flow`` (the flow's container) and ``p_preview_flow_chart`` (its live chart).
"""

from __future__ import annotations

import streamlit as st

from ..figures.plots import density_figure, flow_figure, target_preview_figure
from ..training.config import TrainConfig
from .layout import back_row
from .live_chart import Animation, chart_spec, live_chart
from .preview_data import Preview, find_preview
from .session import JobHolder
from .sidebar import ControlsResult

__all__ = ["PRESENT_PREVIEW_HEIGHT", "PREVIEW_HEIGHT", "preview_caption", "preview_flow_spec", "preview_panel"]

PREVIEW_HEIGHT = 420
"""The preview's charts' height in pixels (the live charts' place, a little taller: no loss chart yet)."""
PRESENT_PREVIEW_HEIGHT = 520
"""...and in presentation mode."""
_PLOT_CONFIG = {"displaylogo": False, "displayModeBar": False}


@st.cache_resource(show_spinner=False, max_entries=64)
def _cached_preview(config_json: str) -> tuple[Preview, bool] | None:
    # Shared by every session (read-only arrays): the files are a few tens of KB and never change at run time.
    return find_preview(TrainConfig.from_json(config_json))


@st.cache_resource(show_spinner=False, max_entries=64)
def _cached_flow_spec(config_json: str, height: int, present: bool) -> str:
    found = _cached_preview(config_json)
    assert found is not None  # only asked for where a preview was found
    return preview_flow_spec(found[0], height=height, present=present)


def preview_caption(preview: Preview, exact: bool) -> str:
    """What the "after training" pictures are, in words.

    Example:
        >>> from cnfviz.ui.preview_data import load_preview
        >>> p = load_preview("target", "moons")
        >>> preview_caption(p, True).startswith("After training: a flow trained with these settings")
        True
    """
    how = "these settings" if exact else "this target's fast default settings"
    return (
        f"After training: a flow trained with {how} for {preview.iterations:,} iterations, shipped with the app. "
        "Left: the target density; middle: the density the flow learned, with its samples (white); right: the "
        "flow carrying Gaussian points (grey, t0) onto the data (t1). Press **Train** to watch one learn live."
    )


def preview_flow_spec(preview: Preview, *, height: int, present: bool = False) -> str:
    """The preview's flow as the live flow chart draws it (:func:`~cnfviz.ui.live_chart.chart_spec`): the
    trained flow's points carried from z (t0) to x (t1) along their trajectories, looped by the browser.

    Example:
        >>> import json
        >>> from cnfviz.ui.preview_data import load_preview
        >>> spec = json.loads(preview_flow_spec(load_preview("target", "moons"), height=420))
        >>> spec["anim"]["T"] > 1, spec["figure"]["layout"]["title"]["text"]
        (True, 'After training: the flow')
    """
    flow = flow_figure(preview.trajectories, density_path=preview.density_path, height=height)
    flow.figure.update_layout(title={"text": "After training: the flow"}, margin={"t": 70, "l": 40})
    if present:
        back_row(flow.figure)
        flow.figure.layout.meta = None  # as tall as the density beside it (a plain chart, which cannot grow)
    animation = Animation(trace=flow.moving, paths=flow.paths, t0=flow.t0, t1=flow.t1, label=flow.label)
    return chart_spec(flow.figure, animation)


def preview_panel(prefix: str, controls: ControlsResult, holder: JobHolder, *, present: bool = False) -> None:
    """Before the page's first run: the target and, where one ships, a trained flow's result. Draws nothing
    once the page has a run (the live views take its place)."""
    if holder.get(prefix) is not None or controls.config is None or controls.target is None:
        return
    height = PRESENT_PREVIEW_HEIGHT if present else PREVIEW_HEIGHT
    config_json = controls.config.to_json()
    found = _cached_preview(config_json)
    with st.container(key=f"{prefix}_preview"):
        if found is None:
            fig = target_preview_figure(controls.target, height=height)
            fig.update_layout(title={"text": f"The target: {controls.target.label}", "font": {"size": 18}})
            fig.update_xaxes(tickfont={"size": 13})
            st.plotly_chart(fig, key=f"{prefix}_preview_target", config=_PLOT_CONFIG)
            st.caption("The target this flow will learn. Press **Train** to watch a flow learn it live.")
            return
        preview, exact = found
        c_density, c_flow = st.columns([1.6, 1], gap="small")
        density = density_figure(preview.density, height=height, compact=True)
        density.update_layout(title={"text": "The target, and after training"}, margin={"t": 70, "l": 35})
        if present:
            back_row(density)
        with c_density:
            st.plotly_chart(density, key=f"{prefix}_preview_density", config=_PLOT_CONFIG)
        with c_flow, st.container(key=f"{prefix}_preview_flow"):
            live_chart(
                _cached_flow_spec(config_json, height, present), key=f"{prefix}_preview_flow_chart", height=height
            )
        if not present:
            st.caption(preview_caption(preview, exact))
