"""Two ways to train the same CNF: maximum likelihood against flow matching (independent and OT pairing).

For each target and training budget (training time only; periodic evaluation is off), train the fast
default network by each objective in this process, then measure what makes them comparable: the NLL of
fresh samples with the exact trace and dopri5 at 1e-5, and the cost of using the flow, the NFE to draw
10,000 samples with the same solver. The goal: on 8gaussians, flow matching reaches within 10 s the test
NLL that the likelihood default reaches in 30 s. Two more tables: the cost of the exact OT assignment by
batch size, and flow matching's iterations per second at batch 256 (torchcfm's I-CFM 2D notebook: 20,000
iterations of batch 256 in 43 s on a CPU, 465 it/s).

Budgets and rates are in CPU seconds of the training thread by default (``--clock cpu``): the machine is
shared, and wall time would charge each run for whatever else runs beside it. ``--clock wall`` measures
wall time, as the app does; on an idle core the two agree.

    python benchmarks/bench_objectives.py [--quick] [--budgets 5 12 30] [--targets 8gaussians pinwheel moons]
"""

from __future__ import annotations

import argparse
import os
import time
import types
from collections.abc import Callable

import torch
from common import default_for, heldout_nll, print_table, setup

import cnfviz.training.trainer
from cnfviz import Trainer
from cnfviz.training.metrics import sampling_nfe
from cnfviz.training.objectives import OBJECTIVES, OT_MAX_POINTS, ot_pairing


def _use_cpu_clock() -> None:
    """Make the trainer's clock (budget, elapsed, it/s) count this thread's CPU time instead of wall time.

    With one torch thread every operation runs on the calling thread, so its CPU time is the run's cost.
    """
    cnfviz.training.trainer.time = types.SimpleNamespace(perf_counter=time.thread_time)  # type: ignore[attr-defined]


def _run(target: str, objective: str, budget: float, n_test: int, seed: int) -> dict[str, object]:
    cfg = default_for(target, objective=objective, max_seconds=budget, seed=seed)
    trainer = Trainer(cfg)
    result = trainer.run(final_metrics=False)
    return {
        "target": target,
        "budget s": budget,
        "objective": objective,
        "iterations": result.iterations,
        "it/s": result.iterations / max(result.train_seconds, 1e-9),
        "test NLL": heldout_nll(trainer, n_test),
        "sampling NFE": sampling_nfe(trainer.model),
        "status": result.status,
    }


def _ot_cost(sizes: list[int], repeats: int, clock: Callable[[], float]) -> list[dict[str, object]]:
    rows = []
    gen = torch.Generator().manual_seed(0)
    for n in sizes:
        x0, x1 = torch.randn(n, 2, generator=gen), torch.randn(n, 2, generator=gen) * 3
        for label, cap in (("one exact solve", n), (f"chunks of {OT_MAX_POINTS}", OT_MAX_POINTS)):
            if cap == n and n > 2048:
                rows.append({"points": n, "pairing": label, "ms": "skipped (minutes)", "cost / independent": ""})
                continue
            times = []
            for _ in range(repeats):
                start = clock()
                perm = ot_pairing(x0, x1, max_points=cap)
                times.append(clock() - start)
            ratio = float((x0 - x1[perm]).pow(2).sum() / (x0 - x1).pow(2).sum())
            rows.append({"points": n, "pairing": label, "ms": min(times) * 1e3, "cost / independent": ratio})
            if cap == n and n <= OT_MAX_POINTS:
                break  # the chunked pairing is the same solve
    return rows


def _anchor(iterations: int) -> list[dict[str, object]]:
    rows = []
    for objective in ("flow-matching", "ot-flow-matching"):
        n = iterations if objective == "flow-matching" else iterations // 4  # the assignment dominates OT's
        cfg = default_for("8gaussians", objective=objective, batch_size=256).replace(adam_iters=n)
        result = Trainer(cfg).run(final_metrics=False)
        rate = result.iterations / result.train_seconds
        rows.append(
            {
                "objective": objective,
                "batch": 256,
                "iterations": result.iterations,
                "seconds": result.train_seconds,
                "it/s": rate,
                "20,000 it would take s": 20_000 / rate,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short budgets and one target: a smoke run")
    parser.add_argument("--budgets", type=float, nargs="+", default=None)
    parser.add_argument("--targets", nargs="+", default=None)
    parser.add_argument("--objectives", nargs="+", default=list(OBJECTIVES), choices=list(OBJECTIVES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-test", type=int, default=None, help="fresh samples for the test NLL")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: as the CLI)")
    parser.add_argument("--ot-cost", action="store_true", help="only time the OT assignment")
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu", help="what a budget second is")
    args = parser.parse_args()
    threads = setup(args.threads)
    if args.clock == "cpu":
        _use_cpu_clock()
    print(f"clock: {args.clock} seconds; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    budgets = args.budgets or ([2.0, 4.0] if args.quick else [5.0, 12.0, 30.0])
    targets = args.targets or (["8gaussians"] if args.quick else ["8gaussians", "pinwheel", "moons"])
    n_test = args.n_test or (2_000 if args.quick else 10_000)

    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    ot_rows = _ot_cost([256, 1024] if args.quick else [256, 1024, 4096], 1 if args.quick else 3, clock)
    print_table(ot_rows, f"Exact minibatch OT pairing (scipy linear_sum_assignment), 2D points, {args.clock} ms")
    if args.ot_cost:
        return

    rows = []
    for target in targets:
        for budget in budgets:
            for objective in args.objectives:
                rows.append(_run(target, objective, budget, n_test, args.seed))
                print_table([rows[-1]])
    print_table(
        rows,
        f"Test NLL ({n_test:,} fresh samples, exact trace, dopri5 1e-5) and sampling NFE (10,000 samples) "
        f"after a training budget in {args.clock} seconds, {threads} thread(s)",
    )

    # The goal: flow matching within 10 s against the likelihood default's longest budget.
    if "8gaussians" in targets and "likelihood" in args.objectives:
        long = max(budgets)
        ref = next(
            r for r in rows if r["target"] == "8gaussians" and r["objective"] == "likelihood" and r["budget s"] == long
        )
        goal_budget = min(10.0, long)
        goal = [
            _run("8gaussians", objective, goal_budget, n_test, args.seed)
            for objective in args.objectives
            if objective != "likelihood"
        ]
        print_table([ref, *goal], f"Goal: flow matching in {goal_budget:g} s against likelihood in {long:g} s")
        for r in goal:
            verdict = "reaches" if r["test NLL"] <= ref["test NLL"] else "does not reach"
            print(
                f"{r['objective']} in {goal_budget:g} s: test NLL {r['test NLL']:.4f} {verdict} likelihood's "
                f"{ref['test NLL']:.4f} in {long:g} s"
            )

    print_table(
        _anchor(300 if args.quick else 2000),
        f"Flow matching at batch 256, {args.clock} seconds (torchcfm I-CFM anchor: 465 it/s)",
    )
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
