"""The backend interface without a cluster: the local backend, run records, and Ray's absence by default."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from cnfviz import ConfigError, TrainingJob, default_config
from cnfviz.cli import main
from cnfviz.runtime.backend import BACKENDS, ClusterUnreachable, LocalBackend, make_backend, run_placement, run_record
from cnfviz.runtime.job import JobSlots

ROOT = Path(__file__).resolve().parents[2]


def _page_session() -> dict:
    """The globals of the session module the pages use: collecting ``cnfviz/ui/session.py``'s doctests
    imports a second copy of it under the same name, so ``import cnfviz.ui.session`` may not be that one."""
    import cnfviz.ui  # noqa: F401 - loads the pages' modules

    return sys.modules["cnfviz.ui.cluster_notice"].backend_notice.__globals__


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_importing_cnfviz_and_the_app_session_does_not_import_ray():
    code = (
        "import sys, cnfviz, cnfviz.runtime.backend, cnfviz.cli, cnfviz.ui.session; "
        "from cnfviz.runtime.backend import make_backend; make_backend('local'); "
        "from cnfviz.ui.session import job_backend; print(job_backend().name, 'ray' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if k != "CNFVIZ_RAY_ADDRESS"}
    env["CNFVIZ_BACKEND"] = "local"  # (the process backend's workers import no Ray either: see test_process)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-2:] == ["local", "False"]


def test_local_backend_builds_training_jobs_on_its_slots():
    slots = JobSlots(1)
    backend = LocalBackend(slots)
    job = backend.submit(default_config("normal", adam_iters=3, eval_every=0, n_test=100))
    assert isinstance(job, TrainingJob) and job.slots is slots and not job.alive
    job.start().join(60)
    record = run_record(job)
    assert record["status"] == "done" and record["iterations"] == 3 and record["worker_pid"] == os.getpid()
    assert record["final_loss"] == job.result.summary()["final_loss"]
    assert backend.describe() == {"backend": "local", "pid": os.getpid()}


def test_run_record_of_a_run_still_going_says_its_state():
    job = LocalBackend().submit(default_config("normal", adam_iters=3, eval_every=0, n_test=100))
    record = run_record(job, {"label": "a"})
    assert record["status"] in ("queued", "running") and record["iterations"] == 0 and record["label"] == "a"
    assert run_placement(job) == {"worker_pid": os.getpid()}


def test_unknown_backend_lists_the_choices():
    assert BACKENDS == ("local", "process", "ray")
    with pytest.raises(
        ConfigError, match=r"backend: invalid value \"dask\". Must be one of \['local', 'process', 'ray'\]"
    ):
        make_backend("dask")


def test_unreachable_ray_address_names_it():
    address = f"127.0.0.1:{_free_port()}"
    with pytest.raises(ClusterUnreachable, match=f"cannot reach the Ray cluster at {address}") as err:
        make_backend("ray", address)
    assert err.value.address == address and err.value.field == "ray_address"


@pytest.mark.parametrize("address", ["nonsense", "host:port", ":6379"])
def test_malformed_ray_address_says_what_is_expected(address):
    with pytest.raises(ClusterUnreachable, match="expected host:port"):
        make_backend("ray", address)


def test_cli_json_says_the_run_trained_here(tmp_path):
    out = tmp_path / "run.json"
    args = ["--adam-iters", "3", "--eval-every", "0", "--n-test", "100", "--quiet", "--json", str(out)]
    assert main(["train", "--target", "normal", *args]) == 0
    data = json.loads(out.read_text())
    assert data["backend"] == "local" and data["pid"] == data["worker_pid"] == os.getpid()
    assert "node_id" not in data and data["status"] == "done"


def test_cli_unreachable_ray_address_is_one_line_and_exit_2(capsys):
    address = f"127.0.0.1:{_free_port()}"
    with pytest.raises(SystemExit) as exc:
        main(["train", "--adam-iters", "2", "--quiet", "--backend", "ray", "--ray-address", address])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"cnfviz: error: cannot reach the Ray cluster at {address}") and err.count("\n") == 1


def test_app_falls_back_to_this_server_when_the_cluster_does_not_answer(monkeypatch):
    from streamlit.testing.v1 import AppTest

    import cnfviz.ui.session as session
    from tests.apptest import TRAIN, fresh_caches  # noqa: F401 - an autouse fixture

    address = f"127.0.0.1:{_free_port()}"
    backend, notice = session._choose_backend({"CNFVIZ_RAY_ADDRESS": address, "CNFVIZ_BACKEND": "local"})
    assert backend.name == "local"
    assert notice.startswith(f"cannot reach the Ray cluster at {address}")
    assert notice.endswith("Runs train on this server instead.")
    assert session._choose_backend({"CNFVIZ_BACKEND": "local"})[1] is None
    monkeypatch.setitem(_page_session(), "_backend", [(backend, notice)])
    at = AppTest.from_file(TRAIN, default_timeout=60).run()
    assert not at.exception, at.exception
    assert any(notice in w.value for w in at.warning)


def test_the_app_chooses_its_backend_once_per_process(monkeypatch):
    import cnfviz.ui.session as session

    calls = []

    def choose(environ):
        calls.append(dict(environ))
        return LocalBackend(None), None

    monkeypatch.setattr(session, "_backend", [])
    monkeypatch.setattr(session, "_choose_backend", choose)
    first = session.job_backend({"CNFVIZ_RAY_ADDRESS": "10.0.0.1:6379"})
    again = [session.job_backend() for _ in range(3)]  # reruns, other sessions
    assert all(b is first for b in again) and len(calls) == 1
    assert session.backend_notice() is None


def test_the_planned_stack_key_is_the_key_the_actors_scheduler_will_find():
    from cnfviz import Trainer, make_target
    from cnfviz.runtime.scheduler import planned_stack_key
    from cnfviz.runtime.stack import stack_key

    base = default_config("moons", adam_iters=2, eval_every=0, n_test=50)
    configs = [
        base,
        base.replace(seed=9, lr=3e-3),  # seeds and learning rates stack together
        base.replace(batch_size=32),
        base.replace(n_train=40, batch_size=None),  # a fixed data set, all of it in each batch
        base.replace(model=dataclasses.replace(base.model, hidden=(16,), trace="hutchinson-gaussian")),
        base.replace(solver=dataclasses.replace(base.solver, method="dopri5")),  # adaptive: alone
        base.replace(objective="flow-matching"),  # alone on a CPU
    ]
    keys = []
    for cfg in configs:
        target = make_target(cfg.target)
        keys.append(planned_stack_key(cfg, target))
        assert keys[-1] == stack_key(Trainer(cfg, target=target)), cfg
    assert keys[0] == keys[1] and len({keys[0], keys[2], keys[3], keys[4]}) == 4
    assert keys[5] is None and keys[6] is None
    assert planned_stack_key(base, make_target("moons"), evaluate_only=True) is None  # it trains nothing


def test_a_bad_ray_stack_size_names_its_variable(monkeypatch):
    from cnfviz.runtime.backend import RayBackend

    monkeypatch.setenv("CNFVIZ_RAY_STACK_SIZE", "0")
    expected = r'CNFVIZ_RAY_STACK_SIZE: invalid value "0". Must be an integer in \[1, 1024\]'
    with pytest.raises(ConfigError, match=expected):
        RayBackend("127.0.0.1:9")  # checked before any connection
