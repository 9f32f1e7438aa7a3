"""What each fast-path choice buys: seconds per iteration, side by side in one process.

Starts from the original FFJORD toy settings reproduced in cnfviz (adjoint, dopri5 at 1e-5, the
autograd trace, batch 100) and switches the fast-path choices on one at a time. The speed-up is
a ratio measured in this run, not a comparison of absolute times taken on different days.

    python benchmarks/bench_speedup.py [--seconds 8] [--threads 1]
"""

from __future__ import annotations

import argparse

from common import ORIGINAL, default_for, print_table, setup

from cnfviz import Trainer


def measure(config, seconds: float) -> dict[str, float]:
    trainer = Trainer(config.replace(max_seconds=seconds, adam_iters=1_000_000))
    result = trainer.run(final_metrics=False)
    hist = result.history[3:]  # skip the first iterations (allocator warm-up)
    its = len(hist)
    secs = hist[-1].elapsed - result.history[2].elapsed
    nfe_f = (hist[-1].nfe_forward - result.history[2].nfe_forward) / its
    nfe_b = (hist[-1].nfe_backward - result.history[2].nfe_backward) / its
    return {"s_per_it": secs / its, "nfe_fwd_per_it": nfe_f, "nfe_bwd_per_it": nfe_b, "iterations": result.iterations}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="training time per variant")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    threads = setup(args.threads)

    fast = default_for("8gaussians")
    steps = [
        ("original settings (adjoint, dopri5 1e-5, autograd trace, batch 100)", ORIGINAL, True),
        ("+ direct backprop instead of the adjoint", ORIGINAL.replace(solver={"adjoint": False}), True),
        (
            "+ forward-mode exact trace (no double backward)",
            ORIGINAL.replace(solver={"adjoint": False}, model={"trace": "exact"}),
            False,
        ),
        ("+ fused hand-written backward", ORIGINAL.replace(solver={"adjoint": False}, model={"trace": "exact"}), True),
        ("+ RK4, 4 fixed steps (guarded)", ORIGINAL.replace(solver=fast.solver, model={"trace": "exact"}), True),
        (f"cnfviz default (batch {fast.batch_size}, lr {fast.lr}, decay)", fast, True),
    ]
    rows = []
    base = None
    for label, cfg, fused in steps:
        m = measure(cfg, args.seconds, fused)
        base = base or m["s_per_it"]
        per_sample = m["s_per_it"] / (cfg.batch_size or 1) * 1e3
        rows.append(
            {
                "configuration": label,
                "s/iter": m["s_per_it"],
                "ms/sample": per_sample,
                "NFE fwd/iter": m["nfe_fwd_per_it"],
                "NFE bwd/iter": m["nfe_bwd_per_it"],
                "speed-up/iter": base / m["s_per_it"],
            }
        )
    print_table(rows, f"Seconds per iteration on 8gaussians, {threads} thread(s), {args.seconds:g} s per variant")


if __name__ == "__main__":
    main()
