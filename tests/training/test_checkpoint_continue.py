"""A checkpoint with its training state continues exactly: train N, save, load, continue M equals N+M in one go
(weights and loss history, same seed) for the likelihood and the flow-matching objectives, on the trainer, on a
job, and on the process backend; a weights-only checkpoint (an older cnfviz's) continues with a fresh optimizer
and says so; a damaged training state is refused by name.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from cnfviz import TrainConfig, Trainer, TrainingJob, load_checkpoint, save_checkpoint
from cnfviz._validation import ConfigError
from cnfviz.runtime.job import FRESH_OPTIMIZER_NOTE
from cnfviz.runtime.process import ProcessBackend
from cnfviz.training.checkpoint import checkpoint_bytes

OBJECTIVES = ["likelihood", "flow-matching"]
N, M = 6, 5


def config(objective: str, **overrides) -> TrainConfig:
    base = {
        "target": "normal",
        "model": {"hidden": (8, 8)},
        "solver": {"method": "rk4", "step_size": 0.25},
        "batch_size": 48,
        "n_train": 300,  # minibatches from a permutation: its position must survive the save too
        "n_test": 200,
        "eval_every": 3,
        "seed": 11,
        "lr": 0.02,
        "objective": objective,
    }
    return TrainConfig(**{**base, **overrides})


def _close(a: list[float] | np.ndarray, b: list[float] | np.ndarray) -> None:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-6, equal_nan=True)


def _weights_close(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert float((sa[k] - sb[k]).abs().max()) <= 1e-6, k


def _job_history(job: TrainingJob) -> dict[str, np.ndarray]:
    return job.snapshot().history


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_stopped_saved_loaded_and_continued_equals_one_go(objective):
    # A cosine schedule over N+M: the continued run must also pick the schedule up at iteration N.
    cfg = config(objective, adam_iters=N + M, lr_decay=True)
    straight = Trainer(cfg)
    straight.run(final_metrics=False)

    first = Trainer(cfg)
    first.callback = lambda rec: first.stop() if rec.iteration == N else None
    assert first.run(final_metrics=False).status == "stopped" and first.history[-1].iteration == N
    job_state = {"trainer": first.training_state(), "round_iters": cfg.adam_iters, "history": _empty_history()}
    buf = io.BytesIO()
    save_checkpoint(buf, first.model, cfg, training=job_state)
    model, loaded_cfg, info = load_checkpoint(buf.getvalue())
    assert loaded_cfg == cfg and info["training"]["trainer"]["adam_done"] == N

    second = Trainer(loaded_cfg, init_state=model.state_dict())
    second.load_training_state(info["training"]["trainer"])
    result = second.run(final_metrics=False)
    assert result.status == "done" and result.iterations == N + M
    records = first.history + second.history
    assert [r.iteration for r in records] == list(range(1, N + M + 1))
    _close([r.loss for r in records], [r.loss for r in straight.history])
    _close([r.lr for r in records], [r.lr for r in straight.history])
    test_nll = [r.test_nll for r in records if r.test_nll is not None]
    _close(test_nll, [r.test_nll for r in straight.history if r.test_nll is not None])
    _weights_close(second.model, straight.model)
    # Not a vacuous equality: the continued part trained (its weights moved from the saved ones).
    assert any(float((second.model.state_dict()[k] - v).abs().max()) > 1e-4 for k, v in model.state_dict().items())


def _empty_history() -> dict[str, torch.Tensor]:
    ints = ("iteration", "nfe", "nfe_iter", "test_iteration")
    names = ("iteration", "loss", "nll", "nfe", "nfe_iter", "elapsed", "test_iteration", "test_nll")
    return {k: torch.zeros(0, dtype=torch.int64 if k in ints else torch.float64) for k in names}


def _loaded_job(data: bytes, **kwargs) -> TrainingJob:
    model, cfg, info = load_checkpoint(data)
    return TrainingJob(
        cfg, init_state=model.state_dict(), evaluate_only=True, resume=info.get("training"), **kwargs
    ).start()


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_a_loaded_job_continues_as_the_saved_run_would_have(objective):
    cfg = config(objective, adam_iters=N)
    straight = TrainingJob(cfg.replace(adam_iters=2 * N), compute_final_metrics=False).start().join(120)
    saved = TrainingJob(cfg, compute_final_metrics=False).start().join(120)
    assert saved.snapshot().state == "done"
    data = checkpoint_bytes(saved.model, cfg, training=saved.training_state())

    loaded = _loaded_job(data, compute_final_metrics=False).join(120)
    snap = loaded.snapshot()
    # Shown as the saved run's end: its iteration and its whole loss history, and Continue allowed.
    assert snap.state == "done" and snap.loaded and snap.can_continue and snap.iteration == N
    _close(snap.history["loss"], saved.snapshot().history["loss"])
    assert loaded.continue_training()
    loaded.join(120)
    got, want = loaded.snapshot(), straight.snapshot()
    assert got.state == "done" and not got.loaded and got.iteration == 2 * N
    for key in ("iteration", "loss", "nll", "nfe", "nfe_iter", "test_iteration", "test_nll"):
        _close(got.history[key], want.history[key])
    _weights_close(loaded.model, straight.model)
    assert FRESH_OPTIMIZER_NOTE not in got.notes


def test_a_weights_only_checkpoint_continues_with_a_fresh_optimizer_and_says_so():
    cfg = config("likelihood", adam_iters=N)
    saved = TrainingJob(cfg, compute_final_metrics=False).start().join(120)
    data = checkpoint_bytes(saved.model, cfg)  # as an older cnfviz wrote them: no training state
    _, _, info = load_checkpoint(data)
    assert "training" not in info
    loaded = _loaded_job(data, compute_final_metrics=False).join(120)
    snap = loaded.snapshot()
    assert snap.state == "done" and snap.can_continue and snap.iteration == 0 and len(snap.history["loss"]) == 0
    assert loaded.training_state() is None  # nothing to save but the weights until it trains
    assert loaded.continue_training()
    loaded.join(120)
    got = loaded.snapshot()
    assert got.state == "done" and got.iteration == N and FRESH_OPTIMIZER_NOTE in got.notes
    # A fresh Adam from the saved weights: its first step is the one a new optimizer takes from there.
    fresh = Trainer(cfg.replace(adam_iters=1), init_state=saved.model.state_dict())
    fresh.run(final_metrics=False)
    _close(got.history["loss"][:1], [fresh.history[0].loss])
    # ...which is not the step the saved run's own optimizer would take (its moments are lost).
    with_state = _loaded_job(checkpoint_bytes(saved.model, cfg, training=saved.training_state()))
    with_state.join(120)
    assert with_state.continue_training()
    with_state.join(120)
    assert abs(with_state.snapshot().history["loss"][N] - got.history["loss"][0]) > 1e-6


def _moments(state: dict) -> dict:
    return state["trainer"]["optimizer"]["state"][0]


def _state_of(objective: str) -> tuple[TrainingJob, TrainConfig]:
    cfg = config(objective, adam_iters=4, eval_every=0)
    return TrainingJob(cfg, compute_final_metrics=False).start().join(120), cfg


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda s: s["trainer"]["optimizer"]["state"][0].update(exp_avg=torch.zeros(3, 3)), "exp_avg of parameter 0"),
        (lambda s: _moments(s).update(exp_avg_sq=torch.full_like(_moments(s)["exp_avg_sq"], float("nan"))), "NaN"),
        (lambda s: s["trainer"].update(adam_done=99), "99 Adam iterations done of 4"),
        (lambda s: s["trainer"].update(data_rng="{}"), "trainer.data_rng"),
        (lambda s: s["trainer"].update(noise=torch.zeros(3)), "trainer.noise"),
        (lambda s: s["history"].update(loss=s["history"]["loss"][:2]), "history.loss has 2 rows"),
        (lambda s: s.pop("history"), "the history must have the keys"),
    ],
)
def test_a_damaged_training_state_is_refused_by_name(damage, words):
    job, cfg = _state_of("likelihood")
    state = job.training_state()
    damage(state)
    with pytest.raises(ConfigError, match=words) as err:
        load_checkpoint(checkpoint_bytes(job.model, cfg, training=state))
    assert err.value.field == "checkpoint.training"


def test_a_checkpoint_with_training_state_is_still_weights_only_and_small():
    job, cfg = _state_of("flow-matching")
    data = checkpoint_bytes(job.model, cfg, training=job.training_state())
    # torch's safe loader reads it (the cnfviz loader uses it), and so does a loader that ignores the state.
    torch.load(io.BytesIO(data), weights_only=True)
    assert load_checkpoint(data)[2]["training"]["history"]["test_iteration"].dtype == torch.int64  # none, yet ints
    weights_only = checkpoint_bytes(job.model, cfg)
    n_params = sum(p.numel() for p in job.model.parameters())
    # The Adam moments are twice the weights; the rest is a few kB.
    assert len(data) - len(weights_only) < 2 * 4 * n_params + 40_000


def test_the_process_backend_continues_a_loaded_checkpoint_exactly():
    cfg = config("flow-matching", adam_iters=N)
    saved = TrainingJob(cfg, compute_final_metrics=False).start().join(120)
    straight = TrainingJob(cfg.replace(adam_iters=2 * N), compute_final_metrics=False).start().join(120)
    model, loaded_cfg, info = load_checkpoint(checkpoint_bytes(saved.model, cfg, training=saved.training_state()))
    backend = ProcessBackend(workers=1, threads=1)
    try:
        job = backend.submit(
            loaded_cfg, init_state=model.state_dict(), evaluate_only=True, resume=info["training"]
        ).start()
        job.join(300)
        assert job.snapshot().state == "done" and job.can_continue and job.snapshot().loaded
        assert job.continue_training()
        job.join(300)
        snap = job.snapshot()
        assert snap.state == "done" and snap.iteration == 2 * N and not snap.loaded
        _close(snap.history["loss"], straight.snapshot().history["loss"])
        _weights_close(job.model, straight.model)
        # Its state comes back from the worker, so the continued run saves with its state again.
        again = job.training_state()
        assert again is not None and again["trainer"]["adam_done"] == 2 * N
        _close(again["history"]["loss"].numpy(), straight.snapshot().history["loss"])
        job.close()
    finally:
        backend.shutdown()


def test_a_loaded_model_whose_training_would_not_fit_the_server_is_not_offered_continue():
    # Shown (its evaluation fits), but its training batch does not: Continue would be refused, so it is not offered.
    cfg = config("likelihood", adam_iters=2, batch_size=1_000_000, n_train=None, eval_every=0)
    with pytest.raises(ConfigError):
        TrainingJob(cfg)
    job = TrainingJob(cfg, init_state=Trainer(cfg.replace(batch_size=8)).model.state_dict(), evaluate_only=True)
    snap = job.start().join(120).snapshot()
    assert snap.state == "done" and not snap.can_continue and not job.continue_training()
    fits = TrainingJob(cfg.replace(batch_size=8), init_state=job.model.state_dict(), evaluate_only=True)
    assert fits.start().join(120).snapshot().can_continue
