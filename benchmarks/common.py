"""Shared helpers for the benchmark scripts: timed training runs, held-out NLL, and plain-text tables.

Benchmarks print figures; they never assert timings. The machines are shared and noisy, so the
scripts compare configurations side by side in one process and report ratios.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from cnfviz import ModelConfig, SolverConfig, TrainConfig, Trainer, default_config
from cnfviz.runtime.housekeeping import configure_threads, warm_up
from cnfviz.training.metrics import model_log_prob

__all__ = ["ORIGINAL", "BudgetRun", "budget_run", "default_for", "heldout_nll", "median", "print_table", "setup"]

# rtqichen/ffjord train_toy.py defaults: concatsquash 64-64-64 tanh, exact trace, dopri5 at
# atol = rtol = 1e-5 with the adjoint, batch 100, Adam lr 1e-3, T = 0.5. Reproduced with our
# engine, including the classic one-autograd-pass-per-dimension trace.
ORIGINAL = TrainConfig(
    target="8gaussians",
    model=ModelConfig(
        hidden=(64, 64, 64), activation="tanh", time="concatsquash", tspan=(0.0, 0.5), trace="exact-autograd"
    ),
    solver=SolverConfig("dopri5", rtol=1e-5, atol=1e-5, adjoint=True),
    adam_iters=1_000_000,
    lr=1e-3,
    batch_size=100,
    eval_every=0,
)


def setup(threads: int | None = None) -> int:
    """Pin the thread count (default: what the CLI uses) and pay torch's one-time start-up costs."""
    if threads:
        torch.set_num_threads(threads)
    else:
        configure_threads(1)
    warm_up()
    return torch.get_num_threads()


def heldout_nll(trainer: Trainer, n: int = 20_000, seed: int = 987_654) -> float:
    """Test NLL on ``n`` fresh samples, with the accurate evaluation solver (dopri5, 1e-5)."""
    data = trainer.target.sample(n, seed=seed)
    return float(-np.mean(model_log_prob(trainer.model, data)))


@dataclass
class BudgetRun:
    label: str
    target: str
    budget: float
    iterations: int
    seconds: float
    nfe: int
    test_nll: float

    @property
    def s_per_it(self) -> float:
        return self.seconds / max(self.iterations, 1)


def budget_run(label: str, config: TrainConfig, budget: float, n_test: int = 20_000) -> BudgetRun:
    """Train ``config`` for ``budget`` seconds of training time, then measure the held-out NLL."""
    cfg = config.replace(max_seconds=budget, eval_every=0)
    trainer = Trainer(cfg)
    result = trainer.run(final_metrics=False)
    last = result.history[-1] if result.history else None
    return BudgetRun(
        label,
        cfg.target,
        budget,
        result.iterations,
        result.train_seconds,
        last.nfe_forward if last else 0,
        heldout_nll(trainer, n_test),
    )


def default_for(target: str, **overrides: Any) -> TrainConfig:
    return default_config(target).replace(adam_iters=1_000_000, eval_every=0, **overrides)


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


def print_table(rows: list[dict[str, Any]], title: str | None = None) -> None:
    """Print dict rows as an aligned Markdown table."""
    if title:
        print(f"\n### {title}\n")
    if not rows:
        print("(no rows)")
        return
    cols = list(rows[0])
    cells = [[_fmt(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    print("| " + " | ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        print("| " + " | ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) + " |")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)
