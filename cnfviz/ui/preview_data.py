"""Pretrained pictures shipped with the app: what a trained flow makes of each preset and built-in target.

The Train page shows one before any click (:mod:`cnfviz.ui.preview`), as "after training", until a live run
replaces it. ``assets/make_previews.py`` trains each with the real engine and writes it here with
:func:`save_preview`; no streamlit in this module, so that script and the tests can use it.

One file per entry, ``assets/previews/<kind>-<name>.npz`` (kind ``preset`` or ``target``; a preset and a
target may share a name). It holds the config it stands for (``config``, JSON, compared with the current
preset so that a stale preview is caught), the config it was trained with (``trained``: the same with a
smaller iteration budget), and the pictures: the density grid, model samples, training data and the
trajectories (float16 where precision does not show).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..figures.views import DensityPathView, DensityView, TrajectoryView
from ..training.config import TrainConfig
from ..training.presets import PRESETS, default_config

__all__ = [
    "PREVIEW_DIR",
    "Preview",
    "expected_config",
    "find_preview",
    "load_preview",
    "preview_entries",
    "preview_path",
    "save_preview",
]

PREVIEW_DIR = Path(__file__).resolve().parents[2] / "assets" / "previews"
"""Where the previews live (in the repository, next to the other assets)."""


@dataclass(frozen=True)
class Preview:
    """One shipped picture of a trained flow.

    ``config``: what it stands for (a preset's or a target's default config); ``trained``: what was trained;
    ``iterations``: how many Adam/LBFGS iterations it had; ``density``, ``trajectories`` and (1D)
    ``density_path``: the same views a live run draws.
    """

    kind: str
    name: str
    config: TrainConfig
    trained: TrainConfig
    iterations: int
    density: DensityView
    trajectories: TrajectoryView
    density_path: DensityPathView | None


def preview_entries() -> list[tuple[str, str]]:
    """Every ``(kind, name)`` that ships a preview: each preset, then each built-in target."""
    from ..targets import target_names

    return [("preset", name) for name in PRESETS] + [("target", name) for name in target_names()]


def expected_config(kind: str, name: str) -> TrainConfig:
    """The config a preview must stand for: the preset's config, or the target's fast defaults."""
    if kind == "preset":
        return PRESETS[name].config
    if kind == "target":
        return default_config(name)
    raise ValueError(f"Invalid preview kind {kind!r}. Must be one of ['preset', 'target']")


def preview_path(kind: str, name: str, directory: Path | None = None) -> Path:
    """The file of one preview."""
    return (directory or PREVIEW_DIR) / f"{kind}-{name}.npz"


def save_preview(preview: Preview, directory: Path | None = None) -> Path:
    """Write ``preview`` compressed (a few tens of KB): grids in float32, points and paths in float16."""
    d, t = preview.density, preview.trajectories
    arrays: dict[str, np.ndarray] = {
        "meta": np.array(
            json.dumps(
                {
                    "kind": preview.kind,
                    "name": preview.name,
                    "config": json.loads(preview.config.to_json()),
                    "trained": json.loads(preview.trained.to_json()),
                    "iterations": preview.iterations,
                    "true_is_estimate": d.true_is_estimate,
                }
            )
        ),
        "axes": np.stack(d.axes).astype(np.float32),
        "learned": d.learned.astype(np.float32),
        "data": d.data.astype(np.float16),
        "samples": d.samples.astype(np.float16),
        "times": t.times.astype(np.float32),
        "paths": t.paths.astype(np.float16),
    }
    if d.true is not None:
        arrays["true"] = d.true.astype(np.float32)
    if preview.density_path is not None:
        p = preview.density_path
        arrays |= {"dp_xs": p.xs.astype(np.float32), "dp_times": p.times.astype(np.float32)}
        arrays["dp_density"] = p.density.astype(np.float16)
    path = preview_path(preview.kind, preview.name, directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path


def load_preview(kind: str, name: str, directory: Path | None = None) -> Preview | None:
    """The shipped preview of a preset or target, or None when there is none (or it cannot be read)."""
    path = preview_path(kind, name, directory)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            f64 = {k: np.asarray(z[k], dtype=np.float64) for k in z.files if k != "meta"}
    except (OSError, ValueError, KeyError):
        return None
    density = DensityView(
        axes=tuple(f64["axes"]),
        learned=f64["learned"],
        true=f64.get("true"),
        data=f64["data"],
        samples=f64["samples"],
        true_is_estimate=bool(meta["true_is_estimate"]),
    )
    path_view = None
    if "dp_xs" in f64:
        path_view = DensityPathView(f64["dp_xs"], f64["dp_times"], f64["dp_density"])
    return Preview(
        kind=meta["kind"],
        name=meta["name"],
        config=TrainConfig.from_json(json.dumps(meta["config"])),
        trained=TrainConfig.from_json(json.dumps(meta["trained"])),
        iterations=int(meta["iterations"]),
        density=density,
        trajectories=TrajectoryView(f64["times"], f64["paths"]),
        density_path=path_view,
    )


def find_preview(config: TrainConfig, directory: Path | None = None) -> tuple[Preview, bool] | None:
    """The preview to show for ``config``: ``(preview, exact)``.

    ``exact`` when a preset's or a target's preview stands for this very config; otherwise the target's
    preview (trained with its fast defaults) when the config names a built-in target with default
    parameters, so the page still shows what a flow makes of it; None when there is none (custom targets,
    scipy distributions, other parameters).
    """
    for kind, name in preview_entries():
        if expected_config(kind, name) == config:
            found = load_preview(kind, name, directory)
            if found is not None and found.config == config:
                return found, True
    if config.target_params:
        return None
    found = load_preview("target", config.target, directory)
    return (found, False) if found is not None else None
