"""Default step time of two revisions side by side: this tree against ``--before REV`` (a git revision).

A refactor must not slow training down. The script checks REV out into a temporary git worktree and
times the default configuration's Adam iterations in fresh processes, alternating the two trees so that
the machine's noise falls on both alike, and prints the medians and their ratio.

    PYTHONPATH=. python benchmarks/bench_step.py --before main~5 --rounds 5

Each measurement uses only names both layouts export (``cnfviz.default_config`` and ``cnfviz.train``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

MEASURE = """
import time, torch
torch.set_num_threads({threads})
from cnfviz import default_config, train
for target in {targets!r}:
    warm = default_config(target, adam_iters=3, eval_every=0, n_test=100)
    train(warm, final_metrics=False)
    cfg = default_config(target, adam_iters={iters}, eval_every=0, n_test=100)
    start = time.perf_counter()
    _, result = train(cfg, final_metrics=False)
    print(target, (time.perf_counter() - start) / result.iterations * 1e3)
"""


def measure(tree: Path, targets: list[str], iters: int, threads: int) -> dict[str, float]:
    """ms per Adam iteration for each target, in a fresh process importing cnfviz from ``tree``."""
    code = MEASURE.format(threads=threads, targets=targets, iters=iters)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    run = subprocess.run([sys.executable, "-c", code], cwd=tree, capture_output=True, text=True, check=True, env=env)
    out = run.stdout
    return {line.split()[0]: float(line.split()[1]) for line in out.splitlines() if line.strip()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the git revision to compare against")
    parser.add_argument("--rounds", type=int, default=5, help="alternating measurements per tree")
    parser.add_argument("--iters", type=int, default=60, help="timed Adam iterations per measurement")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--targets", default="normal,moons")
    args = parser.parse_args()
    targets = args.targets.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp) / "before"
        subprocess.run(["git", "worktree", "add", "-q", "--detach", str(before), args.before], cwd=ROOT, check=True)
        try:
            times: dict[str, dict[str, list[float]]] = {"before": {}, "after": {}}
            for _ in range(args.rounds):
                for label, tree in (("before", before), ("after", ROOT)):
                    for target, ms in measure(tree, targets, args.iters, args.threads).items():
                        times[label].setdefault(target, []).append(ms)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=ROOT, check=True)
    print(f"default config, ms per Adam iteration (median of {args.rounds}, {args.threads} thread(s)):")
    print(f"{'target':<10} {'before':>8} {'after':>8} {'after/before':>13}")
    for target in targets:
        b, a = statistics.median(times["before"][target]), statistics.median(times["after"][target])
        print(f"{target:<10} {b:8.2f} {a:8.2f} {a / b:13.3f}")


if __name__ == "__main__":
    main()
