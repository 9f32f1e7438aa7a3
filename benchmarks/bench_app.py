"""Figures for the app's speed goals, measured in a real browser (a script, not a test; it asserts nothing).

1. From pressing Train to the first loss point on screen (goal ≤ 1 s with torch imported).
2. Training iterations/s with a browser tab watching, against a headless :class:`~cnfviz.Trainer` on the
   same config and thread count, run before and after (goal ≥ 90 %).
3. The server's resident memory over the watched run (goal: flat).

Run from the repository root (Chromium and playwright needed)::

    python benchmarks/bench_app.py --target moons --seconds 60 --memory-seconds 300
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from harness import free_port, launch_options, start_server, stop_server, wait_healthy

ROOT = Path(__file__).resolve().parents[1]

HEADLESS = """
import sys, time
from cnfviz import Trainer, default_config
from cnfviz.runtime.housekeeping import configure_threads
target, seconds, iters = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
configure_threads(2)  # what the app's job does with the default cap of two jobs
# Warm-up: the imports and first-iteration costs, which the app's warm-up pays before a run too.
Trainer(default_config(target, adam_iters=3, eval_every=0)).run(final_metrics=False)
trainer = Trainer(default_config(target, adam_iters=iters, max_seconds=seconds))
start = time.perf_counter()
result = trainer.run(final_metrics=False)
print(result.iterations / (time.perf_counter() - start))
"""


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def headless_rate(target: str, seconds: float, cpus: set[int] | None = None) -> float:
    out = subprocess.run(
        [sys.executable, "-c", HEADLESS, target, str(seconds), "1000000"],
        cwd=ROOT,
        preexec_fn=_pin(cpus),
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def _pin(cpus: set[int] | None):
    """A preexec_fn that restricts a child process to ``cpus`` (None: no restriction)."""
    if cpus is None:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="moons")
    parser.add_argument("--seconds", type=float, default=60.0, help="measuring window for iterations/s")
    parser.add_argument("--memory-seconds", type=float, default=0.0, help="keep watching this long for memory")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument(
        "--pin",
        action="store_true",
        help="server and headless runs on CPU 0, browser and Playwright on the others: a student's browser "
        "runs on the student's machine, not on the server",
    )
    args = parser.parse_args()
    server_cpus = {0} if args.pin else None
    if args.pin:  # Playwright's driver and Chromium inherit this process's affinity
        os.sched_setaffinity(0, set(range(1, os.cpu_count() or 2)) or {0})

    from playwright.sync_api import sync_playwright

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(port, cpus=server_cpus)
    report: dict[str, object] = {"target": args.target, "pinned": args.pin}
    try:
        wait_healthy(server, url)
        report["headless_its_before"] = headless_rate(args.target, args.seconds, server_cpus)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(**launch_options(args.chromium))
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.goto(url)
            page.wait_for_selector('[data-testid="stSidebarNav"]', timeout=60_000)
            page.wait_for_timeout(3000)  # the server's one-off warm-up
            page.get_by_role("link", name="Train a flow now").click()
            page.wait_for_selector(".st-key-train_train_button", timeout=30_000)
            picker = page.locator(".st-key-train_target input").first
            picker.click()
            picker.fill(args.target)
            page.get_by_role("option", name=re.compile(f"^{re.escape(args.target)} ")).click()
            page.wait_for_timeout(1500)
            iters = page.locator(".st-key-train_adam_iters input").first
            iters.fill("1000000")
            iters.press("Enter")
            page.wait_for_timeout(1500)

            def iteration() -> int:
                bar = page.locator('[data-testid="stProgress"]')
                m = re.search(r"Iteration ([\d,]+)", bar.first.inner_text() if bar.count() else "")
                return int(m.group(1).replace(",", "")) if m else 0

            # The loss chart is a live chart: its plot is inside the component's (same-origin) iframe.
            js = """() => { const f = document.querySelector('.st-key-train_loss_chart iframe');
                const p = f && f.contentDocument && f.contentDocument.querySelector('.js-plotly-plot');
                return p && p._fullData && p._fullData.length ? p._fullData[0]._length : -1; }"""
            clicked = time.perf_counter()
            page.locator(".st-key-train_train_button button").filter(visible=True).click()
            while page.evaluate(js) < 1:
                time.sleep(0.02)
            report["click_to_first_loss_point_s"] = round(time.perf_counter() - clicked, 3)
            page.wait_for_timeout(5000)
            i0, t0 = iteration(), time.perf_counter()
            memory = [(0.0, round(_rss_mib(server.pid), 1))]
            next_sample = t0 + 10
            while True:
                now = time.perf_counter()
                if "watched_its" not in report and now >= t0 + args.seconds:
                    report["watched_its"] = (iteration() - i0) / (now - t0)
                if now >= t0 + max(args.seconds, args.memory_seconds):
                    break
                if now >= next_sample:
                    memory.append((round(now - t0), round(_rss_mib(server.pid), 1)))
                    next_sample += 10
                time.sleep(0.2)
            report["rss_mib"] = memory
            page.locator(".st-key-train_stop_button button").filter(visible=True).click()
            browser.close()
        report["headless_its_after"] = headless_rate(args.target, args.seconds, server_cpus)
        headless = (report["headless_its_before"] + report["headless_its_after"]) / 2
        report["watched_over_headless"] = round(report["watched_its"] / headless, 3)
    finally:
        stop_server(server)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
