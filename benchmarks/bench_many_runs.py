"""Many runs at once: aggregate run-iterations per second, looped (one run after another) against stacked.

For each M, M runs of one shape (other seeds and learning rates) train K Adam iterations each, first one
after another with :class:`~cnfviz.Trainer` alone, then all at once through a
:class:`~cnfviz.runtime.scheduler.Scheduler` (one stack, the app's code path: a thread per run and one worker for the
stack), side by side in one process at one thread. Then one default run alone, timed at ``--before REV`` (a
temporary git worktree) and in this tree, in alternating fresh processes, to check that a solo run did not get slower.

    python benchmarks/bench_many_runs.py [--runs 1 4 8 16 30] [--iters 20] [--config default|classroom]
        [--threads 1] [--device auto] [--before REV] [--batch N]
        [--objective likelihood|flow-matching|ot-flow-matching]

With a flow-matching objective the runs make no solve in training (one evaluation of the field per
iteration), so their iterations are far shorter and ``--iters`` should be larger.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import torch
from common import print_table

from cnfviz import PRESETS, TrainConfig, Trainer, default_config
from cnfviz.runtime import stack
from cnfviz.runtime.housekeeping import warm_up
from cnfviz.runtime.scheduler import Scheduler
from cnfviz.training.objectives import OBJECTIVES

ROOT = Path(__file__).resolve().parent.parent


def base_config(name: str, iters: int, device: str, batch: int | None, objective: str = "likelihood") -> TrainConfig:
    """The default 2D set-up (width 64 x 3, batch 128, RK4 x 4 steps, exact trace), or the classroom preset,
    trained with ``objective``."""
    config = PRESETS["classroom"].config if name == "classroom" else default_config("8gaussians")
    config = config.replace(adam_iters=iters, eval_every=0, max_seconds=None, n_test=100, device=device)
    if objective != "likelihood":  # flow matching has no LBFGS stage and no regularizers
        config = config.replace(objective=objective, lbfgs_iters=0, lambda_kinetic=0.0, lambda_jacobian=0.0)
    return config.replace(batch_size=batch) if batch else config


def members(base: TrainConfig, m: int) -> list[TrainConfig]:
    return [base.replace(seed=i, lr=base.lr * (1 + 0.1 * (i % 5))) for i in range(m)]


def looped(configs: list[TrainConfig]) -> float:
    """Seconds to train the runs one after another, each alone."""
    trainers = [Trainer(c, keep_history=False) for c in configs]
    start = time.perf_counter()
    for tr in trainers:
        tr.run(final_metrics=False)
    return time.perf_counter() - start


def stacked(configs: list[TrainConfig], threads: int) -> tuple[float, int]:
    """Seconds to train the runs all at once in the scheduler's stack; and its largest round."""
    scheduler = Scheduler(threads=threads)
    trainers = [Trainer(c, keep_history=False) for c in configs]
    for tr in trainers:
        tr.stacker = scheduler
    results: list[str] = []
    threads_ = [
        threading.Thread(target=lambda t=t: results.append(t.run(final_metrics=False).status)) for t in trainers
    ]
    start = time.perf_counter()
    for t in threads_:
        t.start()
    for t in threads_:
        t.join()
    seconds = time.perf_counter() - start
    assert results == ["done"] * len(configs), results
    return seconds, scheduler.stats()["largest_round"]


def solo_before_after(rev: str, target: str, iters: int, threads: int, repeats: int) -> tuple[float, float] | None:
    """ms per Adam iteration of one default ``target`` run at ``rev`` and in this tree, alternating fresh
    processes (:func:`bench_step.measure`: each tree imports its own package, so an old trainer never runs
    against today's modules). None if git cannot check ``rev`` out."""
    from bench_step import measure

    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp) / "before"
        made = subprocess.run(["git", "worktree", "add", "-q", "--detach", str(before), rev], cwd=ROOT, check=False)
        if made.returncode != 0:
            return None
        try:
            times: dict[str, list[float]] = {"before": [], "after": []}
            for _ in range(repeats):  # alternate, so that the machine's load hits both alike
                for label, tree in (("before", before), ("after", ROOT)):
                    times[label].append(measure(tree, [target], iters, threads)[target])
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=ROOT, check=False)
    return statistics.median(times["before"]), statistics.median(times["after"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, nargs="+", default=[1, 4, 8, 16, 30])
    parser.add_argument("--iters", type=int, default=20, help="Adam iterations per run")
    parser.add_argument("--config", choices=["default", "classroom"], default="default")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=None, help="override the batch size")
    parser.add_argument("--objective", choices=list(OBJECTIVES), default="likelihood")
    parser.add_argument("--before", default="d9d0525", help="revision whose Trainer is 'before' (solo check)")
    parser.add_argument("--solo-repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warm_up()
    stack.FLOW_MATCHING_STACKS_ON_CPU = True  # measure the stacked case, which the app leaves off on a CPU
    base = base_config(args.config, args.iters, args.device, args.batch, args.objective)
    device = Trainer(base.replace(adam_iters=1)).device
    print(
        f"config: {args.config}, objective {base.objective} (hidden {base.model.hidden}, batch {base.batch_size}, "
        f"{base.solver.method} "
        f"step {base.solver.step_size} over {base.model.tspan}, trace {base.model.trace}), "
        f"{args.iters} iterations per run, {args.threads} thread(s), device {device}"
    )
    looped(members(base, 1))  # warm caches and allocators once
    rows = []
    for m in args.runs:
        configs = members(base, m)
        t_loop = looped(configs)
        t_stack, largest = stacked(configs, args.threads)
        work = m * args.iters
        rows.append(
            {
                "runs": m,
                "looped run-it/s": f"{work / t_loop:.1f}",
                "stacked run-it/s": f"{work / t_stack:.1f}",
                "ratio": f"{t_loop / t_stack:.2f}x",
                "per-run it/s stacked": f"{args.iters / t_stack:.2f}",
                "largest round": largest,
            }
        )
        print(f"  M={m}: looped {t_loop:.2f} s, stacked {t_stack:.2f} s", flush=True)
    print()
    print_table(rows)

    if args.solo_repeats < 1:
        return
    got = solo_before_after(args.before, base.target, max(args.iters, 30), args.threads, args.solo_repeats)
    if got is None:
        print(f"\n(solo check skipped: git cannot check out {args.before})")
        return
    b, a = got
    print(f"\nsolo default {base.target} run, ms per Adam iteration, median of {args.solo_repeats} alternating runs:")
    print_table(
        [
            {"trainer": f"before ({args.before})", "ms/it": f"{b:.2f}"},
            {"trainer": "after", "ms/it": f"{a:.2f}"},
            {"trainer": "after / before", "ms/it": f"{a / b:.3f}"},
        ]
    )


if __name__ == "__main__":
    main()
