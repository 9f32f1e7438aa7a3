"""Local (threads) against process (worker processes) backends, side by side in one run.

For each backend, on a server that is already warm (the process backend's workers started and imported torch
before the clock starts, as ``warm_server`` does at a server's start-up):

- solo: one default run: time from Train (submit + start) to its first loss point as a page sees it
  (``snapshot()``), and its iterations per second over ``--seconds``;
- stacked: ``--runs`` runs of one shape at once: the iterations per second of each, and of all together;
- the calling (server) process's CPU while the runs train: with the process backend that is only the
  receiver thread keeping the mirrors, the core that a web server keeps for its pages.

A page polls ``snapshot()`` here every ``--poll`` seconds, as the app's fragments do; the time one call takes
is reported too (the process backend answers from its mirror, without a message to the worker).

    PYTHONPATH=. python benchmarks/bench_backends.py --seconds 10 --runs 8
"""

from __future__ import annotations

import argparse
import os
import time

from common import print_table

from cnfviz import default_config
from cnfviz.runtime.backend import LocalBackend
from cnfviz.runtime.housekeeping import warm_up
from cnfviz.runtime.process import ProcessBackend
from cnfviz.runtime.scheduler import Scheduler


def _measure(backend, configs, seconds: float, poll: float) -> dict:
    wall0 = time.perf_counter()
    jobs = [backend.submit(c) for c in configs]
    for job in jobs:
        job.start()
    first: dict[int, float] = {}
    snap_seconds, calls = 0.0, 0
    start_iters: dict[int, tuple[int, float]] = {}
    deadline = None
    while True:
        now = time.perf_counter()
        for i, job in enumerate(jobs):
            t = time.perf_counter()
            snap = job.snapshot()
            snap_seconds += time.perf_counter() - t
            calls += 1
            if i not in first and snap.iteration >= 1:
                first[i] = now - wall0
                start_iters[i] = (snap.iteration, now)
        if deadline is None and len(first) == len(jobs):
            deadline = now + seconds
            cpu_window = (time.process_time(), now)
        if deadline is not None and now >= deadline:
            break
        time.sleep(poll)
    end = time.perf_counter()
    rates = []
    for i, job in enumerate(jobs):
        it0, t0 = start_iters[i]
        rates.append((job.snapshot().iteration - it0) / (end - t0))
    cpu = (time.process_time() - cpu_window[0]) / (end - cpu_window[1])
    for job in jobs:
        job.stop(evaluate=False)
    for job in jobs:
        job.join(60)
        job.close()
    return {
        "first_point_s": max(first.values()),
        "it_per_s_each": sum(rates) / len(rates),
        "it_per_s_total": sum(rates),
        "server_cpu_cores": cpu,
        "snapshot_us": 1e6 * snap_seconds / max(calls, 1),
        "setup_s": wall0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring window per case")
    parser.add_argument("--runs", type=int, default=8, help="runs of one shape in the stacked case")
    parser.add_argument("--target", default="moons")
    parser.add_argument("--poll", type=float, default=0.05, help="seconds between a page's snapshot reads")
    parser.add_argument("--workers", type=int, default=None, help="process backend workers (default: cores - 1)")
    args = parser.parse_args()

    warm_up()
    t = time.perf_counter()
    process = ProcessBackend(workers=args.workers)
    process.warm(300)
    start_up = time.perf_counter() - t
    local = LocalBackend(Scheduler())
    backends = {"local": local, "process": process}

    def configs(n: int) -> list:
        return [default_config(args.target, adam_iters=1_000_000, eval_every=0, seed=s) for s in range(n)]

    rows = []
    for case, n in (("solo", 1), (f"{args.runs} stacked", args.runs)):
        results = {}
        for name, backend in backends.items():
            r = _measure(backend, configs(n), args.seconds, args.poll)
            results[name] = r
            rows.append(
                {
                    "case": case,
                    "backend": name,
                    "first loss point (s)": r["first_point_s"],
                    "it/s per run": r["it_per_s_each"],
                    "it/s all runs": r["it_per_s_total"],
                    "server CPU (cores)": r["server_cpu_cores"],
                    "snapshot() (µs)": r["snapshot_us"],
                }
            )
        ratio = results["process"]["it_per_s_total"] / max(results["local"]["it_per_s_total"], 1e-9)
        rows.append({"case": case, "backend": "process / local", "it/s all runs": ratio})
    print_table(
        rows,
        f"Backends side by side ({os.cpu_count()} cores, {process.workers} worker(s) x {process.threads} thread(s); "
        f"workers warm in {start_up:.1f} s; target {args.target}, {args.seconds:g} s per case)",
    )
    process.shutdown()


if __name__ == "__main__":
    main()
