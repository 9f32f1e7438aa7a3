"""Checkpoints round-trip exactly and refuse anything that is not one."""

import io
import os
import pickle

import numpy as np
import pytest
import torch

from cnfviz import ConfigError, TrainConfig, Trainer, load_checkpoint, save_checkpoint
from cnfviz.training.checkpoint import FORMAT, checkpoint_bytes


@pytest.fixture(scope="module")
def trained():
    cfg = TrainConfig(
        target="moons",
        model={"hidden": (8, 8)},
        solver={"method": "rk4", "step_size": 0.25},
        adam_iters=3,
        eval_every=0,
        batch_size=32,
    )
    trainer = Trainer(cfg)
    trainer.run(final_metrics=False)
    return trainer


def test_save_and_load_round_trip_exactly(trained, tmp_path):
    path = tmp_path / "flow.pt"
    save_checkpoint(path, trained.model, trained.config, extra={"tv": 0.1})
    model, config, info = load_checkpoint(path)
    assert config == trained.config and info["extra"] == {"tv": 0.1}
    for a, b in zip(model.state_dict().values(), trained.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    x = torch.randn(20, 2)
    torch.testing.assert_close(model.log_prob(x), trained.model.log_prob(x), rtol=0, atol=0)


def test_bytes_round_trip_and_custom_target_data(trained):
    data = np.random.default_rng(0).normal(size=(30, 2))
    _, _, info = load_checkpoint(checkpoint_bytes(trained.model, trained.config, target_data=data))
    np.testing.assert_array_equal(info["target_data"], data)


def test_loading_uses_weights_only(trained, tmp_path, monkeypatch):
    seen = {}
    real = torch.load

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    path = tmp_path / "flow.pt"
    save_checkpoint(path, trained.model, trained.config)
    load_checkpoint(path)
    assert seen["weights_only"] is True


def test_bad_files_give_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ConfigError, match="not a readable cnfviz checkpoint"):
        load_checkpoint(junk)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(ConfigError, match=f"expected format '{FORMAT}'"):
        load_checkpoint(other)


# --------------------------------------------------------------------------------------------------
# Hardening: every bad file is a ConfigError that says what is wrong
# --------------------------------------------------------------------------------------------------


class _Payload:
    """A pickle that runs a shell command when unpickled: it writes ``path``."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def _resaved(trained, change) -> bytes:
    """A real checkpoint, loaded as plain data, changed by ``change(payload)`` and saved again."""
    payload = torch.load(io.BytesIO(checkpoint_bytes(trained.model, trained.config)), weights_only=True)
    change(payload)
    buf = io.BytesIO()
    torch.save(payload, buf)
    return buf.getvalue()


def test_random_bytes_and_text_are_not_checkpoints():
    noise = np.random.default_rng(0).integers(0, 256, size=4096, dtype=np.uint8).tobytes()
    with pytest.raises(ConfigError, match="not a readable cnfviz checkpoint: the file is unrecognised binary data"):
        load_checkpoint(noise)
    with pytest.raises(ConfigError, match="the file is a text file; expected a cnfviz checkpoint"):
        load_checkpoint(b"x,y\n1,2\n")
    with pytest.raises(ConfigError, match="the checkpoint file is empty"):
        load_checkpoint(b"")


def test_a_truncated_checkpoint_says_it_was_cut_short(trained):
    good = checkpoint_bytes(trained.model, trained.config)
    with pytest.raises(ConfigError, match=f"cut short or damaged \\({len(good) // 2:,} bytes"):
        load_checkpoint(good[: len(good) // 2])


@pytest.mark.parametrize("wrapped", [False, True], ids=["bare-pickle", "inside-torch-save"])
def test_a_pickle_with_code_is_refused_and_never_run(tmp_path, wrapped):
    marker = tmp_path / "pwned"
    if wrapped:
        buf = io.BytesIO()
        torch.save({"format": FORMAT, "state_dict": _Payload(marker)}, buf)
        data = buf.getvalue()
    else:
        data = pickle.dumps(_Payload(marker))
    with pytest.raises(ConfigError, match="refused to load the checkpoint: it contains code") as err:
        load_checkpoint(data)
    assert "system" in str(err.value), "the message names what it would have called"
    assert "Traceback" not in str(err.value) and "weights_only" not in str(err.value)
    assert not marker.exists(), "the payload never ran"


def test_weights_from_another_network_are_named(trained):
    def wider(payload):
        payload["config"]["model"]["hidden"] = [16, 16]

    with pytest.raises(ConfigError, match=r"do not match its config \(dim 2, model.hidden \(16, 16\)\)") as err:
        load_checkpoint(_resaved(trained, wider))
    assert "has shape (8, " in str(err.value) and "where (16, " in str(err.value)


def test_an_invalid_config_inside_keeps_its_message(trained):
    def bad_lr(payload):
        payload["config"]["lr"] = -1.0

    with pytest.raises(ConfigError, match=r"^checkpoint config: lr must be in \(0, 10\] \(got -1.0\)$"):
        load_checkpoint(_resaved(trained, bad_lr))

    def unknown_field(payload):
        payload["config"]["colour"] = "red"

    with pytest.raises(ConfigError, match=r"^checkpoint config: config: unknown field\(s\) \['colour'\]"):
        load_checkpoint(_resaved(trained, unknown_field))


def test_a_dim_that_is_not_its_targets(trained):
    def one(payload):
        payload["dim"] = 1

    with pytest.raises(ConfigError, match="checkpoint dim is 1, but its target moons is 2D"):
        load_checkpoint(_resaved(trained, one))

    def junk(payload):
        payload["dim"] = "two"

    with pytest.raises(ConfigError, match=r"checkpoint dim must be an integer in \[1, 64\] \(got 'two'\)"):
        load_checkpoint(_resaved(trained, junk))


def test_nan_weights_are_refused(trained):
    def poison(payload):
        name = next(iter(payload["state_dict"]))
        payload["state_dict"][name] = torch.full_like(payload["state_dict"][name], float("nan"))

    with pytest.raises(ConfigError, match=r"weights hold NaN or infinite values .*had diverged"):
        load_checkpoint(_resaved(trained, poison))


def test_the_size_cap_is_checked_before_reading(trained, tmp_path, monkeypatch):
    path = tmp_path / "flow.pt"
    save_checkpoint(path, trained.model, trained.config)
    size = path.stat().st_size
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("read a file over the cap"))
    with pytest.raises(ConfigError, match=f"larger than the limit of 1,000 bytes .*has {size:,} bytes"):
        load_checkpoint(path, max_bytes=1000)
    with pytest.raises(ConfigError, match="larger than the limit of 1,000 bytes"):
        load_checkpoint(path.read_bytes(), max_bytes=1000)
    with pytest.raises(ConfigError, match="larger than the limit of 1,000 bytes"), path.open("rb") as fh:
        load_checkpoint(fh, max_bytes=1000)


def test_expect_refuses_another_architecture_and_lists_the_fields(trained):
    data = checkpoint_bytes(trained.model, trained.config)
    _, config, _ = load_checkpoint(data, expect=trained.config.replace(lr=0.5, adam_iters=9))
    assert config == trained.config, "training settings may differ; only the network counts"
    expect = TrainConfig(target="normal", model={"hidden": (8, 8), "activation": "softplus"})
    with pytest.raises(ConfigError, match="network differs from the expected one") as err:
        load_checkpoint(data, expect=expect)
    message = str(err.value)
    assert "dim is 2 (expected 1)" in message
    assert "model.activation is 'tanh' (expected 'softplus')" in message
    assert "model.hidden" not in message, "equal fields are not listed"


def test_custom_target_data_must_fit_the_dim(trained):
    def flat(payload):
        payload["target_data"] = torch.zeros(30)

    with pytest.raises(ConfigError, match=r"target_data must be samples of shape \(n, 2\) \(got \(30,\)\)"):
        load_checkpoint(_resaved(trained, flat))


def test_a_flow_matching_checkpoint_keeps_its_objective_and_weights():
    from cnfviz import default_config

    trained = Trainer(default_config("moons", objective="ot-flow-matching", adam_iters=3, eval_every=0))
    trained.run(final_metrics=False)
    model, config, _ = load_checkpoint(checkpoint_bytes(trained.model, trained.config))
    assert config == trained.config and config.objective == "ot-flow-matching"
    for name, value in trained.model.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
