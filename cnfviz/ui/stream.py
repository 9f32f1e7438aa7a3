"""The live channel: a run's new loss points, status and pictures pushed to its page, with no script rerun.

A polling fragment costs the server a full pass of Streamlit's script runner (and its ``gc.collect``) per tick
per tab: 135 script runs a second for a class of 30. Here a page instead gets one Server-Sent Events stream
per run, served from the job's snapshot on a Starlette route of the same server (``app = st.App(...,
routes=routes())`` in ``app.py``), and a script reruns only when a person acts or the run changes state.

- A stream is addressed by an unguessable token (:func:`stream_token`) bound to one session's holder, one job
  name and one job id: nobody can read another session's run, and the stream ends when the run is discarded
  or replaced, when the holder is gone, or when the tab closes (its connection drops).
- Each tick reads one snapshot (at most :data:`TICK_SECONDS` apart, a few a second) and sends only what
  changed: the loss curves' new points (``loss``), the status line (``status``), new density and flow figures
  when ``visuals_version`` changes (``visuals``), and ``rerun`` when the page must redraw (the run finished,
  failed, stopped, left the queue, was paused or continued, or its final metrics came in).
- :func:`asset_route` serves plotly.js and the component's script under content-hashed names with
  ``Cache-Control: immutable``: a browser downloads them once, not per chart per page open.

The stream uses only the job handle's API (``holder.get(name)``, ``job.snapshot()``), so it serves a run
training in this process, in a worker process or on Ray alike. Nothing here calls ``st.*``.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import math
import secrets
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "ASSET_PREFIX",
    "STREAM_PREFIX",
    "TICK_SECONDS",
    "StreamBinding",
    "asset_names",
    "binding",
    "enabled",
    "routes",
    "stream_token",
]

STREAM_PREFIX = "/_cnfviz/stream"
"""Where a run's stream lives: ``{STREAM_PREFIX}/{token}``."""
ASSET_PREFIX = "/_cnfviz/assets"
"""Where the content-hashed scripts live: ``{ASSET_PREFIX}/{name}``."""
TICK_SECONDS = 0.4
"""The least time between two snapshot reads of one stream: loss points 2.5 times a second at most."""
KEEPALIVE_SECONDS = 10.0
"""A comment line at least this often, so proxies keep an idle (paused) stream open."""
MAX_TOKENS = 4096
"""The registry's bound: beyond it the oldest bindings go (a class of 100 holds a few hundred)."""

_enabled = threading.Event()


@dataclass
class StreamBinding:
    """What a token grants: the run ``name`` of one session's ``holder`` (held weakly), while it is job
    ``job_id``, drawn with ``options`` (chart height, presentation mode, vector-field overlay). ``drawn`` is
    ``(active, queued, paused, finishing)`` as the page last drew it: when the run's differs, the page must rerun."""

    holder: weakref.ReferenceType[Any]
    name: str
    job_id: str
    options: dict[str, Any]
    drawn: tuple[bool, bool, bool, bool]
    created: float = field(default_factory=time.monotonic)

    def job(self) -> Any | None:
        """The bound job, or None once it was discarded or replaced or its holder is gone."""
        holder = self.holder()
        job = holder.get(self.name) if holder is not None else None
        return job if job is not None and job.job_id == self.job_id else None


_lock = threading.Lock()
_tokens: dict[str, StreamBinding] = {}
_by_run: dict[tuple[int, str, str], str] = {}


def enabled() -> bool:
    """Whether this server process serves the stream (the entry mounted :func:`routes`); without it (AppTest,
    ``streamlit run`` on a page file) pages poll as before."""
    return _enabled.is_set()


def drawn_mode(snap: Any) -> tuple[bool, bool, bool, bool]:
    """``(active, queued, paused, finishing)`` of a snapshot: what a page draws differently (buttons, results).
    ``finishing``: a stopped run ends at once and its final metrics come a moment later; the page that redrew
    at the stop must redraw again when they are in, or its results never appear."""
    return (bool(snap.active), snap.state == "queued", bool(snap.paused), bool(getattr(snap, "finishing", False)))


def stream_token(holder: Any, name: str, snap: Any, **options: Any) -> str:
    """The token of run ``name`` of ``holder`` as of ``snap`` (its job id), drawn with ``options``: the same
    token on every script run of one job (the page keeps its stream), a new one per job."""
    key = (id(holder), name, snap.job_id)
    with _lock:
        token = _by_run.get(key)
        bound = _tokens.get(token) if token else None
        if bound is None or bound.holder() is not holder:
            token = secrets.token_urlsafe(24)
            bound = StreamBinding(weakref.ref(holder), name, snap.job_id, dict(options), drawn_mode(snap))
            _tokens[token] = bound
            _by_run[key] = token
            _prune()
        else:
            bound.options = dict(options)
            bound.drawn = drawn_mode(snap)
        return token


def binding(token: str) -> StreamBinding | None:
    """The live binding of ``token``, or None (unknown, or its run is gone: then it is forgotten)."""
    with _lock:
        bound = _tokens.get(token)
    if bound is None:
        return None
    if bound.job() is None:
        _forget(token)
        return None
    return bound


def _forget(token: str) -> None:
    with _lock:
        bound = _tokens.pop(token, None)
        if bound is not None:
            for key, tok in list(_by_run.items()):
                if tok == token:
                    del _by_run[key]


def _prune() -> None:
    # Under _lock. Dead holders' tokens go; past the bound, the oldest go too.
    dead = [t for t, b in _tokens.items() if b.holder() is None]
    if len(_tokens) - len(dead) > MAX_TOKENS:
        dead += sorted(_tokens, key=lambda t: _tokens[t].created)[: len(_tokens) - MAX_TOKENS]
    for token in set(dead):
        _tokens.pop(token, None)
    for key, tok in list(_by_run.items()):
        if tok not in _tokens:
            del _by_run[key]


# ------------------------------------------------------------------------------------------------ events


def _sse(event: str, payload: str) -> bytes:
    return f"event: {event}\ndata: {payload}\n\n".encode()


def _num(a: np.ndarray) -> list[float | None]:
    # JSON has no NaN: a missing value is null, which plotly draws as a gap.
    return [None if not math.isfinite(v) else round(float(v), 6) for v in np.asarray(a, dtype=np.float64)]


class LossCursor:
    """What a client holds of each loss curve (the x values sent), so that a tick sends only the new points:
    ``["+", x, y]`` appends, ``["=", x, y]`` replaces a curve (decimation thinned it), ``null`` leaves it."""

    def __init__(self, lengths: list[int]) -> None:
        self.lengths = list(lengths)
        self.last_x: list[float | None] = [None] * len(lengths)
        self.names: tuple[str, ...] | None = None

    def delta(self, curves: list[tuple[np.ndarray, np.ndarray]]) -> list[Any] | None:
        out: list[Any] = []
        changed = False
        for i, (x, y) in enumerate(curves):
            n = self.lengths[i] if i < len(self.lengths) else 0
            last = self.last_x[i] if i < len(self.last_x) else None
            if len(x) == n and (last is None or n == 0 or float(x[n - 1]) == last):
                out.append(None)
                continue
            prefix_kept = n <= len(x) and (n == 0 or last is None or float(x[n - 1]) == last)
            if prefix_kept:
                out.append(["+", _num(x[n:]), _num(y[n:])])
            else:
                out.append(["=", _num(x), _num(y)])
            changed = True
            if i < len(self.lengths):
                self.lengths[i] = len(x)
                self.last_x[i] = float(x[-1]) if len(x) else None
            else:
                self.lengths.append(len(x))
                self.last_x.append(float(x[-1]) if len(x) else None)
        return out if changed else None


def status_payload(snap: Any) -> dict[str, Any]:
    """The status line a page shows while a run is active: the same words as its server-drawn status row."""
    from .status import _figures, progress_text, progress_value, run_total

    stopping = snap.stopping
    eta = snap.eta_seconds
    return {
        "state": snap.state,
        "iteration": int(snap.iteration),
        "total": int(run_total(snap)),
        "its_per_sec": round(float(snap.its_per_sec), 3),
        "eta": None if eta is None or not math.isfinite(eta) else round(float(eta), 1),
        "paused": snap.paused,
        "stopping": stopping,
        "notes": list(snap.notes),
        "text": progress_text(snap, stopping=stopping),
        "value": round(float(progress_value(snap)), 4),
        # The figures line under the bar ("**Loss** 2.31 · **NFE** ..."), as its words and bold parts.
        "figures": [[part, bold] for part, bold in _bold_parts(_figures(snap))],
    }


def _bold_parts(markdown: str) -> list[tuple[str, bool]]:
    """``"**Loss** 2.3 · **NFE** 4"`` → ``[("Loss", True), (" 2.3 · ", False), ("NFE", True), (" 4", False)]``."""
    pieces = markdown.split("**")
    return [(piece, i % 2 == 1) for i, piece in enumerate(pieces) if piece]


async def events(
    bound: StreamBinding,
    *,
    lengths: list[int],
    visuals_version: int,
    disconnected: Callable[[], Any] | None = None,
    tick: float = TICK_SECONDS,
    snapshot_in_thread: bool = True,
) -> AsyncIterator[bytes]:
    """The stream of one binding: ``loss``, ``lossfigure`` (a curve appeared), ``status``, ``visuals``, then
    ``rerun`` (the page must redraw) or ``end`` (the run was discarded). ``lengths``: the points of each loss
    curve the client already drew; ``visuals_version``: the pictures it already shows."""
    from .views import live_specs, loss_chart_spec, loss_curves

    cursor = LossCursor(lengths)
    last_status: str | None = None
    last_sent = time.monotonic()
    sent_version = visuals_version
    yield b"retry: 2000\n\n"
    while True:
        if disconnected is not None and await disconnected():
            return
        job = bound.job()
        if job is None:
            yield _sse("end", '{"reason": "discarded"}')
            return
        snap = await asyncio.to_thread(job.snapshot) if snapshot_in_thread else job.snapshot()
        names, curves = loss_curves(snap)
        if cursor.names is not None and names != cursor.names:
            # A curve appeared (test NLL, LBFGS): a new figure, drawn whole; then points again.
            figure = await asyncio.to_thread(loss_chart_spec, snap, **bound.options)
            cursor = LossCursor([len(x) for x, _ in curves])
            cursor.last_x = [float(x[-1]) if len(x) else None for x, _ in curves]
            cursor.names = names
            yield _sse("lossfigure", figure)
            last_sent = time.monotonic()
        cursor.names = names
        delta = cursor.delta(curves)
        if delta is not None:
            yield _sse("loss", json.dumps({"curves": delta, "iteration": int(snap.iteration)}))
            last_sent = time.monotonic()
        status = json.dumps(status_payload(snap))
        if status != last_status:
            last_status = status
            yield _sse("status", status)
            last_sent = time.monotonic()
        if snap.visuals is not None and snap.visuals_version != sent_version:
            sent_version = snap.visuals_version
            density, flow = await asyncio.to_thread(live_specs, snap, **bound.options)
            immediate = "true" if snap.state != "running" else "false"
            yield _sse(
                "visuals",
                f'{{"version": {sent_version}, "iteration": {snap.visuals.iteration}, "immediate": {immediate}, '
                f'"density": {density}, "flow": {flow}}}',
            )
            last_sent = time.monotonic()
        if drawn_mode(snap) != bound.drawn:
            yield _sse("rerun", json.dumps({"reason": snap.state}))
            return
        if time.monotonic() - last_sent > KEEPALIVE_SECONDS:
            yield b": keepalive\n\n"
            last_sent = time.monotonic()
        await asyncio.sleep(tick)


# ------------------------------------------------------------------------------------------------ routes


_assets: dict[str, tuple[bytes, bytes, str]] = {}


def asset_names() -> dict[str, str]:
    """The content-hashed names of the scripts the component loads, by plain name (``plotly.min.js``,
    ``live_chart.js``): e.g. ``{"plotly.min.js": "plotly-3f2a….min.js"}``."""
    from .live_chart import hashed_assets

    return {plain: hashed for plain, (hashed, _path) in hashed_assets().items()}


def _asset(name: str) -> tuple[bytes, bytes, str] | None:
    from .live_chart import hashed_assets

    with _lock:
        if not _assets:
            for hashed, path in hashed_assets().values():
                body = Path(path).read_bytes()
                _assets[hashed] = (body, gzip.compress(body, 6), "application/javascript; charset=utf-8")
        return _assets.get(name)


def routes() -> list[Any]:
    """The Starlette routes of the live channel, for ``st.App(..., routes=routes())``; mounting them turns the
    stream on for this process's pages (:func:`enabled`)."""
    from starlette.requests import Request
    from starlette.responses import Response, StreamingResponse
    from starlette.routing import Route

    async def stream(request: Request) -> Response:
        bound = binding(request.path_params["token"])
        if bound is None:
            return Response("no such stream", status_code=404, media_type="text/plain")
        try:
            lengths = [int(v) for v in request.query_params.get("n", "").split(",") if v != ""]
            version = int(request.query_params.get("v", "-1"))
        except ValueError:
            return Response("bad cursor", status_code=400, media_type="text/plain")
        body = events(bound, lengths=lengths, visuals_version=version, disconnected=request.is_disconnected)
        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(body, media_type="text/event-stream", headers=headers)

    async def asset(request: Request) -> Response:
        found = _asset(request.path_params["name"])
        if found is None:
            return Response("not found", status_code=404, media_type="text/plain")
        body, zipped, media = found
        headers = {"Cache-Control": "public, max-age=31536000, immutable", "Vary": "Accept-Encoding"}
        if "gzip" in request.headers.get("accept-encoding", ""):
            headers["Content-Encoding"] = "gzip"
            return Response(zipped, media_type=media, headers=headers)
        return Response(body, media_type=media, headers=headers)

    _enabled.set()
    return [
        Route(STREAM_PREFIX + "/{token}", stream, methods=["GET"]),
        Route(ASSET_PREFIX + "/{name}", asset, methods=["GET"]),
    ]
