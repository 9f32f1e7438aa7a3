"""How fast Stop acts in the middle of a long solve, and what checking for it costs.

1. Stop latency: a deliberately slow configuration (a 256-256-256 network, 4,096 points, dopri5 at 1e-9)
   whose single training iteration takes tens of seconds. Stop is pressed while the forward solve runs,
   then while the backward pass runs; the figure is the time until the worker thread has ended, next to
   how long the iteration would have run on (what a check between iterations only would cost).
2. Stop -> "stopped": a default 2D run (the app's Train page) trained for a few seconds, then Stop; the
   figures are the time until its snapshot says ``stopped`` (what the Stop button waits for), until its final
   metrics are in, and until its worker has ended. ``--ending-only`` measures just this, e.g. against another
   tree: ``PYTHONPATH=/path/to/other/tree python benchmarks/bench_stop.py --ending-only``.
3. Overhead: one training step of the default configuration with the stop check armed vs not, measured
   alternately in one process (the ratio is what matters on a noisy machine).

    python benchmarks/bench_stop.py --repeats 3
"""

from __future__ import annotations

import argparse
import time

import torch
from common import median, print_table, setup

import cnfviz
from cnfviz import ModelConfig, SolverConfig, TrainConfig, Trainer, default_config
from cnfviz.runtime.job import TrainingJob

SLOW = TrainConfig(
    target="8gaussians",
    model=ModelConfig(hidden=(256, 256, 256)),
    solver=SolverConfig("dopri5", rtol=1e-9, atol=1e-9),
    adam_iters=3,
    batch_size=4096,
    n_test=200,
    eval_every=0,
)


def _wait(condition, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError
        time.sleep(0.002)


def iteration_seconds() -> tuple[float, float]:
    """How long one iteration of SLOW takes, forward solve and backward pass, uninterrupted."""
    trainer = Trainer(SLOW)
    x = trainer._batch() if trainer.train_data is not None else None
    x = torch.as_tensor(trainer.target.sample(SLOW.batch_size, seed=0), dtype=torch.float32) if x is None else x
    t = time.perf_counter()
    loss, _ = trainer._loss(x)
    forward = time.perf_counter() - t
    t = time.perf_counter()
    loss.backward()
    return forward, time.perf_counter() - t


def stop_latency(phase: str) -> float:
    """Seconds from Stop to the end of the worker thread, pressed ~1 s into the forward or backward pass."""
    job = TrainingJob(SLOW, compute_final_metrics=False).start()
    model = job.trainer.model
    if phase == "forward":
        _wait(lambda: model.nfe_forward >= 1)
    else:
        _wait(lambda: model._in_backward)
    time.sleep(1.0)
    start = time.perf_counter()
    job.stop(evaluate=False)
    job.join(120)
    took = time.perf_counter() - start
    assert job.snapshot().iteration == 0, "the stop landed after the first iteration; make SLOW slower"
    return took


def stop_to_stopped(train_seconds: float) -> dict[str, float]:
    """Seconds from Stop to the ``stopped`` state, to the final metrics, and to the end of the worker thread,
    for the default 2D run after ``train_seconds`` of training."""
    job = TrainingJob(default_config("8gaussians", adam_iters=1_000_000)).start()
    _wait(lambda: job.snapshot().iteration >= 3)
    time.sleep(train_seconds)
    start = time.perf_counter()
    job.stop()
    _wait(lambda: job.snapshot().state == "stopped", 300)
    stopped = time.perf_counter() - start
    _wait(lambda: job.snapshot().metrics is not None or not job.alive, 300)
    metrics = time.perf_counter() - start
    job.join(300)
    return {"stopped": stopped, "metrics": metrics, "ended": time.perf_counter() - start}


def step_overhead(repeats: int) -> tuple[float, float]:
    """Median seconds per training step of the default 2D config, stop check off and on (alternating)."""
    config = default_config("8gaussians", adam_iters=1_000_000, eval_every=0)
    trainer = Trainer(config)
    x = trainer._batch()
    never = lambda: False  # noqa: E731 - the cheapest armed check: what every evaluation pays
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(repeats):
        for armed in (False, True):
            trainer.model.interrupt = never if armed else None
            t = time.perf_counter()
            for _ in range(10):
                loss, _ = trainer._loss(x)
                loss.backward()
            times[armed].append((time.perf_counter() - t) / 10)
    trainer.model.interrupt = None
    return median(times[False]), median(times[True])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ending-only", action="store_true", help="only Stop -> stopped on a default run")
    parser.add_argument("--train-seconds", type=float, default=3.0, help="training before Stop (ending figure)")
    args = parser.parse_args()
    threads = setup()
    print(f"torch threads: {threads}; cnfviz from {cnfviz.__file__}")

    endings = [stop_to_stopped(args.train_seconds) for _ in range(args.repeats)]
    print_table(
        [
            {
                "after Stop, until": what,
                "median (s)": f"{median([e[key] for e in endings]):.3f}",
                "worst (s)": f"{max(e[key] for e in endings):.3f}",
            }
            for what, key in (
                ('the snapshot says "stopped"', "stopped"),
                ("the final metrics are in", "metrics"),
                ("the worker has ended", "ended"),
            )
        ],
        f"Stop -> stopped: the default 2D run, Stop after {args.train_seconds:g} s of training ({args.repeats} runs)",
    )
    if args.ending_only:
        return

    forward, backward = iteration_seconds()
    rows = []
    for phase, rest in (("forward solve", forward), ("backward pass", backward)):
        took = [stop_latency(phase.split()[0]) for _ in range(args.repeats)]
        rows.append(
            {
                "Stop pressed during": phase,
                "median latency (s)": f"{median(took):.3f}",
                "worst (s)": f"{max(took):.3f}",
                "the whole phase takes (s)": f"{rest:.1f}",
            }
        )
    print_table(rows, "Stop in the middle of one long training iteration")

    off, on = step_overhead(max(5, args.repeats * 3))
    print_table(
        [
            {
                "check off (ms/step)": f"{off * 1e3:.1f}",
                "check armed (ms/step)": f"{on * 1e3:.1f}",
                "ratio": f"{on / off:.3f}",
            }
        ],
        "What the stop check costs a step of the default 2D configuration",
    )


if __name__ == "__main__":
    main()
