"""The Ray backend against the local one, side by side on one machine: throughput, snapshot round trip, Stop.

Starts a local Ray head in this process (``ray.init``, ``--cpus`` CPUs, no dashboard) and measures:

1. Throughput of 1 run: training iterations per second of training time (the worker's own clock) and per
   second of wall-clock time from submit to the end (which adds, on Ray, starting the actor's process),
   local and Ray alternately, ``--repeats`` times each.
2. Throughput of 8 runs at once: local jobs on a ``JobSlots(cpus)`` cap vs 8 Ray actors of 1 CPU each on a
   ``cpus``-CPU head (both train ``cpus`` runs at a time); total iterations / wall-clock seconds.
   Then 8 runs of one shape as one stack: in one Ray stack actor (1 CPU, one torch thread) vs a local
   ``Scheduler`` pinned to one torch thread, alternately; total iterations per second of wall clock (from
   submit, so Ray's includes starting the actor) and of training time (the stack's span), the largest
   stacked round, and the stack actor's resident memory.
3. Snapshot round trip while a run trains: local ``TrainingJob.snapshot()`` vs a Ray poll (request, the
   actor's snapshot, only the new history, back), p50/p95, and the bytes each poll carries at the page's
   polling interval (the traffic of one student's open tab).
4. Stop latency: from ``stop()`` to the run having ended, as the client sees it.
5. Memory: the resident size of a run's actor process.

    python benchmarks/bench_ray.py --repeats 2
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import time

import numpy as np
import ray
from common import median, print_table, setup

from cnfviz import default_config
from cnfviz.runtime.backend import LocalBackend, RayBackend
from cnfviz.runtime.job import JobSlots
from cnfviz.runtime.ray.cluster import start_loopback_head
from cnfviz.runtime.scheduler import Scheduler
from cnfviz.ui.views import POLL_SECONDS


def _wait(condition, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError
        time.sleep(0.01)


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _one_run(backend, cfg) -> dict:
    t0 = time.perf_counter()
    job = backend.submit(cfg).start()
    while job.alive:  # the page's way: poll, then wait
        job.snapshot()
        job.join(POLL_SECONDS)
    wall = time.perf_counter() - t0
    r = job.result
    return {"its_train": r.iterations / r.train_seconds, "its_wall": r.iterations / wall, "wall": wall}


def _many_runs(backend, cfg, n: int) -> float:
    t0 = time.perf_counter()
    jobs = [backend.submit(cfg.replace(seed=cfg.seed + i)).start() for i in range(n)]
    while any(j.alive for j in jobs):
        for j in jobs:
            j.snapshot()
        time.sleep(POLL_SECONDS)
    wall = time.perf_counter() - t0
    total = sum(j.result.iterations for j in jobs)
    assert all(j.result.status == "done" for j in jobs), [j.result.reason for j in jobs]
    return total / wall


def _stack_runs(backend, cfg, n: int, scheduler: Scheduler | None = None) -> dict:
    """``n`` runs of one shape (seeds differ) submitted at once to ``backend``, which stacks them."""
    t0 = time.perf_counter()
    jobs = [backend.submit(cfg.replace(seed=cfg.seed + i)).start() for i in range(n)]
    rss, stats = 0.0, {}
    while any(j.alive for j in jobs):
        for j in jobs:
            j.snapshot()
        if scheduler is None and jobs[0].alive and jobs[0].placement():
            try:  # the actor's own view of its stack, and its memory with all n runs in it
                stats = ray.get(jobs[0]._actor.stats.remote(), timeout=5)
                rss = max(rss, _rss_mb(jobs[0].placement()["worker_pid"]))
            except (ray.exceptions.RayError, OSError):
                pass  # the actor is being let go: keep the last figures
        time.sleep(POLL_SECONDS)
    wall = time.perf_counter() - t0
    assert all(j.result.status == "done" for j in jobs), [j.result.reason for j in jobs]
    if scheduler is not None:
        stats = scheduler.stats()
    else:
        actors = {j.placement()["actor_id"] for j in jobs}
        assert len(actors) == 1, f"{n} runs of one shape went to {len(actors)} actors"
    total = sum(j.result.iterations for j in jobs)
    span = max(j.result.train_seconds for j in jobs)
    return {
        "its_wall": total / wall,
        "its_train": total / span,
        "per_run": statistics.mean(j.result.iterations / j.result.train_seconds for j in jobs),
        "wall": wall,
        "largest_round": stats.get("largest_round", 0),
        "rss_mib": rss,
    }


def _percentiles(xs: list[float]) -> tuple[float, float]:
    a = np.asarray(xs) * 1000
    return float(np.percentile(a, 50)), float(np.percentile(a, 95))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--iters", type=int, default=80, help="iterations of each 1-run measurement")
    ap.add_argument("--iters8", type=int, default=30, help="iterations of each of the 8 runs")
    ap.add_argument("--stack-iters", type=int, default=30, help="iterations of each of the 8 stacked runs")
    ap.add_argument("--polls", type=int, default=200)
    ap.add_argument("--cpus", type=int, default=2)
    args = ap.parse_args()

    setup(1)
    t = time.perf_counter()
    start_loopback_head(args.cpus)  # on 127.0.0.1 only, never the machine's private-range address
    print(f"ray {ray.__version__}: local head with {args.cpus} CPUs up in {time.perf_counter() - t:.1f} s")
    address = ray.get_runtime_context().gcs_address
    remote = RayBackend(address, stacking=False)  # one actor per run (sections 1 to 4); stacks: section 2b
    local = LocalBackend()
    cfg = default_config("moons", adam_iters=args.iters, eval_every=0, n_test=500)

    # 1. One run, alternately.
    rows, ratios = [], {"its_train": [], "its_wall": []}
    for rep in range(args.repeats):
        a = _one_run(local, cfg)
        b = _one_run(remote, cfg)
        for k in ratios:
            ratios[k].append(b[k] / a[k])
        rows += [{"rep": rep, "backend": "local", **a}, {"rep": rep, "backend": "ray", **b}]
    print_table(rows, f"1 run: moons, {args.iters} Adam iterations (its/s; wall includes starting the run)")
    print(
        f"\n1 run, Ray / local throughput: training time {median(ratios['its_train']):.3f}, "
        f"wall clock {median(ratios['its_wall']):.3f} (medians of {args.repeats})"
    )

    # 2. Eight runs at once, the cap = the head's CPUs on both sides.
    cfg8 = cfg.replace(adam_iters=args.iters8)
    slots = LocalBackend(JobSlots(args.cpus))
    r8 = []
    for _ in range(max(1, args.repeats - 1)):
        a = _many_runs(slots, cfg8, 8)
        b = _many_runs(remote, cfg8, 8)
        r8.append(b / a)
        print(f"8 runs x {args.iters8} its, {args.cpus} at a time: local {a:.2f} its/s, Ray {b:.2f} its/s")
    print(f"8 runs, Ray / local throughput (wall clock): {median(r8):.3f}")

    # 2b. Eight runs of one shape as one stack: one Ray stack actor vs a local scheduler, one torch thread each.
    cfgs = cfg.replace(adam_iters=args.stack_iters)
    stacked = RayBackend(address)  # stacks: the app's and the CLI's default
    rows, wall_ratios, train_ratios = [], [], []
    for rep in range(max(1, args.repeats - 1)):
        scheduler = Scheduler(threads=1)
        a = _stack_runs(LocalBackend(scheduler), cfgs, 8, scheduler)
        b = _stack_runs(stacked, cfgs, 8)
        wall_ratios.append(b["its_wall"] / a["its_wall"])
        train_ratios.append(b["its_train"] / a["its_train"])
        rows += [{"rep": rep, "backend": "local stack", **a}, {"rep": rep, "backend": "ray stack actor", **b}]
    print_table(
        rows,
        f"8 runs of one shape x {args.stack_iters} its as one stack, one torch thread (its/s: all runs' iterations; "
        "per_run: each run's own rate; rss_mib: the Ray stack actor's)",
    )
    print(
        f"\n8 stacked runs, Ray / local throughput: wall clock {median(wall_ratios):.3f}, "
        f"training time {median(train_ratios):.3f} (medians of {len(wall_ratios)})"
    )

    # 3. Snapshot round trip while training, and bytes per poll at the page's interval.
    long = cfg.replace(adam_iters=1_000_000)
    ljob = local.submit(long).start()
    _wait(lambda: ljob.snapshot().iteration >= 3)
    lat_local = []
    for _ in range(args.polls):
        t = time.perf_counter()
        ljob.snapshot()
        lat_local.append(time.perf_counter() - t)
        time.sleep(0.02)
    ljob.stop(evaluate=False)
    ljob.join(30)

    rjob = remote.submit(long).start()
    _wait(lambda: rjob.snapshot().iteration >= 3)
    lat_ray = []
    for _ in range(args.polls):
        t = time.perf_counter()
        data = ray.get(rjob._actor.poll.remote(rjob._have()))  # what snapshot() does, without its timeout
        lat_ray.append(time.perf_counter() - t)
        rjob._apply(data, ray)
        time.sleep(0.02)
    sizes, t_end = [], time.monotonic() + 20 * POLL_SECONDS
    while time.monotonic() < t_end:
        data = ray.get(rjob._actor.poll.remote(rjob._have()))
        sizes.append(len(pickle.dumps(data)))
        rjob._apply(data, ray)
        time.sleep(POLL_SECONDS)
    full = len(pickle.dumps(ray.get(rjob._actor.poll.remote({}))))  # everything: history, plots, weights
    rss = _rss_mb(rjob.placement()["worker_pid"])
    its = rjob.snapshot().its_per_sec
    p50l, p95l = _percentiles(lat_local)
    p50r, p95r = _percentiles(lat_ray)
    print_table(
        [
            {"backend": "local", "p50 ms": p50l, "p95 ms": p95l},
            {"backend": "ray", "p50 ms": p50r, "p95 ms": p95r},
        ],
        f"snapshot round trip while training ({args.polls} polls each, 20 ms apart)",
    )
    print(
        f"\nRay poll every {POLL_SECONDS} s: median {statistics.median(sizes) / 1024:.1f} KiB, "
        f"max {max(sizes) / 1024:.1f} KiB, mean {statistics.mean(sizes) / POLL_SECONDS / 1024:.1f} KiB/s "
        f"(a full poll with plots and weights: {full / 1024:.1f} KiB) "
        f"per open tab at {its:.1f} its/s; actor process RSS {rss:.0f} MiB (driver RSS {_rss_mb(os.getpid()):.0f} MiB)"
    )

    # 4. Stop latency: stop() until the client sees the run ended.
    stops = {"local": [], "ray": []}
    for _ in range(args.repeats + 1):
        for name, backend, job in (("local", local, None), ("ray", remote, rjob)):
            job = job if job is not None and job.alive else backend.submit(long).start()
            _wait(lambda j=job: j.snapshot().iteration >= 3)
            t = time.perf_counter()
            job.stop(evaluate=False)
            job.join(30)
            while job.alive:
                job.snapshot()
            stops[name].append(time.perf_counter() - t)
            rjob = None
    rows = [
        {"backend": k, "runs": len(v), "median ms": median(v) * 1e3, "max ms": max(v) * 1e3} for k, v in stops.items()
    ]
    print_table(
        rows,
        "Stop latency (stop() until the run has ended, seen from the client)",
    )
    ray.shutdown()


if __name__ == "__main__":
    main()
