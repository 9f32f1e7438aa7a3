"""Hostile links against one ``streamlit run app.py`` server: its memory and CPU before, at peak and after.

``python benchmarks/bench_abuse.py [--quick]``

For each link (a batch of a million that starts on open, a slow scipy distribution, huge hidden widths, a
ten-million-point full batch, a bidirectional override in a value, and the plain default run for
comparison), a headless Chromium tab opens it, stays ``--hold`` seconds and closes. The server's resident
memory (its whole process tree) and CPU are sampled every 0.2 s. It prints, per link:

* RSS before, at its peak while the tab was open, and 5 s after the tab closed, and the peak's growth;
* CPU (cores) while the tab was open, and in the last second of the 5 s after it closed.

The goals (issue 16): under +1 GB per link, and back to idle CPU within 5 s of the tab closing.

It also prints the cost of the budget check a run start pays (:func:`cnfviz.runtime.budget.check_run`, goal ≤ 1 ms),
and, for a few shapes, the estimate next to the peak RSS growth of one real training iteration in a fresh
process. Figures depend on the machine and its load; benchmarks print, they never assert.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import timeit
from dataclasses import dataclass
from pathlib import Path

from harness import ROOT, cpu_seconds, free_port, start_server, stop_server, wait_healthy
from harness import children_map as _parents
from harness import process_tree as _tree

sys.path.insert(0, str(ROOT))  # this checkout's cnfviz, as the server it starts uses
from cnfviz import default_config
from cnfviz.runtime.budget import RunBudget, check_run, estimate_run

LINKS: dict[str, str] = {
    "default run (control)": "train?target=moons&autostart=1",
    "batch 1,000,000": "train?target=moons&batch=1000000&autostart=1",
    "slow scipy levy_stable": "train?target=scipy:levy_stable&p.alpha=1.5&p.beta=0.5&autostart=1",
    "slow scipy studentized_range": "train?target=scipy:studentized_range&p.k=3&p.df=10&autostart=1",
    "hidden 8 x 1024, euler 0.001": "train?target=moons&hidden=1024,1024,1024,1024,1024,1024,1024,1024"
    "&solver=euler&step=0.001&autostart=1",
    "full batch of 10,000,000": "train?target=moons&ntrain=10000000&batch=full&autostart=1",
    "bidi override in a value": "train?target=moons&act=tanh%E2%80%AE&hide=%E2%80%AEsolver&autostart=1",
}


def _rss_mb(pid: int) -> float:
    total = 0
    for p in _tree(pid, _parents()):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def _cpu_total(pid: int, ticks: int) -> float:
    return sum(cpu_seconds(p) for p in _tree(pid, _parents()))


@dataclass
class Trace:
    samples: list[tuple[float, float, float]]  # (time, rss MB, cpu seconds so far)

    def rss_at(self, t: float) -> float:
        return min(self.samples, key=lambda s: abs(s[0] - t))[1]

    def peak(self, t0: float, t1: float) -> float:
        return max((s[1] for s in self.samples if t0 <= s[0] <= t1), default=float("nan"))

    def cores(self, t0: float, t1: float) -> float:
        inside = [s for s in self.samples if t0 <= s[0] <= t1]
        if len(inside) < 2:
            return float("nan")
        return (inside[-1][2] - inside[0][2]) / (inside[-1][0] - inside[0][0])


def _sample_for(pid: int, seconds: float, trace: Trace, ticks: int, start: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        trace.samples.append((time.monotonic() - start, _rss_mb(pid), _cpu_total(pid, ticks)))
        time.sleep(0.2)


def attack(args: argparse.Namespace) -> None:
    from playwright.sync_api import sync_playwright

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = Path(args.log)
    proc = start_server(port, {"CNFVIZ_RECONNECT_GRACE": "0"}, log, None)
    ticks = os.sysconf("SC_CLK_TCK")
    rows = []
    try:
        wait_healthy(proc, url, log)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=args.chromium, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
            )
            # One tab to load the app once, so the first link does not pay the server's imports.
            page = browser.new_page()
            page.goto(f"{url}/train", wait_until="networkidle", timeout=120_000)
            page.wait_for_timeout(3000)
            page.close()
            for label, link in LINKS.items():
                if args.quick and label.startswith(("slow scipy studentized", "full batch")):
                    continue
                trace = Trace([])
                start = time.monotonic()
                _sample_for(proc.pid, 2.0, trace, ticks, start)
                opened = time.monotonic() - start
                page = browser.new_page()
                page.goto(f"{url}/{link}", wait_until="domcontentloaded", timeout=60_000)
                _sample_for(proc.pid, args.hold, trace, ticks, start)
                shown = page.locator("[data-testid='stAlertContentError']").all_inner_texts()
                shown += page.locator("[data-testid='stAlertContentWarning']").all_inner_texts()
                closed = time.monotonic() - start
                page.close()
                _sample_for(proc.pid, 5.0, trace, ticks, start)
                before = trace.rss_at(opened - 0.1)
                peak = trace.peak(opened, closed + 5.0)
                rows.append(
                    {
                        "link": label,
                        "rss_before_mb": before,
                        "rss_peak_mb": peak,
                        "rss_after_mb": trace.rss_at(closed + 5.0),
                        "growth_mb": peak - before,
                        "cpu_open": trace.cores(opened, closed),
                        "cpu_last_second": trace.cores(closed + 4.0, closed + 5.0),
                        "error_shown": " ".join(shown[0].split())[:120] if shown else "",
                    }
                )
            browser.close()
    finally:
        stop_server(proc)
    print(f"\nHostile links, one tab each held {args.hold:g} s, then closed (server RSS of its process tree):\n")
    head = f"{'link':<30} {'RSS before':>10} {'peak':>8} {'+5 s':>8} {'growth':>8} {'CPU open':>9} {'CPU 4-5 s':>10}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['link']:<30} {r['rss_before_mb']:>8.0f}MB {r['rss_peak_mb']:>6.0f}MB {r['rss_after_mb']:>6.0f}MB "
            f"{r['growth_mb']:>+6.0f}MB {r['cpu_open']:>8.2f}c {r['cpu_last_second']:>9.2f}c"
        )
    print("\nWhat each page said (its first error, else its first warning, cut):")
    for r in rows:
        print(f"  {r['link']:<30} {r['error_shown'] or '(no error or warning)'}")


_CHILD = r"""
import json, resource, sys
import torch
from cnfviz import TrainConfig, Trainer
from cnfviz.runtime.housekeeping import warm_up
torch.set_num_threads(1)
warm_up()
cfg = TrainConfig.from_json(sys.argv[1]).replace(adam_iters=1, eval_every=0, n_test=10)
trainer = Trainer(cfg)
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
base = rss()
trainer.run(final_metrics=False)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"base": base, "before_peak": before, "peak": peak}))
"""


def accuracy() -> None:
    shapes = {
        "2D default, batch 4,096": (default_config("moons", batch_size=4096), 2),
        "2D hidden 256x3, batch 2,048": (default_config("moons", batch_size=2048, model={"hidden": (256,) * 3}), 2),
        "2D Hutchinson, batch 8,192": (
            default_config("moons", batch_size=8192, model={"trace": "hutchinson-rademacher"}),
            2,
        ),
        "1D default, batch 16,384": (default_config("normal", batch_size=16384), 1),
    }
    print("\nThe estimate next to one real training iteration (peak RSS growth over the process before it):\n")
    head = f"{'shape':<32} {'estimate':>10} {'measured':>10} {'ratio':>7}"
    print(head)
    print("-" * len(head))
    for label, (config, dim) in shapes.items():
        est = estimate_run(config, dim).bytes_per_sample * estimate_run(config, dim).batch
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, config.to_json()], capture_output=True, text=True, cwd=ROOT, check=True
        )
        got = json.loads(out.stdout.strip().splitlines()[-1])
        measured = got["peak"] - max(got["base"], got["before_peak"])
        print(f"{label:<32} {est / 1e6:>8.0f}MB {measured / 1e6:>8.0f}MB {est / max(measured, 1):>7.2f}")


def check_cost() -> None:
    config = default_config("moons")
    budget = RunBudget.for_server()
    n = 20_000
    with_budget = timeit.timeit(lambda: check_run(config, 2, budget), number=n) / n
    from_env = timeit.timeit(lambda: check_run(config, 2), number=n) / n
    print("\nThe budget check per run start (mean of 20,000 calls each):")
    print(f"  check_run(config, dim, budget)           {with_budget * 1e6:8.1f} µs")
    print(f"  check_run(config, dim) (reads the env)   {from_env * 1e6:8.1f} µs   goal ≤ 1,000 µs")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer links and no accuracy runs")
    parser.add_argument("--hold", type=float, default=10.0, help="seconds each tab stays open")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--log", default="/tmp/cnfviz-bench-abuse.log")
    parser.add_argument("--skip-server", action="store_true", help="only the check cost and the estimate")
    args = parser.parse_args()
    check_cost()
    if not args.quick:
        accuracy()
    if not args.skip_server:
        attack(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
