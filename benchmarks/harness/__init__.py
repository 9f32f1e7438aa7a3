"""What every server benchmark and the browser tests share: a ``streamlit run app.py`` on a free port,
Chromium's launch arguments, and a process tree's memory, CPU time and threads read from ``/proc``.

Benchmarks run as scripts (``python benchmarks/bench_x.py``) import it as ``harness``; the browser tests
import it as ``benchmarks.harness`` (pytest puts the repository root on ``sys.path``).
"""

from .chromium import CHROMIUM_ARGS, chromium_executable, launch_options
from .procs import (
    JOB_THREAD_NAME,
    ProcStats,
    Sample,
    ServerWatch,
    children_map,
    cores,
    cpu_seconds,
    machine_jiffies,
    proc_stats,
    process_tree,
    tree_memory,
)
from .server import ROOT, ServerDied, free_port, start_server, stop_server, wait_healthy

__all__ = [
    "CHROMIUM_ARGS",
    "JOB_THREAD_NAME",
    "ROOT",
    "ProcStats",
    "Sample",
    "ServerDied",
    "ServerWatch",
    "children_map",
    "chromium_executable",
    "cores",
    "cpu_seconds",
    "free_port",
    "launch_options",
    "machine_jiffies",
    "proc_stats",
    "process_tree",
    "start_server",
    "stop_server",
    "tree_memory",
    "wait_healthy",
]
