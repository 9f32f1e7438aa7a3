"""Regenerate the Learn page's precomputed figures: ``python assets/learn/make_learn_assets.py``.

Trains the seed tutorial once per time span and a small 2D flow once per regularizer setting
(a few minutes on one CPU core), then writes ``learn_assets.npz`` next to this script. ``--tiny``
runs the same code on toy-sized configurations in seconds, for tests.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from cnfviz import ModelConfig, SolverConfig
from cnfviz.features.learn import (
    REGULARIZER_CONFIG,
    REGULARIZER_SETTINGS,
    TIME_SPAN_CONFIG,
    LearnAssets,
    build_learn_assets,
    save_learn_assets,
)

__all__ = ["DEFAULT_PATH", "build", "main"]

DEFAULT_PATH = Path(__file__).resolve().parent / "learn_assets.npz"


def build(*, tiny: bool = False, verbose: bool = True) -> LearnAssets:
    """Build the assets with the page's configurations, or with toy-sized ones when ``tiny``."""
    say = print if verbose else None
    if not tiny:
        return build_learn_assets(progress=say)
    return build_learn_assets(
        TIME_SPAN_CONFIG.replace(adam_iters=3, lbfgs_iters=0),
        (1.0, 10.0),
        REGULARIZER_CONFIG.replace(
            model=ModelConfig(hidden=(8,), tspan=(0.0, 1.0)),
            solver=SolverConfig("rk4", step_size=0.5),
            adam_iters=3,
            batch_size=32,
            n_test=50,
        ),
        {"none": (0.0, 0.0), "kinetic": REGULARIZER_SETTINGS["kinetic"]},
        n_eval=50,
        progress=say,
    )


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_PATH, help="where to write the .npz file")
    parser.add_argument("--tiny", action="store_true", help="toy-sized runs (seconds), for tests")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (small nets: 1 is fastest)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    assets = build(tiny=args.tiny, verbose=not args.quiet)
    path = save_learn_assets(assets, args.out)
    if not args.quiet:
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB) in {time.perf_counter() - start:.0f} s")
        print(
            f"time-span ends {[r.t1 for r in assets.time_span]}, regularizers {[r.name for r in assets.regularizers]}"
        )
    return path


if __name__ == "__main__":
    main()
