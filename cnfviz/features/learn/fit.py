"""Training a flow for a precomputed lesson (§4–§6), and turning its tensors into arrays."""

from __future__ import annotations

import numpy as np
from torch import Tensor

from ...flow.ffjord import FFJORD
from ...training.config import TrainConfig
from ...training.trainer import Trainer

__all__ = ["fit"]


def fit(config: TrainConfig) -> tuple[FFJORD, Trainer]:
    """Train a flow for a demo; returns the model and its trainer (for the data it saw).

    Raises:
        RuntimeError: when training failed; a demo built on a broken model would teach the wrong thing.
    """
    trainer = Trainer(config)
    result = trainer.run(final_metrics=False)
    if result.status == "failed":
        raise RuntimeError(f"training for the Learn page failed: {result.reason}")
    return trainer.model, trainer


def _numpy(x: Tensor) -> np.ndarray:
    return x.detach().double().cpu().numpy()
