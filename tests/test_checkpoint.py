"""Checkpoints round-trip exactly and refuse anything that is not one."""

import numpy as np
import pytest
import torch

from cnfviz import ConfigError, TrainConfig, Trainer, checkpoint_bytes, load_checkpoint, save_checkpoint
from cnfviz.checkpoint import FORMAT


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
