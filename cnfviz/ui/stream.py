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
    "PARTS",
    "STREAM_PREFIX",
    "TICK_SECONDS",
    "CompareBinding",
    "StreamBinding",
    "asset_names",
    "binding",
    "compare_token",
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
PARTS = frozenset({"loss", "status", "visuals"})
"""What a stream may carry; a client names the parts it follows (``?parts=status``: the status row's own
stream), else it gets all of them. A run's page opens two: its loss chart's (loss and pictures) and its status
row's, so neither depends on the other's frame."""

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


@dataclass
class CompareBinding:
    """What a Compare token grants: the runs ``runs`` (``(index, name, job id)`` each: the run's place on the
    page, its name in the holder, its job) of one session's ``holder`` (held weakly), drawn with ``options``.
    ``drawn`` is each run's ``(state, finishing)`` as the page last drew them: when one differs, it reruns."""

    holder: weakref.ReferenceType[Any]
    runs: tuple[tuple[int, str, str], ...]
    options: dict[str, Any]
    drawn: tuple[tuple[str, bool], ...]
    created: float = field(default_factory=time.monotonic)

    def jobs(self) -> list[Any] | None:
        """The bound jobs in order, or None once any of them was discarded or replaced or the holder is gone."""
        holder = self.holder()
        if holder is None:
            return None
        jobs = []
        for _, name, job_id in self.runs:
            job = holder.get(name)
            if job is None or job.job_id != job_id:
                return None
            jobs.append(job)
        return jobs

    def job(self) -> Any | None:
        """The first bound job while all of them live (what :func:`binding` checks), else None."""
        jobs = self.jobs()
        return jobs[0] if jobs else None


_lock = threading.Lock()
_tokens: dict[str, StreamBinding | CompareBinding] = {}
_by_run: dict[tuple[Any, ...], str] = {}


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


def compare_drawn(snaps: list[Any]) -> tuple[tuple[str, bool], ...]:
    """Each run's ``(state, finishing)``: what a Compare page draws differently (a row that ended or failed,
    the results once all have ended). A run's points, progress and pictures change without a rerun."""
    return tuple((str(s.state), bool(getattr(s, "finishing", False))) for s in snaps)


def compare_token(holder: Any, runs: list[tuple[int, str, Any]], **options: Any) -> str:
    """The token of a Compare page's runs ``(index, name, snapshot)`` in ``holder``, drawn with ``options``
    (``labels``: every run's label in page order, those that never started too; ``errors``: why those did not
    start, by index; ``height``: the loss chart's): the same token on every script run of one comparison, a new
    one per comparison (new job ids). Each call records the runs' states as this script run drew them."""
    bound_runs = tuple((int(i), str(name), str(snap.job_id)) for i, name, snap in runs)
    drawn = compare_drawn([snap for _, _, snap in runs])
    key = (id(holder), "compare", bound_runs)
    with _lock:
        token = _by_run.get(key)
        bound = _tokens.get(token) if token else None
        if bound is None or bound.holder() is not holder:
            token = secrets.token_urlsafe(24)
            _tokens[token] = CompareBinding(weakref.ref(holder), bound_runs, dict(options), drawn)
            _by_run[key] = token
            _prune()
        else:
            bound.options = dict(options)
            bound.drawn = drawn  # type: ignore[assignment]
        return token


def binding(token: str) -> StreamBinding | CompareBinding | None:
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


def status_payload(snap: Any, *, stopping: bool | None = None) -> dict[str, Any]:
    """The status line a page shows while a run is active: the same words as its server-drawn status row
    (``stopping``: as the page says it; by default the snapshot's own)."""
    from .status import _figures, progress_text, progress_value, run_total

    stopping = bool(snap.stopping) if stopping is None else stopping
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
    parts: frozenset[str] = PARTS,
) -> AsyncIterator[bytes]:
    """The stream of one binding: ``loss``, ``lossfigure`` (a curve appeared), ``status``, ``visuals``, then
    ``rerun`` (the page must redraw) or ``end`` (the run was discarded). ``lengths``: the points of each loss
    curve the client already drew; ``visuals_version``: the pictures it already shows; ``parts``: which of
    loss (with lossfigure), status and visuals to send."""
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
        names, curves = loss_curves(snap) if "loss" in parts else ((), [])
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
        status = json.dumps(status_payload(snap)) if "status" in parts else None
        if status != last_status:
            last_status = status
            yield _sse("status", status)
            last_sent = time.monotonic()
        if "visuals" in parts and snap.visuals is not None and snap.visuals_version != sent_version:
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


async def compare_events(
    bound: CompareBinding,
    *,
    lengths: list[int],
    versions: list[int],
    disconnected: Callable[[], Any] | None = None,
    tick: float = TICK_SECONDS,
    snapshot_in_thread: bool = True,
    parts: frozenset[str] = PARTS,
) -> AsyncIterator[bytes]:
    """The stream of a Compare page: every run's new points as one ``loss`` event on the chart's trace indices
    (the whole figure as ``lossfigure`` when a trace appears: a run's first test NLL), the progress rows as one
    ``status`` event (``{"rows": [...]}``), ``visuals`` per run whose pictures changed (``{"index", "version",
    "iteration", "density"}``), then ``rerun`` when a run changes state or ``end`` when the runs were discarded.
    ``lengths``: the points of each trace the client drew; ``versions``: each run's pictures it shows (-1:
    none), in the binding's order."""
    from .compare import compare_loss_spec, compare_series, live_density_specs, progress_payload

    labels: list[str] = list(bound.options.get("labels", ()))
    errors: dict[str, str] = dict(bound.options.get("errors", {}))
    height = int(bound.options.get("height", 380))
    indices = [i for i, _, _ in bound.runs]
    cursor = LossCursor(lengths)
    sent = dict(zip(indices, versions, strict=False))
    last_status: str | None = None
    last_sent = time.monotonic()
    yield b"retry: 2000\n\n"
    while True:
        if disconnected is not None and await disconnected():
            return
        jobs = bound.jobs()
        if jobs is None:
            yield _sse("end", '{"reason": "discarded"}')
            return

        def read(jobs: list[Any] = jobs) -> list[Any]:
            return [job.snapshot() for job in jobs]

        snaps = await asyncio.to_thread(read) if snapshot_in_thread else read()
        by_index = dict(zip(indices, snaps, strict=True))
        # Every run of the page in its order, those that never started too: the chart's traces and colours
        # count them.
        runs = [(i, label, by_index.get(i), errors.get(str(i), "")) for i, label in enumerate(labels)]
        if "loss" in parts:
            curves = [(label, snap.history if snap is not None else {}) for _, label, snap, _ in runs]
            names, series = compare_series(curves)
            # A trace the page did not draw (it appeared between the page's snapshot and this one): the whole
            # figure, then points again.
            drawn_other = cursor.names is None and len(series) != len(cursor.lengths)
            if drawn_other or (cursor.names is not None and names != cursor.names):
                figure = await asyncio.to_thread(compare_loss_spec, curves, height=height)
                cursor = LossCursor([len(x) for x, _ in series])
                cursor.last_x = [float(x[-1]) if len(x) else None for x, _ in series]
                yield _sse("lossfigure", figure)
                last_sent = time.monotonic()
            cursor.names = names
            delta = cursor.delta(series)
            if delta is not None:
                iterations = [int(snap.iteration) for snap in snaps]
                yield _sse("loss", json.dumps({"curves": delta, "iterations": iterations}))
                last_sent = time.monotonic()
        if "status" in parts:
            status = json.dumps(progress_payload(runs))
            if status != last_status:
                last_status = status
                yield _sse("status", status)
                last_sent = time.monotonic()
        if "visuals" in parts:
            changed = [
                i
                for i, snap in by_index.items()
                if snap.visuals is not None and snap.visuals_version != sent.get(i, -1)
            ]
            if changed:
                specs = await asyncio.to_thread(live_density_specs, runs, changed)
                for i in changed:
                    snap = by_index[i]
                    sent[i] = snap.visuals_version
                    if i in specs:
                        yield _sse(
                            "visuals",
                            f'{{"index": {i}, "version": {snap.visuals_version}, '
                            f'"iteration": {snap.visuals.iteration}, "density": {specs[i]}}}',
                        )
                last_sent = time.monotonic()
        now = compare_drawn(snaps)
        if now != bound.drawn:
            reason = next((mode[0] for mode, was in zip(now, bound.drawn, strict=False) if mode != was), "changed")
            yield _sse("rerun", json.dumps({"reason": reason}))
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
        query = request.query_params
        parts = frozenset(p for p in query.get("parts", ",".join(PARTS)).split(",") if p)
        try:
            lengths = [int(v) for v in query.get("n", "").split(",") if v != ""]
            versions = [int(v) for v in query.get("v", "-1").split(",") if v != ""]
        except ValueError:
            return Response("bad cursor", status_code=400, media_type="text/plain")
        if not parts or not parts <= PARTS or len(lengths) > 1000 or len(versions) > 1000:
            return Response("bad parts", status_code=400, media_type="text/plain")
        body: AsyncIterator[bytes]
        if isinstance(bound, CompareBinding):
            body = compare_events(
                bound, lengths=lengths, versions=versions, disconnected=request.is_disconnected, parts=parts
            )
        elif len(versions) != 1:
            return Response("bad cursor", status_code=400, media_type="text/plain")
        else:
            body = events(
                bound, lengths=lengths, visuals_version=versions[0], disconnected=request.is_disconnected, parts=parts
            )
        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(body, media_type="text/event-stream", headers=headers)

    async def asset(request: Request) -> Response:
        found = await asyncio.to_thread(_asset, request.path_params["name"])  # (built at start-up: a dict read)
        if found is None:
            return Response("not found", status_code=404, media_type="text/plain")
        body, zipped, media = found
        headers = {"Cache-Control": "public, max-age=31536000, immutable", "Vary": "Accept-Encoding"}
        if "gzip" in request.headers.get("accept-encoding", ""):
            headers["Content-Encoding"] = "gzip"
            return Response(zipped, media_type=media, headers=headers)
        return Response(body, media_type=media, headers=headers)

    _enabled.set()
    # Read and gzip the scripts now, beside the server's start-up: built by the first student's request they
    # held the event loop (every session's messages) for the 4.8 MB plotly's compression.
    threading.Thread(target=_asset, args=("",), name="cnfviz-assets", daemon=True).start()
    return [
        Route(STREAM_PREFIX + "/{token}", stream, methods=["GET"]),
        Route(ASSET_PREFIX + "/{name}", asset, methods=["GET"]),
    ]
