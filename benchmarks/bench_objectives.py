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

Also, first: flow matching per iteration against torchcfm (``pip install -e '.[bench]'``) on the same network and
batch (3x64 tanh, time concatenated, batch 256), the two loops alternating in this process, each drawing its
data as cnfviz's trainer does.

    python benchmarks/bench_objectives.py [--quick] [--budgets 5 12 30] [--targets 8gaussians pinwheel moons]
    python benchmarks/bench_objectives.py --torchcfm [--iterations 2000 --repeats 5]
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import time
import types
from collections.abc import Callable

import numpy as np
import torch
from common import default_for, heldout_nll, print_table, setup

import cnfviz.training.trainer
from cnfviz import Trainer, make_target
from cnfviz.flow.dynamics import ODENet
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


TORCHCFM_NET = {
    "hidden": (64, 64, 64),
    "activation": "tanh",
    "time": "concat",
    "linear": False,
    "final_activation": False,
}
"""The network of the side-by-side with torchcfm: 3x64 tanh, time concatenated, no output activation, no linear term."""


def _torchcfm_rate(
    iterations: int, clock: Callable[[], float], data: Callable[[], torch.Tensor], *, same_net: bool
) -> float:
    """torchcfm's I-CFM training loop (ConditionalFlowMatcher, sigma 0, torch's default Adam, batch 256):
    iterations per second of ``clock``.

    ``same_net``: the loop drives cnfviz's own network (:class:`~cnfviz.flow.dynamics.ODENet`, 3x64 tanh, the time
    concatenated to every layer's input): the same maths, so the two rates differ by their loops alone. Otherwise
    the torch MLP of torchcfm's notebooks at that width (the time concatenated to the input only: less maths).
    """
    from torchcfm.conditional_flow_matching import ConditionalFlowMatcher

    torch.manual_seed(0)
    if same_net:
        ode = ODENet(2, TORCHCFM_NET["hidden"], "tanh", "concat", generator=torch.Generator().manual_seed(0))

        def field(xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return ode(t[:, None], xt)

        params = list(ode.parameters())
    else:
        layers: list[torch.nn.Module] = []
        for a, b in itertools.pairwise([3, 64, 64, 64]):
            layers += [torch.nn.Linear(a, b), torch.nn.Tanh()]
        mlp = torch.nn.Sequential(*layers, torch.nn.Linear(64, 2))

        def field(xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return mlp(torch.cat([xt, t[:, None]], dim=-1))

        params = list(mlp.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    fm = ConditionalFlowMatcher(sigma=0.0)
    start = clock()
    for _ in range(iterations):
        opt.zero_grad()
        x1 = data()
        x0 = torch.randn_like(x1)
        t, xt, ut = fm.sample_location_and_conditional_flow(x0, x1)
        loss = torch.mean((field(xt, t) - ut) ** 2)
        loss.backward()
        opt.step()
    return iterations / (clock() - start)


def _cnfviz_rate(iterations: int, objective: str = "flow-matching") -> float:
    """cnfviz's Trainer, its defaults but the network and batch (cosine learning rate, records, checks, last good
    weights kept every iteration) on the same network and batch: iterations per second of its training clock."""
    cfg = default_for("8gaussians", objective=objective, batch_size=256, n_train=None, model=TORCHCFM_NET)
    result = Trainer(cfg.replace(adam_iters=iterations)).run(final_metrics=False)
    return result.iterations / result.train_seconds


def _against_torchcfm(iterations: int, repeats: int, clock: Callable[[], float]) -> list[dict[str, object]]:
    """Flow matching per iteration, cnfviz against torchcfm, alternating in this process (median of ``repeats``)."""
    try:
        import torchcfm  # noqa: F401
    except ImportError:
        return [{"note": "torchcfm is not installed: pip install -e '.[bench]'"}]
    target = make_target("8gaussians")
    rng = np.random.default_rng(0)

    def data() -> torch.Tensor:  # the data cnfviz's trainer draws, at its cost, for both loops
        return torch.as_tensor(target.sample(256, seed=int(rng.integers(2**31))), dtype=torch.float32)

    ours, same, mlp = [], [], []
    _cnfviz_rate(50)
    _torchcfm_rate(50, clock, data, same_net=True)
    for _ in range(repeats):
        ours.append(_cnfviz_rate(iterations))
        same.append(_torchcfm_rate(iterations, clock, data, same_net=True))
        mlp.append(_torchcfm_rate(iterations, clock, data, same_net=False))
    a, b, c = statistics.median(ours), statistics.median(same), statistics.median(mlp)
    return [
        {
            "loop": "cnfviz Trainer (its defaults)",
            "network": "cnfviz ODENet 3x64 tanh, time concat",
            "it/s": a,
            "cnfviz / this": 1.0,
        },
        {
            "loop": "torchcfm I-CFM",
            "network": "cnfviz ODENet 3x64 tanh, time concat",
            "it/s": b,
            "cnfviz / this": a / b,
        },
        {
            "loop": "torchcfm I-CFM",
            "network": "torch MLP 3x64 tanh, time at the input",
            "it/s": c,
            "cnfviz / this": a / c,
        },
    ]


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
    parser.add_argument("--torchcfm", action="store_true", help="only flow matching's speed against torchcfm")
    parser.add_argument("--iterations", type=int, default=None, help="iterations per torchcfm comparison run")
    parser.add_argument("--repeats", type=int, default=None, help="alternating torchcfm comparison runs")
    args = parser.parse_args()
    threads = setup(args.threads)
    if args.clock == "cpu":
        _use_cpu_clock()
    print(f"clock: {args.clock} seconds; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    budgets = args.budgets or ([2.0, 4.0] if args.quick else [5.0, 12.0, 30.0])
    targets = args.targets or (["8gaussians"] if args.quick else ["8gaussians", "pinwheel", "moons"])
    n_test = args.n_test or (2_000 if args.quick else 10_000)

    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    cfm_rows = _against_torchcfm(args.iterations or (500 if args.quick else 2000), args.repeats or 5, clock)
    print_table(
        cfm_rows,
        f"Flow matching per iteration against torchcfm, batch 256, median of {args.repeats or 5} alternating runs, "
        f"{args.clock} seconds",
    )
    if args.torchcfm:
        return
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
