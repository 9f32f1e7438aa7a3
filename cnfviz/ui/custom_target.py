"""Your own target: upload samples (CSV), upload a picture, or draw a 2D distribution with the mouse.

The target picker offers three extra choices (:data:`CUSTOM_SOURCES`); the run's config then names
``samples`` or ``image`` (:data:`CONFIG_TARGETS`) and the job gets the built target itself. Custom data
never goes into a link.

Drawing needs no extra dependency: the canvas is a plotly chart over a dense grid of points with
``on_select``. Each lasso (or box) the user draws is one stroke; in "Fill" mode a stroke inks the grid
points inside the loop, in "Pen" mode the points within :data:`PEN_RADIUS` of the lasso's path. Ink adds
up over strokes, and :func:`drawing_samples` turns it into samples spread evenly over each inked cell.

Widget keys (prefix ``p``): ``p_csv_upload`` (file uploader), ``p_image_upload`` (file uploader),
``p_image_invert`` (checkbox "Dark pixels are likely"), ``p_draw_canvas`` (the plotly canvas),
``p_draw_mode`` (radio: fill or pen), ``p_draw_undo``, ``p_draw_clear`` (buttons), ``p_draw_panel`` (the
canvas's box) or, while the page has a run, ``p_draw_folded`` (the expander it folds into), ``p_custom_preview``
(the sidebar preview chart), ``p_custom_download`` (the data, next to "Show code"). Session keys:
``p__drawing`` (the strokes, a list of lists of ``[x, y]`` grid points) and ``p__custom_<source>`` (the
parsed upload or drawing, rebuilt only when it changes).
"""

from __future__ import annotations

import functools
import hashlib
import io
import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from .._validation import ConfigError
from ..figures.plots import target_preview_figure
from ..targets import ImageTarget, SamplesTarget, Target, image_from_file, samples_from_csv
from .session import job_holder
from .text import plain

__all__ = [
    "CANVAS_HALF_WIDTH",
    "CANVAS_POINTS",
    "CONFIG_TARGETS",
    "CUSTOM_SOURCES",
    "DRAWING_SAMPLES",
    "MAX_UPLOAD_MB",
    "PEN_RADIUS",
    "CustomTarget",
    "canvas_axis",
    "csv_target",
    "custom_download",
    "custom_target_controls",
    "default_invert",
    "drawing_ink",
    "drawing_panel",
    "drawing_samples",
    "drawing_target",
    "image_target",
    "image_weights",
    "pen_stroke",
    "source_dim",
    "stroke_from_selection",
]

CUSTOM_SOURCES: dict[str, str] = {
    "samples": "Upload samples (CSV)",
    "image": "Upload an image (2D)",
    "drawing": "Draw your own (2D)",
}
"""Target-picker values for custom data, with their labels."""

CONFIG_TARGETS: dict[str, str] = {"samples": "samples", "image": "image", "drawing": "samples"}
"""The ``TrainConfig.target`` each custom source trains as."""

MAX_UPLOAD_MB = 5
CANVAS_HALF_WIDTH = 4.0
"""The canvas spans [-4, 4]², about the range of the FFJORD toy sets the 2D defaults are tuned for."""
CANVAS_POINTS = 41
"""Grid points per axis (spacing 0.2)."""
PEN_RADIUS = 0.3
DRAWING_SAMPLES = 2000
_GRID_TRACE = 1  # the canvas's selectable scatter trace (trace 0 is the ink heatmap)


def canvas_axis() -> np.ndarray:
    """The canvas grid's coordinates along either axis, shape (:data:`CANVAS_POINTS`,)."""
    return np.linspace(-CANVAS_HALF_WIDTH, CANVAS_HALF_WIDTH, CANVAS_POINTS)


def _spacing() -> float:
    return 2 * CANVAS_HALF_WIDTH / (CANVAS_POINTS - 1)


def _cell(x: float, y: float) -> tuple[int, int] | None:
    """(row, col) of the grid point nearest (x, y), or None off the canvas."""
    h = _spacing()
    col, row = round((x + CANVAS_HALF_WIDTH) / h), round((y + CANVAS_HALF_WIDTH) / h)
    if 0 <= row < CANVAS_POINTS and 0 <= col < CANVAS_POINTS:
        return row, col
    return None


def _point(cell: tuple[int, int]) -> list[float]:
    axis = canvas_axis()
    return [round(float(axis[cell[1]]), 6), round(float(axis[cell[0]]), 6)]


def pen_stroke(xs: Sequence[float], ys: Sequence[float], radius: float = PEN_RADIUS) -> list[list[float]]:
    """The grid points within ``radius`` of the polyline through ``(xs, ys)``: a pen line of that width.

    Example:
        >>> pts = pen_stroke([-1.0, 1.0], [0.0, 0.0], radius=0.1)
        >>> len(pts), min(p[0] for p in pts), max(p[0] for p in pts), {p[1] for p in pts}
        (11, -1.0, 1.0, {0.0})
    """
    path = np.column_stack([np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)])
    path = path[np.all(np.isfinite(path), axis=1)]
    if len(path) == 0:
        return []
    # Points along the path no further apart than a tenth of the grid spacing.
    dense = [path[:1]]
    for a, b in itertools.pairwise(path):
        steps = max(1, int(np.ceil(np.linalg.norm(b - a) / (_spacing() / 10))))
        dense.append(a + (b - a) * (np.arange(1, steps + 1)[:, None] / steps))
    dense_path = np.concatenate(dense)
    axis = canvas_axis()
    gx, gy = np.meshgrid(axis, axis)
    grid = np.column_stack([gx.ravel(), gy.ravel()])
    near = np.zeros(len(grid), dtype=bool)
    for chunk in np.array_split(dense_path, max(1, len(dense_path) // 256)):
        d2 = ((grid[:, None, :] - chunk[None, :, :]) ** 2).sum(-1)
        near |= (d2 <= radius**2 + 1e-9).any(axis=1)
    return [_point((int(i) // CANVAS_POINTS, int(i) % CANVAS_POINTS)) for i in np.flatnonzero(near)]


def stroke_from_selection(selection: Mapping[str, Any], mode: str = "fill") -> list[list[float]]:
    """One stroke from a canvas selection event: the grid points it inks, each once.

    Arguments:
        selection: the ``selection`` of a plotly chart's event, with ``points`` (dicts with ``x``, ``y``
            and ``curve_number``) and ``lasso`` (dicts with the loop's ``x`` and ``y`` lists).
        mode: ``"fill"`` inks the points inside the loop or box; ``"pen"`` inks the points along a lasso's
            path instead (a box still fills).

    Example:
        >>> sel = {"points": [{"x": 0.2, "y": 0.4, "curve_number": 1}, {"x": 9, "y": 0, "curve_number": 0}]}
        >>> stroke_from_selection(sel)
        [[0.2, 0.4]]
    """
    cells: set[tuple[int, int]] = set()
    lassos = [s for s in selection.get("lasso") or () if isinstance(s, Mapping)]
    if mode == "pen" and lassos:
        for loop in lassos:
            try:
                xs, ys = [float(v) for v in loop.get("x", ())], [float(v) for v in loop.get("y", ())]
            except (TypeError, ValueError):
                continue
            if len(xs) == len(ys):
                cells.update(c for p in pen_stroke(xs, ys) if (c := _cell(*p)) is not None)
    else:
        for p in selection.get("points") or ():
            if not isinstance(p, Mapping) or p.get("curve_number", _GRID_TRACE) != _GRID_TRACE:
                continue
            try:
                cell = _cell(float(p["x"]), float(p["y"]))
            except (KeyError, TypeError, ValueError):
                continue
            if cell is not None:
                cells.add(cell)
    return [_point(c) for c in sorted(cells)]


def drawing_ink(strokes: Sequence[Sequence[Sequence[float]]]) -> np.ndarray:
    """How often each grid cell was inked: shape (:data:`CANVAS_POINTS`,) * 2, row i is the i-th y value."""
    ink = np.zeros((CANVAS_POINTS, CANVAS_POINTS))
    for stroke in strokes:
        for p in stroke:
            cell = _cell(float(p[0]), float(p[1])) if len(p) == 2 else None
            if cell is not None:
                ink[cell] += 1
    return ink


def drawing_samples(
    strokes: Sequence[Sequence[Sequence[float]]], n: int = DRAWING_SAMPLES, seed: int = 0
) -> np.ndarray:
    """Samples from a drawing: each inked grid cell gets a share proportional to its ink, spread
    uniformly over the cell (a square of the grid spacing around its point).

    Arguments:
        strokes: lists of ``[x, y]`` grid points (see :func:`stroke_from_selection`).
        n: how many samples.
        seed: the random seed; the same drawing and seed give the same samples.

    Returns:
        samples, shape (n, 2).

    Raises:
        ConfigError: if nothing is drawn.

    Example:
        >>> x = drawing_samples([[[1.0, 2.0]]], n=50)
        >>> x.shape, bool(np.all(np.abs(x - [1.0, 2.0]) <= 0.1))
        ((50, 2), True)
    """
    ink = drawing_ink(strokes)
    total = ink.sum()
    if total <= 0:
        raise ConfigError("the drawing is empty: draw a loop around a region of the canvas")
    rng = np.random.default_rng(seed)
    idx = rng.choice(ink.size, size=int(n), p=(ink / total).ravel())
    rows, cols = np.divmod(idx, CANVAS_POINTS)
    axis = canvas_axis()
    h = _spacing()
    jitter = rng.uniform(-h / 2, h / 2, size=(int(n), 2))
    return np.column_stack([axis[cols], axis[rows]]) + jitter


def drawing_target(strokes: Sequence[Sequence[Sequence[float]]], seed: int = 0) -> SamplesTarget:
    """The drawing as a :class:`~cnfviz.targets.SamplesTarget` of :data:`DRAWING_SAMPLES` points."""
    return SamplesTarget(drawing_samples(strokes, seed=seed), name="drawing")


def csv_target(data: bytes | str) -> SamplesTarget:
    """Samples from CSV content (one or two numeric columns, at most 5 MB), with the library's errors.

    Example:
        >>> csv_target("x\\n" + "\\n".join(str(i) for i in range(12))).dim
        1
    """
    samples = samples_from_csv(data, max_bytes=MAX_UPLOAD_MB * 1_000_000)
    # SamplesTarget lets a constant column through (its KDE variance rounds to ~1e-32, not 0).
    if np.any(np.ptp(samples, axis=0) == 0):
        raise ConfigError("samples are degenerate (zero spread); a density cannot be estimated")
    return SamplesTarget(samples, name="samples")


def default_invert(gray: np.ndarray) -> bool:
    """Whether a picture looks like dark ink on light paper (then dark pixels should be likely)."""
    return bool(np.mean(gray) > 0.5)


def image_weights(gray: np.ndarray, invert: bool) -> np.ndarray:
    """A picture's density weights as a square uint8 image: 255 - gray if ``invert``, padded with zero
    weight to a square so that the default extent [-4, 4]² keeps its aspect ratio.

    Example:
        >>> w = image_weights(np.ones((2, 4)), invert=True)
        >>> w.shape, int(w.max())
        ((4, 4), 0)
    """
    u8 = np.rint(np.clip(np.asarray(gray, dtype=np.float64), 0, 1) * 255).astype(np.uint8)
    weights = 255 - u8 if invert else u8
    h, w = weights.shape
    side = max(h, w)
    out = np.zeros((side, side), dtype=np.uint8)
    top, left = (side - h) // 2, (side - w) // 2
    out[top : top + h, left : left + w] = weights
    return out


def image_target(data: bytes, invert: bool | None = None) -> ImageTarget:
    """A picture (PNG, JPEG ...) as a 2D density on [-4, 4]²; ``invert=None`` guesses from the picture.

    The target's ``image`` is exactly what :func:`cnfviz.targets.image_from_file` reads back from the PNG
    :func:`custom_download` offers, so the exported script trains on the same density.
    """
    gray = image_from_file(data)
    inv = default_invert(gray) if invert is None else bool(invert)
    weights = image_weights(gray, inv)
    if not weights.any():
        # Said in the checkbox's words: ImageTarget's own message speaks of the weights, not the picture.
        if inv:
            raise ConfigError(
                'the picture has no dark pixels, so with "Dark pixels are likely" on it has no mass to learn: '
                "untick the box, or upload a picture with dark strokes"
            )
        raise ConfigError(
            'the picture is black everywhere, so with "Dark pixels are likely" off it has no mass to learn: '
            "tick the box, or upload a picture with bright strokes"
        )
    return ImageTarget(weights)


def source_dim(prefix: str, source: str, state: Mapping[str, Any] | None = None) -> int | None:
    """The dimension of a custom source's target: 2 for images and drawings; for CSV samples, the
    dimension of the uploaded data, or None before an upload."""
    if source in ("image", "drawing"):
        return 2
    state = st.session_state if state is None else state
    cached = state.get(f"{prefix}__custom_samples")
    target = cached.get("target") if isinstance(cached, dict) else None
    return target.dim if isinstance(target, Target) else None


def custom_download(prefix: str, target: Target | None) -> None:
    """A download button for a custom target's data, named as the exported script reads it."""
    if isinstance(target, SamplesTarget):
        buf = io.StringIO()
        header = "x" if target.dim == 1 else "x,y"
        np.savetxt(buf, target.data, delimiter=",", fmt="%.9g", header=header, comments="")
        data, name, mime, what = buf.getvalue(), "data.csv", "text/csv", "your samples as data.csv"
    elif isinstance(target, ImageTarget):
        from PIL import Image

        png = io.BytesIO()
        Image.fromarray(np.rint(target.image * 255).astype(np.uint8), mode="L").save(png, format="PNG")
        data, name, mime, what = png.getvalue(), "image.png", "image/png", "your picture's density as image.png"
    else:
        return
    st.download_button(
        f"Download {what}",
        data=data,
        file_name=name,
        mime=mime,
        key=f"{prefix}_custom_download",
        on_click="ignore",
        icon=":material/download:",
    )


# --------------------------------------------------------------------------------------------------
# The controls in the sidebar
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomTarget:
    """A custom source's state: the built target, or an error, or what the user still has to do."""

    target: Target | None = None
    error: str | None = None
    waiting: str | None = None


def _built(prefix: str, source: str, token: Any, build: Callable[[], Target]) -> CustomTarget:
    """Build a custom target once per ``token`` (upload id, drawing hash), keeping it in session state."""
    key = f"{prefix}__custom_{source}"
    cached = st.session_state.get(key)
    if not isinstance(cached, dict) or cached.get("token") != token:
        try:
            cached = {"token": token, "target": build(), "error": None}
        except ConfigError as err:
            cached = {"token": token, "target": None, "error": str(err)}
        except Exception as err:  # a file no parser foresaw (a PIL or numpy corner): say so, keep the page alive
            cached = {
                "token": token,
                "target": None,
                "error": f"could not read this file ({type(err).__name__}: {err})",
            }
        st.session_state[key] = cached
        job_holder().hold_data(key, cached["target"])  # the server's memory counts what this session keeps
    return CustomTarget(cached["target"], cached["error"])


def _preview(prefix: str, target: Target) -> None:
    key = f"{prefix}__custom_preview_figure"
    cached = st.session_state.get(key)
    if not isinstance(cached, tuple) or cached[0] != hash(target):
        cached = (hash(target), target_preview_figure(target))
        st.session_state[key] = cached
    st.plotly_chart(cached[1], key=f"{prefix}_custom_preview", config={"displayModeBar": False, "staticPlot": True})
    st.caption("What the flow will learn: the density estimated from your data, and samples of it.")


def custom_target_controls(prefix: str, source: str, *, show: bool = True) -> CustomTarget:
    """Draw the upload widgets for a custom ``source`` (and a preview) and build its target.

    Arguments:
        prefix: the page's widget-key prefix.
        source: a key of :data:`CUSTOM_SOURCES`.
        show: draw the widgets (False while the lesson hides the target controls).

    Returns:
        the target, or an error message (verbatim from the parser), or what the user still has to do.
    """
    state = st.session_state
    k = f"{prefix}_"
    result = CustomTarget(waiting="Pick your data first.")
    if source == "samples":
        upload = None
        if show:
            upload = st.file_uploader(
                "CSV with one or two numeric columns",
                type=["csv", "txt", "tsv"],
                key=k + "csv_upload",
                max_upload_size=MAX_UPLOAD_MB,
                help="One column for 1D data, two (x, y) for 2D. A header row is fine. At most 5 MB and 100,000 rows.",
            )
        if upload is None:
            return CustomTarget(waiting="Upload a CSV file of samples in the sidebar to train on them.")
        result = _built(prefix, source, upload.file_id, lambda: csv_target(upload.getvalue()))
    elif source == "image":
        upload = None
        if show:
            upload = st.file_uploader(
                "A picture (PNG, JPEG, ...)",
                type=["png", "jpg", "jpeg", "gif", "bmp", "webp"],
                key=k + "image_upload",
                max_upload_size=MAX_UPLOAD_MB,
                help="Used as a 2D density on [-4, 4]²; large pictures are shrunk to 256 × 256 pixels.",
            )
        if upload is None:
            return CustomTarget(waiting="Upload a picture in the sidebar to train on it.")
        seen = state.get(f"{prefix}__image_file")
        if seen != upload.file_id:
            # A new picture: guess whether it is dark ink on light paper, before the checkbox is drawn.
            try:
                state[k + "image_invert"] = default_invert(image_from_file(upload.getvalue()))
            except ConfigError:
                state[k + "image_invert"] = True
            state[f"{prefix}__image_file"] = upload.file_id
        invert = st.checkbox(
            "Dark pixels are likely",
            key=k + "image_invert",
            help="On: dark strokes on light paper become the density. Off: bright pixels are likely.",
        )
        result = _built(prefix, source, (upload.file_id, bool(invert)), lambda: image_target(upload.getvalue(), invert))
    elif source == "drawing":
        strokes = state.get(f"{prefix}__drawing") or []
        if show:
            st.caption(":material/draw: Draw on the canvas on the page, above the Train button.")
        if not strokes:
            return CustomTarget(waiting="Draw your target on the canvas first: drag a loop around a region.")
        token = hashlib.sha1(json.dumps(strokes).encode()).hexdigest()
        result = _built(prefix, source, token, lambda: drawing_target(strokes))
    if result.error and show:
        st.error(plain(result.error), icon=":material/error:")  # it may quote the upload's contents
    if result.target is not None and show:
        _preview(prefix, result.target)
    return result


# --------------------------------------------------------------------------------------------------
# The drawing canvas, in the page
# --------------------------------------------------------------------------------------------------

_DRAW_MODES = {"fill": "Fill the loop", "pen": "Pen"}
_INK_SCALE = [[0.0, "rgba(255, 255, 255, 0)"], [1e-6, "rgba(72, 118, 196, 0.35)"], [1.0, "rgba(16, 42, 110, 1)"]]


def _canvas_figure(ink: np.ndarray) -> go.Figure:
    axis = canvas_axis()
    fig = go.Figure(
        go.Heatmap(
            x=axis,
            y=axis,
            z=ink,
            zmin=0,
            zmax=max(float(ink.max()), 1.0),
            colorscale=_INK_SCALE,
            showscale=False,
            hoverinfo="skip",
        )
    )
    gx, gy = np.meshgrid(axis, axis)
    fig.add_trace(
        go.Scatter(
            x=gx.ravel(),
            y=gy.ravel(),
            mode="markers",
            marker={"size": 3, "color": "rgba(110, 110, 110, 0.35)"},
            unselected={"marker": {"opacity": 1}},
            hoverinfo="none",
            name="canvas",
        )
    )
    lim = CANVAS_HALF_WIDTH + _spacing() / 2
    fig.update_xaxes(range=[-lim, lim], fixedrange=True, showgrid=False, zeroline=False)
    fig.update_yaxes(range=[-lim, lim], fixedrange=True, showgrid=False, zeroline=False, scaleanchor="x")
    fig.update_layout(
        dragmode="lasso",
        hovermode="closest",
        width=440,
        height=440,
        margin={"l": 30, "r": 10, "t": 10, "b": 30},
        showlegend=False,
        plot_bgcolor="white",
    )
    return fig


_CANVAS_CONFIG = {
    "displaylogo": False,
    "modeBarButtonsToRemove": ["zoom2d", "pan2d", "zoomIn2d", "zoomOut2d", "autoScale2d", "resetScale2d", "toImage"],
}


def _on_draw(prefix: str) -> None:
    event = st.session_state.get(f"{prefix}_draw_canvas") or {}
    selection = event.get("selection") if isinstance(event, Mapping) else None
    if not isinstance(selection, Mapping):
        return
    stroke = stroke_from_selection(selection, st.session_state.get(f"{prefix}_draw_mode", "fill"))
    if stroke:
        st.session_state[f"{prefix}__drawing"] = [*(st.session_state.get(f"{prefix}__drawing") or []), stroke]


def _undo(prefix: str) -> None:
    strokes = st.session_state.get(f"{prefix}__drawing") or []
    st.session_state[f"{prefix}__drawing"] = strokes[:-1]


def _clear(prefix: str) -> None:
    st.session_state[f"{prefix}__drawing"] = []


def drawing_panel(prefix: str, *, folded: bool = False) -> None:
    """The drawing canvas with its mode, Undo and Clear; draws nothing unless the picker says "drawing".

    ``folded`` (the page has a run): the canvas folds into a closed expander, one line above the charts. Open,
    it is 500 px tall and pushed the loss, the density and the flow below the fold at 1366×768 while the
    drawing trained; opening the expander brings it back to draw anew.
    """
    state = st.session_state
    if state.get(f"{prefix}_target") != "drawing":
        return
    strokes = state.get(f"{prefix}__drawing") or []
    if folded:
        panel = st.expander(
            "Your drawing: open to change it", expanded=False, icon=":material/draw:", key=f"{prefix}_draw_folded"
        )
    else:
        panel = st.container(border=True, key=f"{prefix}_draw_panel")
    with panel:
        if not folded:
            st.markdown("**Draw your target**")
        left, right = st.columns([3, 2])
        with left:
            st.plotly_chart(
                _canvas_figure(drawing_ink(strokes)),
                key=f"{prefix}_draw_canvas",
                on_select=functools.partial(_on_draw, prefix),
                selection_mode=("lasso", "box"),
                width="content",
                config=_CANVAS_CONFIG,
            )
            st.caption(
                "Your distribution on [-4, 4]²: darker cells hold more probability mass. Drag with the mouse to "
                "draw; each stroke adds ink."
            )
        with right:
            st.radio(
                "Each stroke",
                list(_DRAW_MODES),
                format_func=_DRAW_MODES.get,
                key=f"{prefix}_draw_mode",
                horizontal=True,
                help="Fill: everything inside the loop you draw. Pen: a line along your stroke.",
            )
            c1, c2 = st.columns(2)
            c1.button(
                "Undo",
                key=f"{prefix}_draw_undo",
                icon=":material/undo:",
                on_click=_undo,
                args=(prefix,),
                disabled=not strokes,
                width="stretch",
            )
            c2.button(
                "Clear",
                key=f"{prefix}_draw_clear",
                icon=":material/delete:",
                on_click=_clear,
                args=(prefix,),
                disabled=not strokes,
                width="stretch",
            )
            count = f"{len(strokes)} stroke{'s' if len(strokes) != 1 else ''}" if strokes else "Nothing drawn yet"
            st.markdown(f"{count}.")
            st.caption(
                "Ink where you want samples: a loop fills a blob, overlapping strokes count double, the box tool "
                "(top right of the canvas) fills a rectangle. The flow trains on "
                f"{DRAWING_SAMPLES:,} points spread over the ink."
            )
