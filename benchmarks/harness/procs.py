"""A process tree read from ``/proc``: resident memory (VmRSS, and its heap part RssAnon), CPU seconds and
threads, for the web-server process and its worker processes apart."""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "JOB_THREAD_NAME",
    "ProcStats",
    "Sample",
    "ServerWatch",
    "children_map",
    "cores",
    "cpu_seconds",
    "machine_jiffies",
    "proc_stats",
    "process_tree",
    "tree_memory",
]

JOB_THREAD_NAME = "cnfviz-job"  # the OS name of a training thread in the server
_TICKS = os.sysconf("SC_CLK_TCK")


def children_map() -> dict[int, list[int]]:
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


def process_tree(pid: int, parents: dict[int, list[int]] | None = None, skip: int | None = None) -> list[int]:
    """``pid`` first, then its descendants, leaving out the subtree of ``skip``."""
    parents = children_map() if parents is None else parents
    tree, todo = [], [pid]
    while todo:
        p = todo.pop(0)
        if p == skip:
            continue
        tree.append(p)
        todo.extend(parents.get(p, []))
    return tree


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of all threads of ``pid`` so far (0 if it has gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(stat[11]) + int(stat[12])) / _TICKS


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) CPU time of the whole machine, from ``/proc/stat``."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


@dataclass
class ProcStats:
    """One or more processes summed: memory in MiB, CPU seconds so far, OS threads by name."""

    processes: int = 0
    rss_mib: float = 0.0
    anon_mib: float = 0.0
    cpu_s: float = 0.0
    names: Counter[str] = field(default_factory=Counter)

    @property
    def threads(self) -> int:
        return sum(self.names.values())

    def add(self, other: ProcStats) -> None:
        self.processes += other.processes
        self.rss_mib += other.rss_mib
        self.anon_mib += other.anon_mib
        self.cpu_s += other.cpu_s
        self.names.update(other.names)


def proc_stats(pid: int) -> ProcStats:
    """One process's memory, CPU seconds and thread names; empty if it has gone."""
    out = ProcStats()
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                out.rss_mib = int(line.split()[1]) / 1024
            elif line.startswith("RssAnon:"):
                out.anon_mib = int(line.split()[1]) / 1024
        out.cpu_s = cpu_seconds(pid)
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                out.names[Path(f"/proc/{pid}/task/{task}/comm").read_text().strip()] += 1
            except OSError:  # the thread ended between listdir and read
                continue
    except OSError:  # the process ended while being read
        return ProcStats()
    out.processes = 1
    return out


def tree_memory(pid: int) -> tuple[ProcStats, ProcStats]:
    """``(the process pid, all its descendants summed)``: the web server apart from its workers."""
    tree = process_tree(pid)
    own, workers = proc_stats(tree[0]), ProcStats()
    for p in tree[1:]:
        workers.add(proc_stats(p))
    return own, workers


@dataclass
class Sample:
    """The server process tree (and the CPU use around it) at one moment. ``threads``, ``rss_mib``,
    ``anon_mib`` and ``cpu_s`` count the whole tree; the ``server_*``/``worker_*`` fields split it."""

    t: float
    threads: int
    job_threads: int
    rss_mib: float
    cpu_s: float  # the server tree's CPU seconds so far
    client_cpu_s: float  # this script's own tree (Playwright's driver, Chromium, client threads)
    machine: tuple[int, int]  # busy and total jiffies of the machine
    names: dict[str, int] = field(default_factory=dict)
    anon_mib: float = 0.0  # the heap's part of the RSS (RssAnon); the rest is mostly mapped libraries
    health_ms: float | None = None  # round trip of /_stcore/health: is the server's event loop responsive?
    server_rss_mib: float = 0.0
    server_cpu_s: float = 0.0
    worker_processes: int = 0
    worker_rss_mib: float = 0.0
    worker_cpu_s: float = 0.0

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
            "server_rss_mib": round(self.server_rss_mib, 1),
            "server_cpu_s": round(self.server_cpu_s, 2),
            "worker_processes": self.worker_processes,
            "worker_rss_mib": round(self.worker_rss_mib, 1),
            "worker_cpu_s": round(self.worker_cpu_s, 2),
        }


def cores(a: Sample, b: Sample) -> dict[str, float]:
    """Mean CPU use between two samples, in cores: the server tree, its web-server process and its workers
    apart, the client side (this script's tree), the whole machine."""
    span = max(1e-9, b.t - a.t)
    busy, total = b.machine[0] - a.machine[0], b.machine[1] - a.machine[1]
    return {
        "server": round((b.cpu_s - a.cpu_s) / span, 2),
        "web_server": round((b.server_cpu_s - a.server_cpu_s) / span, 2),
        "workers": round((b.worker_cpu_s - a.worker_cpu_s) / span, 2),
        "browser_side": round((b.client_cpu_s - a.client_cpu_s) / span, 2),
        "machine": round((os.cpu_count() or 1) * busy / max(1, total), 2),
    }


class ServerWatch:
    """Samples a server's process tree, and the CPU time of this script's own tree beside it."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.t0 = time.monotonic()

    def client_cpu(self) -> dict[str, float]:
        """CPU seconds so far of this script's own tree, by kind of process (Chromium's ``--type``)."""
        by_kind: Counter[str] = Counter()
        for pid in process_tree(os.getpid(), skip=self.pid):
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
            by_kind[kind] += cpu_seconds(pid)
        return dict(by_kind)

    def sample(self) -> Sample:
        parents = children_map()
        own, workers = tree_memory(self.pid)
        total = ProcStats()
        total.add(own)
        total.add(workers)
        client = sum(cpu_seconds(p) for p in process_tree(os.getpid(), parents, skip=self.pid))
        return Sample(
            time.monotonic() - self.t0,
            total.threads,
            total.names[JOB_THREAD_NAME],
            total.rss_mib,
            total.cpu_s,
            client,
            machine_jiffies(),
            dict(total.names),
            total.anon_mib,
            server_rss_mib=own.rss_mib,
            server_cpu_s=own.cpu_s,
            worker_processes=workers.processes,
            worker_rss_mib=workers.rss_mib,
            worker_cpu_s=workers.cpu_s,
        )
