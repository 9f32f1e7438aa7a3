"""The default 1D configuration on Normal(6, 0.7): grid TV against training time.

Goal: grid TV at most 0.01 within 5 s, training on fresh samples (so 100 fixed points do not
set the floor).

    python benchmarks/bench_normal1d.py [--budgets 1 2 5] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse

from common import default_for, median, print_table, setup

from cnfviz import Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[1, 2, 5])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    threads = setup(args.threads)
    rows = []
    for budget in args.budgets:
        for seed in args.seeds:
            trainer = Trainer(default_for("normal", seed=seed, max_seconds=budget))
            result = trainer.run(final_metrics=False)
            m = trainer.evaluate()
            rows.append(
                {
                    "budget s": budget,
                    "seed": seed,
                    "iterations": result.iterations,
                    "grid tv": m.tv,
                    "seed_tv": m.seed_tv,
                    "test NLL": m.test_nll,
                    "∫p": m.integral,
                }
            )
    print_table(rows, f"Default 1D config on Normal(6, 0.7), {threads} thread(s)")
    for budget in args.budgets:
        tvs = [r["grid tv"] for r in rows if r["budget s"] == budget]
        print(f"budget {budget:g} s: median grid TV {median(tvs):.4f}, worst {max(tvs):.4f}")


if __name__ == "__main__":
    main()
