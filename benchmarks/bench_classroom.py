"""A classroom on one server: many browser tabs at once against one ``streamlit run app.py`` (a load test;
it prints figures and asserts nothing).

Students arrive over a ramp, each in their own browser context (their own Streamlit session) of one
headless Chromium. About half open the Train page and press Train with the default settings; the server
admits ``$CNFVIZ_MAX_JOBS`` runs at once (default 32: all of them, stacked by shape) and queues the rest,
which see their place in the line. Some of the trainers close their tab mid-run; the others press Stop
after ``--train-seconds``. The other half look around: Home, then Train (without training), then Learn,
through the sidebar. At the end every tab closes
at once, as when the bell rings.

Measured, with the goals printed next to them:

* first paint, before the class: the server's very first session opens ``/train`` from a link (cold:
  nothing imported yet), then ``--warm-visits`` fresh tabs do the same; each stamps its sidebar (the app's
  page links), its title and its Train button, from navigation start (``--first-paint-only`` does just this);
* page load, from navigation start (or the click on a sidebar link) to the page's main UI (the Train
  button, the link on Home, the Learn title), and to its first plotly chart; for trainers, from the Train
  click to the first progress bar, the first loss point and the first density plot, and the queue
  positions they were shown, and each run's speed (iterations per second: from the progress texts the
  tab saw, and the median of the rates the server reported in them). Times are taken inside the page
  (``performance.now()`` in a ``MutationObserver``), so the load on the Playwright driver does not
  inflate them. One tab alone on the idle server, before the class, gives the reference;
* the server's OS threads (``/proc/<pid>/task``, with children), total and those named ``cnfviz-job``:
  after warm-up, at the peak, and after all tabs closed;
* the server's resident memory (``VmRSS``, with children; ``RssAnon``, its heap part) at the same
  moments. The server runs with ``CNFVIZ_RECONNECT_GRACE`` set small, and "after" is measured past it;
* every error element any tab showed: exception blocks, ``st.error`` alerts, the "Connection error"
  dialog and a "Connecting"/"Error" status after the page had loaded, with their text; websockets that
  dropped before their tab closed; and the server log's tracebacks;
* beside them: the round trip of ``/_stcore/health`` (is the server's event loop keeping up?) and the CPU
  used by the server, by the browser side and by the whole machine. On a small machine the 30 browsers
  themselves are the heaviest load, which a real class spreads over 30 laptops; ``--pin`` gives the
  server a core of its own.

The tab that warms the server up visits Train, Learn and Home, so that one-off imports and caches are in
the baseline; ``--cold`` leaves Learn to the class, which then meets its first visit under load.

Run from the repository root (Chromium and playwright needed)::

    python benchmarks/bench_classroom.py --json classroom.json   # 30 students, ~9 minutes on 2 cores
    python benchmarks/bench_classroom.py --quick                 # 6 students, ~2 minutes
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import tempfile
from pathlib import Path

from classroom.report import first_paint_figures, fmt_paint, print_table, summarize
from classroom.scenario import first_paint_only, run_class
from harness import ServerWatch, free_port, start_server, stop_server, wait_healthy

from cnfviz.runtime.scheduler import DEFAULT_CAPACITY


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="6 students, a 5 s ramp, 20 s of training: a sanity run")
    parser.add_argument("--sessions", type=int, help="browser contexts (students); default 30, --quick 6")
    parser.add_argument("--train-fraction", type=float, default=0.5, help="share of students who press Train")
    parser.add_argument(
        "--close-fraction", type=float, default=1 / 3, help="share of the trainers who close their tab mid-run"
    )
    parser.add_argument("--ramp-seconds", type=float, help="students arrive evenly over this; default 30, --quick 5")
    parser.add_argument(
        "--train-seconds",
        type=float,
        help="seconds from the Train click until a trainer presses Stop (those leaving early close at 30-70 %% "
        "of it); default 60, --quick 20",
    )
    parser.add_argument(
        "--max-jobs", type=int, default=DEFAULT_CAPACITY, help="CNFVIZ_MAX_JOBS for the server (its admission cap)"
    )
    parser.add_argument("--grace", type=float, default=5.0, help="CNFVIZ_RECONNECT_GRACE for the server, seconds")
    parser.add_argument(
        "--after",
        type=float,
        nargs="+",
        help="seconds after all tabs closed to measure threads and memory; default grace+5, 30 and 130 (past "
        "Streamlit's own 120 s server.disconnectedSessionTTL), --quick grace+5",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="server on CPU 0, browser and Playwright on the others: the students' browsers run on their own "
        "machines in a real class, not on the server",
    )
    parser.add_argument(
        "--cold",
        action="store_true",
        help="the reference tab skips Learn, so the class meets the first visit of every page under load "
        "(one-off imports and caches then count in the memory growth)",
    )
    parser.add_argument("--warm-visits", type=int, default=3, help="fresh tabs opening /train after the cold one")
    parser.add_argument(
        "--first-paint-only", action="store_true", help="only the cold and warm first paints of /train, no class"
    )
    parser.add_argument("--port", type=int, default=0, help="server port (default: a free one)")
    parser.add_argument("--seed", type=int, default=0, help="arrival jitter and reading times")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--json", type=Path, help="write the full report (every student's record) here")
    args = parser.parse_args(argv)
    quick = args.quick
    args.sessions = args.sessions or (6 if quick else 30)
    args.ramp_seconds = args.ramp_seconds if args.ramp_seconds is not None else (5.0 if quick else 30.0)
    args.train_seconds = args.train_seconds if args.train_seconds is not None else (20.0 if quick else 60.0)
    args.after = args.after or ([args.grace + 5] if quick else [args.grace + 5, 30.0, 130.0])
    return args


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so that the finally blocks stop the server and the browser


def main() -> None:
    args = parse_args()
    signal.signal(signal.SIGTERM, _interrupt)
    port = args.port or free_port()
    url = f"http://127.0.0.1:{port}"
    args.log_dir = Path(tempfile.mkdtemp(prefix="cnfviz-classroom-"))
    log_path = args.log_dir / "streamlit.log"
    env = {"CNFVIZ_MAX_JOBS": str(args.max_jobs), "CNFVIZ_RECONNECT_GRACE": f"{args.grace:g}"}
    server_cpus = {0} if args.pin else None
    server = start_server(port, env, log_path, server_cpus)
    if args.pin:  # Playwright's driver and Chromium inherit this process's affinity
        os.sched_setaffinity(0, set(range(1, os.cpu_count() or 2)) or {0})
    try:
        wait_healthy(server, url, log_path)
        if args.first_paint_only:
            visits = asyncio.run(first_paint_only(args, url))
        else:
            run = asyncio.run(run_class(args, url, ServerWatch(server.pid)))
    finally:
        stop_server(server)
    if args.first_paint_only:
        fp = first_paint_figures(visits)
        print("\n| first paint of /train, from navigation start | cold (first session) | warm: p50 (n, max) |")
        print("|---|---|---|")
        for what in ("sidebar", "title", "train_button"):
            cold, warm = fmt_paint(fp, what)
            print(f"| → {what.replace('_', ' ')} | {cold} | {warm} |")
        for p in fp["problems"]:
            print(f"  problem: {p}")
        return
    report = summarize(args, run, log_path)
    print_table(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
        print(f"  full report: {args.json}")


if __name__ == "__main__":
    main()
