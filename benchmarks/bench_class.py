"""A class on one server, played without browsers: 30-100 students speaking Streamlit's websocket protocol
(``harness.tab``) open ``/train?preset=classroom&autostart=1`` and watch their run (a load test; it prints
figures against the classroom goals of issue 19 and asserts nothing).

The teacher's server is started fresh and warmed only by its own start-up. Students arrive evenly over
``--ramp`` seconds (``--ramp 0``: all at one instant), each stays until their run ends (a Done, Stopped or
Failed note) or ``--stay`` seconds pass, optionally presses Reset then Train once more (``--second-run``)
and watches that run for up to ``--second-stay`` seconds, then closes the tab. After every tab closed and
the reconnect grace (``CNFVIZ_RECONNECT_GRACE``, small here) has passed, the server's memory is read again.

Figures, each a distribution over the students: first loss point and first density picture from page
open; loss updates per second while the run trains and the largest gap between two; iterations reached;
fragment reruns sent and answered (and their latency); the bytes each iframe downloaded on the first and
second run; the server's CPU (cores, mean over the class) and RSS before, at the peak and after, for the
web-server process and its worker processes apart. ``uptime``'s load is printed beside them: on a shared
machine the figures mean little without it.

``--calibrate`` instead opens the page once in a real headless Chromium and once with the protocol client,
each on a fresh server for the same seconds, and compares the websocket's message mix, the HTTP fetches, and
the live channel as each tab saw it: events per second, loss updates applied, first loss point, largest gap.

Run from the repository root::

    python benchmarks/bench_class.py --students 30 --ramp 10 --stay 120 --json class.json
    python benchmarks/bench_class.py --students 30 --ramp 0 --stay 60      # all at one instant
    python benchmarks/bench_class.py --calibrate --stay 30
    python benchmarks/bench_class.py --root /work/main ...                  # the server from another checkout
    python benchmarks/bench_class.py --students 60 --stay 240 --server-env CNFVIZ_MAX_JOBS=60
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import tempfile
import time
import urllib.parse
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from harness import ROOT, Sample, ServerWatch, cores, free_port, start_server, stop_server, wait_healthy
from harness.tab import Tab

PAGE = "/train?preset=classroom&autostart=1"
SAMPLE_EVERY_S = 0.5
GOALS = {
    "first_loss_p95_s": 3.0,
    "first_density_p95_s": 5.0,
    "loss_updates_per_s_min": 1.0,
    "largest_gap_s": 3.0,
    "web_server_cores": 0.5,
    "rss_after_ratio": 1.10,
}


def load() -> str:
    """The machine's load average over 1, 5 and 15 minutes, as ``uptime`` prints it."""
    return ", ".join(Path("/proc/loadavg").read_text().split()[:3])


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    xs = sorted(values)
    return xs[min(len(xs) - 1, max(0, round(q / 100 * (len(xs) - 1))))]


def dist(values: list[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "p50": pct(values, 50),
        "p95": pct(values, 95),
        "min": min(values) if values else None,
        "max": max(values) if values else None,
    }


def fmt(d: dict[str, Any], unit: str = " s", of: int | None = None) -> str:
    if not d["n"]:
        return "none" + (f" (0 of {of})" if of else "")
    n = f" (n = {d['n']}{f' of {of}' if of else ''}, max {d['max']:.2f})"
    return f"{d['p50']:.2f} / {d['p95']:.2f}{unit}{n}"


# ---------------------------------------------------------------------------------------------- students


async def student(base: str, index: int, at: float, args: argparse.Namespace, tabs: list[Tab]) -> None:
    await asyncio.sleep(max(0.0, at - time.monotonic()))
    tab = Tab(base, args.page, "train")
    tabs.append(tab)
    r = tab.record
    try:
        await tab.open()
        await _watch(tab, 0, args.stay)
        if args.second_run and r.run_ended and r.t() < args.stay:
            if await tab.press("train_reset_button"):
                await _until(lambda: "train_train_button" in tab.widgets and tab.record.full_runs >= 2, 30)
                await asyncio.sleep(0.5)
                tab.new_run()
                await tab.press("train_train_button")
                await _watch(tab, 1, args.second_stay)
    except Exception as err:  # a failure is a figure of the run, not a reason to stop the class
        r.errors.append(f"student {index}: {type(err).__name__}: {err}"[:300])
    finally:
        try:
            await tab.close()
        except Exception:
            pass


async def _until(cond: Any, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        await asyncio.sleep(0.1)
    return False


async def _watch(tab: Tab, run: int, stay: float) -> None:
    """Until the run's end note appears (then 1 s more, as a student reads it) or ``stay`` seconds pass."""
    start = tab.record.t()
    await _until(lambda: len(tab.record.run_ended) > run, max(0.0, stay - (tab.record.t() - start)))
    if len(tab.record.run_ended) > run:
        await asyncio.sleep(1.0)


async def sample_until(watch: ServerWatch, samples: list[Sample], done: asyncio.Event) -> None:
    while not done.is_set():
        samples.append(await asyncio.to_thread(watch.sample))
        try:
            await asyncio.wait_for(done.wait(), SAMPLE_EVERY_S)
        except asyncio.TimeoutError:
            pass


async def warm_visit(base: str, args: argparse.Namespace) -> dict[str, Any]:
    """One tab opens the page and waits for its first loss point (at most ``args.stay`` seconds), then
    closes: the issue's first measurement warmed the server this way; the goals ask for none."""
    tab = Tab(base, args.page, "train")
    await tab.open()
    await _until(lambda: bool(tab.record.loss), args.stay)
    await tab.close()
    await asyncio.sleep(args.grace + 2)
    r = tab.record
    return {"first_loss_s": r.loss[0][0] if r.loss else None, "open_s": r.closed}


async def run_class(base: str, watch: ServerWatch, args: argparse.Namespace) -> dict[str, Any]:
    # Each student is a browser of its own, with its own connections. asyncio's default executor has
    # min(32, cores + 4) threads: 30 students arriving at once queued their page fetches (and the sampler's
    # reads) behind 6 threads, which the first pass counted as the server's slowness.
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=4 * args.students + 8))
    samples: list[Sample] = []
    done = asyncio.Event()
    warm = await warm_visit(base, args) if args.warm_visit else None
    sampler = asyncio.ensure_future(sample_until(watch, samples, done))
    await asyncio.sleep(1.0)
    before = watch.sample()
    load_before = load()
    start = time.monotonic()
    gap = args.ramp / max(1, args.students - 1)
    tabs: list[Tab] = []
    await asyncio.gather(*(student(base, i, start + i * gap, args, tabs) for i in range(args.students)))
    bell = watch.sample()
    load_bell = load()
    class_s = time.monotonic() - start
    await asyncio.sleep(args.grace + args.after)
    after = watch.sample()
    done.set()
    await sampler
    return {
        "tabs": tabs,
        "samples": samples,
        "before": before,
        "bell": bell,
        "after": after,
        "class_s": class_s,
        "warm_visit": warm,
        "load": {"before": load_before, "bell": load_bell, "after": load()},
    }


# ---------------------------------------------------------------------------------------------- report


def per_student(tab: Tab, total: int | None = None) -> dict[str, Any]:
    """One student's figures; ``total`` is the run's iteration count (after its last point no update is due)."""
    r = tab.record
    end0 = r.runs_started[1] if len(r.runs_started) > 1 else (r.closed or r.t())
    if r.run_ended:
        end0 = min(end0, r.run_ended[0])
    run0 = [x for x in r.loss if x[0] <= end0 + 1e-6]
    first = run0[0][0] if run0 else None
    times = [x[0] for x in run0]
    span = (times[-1] - times[0]) if len(times) > 1 else 0.0
    # (length, when it began since the run started, the iteration shown when it began)
    start0 = r.runs_started[0] if r.runs_started else 0.0
    gaps = [(b[0] - a[0], a[0] - start0, a[2]) for a, b in itertools.pairwise(run0)]
    trained_out = total is not None and run0 and run0[-1][2] is not None and run0[-1][2] >= total
    if first is not None and not trained_out:
        # silence until the run ended or the tab closed counts, unless it had no more to do
        gaps.append((end0 - times[-1], times[-1] - start0, run0[-1][2]))
    largest = max(gaps) if gaps else (None, None, None)
    iters = [it for t, it in r.progress if t <= end0]
    iters += [x[2] for x in run0 if x[2] is not None]
    second = [s for s in r.static if s[1] == 1]
    return {
        "first_loss_s": first,
        "first_density_s": r.pictures.get("density#0"),
        "loss_updates": len(run0),
        "updates_per_s": (len(run0) - 1) / span if span > 0 else None,
        "largest_gap_s": largest[0],
        "largest_gap_at_s": largest[1],
        "largest_gap_iteration": largest[2],
        "iterations": max(iters) if iters else 0,
        "run_seconds": (r.run_ended[0] - r.runs_started[0]) if r.run_ended else None,
        "last_iteration_s": next((t - r.runs_started[0] for t, _, it, _ in run0 if total and it and it >= total), None),
        "ended": bool(r.run_ended),
        "second_run": len(r.runs_started) > 1,
        "second_first_loss_s": next((x[0] - r.runs_started[1] for x in r.loss if x[0] > r.runs_started[1]), None)
        if len(r.runs_started) > 1
        else None,
        "static_bytes_first": sum(s[4] for s in r.static if s[1] == 0 and not s[2].startswith("/train")),
        "static_bytes_second": sum(s[4] for s in second),
        "static_requests_second": Counter(str(s[3]) for s in second),
        "fragment_sent": r.fragment_sent,
        "fragment_answered": r.fragment_answered,
        "latency": r.fragment_latency,
        "via": Counter(x[3] for x in r.loss),
        "errors": r.errors,
        "ref_misses": r.ref_misses,
        "msgs_in": dict(r.msgs_in),
        "msgs_out": dict(r.msgs_out),
        "bytes_in": r.bytes_in,
        "bytes_out": r.bytes_out,
        "open_s": r.closed,
    }


def summarize(run: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    students = [per_student(t, args.iterations) for t in run["tabs"]]
    samples: list[Sample] = run["samples"]
    before, bell, after = run["before"], run["bell"], run["after"]
    during = [s for s in samples if before.t <= s.t <= bell.t] or [bell]
    vals = lambda k: [s[k] for s in students if s[k] is not None]  # noqa: E731
    latency = [x for s in students for x in s["latency"]]
    return {
        "settings": {
            "students": args.students,
            "ramp_s": args.ramp,
            "stay_s": args.stay,
            "second_run": args.second_run,
            "grace_s": args.grace,
            "warm_visit": args.warm_visit,
            "root": str(args.root),
            "cpus": os.cpu_count(),
            "server_env": args.server_env,
        },
        "load": run["load"],
        "warm_visit": run["warm_visit"],
        "class_s": round(run["class_s"], 1),
        "first_loss_s": dist(vals("first_loss_s")),
        "first_density_s": dist(vals("first_density_s")),
        "updates_per_s": dist(vals("updates_per_s")),
        "largest_gap_s": dist(vals("largest_gap_s")),
        "largest_gap_at_s": dist(vals("largest_gap_at_s")),
        "largest_gap_iteration": dist(vals("largest_gap_iteration")),
        "iterations": sorted(s["iterations"] for s in students),
        "runs_ended": sum(s["ended"] for s in students),
        "run_seconds": dist(vals("run_seconds")),
        "last_iteration_s": dist(vals("last_iteration_s")),
        "second_runs": sum(s["second_run"] for s in students),
        "second_first_loss_s": dist(vals("second_first_loss_s")),
        "static_mb_first": dist([s["static_bytes_first"] / 1e6 for s in students]),
        "static_mb_second": dist([s["static_bytes_second"] / 1e6 for s in students if s["second_run"]]),
        "static_second_status": dict(sum((s["static_requests_second"] for s in students), Counter())),
        "fragment_sent": sum(s["fragment_sent"] for s in students),
        "fragment_answered": sum(s["fragment_answered"] for s in students),
        "fragment_latency_s": dist(latency),
        "loss_via": dict(sum((s["via"] for s in students), Counter())),
        "cores": cores(before, bell),
        "rss_mib": {
            "before": round(before.rss_mib, 1),
            "peak": round(max(s.rss_mib for s in during), 1),
            "after": round(after.rss_mib, 1),
            "web_before": round(before.server_rss_mib, 1),
            "web_peak": round(max(s.server_rss_mib for s in during), 1),
            "web_after": round(after.server_rss_mib, 1),
            "workers_before": round(before.worker_rss_mib, 1),
            "workers_peak": round(max(s.worker_rss_mib for s in during), 1),
            "workers_after": round(after.worker_rss_mib, 1),
            "anon_before": round(before.anon_mib, 1),
            "anon_after": round(after.anon_mib, 1),
        },
        "worker_processes_peak": max(s.worker_processes for s in during),
        "threads": {"before": before.threads, "peak": max(s.threads for s in during), "after": after.threads},
        "errors": [e for s in students for e in s["errors"]],
        "ref_misses": sum(s["ref_misses"] for s in students),
        "students": students,
        "timeline": [s.brief() for s in samples],
    }


def print_report(rep: dict[str, Any]) -> None:
    st, n = rep["settings"], rep["settings"]["students"]
    c, m = rep["cores"], rep["rss_mib"]
    g = GOALS
    rows = [
        (
            "first loss point from page open, p50 / p95",
            f"p95 ≤ {g['first_loss_p95_s']:g} s",
            fmt(rep["first_loss_s"], of=n),
        ),
        (
            "first density picture, p50 / p95",
            f"p95 ≤ {g['first_density_p95_s']:g} s",
            fmt(rep["first_density_s"], of=n),
        ),
        (
            "loss updates per second per student, p50 / p95",
            f"≥ {g['loss_updates_per_s_min']:g} each",
            fmt(rep["updates_per_s"], "/s")
            + (f", lowest {rep['updates_per_s']['min']:.2f}" if rep["updates_per_s"]["n"] else ""),
        ),
        ("largest update gap per student, p50 / p95", f"≤ {g['largest_gap_s']:g} s", fmt(rep["largest_gap_s"], of=n)),
        ("iterations reached (run 1)", "400 each", ", ".join(map(str, rep["iterations"]))),
        ("runs that ended (Done/Stopped/Failed) while watched", f"{n}", f"{rep['runs_ended']} of {n}"),
        ("run seconds, start → last iteration seen", "≤ 120 s", fmt(rep["last_iteration_s"])),
        ("run seconds, start → end note (final metrics in)", "", fmt(rep["run_seconds"])),
        ("fragment reruns sent / answered", "", f"{rep['fragment_sent']} / {rep['fragment_answered']}"),
        ("  answer latency p50 / p95", "", fmt(rep["fragment_latency_s"])),
        ("web server CPU, cores (mean over the class)", f"< {g['web_server_cores']:g}", f"{c['web_server']:.2f}"),
        (
            "  worker processes / whole server / machine",
            "",
            f"{c['workers']:.2f} / {c['server']:.2f} / {c['machine']:.2f} of {st['cpus']}",
        ),
        ("  client (this script)", "", f"{c['browser_side']:.2f}"),
        (
            "server RSS before → peak → after (MiB)",
            f"after ≤ {m['before'] * g['rss_after_ratio']:.0f}",
            f"{m['before']:.0f} → {m['peak']:.0f} → {m['after']:.0f} ({m['after'] / max(1, m['before']) - 1:+.0%})",
        ),
        ("  web server process", "", f"{m['web_before']:.0f} → {m['web_peak']:.0f} → {m['web_after']:.0f}"),
        (
            "  worker processes (peak count)",
            "",
            f"{m['workers_before']:.0f} → {m['workers_peak']:.0f} → "
            f"{m['workers_after']:.0f} ({rep['worker_processes_peak']})",
        ),
        ("  heap (RssAnon) before → after", "", f"{m['anon_before']:.0f} → {m['anon_after']:.0f}"),
        ("iframe bytes downloaded, first run p50 / p95", "", fmt(rep["static_mb_first"], " MB")),
        (
            "iframe bytes downloaded, second run p50 / p95",
            "0",
            fmt(rep["static_mb_second"], " MB") + f"; statuses {rep['static_second_status']}",
        ),
        ("second run: first loss point after Train", "", fmt(rep["second_first_loss_s"])),
        ("loss updates read via", "", str(rep["loss_via"])),
        ("errors seen / ref_hash misses", "0 / 0", f"{len(rep['errors'])} / {rep['ref_misses']}"),
    ]
    print(
        f"\n{n} protocol-level students, ramp {st['ramp_s']:g} s, stay ≤ {st['stay_s']:g} s"
        f"{', then Reset+Train' if st['second_run'] else ''}, CNFVIZ_RECONNECT_GRACE={st['grace_s']:g}"
        f"{''.join(', ' + kv for kv in st.get('server_env', []))}, "
        f"server from {st['root']}; the class lasted {rep['class_s']:.0f} s"
    )
    if rep["warm_visit"] is not None:
        w = rep["warm_visit"]["first_loss_s"]
        print("warmed first by one tab, which saw its first loss point " + ("never" if w is None else f"at {w:.1f} s"))
    print(f"load average (1, 5, 15 min): before {rep['load']['before']}, at the bell {rep['load']['bell']}\n")
    head = ("figure", "goal", "measured")
    widths = [max(len(r[i]) for r in [*rows, head]) for i in range(3)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(x.ljust(w) for x, w in zip(r, widths, strict=True)) + " |")
    for e in Counter(rep["errors"]).most_common(8):
        print(f"  {e[1]}x {e[0]}")


# ---------------------------------------------------------------------------------------------- calibration


def _live_figures(updates: list[float], pictures: int, events: int, seconds: float) -> dict[str, Any]:
    """What a tab saw of its run's live channel: ``updates`` are the times (s since page open) of each loss
    update, ``pictures`` the pictures drawn, ``events`` the Server-Sent Events received."""
    span = updates[-1] - updates[0] if len(updates) > 1 else 0.0
    return {
        "first_loss_s": updates[0] if updates else None,
        "loss_updates_per_s": (len(updates) - 1) / span if span > 0 else 0.0,
        "largest_gap_s": max((b - a for a, b in itertools.pairwise(updates)), default=None),
        "pictures_per_s": pictures / seconds,
        "events_per_s": events / seconds,
    }


async def _protocol_once(base: str, seconds: float, page: str) -> dict[str, Any]:
    from harness.live import EventStream

    tab = Tab(base, page, "train")
    await tab.open()
    await asyncio.sleep(seconds)
    streams = [r for r in tab.readers or [] if isinstance(r, EventStream)]
    events = sum(r.events for r in streams)
    await tab.close()
    r = tab.record
    pictures = len(r.pictures)  # each chart's first picture: the client keeps no count of the others
    return {
        "up": dict(r.msgs_out),
        "down": dict(r.msgs_in),
        "http": Counter(s[2].rsplit("/", 1)[-1].split("?")[0] for s in r.static if s[3] != 0),
        "live": _live_figures([x[0] for x in r.loss], pictures, events, seconds),
        "fragment_times": r.fragment_times,
    }


_READ_LIVE = """() => {
  for (const f of document.querySelectorAll("iframe")) {
    const w = f.contentWindow, live = w && w.liveChart && w.liveChart.live;
    if (live && live.source) return {events: live.events, updates: live.updates, pictures: live.pictures};
  }
  return null;
}"""
"""The loss chart's own counters (``live_chart.js``): the iframe that holds the page's one EventSource."""


def _chromium_once(base: str, seconds: float, chromium: str | None, path: str) -> dict[str, Any]:
    from harness import launch_options
    from playwright.sync_api import sync_playwright
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    up: Counter[str] = Counter()
    down: Counter[str] = Counter()
    http: Counter[str] = Counter()
    times: list[float] = []
    start = time.monotonic()

    def sent(payload: Any) -> None:
        if isinstance(payload, bytes):
            msg = BackMsg()
            msg.ParseFromString(payload)
            kind = msg.WhichOneof("type") or "?"
            fragment = kind == "rerun_script" and msg.rerun_script.fragment_id
            up[kind + ("/fragment" if fragment else "")] += 1
            if fragment:
                times.append(time.monotonic() - start)

    def received(payload: Any) -> None:
        if isinstance(payload, bytes):
            msg = ForwardMsg()
            msg.ParseFromString(payload)
            kind = msg.WhichOneof("type") or "?"
            down[kind if kind != "delta" else f"delta/{msg.delta.WhichOneof('type')}"] += 1

    def on_ws(ws: Any) -> None:
        if "/_stcore/stream" in ws.url:
            ws.on("framesent", sent)
            ws.on("framereceived", received)

    def on_response(resp: Any) -> None:
        path = urllib.parse.urlsplit(resp.url).path
        if not path.startswith(("/static/", "/_stcore/")) and resp.request.resource_type != "eventsource":
            http[path.rsplit("/", 1)[-1]] += 1  # the page, the iframes' pages and their scripts

    updates: list[float] = []
    last = {"events": 0, "updates": 0, "pictures": 0}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(**launch_options(chromium))
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.on("websocket", on_ws)
            page.on("response", on_response)
            page.goto(base + path, wait_until="commit")
            # Read the chart's counters every 0.1 s: a loss update is when its count moves (the protocol
            # client records the same moment as it applies an event).
            while (now := time.monotonic() - start) < seconds:
                try:
                    seen = page.evaluate(_READ_LIVE)
                except Exception:  # the page is between two documents
                    seen = None
                if seen is not None:
                    updates.extend([now] * max(0, seen["updates"] - last["updates"]))  # each one, even two per read
                    last = {k: max(last[k], seen[k]) for k in last}
                page.wait_for_timeout(100)
        finally:
            browser.close()
    return {
        "up": dict(up),
        "down": dict(down),
        "http": http,
        "live": _live_figures(updates, last["pictures"], last["events"], seconds),
        "fragment_times": times,
    }


def calibrate(args: argparse.Namespace) -> None:
    results = {}
    for who in ("chromium", "protocol"):
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = Path(tempfile.mkdtemp(prefix="cnfviz-class-")) / "streamlit.log"
        server = start_server(port, server_env(args), log, root=args.root)
        try:
            wait_healthy(server, base, log)
            load_at = load()
            if who == "chromium":
                results[who] = _chromium_once(base, args.stay, args.chromium, args.page)
            else:
                results[who] = asyncio.run(_protocol_once(base, args.stay, args.page))
            results[who]["load"] = load_at
        finally:
            stop_server(server)
    kinds = sorted({k for r in results.values() for d in ("up", "down") for k in r[d]})
    print(f"\nOne tab on {args.page}, {args.stay:g} s each on a fresh server\n")
    print("| what (per second unless named) | Chromium | protocol client | protocol / Chromium |")
    print("|---|---|---|---|")

    def row(name: str, a: float | None, b: float | None, unit: str = "") -> None:
        ratio = f"{b / a:.2f}" if a and b is not None else "–"
        fa = "–" if a is None else f"{a:.2f}{unit}"
        fb = "–" if b is None else f"{b:.2f}{unit}"
        print(f"| {name} | {fa} | {fb} | {ratio} |")

    for d in ("up", "down"):
        for k in kinds:
            a, b = results["chromium"][d].get(k, 0), results["protocol"][d].get(k, 0)
            if a or b:
                row(f"websocket {d}: {k}", a / args.stay, b / args.stay)
    lc, lp = results["chromium"]["live"], results["protocol"]["live"]
    row("live channel: Server-Sent Events", lc["events_per_s"], lp["events_per_s"])
    row("live channel: loss updates applied", lc["loss_updates_per_s"], lp["loss_updates_per_s"])
    row("first loss point after page open", lc["first_loss_s"], lp["first_loss_s"], " s")
    row("largest gap between loss updates", lc["largest_gap_s"], lp["largest_gap_s"], " s")
    for who, r in results.items():
        print(
            f"  {who}: HTTP responses (cache hits included) besides Streamlit's own {dict(r['http'])}; load {r['load']}"
        )
    print("  (pictures: Chromium counts every one drawn; the protocol client records each chart's first)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=dict))


# ---------------------------------------------------------------------------------------------- CLI


def server_env(args: argparse.Namespace) -> dict[str, str]:
    # The server imports cnfviz from its own checkout, whatever this script's PYTHONPATH says.
    extra = dict(kv.split("=", 1) for kv in args.server_env)
    return {"CNFVIZ_RECONNECT_GRACE": f"{args.grace:g}", "PYTHONPATH": str(args.root), **extra}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--students", type=int, default=30)
    p.add_argument("--page", default=PAGE, help="the Train page link the students open (a lesson link)")
    p.add_argument(
        "--ramp", type=float, default=10.0, help="students arrive evenly over this many seconds (0: at once)"
    )
    p.add_argument("--stay", type=float, default=120.0, help="most seconds a student watches a run")
    p.add_argument(
        "--iterations",
        type=int,
        default=400,
        help="the page's run length (the classroom preset's): no update is due after it",
    )
    p.add_argument("--second-run", action="store_true", help="after the run ends, press Reset then Train once more")
    p.add_argument("--second-stay", type=float, default=30.0, help="most seconds a student watches the second run")
    p.add_argument("--grace", type=float, default=3.0, help="CNFVIZ_RECONNECT_GRACE for the server, seconds")
    p.add_argument("--after", type=float, default=5.0, help="seconds past the grace before memory is read again")
    p.add_argument(
        "--warm-visit",
        action="store_true",
        help="before the class, one tab waits for its first loss point and closes (the goals ask for none)",
    )
    p.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable for the server (repeat it), e.g. CNFVIZ_MAX_JOBS=100",
    )
    p.add_argument("--root", type=Path, default=ROOT, help="the checkout whose app.py the server runs")
    p.add_argument("--calibrate", action="store_true", help="one Chromium tab against one protocol tab")
    p.add_argument("--chromium", default=None, help="Chromium's executable (default: /usr/bin/chromium)")
    p.add_argument("--json", type=Path, help="write the full report here")
    return p.parse_args(argv)


def main() -> None:
    args = parse_args()
    args.root = args.root.resolve()
    if args.calibrate:
        calibrate(args)
        return
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = Path(tempfile.mkdtemp(prefix="cnfviz-class-")) / "streamlit.log"
    server = start_server(port, server_env(args), log, root=args.root)
    try:
        started = wait_healthy(server, base, log)
        run = asyncio.run(run_class(base, ServerWatch(server.pid), args))
    finally:
        stop_server(server)
    rep = summarize(run, args)
    rep["server_start_s"] = round(started, 2)
    rep["server_log"] = str(log)
    print_report(rep)
    print(f"  server log: {log}")
    if args.json:
        args.json.write_text(json.dumps(rep, indent=1, default=dict))
        print(f"  full report: {args.json}")


if __name__ == "__main__":
    main()
