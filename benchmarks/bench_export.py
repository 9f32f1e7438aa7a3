"""The exported code's speed: the Code export of a run, run as a standalone script, with and without its thread cap.

The Code export (``cnfviz.features.export.config_to_code``) writes a script that calls ``configure_threads()``
before it trains, as the app does: torch's default, one thread per core, ran the exported seed tutorial about
5x slower than the app on a machine whose cores were busy. This measures that line. For each preset (the seed
tutorial, the classroom preset) it writes the script twice, as exported and with the cap line removed, and runs
each in a fresh interpreter, alternating, ``--repeats`` times; beside them, the app's own Trainer on the same
config in a worker-like process (torch's threads set as the process backend sets a worker's, torch warmed up).
It prints each variant's median training it/s (iterations over the trainer's own training seconds, so the
final metrics and the interpreter's start-up are left out, but not torch's lazy imports in the first Adam
step, which the app pays once per worker when it starts), the steady it/s (from the first iteration's end to
the last's), the first iteration's seconds, the median wall seconds of the whole script, the threads each used,
and the ratios to the exported script.

    python benchmarks/bench_export.py [--presets seed classroom] [--repeats 3] [--iters N]

``--iters`` shortens the Adam stage (a quick look on a busy machine); the default trains each preset in full.
The figures depend on how busy the machine's cores are: quote them with the load average printed above them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import print_table

from cnfviz.features.export import config_to_code
from cnfviz.training.presets import PRESETS

ROOT = Path(__file__).resolve().parents[1]
CAP_LINE = "configure_threads()"
# Appended to each exported script: what it measured, on one line the benchmark reads back.
REPORT = """
import json as _json
_h = trainer.history
print("BENCH " + _json.dumps({"iterations": result.iterations, "train_seconds": result.train_seconds,
                              "first": _h[0].elapsed, "last": _h[-1].elapsed, "threads": torch.get_num_threads()}))
"""
# The app's own path for the same config: a worker process sets its torch threads and warms torch up once,
# then trains (cnfviz.runtime.process.worker.main). Formatted with the config's JSON and the thread count.
APP = """
import json
import torch
from cnfviz import TrainConfig, Trainer
from cnfviz.runtime.housekeeping import warm_up

torch.set_num_threads({threads})
warm_up()
trainer = Trainer(TrainConfig.from_json({config!r}))
result = trainer.run(final_metrics=False)
h = trainer.history
print("BENCH " + json.dumps({{"iterations": result.iterations, "train_seconds": result.train_seconds,
                             "first": h[0].elapsed, "last": h[-1].elapsed, "threads": torch.get_num_threads()}}))
"""


def uncapped(script: str) -> str:
    """The exported script without its thread cap (torch's default threads, one per core)."""
    lines = script.splitlines()
    assert sum(line.strip() == CAP_LINE for line in lines) == 1, "the export no longer caps its threads by one line"
    return "\n".join("# (cap removed)" if line.strip() == CAP_LINE else line for line in lines) + "\n"


def app_threads() -> int:
    """The torch threads the app's default backend gives a worker (ProcessBackend with its default workers)."""
    from cnfviz.runtime.process.backend import default_workers
    from cnfviz.training.device import cpu_cores

    return max(1, (cpu_cores() - 1) // default_workers())


def run(code: str, folder: Path, name: str) -> dict[str, float]:
    """Run ``code`` as a script in a fresh interpreter; its report plus the wall seconds."""
    path = folder / f"{name}.py"
    path.write_text(code)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, env=env, cwd=folder)
    wall = time.perf_counter() - start
    lines = [line for line in done.stdout.splitlines() if line.startswith("BENCH ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{name} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    report = json.loads(lines[-1].removeprefix("BENCH "))
    steady = (report["iterations"] - 1) / max(report["last"] - report["first"], 1e-9)
    return {**report, "wall": wall, "its": report["iterations"] / max(report["train_seconds"], 1e-9), "steady": steady}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["seed", "classroom"], choices=sorted(PRESETS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--iters", type=int, default=None, help="Adam iterations (default: the preset's)")
    args = parser.parse_args()
    threads = app_threads()
    print(f"cores: {os.cpu_count()}, load average: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"the app's worker threads: {threads}; python {sys.version.split()[0]}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for preset in args.presets:
            config = PRESETS[preset].config
            if args.iters is not None:
                config = config.replace(adam_iters=args.iters)
            capped = config_to_code(config) + REPORT
            variants = {
                "exported (capped)": capped,
                "cap removed": uncapped(capped),
                "app Trainer": APP.format(threads=threads, config=config.to_json()),
            }
            runs: dict[str, list[dict[str, float]]] = {k: [] for k in variants}
            for i in range(args.repeats):
                # Alternating, one of each per round: a change in the machine's load hits every variant alike.
                order = list(variants) if i % 2 == 0 else list(reversed(variants))
                for label in order:
                    runs[label].append(run(variants[label], folder, f"{preset}_{i}_{label.split()[0]}"))
            base = statistics.median(r["its"] for r in runs["exported (capped)"])
            base_steady = statistics.median(r["steady"] for r in runs["exported (capped)"])
            for label, got in runs.items():
                its = statistics.median(r["its"] for r in got)
                steady = statistics.median(r["steady"] for r in got)
                rows.append(
                    {
                        "preset": preset,
                        "variant": label,
                        "threads": int(got[0]["threads"]),
                        "iterations": int(got[0]["iterations"]),
                        "it/s (median)": its,
                        "it/s (each)": " ".join(f"{r['its']:.1f}" for r in got),
                        "steady it/s": steady,
                        "first it s": statistics.median(r["first"] for r in got),
                        "train s": statistics.median(r["train_seconds"] for r in got),
                        "wall s": statistics.median(r["wall"] for r in got),
                        "it/s ÷ capped": its / base,
                        "steady ÷ capped": steady / base_steady,
                    }
                )
    print_table(rows)
    print(f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
