"""Run every benchmark and print its tables: ``python benchmarks/run_all.py [--quick]``.

``--quick`` shortens budgets and seed lists so the whole suite takes a few minutes; the figures
in benchmarks/README.md come from the full run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

FULL = [
    ["bench_seed.py"],
    ["bench_normal1d.py"],
    ["bench_speedup.py", "--pretrain", "30", "--repeats", "7"],
    ["bench_toy.py", "--budgets", "12", "30", "60"],
    ["bench_app.py", "--seconds", "60", "--memory-seconds", "300"],
    ["bench_stop.py", "--repeats", "5"],
    ["bench_classroom.py"],
    ["bench_class.py", "--students", "30", "--ramp", "10", "--stay", "120", "--second-run"],
    ["bench_many_runs.py"],
    ["bench_objectives.py"],
    ["bench_abuse.py"],
]
QUICK = [
    ["bench_seed.py", "--seeds", "0", "1", "2"],
    ["bench_normal1d.py", "--budgets", "5", "--seeds", "0"],
    ["bench_speedup.py", "--pretrain", "8", "--repeats", "3"],
    ["bench_toy.py", "--budgets", "12", "--targets", "8gaussians"],
    ["bench_app.py", "--seconds", "20"],
    ["bench_stop.py", "--repeats", "2"],
    ["bench_classroom.py", "--quick"],
    ["bench_class.py", "--students", "10", "--ramp", "5", "--stay", "40"],
    ["bench_many_runs.py", "--runs", "1", "8", "16", "--iters", "10", "--solo-repeats", "2"],
    ["bench_objectives.py", "--quick"],
    ["bench_abuse.py", "--quick"],
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="*", help="run only these scripts, e.g. bench_seed.py")
    args = parser.parse_args()
    status = 0
    for cmd in QUICK if args.quick else FULL:
        if args.only and cmd[0] not in args.only:
            continue
        if not (HERE / cmd[0]).exists():
            continue
        print(f"\n## {' '.join(cmd)}\n", flush=True)
        status |= subprocess.call([sys.executable, str(HERE / cmd[0]), *cmd[1:]], cwd=HERE)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
