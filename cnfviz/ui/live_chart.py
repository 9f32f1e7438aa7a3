"""A Plotly chart updated in place: a small Streamlit component that applies ``Plotly.react`` to one div.

``st.plotly_chart`` remounts its chart whenever the figure changes, which loses the user's zoom, can
flash blank, and restarts any animation. :func:`live_chart` sends the figure to a component iframe instead,
which keeps one Plotly div for the life of the element and updates it with ``Plotly.react``; the figure's
``layout.uirevision`` then keeps what the user zoomed or panned. A figure identical to the last one (same
hash) is not even redrawn. With an :class:`Animation`, the iframe moves one trace's points along paths,
t0 → t1 in a loop, on the client (no server work per frame), and swaps in a new model's paths only when
a loop starts over, where every model starts from the same base points.

plotly.js comes from the plotly Python package (``package_data/plotly.min.js``): nothing is fetched from
the internet. Streamlit serves a component's folder as static files and refuses links that leave it, so
the folder is assembled once per process in a cache directory (:func:`static_dir`).

In AppTest the element is a ``component_instance`` whose ``json_args`` hold ``spec`` (the figure as JSON,
see :func:`chart_spec`), ``rev`` and ``height``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import plotly
import plotly.graph_objects as go
import plotly.io as pio
from streamlit.components.v1 import declare_component

from .._env import read

__all__ = ["COMPONENT_NAME", "Animation", "chart_spec", "hashed_assets", "live_chart", "static_dir"]

COMPONENT_NAME = "cnfviz_live_chart"
_SOURCE = Path(__file__).with_name("live_chart_static")
_FILES = ("index.html", "live_chart.js")
_lock = threading.Lock()
_static: list[str] = []


@dataclass(frozen=True)
class Animation:
    """Points of one trace flowing along paths, looped on the client.

    Arguments:
        trace: index of the trace whose ``x``/``y`` move.
        paths: positions over time, shape (T, n, 2): (x, y) of each of n points at each of T times (1D
            flows pass (t, x)).
        t0, t1: the times of the first and last rows, for the readout.
        seconds: how long one pass t0 → t1 takes; ``rest``: the pause at t1 before the next pass.
        fps: the most frames a second the browser draws.
        field_trace: index of a trace redrawn at each of ``field_times`` (the vector field's arrows).
        field_x, field_y: that trace's x and y at each time, each a list of 1D arrays.
        label: index of a layout annotation whose text shows the current t.
    """

    trace: int
    paths: np.ndarray
    t0: float
    t1: float
    seconds: float = 4.0
    rest: float = 1.0
    fps: float = 15.0
    field_trace: int | None = None
    field_times: tuple[float, ...] = ()
    field_x: tuple[np.ndarray, ...] = ()
    field_y: tuple[np.ndarray, ...] = ()
    label: int | None = None

    def to_json(self) -> dict[str, Any]:
        paths = np.asarray(self.paths, dtype=np.float32)
        out: dict[str, Any] = {
            "trace": self.trace,
            "T": int(paths.shape[0]),
            "n": int(paths.shape[1]),
            "xy": _b64(paths),
            "t0": float(self.t0),
            "t1": float(self.t1),
            "seconds": float(self.seconds),
            "rest": float(self.rest),
            "fps": float(self.fps),
        }
        if self.field_trace is not None and self.field_times:
            out["field"] = {
                "trace": self.field_trace,
                "times": [float(t) for t in self.field_times],
                "x": [_b64(x) for x in self.field_x],
                "y": [_b64(y) for y in self.field_y],
            }
        if self.label is not None:
            out["label"] = self.label
        return out


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype=np.float32).tobytes()).decode("ascii")


def static_dir() -> Path:
    """The component's folder: our page and script next to plotly's own ``plotly.min.js``, copied once into
    a cache directory named after their contents (Streamlit will not follow a link out of the folder).

    The page loads both scripts from the live channel's content-hashed URLs first (cached by the browser for a
    year: :func:`cnfviz.ui.stream.routes`), and from this folder only where no such route is mounted."""
    plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    digest = hashlib.sha256(plotly.__version__.encode())
    for name in _FILES:
        digest.update((_SOURCE / name).read_bytes())
    cache = Path(read("CNFVIZ_CACHE_DIR") or tempfile.gettempdir())
    root = cache / f"cnfviz-live-chart-{digest.hexdigest()[:12]}"
    if not (root / "plotly.min.js").exists():
        root.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_SOURCE / "live_chart.js", root / "live_chart.js")
        html = (_SOURCE / "index.html").read_text()
        for plain, (hashed, _path) in _hashed(plotly_js).items():
            html = html.replace(f"@{plain}@", f"../../_cnfviz/assets/{hashed}")
        (root / "index.html").write_text(html)
        partial = root / f"plotly.min.js.{os.getpid()}.part"
        shutil.copyfile(plotly_js, partial)
        os.replace(partial, root / "plotly.min.js")  # last, atomically: its presence means the folder is whole
    return root


def _hashed(plotly_js: Path) -> dict[str, tuple[str, Path]]:
    out = {}
    for plain, path in (("plotly.min.js", plotly_js), ("live_chart.js", _SOURCE / "live_chart.js")):
        digest = hashlib.blake2b(path.read_bytes(), digest_size=8).hexdigest()
        stem, ext = plain.split(".", 1)
        out[plain] = (f"{stem}-{digest}.{ext}", path)
    return out


_hashed_cache: list[dict[str, tuple[str, Path]]] = []


def hashed_assets() -> dict[str, tuple[str, Path]]:
    """The scripts the component's page loads, by plain name: ``(content-hashed name, file)``. A new plotly
    or a changed script gets a new name, so the browser may keep each name forever."""
    with _lock:
        if not _hashed_cache:
            _hashed_cache.append(_hashed(Path(plotly.__file__).parent / "package_data" / "plotly.min.js"))
        return _hashed_cache[0]


def _declared() -> Any:
    # Declared in every script run: Streamlit registers a component with the runtime of the run that
    # declares it (AppTest makes a runtime per test). The folder is assembled once per process.
    with _lock:
        if not _static:
            _static.append(str(static_dir()))
    return declare_component(COMPONENT_NAME, path=_static[0])


def chart_spec(figure: go.Figure, animation: Animation | None = None) -> str:
    """The JSON the component draws: ``{"figure": plotly JSON, "anim": animation or null}``."""
    fig_json = pio.to_json(figure, validate=False)
    anim = json.dumps(animation.to_json()) if animation is not None else "null"
    return f'{{"figure": {fig_json}, "anim": {anim}}}'


def live_chart(
    spec: str,
    *,
    key: str,
    height: int,
    stream: dict[str, Any] | None = None,
    immediate: bool = False,
) -> Any:
    """Draw (or update in place) the chart ``spec`` (from :func:`chart_spec`) under ``key``, ``height`` px tall.

    Re-sending the very same spec costs one hash and redraws nothing in the browser. ``stream``: where the
    chart follows its run between script runs (see :mod:`cnfviz.ui.stream`): ``{"url", "role", ...}``. The
    ``loss`` role opens the page's one stream and hands the pictures to the ``density`` and ``flow``
    charts; when the run changes state it sets the component's value, which reruns the page once.
    Returns that value (None until then). ``immediate``: a new animation replaces the running one at once,
    not when its loop starts over (the run paused or ended: the flow must show the density's model).
    """
    rev = hashlib.blake2b(spec.encode(), digest_size=8).hexdigest()
    args: dict[str, Any] = {"spec": spec, "rev": rev, "height": int(height)}
    if stream is not None:
        args["stream"] = stream
    if immediate:
        args["immediate"] = True
    return _declared()(**args, key=key, default=None)
