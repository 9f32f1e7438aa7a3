"""The live channel against polling: N real Chromium tabs train moons on one server, and we count what each
tab sees and what the server spends.

For each tab: loss-chart updates per second and the largest gap between two (sampled in the page every
100 ms), messages sent up the websocket per second (each a script rerun request), bytes fetched over HTTP by
the page open and its first run (Chromium's own network log), and of those plotly's. For the server: CPU
seconds per second of its training threads (``cnfviz-job``/``cnfviz-stack``) and of everything else (the event
loop, script runs, streams), from ``/proc``.

    python benchmarks/bench_live_channel.py --tree . --tabs 1 --seconds 30
    python benchmarks/bench_live_channel.py --tree /work/main --tabs 5 --seconds 30   # main, side by side
    python benchmarks/bench_live_channel.py --costs --seconds 20   # CPU per stream tick and per picture
    python benchmarks/bench_live_channel.py --compare --trees /work/main . --seconds 20   # Compare, side by side

``--compare``: one Compare page trains three runs (moons, widths 32, 64, 128); for each tree in turn it prints
the page's script reruns per second (``rerun_script`` BackMsgs up its websocket), the bytes per second it
receives (websocket frames and HTTP, the live streams included), how many points each run's curve gained per
second, and the server's CPU; then the ratios of the last tree's figures to the first's.

Prints one JSON object. Timings depend on the machine's load: run both trees back to back.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CHROMIUM_ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run"]
TRAINING_THREADS = ("cnfviz-job", "cnfviz-stack")
# Runs in every frame of the tab; the top frame samples the loss chart's points every 100 ms.
SAMPLER_JS = r"""
if (window === window.top) {
  window.__loss = [];
  const iteration = function () {
    const bar = document.querySelector('[data-testid="stProgress"]');
    const m = bar && /Iteration ([\d,]+)/.exec(bar.innerText);
    return m ? Number(m[1].replace(/,/g, "")) : -1;
  };
  setInterval(function () {
    const frame = document.querySelector('.st-key-train_loss_chart iframe');
    const plot = frame && frame.contentDocument && frame.contentDocument.querySelector('.js-plotly-plot');
    const n = plot && plot._fullData && plot._fullData.length ? plot._fullData[0]._length : -1;
    const log = window.__loss;
    if (!log.length || log[log.length - 1][1] !== n) log.push([Date.now(), n, iteration()]);
  }, 100);
}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu(pid: int) -> tuple[float, float]:
    """(training threads', everything else's) CPU seconds of process ``pid`` so far."""
    tick = os.sysconf("SC_CLK_TCK")
    train = other = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            comm = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds = (int(fields[11]) + int(fields[12])) / tick
        if comm.startswith(TRAINING_THREADS):
            train += seconds
        else:
            other += seconds
    return train, other


def serve(tree: Path, port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless=true", f"--server.port={port}"]
    cmd += ["--server.address=127.0.0.1", "--server.fileWatcherType=none", "--browser.gatherUsageStats=false"]
    proc = subprocess.Popen(cmd, cwd=tree, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
            return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"the server did not start: {log.read_text()[-2000:]}")


def measure(url: str, pid: int, tabs: int, seconds: float, query: str) -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        # One warm-up visit, as a teacher's would be: the first page run imports torch.
        warm = browser.new_page()
        warm.goto(f"{url}/train")
        warm.wait_for_selector(".st-key-train_train_button", timeout=120_000)
        warm.context.close()
        pages = []
        for _ in range(tabs):
            context = browser.new_context(viewport={"width": 1366, "height": 768})
            page = context.new_page()
            page.add_init_script(SAMPLER_JS)
            info = {"up": 0, "http": 0, "plotly": 0, "ids": {}}
            page.on(
                "websocket", lambda ws, info=info: ws.on("framesent", lambda _p: info.__setitem__("up", info["up"] + 1))
            )
            cdp = context.new_cdp_session(page)
            cdp.send("Network.enable")
            cdp.on(
                "Network.requestWillBeSent",
                lambda e, info=info: info["ids"].__setitem__(e["requestId"], e["request"]["url"]),
            )

            def done(e, info=info):
                info["http"] += int(e["encodedDataLength"])
                if "plotly" in info["ids"].get(e["requestId"], ""):
                    info["plotly"] += int(e["encodedDataLength"])

            cdp.on("Network.loadingFinished", done)
            pages.append((page, info))
        for page, _ in pages:
            page.goto(f"{url}/train?{query}", wait_until="commit")
        first_loss = time.monotonic() + 180
        while time.monotonic() < first_loss:
            counts = [page.evaluate("() => (window.__loss || []).filter(e => e[1] > 0).length") for page, _ in pages]
            if all(c > 0 for c in counts):
                break
            pages[0][0].wait_for_timeout(200)
        ups = [info["up"] for _, info in pages]
        cpu0, t0 = _cpu(pid), time.monotonic()
        start_ms = pages[0][0].evaluate("Date.now()")
        pages[0][0].wait_for_timeout(seconds * 1000)
        cpu1, t1 = _cpu(pid), time.monotonic()
        end_ms = pages[0][0].evaluate("Date.now()")
        per_tab = []
        for (page, info), up0 in zip(pages, ups, strict=True):
            log = [e for e in page.evaluate("() => window.__loss") if start_ms <= e[0] <= end_ms and e[1] > 0]
            times = [start_ms] + [e[0] for e in log] + [end_ms]
            gaps = [b - a for a, b in itertools.pairwise(times)]
            per_tab.append(
                {
                    "loss_updates_per_s": round(len(log) / seconds, 2),
                    "iterations_per_s": round((log[-1][2] - log[0][2]) / seconds, 2) if len(log) > 1 else 0.0,
                    "largest_gap_s": round(max(gaps) / 1000, 2),
                    "websocket_up_per_s": round((info["up"] - up0) / seconds, 2),
                    "http_bytes_page_open": info["http"],
                    "plotly_bytes": info["plotly"],
                }
            )
        browser.close()
    wall = t1 - t0
    keys = per_tab[0].keys()
    return {
        "tabs": tabs,
        "seconds": round(wall, 1),
        "server_training_cores": round((cpu1[0] - cpu0[0]) / wall, 2),
        "server_other_cores": round((cpu1[1] - cpu0[1]) / wall, 2),
        "mean": {k: round(sum(t[k] for t in per_tab) / len(per_tab), 2) for k in keys},
        "worst_gap_s": max(t["largest_gap_s"] for t in per_tab),
        "least_updates_per_s": min(t["loss_updates_per_s"] for t in per_tab),
        "per_tab": per_tab,
    }


# Each run's training-NLL line in the Compare page's loss chart: in the page (a polled st.plotly_chart) or in the
# live chart's frame (the live channel).
COMPARE_POINTS_JS = """() => {
  const frame = document.querySelector('.st-key-compare_loss_chart iframe');
  const doc = frame && frame.contentDocument ? frame.contentDocument : document;
  const plot = doc.querySelector(frame ? '.js-plotly-plot' : '.st-key-compare_loss_chart .js-plotly-plot');
  if (!plot || !plot._fullData) return null;
  return plot._fullData.filter(t => t.xaxis === 'x' && t.mode === 'lines').map(t => t._length || 0);
}"""


def _is_rerun(payload: bytes | str) -> bool:
    from streamlit.proto.BackMsg_pb2 import BackMsg

    msg = BackMsg()
    try:
        msg.ParseFromString(payload if isinstance(payload, bytes) else payload.encode("latin-1"))
    except Exception:  # not a BackMsg
        return False
    return msg.WhichOneof("type") == "rerun_script"


def measure_compare(url: str, pid: int, seconds: float, iterations: int) -> dict:
    """One Compare page with three runs: its script reruns and bytes received per second while they train."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        warm = browser.new_page()
        warm.goto(f"{url}/compare")
        warm.wait_for_selector(".st-key-compare_start_button", timeout=120_000)
        warm.context.close()
        context = browser.new_context(viewport={"width": 1366, "height": 768})
        page = context.new_page()
        log = {"reruns": 0, "ws_down": 0, "http_down": 0}
        ws_sent: list[bytes | str] = []

        def on_ws(ws) -> None:
            ws.on("framesent", lambda payload: ws_sent.append(payload))
            ws.on("framereceived", lambda b: log.__setitem__("ws_down", log["ws_down"] + len(b)))

        page.on("websocket", on_ws)
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.on(
            "Network.dataReceived",
            lambda e: log.__setitem__("http_down", log["http_down"] + int(e.get("encodedDataLength", 0))),
        )
        page.goto(f"{url}/compare")
        page.wait_for_selector(".st-key-compare_start_button", timeout=120_000)
        box = page.locator(".st-key-compare_adam_iters input").first
        box.fill(str(iterations))
        box.press("Enter")
        page.get_by_text("3 runs: width = 32 · width = 64 · width = 128").wait_for(timeout=30_000)
        page.locator(".st-key-compare_start_button button").filter(visible=True).click()
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            points = page.evaluate(COMPARE_POINTS_JS)
            if points and len(points) == 3 and min(points) >= 2:
                break
            page.wait_for_timeout(250)
        else:
            raise SystemExit("the comparison drew no points in 240 s")
        page.wait_for_timeout(2000)  # past the start's own reruns
        sent0, ws0, http0 = len(ws_sent), log["ws_down"], log["http_down"]
        points0 = page.evaluate(COMPARE_POINTS_JS)
        cpu0, t0 = _cpu(pid), time.monotonic()
        page.wait_for_timeout(seconds * 1000)
        cpu1, t1 = _cpu(pid), time.monotonic()
        points1 = page.evaluate(COMPARE_POINTS_JS)
        window = ws_sent[sent0:]
        ws_bytes, http_bytes = log["ws_down"] - ws0, log["http_down"] - http0
        live = page.evaluate("() => !!document.querySelector('.st-key-compare_loss_chart iframe')")
        page.locator(".st-key-compare_stop_button button").filter(visible=True).click()
        page.wait_for_timeout(1000)
        browser.close()
    wall = t1 - t0
    return {
        "live_channel": live,
        "seconds": round(wall, 1),
        "script_reruns_per_s": round(sum(_is_rerun(m) for m in window) / wall, 2),
        "websocket_up_per_s": round(len(window) / wall, 2),
        "bytes_down_per_s": round((ws_bytes + http_bytes) / wall),
        "websocket_bytes_down_per_s": round(ws_bytes / wall),
        "http_bytes_down_per_s": round(http_bytes / wall),
        "points_per_s_per_run": [round((b - a) / wall, 2) for a, b in zip(points0, points1, strict=True)],
        "server_training_cores": round((cpu1[0] - cpu0[0]) / wall, 2),
        "server_other_cores": round((cpu1[1] - cpu0[1]) / wall, 2),
    }


def compare_side_by_side(trees: list[Path], seconds: float, iterations: int, log: Path) -> dict:
    """:func:`measure_compare` on each tree in turn (one server each), with the last tree's ratios to the first."""
    out: dict = {"trees": {}}
    for tree in trees:
        port = _free_port()
        proc = serve(tree.resolve(), port, log)
        try:
            out["trees"][str(tree)] = measure_compare(f"http://127.0.0.1:{port}", proc.pid, seconds, iterations)
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
    if len(trees) > 1:
        first, last = out["trees"][str(trees[0])], out["trees"][str(trees[-1])]
        keys = ("script_reruns_per_s", "bytes_down_per_s", "server_other_cores")
        out["last_over_first"] = {k: round(last[k] / first[k], 3) if first[k] else None for k in keys}
    return out


def stream_costs(seconds: float) -> dict:
    """CPU milliseconds the server spends per stream tick (snapshot, loss delta, status) and per new picture
    (the density and flow specs), on one moons run training in this process."""
    import numpy as np

    from cnfviz.runtime.job import TrainingJob
    from cnfviz.training.presets import default_config
    from cnfviz.ui.stream import LossCursor, status_payload
    from cnfviz.ui.views import CHART_HEIGHT, live_specs, loss_curves

    job = TrainingJob(default_config("moons", adam_iters=100_000, eval_every=0)).start()
    cursor = LossCursor([0])
    ticks, specs = [], []
    end = time.monotonic() + seconds
    version = -1
    while time.monotonic() < end:
        t0 = time.thread_time()
        snap = job.snapshot()
        _, curves = loss_curves(snap)
        delta = cursor.delta(curves)
        json.dumps({"curves": delta})
        json.dumps(status_payload(snap))
        ticks.append(time.thread_time() - t0)
        if snap.visuals is not None and snap.visuals_version != version:
            version = snap.visuals_version
            t0 = time.thread_time()
            live_specs(snap, height=CHART_HEIGHT, present=False, overlay=False)
            specs.append(time.thread_time() - t0)
        time.sleep(0.4)
    snap = job.snapshot()
    job.stop(evaluate=False)
    return {
        "tick_ms_median": round(1000 * float(np.median(ticks)), 2),
        "tick_ms_max": round(1000 * max(ticks), 2),
        "pictures": len(specs),
        "picture_specs_ms_median": round(1000 * float(np.median(specs)), 1) if specs else None,
        "iterations": snap.iteration,
        "run_seconds": round(snap.elapsed, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", type=Path, default=Path(__file__).resolve().parents[1], help="the checkout to serve")
    ap.add_argument("--tabs", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--query", default="target=moons&adam=3000&autostart=1")
    ap.add_argument("--log", type=Path, default=Path("/tmp/bench_live_channel_server.log"))
    ap.add_argument("--costs", action="store_true", help="only the stream's CPU cost per tick and per picture")
    ap.add_argument("--compare", action="store_true", help="one Compare page with three runs, per tree")
    ap.add_argument("--trees", type=Path, nargs="+", help="with --compare: the checkouts to serve, in turn")
    ap.add_argument("--iterations", type=int, default=3000, help="with --compare: Adam iterations per run")
    args = ap.parse_args()
    if args.compare:
        out = compare_side_by_side(args.trees or [args.tree], args.seconds, args.iterations, args.log)
        print(json.dumps({**out, "load_average": os.getloadavg()}, indent=2))
        return
    if args.costs:
        print(json.dumps({**stream_costs(args.seconds), "load_average": os.getloadavg()}, indent=2))
        return
    port = _free_port()
    proc = serve(args.tree.resolve(), port, args.log)
    try:
        out = measure(f"http://127.0.0.1:{port}", proc.pid, args.tabs, args.seconds, args.query)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
    out["tree"] = str(args.tree)
    out["load_average"] = os.getloadavg()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
