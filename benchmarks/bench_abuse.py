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


# ---------------------------------------------------------------------------------------------- issue 21
# Each probe runs in a fresh process on the code at PYTHONPATH (this checkout, or --before's), and prints JSON.

_STRIP = r"""
import io, json, resource
from PIL import Image
from cnfviz.ui.custom_target import image_target
buf = io.BytesIO(); Image.new("L", (10_000, 1), 0).save(buf, format="PNG")
def rss(): return int(open("/proc/self/statm").read().split()[1]) * 4096
base = rss()
try:
    t = image_target(buf.getvalue(), invert=True); shape = list(t.image.shape); err = None
except Exception as e:
    shape, err = None, f"{type(e).__name__}: {e}"[:120]
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"file_bytes": len(buf.getvalue()), "growth": peak - base, "held": rss() - base, "shape": shape,
                  "error": err}))
"""

_GRID = r"""
import json, resource, time
from cnfviz import default_config
from cnfviz.runtime.job import TrainingJob
def rss(): return int(open("/proc/self/statm").read().split()[1]) * 4096
base = rss()
cfg = default_config("moons", batch_size=8, solver={"method": "euler", "step_size": 1e-7, "max_nfe": None})
try:
    job = TrainingJob(cfg).start(); job.join(20); state = job.snapshot().state; job.stop(evaluate=False)
except Exception as e:
    state = f"refused: {e}"[:160]
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"growth": peak - base, "state": state}))
"""

_SILENT = r"""
import json, socket, sys, time
server = socket.create_server(("127.0.0.1", 0)); held = []
import threading
threading.Thread(target=lambda: held.append(server.accept()), daemon=True).start()
from cnfviz.runtime.backend import make_backend
start = time.monotonic()
try:
    make_backend("ray", f"127.0.0.1:{server.getsockname()[1]}"); said = "connected?"
except Exception as e:
    said = f"{type(e).__name__}: {e}"[:160]
print(json.dumps({"seconds": time.monotonic() - start, "said": said}))
"""

_OT_STOP = r"""
import json, sys, threading, time
import torch
from cnfviz import default_config
from cnfviz.runtime.budget import check_run
from cnfviz.training import objectives
from cnfviz.training.trainer import Trainer
torch.set_num_threads(1)
batch = int(sys.argv[1])
cfg = default_config("moons", objective="ot-flow-matching", batch_size=batch, adam_iters=100, eval_every=0, n_test=100)
try:
    check_run(cfg, 2); admitted = True
except Exception:
    admitted = False
trainer = Trainer(cfg)
# Count the pairing's chunks (one scipy assignment each) and stop while the first pairing is under way.
chunks, inside, real = [], threading.Event(), objectives.linear_sum_assignment
def counted(cost):
    chunks.append(time.monotonic())
    if len(chunks) == 3:
        inside.set()
    return real(cost)
objectives.linear_sum_assignment = counted
done = threading.Event()
results = []
thread = threading.Thread(target=lambda: (results.append(trainer.run(final_metrics=False)), done.set()), daemon=True)
thread.start()
inside.wait(120)
at_stop = len(chunks)
start = time.monotonic(); trainer.stop(); done.wait(120)
total = -(-batch // objectives.OT_MAX_POINTS)
print(json.dumps({"batch": batch, "admitted_by_server": admitted, "stop_seconds": time.monotonic() - start,
                  "chunks_after_stop": len(chunks) - at_stop, "chunks_per_pairing": total,
                  "chunk_seconds": (chunks[2] - chunks[0]) / 2, "iterations": results[0].iterations}))
"""


def _probe(code: str, root: Path, *args: str, timeout: float = 120) -> dict:
    env = {**os.environ, "PYTHONPATH": str(root)}
    try:
        out = subprocess.run(
            [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=root, env=env, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return {"timeout": timeout}
    lines = out.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else {"error": out.stderr.strip().splitlines()[-1:]}


def _students(hogs: int, seconds: float, fair: bool) -> float | None:
    """Seconds until a new student's run trains while one student holds ``hogs`` runs (None: not in ``seconds``)."""
    from cnfviz.runtime.admission import Admission
    from cnfviz.runtime.job import TrainingJob
    from cnfviz.runtime.scheduler import Scheduler

    slots = Scheduler(hogs)
    slots.admission = Admission(budget_bytes=None, per_student=4) if fair else None
    cfg = default_config(
        "moons",
        model={"hidden": (8,)},
        solver={"method": "rk4", "step_size": 0.5},
        batch_size=16,
        eval_every=0,
        adam_iters=1_000_000,
        n_test=50,
    )
    jobs = [TrainingJob(cfg, slots=slots, owner="hog", compute_final_metrics=False).start() for _ in range(hogs)]
    time.sleep(1.0)
    new = TrainingJob(cfg.replace(seed=7), slots=slots, owner="student-33", compute_final_metrics=False).start()
    start = time.monotonic()
    waited = None
    while time.monotonic() - start < seconds:
        if new.snapshot().iteration >= 1:
            waited = time.monotonic() - start
            break
        time.sleep(0.05)
    for job in [*jobs, new]:
        job.stop(evaluate=False)
    for job in [*jobs, new]:
        job.join(10)
    return waited


def issue21(before: Path | None) -> None:
    """The four figures of issue 21, for this checkout and (with ``--before``) another one's code."""
    trees = [("after", ROOT)] + ([("before", before)] if before else [])
    print("\nIssue 21: a hostile 174-byte picture (10,000 × 1 PNG) on the Train page's upload (image_target):")
    for name, root in trees:
        r = _probe(_STRIP, root)
        print(
            f"  {name:<7} peak RSS growth {r.get('growth', 0) / 1e9:6.2f} GB, "
            f"held after {r.get('held', 0) / 1e9:6.2f} GB,"
            f" image {r.get('shape')} {r.get('error') or ''}   goal < +1 GB"
        )
    print("A link with a fine fixed grid (euler, step 1e-7, no NFE cap, batch 8) on a server's TrainingJob:")
    r = _probe(_GRID, ROOT)
    print(f"  after   peak RSS growth {r.get('growth', 0) / 1e9:6.2f} GB, {r.get('state')}")
    if before:
        print(
            "  before  not run here: it builds a 5,000,001-point grid per solve and trains for minutes "
            "(issue 21 measured a server going from 0.5 to 8.8 GB with step 1e-9)"
        )
    print("Time to an answer from an address that accepts TCP and says nothing (make_backend('ray', ...)):")
    for name, root in trees:
        r = _probe(_SILENT, root, timeout=40)
        said = r.get("said", f"no answer within {r.get('timeout', '?')} s (killed)")
        print(f"  {name:<7} {r.get('seconds', float('nan')):6.1f} s  {said}   goal < 15 s")
    print("The 33rd student's wait while one student holds 32 runs (this checkout; 'before' = no admission policy):")
    for label, fair in (("after", True), ("before", False)):
        waited = _students(32, 20.0, fair)
        shown = f"{waited:6.2f} s" if waited is not None else "  > 20 s (still queued)"
        print(f"  {label:<7} {shown}   goal: trains within 10 s")
    ot_stop(trees)


def ot_stop(trees: list[tuple[str, Path]]) -> None:
    """Stop during the OT pairing: how long it takes, and how many chunks are still solved after it."""
    print("Stop during the OT pairing, asked while the third chunk of the first pairing is solved (library Trainer):")
    for batch in (2816, 16384):
        for name, root in trees:
            r = _probe(_OT_STOP, root, str(batch), timeout=200)
            print(
                f"  {name:<7} batch {batch:>6,} ({r.get('chunks_per_pairing', '?')} chunks of "
                f"{r.get('chunk_seconds', float('nan')) * 1000:3.0f} ms), admitted by a server: "
                f"{r.get('admitted_by_server')}; Stop took {r.get('stop_seconds', float('nan')):5.2f} s, "
                f"{r.get('chunks_after_stop', '?')} chunks solved after it, {r.get('iterations', '?')} iterations"
                "   goal < 1 s"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer links and no accuracy runs")
    parser.add_argument("--hold", type=float, default=10.0, help="seconds each tab stays open")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--log", default="/tmp/cnfviz-bench-abuse.log")
    parser.add_argument("--skip-server", action="store_true", help="only the check cost and the estimate")
    parser.add_argument("--issue21", action="store_true", help="only issue 21's four figures (no browser)")
    parser.add_argument(
        "--before", type=Path, help="with --issue21 or --ot-stop: a checkout whose code gives the 'before'"
    )
    parser.add_argument("--ot-stop", action="store_true", help="only issue 21's Stop-during-OT-pairing figure")
    args = parser.parse_args()
    if args.ot_stop:
        ot_stop([("after", ROOT)] + ([("before", args.before)] if args.before else []))
        return 0
    if args.issue21:
        issue21(args.before)
        return 0
    check_cost()
    if not args.quick:
        accuracy()
    if not args.skip_server:
        attack(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
