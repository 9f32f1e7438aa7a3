"""The live channel's routes, driven as an ASGI app (Starlette's TestClient needs httpx2, not installed here).

A stream needs its token, carries a run's new loss points with rising iterations and its pictures, asks the
page to rerun when the run ends, and ends when the run is discarded; the scripts are served under
content-hashed names, cached for a year."""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import gzip
import json
import threading
import time

import numpy as np
import pytest
from starlette.applications import Starlette
from streamlit.testing.v1 import AppTest

from cnfviz.runtime.job import TrainingJob
from cnfviz.training.presets import default_config
from cnfviz.ui import stream
from cnfviz.ui.live_chart import hashed_assets
from tests.apptest import TRAIN, fresh_caches  # noqa: F401 - fresh_caches is an autouse fixture


class ScriptedJob:
    """A job handle whose snapshot grows by ``step`` iterations on each read, from a real snapshot."""

    def __init__(self, base, step: int = 3, finish_after: int | None = None, test_from: int | None = None) -> None:
        self.test_from = test_from
        self.job_id = base.job_id
        self.base = base
        self.step = step
        self.reads = 0
        self.finish_after = finish_after

    def snapshot(self):
        self.reads += 1
        n = self.reads * self.step
        it = np.arange(1, n + 1)
        history = {key: np.full(n, 16) for key in ("nfe", "nfe_iter")}
        history.update(iteration=it, nll=3.0 - it / 100.0, loss=3.0 - it / 100.0, elapsed=it / 10.0)
        tested = self.test_from is not None and self.reads >= self.test_from
        history["test_iteration"] = np.array([n]) if tested else np.zeros(0, dtype=int)
        history["test_nll"] = np.array([2.5]) if tested else np.zeros(0)
        state = "done" if self.finish_after is not None and self.reads > self.finish_after else "running"
        return dataclasses.replace(self.base, iteration=n, history=history, state=state, visuals=None)


class Holder:
    def __init__(self) -> None:
        self.jobs: dict[str, object] = {}

    def get(self, name: str = "train"):
        return self.jobs.get(name)


@pytest.fixture(scope="module")
def base_snapshot():
    job = TrainingJob(default_config("normal", adam_iters=3, eval_every=0, n_test=50))
    snap = job.start().join(120).snapshot()
    assert snap.state == "done"
    return dataclasses.replace(snap, state="running")


class Reply:
    """One response: status, headers (lower-case names) and the body's bytes, read until ``stop(body)``."""

    def __init__(self, status: int, headers: dict[str, str], content: bytes) -> None:
        self.status_code, self.headers, self.content = status, headers, content

    def events(self) -> list[tuple[str, dict]]:
        out = []
        for block in self.content.decode().split("\n\n"):
            lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and line[0] != ":")
            if "event" in lines:
                out.append((lines["event"], json.loads(lines["data"])))
        return out


class Client:
    """A GET over the ASGI interface that disconnects once the body says ``rerun`` or ``end``, or after
    ``limit`` events."""

    def __init__(self, app) -> None:
        self.app = app

    def get(self, url: str, headers: dict[str, str] | None = None, limit: int = 1000) -> Reply:
        # A loop of its own in a thread of its own: Playwright's sync API (the browser tests, earlier in the same
        # session) leaves an event loop running in the main thread, where asyncio.run() refuses to start.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, self._get(url, headers or {}, limit)).result()

    async def _get(self, url: str, headers: dict[str, str], limit: int) -> Reply:
        path, _, query = url.partition("?")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
            "client": ("127.0.0.1", 1),
            "server": ("test", 80),
        }
        done = asyncio.Event()
        sent = [False]
        status, head, body = [0], {}, bytearray()

        async def receive():
            if not sent[0]:
                sent[0] = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                head.update({k.decode(): v.decode() for k, v in message["headers"]})
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
                text = bytes(body).decode(errors="ignore")
                if "event: rerun" in text or "event: end" in text or text.count("event: ") >= limit:
                    done.set()
                if not message.get("more_body", False):
                    done.set()

        task = asyncio.create_task(self.app(scope, receive, send))
        await done.wait()
        await asyncio.sleep(0.05)
        task.cancel()
        try:
            await task
        except (asyncio.CancelledError, Exception):
            pass
        return Reply(status[0], head, bytes(body))


@pytest.fixture
def client():
    yield Client(Starlette(routes=stream.routes()))
    stream._enabled.clear()  # mounting the routes turned the stream on for this process's pages: AppTest polls


def test_a_stream_needs_its_token(client, base_snapshot):
    holder = Holder()
    holder.jobs["train"] = ScriptedJob(base_snapshot)
    token = stream.stream_token(holder, "train", base_snapshot, height=300, present=False, overlay=False)
    assert len(token) >= 32, "unguessable: 24 random bytes"
    assert stream.stream_token(holder, "train", base_snapshot, height=300, present=False, overlay=False) == token
    wrong = token[:-1] + ("y" if token.endswith("x") else "x")  # one character off (a token may end in x)
    assert client.get(f"{stream.STREAM_PREFIX}/{wrong}").status_code == 404
    assert client.get(f"{stream.STREAM_PREFIX}/nothing").status_code == 404
    other = Holder()
    other.jobs["train"] = holder.jobs["train"]
    assert stream.stream_token(other, "train", base_snapshot, height=300, present=False, overlay=False) != token, (
        "another session's holder gets its own token"
    )


def test_events_carry_new_points_only_with_rising_iterations(client, base_snapshot):
    holder = Holder()
    job = ScriptedJob(base_snapshot, step=3, finish_after=4)
    holder.jobs["train"] = job
    token = stream.stream_token(holder, "train", base_snapshot, height=300, present=False, overlay=False)
    response = client.get(f"{stream.STREAM_PREFIX}/{token}?n=0&v=-1", limit=40)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = response.events()
    losses = [data for name, data in events if name == "loss"]
    iterations = [d["iteration"] for d in losses]
    assert iterations == [3, 6, 9, 12, 15], "one loss event per snapshot read, rising, the last one done"
    xs = [x for d in losses for x in d["curves"][0][1]]
    assert xs == list(range(1, 16)), "each point sent exactly once, in order: deltas, not the whole curve"
    assert all(d["curves"][0][0] == "+" for d in losses)
    statuses = [data for name, data in events if name == "status"]
    assert statuses[0]["iteration"] == 3 and statuses[0]["total"] >= 3
    assert {"its_per_sec", "eta", "paused", "stopping", "notes", "text", "value"} <= set(statuses[0])
    assert events[-1] == ("rerun", {"reason": "done"}), "the finished run asks its page to redraw once"


class StoppingJob(ScriptedJob):
    """Stopped at once (Stop ends a run before its final metrics): ``finishing`` for ``finishing_reads``
    snapshot reads, then its metrics are in."""

    def __init__(self, base, finishing_reads: int) -> None:
        super().__init__(base)
        self.finishing_reads = finishing_reads

    def snapshot(self):
        snap = super().snapshot()
        return dataclasses.replace(snap, state="stopped", finishing=self.reads <= self.finishing_reads)


def test_a_stopped_run_asks_for_a_second_redraw_when_its_metrics_are_in(client, base_snapshot):
    holder = Holder()
    job = StoppingJob(base_snapshot, finishing_reads=4)
    holder.jobs["train"] = job
    # The page drew it running: the stop itself asks for a redraw (buttons), while the metrics still come.
    token = stream.stream_token(holder, "train", base_snapshot, height=300, present=False, overlay=False)
    events = client.get(f"{stream.STREAM_PREFIX}/{token}?n=0&v=-1").events()
    assert events[-1] == ("rerun", {"reason": "stopped"}) and job.reads == 1
    # That redraw saw it stopped and finishing: its stream stays quiet until the metrics are in, then asks again.
    drawn = dataclasses.replace(base_snapshot, state="stopped", finishing=True)
    assert stream.stream_token(holder, "train", drawn, height=300, present=False, overlay=False) == token
    events = client.get(f"{stream.STREAM_PREFIX}/{token}?n=3&v=-1").events()
    assert events[-1] == ("rerun", {"reason": "stopped"}) and [n for n, _ in events].count("rerun") == 1
    assert job.reads == 5, "the redraw came with the first snapshot that holds the final metrics, not before"


def test_a_new_curve_comes_as_a_whole_figure_without_a_rerun(client, base_snapshot):
    holder = Holder()
    holder.jobs["train"] = ScriptedJob(base_snapshot, step=2, finish_after=5, test_from=3)
    token = stream.stream_token(holder, "train", base_snapshot, height=300, present=False, overlay=False)
    events = client.get(f"{stream.STREAM_PREFIX}/{token}?n=0&v=-1").events()
    names = [name for name, _ in events]
    assert names.count("lossfigure") == 1 and names[-1] == "rerun" and names.count("rerun") == 1
    figure = next(d for name, d in events if name == "lossfigure")["figure"]
    assert "test NLL" in [t.get("name") for t in figure["data"]]
    after = [d for name, d in events[names.index("lossfigure") :] if name == "loss"]
    assert after and after[0]["curves"][0][1] == [7.0, 8.0], "points again, from where the figure ended"


def test_a_stream_starts_from_what_the_page_drew(client, base_snapshot):
    holder = Holder()
    holder.jobs["train"] = ScriptedJob(base_snapshot, step=5)
    token = stream.stream_token(holder, "train", base_snapshot, height=300, present=False, overlay=False)
    events = client.get(f"{stream.STREAM_PREFIX}/{token}?n=4&v=-1", limit=3).events()
    first = next(d for name, d in events if name == "loss")
    assert first["curves"][0][1] == [5.0], "the page had points 1-4: only the fifth is new"
    assert client.get(f"{stream.STREAM_PREFIX}/{token}?n=a").status_code == 400


def test_the_stream_ends_when_the_run_is_discarded(client, base_snapshot):
    holder = Holder()
    holder.jobs["train"] = ScriptedJob(base_snapshot)
    token = stream.stream_token(holder, "train", base_snapshot, height=300, present=False, overlay=False)
    timer = threading.Timer(1.0, lambda: holder.jobs.pop("train"))
    timer.start()
    start = time.monotonic()
    events = client.get(f"{stream.STREAM_PREFIX}/{token}").events()
    timer.join()
    assert events[-1] == ("end", {"reason": "discarded"})
    assert time.monotonic() - start < 5
    assert client.get(f"{stream.STREAM_PREFIX}/{token}").status_code == 404, "its token is forgotten"


def test_a_replaced_run_does_not_reach_the_old_token(client, base_snapshot):
    holder = Holder()
    holder.jobs["train"] = ScriptedJob(base_snapshot)
    token = stream.stream_token(holder, "train", base_snapshot, height=300, present=False, overlay=False)
    replacement = ScriptedJob(dataclasses.replace(base_snapshot, job_id="job-other"))
    holder.jobs["train"] = replacement
    assert client.get(f"{stream.STREAM_PREFIX}/{token}").status_code == 404


def test_pictures_arrive_as_specs_when_their_version_changes(client):
    job = TrainingJob(default_config("moons", adam_iters=4, eval_every=0, n_test=100))
    snap = job.start().join(120).snapshot()
    assert snap.visuals is not None
    holder = Holder()
    holder.jobs["train"] = job
    live = dataclasses.replace(snap, state="running")
    token = stream.stream_token(holder, "train", live, height=320, present=False, overlay=False)
    events = client.get(f"{stream.STREAM_PREFIX}/{token}?n=0&v=-1", limit=10).events()
    visuals = [d for name, d in events if name == "visuals"]
    assert len(visuals) == 1 and visuals[0]["version"] == snap.visuals_version
    assert visuals[0]["immediate"] is True, "a finished run's flow goes in at once"
    assert any(t["type"] == "heatmap" for t in visuals[0]["density"]["figure"]["data"])
    assert visuals[0]["flow"]["anim"]["T"] > 1
    assert visuals[0]["density"]["figure"]["layout"]["height"] == 320
    assert events[-1][0] == "rerun", "the page drew it running; it is done"


def test_scripts_are_served_once_under_hashed_names(client):
    for plain, (hashed, path) in hashed_assets().items():
        assert hashed != plain and hashed.endswith(plain.split(".", 1)[1])
        r = client.get(f"{stream.ASSET_PREFIX}/{hashed}", headers={"Accept-Encoding": "gzip"})
        assert r.status_code == 200
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert r.headers["content-encoding"] == "gzip"
        assert gzip.decompress(r.content) == path.read_bytes(), "gzip of the file itself"
        plain_reply = client.get(f"{stream.ASSET_PREFIX}/{hashed}")
        assert "content-encoding" not in plain_reply.headers and plain_reply.content == path.read_bytes()
    assert client.get(f"{stream.ASSET_PREFIX}/plotly.min.js").status_code == 404, "only hashed names"


def test_the_train_page_hands_its_charts_the_runs_stream(client):
    at = AppTest.from_file(TRAIN, default_timeout=60)
    at.query_params["target"] = "moons"
    at.query_params["adam"] = "100000"
    at.run()
    at.button(key="train_train_button").click().run()
    assert not at.exception, at.exception
    args = {c.key: json.loads(c.proto.json_args) for c in at.get("component_instance")}
    assert {"train_loss_chart", "train_density_chart", "train_flow_chart"} <= set(args), (
        "the pictures' charts wait on the stream from the start"
    )
    live = args["train_loss_chart"]["stream"]
    assert live["role"] == "loss" and live["status"] == "train_status"
    token = live["url"].rsplit("/", 1)[1]
    assert live["url"] == f"../..{stream.STREAM_PREFIX}/{token}" and live["channel"] == token
    assert args["train_density_chart"]["stream"]["role"] == "density"
    bound = stream.binding(token)
    assert bound is not None and bound.options["height"] == args["train_loss_chart"]["height"]
    job = bound.job()
    assert job is not None and job.job_id == at.session_state["train__drawn"][0]
    assert len(live["n"]) >= 1 and json.loads(args["train_loss_chart"]["spec"])["figure"]["data"]
    at.button(key="train_reset_button").click().run()
    assert stream.binding(token) is None, "Reset discards the run: its stream's token is dead"


def test_a_paused_or_finished_runs_flow_takes_its_new_model_at_once():
    from tests.apptest import wait_for

    at = AppTest.from_file(TRAIN, default_timeout=60)
    at.query_params["target"] = "moons"
    at.query_params["adam"] = "100000"
    at.run()
    at.button(key="train_train_button").click().run()

    def flow_args(a: AppTest) -> dict:
        found = [json.loads(c.proto.json_args) for c in a.get("component_instance") if c.key == "train_flow_chart"]
        return found[0] if found else {}

    wait_for(at, lambda a: '"anim": {' in flow_args(a).get("spec", ""))
    assert not flow_args(at).get("immediate"), "while it trains, a new model waits for the loop to start over"
    at.button(key="train_pause_button").click().run()
    wait_for(at, lambda a: bool(flow_args(a).get("immediate")))
    assert json.loads(flow_args(at)["spec"])["anim"] is not None
