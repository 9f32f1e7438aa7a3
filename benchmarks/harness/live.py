"""Where a simulated tab reads its live data from: the live-chart component's arguments in the websocket's
deltas (today), or a stream the component's iframe opens (Server-Sent Events, the channel being built).

A reader is told of every live-chart component the page draws (``on_component``) and reports what it
learns to a :class:`LiveSink`: loss points (how many the chart holds, and the last iteration) and pictures
(density, flow). :class:`ComponentArgs` reads ``json_args["spec"]``, a plotly figure as JSON;
:class:`EventStream` opens the URL it finds in the arguments, as the iframe's ``EventSource`` would, and
hands each event's JSON to the same interpretation. A page that moves from one channel to the other keeps
its figures comparable: both readers run, and the sink keeps what arrives first.
"""

from __future__ import annotations

import base64
import json
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["STREAM_ARG_KEYS", "ComponentArgs", "EventStream", "LiveReader", "LiveSink", "chart_kind", "loss_points"]

# The argument names under which a component may pass its stream's address (the first that holds a path
# or a URL wins). The live engineer's design passes one per run with an unguessable token in it.
STREAM_ARG_KEYS = ("stream", "stream_url", "streamUrl", "sse", "events", "src")


class LiveSink(Protocol):
    """What a reader reports to: a tab's record."""

    def saw_loss(self, key: str, points: int, iteration: int | None, via: str) -> None: ...

    def saw_picture(self, key: str, via: str) -> None: ...

    def ask_rerun(self, key: str, reason: str) -> None: ...


class LiveReader(Protocol):
    def on_component(self, sink: LiveSink, key: str, args: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def chart_kind(key: str) -> str | None:
    """``"loss"``, ``"density"`` or ``"flow"`` from a live chart's widget key (``train_loss_chart``)."""
    for kind in ("loss", "density", "flow"):
        if f"{kind}_chart" in key:
            return kind
    return None


def _length(values: Any) -> tuple[int, float | None]:
    """How many values an axis holds and its last one: a list, or plotly's typed array ``{dtype, bdata}``."""
    if isinstance(values, list):
        return len(values), (values[-1] if values and isinstance(values[-1], int | float) else None)
    if isinstance(values, dict) and "bdata" in values:
        raw = base64.b64decode(values["bdata"])
        size = {"f8": 8, "f4": 4, "i4": 4, "i2": 2, "i1": 1, "u1": 1, "u2": 2, "u4": 4}.get(values.get("dtype"), 8)
        n = len(raw) // size
        if not n:
            return 0, None
        import numpy as np  # only here: the rest of the client needs no numpy

        dtype = {"f8": "<f8", "f4": "<f4", "i4": "<i4", "i2": "<i2", "i1": "i1", "u1": "u1", "u2": "<u2"}
        return n, float(np.frombuffer(raw, dtype=dtype.get(values.get("dtype"), "<f8"))[-1])
    return 0, None


def loss_points(figure: dict[str, Any]) -> tuple[int, int | None]:
    """``(points, last iteration)`` of a loss chart's figure JSON: its first trace's x (the iterations)."""
    data = figure.get("data") or []
    if not data:
        return 0, None
    n, last = _length(data[0].get("x"))
    return n, None if last is None else int(last)


class ComponentArgs:
    """Today's channel: each rerun of a fragment sends the component's spec again in a delta."""

    def on_component(self, sink: LiveSink, key: str, args: dict[str, Any]) -> None:
        kind, spec = chart_kind(key), args.get("spec")
        if kind is None or not isinstance(spec, str):
            return
        try:
            figure = json.loads(spec).get("figure") or {}
        except ValueError:
            return
        if kind == "loss":
            points, iteration = loss_points(figure)
            sink.saw_loss(key, points, iteration, "delta")
        elif figure.get("data"):
            sink.saw_picture(key, "delta")

    def close(self) -> None:
        pass


def stream_url(page: str, args: dict[str, Any]) -> str | None:
    """The absolute URL of the stream a component opens, if any, resolved against the iframe's ``page`` URL
    as the browser would: a string under one of :data:`STREAM_ARG_KEYS`, or such an object's ``url``
    (``{"url", "role", ...}``: only the ``loss`` role opens it, and hands the pictures to the other charts)."""
    for name in STREAM_ARG_KEYS:
        value = args.get(name)
        if isinstance(value, dict):
            if value.get("role", "loss") != "loss":
                continue
            # As live_chart.js opens it: the page's drawn points and pictures' version as the stream's cursor.
            version = value.get("v")
            cursor = {"n": ",".join(str(n) for n in value.get("n") or []), "v": -1 if version is None else version}
            value = value.get("url")
            if isinstance(value, str) and value and "?" not in value:
                value += "?" + urllib.parse.urlencode(cursor, safe=",")
        if isinstance(value, str) and value and not value.startswith("{"):
            return urllib.parse.urljoin(page, value)
    return None


def interpret(sink: LiveSink, key: str, payload: Any, state: dict[str, int], event: str = "message") -> None:
    """One stream event, by its name (the live channel's ``loss``, ``lossfigure``, ``visuals``, ``rerun``),
    or for an unnamed ``message``, by its keys: a loss chart's event counts its points (a whole ``figure``,
    or new points appended to what came before), a picture's event is a picture."""
    if event == "rerun":
        sink.ask_rerun(key, str(payload.get("reason", "")) if isinstance(payload, dict) else "")
        return
    if event == "visuals" or (event == "message" and chart_kind(key) != "loss"):
        sink.saw_picture("stream_density_chart" if event == "visuals" else key, "stream")
        if event == "visuals":
            sink.saw_picture("stream_flow_chart", "stream")
        return
    if event not in ("loss", "lossfigure", "message") or not isinstance(payload, dict):
        return  # status lines, keep-alives, the end
    figure = payload.get("figure") if event == "message" else (payload if event == "lossfigure" else None)
    if isinstance(figure, dict):
        points, iteration = loss_points(figure)
    else:
        points, iteration = state.get("points", 0), None
        curves = payload.get("curves")
        if isinstance(curves, list) and curves:
            first = curves[0]  # the training NLL: ["+", new xs, new ys] appends, [_, xs, ys] replaces
            if isinstance(first, list) and len(first) == 3:
                n, last = _length(first[1])
                points = points + n if first[0] == "+" else n
                iteration = None if last is None else int(last)
        else:
            for name in ("x", "iterations", "points", "loss"):
                n, last = _length(payload.get(name))
                if n:
                    points += n
                    iteration = int(last) if last is not None and name in ("x", "iterations") else iteration
                    break
        if isinstance(payload.get("iteration"), int):
            iteration = payload["iteration"]
    if points == state.get("points") and iteration == state.get("iteration"):
        return
    state["points"], state["iteration"] = points, iteration if iteration is not None else -1
    sink.saw_loss(key, points, iteration, "stream")


class EventStream:
    """The coming channel: a Server-Sent-Events URL in the component's arguments, opened once per URL as
    the iframe's ``EventSource`` would (its own connection; a thread each, reading lines), until closed.

    ``deliver`` runs a callback on the tab's event loop (``loop.call_soon_threadsafe``), so that the sink
    is only touched from there.
    """

    def __init__(self, base: str, deliver: Callable[[Callable[[], None]], None], origin: str) -> None:
        self.base, self.deliver, self.origin = base, deliver, origin
        self.open: dict[str, Any] = {}
        self.closed = False
        self.bytes = 0
        self.events = 0
        self.errors: list[str] = []

    def on_component(self, sink: LiveSink, key: str, args: dict[str, Any]) -> None:
        url = stream_url(f"{self.base}/component/live/index.html", args)  # relative to the iframe's page
        if url is None or url in self.open or self.closed:
            return
        self.open[url] = None
        threading.Thread(target=self._read, args=(sink, key, url), daemon=True, name="sse-reader").start()

    def _read(self, sink: LiveSink, key: str, url: str) -> None:
        request = urllib.request.Request(url, headers={"Accept": "text/event-stream", "Origin": self.origin})
        state: dict[str, int] = {}
        try:
            with urllib.request.urlopen(request, timeout=300) as resp:
                self.open[url] = resp
                data: list[str] = []
                event = "message"
                while not self.closed:
                    line = resp.readline()
                    if not line:
                        break
                    self.bytes += len(line)
                    text = line.decode("utf-8", errors="replace").rstrip("\r\n")
                    if text.startswith("data:"):
                        data.append(text[5:].lstrip())
                    elif text.startswith("event:"):
                        event = text[6:].strip()
                    elif not text:
                        if data:
                            self.events += 1
                            raw = "\n".join(data)
                            try:
                                payload = json.loads(raw)
                            except ValueError:
                                payload = raw
                            self.deliver(lambda p=payload, e=event: interpret(sink, key, p, state, e))
                        data, event = [], "message"
        except Exception as err:  # a stream that fails is a figure of the run
            if not self.closed:
                self.errors.append(f"{url}: {type(err).__name__}: {err}"[:300])
        finally:
            self.open.pop(url, None)  # ended (a rerun, the end): the next script run's arguments may open it again

    def close(self) -> None:
        self.closed = True
        for resp in list(self.open.values()):  # readers drop their own entries as they end
            if resp is not None:
                # Not here: closing a response waits for its reader thread's readline() (the next event or
                # keep-alive, up to 15 s), and this runs on the class's one event loop: every other student's
                # updates (and the sampler) stalled with it, 5-10 s at each burst of closing tabs.
                threading.Thread(target=_close_quietly, args=(resp,), daemon=True, name="sse-close").start()


def _close_quietly(resp: Any) -> None:
    try:
        resp.close()
    except Exception:
        pass
