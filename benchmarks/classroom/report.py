"""The classroom's figures: a report (JSON-ready) from what the tabs recorded and the server samples, and
the Markdown table that prints it with the goals beside it."""

from __future__ import annotations

import argparse
import datetime
import math
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

from harness import JOB_THREAD_NAME, Sample, cores

from .scenario import Student

__all__ = ["GOAL_MEMORY_RATIO", "GOAL_PAGE_LOAD_P95_S", "first_paint_figures", "fmt_paint", "print_table", "summarize"]

GOAL_PAGE_LOAD_P95_S = 3.0
GOAL_MEMORY_RATIO = 1.10


# ---------------------------------------------------------------------------------------------- figures


def _pct(values: list[float], q: float) -> float | None:
    """The q-th percentile, linear between ranks (None without values)."""
    xs = sorted(values)
    if not xs:
        return None
    k = (len(xs) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def _dist(values: list[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "p50": None if not values else round(_pct(values, 50), 3),
        "p95": None if not values else round(_pct(values, 95), 3),
        "max": None if not values else round(max(values), 3),
    }


def _fmt_dist(d: dict[str, Any], of: int | None = None) -> str:
    if not d["n"]:
        return "none" + (f" (0 of {of})" if of else "")
    n = f"n = {d['n']}" + (f" of {of}" if of is not None else "")
    return f"{d['p50']:.2f} s / {d['p95']:.2f} s ({n}, max {d['max']:.2f} s)"


def _thread_change(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
    """Python threads (by name and frame) that are more, or fewer, after the class than before it."""
    if not before or not after or "threads" not in before or "threads" not in after:
        return {"error": (after or before or {}).get("error", "no py-spy dump")}

    def by_pool(threads: dict[str, int]) -> Counter[str]:
        # Pool threads are numbered (ThreadPoolExecutor-0_3): compare them by pool, not one by one.
        out: Counter[str] = Counter()
        for key, n in threads.items():
            out[re.sub(r"_\d+ @", " @", key)] += n
        return out

    b, a = by_pool(before["threads"]), by_pool(after["threads"])
    return {
        "more": dict((a - b).most_common()),
        "fewer": dict((b - a).most_common()),
        "after": after.get("path"),
        "before": before.get("path"),
    }


def _seconds(a: float | None, b: float | None) -> float | None:
    """Milliseconds stamps a → b as seconds, None if either is missing."""
    return None if a is None or b is None else (b - a) / 1000


def _navs(student: Student) -> list[dict[str, Any]]:
    return (student.record or {}).get("navs", [])


def _iteration(progress: str | None) -> int | None:
    m = re.search(r"Iteration ([\d,]+)", progress or "")
    return int(m.group(1).replace(",", "")) if m else None


def _our_tracebacks(log_text: str) -> list[str]:
    """The tracebacks in a server log that pass through cnfviz's code (the package, the pages, app.py),
    not only through installed packages (Streamlit, Starlette...)."""
    blocks = log_text.split("Traceback (most recent call last)")[1:]
    ours = re.compile(r"/cnfviz/|/app_pages/[^/]+\.py$|/app\.py$")

    def files(block: str) -> list[str]:
        return re.findall(r'^\s*File "([^"]+)"', block.split("\n\n")[0], re.M)

    return [b for b in blocks if any(ours.search(f) and "site-packages" not in f for f in files(b))]


def summarize(args: argparse.Namespace, run: dict[str, Any], log_path: Path) -> dict[str, Any]:
    students: list[Student] = run["students"]
    trainers = [s for s in students if s.role == "trainer"]
    loads: dict[str, list[float]] = {"load": [], "click": []}
    by_page: dict[str, list[float]] = {}
    plots: list[float] = []
    unready = 0
    for s in students:
        for nav in _navs(s):
            if nav["ready"] is None:
                unready += 1
                continue
            loads[nav["how"]].append(_seconds(nav["t0"], nav["ready"]))
            by_page.setdefault(f"{nav['page']} ({nav['how']})", []).append(_seconds(nav["t0"], nav["ready"]))
            if nav["plot"] is not None:
                plots.append(_seconds(nav["t0"], nav["plot"]))
    feedback, loss_now, loss_queued, density, queue_max, iterations = [], [], [], [], [], []
    rates_browser, rates_server = [], []
    clicked = untrained = 0
    for s in trainers:
        rec = s.record or {}
        click = rec.get("click")
        if click is None:
            continue
        clicked += 1
        queue = {int(k): v for k, v in rec.get("queue", {}).items()}
        # The first sign of life: the progress bar, a loss point or a place in the queue.
        first = [x for x in (rec.get("progress"), rec.get("loss"), min(queue.values(), default=None)) if x is not None]
        if first:
            feedback.append(_seconds(click, min(first)))
        if queue:
            queue_max.append(max(queue))
        if rec.get("loss") is None:
            untrained += 1
        else:
            (loss_queued if queue else loss_now).append(_seconds(click, rec["loss"]))
            iterations.append(_iteration(rec.get("lastProgress")) or 0)
        # The run's speed: iterations over the time between the first and the last progress text the tab saw
        # (it includes any suspension), and the median of the rates the server itself reported.
        iters = rec.get("iters") or []
        if len(iters) >= 2 and iters[-1][0] > iters[0][0]:
            rates_browser.append((iters[-1][1] - iters[0][1]) / ((iters[-1][0] - iters[0][0]) / 1000))
        reported = [r for _, _, r in iters if r is not None]
        if reported:
            rates_server.append(_pct(reported, 50))
        if rec.get("density") is not None:
            density.append(_seconds(click, rec["density"]))
    errors = [
        {"student": s.index, "role": s.role, **err, "t": round(err["t"] / 1000, 2)}
        for s in students
        for err in (s.record or {}).get("errors", [])
    ]
    kinds: dict[tuple[str, str], list[int]] = {}
    for err in errors:  # the same error on many tabs, once
        kinds.setdefault((err["kind"], " ".join(err["text"].split())[:160]), []).append(err["student"])

    class_start = run["class_start_monotonic"]
    alone: Student = run["alone"]
    ref = {
        f"{n['page']} ({n['how']})": {"ready": _seconds(n["t0"], n["ready"]), "plot": _seconds(n["t0"], n["plot"])}
        for n in _navs(alone)
    }
    baseline: Sample = run["baseline"]
    during = [x for x in run["samples"] if run["at_start"].t <= x.t <= run["at_bell"].t] or [baseline]
    peak_threads = max(during, key=lambda x: x.threads)
    peak_rss = max(during, key=lambda x: x.rss_mib)
    log_text = log_path.read_text(errors="replace") if log_path.exists() else ""
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "settings": {
            "sessions": args.sessions,
            "trainers": len(trainers),
            "trainers_leaving_early": sum(s.closes_early for s in trainers),
            "train_fraction": args.train_fraction,
            "close_fraction": args.close_fraction,
            "ramp_seconds": args.ramp_seconds,
            "train_seconds": args.train_seconds,
            "max_jobs": args.max_jobs,
            "reconnect_grace": args.grace,
            "after": args.after,
            "cpus": os.cpu_count(),
            "pinned": args.pin,
            "cold": args.cold,
        },
        "alone_s": ref,
        "page_load_s": {
            "all": _dist(loads["load"] + loads["click"]),
            "full_load": _dist(loads["load"]),
            "in_app_link": _dist(loads["click"]),
            "by_page": {k: _dist(v) for k, v in sorted(by_page.items())},
            "never_ready": unready,
        },
        "first_plot_s": _dist(plots),
        "train": {
            "clicked": clicked,
            "click_to_feedback_s": _dist(feedback),
            "click_to_first_loss_free_slot_s": _dist(loss_now),
            "click_to_first_loss_after_queueing_s": _dist(loss_queued),
            "click_to_first_density_plot_s": _dist(density),
            "queued": len(queue_max),
            "no_loss_point_while_open": untrained,
            "max_queue_position_each": queue_max,
            "iterations_each": iterations,
            "click_to_first_loss_all_s": _dist(loss_now + loss_queued),
            "its_per_s_each_browser": [round(r, 2) for r in rates_browser],
            "its_per_s_each_server_median": [round(r, 2) for r in rates_server],
        },
        "first_paint_s": first_paint_figures(run.get("first_paint", [])),
        "threads": {
            "baseline": baseline.threads,
            "baseline_job": baseline.job_threads,
            "peak": peak_threads.threads,
            "peak_job": max(x.job_threads for x in during),
            "after": {f"+{o:g}s": {"threads": x.threads, "job": x.job_threads} for o, x in run["after"]},
            "names_baseline": baseline.names,
            "names_peak": peak_threads.names,
            "names_after": {f"+{o:g}s": x.names for o, x in run["after"]},
        },
        "rss_mib": {
            "before": round(baseline.rss_mib, 1),
            "peak": round(peak_rss.rss_mib, 1),
            "after": {f"+{o:g}s": round(x.rss_mib, 1) for o, x in run["after"]},
            "anon_before": round(baseline.anon_mib, 1),
            "anon_after": {f"+{o:g}s": round(x.anon_mib, 1) for o, x in run["after"]},
        },
        "health_ms_during_class": _dist([x.health_ms for x in during if x.health_ms is not None]),
        "health_failures_during_class": sum(x.health_ms is None for x in during if x is not baseline),
        "cpu_cores_during_class": cores(run["at_start"], run["at_bell"]),
        # Where the browser side's CPU went (processes that ended during the class are missing).
        "browser_side_cpu_s": {
            k: round(v - run["client_at_start"].get(k, 0.0), 1)
            for k, v in sorted(run["client_at_bell"].items(), key=lambda kv: -kv[1])
        },
        "class_seconds": round(run["bell_s"], 1),
        "closing_all_tabs_s": round(run["close_s"], 2),
        "python_threads": _thread_change(run.get("threads_before"), run.get("threads_after")),
        "errors": errors,
        "socket_drops": {
            str(s.index): [
                round(t - class_start, 1) for t in s.socket_closes if s.closing_at_s is None or t < s.closing_at_s
            ]
            for s in students
            if any(s.closing_at_s is None or t < s.closing_at_s for t in s.socket_closes)
        },
        "connecting_episodes_s": [
            [s.index, round(a / 1000, 1), None if b is None else round((b - a) / 1000, 1)]
            for s in students
            for a, b in (s.record or {}).get("connecting", [])
        ],
        "error_kinds": [{"kind": k, "text": t, "students": v} for (k, t), v in kinds.items()],
        "js_errors": [{"student": s.index, "text": t} for s in students for t in s.js_errors],
        "problems": [{"student": s.index, "role": s.role, "text": t} for s in [alone, *students] for t in s.problems],
        "server_log": {
            "path": str(log_path),
            "tracebacks": log_text.count("Traceback (most recent call last)"),
            "tracebacks_of_ours": len(_our_tracebacks(log_text)),
        },
        "students": [
            {
                "index": s.index,
                "role": s.role,
                "closes_early": s.closes_early,
                "arrive_s": round(s.arrive_s, 2),
                "stay_s": round(s.stay_s, 1),
                "stopped": s.stopped,
                "closed_at_s": None if s.closed_at_s is None else round(s.closed_at_s, 1),
                "main_thread_s": s.main_thread_s,
                "record": s.record,
            }
            for s in students
        ],
        "timeline": [x.brief() for x in run["samples"]],
    }


def print_table(report: dict[str, Any]) -> None:
    """The figures as a Markdown table, goals beside them."""
    st, pl, tr = report["settings"], report["page_load_s"], report["train"]
    th, mem, cpu, ref = report["threads"], report["rss_mib"], report["cpu_cores_during_class"], report["alone_s"]

    def alone(key: str, what: str) -> str:
        x = ref.get(key, {}).get(what)
        return "" if x is None else f"{x:.2f} s"

    first_after = next(iter(th["after"]), None)
    drops = report["socket_drops"]
    fp = report["first_paint_s"]
    rows: list[tuple[str, str, str, str]] = [
        ("first paint /train, cold → sidebar (warm: p50)", "≤ 2 s", *fmt_paint(fp, "sidebar")),
        ("  cold → title", "", *fmt_paint(fp, "title")),
        ("  cold → Train button", "", *fmt_paint(fp, "train_button")),
        ("page load → main UI, p50 / p95, all", f"p95 ≤ {GOAL_PAGE_LOAD_P95_S:g} s", "", _fmt_dist(pl["all"])),
        ("  full loads (a link opened in a new tab)", "", alone("train (load)", "ready"), _fmt_dist(pl["full_load"])),
        (
            "  in-app (a sidebar link)",
            "",
            alone("learn (click)" if "learn (click)" in ref else "home (click)", "ready"),
            _fmt_dist(pl["in_app_link"]),
        ),
        ("  pages that never got ready", "0", "", str(pl["never_ready"])),
        (
            "page load → first plotly chart (Train, Learn)",
            "",
            alone("train (load)", "plot"),
            _fmt_dist(report["first_plot_s"]),
        ),
        ("Train click → progress bar or queue place", "", "", _fmt_dist(tr["click_to_feedback_s"], tr["clicked"])),
        ("Train click → first loss point, free slot", "", "", _fmt_dist(tr["click_to_first_loss_free_slot_s"])),
        (
            "Train click → first loss point, after queueing",
            "",
            "",
            _fmt_dist(tr["click_to_first_loss_after_queueing_s"]),
        ),
        ("Train click → first density plot", "", "", _fmt_dist(tr["click_to_first_density_plot_s"], tr["clicked"])),
        (
            "runs queued / never trained while the tab was open",
            "",
            "",
            f"{tr['queued']} / {tr['no_loss_point_while_open']} of {tr['clicked']}",
        ),
        (
            "queue places shown (highest per queued run)",
            "",
            "",
            ", ".join(map(str, tr["max_queue_position_each"])) or "none",
        ),
        ("iterations reached by the runs that trained", "", "", ", ".join(map(str, tr["iterations_each"])) or "none"),
        (
            "Train click → first loss point, every run",
            "",
            "",
            _fmt_dist(tr["click_to_first_loss_all_s"], tr["clicked"]),
        ),
        (
            "it/s per run: browser-seen / server-reported median",
            "",
            "",
            (", ".join(f"{r:.1f}" for r in tr["its_per_s_each_browser"]) or "none")
            + " / "
            + (", ".join(f"{r:.1f}" for r in tr["its_per_s_each_server_median"]) or "none"),
        ),
        ("error elements seen (distinct per tab)", "0", "", str(len(report["errors"]))),
        (
            "  of which 'Connecting' after load: episodes, longest",
            "",
            "",
            f"{len(report['connecting_episodes_s'])}, "
            + (
                f"{max(e[2] or 0 for e in report['connecting_episodes_s']):.1f} s"
                if report["connecting_episodes_s"]
                else "–"
            ),
        ),
        (
            "websocket drops before the tab closed",
            "0",
            "",
            f"{sum(map(len, drops.values()))} (students {', '.join(drops) or '–'})",
        ),
        (
            "/_stcore/health round trip during the class",
            "",
            "",
            _fmt_dist(report["health_ms_during_class"]).replace(" s", " ms")
            + f", {report['health_failures_during_class']} failed",
        ),
        ("server threads: baseline → peak", "", "", f"{th['baseline']} → {th['peak']}"),
    ]
    for label, x in th["after"].items():
        rows.append(
            (
                f"server threads after all tabs closed, {label}",
                "0 leaked",
                "",
                f"{x['threads']} ({x['threads'] - th['baseline']:+d} vs baseline)",
            )
        )
    jobs_after = ", ".join(str(x["job"]) for x in th["after"].values())
    rows.append((f"`{JOB_THREAD_NAME}` threads: peak → after", "0 after", "", f"{th['peak_job']} → {jobs_after}"))
    rows.append(("server RSS: before → peak", "", "", f"{mem['before']:.0f} → {mem['peak']:.0f} MiB"))
    for label, x in mem["after"].items():
        goal = f"≤ {mem['before'] * GOAL_MEMORY_RATIO:.0f} MiB (+10 %)" if label == first_after else ""
        rows.append(
            (f"server RSS after all tabs closed, {label}", goal, "", f"{x:.0f} MiB ({x / mem['before'] - 1:+.0%})")
        )
    anon_after = ", ".join(f"{x:.0f}" for x in mem["anon_after"].values())
    rows.append(("  of which heap (RssAnon): before → after", "", "", f"{mem['anon_before']:.0f} → {anon_after} MiB"))
    rows.append(
        (
            "CPU during the class, cores: server / browser side / machine",
            "",
            "",
            f"{cpu['server']:.2f} / {cpu['browser_side']:.2f} / {cpu['machine']:.2f} of {st['cpus']}",
        )
    )
    rows.append(
        (
            "browser-side problems (timeouts), JS errors",
            "",
            "",
            f"{len(report['problems'])}, {len(report['js_errors'])}",
        )
    )
    log = report["server_log"]
    rows.append(
        (
            "tracebacks in the server log: all / of ours",
            "0 of ours",
            "",
            f"{log['tracebacks']} / {log['tracebacks_of_ours']}",
        )
    )
    head = ("figure", "goal", "one tab alone (first paint: cold)", "measured: p50 / p95 or value")
    widths = [max(len(r[i]) for r in [*rows, head]) for i in range(4)]
    print(
        f"\n{st['sessions']} students ({st['trainers']} training, {st['trainers_leaving_early']} of them leave early), "
        f"ramp {st['ramp_seconds']:g} s, {st['train_seconds']:g} s of training each, CNFVIZ_MAX_JOBS={st['max_jobs']}, "
        f"CNFVIZ_RECONNECT_GRACE={st['reconnect_grace']:g}"
        f"{', pinned' if st['pinned'] else ''}{', cold' if st['cold'] else ''}; "
        f"the class lasted {report['class_seconds']:.0f} s\n"
    )
    print("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
    for kind in report["error_kinds"]:
        print(f"  {len(kind['students'])}x {kind['kind']} (students {kind['students']}): {kind['text']}")
    for p in report["problems"]:
        print(f"  problem, student {p['student']} ({p['role']}): {p['text']}")
    for e in report["js_errors"]:
        print(f"  JS error, student {e['student']}: {e['text']}")
    print("  browser-side CPU seconds during the class:", report["browser_side_cpu_s"])
    change = report["python_threads"]
    if "error" in change:
        print(f"  Python threads before/after: {change['error']}")
    else:
        print(f"  Python threads after the class vs before it (py-spy dumps: {change['before']}, {change['after']}):")
        for what, n in change["more"].items():
            print(f"    +{n} {what}")
        for what, n in change["fewer"].items():
            print(f"    -{n} {what}")
    print(f"  server log: {report['server_log']['path']}")


def first_paint_figures(visits: list[Student]) -> dict[str, Any]:
    """Seconds from navigation start to the sidebar, the title and the Train button: cold, and warm (p50, max)."""

    def stamps(student: Student) -> dict[str, float | None]:
        nav = (_navs(student) or [{}])[0]
        return {
            what: _seconds(0, nav.get(key))
            for what, key in (("sidebar", "sidebar"), ("title", "title"), ("train_button", "ready"))
        }

    cold = [stamps(v) for v in visits if v.role == "cold"]
    warm = [stamps(v) for v in visits if v.role == "warm"]
    return {
        "cold": cold[0] if cold else {},
        "warm": {k: _dist([w[k] for w in warm if w[k] is not None]) for k in ("sidebar", "title", "train_button")},
        "problems": [p for v in visits for p in v.problems],
    }


def fmt_paint(fp: dict[str, Any], what: str) -> tuple[str, str]:
    cold = fp["cold"].get(what)
    warm = fp["warm"][what]
    return (
        "none" if cold is None else f"{cold:.2f} s",
        "none" if not warm["n"] else f"{warm['p50']:.2f} s (n = {warm['n']}, max {warm['max']:.2f} s)",
    )
