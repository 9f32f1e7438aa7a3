"""The seed tutorial end to end: wall time and the tutorial's total-variation figure, over seeds.

The DiffEqFlux tutorial reports seed_tv = 0.0314 (its docs build takes about a minute per LBFGS
iteration). Goal here: the whole recipe in at most 2 s of training, median seed_tv at most 0.0314.

    python benchmarks/bench_seed.py [--seeds 0 1 2 ... 9]
"""

from __future__ import annotations

import argparse
import time

from common import median, print_table, setup

from cnfviz import Trainer
from cnfviz.training.presets import SEED_CONFIG


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    threads = setup(args.threads)
    rows = []
    for seed in args.seeds:
        start = time.perf_counter()
        trainer = Trainer(SEED_CONFIG.replace(seed=seed))
        result = trainer.run(final_metrics=False)
        wall = time.perf_counter() - start
        metrics = trainer.evaluate()
        rows.append(
            {
                "seed": seed,
                "train s": result.train_seconds,
                "wall s (build+train)": wall,
                "iterations": result.iterations,
                "NFE fwd": result.history[-1].nfe_forward,
                "final loss": result.history[-1].loss,
                "seed_tv": metrics.seed_tv,
                "grid tv": metrics.tv,
            }
        )
    print_table(rows, f"Seed preset, {threads} thread(s)")
    print(
        f"\nmedian train time {median([r['train s'] for r in rows]):.2f} s, "
        f"median seed_tv {median([r['seed_tv'] for r in rows]):.4f} "
        f"(tutorial: 0.0314), worst {max(r['seed_tv'] for r in rows):.4f}"
    )


if __name__ == "__main__":
    main()
