"""The Compare page's live stream: one token per comparison, bound to one session's runs, that sends every run's
new loss points on the chart's own trace indices (each point once), the progress rows, each run's new density,
and asks for a rerun only when a run changes state.

The routes are driven as an ASGI app with the same client as ``test_stream.py``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from starlette.applications import Starlette

from cnfviz.figures.compare import loss_curves_figure
from cnfviz.runtime.job import TrainingJob
from cnfviz.training.presets import default_config
from cnfviz.ui import stream
from cnfviz.ui.compare import compare_series, progress_payload, run_status_text
from tests.apptest import fresh_caches  # noqa: F401 - fresh_caches is an autouse fixture
from tests.ui import test_stream
from tests.ui.test_stream import Client, Holder, ScriptedJob

base_snapshot = test_stream.base_snapshot  # the fixture: a finished run's snapshot, replayed as a running one

LABELS = ["width = 8", "flow matching", "width = 32"]


class LikelihoodJob(ScriptedJob):
    """A likelihood run of 16 function evaluations per iteration (its NFE curve is flat, so that its smoothing
    changes no point already sent)."""

    def snapshot(self):
        snap = super().snapshot()
        history = dict(snap.history)
        history["nfe"] = 16 * history["iteration"]
        return dataclasses.replace(snap, history=history)


class RegressionJob(LikelihoodJob):
    """A flow-matching run: no training NLL (NaN), its own regression loss, a test NLL now and then."""

    def snapshot(self):
        snap = super().snapshot()
        history = dict(snap.history)
        n = len(history["iteration"])
        history["nll"] = np.full(n, np.nan)
        history["loss"] = 30.0 - history["iteration"] / 10.0
        return dataclasses.replace(snap, history=history)


@pytest.fixture
def client():
    yield Client(Starlette(routes=stream.routes()))
    stream._enabled.clear()


def comparison(base, *, finish_after: int | None = None) -> tuple[Holder, list]:
    holder = Holder()
    jobs = [
        LikelihoodJob(dataclasses.replace(base, job_id="job-a"), step=2, finish_after=finish_after),
        RegressionJob(dataclasses.replace(base, job_id="job-b"), step=3, test_from=2),
        LikelihoodJob(dataclasses.replace(base, job_id="job-c"), step=1, test_from=3),
    ]
    for i, job in enumerate(jobs):
        holder.jobs[f"compare_{i}"] = job
    return holder, jobs


def token_for(holder: Holder, base) -> str:
    runs = [
        (i, f"compare_{i}", dataclasses.replace(base, job_id=job.job_id)) for i, job in enumerate(holder.jobs.values())
    ]
    return stream.compare_token(holder, runs, height=380, labels=LABELS, errors={})


def curves_of(snaps: list) -> list[tuple[str, dict]]:
    return [(label, snap.history) for label, snap in zip(LABELS, snaps, strict=True)]


def test_series_are_the_figures_traces_in_its_order():
    it = np.arange(1, 41)
    likelihood = {
        "iteration": it,
        "nll": 3 - it / 50,
        "nfe": np.cumsum(np.full(40, 16)),
        "test_iteration": np.array([20, 40]),
        "test_nll": np.array([2.6, 2.3]),
    }
    regression = {
        "iteration": it,
        "nll": np.full(40, np.nan),
        "loss": 30 - it / 4,
        "nfe": np.cumsum(np.ones(40)),
        "test_iteration": np.array([40]),
        "test_nll": np.array([2.9]),
    }
    never = {}
    curves = [("a", likelihood), ("b", regression), ("c", never)]
    names, series = compare_series(curves, max_points=25)
    figure = loss_curves_figure(curves, max_points=25)
    assert names == ("nll:0", "test:0", "nfe:0", "test:1", "fm:1", "nfe:1", "nll:2")
    assert len(series) == len(figure.data)
    for (x, y), trace in zip(series, figure.data, strict=True):
        np.testing.assert_array_equal(np.asarray(trace.x, dtype=np.float64), np.asarray(x, dtype=np.float64))
        np.testing.assert_allclose(np.asarray(trace.y, dtype=np.float64), np.asarray(y, dtype=np.float64), rtol=1e-6)
    assert len(series[0][0]) <= 25, "decimated as the figure is"


def test_the_stream_sends_each_runs_new_points_once_on_the_charts_trace_indices(client, base_snapshot):
    holder, jobs = comparison(base_snapshot)
    token = token_for(holder, base_snapshot)
    # The page drew nothing yet: three empty traces (each run's line; the flow-matching run has no points).
    reply = client.get(f"{stream.STREAM_PREFIX}/{token}?n=0,0,0&v=-1,-1,-1&parts=loss", limit=12)
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/event-stream")
    events = reply.events()
    names = [name for name, _ in events]
    assert set(names) <= {"loss", "lossfigure"}, "only the parts asked for"
    # Replay what a browser does: a lossfigure replaces everything, a loss extends or replaces traces.
    drawn: list[list[list[float]]] | None = None
    appended: dict[int, int] = {}  # points appended per trace since the last whole figure
    replaced: set[int] = set()
    for name, data in events:
        if name == "lossfigure":
            drawn = [
                [list(np.asarray(t.get("x", []), dtype=float)), list(np.asarray(t.get("y", []), dtype=float))]
                for t in _plain(data["figure"]["data"])
            ]
            appended, replaced = {}, set()
            continue
        if drawn is None:
            drawn = [[[], []] for _ in data["curves"]]
        for i, change in enumerate(data["curves"]):
            if change is None:
                continue
            op, xs, ys = change
            if op == "+":
                appended[i] = appended.get(i, 0) + len(xs)
                drawn[i] = [drawn[i][0] + xs, drawn[i][1] + ys]
            else:
                replaced.add(i)
                drawn[i] = [xs, ys]
    # What the chart holds now equals the runs' series at their last read: every point once, none resent.
    assert len({job.reads for job in jobs}) == 1 and jobs[0].reads >= 4, "each tick reads every run once"
    _, expected = compare_series(curves_of([_at(job, job.reads) for job in jobs]))
    assert len(drawn) == len(expected)
    for (xs, ys), (x, y) in zip(drawn, expected, strict=True):
        assert xs == [float(v) for v in x], "each point sent exactly once, in order: none missing, none twice"
        np.testing.assert_allclose(ys, np.asarray(y, dtype=float), rtol=1e-5)
    losses = [d for n, d in events if n == "loss"]
    assert losses[-1]["iterations"] == [2 * jobs[0].reads, 3 * jobs[1].reads, jobs[2].reads]
    assert names.count("lossfigure") == 2, "the page drew 3 traces of 7; run 2's test NLL appeared at read 3"
    # The scripted test NLL is one point that moves (a replacement); every other curve only ever grew.
    final_names, _ = compare_series(curves_of([_at(job, job.reads) for job in jobs]))
    assert {final_names[i] for i in replaced} <= {"test:1", "test:2"}
    grown = [i for i, name in enumerate(final_names) if not name.startswith("test")]
    assert all(appended.get(i, 0) > 0 for i in grown), "every run's curves grew from the stream"


def _at(job: ScriptedJob, reads: int):
    # The job's snapshot after `reads` reads, without counting a read.
    saved = job.reads
    job.reads = reads - 1
    snap = job.snapshot()
    job.reads = saved
    return snap


def _plain(traces: list[dict]) -> list[dict]:
    import base64

    out = []
    for t in traces:
        t = dict(t)
        for axis in ("x", "y"):
            v = t.get(axis)
            if isinstance(v, dict) and "bdata" in v:
                t[axis] = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"])).tolist()
        out.append(t)
    return out


def test_progress_rows_follow_the_runs_and_a_finished_run_asks_for_one_rerun(client, base_snapshot):
    holder, jobs = comparison(base_snapshot, finish_after=3)
    token = token_for(holder, base_snapshot)
    events = client.get(f"{stream.STREAM_PREFIX}/{token}?n=0,0,0&v=-1,-1,-1&parts=status").events()
    statuses = [d for n, d in events if n == "status"]
    assert [n for n, _ in events].count("rerun") == 1 and events[-1] == ("rerun", {"reason": "done"})
    assert jobs[0].reads == 4, "the rerun came with the first read where a run had finished, not before"
    rows = statuses[0]["rows"]
    assert [r["label"] for r in rows] == LABELS
    assert rows[0]["text"] == run_status_text(_at(jobs[0], 1)) and rows[1]["text"].startswith("iteration 3 /")
    assert all(0.0 <= r["value"] <= 1.0 and r["kind"] == "progress" for r in rows)
    assert statuses[-1]["rows"][0]["text"].startswith("done"), "the last rows show the run that ended"
    assert len(statuses) == 4, "one status event per read that changed"


def test_a_run_that_could_not_start_is_a_row_with_its_reason():
    payload = progress_payload([(0, "a\u202eb", None, "ValueError: width must be positive"), (1, "b", None, "x")])
    assert payload["rows"][0]["kind"] == "error"
    assert payload["rows"][0]["text"] == "Could not start: ValueError: width must be positive"
    assert "\u202e" not in payload["rows"][0]["label"], "invisible characters are marked, not sent"


def test_a_comparisons_token_reads_only_its_own_sessions_runs(client, base_snapshot):
    holder, _ = comparison(base_snapshot)
    token = token_for(holder, base_snapshot)
    assert len(token) >= 32
    assert token_for(holder, base_snapshot) == token, "the same comparison keeps its token across script runs"
    wrong = token[:-1] + ("y" if token.endswith("x") else "x")  # one character off
    assert client.get(f"{stream.STREAM_PREFIX}/{wrong}").status_code == 404
    # Another session with runs of the same names: its own token, its own runs only.
    other, other_jobs = comparison(base_snapshot)
    for job in other_jobs:
        job.step = 100
    other_token = token_for(other, base_snapshot)
    assert other_token != token
    events = client.get(f"{stream.STREAM_PREFIX}/{token}?n=0,0,0&v=-1,-1,-1&parts=loss", limit=3).events()
    assert all(it < 100 for _, d in events if "iterations" in d for it in d["iterations"]), "never the other's runs"
    # A new comparison replaces the runs (new job ids): the old token reads nothing.
    holder.jobs["compare_1"] = ScriptedJob(dataclasses.replace(base_snapshot, job_id="job-new"))
    assert client.get(f"{stream.STREAM_PREFIX}/{token}?n=0,0,0&v=-1,-1,-1").status_code == 404
    assert stream.binding(token) is None
    assert client.get(f"{stream.STREAM_PREFIX}/{other_token}?parts=nonsense").status_code == 400


def test_each_runs_new_density_goes_to_its_own_chart(client):
    holder = Holder()
    snaps = []
    for i, width in enumerate((8, 16)):
        job = TrainingJob(default_config("moons", adam_iters=3, eval_every=0, n_test=100, model={"hidden": (width,)}))
        snaps.append(job.start().join(120).snapshot())
        holder.jobs[f"compare_{i}"] = job
    assert all(s.visuals is not None for s in snaps)
    running = [dataclasses.replace(s, state="running") for s in snaps]
    token = stream.compare_token(
        holder, [(i, f"compare_{i}", s) for i, s in enumerate(running)], height=380, labels=["8", "16"], errors={}
    )
    # The page shows run 0's pictures already: only run 1's come.
    v = f"{snaps[0].visuals_version},-1"
    events = client.get(f"{stream.STREAM_PREFIX}/{token}?n=0,0,0,0&v={v}&parts=visuals").events()
    visuals = [d for n, d in events if n == "visuals"]
    assert [d["index"] for d in visuals] == [1] and visuals[0]["version"] == snaps[1].visuals_version
    assert any(t["type"] == "heatmap" for t in visuals[0]["density"]["figure"]["data"])
    assert visuals[0]["density"]["figure"]["layout"]["height"] == 230
    assert f"it {snaps[1].visuals.iteration}" in visuals[0]["density"]["figure"]["layout"]["title"]["text"]
    assert events[-1][0] == "rerun", "the page drew them running; they are done"
