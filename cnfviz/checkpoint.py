"""Save and load trained flows: the state_dict plus the config, loaded with ``weights_only=True``."""

from __future__ import annotations

import io
import os
from typing import IO, Any

import numpy as np
import torch

from ._validation import ConfigError
from .config import TrainConfig
from .ffjord import FFJORD

__all__ = ["FORMAT", "checkpoint_bytes", "load_checkpoint", "save_checkpoint"]

FORMAT = "cnfviz-checkpoint-v1"


def _payload(model: FFJORD, config: TrainConfig, extra: dict[str, Any] | None, target_data: np.ndarray | None) -> dict:
    payload: dict[str, Any] = {
        "format": FORMAT,
        "dim": model.dim,
        "config": config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": extra or {},
    }
    if target_data is not None:
        # Custom targets (samples, images) have no name to rebuild them from, so their data travels along.
        payload["target_data"] = torch.as_tensor(np.asarray(target_data, dtype=np.float64))
    return payload


def save_checkpoint(
    path: str | os.PathLike | IO[bytes],
    model: FFJORD,
    config: TrainConfig,
    *,
    extra: dict[str, Any] | None = None,
    target_data: np.ndarray | None = None,
) -> None:
    """Write ``model`` and the ``config`` it was trained with. ``extra`` holds JSON-like metadata (metrics)."""
    torch.save(_payload(model, config, extra, target_data), path)


def checkpoint_bytes(model: FFJORD, config: TrainConfig, **kwargs: Any) -> bytes:
    """The checkpoint as bytes, e.g. for a download button."""
    buf = io.BytesIO()
    save_checkpoint(buf, model, config, **kwargs)
    return buf.getvalue()


def load_checkpoint(
    path: str | os.PathLike | IO[bytes] | bytes, *, device: str | torch.device = "cpu"
) -> tuple[FFJORD, TrainConfig, dict[str, Any]]:
    """Load a checkpoint without unpickling arbitrary objects.

    Returns:
        ``(model, config, info)`` where info has ``extra`` and, for custom targets, ``target_data``.

    Raises:
        ConfigError: when the file is missing, not a cnfviz checkpoint, or inconsistent.
    """
    if isinstance(path, bytes):
        path = io.BytesIO(path)
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise ConfigError(f"checkpoint not found: {path}") from None
    except Exception as err:
        raise ConfigError(f"not a readable cnfviz checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ConfigError(f"not a cnfviz checkpoint (expected format {FORMAT!r})")
    config = TrainConfig.from_dict(payload["config"])
    model = FFJORD(int(payload["dim"]), config.model, config.solver)
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        raise ConfigError(f"checkpoint weights do not match its config: {err}") from None
    model.to(device).eval()
    info = {"extra": payload.get("extra", {})}
    if "target_data" in payload:
        info["target_data"] = payload["target_data"].numpy()
    return model, config, info
