"""The precomputed lessons (§4–§6): built by training, stored in one ``.npz`` file, refused when stale."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from ...training.config import TrainConfig
from .fit import fit
from .regularizers import REGULARIZER_SETTINGS, RegularizerRun, regularizer_run
from .regularizers import regularizer_config as _regularizer_config
from .sampling import SamplingDemo, sampling_demo
from .time_span import TIME_SPAN_CONFIG, TIME_SPAN_ENDS, TimeSpanRun, time_span_run

__all__ = ["ASSET_VERSION", "LearnAssets", "build_learn_assets", "load_learn_assets", "save_learn_assets"]

# Bump when the stored layout changes, so the page refuses stale files instead of misreading them.
ASSET_VERSION = 1


@dataclass(frozen=True)
class LearnAssets:
    """Everything the Learn page precomputes: ``meta`` holds the configs (as dicts) and timings."""

    time_span: tuple[TimeSpanRun, ...]
    regularizers: tuple[RegularizerRun, ...]
    sampling: SamplingDemo
    meta: dict[str, Any]

    def time_span_for(self, t1: float) -> TimeSpanRun:
        """The run whose end time is ``t1``."""
        for run in self.time_span:
            if math.isclose(run.t1, t1):
                return run
        raise KeyError(f"no time-span run with t1 = {t1}; have {[r.t1 for r in self.time_span]}")

    def regularizer_for(self, name: str) -> RegularizerRun:
        """The run trained with the setting ``name``."""
        for run in self.regularizers:
            if run.name == name:
                return run
        raise KeyError(f'no regularizer run "{name}"; have {[r.name for r in self.regularizers]}')


def build_learn_assets(
    time_span_config: TrainConfig = TIME_SPAN_CONFIG,
    time_span_ends: Sequence[float] = TIME_SPAN_ENDS,
    regularizer_config: TrainConfig | None = None,
    regularizer_settings: Mapping[str, tuple[float, float]] = REGULARIZER_SETTINGS,
    *,
    n_eval: int = 500,
    progress: Callable[[str], None] | None = None,
) -> LearnAssets:
    """Train every flow the Learn page shows and measure it.

    Arguments:
        time_span_config: 1D run trained once per entry of ``time_span_ends``.
        time_span_ends: end times t1.
        regularizer_config: 2D run trained once per entry of ``regularizer_settings``
            (default: :func:`~cnfviz.features.learn.regularizers.regularizer_config`).
        regularizer_settings: name -> (lambda_kinetic, lambda_jacobian); must include ``"none"``,
            whose model also serves the sampling demo.
        n_eval: held-out points for the regularizer measures and the sampling demo.
        progress: called with a line of text after each run.
    """
    if "none" not in regularizer_settings:
        raise ValueError(f'regularizer_settings must include "none" (got {list(regularizer_settings)})')
    say = progress or (lambda _: None)
    regularizer_config = regularizer_config or _regularizer_config()
    spans = []
    for t1 in time_span_ends:
        run = time_span_run(time_span_config, t1)
        say(f"time span (0, {t1:g}): seed TV {run.seed_tv:.4f}, NLL {run.nll:.3f}, {run.seconds:.1f} s")
        spans.append(run)
    regs = []
    sampling = None
    for name, (lk, lj) in regularizer_settings.items():
        start = time.perf_counter()
        model, trainer = fit(regularizer_config.replace(lambda_kinetic=lk, lambda_jacobian=lj))
        seconds = time.perf_counter() - start
        held_out = trainer.test_data[:n_eval]
        run = regularizer_run(name, model, (lk, lj), held_out, seconds=seconds)
        say(
            f"regularizer {name}: λ₁ {run.kinetic:.3f}, λ₂ {run.jacobian:.3f}, NLL {run.nll:.3f}, "
            f"NFE {run.nfe}, straightness {run.straightness:.4f}, {seconds:.1f} s"
        )
        regs.append(run)
        if name == "none":
            sampling = sampling_demo(model, held_out)
    assert sampling is not None
    meta = {
        "version": ASSET_VERSION,
        "time_span_config": time_span_config.to_dict(),
        "regularizer_config": regularizer_config.to_dict(),
        "regularizer_target": regularizer_config.target,
    }
    return LearnAssets(tuple(spans), tuple(regs), sampling, meta)


def _pack(prefix: str, obj: Any, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """Split a dataclass into arrays (stored under ``prefix.field``) and JSON-able scalars (returned)."""
    scalars = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, np.ndarray):
            # float32 halves the file; the figures cannot show the difference.
            arrays[f"{prefix}.{f.name}"] = value.astype(np.float32) if value.dtype.kind == "f" else value
        else:
            scalars[f.name] = value
    return scalars


def _unpack(cls: type, prefix: str, arrays: Any, scalars: dict[str, Any]) -> Any:
    values = dict(scalars)
    for f in fields(cls):
        key = f"{prefix}.{f.name}"
        if key in arrays:
            values[f.name] = np.asarray(arrays[key], dtype=np.float64)
    return cls(**values)


def save_learn_assets(assets: LearnAssets, path: str | Path) -> Path:
    """Write ``assets`` to one ``.npz`` file (arrays plus a JSON header); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    header = {
        "meta": assets.meta,
        "time_span": [_pack(f"time_span.{i}", r, arrays) for i, r in enumerate(assets.time_span)],
        "regularizers": [_pack(f"regularizers.{i}", r, arrays) for i, r in enumerate(assets.regularizers)],
        "sampling": _pack("sampling", assets.sampling, arrays),
    }
    with path.open("wb") as fh:
        np.savez_compressed(fh, header=np.array(json.dumps(header)), **arrays)
    return path


def load_learn_assets(path: str | Path) -> LearnAssets:
    """Read a file written by :func:`save_learn_assets`.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file was written by another :data:`ASSET_VERSION`.
    """
    with np.load(Path(path), allow_pickle=False) as npz:
        header = json.loads(str(npz["header"]))
        version = header["meta"].get("version")
        if version != ASSET_VERSION:
            raise ValueError(f"Learn assets have version {version}, expected {ASSET_VERSION}: regenerate them")
        return LearnAssets(
            time_span=tuple(_unpack(TimeSpanRun, f"time_span.{i}", npz, s) for i, s in enumerate(header["time_span"])),
            regularizers=tuple(
                _unpack(RegularizerRun, f"regularizers.{i}", npz, s) for i, s in enumerate(header["regularizers"])
            ),
            sampling=_unpack(SamplingDemo, "sampling", npz, header["sampling"]),
            meta=header["meta"],
        )
