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
import datetime
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnfviz.runtime.scheduler import DEFAULT_CAPACITY

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Wide enough that Streamlit keeps the sidebar open (its nav links and the target preview live there);
# no taller than a laptop, so that fewer plots below the fold are painted.
VIEWPORT = {"width": 1280, "height": 800}
JOB_THREAD_NAME = "cnfviz-job"
SERVER_START_SECONDS = 120
READY_TIMEOUT_S = 240.0
SAMPLE_EVERY_S = 0.5
DWELL_S = (4.0, 10.0)  # how long a looking student stays on a page
READ_BEFORE_TRAIN_S = (1.0, 4.0)  # how long a training student reads the Train page before pressing Train
GOAL_PAGE_LOAD_P95_S = 3.0
GOAL_MEMORY_RATIO = 1.10

# Injected into every page before its scripts run. A MutationObserver (throttled to one check per 50 ms,
# plus a 0.5 s timer for changes it cannot see, e.g. a plot redrawn in place) stamps the first moment
# each thing appears, in the page's own clock: performance.now() is 0 at navigation start. In-app
# navigations (a sidebar link or st.page_link) are stamped at the click.
OBSERVER_JS = r"""
(() => {
  if (window.__cnf) return;
  const S = {navs: [], click: null, progress: null, loss: null, density: null, queue: {}, lastProgress: null,
             errors: [], connecting: [], everReady: false};
  const errorKeys = new Set();
  window.__cnf = S;
  const pageOf = (path) => { const p = path.replace(/\/+$/, '').split('/').pop(); return p === '' ? 'home' : p; };
  const sel = (s) => () => document.querySelector(s) !== null;
  const title = (prefix) => () => [...document.querySelectorAll('[data-testid="stMainBlockContainer"] h1')]
      .some((h) => h.textContent.startsWith(prefix));
  const PAGES = {
    home: {ready: sel('[data-testid="stMainBlockContainer"] [data-testid="stPageLink-NavLink"]'), plot: null},
    train: {ready: sel('.st-key-train_train_button button'),
            plot: sel('.st-key-train_target_preview .js-plotly-plot .main-svg')},
    learn: {ready: title('Learn'), plot: sel('.st-key-learn_chart_cov .js-plotly-plot .main-svg')},
    compare: {ready: title('Compare'), plot: sel('[data-testid="stMainBlockContainer"] .js-plotly-plot .main-svg')},
  };
  S.navs.push({page: pageOf(location.pathname), how: 'load', t0: 0, ready: null, plot: null, sidebar: null,
               title: null});
  // The first paint of a page: its sidebar (the app's page links) and its title.
  const sidebarShown = () => {
    const bar = document.querySelector('[data-testid="stSidebar"]');
    return !!bar && bar.getBoundingClientRect().width > 0 && !!bar.querySelector('[data-testid="stSidebarNavLink"]');
  };
  const titled = sel('[data-testid="stMainBlockContainer"] h1');
  S.iters = [];  // [t, iteration, server it/s] each time the progress text changes, for the run's rate
  const seen = (kind, text, t, page) => {
    text = (text || '').trim().slice(0, 500);
    const key = kind + '|' + text;
    if (errorKeys.has(key)) return;
    errorKeys.add(key);
    // What the sidebar's number inputs held at that moment: a lost widget value shows as its minimum.
    const inputs = [...document.querySelectorAll('[data-testid="stSidebar"] [data-testid="stNumberInputField"]')]
      .map((i) => (i.getAttribute('aria-label') || '?') + '=' + i.value);
    S.errors.push({kind, text, t, page, inputs});
  };
  function check() {
    const t = performance.now();
    const nav = S.navs[S.navs.length - 1];
    const spec = PAGES[nav.page];
    if (nav.sidebar === null && sidebarShown()) nav.sidebar = t;
    if (nav.title === null && nav.how === 'load' && titled()) nav.title = t;
    if (spec) {
      if (nav.ready === null && spec.ready()) { nav.ready = t; S.everReady = true; }
      if (nav.plot === null && spec.plot && spec.plot()) nav.plot = t;
    }
    if (S.click !== null) {
      const bar = document.querySelector('[data-testid="stProgress"]');
      if (bar) {
        if (S.progress === null) S.progress = t;
        if (bar.textContent !== S.lastProgress) {
          const m = bar.textContent.match(/Iteration ([\d,]+)/), r = bar.textContent.match(/([\d.]+) it\/s/);
          if (m && S.iters.length < 2000) S.iters.push([t, +m[1].replace(/,/g, ''), r ? +r[1] : null]);
        }
        S.lastProgress = bar.textContent;
      }
      if (S.loss === null) {
        const f = document.querySelector('.st-key-train_loss_chart iframe');  // a live chart's iframe
        const p = f && f.contentDocument && f.contentDocument.querySelector('.js-plotly-plot');
        if (p && p._fullData && p._fullData.length && p._fullData[0]._length > 0) S.loss = t;
      }
      const g = document.querySelector('.st-key-train_density_chart iframe');
      const density = g && g.contentDocument && g.contentDocument.querySelector('.js-plotly-plot .main-svg');
      if (S.density === null && density) S.density = t;
      for (const a of document.querySelectorAll('[data-testid="stAlertContentInfo"]')) {
        const m = a.textContent.match(/number (\d+) in the queue/);
        if (m && !(m[1] in S.queue)) S.queue[m[1]] = t;
      }
    }
    // textContent, not innerText: no forced layout on a page that is busy drawing plots.
    for (const e of document.querySelectorAll('[data-testid="stException"]')) {
      seen('exception', e.textContent, t, nav.page);
    }
    for (const e of document.querySelectorAll('[data-testid="stAlertContentError"]')) {
      if (!e.closest('[data-testid="stException"]')) seen('st.error', e.textContent, t, nav.page);  // not twice
    }
    for (const d of document.querySelectorAll('[role="dialog"]')) {
      if (/connection error/i.test(d.textContent)) seen('connection error', d.textContent, t, nav.page);
    }
    if (S.everReady) {  // "Connecting" is normal before the first load; after it, each episode [from, to]
      const w = document.querySelector('[data-testid="stStatusWidget"]');
      const on = !!w && /Connecting|Error/.test(w.textContent);
      const last = S.connecting[S.connecting.length - 1];
      if (on && !(last && last[1] === null)) {
        S.connecting.push([t, null]);
        seen('disconnected', w.textContent, t, nav.page);
      } else if (!on && last && last[1] === null) last[1] = t;
    }
  }
  let pending = false, last = -1e9;
  const schedule = () => {
    if (pending) return;
    pending = true;
    setTimeout(() => { pending = false; last = performance.now(); try { check(); } catch (e) {} },
               Math.max(0, 50 - (performance.now() - last)));
  };
  document.addEventListener('click', (e) => {
    const t = performance.now();
    const el = e.target instanceof Element ? e.target : null;
    if (!el) return;
    const link = el.closest('[data-testid="stSidebarNavLink"], [data-testid="stPageLink-NavLink"]');
    if (link) {
      const page = pageOf(new URL(link.href, location.href).pathname);
      S.navs.push({page, how: 'click', t0: t, ready: null, plot: null, sidebar: null, title: null});
      schedule();
    }
    if (S.click === null && el.closest('.st-key-train_train_button')) S.click = t;
  }, true);
  const what = {childList: true, subtree: true, attributes: true, characterData: true};
  new MutationObserver(schedule).observe(document, what);
  setInterval(schedule, 500);
})();
"""


# ---------------------------------------------------------------------------------------------- server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _parents() -> dict[int, list[int]]:
    """Every process's children, from one scan of ``/proc``."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the name in parentheses may hold spaces
        parents.setdefault(ppid, []).append(int(entry))
    return parents


def _tree(pid: int, parents: dict[int, list[int]], skip: int | None = None) -> list[int]:
    """``pid`` and its descendants, leaving out the subtree of ``skip``. The server has no children
    today, but torch or a future worker pool could fork."""
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        if p == skip:
            continue
        tree.append(p)
        todo.extend(parents.get(p, []))
    return tree


def _cpu_s(pid: int, ticks: int) -> float:
    """User + system CPU seconds of all threads of ``pid`` so far (0 if it has gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(stat[11]) + int(stat[12])) / ticks


def _machine_jiffies() -> tuple[int, int]:
    """(busy, total) CPU time of the whole machine, from ``/proc/stat``."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


@dataclass
class Sample:
    """The server process tree (and the CPU use around it) at one moment."""

    t: float
    threads: int
    job_threads: int
    rss_mib: float
    cpu_s: float  # the server's CPU seconds so far
    client_cpu_s: float  # this script, Playwright's driver and Chromium
    machine: tuple[int, int]  # busy and total jiffies of the machine
    names: dict[str, int] = field(default_factory=dict)
    anon_mib: float = 0.0  # the heap's part of the RSS (RssAnon); the rest is mostly mapped libraries
    health_ms: float | None = None  # round trip of /_stcore/health: is the server's event loop responsive?

    def brief(self) -> dict[str, Any]:
        return {
            "t": round(self.t, 2),
            "threads": self.threads,
            "job_threads": self.job_threads,
            "rss_mib": round(self.rss_mib, 1),
            "cpu_s": round(self.cpu_s, 2),
            "client_cpu_s": round(self.client_cpu_s, 2),
            "anon_mib": round(self.anon_mib, 1),
            "health_ms": None if self.health_ms is None else round(self.health_ms, 1),
        }


def _cores(a: Sample, b: Sample) -> dict[str, float]:
    """Average CPU use between two samples, in cores: the server, the browser side, the whole machine."""
    span = max(1e-9, b.t - a.t)
    busy, total = b.machine[0] - a.machine[0], b.machine[1] - a.machine[1]
    return {
        "server": round((b.cpu_s - a.cpu_s) / span, 2),
        "browser_side": round((b.client_cpu_s - a.client_cpu_s) / span, 2),
        "machine": round((os.cpu_count() or 1) * busy / max(1, total), 2),
    }


class ServerWatch:
    """Reads threads, memory and CPU time of a process and its children from ``/proc``, and the CPU time
    of this script's own tree (Playwright's driver, Chromium) beside it."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.t0 = time.monotonic()
        self.ticks = os.sysconf("SC_CLK_TCK")

    def client_cpu(self) -> dict[str, float]:
        """CPU seconds so far of this script's own tree, by kind of process (Chromium's ``--type``)."""
        by_kind: Counter[str] = Counter()
        for pid in _tree(os.getpid(), _parents(), skip=self.pid):
            try:
                # Chromium rewrites its children's command lines into one space-separated string.
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").replace("\0", " ")
            except OSError:
                continue
            exe = Path(cmdline.split(" ", 1)[0]).name
            if "chrom" in exe:
                m = re.search(r"--type=(\S+)", cmdline)
                kind = f"chromium {m.group(1) if m else 'browser'}"
            else:
                kind = "this script" if pid == os.getpid() else exe
            by_kind[kind] += _cpu_s(pid, self.ticks)
        return dict(by_kind)

    def sample(self) -> Sample:
        rss_kib, anon_kib, cpu = 0, 0, 0.0
        names: Counter[str] = Counter()
        parents = _parents()
        for pid in _tree(self.pid, parents):
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        rss_kib += int(line.split()[1])
                    elif line.startswith("RssAnon:"):
                        anon_kib += int(line.split()[1])
                cpu += _cpu_s(pid, self.ticks)
                for task in os.listdir(f"/proc/{pid}/task"):
                    try:
                        names[Path(f"/proc/{pid}/task/{task}/comm").read_text().strip()] += 1
                    except OSError:  # the thread ended between listdir and read
                        continue
            except OSError:  # the process ended while being read
                continue
        # Our own tree's CPU (Chromium's processes come and go with the tabs, so this undercounts a little).
        client = sum(_cpu_s(p, self.ticks) for p in _tree(os.getpid(), parents, skip=self.pid))
        return Sample(
            time.monotonic() - self.t0,
            sum(names.values()),
            names[JOB_THREAD_NAME],
            rss_kib / 1024,
            cpu,
            client,
            _machine_jiffies(),
            dict(names),
            anon_kib / 1024,
        )


def start_server(port: int, env: dict[str, str], log_path: Path, cpus: set[int] | None) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless=true", "--server.address=127.0.0.1"]
    cmd += [f"--server.port={port}", "--browser.gatherUsageStats=false", "--server.fileWatcherType=none"]
    with open(log_path, "wb") as log:
        # Its own session, so that stopping it also reaches any child it may start.
        return subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            start_new_session=True,
            preexec_fn=None if cpus is None else lambda: os.sched_setaffinity(0, cpus),
        )


def wait_healthy(proc: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"streamlit did not answer /_stcore/health in {SERVER_START_SECONDS} s")
        time.sleep(0.25)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # whatever of its process group is left
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


# ---------------------------------------------------------------------------------------------- students


@dataclass
class Student:
    """One browser context: its plan, what its page recorded, and what went wrong on the Python side."""

    index: int
    role: str  # "trainer" or "looker"
    closes_early: bool
    arrive_s: float
    stay_s: float = 0.0  # trainers: seconds from the Train click to closing the tab or pressing Stop
    context: Any = None
    page: Any = None
    record: dict[str, Any] | None = None
    cdp: Any = None
    # The page's main-thread task, script, layout and style seconds (wall time: they include waiting for a
    # CPU) and the seconds it was open; in the JSON only.
    main_thread_s: dict[str, float] = field(default_factory=dict)
    opened_at_s: float | None = None
    closing_at_s: float | None = None
    socket_closes: list[float] = field(default_factory=list)  # monotonic times the app's websocket closed
    js_errors: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    stopped: bool = False
    closed_at_s: float | None = None


def plan_class(args: argparse.Namespace) -> list[Student]:
    """Who arrives when and does what. Trainers and lookers alternate evenly over the ramp, and so do
    the trainers who leave early, so that every phase of the class has a mix."""
    rng = random.Random(args.seed)
    n = args.sessions
    gap = args.ramp_seconds / max(1, n - 1)
    students, trainers = [], 0
    for i in range(n):
        trainer = math.floor((i + 1) * args.train_fraction + 1e-9) > math.floor(i * args.train_fraction + 1e-9)
        early = False
        if trainer:
            early = math.floor((trainers + 1) * args.close_fraction + 1e-9) > math.floor(
                trainers * args.close_fraction + 1e-9
            )
            trainers += 1
        arrive = max(0.0, min(args.ramp_seconds, i * gap + rng.uniform(-0.3, 0.3) * gap))
        student = Student(i, "trainer" if trainer else "looker", early, arrive)
        if trainer:
            student.stay_s = args.train_seconds * (rng.uniform(0.3, 0.7) if early else 1.0)
        students.append(student)
    return students


async def _new_tab(browser: Any, student: Student) -> Any:
    context = await browser.new_context(viewport=VIEWPORT)
    await context.add_init_script(OBSERVER_JS)
    page = await context.new_page()
    page.set_default_timeout(60_000)
    page.on("pageerror", lambda err: student.js_errors.append(str(err)[:300]))
    # The page's own main-thread time (script, layout, style): which kind of tab costs the browser most.
    student.cdp = await context.new_cdp_session(page)
    await student.cdp.send("Performance.enable")
    student.context, student.page, student.opened_at_s = context, page, time.monotonic()
    # A websocket that closes before the tab does is a dropped connection (Streamlit then reconnects).
    page.on(
        "websocket",
        lambda ws: (
            ws.on("close", lambda _: student.socket_closes.append(time.monotonic()))
            if "/_stcore/stream" in ws.url
            else None
        ),
    )
    return page


async def _wait_ready(page: Any, nav: int) -> None:
    """Wait until the ``nav``-th navigation of the page (1-based) has shown its main UI."""
    await page.wait_for_function(
        "n => { const s = window.__cnf; return !!s && s.navs.length >= n && s.navs[n - 1].ready !== null; }",
        arg=nav,
        polling=250,  # in ms; a gentler poll than every animation frame, on 30 pages
        timeout=READY_TIMEOUT_S * 1000,
    )


async def _collect(student: Student) -> None:
    if student.page is None or student.page.is_closed():
        return
    try:
        student.record = await student.page.evaluate("() => window.__cnf")
        metrics = {m["name"]: m["value"] for m in (await student.cdp.send("Performance.getMetrics"))["metrics"]}
        student.main_thread_s = {
            k: round(metrics.get(f"{k}Duration", 0.0), 2) for k in ("Task", "Script", "Layout", "RecalcStyle")
        }
        student.main_thread_s["open"] = round(time.monotonic() - (student.opened_at_s or time.monotonic()), 1)
    except Exception as err:  # a crashed or closing page: say so, keep the rest of the class going
        student.problems.append(f"could not read the page's record: {_why(err)}")


async def close_tab(student: Student, class_start: float) -> None:
    await _collect(student)
    student.closing_at_s = time.monotonic()
    if student.context is not None:
        try:
            await student.context.close()
        except Exception as err:
            student.problems.append(f"closing the tab failed: {err}")
        student.closed_at_s = time.monotonic() - class_start
        student.context = student.page = None


def _why(err: Exception) -> str:
    """An exception in one line: its type, its first line and the last line of Playwright's call log."""
    lines = [x.strip() for x in str(err).splitlines() if x.strip()]
    tail = f" … {lines[-1][:160]}" if len(lines) > 1 else ""
    return f"{type(err).__name__}: {(lines or [''])[0][:200]}{tail}"


async def look_around(browser: Any, url: str, student: Student, rng: random.Random) -> None:
    """Home, then Train and Learn through the sidebar, reading each for a few seconds."""
    page = await _new_tab(browser, student)
    await page.goto(f"{url}/", wait_until="commit")
    await _wait_ready(page, 1)
    for nav, path in ((2, "train"), (3, "learn")):
        await asyncio.sleep(rng.uniform(*DWELL_S))
        await page.locator(f'[data-testid="stSidebarNavLink"][href$="/{path}"]').click()
        await _wait_ready(page, nav)
    for _ in range(3):  # scroll through the lesson as a reader would
        await asyncio.sleep(rng.uniform(*DWELL_S) / 3)
        await page.mouse.wheel(0, 700)


async def train(browser: Any, url: str, student: Student, rng: random.Random, class_start: float) -> None:
    """Open the Train page, press Train with the defaults, watch; leave mid-run or press Stop at the end."""
    page = await _new_tab(browser, student)
    await page.goto(f"{url}/train", wait_until="commit")
    await _wait_ready(page, 1)
    await asyncio.sleep(rng.uniform(*READ_BEFORE_TRAIN_S))
    await page.locator(".st-key-train_train_button button").filter(visible=True).click()
    await asyncio.sleep(student.stay_s)
    if student.closes_early:
        await close_tab(student, class_start)
        return
    stop = page.locator(".st-key-train_stop_button button").filter(visible=True)
    try:
        if await stop.is_enabled(timeout=10_000):
            try:
                await stop.click(timeout=15_000)
            except Exception as err:
                # Playwright waits for the button to hold still over two animation frames, which a starved
                # renderer may not manage in 15 s; a student's click would land anyway, so send it directly.
                student.problems.append(f"Stop not clickable in 15 s, clicked directly: {_why(err)}")
                await stop.dispatch_event("click", timeout=15_000)
            student.stopped = True
    except Exception as err:
        student.problems.append(f"pressing Stop failed: {_why(err)}")


async def attend(browser: Any, url: str, student: Student, seed: int, class_start: float) -> None:
    await asyncio.sleep(max(0.0, class_start + student.arrive_s - time.monotonic()))
    rng = random.Random(seed * 1000 + student.index)
    try:
        if student.role == "trainer":
            await train(browser, url, student, rng, class_start)
        else:
            await look_around(browser, url, student, rng)
    except Exception as err:  # a timeout is a figure of the run, not a reason to stop the class
        student.problems.append(_why(err))


# ---------------------------------------------------------------------------------------------- the run


def python_threads(pid: int, log_dir: Path, label: str) -> dict[str, Any]:
    """The server's Python threads by name and innermost frame, from ``py-spy dump`` if it is installed
    (the full dump goes to ``log_dir``); OS thread names alone say "python" for all of them."""
    exe = Path(sys.executable).with_name("py-spy")
    spy = str(exe) if exe.exists() else shutil.which("py-spy")
    if spy is None:
        return {"error": "py-spy is not installed"}
    try:
        dump = subprocess.run([spy, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        return {"error": str(err)}
    path = log_dir / f"py-spy-{label}.txt"
    path.write_text(dump.stdout + dump.stderr)
    threads: Counter[str] = Counter()
    name, frame = None, None
    for line in [*dump.stdout.splitlines(), "Thread end"]:
        if line.startswith("Thread "):
            if name is not None:
                threads[f"{name} @ {frame or '?'}"] += 1
            m = re.search(r'"(.*)"', line)
            name, frame = (m.group(1) if m else line.split(":")[0]), None
        elif frame is None and line.strip() and not re.search(r"\((threading|queue|selectors)\.py:", line):
            frame = " ".join(line.split())  # the innermost frame outside the waiting machinery
    if dump.returncode != 0:
        return {"error": f"py-spy dump failed: {(dump.stderr or dump.stdout).strip()[:200]}"}
    return {"path": str(path), "threads": dict(threads.most_common())}


def _health_ms(url: str) -> float | None:
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=10) as resp:
            resp.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None
    return (time.perf_counter() - start) * 1000


async def sample_until(watch: ServerWatch, url: str, samples: list[Sample], done: asyncio.Event) -> None:
    while not done.is_set():
        sample = watch.sample()
        sample.health_ms = await asyncio.to_thread(_health_ms, url)
        samples.append(sample)
        try:
            await asyncio.wait_for(done.wait(), SAMPLE_EVERY_S)
        except asyncio.TimeoutError:
            pass


async def first_paint(browser: Any, url: str, warm: int) -> list[Student]:
    """The server's very first session opens ``/train`` from a link (cold: nothing imported yet), then
    ``warm`` fresh tabs do the same, one after the other; each page stamps its sidebar, title and Train
    button (see OBSERVER_JS)."""
    visits = []
    for i in range(1 + warm):
        student = Student(-2 - i, "cold" if i == 0 else "warm", False, 0.0)
        page = await _new_tab(browser, student)
        try:
            await page.goto(f"{url}/train", wait_until="commit")
            await _wait_ready(page, 1)
        except Exception as err:
            student.problems.append(_why(err))
        await close_tab(student, time.monotonic())
        visits.append(student)
    return visits


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


def _fmt_paint(fp: dict[str, Any], what: str) -> tuple[str, str]:
    cold = fp["cold"].get(what)
    warm = fp["warm"][what]
    return (
        "none" if cold is None else f"{cold:.2f} s",
        "none" if not warm["n"] else f"{warm['p50']:.2f} s (n = {warm['n']}, max {warm['max']:.2f} s)",
    )


async def _first_paint_only(args: argparse.Namespace, url: str) -> list[Student]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=args.chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            return await first_paint(browser, url, args.warm_visits)
        finally:
            await browser.close()


async def prime(browser: Any, url: str) -> None:
    """Open Home then Train once, so that the first job holder has started the server's one-off warm-up,
    then close the tab."""
    context = await browser.new_context(viewport=VIEWPORT)
    try:
        page = await context.new_page()
        await page.goto(url)
        await page.wait_for_selector('[data-testid="stSidebarNav"]', timeout=90_000)
        await page.goto(f"{url}/train")
        await page.wait_for_selector(".st-key-train_train_button button", timeout=90_000)
    finally:
        await context.close()


async def alone(browser: Any, url: str, cold: bool) -> Student:
    """One student on an idle server, as a reference for the loaded figures and as the server's warm-up:
    /train opened from a link, then Learn and Home through the sidebar, so that one-off imports and caches
    are in the baseline. ``cold`` leaves Learn out: its first visit imports pandas (``st.dataframe``),
    which a class on a freshly started server then meets under load."""
    student = Student(-1, "alone", False, 0.0)
    page = await _new_tab(browser, student)
    try:
        await page.goto(f"{url}/train", wait_until="commit")
        await _wait_ready(page, 1)
        await page.wait_for_function("() => window.__cnf.navs[0].plot !== null", polling=250, timeout=60_000)
        if not cold:
            await page.locator('[data-testid="stSidebarNavLink"][href$="/learn"]').click()
            await _wait_ready(page, 2)
            await page.wait_for_function("() => window.__cnf.navs[1].plot !== null", polling=250, timeout=60_000)
        await page.locator('[data-testid="stSidebarNavLink"]').first.click()  # Home
        await _wait_ready(page, 2 if cold else 3)
    except Exception as err:
        student.problems.append(_why(err))
    await close_tab(student, time.monotonic())
    return student


async def settle(watch: ServerWatch, min_s: float, stable_s: float = 3.0, max_s: float = 60.0) -> Sample:
    """Wait at least ``min_s``, then until the thread count has not changed for ``stable_s`` (the
    warm-up thread has ended); the sample taken then is the baseline."""
    start = time.monotonic()
    await asyncio.sleep(min_s)
    last = watch.sample()
    since = time.monotonic()
    while time.monotonic() - start < max_s:
        await asyncio.sleep(0.5)
        now = watch.sample()
        if now.threads != last.threads:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= stable_s:
            return now
    return watch.sample()


async def run_class(args: argparse.Namespace, url: str, watch: ServerWatch) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    students = plan_class(args)
    out: dict[str, Any] = {}
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=args.chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            out["first_paint"] = await first_paint(browser, url, args.warm_visits)
            await prime(browser, url)
            await settle(watch, 3)  # the warm-up thread has ended
            out["alone"] = await alone(browser, url, args.cold)
            out["baseline"] = await settle(watch, args.grace + 3)  # past the reference tab's grace
            out["threads_before"] = await asyncio.to_thread(python_threads, watch.pid, args.log_dir, "before")
            samples: list[Sample] = []
            done = asyncio.Event()
            sampler = asyncio.create_task(sample_until(watch, url, samples, done))
            class_start = time.monotonic()
            out["at_start"] = watch.sample()
            out["client_at_start"] = watch.client_cpu()
            print(f"class starts: {len(students)} students over {args.ramp_seconds:g} s", file=sys.stderr, flush=True)
            await asyncio.gather(*(attend(browser, url, s, args.seed, class_start) for s in students))
            bell = time.monotonic()
            out["at_bell"] = watch.sample()
            out["client_at_bell"] = watch.client_cpu()
            # The bell: every tab still open closes at once.
            await asyncio.gather(*(close_tab(s, class_start) for s in students if s.context is not None))
            closed = time.monotonic()
            print(f"all tabs closed at {closed - class_start:.0f} s; measuring after", file=sys.stderr, flush=True)
            after: list[tuple[float, Sample]] = []
            for offset in sorted(args.after):
                await asyncio.sleep(max(0.0, closed + offset - time.monotonic()))
                after.append((offset, watch.sample()))
            # Which threads are left, by Python name and frame, against the same list before the class.
            out["threads_after"] = await asyncio.to_thread(python_threads, watch.pid, args.log_dir, "after")
            done.set()
            await sampler
        finally:
            await browser.close()
    out.update(
        students=students,
        samples=samples,
        after=after,
        class_start=class_start - watch.t0,
        class_start_monotonic=class_start,
        bell_s=bell - class_start,
        close_s=closed - bell,
    )
    return out


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
        "cpu_cores_during_class": _cores(run["at_start"], run["at_bell"]),
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
        ("first paint /train, cold → sidebar (warm: p50)", "≤ 2 s", *_fmt_paint(fp, "sidebar")),
        ("  cold → title", "", *_fmt_paint(fp, "title")),
        ("  cold → Train button", "", *_fmt_paint(fp, "train_button")),
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
    port = args.port or _free_port()
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
            visits = asyncio.run(_first_paint_only(args, url))
        else:
            run = asyncio.run(run_class(args, url, ServerWatch(server.pid)))
    finally:
        stop_server(server)
    if args.first_paint_only:
        fp = first_paint_figures(visits)
        print("\n| first paint of /train, from navigation start | cold (first session) | warm: p50 (n, max) |")
        print("|---|---|---|")
        for what in ("sidebar", "title", "train_button"):
            cold, warm = _fmt_paint(fp, what)
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
