"""Time to quality on the FFJORD toy sets: the original settings against cnfviz's default, same budgets.

For each target and each wall-clock budget (training time; periodic evaluation is off), train both
configurations in this process and measure the NLL on 20,000 fresh samples with an accurate
adaptive solver. The original's published reference on this machine: 8gaussians 3.09 nats after
120 s, pinwheel 2.59-2.63 after 120 s; the best possible on 8gaussians is about 2.84.

    python benchmarks/bench_toy.py [--budgets 12 30 60] [--targets 8gaussians pinwheel] [--seeds 0]
"""

from __future__ import annotations

import argparse

from common import ORIGINAL, budget_run, default_for, print_table, setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[12, 30, 60])
    parser.add_argument("--targets", nargs="+", default=["8gaussians", "pinwheel"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: as the CLI)")
    parser.add_argument("--skip-original", action="store_true", help="only run the cnfviz default")
    args = parser.parse_args()
    threads = setup(args.threads)

    rows = []
    for target in args.targets:
        for budget in args.budgets:
            for seed in args.seeds:
                configs = [("cnfviz default", default_for(target, seed=seed))]
                if not args.skip_original:
                    configs.insert(0, ("original settings", ORIGINAL.replace(target=target, seed=seed)))
                for label, cfg in configs:
                    run = budget_run(label, cfg, budget)
                    rows.append(
                        {
                            "target": target,
                            "budget s": budget,
                            "config": label,
                            "seed": seed,
                            "iterations": run.iterations,
                            "s/iter": run.s_per_it,
                            "NFE fwd": run.nfe,
                            "test NLL": run.test_nll,
                        }
                    )
                    print_table([rows[-1]])
    print_table(rows, f"Test NLL (20,000 fresh samples) after a training budget, {threads} thread(s)")


if __name__ == "__main__":
    main()
