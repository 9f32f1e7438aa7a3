"""The classroom's scenario in headless Chromium: who arrives when and does what (train, look around), each
student in a browser context of their own, and the run that plays a class against one server while
sampling its process tree. The page's own observer is ``observer.js``, injected before the app's scripts."""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import CHROMIUM_ARGS, Sample, ServerWatch

__all__ = ["OBSERVER_JS", "Student", "first_paint", "first_paint_only", "plan_class", "python_threads", "run_class"]

OBSERVER_JS = Path(__file__).with_name("observer.js").read_text()
# Wide enough that Streamlit keeps the sidebar open (its nav links and the target preview live there);
# no taller than a laptop, so that fewer plots below the fold are painted.
VIEWPORT = {"width": 1280, "height": 800}
READY_TIMEOUT_S = 240.0
SAMPLE_EVERY_S = 0.5
DWELL_S = (4.0, 10.0)  # how long a looking student stays on a page
READ_BEFORE_TRAIN_S = (1.0, 4.0)  # how long a training student reads the Train page before pressing Train


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


async def first_paint_only(args: argparse.Namespace, url: str) -> list[Student]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=args.chromium, headless=True, args=list(CHROMIUM_ARGS))
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
        browser = await pw.chromium.launch(executable_path=args.chromium, headless=True, args=list(CHROMIUM_ARGS))
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
