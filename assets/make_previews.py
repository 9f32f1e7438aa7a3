"""Regenerate ``assets/previews/``: a small trained result per preset and per built-in target.

The Train page shows one before Train is pressed, as "after training" (see :mod:`cnfviz.ui.preview_data`).
Each is trained by the real engine from the preset's (or the target's default) config, with a smaller
iteration budget and no wall-clock cap, one thread and fixed seeds: the same code gives the same files.

Run from the repository root (a few minutes on one core)::

    python assets/make_previews.py            # all of them
    python assets/make_previews.py moons      # only the entries of that name

A test (``tests/ui/test_preview_data.py``) fails when a preset changes and its preview is not remade.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from cnfviz.figures.views import LIVE_SOLVER, compute_visuals
from cnfviz.training.trainer import Trainer
from cnfviz.ui.preview_data import PREVIEW_DIR, Preview, expected_config, preview_entries, save_preview

MAX_ITERS_2D = 500
"""Adam iterations at most for a 2D preview (a preset's own smaller budget is kept)..."""
MAX_ITERS_1D = 300
"""...and for a 1D one."""
TRAJECTORY_POINTS = 200
TRAJECTORY_TIMES = 21


def make(kind: str, name: str, done: dict[str, Preview]) -> Preview:
    """Train one preview's flow and take its pictures (or reuse those of an entry trained the same way)."""
    config = expected_config(kind, name)
    cap = MAX_ITERS_1D if config.target in ("normal", "mixture") or config.target.startswith("scipy") else MAX_ITERS_2D
    trained = config.replace(
        adam_iters=min(config.adam_iters, cap),
        lbfgs_iters=min(config.lbfgs_iters, 20),
        max_seconds=None,  # a wall-clock cap would make the result depend on the machine's load
        eval_every=0,
        device="cpu",
    )
    same = done.get(trained.to_json())
    if same is not None:
        return Preview(kind, name, config, trained, same.iterations, same.density, same.trajectories, same.density_path)
    torch.manual_seed(0)
    trainer = Trainer(trained)
    result = trainer.run(final_metrics=False)
    model = trainer.model.eval()
    data = trainer.train_data if trainer.train_data is not None else trainer.target.sample(2000, seed=0)
    vis = compute_visuals(model, trainer.target, np.asarray(data)[:2000], result.iterations, seed=trained.seed)
    traj = vis.trajectories
    keep_t = np.linspace(0, len(traj.times) - 1, TRAJECTORY_TIMES).round().astype(int)
    trajectories = type(traj)(traj.times[keep_t], traj.paths[keep_t, :TRAJECTORY_POINTS])
    density = vis.density
    axes, learned, true = density.axes, density.learned, density.true
    if trainer.target.dim == 1:
        # The target's grid, widened to where the flow's samples are: a flow that cannot reach the target (the
        # too-short time span) keeps its mass elsewhere, and the picture (and its integral) should show where.
        samples = np.asarray(density.samples)[:, 0]
        lo = min(float(axes[0][0]), float(np.quantile(samples, 0.001)) - 1.0)
        hi = max(float(axes[0][-1]), float(np.quantile(samples, 0.999)) + 1.0)
        xs = np.linspace(lo, hi, len(axes[0]))
        with torch.no_grad():
            logp = model.log_prob(torch.as_tensor(xs[:, None], dtype=torch.float32), solver=LIVE_SOLVER, trace="exact")
        axes, learned = (xs,), logp.exp().double().numpy()
        true = trainer.target.pdf(xs[:, None]).reshape(-1) if true is not None else None
    density = type(density)(
        axes=axes,
        learned=learned,
        true=true,
        data=np.asarray(density.data)[:500],
        samples=np.asarray(density.samples)[:500],
        true_is_estimate=density.true_is_estimate,
    )
    done[trained.to_json()] = made = Preview(
        kind, name, config, trained, result.iterations, density, trajectories, vis.density_path
    )
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="only these presets/targets (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    total = 0
    done: dict[str, Preview] = {}
    for kind, name in preview_entries():
        if args.names and name not in args.names:
            continue
        start = time.perf_counter()
        path = save_preview(make(kind, name, done))
        size = path.stat().st_size
        total += size
        print(f"{path.name}: {size / 1024:.0f} KiB in {time.perf_counter() - start:.0f} s", flush=True)
    print(f"{total / 1024:.0f} KiB written to {PREVIEW_DIR}")


if __name__ == "__main__":
    main()
