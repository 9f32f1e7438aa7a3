"""A browser tab without a browser: one Streamlit session spoken to over its own websocket protocol, as
Streamlit 1.67's frontend does, so that one small machine can play a whole class.

What the frontend does and this does too:

* GET the page first (the server sets the ``_streamlit_xsrf`` cookie), then open ``ws://HOST/_stcore/stream``
  with the subprotocols ``streamlit, <xsrf cookie>``, the cookie, and an ``Origin`` equal to the host;
* every frame is a binary protobuf: ``BackMsg`` up, ``ForwardMsg`` down (``streamlit.proto``);
* ask for the first run with ``BackMsg.rerun_script`` (a ``ClientState``: the query string without ``?``,
  ``page_name`` and an empty ``page_script_hash``; afterwards the hash from the ``navigation`` message);
* follow ``page_info_changed`` (the app may rewrite the query string);
* drive ``st.fragment(run_every=...)``: the server sends ``auto_rerun{interval, fragment_id}`` and the tab
  re-sends ``rerun_script{fragment_id, is_auto_rerun}`` every interval, whether or not the last one was
  answered, until ``stop_auto_rerun`` or the next full run;
* keep large ``new_element`` deltas by hash, report their hashes in ``cached_message_hashes`` and resolve a
  ``ref_hash`` reply from that cache (entries not used in the last two finished runs are dropped);
* load each component's iframe when it first appears: its page and the scripts that page names, through
  the student's own :class:`~webcache.HttpCache`.

Not done: the frontend's static bundle (JS/CSS) on page open, widget values other than the buttons pressed
(a rerun carries only the pressed button's trigger; the server keeps the others), ``app_heartbeat``.
"""

from __future__ import annotations

import asyncio
import http.cookies
import json
import re
import time
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import connect

from .live import ComponentArgs, EventStream, LiveReader, chart_kind
from .webcache import HttpCache

__all__ = ["Tab", "TabRecord"]

_SCRIPT = re.compile(r"""<(?:script[^>]*\ssrc|link[^>]*\shref)\s*=\s*["']([^"']+)["']""", re.I)
_INLINE_SCRIPT = re.compile(r"<script>.*?</script>", re.S | re.I)
_ITERATION = re.compile(r"Iteration ([\d,]+)")
_MAX_CACHED_AGE = 2  # global.maxCachedMessageAge


@dataclass
class TabRecord:
    """Everything a tab saw, in seconds since it opened the page (``opened`` is ``time.monotonic()``)."""

    opened: float = 0.0
    socket_open: float | None = None
    loss: list[tuple[float, int, int | None, str]] = field(default_factory=list)  # (t, points, iteration, via)
    pictures: dict[str, float] = field(default_factory=dict)  # chart key → first time
    progress: list[tuple[float, int]] = field(default_factory=list)  # (t, iteration) from the status row
    runs_started: list[float] = field(default_factory=list)  # when each Train (autostart, then pressed) began
    run_ended: list[float] = field(default_factory=list)  # a Done/Stopped/Failed note appeared
    full_runs: int = 0
    fragment_sent: int = 0
    fragment_answered: int = 0
    fragment_latency: list[float] = field(default_factory=list)
    fragment_times: list[float] = field(default_factory=list)  # when each fragment rerun was sent
    msgs_in: Counter[str] = field(default_factory=Counter)
    msgs_out: Counter[str] = field(default_factory=Counter)
    bytes_in: int = 0
    bytes_out: int = 0
    static: list[tuple[float, int, str, int, int]] = field(default_factory=list)  # (t, run, url, status, bytes)
    ref_misses: int = 0
    errors: list[str] = field(default_factory=list)
    closed: float | None = None

    def t(self) -> float:
        return time.monotonic() - self.opened


class Tab:
    """One student's tab on ``base`` (``http://host:port``) opening ``path`` (``/train?...``).

    Arguments:
        base: the server's URL.
        path: the page and its query, as in a link.
        page_name: the page's url path (``train``), which a first ``rerun_script`` names.
        readers: where live data is read (default: the component's arguments and any stream they name).
    """

    def __init__(self, base: str, path: str, page_name: str, readers: list[LiveReader] | None = None) -> None:
        self.base, self.path, self.page_name = base, path, page_name
        self.query = urllib.parse.urlsplit(path).query
        self.record = TabRecord()
        self.cache = HttpCache()
        self.page_hash = ""
        self.ws: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.readers = readers
        self.auto: dict[str, asyncio.Task[None]] = {}  # fragment id → its rerun timer
        self.intervals: dict[str, float] = {}
        self.pending: dict[str, list[float]] = {}  # fragment id → send times not yet answered
        self.msg_cache: dict[str, tuple[Any, int]] = {}  # hash → (ForwardMsg, finished runs when last used)
        self.finished = 0
        self.run_id = ""
        self.mounted: dict[str, str] = {}  # delta path → component name, on the page now
        self.seen_this_run: set[str] = set()
        self.widgets: dict[str, str] = {}  # widget key → id
        self.run_index = 0
        self.tasks: set[asyncio.Task[Any]] = set()
        self.state_note: str | None = None

    # ------------------------------------------------------------------ sink for the live readers

    def saw_loss(self, key: str, points: int, iteration: int | None, via: str) -> None:
        last = self.record.loss[-1] if self.record.loss else None
        if points and (last is None or points != last[1] or iteration != last[2]):
            self.record.loss.append((self.record.t(), points, iteration, via))

    def saw_picture(self, key: str, via: str) -> None:
        name = f"{chart_kind(key)}#{self.run_index}"
        self.record.pictures.setdefault(name, self.record.t())

    def ask_rerun(self, key: str, reason: str) -> None:
        """What the live chart's iframe does when its stream says ``rerun``: set its component value, which
        the frontend sends as a full rerun carrying that widget's new JSON value."""
        from streamlit.proto.WidgetStates_pb2 import WidgetState

        state = WidgetState(id=key, json_value=json.dumps(f"{int(time.time() * 1000)}:{reason}"))
        self.record.msgs_out["component value (stream rerun)"] += 1
        self._spawn(self.rerun(widgets=[state]))

    # ------------------------------------------------------------------ the session

    async def open(self) -> None:
        """Load the page (its cookie), open the websocket and ask for the first run."""
        self.loop = asyncio.get_running_loop()
        self.record.opened = time.monotonic()
        if self.readers is None:
            origin = self.base
            self.readers = [
                ComponentArgs(),
                EventStream(self.base, lambda f: self.loop.call_soon_threadsafe(f), origin),  # type: ignore[union-attr]
            ]
        cookie = await asyncio.to_thread(self._get_page)
        ws_url = "ws" + self.base[4:] + "/_stcore/stream"
        self.ws = await connect(
            ws_url,
            subprotocols=["streamlit", cookie] if cookie else ["streamlit"],  # type: ignore[list-item]
            origin=self.base,  # type: ignore[arg-type]
            additional_headers={"Cookie": f"_streamlit_xsrf={cookie}"} if cookie else None,
            max_size=None,
            open_timeout=120,
            ping_interval=None,
        )
        self.record.socket_open = self.record.t()
        self.record.runs_started.append(self.record.t())
        await self.rerun()
        self._spawn(self._receive())

    def _get_page(self) -> str | None:
        request = urllib.request.Request(self.base + self.path, headers={"Accept": "text/html"})
        with urllib.request.urlopen(request, timeout=120) as resp:
            body = resp.read()
            self.record.static.append((self.record.t(), 0, self.path, resp.status, len(body)))
            jar = http.cookies.SimpleCookie()
            for value in resp.headers.get_all("Set-Cookie") or []:
                jar.load(value)
        morsel = jar.get("_streamlit_xsrf")
        return morsel.value if morsel is not None else None

    async def rerun(self, fragment_id: str = "", auto: bool = False, widgets: list[Any] | None = None) -> None:
        from streamlit.proto.BackMsg_pb2 import BackMsg

        msg = BackMsg()
        cs = msg.rerun_script
        cs.query_string = self.query
        cs.page_script_hash = self.page_hash
        if not self.page_hash:
            cs.page_name = self.page_name
        if fragment_id:
            cs.fragment_id = fragment_id
            cs.is_auto_rerun = auto
        for w in widgets or []:
            cs.widget_states.widgets.append(w)
        cs.cached_message_hashes.extend(self.msg_cache)
        data = msg.SerializeToString()
        self.record.msgs_out["rerun_script/fragment" if fragment_id else "rerun_script"] += 1
        self.record.bytes_out += len(data)
        if not fragment_id:
            self._stop_auto()  # a new full run drops the page's timers; its fragments will set them anew
        await self.ws.send(data)

    async def press(self, key: str) -> bool:
        """Click the button with widget key ``key`` (a full rerun with its trigger); False if not on the page."""
        from streamlit.proto.WidgetStates_pb2 import WidgetState

        wid = self.widgets.get(key)
        if wid is None:
            return False
        state = WidgetState(id=wid, trigger_value=True)
        await self.rerun(widgets=[state])
        return True

    async def close(self) -> None:
        self.record.closed = self.record.t()  # first: what the socket does from here on is the closing itself
        self._stop_auto()
        for reader in self.readers or []:
            reader.close()
        if self.ws is not None:
            await self.ws.close()
        for task in list(self.tasks):
            task.cancel()

    # ------------------------------------------------------------------ receiving

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def _stop_auto(self, fragment_ids: list[str] | None = None) -> None:
        for fid in list(self.auto) if fragment_ids is None else fragment_ids:
            task = self.auto.pop(fid, None)
            if task is not None:
                task.cancel()

    async def _auto_rerun(self, fragment_id: str, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.pending.setdefault(fragment_id, []).append(time.monotonic())
            self.record.fragment_sent += 1
            self.record.fragment_times.append(self.record.t())
            try:
                await self.rerun(fragment_id, auto=True)
            except Exception:  # the socket closed: the tab is going
                return

    async def _receive(self) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        try:
            async for frame in self.ws:
                self.record.bytes_in += len(frame)
                msg = ForwardMsg()
                msg.ParseFromString(frame)
                self._handle(msg)
        except Exception as err:
            if self.record.closed is None:
                self.record.errors.append(f"websocket: {type(err).__name__}: {err}"[:300])

    def _handle(self, msg: Any) -> None:
        kind = msg.WhichOneof("type")
        if kind == "ref_hash":
            cached = self.msg_cache.get(msg.ref_hash)
            self.record.msgs_in["ref_hash"] += 1
            if cached is None:
                self.record.ref_misses += 1
                return
            self.msg_cache[msg.ref_hash] = (cached[0], self.finished)
            full = type(msg)()
            full.CopyFrom(cached[0])
            full.metadata.CopyFrom(msg.metadata)
            msg, kind = full, "delta"
        else:
            self.record.msgs_in[kind if kind != "delta" else f"delta/{msg.delta.WhichOneof('type')}"] += 1
        if msg.metadata.cacheable and msg.hash:
            self.msg_cache[msg.hash] = (msg, self.finished)
        run = msg.metadata.run
        if kind == "new_session":
            fids = list(run.fragment_ids)
            if fids:
                for fid in fids:
                    sent = self.pending.get(fid)
                    if sent:
                        self.record.fragment_answered += 1
                        self.record.fragment_latency.append(time.monotonic() - sent.pop(0))
            else:
                self.record.full_runs += 1
                self.seen_this_run = set()
                self._stop_auto()
        elif kind == "navigation":
            self.page_hash = msg.navigation.page_script_hash
        elif kind == "page_info_changed":
            self.query = msg.page_info_changed.query_string
        elif kind == "auto_rerun":
            fid, interval = msg.auto_rerun.fragment_id, msg.auto_rerun.interval
            if self.intervals.get(fid) != interval or fid not in self.auto:  # the same timer keeps running
                self._stop_auto([fid])
                self.intervals[fid] = interval
                self.auto[fid] = self._spawn(self._auto_rerun(fid, interval))
        elif kind == "stop_auto_rerun":
            self._stop_auto(list(msg.stop_auto_rerun.fragment_ids))
        elif kind == "delta":
            self._delta(msg)
        elif kind == "script_finished":
            if msg.script_finished == msg.FINISHED_SUCCESSFULLY:
                # Entries age by full runs only: a fragment's run must not evict what the page's next full run
                # may be told to reuse (a reference to an evicted entry is a miss, counted in ref_misses).
                self.finished += 1
                self.msg_cache = {h: v for h, v in self.msg_cache.items() if self.finished - v[1] <= _MAX_CACHED_AGE}
                # Components no longer on the page are unmounted: their iframe goes, a new one loads afresh.
                self.mounted = {p: n for p, n in self.mounted.items() if p in self.seen_this_run}

    def _delta(self, msg: Any) -> None:
        if msg.delta.WhichOneof("type") != "new_element":
            return
        element = msg.delta.new_element
        what = element.WhichOneof("type")
        path = ",".join(map(str, msg.metadata.delta_path))
        if what == "component_instance":
            ci = element.component_instance
            key = ci.id
            try:
                args = json.loads(ci.json_args) if ci.json_args else {}
            except ValueError:
                args = {}
            self.seen_this_run.add(path)
            if self.mounted.get(path) != ci.component_name:
                self.mounted[path] = ci.component_name
                self._spawn(self._load_iframe(ci.component_name, ci.url))
            for reader in self.readers or []:
                reader.on_component(self, key, args)
            return
        if what in ("button", "download_button"):
            wid = getattr(element, what).id
            self.widgets[wid.rsplit("-", 1)[-1]] = wid
        elif what == "progress":
            m = _ITERATION.search(element.progress.text)
            if m:
                it = int(m.group(1).replace(",", ""))
                if not self.record.progress or self.record.progress[-1][1] != it:
                    self.record.progress.append((self.record.t(), it))
        elif what == "alert":
            body = element.alert.body
            if element.alert.format == element.alert.ERROR:
                self.record.errors.append(f"st.error: {body[:200]}")
            for note in ("**Done**", "**Stopped**", "**Failed**"):
                if body.startswith(note) and self.state_note != f"{self.run_index}{note}":
                    self.state_note = f"{self.run_index}{note}"
                    self.record.run_ended.append(self.record.t())
        elif what == "exception":
            self.record.errors.append(f"exception: {element.exception.message[:200]}")

    async def _load_iframe(self, name: str, url: str) -> None:
        """The component's page and every script and stylesheet it names, as its iframe would load them."""
        page = url or f"{self.base}/component/{name}/index.html"
        run = self.run_index
        try:
            fetch = await asyncio.to_thread(self.cache.get, page)
            self.record.static.append((self.record.t(), run, page, fetch.status, fetch.bytes))
            html = fetch.body.decode("utf-8", errors="replace") if fetch.body else ""
            html = _INLINE_SCRIPT.sub("", html)  # a fallback written by an inline script is not fetched
            subs = [urllib.parse.urljoin(page, src) for src in _SCRIPT.findall(html)]
            for sub in await asyncio.gather(*(asyncio.to_thread(self.cache.get, s) for s in subs)):
                self.record.static.append((self.record.t(), run, sub.url, sub.status, sub.bytes))
        except Exception as err:
            self.record.errors.append(f"iframe {page}: {type(err).__name__}: {err}"[:300])

    def new_run(self) -> None:
        """Mark that the student starts another run (Reset, Train): later figures count for it."""
        self.run_index += 1
        self.record.runs_started.append(self.record.t())
