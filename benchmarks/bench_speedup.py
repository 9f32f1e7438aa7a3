"""What each fast-path choice buys: the cost of one training step, side by side in one process.

A flow with the original FFJORD toy architecture (concatsquash 64-64-64, tanh, T = 0.5) is first
trained for a while, so its dynamics are as hard to integrate as they are mid-training. Then, on
exactly those weights and one fixed batch of 100 points, each variant times a full training step
(forward solve + backward) with one fast-path choice switched on at a time. The speed-ups are
ratios measured in this run.

    python benchmarks/bench_speedup.py [--pretrain 20] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import torch
from common import ORIGINAL, print_table, setup

from cnfviz import FFJORD, SolverConfig, Trainer, make_target


def step_cost(flow: FFJORD, x: torch.Tensor, solver: SolverConfig, trace: str, repeats: int) -> dict[str, float]:
    """Median seconds and NFE of one training step (loss, backward) on ``x``."""
    times, nfe_f, nfe_b = [], 0, 0
    for _ in range(repeats):
        flow.zero_grad(set_to_none=True)
        flow.reset_nfe()
        start = time.perf_counter()
        logpx, _, _ = flow(x, solver=solver, trace=trace)
        (-logpx.mean()).backward()
        times.append(time.perf_counter() - start)
        nfe_f, nfe_b = flow.nfe_forward, flow.nfe_backward
    times.sort()
    return {"seconds": times[len(times) // 2], "nfe_f": nfe_f, "nfe_b": nfe_b}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrain", type=float, default=20.0, help="seconds of training before timing")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    threads = setup(args.threads)

    # Mid-training weights, reached quickly with the fast solver.
    fast_solver = SolverConfig("rk4", step_size=0.125)
    trainer = Trainer(
        ORIGINAL.replace(solver=fast_solver, model={"trace": "exact"}, max_seconds=args.pretrain, lr=5e-3)
    )
    result = trainer.run(final_metrics=False)
    flow = FFJORD(2, ORIGINAL.model, ORIGINAL.solver)
    flow.load_state_dict(trainer.model.state_dict())
    x = torch.as_tensor(make_target("8gaussians").sample(100, seed=1), dtype=torch.float32)

    original = ORIGINAL.solver  # dopri5, rtol = atol = 1e-5, adjoint
    steps = [
        ("original: adjoint, dopri5 1e-5, autograd trace", original, "exact-autograd"),
        ("+ direct backprop instead of the adjoint", SolverConfig("dopri5", rtol=1e-5, atol=1e-5), "exact-autograd"),
        ("+ forward-mode exact trace (no double backward)", SolverConfig("dopri5", rtol=1e-5, atol=1e-5), "exact"),
        ("+ looser tolerances (dopri5 1e-3)", SolverConfig("dopri5", rtol=1e-3, atol=1e-3), "exact"),
        ("+ RK4 with 4 fixed steps (guarded) instead", fast_solver, "exact"),
        ("  (Hutchinson, 1 Rademacher probe, RK4)", fast_solver, "hutchinson-rademacher"),
    ]
    rows, base = [], None
    for label, solver, trace in steps:
        m = step_cost(flow, x, solver, trace, args.repeats)
        base = base or m["seconds"]
        rows.append(
            {
                "training step": label,
                "s/step": m["seconds"],
                "NFE fwd": m["nfe_f"],
                "NFE bwd": m["nfe_b"],
                "speed-up": base / m["seconds"],
            }
        )
    print_table(
        rows,
        f"One training step (batch 100) on weights after {result.iterations} iterations, "
        f"{threads} thread(s), median of {args.repeats}",
    )


if __name__ == "__main__":
    main()
