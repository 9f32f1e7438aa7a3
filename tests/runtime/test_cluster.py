"""Runs on a real local Ray head: one contract over both backends, incremental polls, faults, and the CLI.

One head for the whole module (``ray.init`` with 2 CPUs, on 127.0.0.1 only, stopped after). Without Ray
installed the module is skipped, except in CI (``CI=true``), where the Ray tests must run.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from cnfviz import FFJORD, default_config
from cnfviz.runtime.backend import LocalBackend, RayBackend, run_record
from cnfviz.runtime.holder import JobHolder, ParkingLot
from cnfviz.runtime.ray.cluster import start_loopback_head
from cnfviz.runtime.ray.cluster_stacks import StackedRayJob
from cnfviz.runtime.scheduler import Scheduler

ROOT = Path(__file__).resolve().parents[2]

if os.environ.get("CI", "").lower() == "true":
    import ray  # CI installs cnfviz[ray]: a missing Ray is a failure there, not a skip
else:
    ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_address():
    started = not ray.is_initialized()
    if started:
        start_loopback_head(2)  # 127.0.0.1 only: never the machine's private-range address
    yield ray.get_runtime_context().gcs_address
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def backend(ray_address):
    # One actor per run: the path of runs that cannot stack. The stack actors have tests of their own below,
    # and make_backend("ray") (the app's and the CLI's) stacks.
    return RayBackend(ray_address, stacking=False)


def _page_session() -> dict:
    """The globals of the session module the pages use: collecting ``cnfviz/ui/session.py``'s doctests
    imports a second copy of it under the same name, so ``import cnfviz.ui.session`` may not be that one."""
    import cnfviz.ui  # noqa: F401 - loads the pages' modules

    return sys.modules["cnfviz.ui.cluster_notice"].backend_notice.__globals__


def _config(**kw):
    base = {"adam_iters": 60, "batch_size": 64, "eval_every": 20, "n_test": 200, "seed": 7}
    return default_config("normal", **{**base, **kw})


def _long_config(**kw):
    # Far more iterations than any test waits for: only Stop or a fault ends it.
    return _config(adam_iters=100_000, eval_every=0, **kw)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def test_the_head_binds_and_talks_on_loopback_only(ray_address, backend):
    assert ray_address.startswith("127.0.0.1:")
    assert [n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]] == ["127.0.0.1"]
    job = backend.submit(_config(adam_iters=2, eval_every=0)).start().join(120)
    assert job.result.status == "done"  # a worker reached it, and reported its node's address
    assert ray.util.get_node_ip_address() == "127.0.0.1"


# Run in a fresh process (this one already holds the module's head): connect(None) with no cluster to join
# starts a head, and every TCP port its processes listen on must be on loopback.
_OWN_HEAD = """
import json, os, socket, struct
import ray
from cnfviz.runtime.ray.cluster import connect

def tree(root):
    kids = {}
    for d in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{d}/stat") as fh:
                kids.setdefault(int(fh.read().rsplit(")", 1)[1].split()[1]), []).append(int(d))
        except OSError:
            pass
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += kids.get(pid, [])
    return out

def listening(pids):
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except OSError:
            pass
    ips = []
    for family, path in ((socket.AF_INET, "/proc/net/tcp"), (socket.AF_INET6, "/proc/net/tcp6")):
        with open(path) as fh:
            for line in list(fh)[1:]:
                local, state, inode = line.split()[1], line.split()[3], line.split()[9]
                if state == "0A" and inode in inodes:  # 0A: LISTEN
                    words = local.split(":")[0]
                    raw = b"".join(struct.pack("<I", int(words[i : i + 8], 16)) for i in range(0, len(words), 8))
                    ips.append(socket.inet_ntop(family, raw))
    return ips

address = connect(None)
nodes = [n["NodeManagerAddress"] for n in ray.nodes()]
print(json.dumps({"address": address, "nodes": nodes, "ips": sorted(set(listening(tree(os.getpid()))))}))
ray.shutdown()
"""


def test_a_head_connect_starts_listens_on_loopback_only(tmp_path):
    import tempfile

    from cnfviz.runtime.ray.cluster import SINGLE_NODE_ENV

    # No cluster to join: no RAY_ADDRESS, and a temp dir (short: it holds Unix sockets) with no `ray start` in it.
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", SINGLE_NODE_ENV)}
    env.update(PYTHONPATH=str(ROOT), RAY_TMPDIR=tempfile.mkdtemp(prefix="r", dir="/tmp"))
    out = subprocess.run(
        [sys.executable, "-c", _OWN_HEAD], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    head = json.loads(out.stdout.strip().splitlines()[-1])
    assert head["address"].startswith("127.0.0.1:") and head["nodes"] == ["127.0.0.1"]
    ips = head["ips"]
    assert ips, "the head's processes listen on no TCP port at all?"
    assert set(ips) <= {"127.0.0.1", "::ffff:127.0.0.1", "::1"}, ips


def test_connect_to_a_head_ray_start_wrote_down_and_that_is_gone_names_it(tmp_path):
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="r", dir="/tmp"))
    (tmp / "ray").mkdir()
    (tmp / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{_free_port()}")  # what `ray start` leaves
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(PYTHONPATH=str(ROOT), RAY_TMPDIR=str(tmp))
    code = "\n".join(
        [
            "from cnfviz.runtime.ray import cluster",
            "try:",
            "    cluster.connect(None)",
            "except Exception as e:",
            "    print(e)",
        ]
    )
    run = [sys.executable, "-c", code]
    out = subprocess.run(run, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    address = (tmp / "ray" / "ray_current_cluster").read_text()
    assert out.stdout.strip().startswith(f"cannot reach the Ray cluster at {address}: nothing answers there"), out


def test_ray_run_matches_local_run(backend):
    cfg = _config()
    local = LocalBackend().submit(cfg).start().join(120)
    remote = backend.submit(cfg).start().join(120)
    a, b = local.snapshot(), remote.snapshot()
    assert (a.state, b.state) == ("done", "done")
    assert b.iteration == a.iteration == 60
    for key in ("iteration", "loss", "nll", "nfe", "test_iteration", "test_nll"):
        assert b.history[key].shape == a.history[key].shape, key
        np.testing.assert_allclose(b.history[key], a.history[key], rtol=1e-5, atol=1e-6, err_msg=key)
    for name, value in local.model.state_dict().items():
        torch.testing.assert_close(remote.model.state_dict()[name], value, rtol=1e-5, atol=1e-6)
    assert b.metrics is not None and a.metrics is not None
    assert b.metrics.test_nll == pytest.approx(a.metrics.test_nll, rel=1e-5)
    assert b.visuals is not None and b.visuals.iteration == a.visuals.iteration
    # The density grid is an adaptive dopri5 solve (rtol = atol = 1e-4). A Ray worker runs torch on
    # another thread count, so sums round differently and a step can be accepted on one side and
    # rejected on the other: the two grids agree to the solver's tolerance, not to float rounding.
    learned_a, learned_b = a.visuals.density.learned, b.visuals.density.learned
    np.testing.assert_allclose(learned_b, learned_a, rtol=2e-2, atol=1e-3 * float(learned_a.max()))
    assert remote.result.summary()["final_loss"] == pytest.approx(local.result.summary()["final_loss"], rel=1e-5)
    where = run_record(remote)
    assert where["worker_pid"] != os.getpid() and len(where["node_id"]) > 10
    assert not remote.alive


def test_a_queue_of_runs_reuses_warm_workers_with_the_same_results(backend):
    cfgs = [_config(adam_iters=10, eval_every=0, seed=s) for s in (1, 2, 3)]
    jobs = [backend.submit(c).start() for c in cfgs]  # 3 runs of 1 CPU on a 2-CPU head: one waits
    _wait(lambda: all(j.snapshot().state == "done" for j in jobs))
    pids = {j.placement()["worker_pid"] for j in jobs}
    assert len(pids) <= 2, "the third run got a worker of its own instead of a warm one"
    for cfg, job in zip(cfgs, jobs, strict=True):
        local = LocalBackend().submit(cfg).start().join(60)
        np.testing.assert_allclose(job.snapshot().history["loss"], local.snapshot().history["loss"], rtol=1e-5)
        assert not job.alive


def test_polls_are_incremental_and_controls_reach_a_training_actor(backend):
    job = backend.submit(_long_config()).start()
    try:
        _wait(lambda: job.snapshot().iteration >= 5 and job.snapshot().visuals is not None)
        # Talk to the actor as the handle does, with what the client already has.
        have = {k: len(v) for k, v in job.snapshot().history.items()}
        version = job.snapshot().visuals_version
        first = ray.get(job._actor.poll.remote({}))
        assert len(first["snapshot"].history["loss"]) >= have["loss"] and first["weights"] is not None
        assert first["snapshot"].visuals is not None and first["where"]["worker_pid"] == job.placement()["worker_pid"]
        _wait(lambda: job.snapshot().iteration >= have["loss"] + 3)
        second = ray.get(
            job._actor.poll.remote({"lengths": have, "visuals_version": version, "weights_key": first["weights_key"]})
        )
        part = second["snapshot"].history
        # Only the iterations after the ones the client has, starting exactly where it stopped.
        assert part["iteration"][0] == have["iteration"] + 1
        np.testing.assert_array_equal(np.diff(part["iteration"]), 1)
        assert len(part["loss"]) < second["snapshot"].iteration
        if second["snapshot"].visuals_version == version:
            assert second["snapshot"].visuals is None and second["weights"] is None
        # The handle stitched its polls into the full history, with no gap and no repeat.
        full = job.snapshot().history["iteration"]
        np.testing.assert_array_equal(full, np.arange(1, len(full) + 1))

        job.pause()
        assert job.snapshot().state == "paused" and job.snapshot().paused
        frozen = job.snapshot().iteration
        job.step()
        _wait(lambda: job.snapshot().iteration == frozen + 1)
        job.resume()
        _wait(lambda: job.snapshot().iteration > frozen + 3)
        before = job.snapshot()
        job.stop()
        shown = job.snapshot()
        # Shown at once: still stopping, or (a stopped run now says so before its final metrics) stopped already.
        assert shown.stopping or shown.state == "stopped"
        job.join(60)
        after = job.snapshot()
        assert after.state == "stopped" and after.reason == "stopped by the user"
        assert after.iteration < after.total and not job.alive
        # Delivered within 1 s: training time (the worker's clock) after the last poll before Stop.
        assert after.elapsed - before.elapsed < 1.0
        assert after.metrics is not None  # a plain Stop keeps the final metrics, as locally
    finally:
        job.close()


def test_killed_worker_fails_its_run_and_leaves_the_other_alone(backend):
    victim = backend.submit(_long_config()).start()
    other = backend.submit(_long_config(seed=8)).start()
    try:
        _wait(lambda: victim.snapshot().visuals is not None and victim.snapshot().iteration >= 5)
        _wait(lambda: other.snapshot().iteration >= 1)
        seen = victim.snapshot()
        weights = {k: v.clone() for k, v in victim.model.state_dict().items()}
        os.kill(victim.placement()["worker_pid"], signal.SIGKILL)
        _wait(lambda: victim.snapshot().state == "failed", timeout=30)
        snap = victim.snapshot()
        assert "died" in snap.reason and "kept its last snapshot" in snap.reason
        assert snap.iteration >= seen.iteration and len(snap.history["loss"]) == snap.iteration
        assert snap.visuals is not None
        assert victim.result.status == "failed" and not victim.alive
        for name, value in victim.model.state_dict().items():  # the last weights it shipped, not a fresh net
            assert torch.isfinite(value).all()
            if victim._weights_key == (seen.visuals_version, seen.state):
                torch.testing.assert_close(value, weights[name])
        assert victim.join(5) is victim
        n = other.snapshot().iteration
        _wait(lambda: other.snapshot().iteration > n + 2)
        assert other.snapshot().state == "running"
    finally:
        victim.close()
        other.close()


def test_a_run_its_worker_cannot_build_fails_in_plain_words(backend):
    from cnfviz import ConfigError, ModelConfig

    cfg = default_config("normal").replace(target="samples")  # no data: caught before any actor is made
    with pytest.raises(ConfigError, match="needs its data"):
        backend.submit(cfg)
    # Weights that do not fit the network fail in the worker; without waiting for it (the app's way), the
    # run ends failed with the error as its reason, as a local job's constructor would have raised it.
    wrong = FFJORD(1, ModelConfig(hidden=(3,))).state_dict()
    job = RayBackend(backend.address, start_timeout=0).submit(_config(), init_state=wrong).start()
    assert job.snapshot().state in ("queued", "failed")
    _wait(lambda: job.snapshot().state == "failed", timeout=60)
    assert job.snapshot().reason.startswith("ConfigError: the weights do not fit this network")
    assert not job.alive and job.result.status == "failed"


# ---------------------------------------------------------------- stacks in actors


def _other_shape(cfg):
    return cfg.replace(model=replace(cfg.model, hidden=(16,)))


def test_stacked_runs_on_ray_match_the_same_stack_here_and_a_full_actor_opens_another(ray_address):
    stacked = RayBackend(ray_address, stack_size=2)
    cfgs = [_config(adam_iters=30, eval_every=10, seed=s) for s in (1, 2, 3)]
    jobs = [stacked.submit(c).start() for c in cfgs]
    assert all(isinstance(j, StackedRayJob) for j in jobs) and stacked.stacks.live() == [2, 1]
    scheduler = Scheduler()
    local = [LocalBackend(scheduler).submit(c).start() for c in cfgs]
    for job in [*local, *jobs]:
        job.join(180)
    assert scheduler.stats()["largest_round"] == 3, "the local runs trained as one stack"
    pids = [j.placement()["worker_pid"] for j in jobs]
    actors = [j.placement()["actor_id"] for j in jobs]
    assert pids[0] == pids[1] != pids[2] and actors[0] == actors[1] != actors[2], "2 per actor, then a new one"
    assert os.getpid() not in pids
    for cfg, a, b in zip(cfgs, local, jobs, strict=True):
        sa, sb = a.snapshot(), b.snapshot()
        assert (sa.state, sb.state) == ("done", "done") and sb.iteration == sa.iteration == 30, cfg.seed
        for key in ("iteration", "loss", "nll", "nfe", "test_iteration"):
            np.testing.assert_allclose(sb.history[key], sa.history[key], rtol=1e-5, atol=1e-6, err_msg=key)
        for name, value in a.model.state_dict().items():
            torch.testing.assert_close(b.model.state_dict()[name], value, rtol=1e-5, atol=1e-6)
        # The test NLL is an adaptive dopri5 solve (rtol = atol = 1e-5): the actor's torch runs on its own
        # thread count, so it agrees to the solver's tolerance, not to float rounding.
        np.testing.assert_allclose(sb.history["test_nll"], sa.history["test_nll"], rtol=1e-4, atol=1e-4)
        assert sb.metrics.test_nll == pytest.approx(sa.metrics.test_nll, rel=1e-4, abs=1e-4)
        assert not b.alive
    assert jobs[0].snapshot().history["loss"][-1] != jobs[1].snapshot().history["loss"][-1], "two seeds"
    assert stacked.stacks.live() == [], "every run left: both actors were let go"


def test_a_stack_actor_stops_its_runs_apart_and_its_death_fails_them_all_alone(ray_address):
    stacked = RayBackend(ray_address)
    a1, a2, a3 = (stacked.submit(_long_config(seed=s)).start() for s in (1, 2, 5))
    b = stacked.submit(_other_shape(_long_config(seed=3))).start()
    jobs = [a1, a2, a3, b]
    try:
        _wait(lambda: all(j.snapshot().iteration >= 3 for j in jobs) and a2.snapshot().visuals is not None)
        where = [j.placement() for j in jobs]
        assert where[0]["actor_id"] == where[1]["actor_id"] == where[2]["actor_id"] != where[3]["actor_id"]
        assert where[0]["worker_pid"] == where[1]["worker_pid"] == where[2]["worker_pid"] != where[3]["worker_pid"]
        assert a1.stack_key == a2.stack_key == a3.stack_key != b.stack_key
        assert ray.get(a1._actor.stats.remote())["runs"] == 3
        # A member that is drawing its first plots sits a round out, so wait for a round of all three.
        _wait(lambda: ray.get(a1._actor.stats.remote())["largest_round"] == 3, timeout=60)

        # Each run's polls are its own and incremental, as a one-run actor's.
        have = {k: len(v) for k, v in a2.snapshot().history.items()}
        _wait(lambda: a2.snapshot().iteration > have["iteration"] + 1)
        part = ray.get(a2._actor.poll.remote(a2.job_id, {"lengths": have, "where": True}))["snapshot"].history
        assert part["iteration"][0] == have["iteration"] + 1
        np.testing.assert_array_equal(np.diff(part["iteration"]), 1)
        other = ray.get(a3._actor.poll.remote(a3.job_id, {}))
        assert other["snapshot"].config.seed == 5 and other["where"]["worker_pid"] == where[2]["worker_pid"]

        # Stop one run of the stack: it ends within 1 s of training time; its stack-mates train on.
        before = a1.snapshot()
        a1.stop()
        a1.join(60)
        stopped = a1.snapshot()
        assert stopped.state == "stopped" and stopped.reason == "stopped by the user" and not a1.alive
        assert stopped.elapsed - before.elapsed < 1.0
        n2, n3 = a2.snapshot().iteration, a3.snapshot().iteration
        _wait(lambda: a2.snapshot().iteration > n2 + 3 and a3.snapshot().iteration > n3 + 3)
        assert a2.snapshot().state == a3.snapshot().state == "running"
        assert sorted(stacked.stacks.live()) == [1, 2]
        assert ray.get(a2._actor.stats.remote())["runs"] == 2, "the stopped run left the actor"

        # Pause and Step are per run too: the paused run holds still while its stack-mate trains.
        a3.pause()
        assert a3.snapshot().state == "paused" and a3.snapshot().paused
        n2 = a2.snapshot().iteration
        _wait(lambda: a2.snapshot().iteration > n2 + 1)  # a3's iteration in flight at the pause has ended
        frozen, n2 = a3.snapshot().iteration, a2.snapshot().iteration
        _wait(lambda: a2.snapshot().iteration > n2 + 2)
        assert a3.snapshot().iteration == frozen
        a3.step()
        _wait(lambda: a3.snapshot().iteration == frozen + 1)
        a3.resume()
        _wait(lambda: a3.snapshot().iteration > frozen + 2)

        # Kill the stack's actor: both its live runs fail, each with its last snapshot; the stopped one stays
        # stopped, and the run in the other actor trains on.
        seen = {j.job_id: j.snapshot() for j in (a2, a3)}
        os.kill(where[1]["worker_pid"], signal.SIGKILL)
        _wait(lambda: a2.snapshot().state == a3.snapshot().state == "failed", timeout=30)
        for job in (a2, a3):
            snap = job.snapshot()
            assert "died" in snap.reason and "kept its last snapshot" in snap.reason
            assert snap.iteration >= seen[job.job_id].iteration and len(snap.history["loss"]) == snap.iteration
            assert snap.visuals is not None and job.result.status == "failed" and not job.alive
            assert all(torch.isfinite(v).all() for v in job.model.state_dict().values())
        assert a1.snapshot().state == "stopped" and a1.result.status == "stopped"
        m = b.snapshot().iteration
        _wait(lambda: b.snapshot().iteration > m + 2)
        assert b.snapshot().state == "running" and stacked.stacks.live() == [1]
        # A new run of the dead actor's shape gets a new actor, never the dead one.
        again = stacked.submit(_long_config(seed=4))
        jobs.append(again)
        assert again._actor._actor_id != a2._actor._actor_id
    finally:
        for job in jobs:
            job.close()
    assert stacked.stacks.live() == [], "closed runs left their actors, which were let go"


def _cli(*args, timeout=180):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "cnfviz", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_cli_trains_on_ray_and_says_where(ray_address, tmp_path):
    out = _cli(
        "train", "--target", "normal", "--adam-iters", "30", "--batch", "64", "--eval-every", "0",
        "--n-test", "200", "--seed", "7", "--backend", "ray", "--ray-address", ray_address, "--json", "-",
        "--save", str(tmp_path / "m.pt"),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    assert record["backend"] == "ray" and record["status"] == "done" and record["iterations"] == 30
    assert record["pid"] != record["worker_pid"] and record["node_id"]
    assert record["ray_address"] == ray_address
    assert (tmp_path / "m.pt").stat().st_size > 0
    assert record["notes"] == [] and record["parameters"] > 0


def test_app_trains_on_the_cluster_and_a_closed_tab_frees_its_actor(backend, monkeypatch):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from tests.apptest import TRAIN, wait_for

    class Recording(RayBackend):
        def submit(self, config, **kw):
            self.jobs.append(super().submit(config, **kw))
            return self.jobs[-1]

    app_backend = Recording(backend.address, start_timeout=0)
    app_backend.jobs = []
    notice = f"Runs train on the Ray cluster at {backend.address}."
    monkeypatch.setitem(_page_session(), "_backend", [(app_backend, notice)])
    # A fresh session: no holder cached or parked by an earlier test (in the pages' own parking lot).
    st.cache_resource.clear()
    _page_session()["PARKING"].clear()
    at = AppTest.from_file(TRAIN, default_timeout=60).run()
    assert not at.exception, at.exception
    assert any(notice in c.value for c in at.caption)
    at.number_input(key="train_adam_iters").set_value(40).run()
    at.button(key="train_train_button").click().run()
    wait_for(at, lambda a: bool(a.get("table")) and bool(a.success or a.error), timeout=120)
    assert at.success and "Done" in at.success[0].value and not at.error
    (job,) = app_backend.jobs
    assert job.job_id.startswith("ray-job-") and job.snapshot().iteration == 40 and job.result.status == "done"
    at.number_input(key="train_sample_n").set_value(100).run()
    at.button(key="train_sample_button").click().run()  # samples from the local copy of the run's weights
    assert not at.exception, at.exception

    # A dropped connection: the run is suspended on its actor, and continues when the tab comes back.
    holder = JobHolder(None, backend)
    live = holder.start(_long_config())
    _wait(lambda: live.snapshot().iteration >= 1)
    pid = live.placement()["worker_pid"]
    lot = ParkingLot(grace=600)
    lot.park("tab", holder)
    _wait(lambda: live.snapshot().state == "suspended")
    n = live.snapshot().iteration
    assert lot.claim("tab") is holder
    holder.proceed()
    _wait(lambda: live.snapshot().iteration > n + 2)
    assert live.snapshot().state == "running" and live.placement()["worker_pid"] == pid
    # A closed tab: its holder is parked, and when the grace runs out its actor is killed.
    lot = ParkingLot(grace=0.5)
    lot.park("tab", holder)
    _wait(lambda: len(lot) == 0, timeout=30)
    lot.clear()

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    _wait(gone, timeout=30)
    assert live.snapshot().state == "stopped" and not live.alive
    st.cache_resource.clear()
    _page_session()["PARKING"].clear()


SWEEP = ["sweep", "--target", "moons", "--hidden", "8", "--adam-iters", "10", "--batch", "32", "--n-test", "200"]
SWEEP += ["--eval-every", "0", "--quiet", "--vary", "seed=3,4"]


def test_a_sweep_on_ray_matches_a_local_sweep_and_says_where_each_run_trained(ray_address, tmp_path):
    from cnfviz.cli import main

    here, there = tmp_path / "local.json", tmp_path / "ray.json"
    assert main([*SWEEP, "--json", str(here)]) == 0
    assert main([*SWEEP, "--backend", "ray", "--ray-address", ray_address, "--json", str(there)]) == 0
    local, remote = json.loads(here.read_text()), json.loads(there.read_text())
    assert (local["backend"], remote["backend"]) == ("local", "ray")
    assert local["pid"] == remote["pid"] == os.getpid() and remote["ray_address"] == ray_address
    assert remote["ray_stack_size"] == 8 and "ray_stack_size" not in local
    assert len(local["stacks"]) == len(remote["stacks"]) == 1, "one stack of both seeds, here and on Ray"
    assert remote["stacks"][0]["runs"] == local["stacks"][0]["runs"] == ["seed=3", "seed=4"]
    assert remote["runs"][0]["actor_id"] == remote["runs"][1]["actor_id"], "one actor trained the stack"
    assert [r["label"] for r in remote["runs"]] == [r["label"] for r in local["runs"]] == ["seed=3", "seed=4"]
    node = ray.get_runtime_context().get_node_id()
    for a, b in zip(local["runs"], remote["runs"], strict=True):
        assert (a["status"], b["status"]) == ("done", "done")
        assert a["iterations"] == b["iterations"] == 10
        assert b["final_loss"] == pytest.approx(a["final_loss"], rel=1e-4, abs=1e-5)
        assert b["test_nll"] == pytest.approx(a["test_nll"], abs=1e-4)
        assert b["config"] == a["config"]
        assert a["worker_pid"] == os.getpid() and "node_id" not in a
        assert b["worker_pid"] != os.getpid() and b["node_id"] == node  # one node: the test's own head
    assert remote["runs"][0]["final_loss"] != remote["runs"][1]["final_loss"], "two seeds, two runs"


def test_a_sweep_at_an_unreachable_address_is_one_line_and_exit_2_before_training(tmp_path, capsys):
    from cnfviz.cli import main

    out = tmp_path / "never.json"
    with pytest.raises(SystemExit) as err:
        main([*SWEEP, "--backend", "ray", "--ray-address", "127.0.0.1:9", "--json", str(out)])
    assert err.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cnfviz: error: cannot reach the Ray cluster at 127.0.0.1:9")
    assert not out.exists(), "nothing trained, nothing written"
