"""Process housekeeping for many runs in one server: CPU threads shared between runs, native thread
names, handing freed memory back to the system, and warming torch up before the first run (the one
warm-up: :func:`warm_up`; a server's start-up is :func:`cnfviz.runtime.server.warm_server`)."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import os
import sys

import torch

from .._validation import check_int_range
from ..training.device import cpu_cores

__all__ = [
    "M_ARENA_MAX",
    "SERVER_ARENAS",
    "configure_threads",
    "limit_malloc_arenas",
    "name_native_thread",
    "release_memory",
    "warm_up",
]


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The C library, on Linux; None elsewhere (the helpers below are conveniences, never needed)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def name_native_thread(name: str) -> None:
    """Give the calling thread an operating-system name (Linux; Python's thread names are invisible there),
    so that ``top -H`` or ``/proc/<pid>/task/*/comm`` can count, e.g., a server's training threads."""
    libc = _glibc()
    if libc is not None and hasattr(libc, "prctl"):
        libc.prctl(15, name.encode()[:15], 0, 0, 0)  # 15 = PR_SET_NAME


def release_memory() -> None:
    """Collect cyclic garbage now, and hand the heap it freed back to the operating system (glibc).

    For a server after its sessions ended: objects in reference cycles wait for the cycle collector,
    and glibc keeps freed arenas (a busy server's ~50 threads leave many) unless asked to trim them.
    """
    gc.collect()
    libc = _glibc()
    if libc is not None and hasattr(libc, "malloc_trim"):  # glibc only
        libc.malloc_trim(0)


M_ARENA_MAX = -8
"""glibc's ``mallopt`` parameter for the most malloc arenas (``malloc.h``)."""
SERVER_ARENAS = 2
"""Arenas a server keeps: glibc gives each new thread an arena of its own (up to 8 per core), and a class's
dozens of training threads leave their freed memory scattered over them, where ``malloc_trim`` cannot hand
it back. Measured (12 default runs, then stopped): +105 MiB of heap kept with glibc's default, +7 MiB with 2."""


def limit_malloc_arenas(arenas: int = SERVER_ARENAS) -> bool:
    """Cap glibc's malloc arenas for this process, unless ``MALLOC_ARENA_MAX`` already set them.

    For a long-lived server: call it once, before the training threads start. Returns whether a cap was set
    (False off glibc, or when the environment chose).
    """
    libc = _glibc()
    if libc is None or not hasattr(libc, "mallopt") or os.environ.get("MALLOC_ARENA_MAX"):
        return False
    arenas = check_int_range(arenas, "arenas", lo=1, hi=1024)
    return bool(libc.mallopt(ctypes.c_int(M_ARENA_MAX), ctypes.c_int(arenas)))


def configure_threads(concurrent_jobs: int = 1, reserve: int = 1) -> int:
    """Share the CPU cores between ``concurrent_jobs`` training threads; returns threads per job.

    Each job gets ``(cores - reserve) // jobs`` threads, at least one; ``reserve`` cores stay free
    for the web server and the plots. Oversubscribing is far worse than leaving a core idle: on a
    2-core machine, 2 intra-op threads were 15% faster at batch 512 when the other core was idle,
    but up to 6x slower when another process wanted it (benchmarks/README.md).
    ``torch.set_num_threads`` is process-wide; call this when a run starts, not at import.
    """
    cores = cpu_cores()
    threads = max(1, (cores - max(0, reserve)) // max(1, concurrent_jobs))
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def warm_up() -> None:
    """Pay torch's one-time costs now, so that no run pays them in its first iteration: train a tiny flow for
    two iterations. The first optimizer step imports ``torch._dynamo`` and with it some 800 modules (sympy
    among them), about 1-2 s on a quiet machine and far more when several first runs race for its import lock.

    The CLI, the sweep, every worker process and :func:`cnfviz.runtime.server.warm_server` call it; a second
    call costs a few milliseconds.
    """
    import torch._dynamo  # what torch.optim imports lazily, under the import lock

    from ..training.config import TrainConfig
    from ..training.trainer import Trainer

    config = TrainConfig(target="normal", model={"hidden": (4,)}, adam_iters=2, batch_size=16, n_test=10, eval_every=0)
    threads = torch.get_num_threads()
    Trainer(config).run(final_metrics=False)
    if torch.get_num_threads() != threads:  # (a trainer may pin its own)
        torch.set_num_threads(threads)
