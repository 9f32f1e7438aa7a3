"""Runs in warm worker processes of this machine: the app's backend, training off the web server's GIL.

==========  ==========================================================================
``backend`` :class:`~cnfviz.runtime.process.backend.ProcessBackend` and its handle, fed by pushes
``worker``  the worker process: a stack host driven over a pipe, pushing what moved
==========  ==========================================================================
"""

from .backend import DEFAULT_STACK_SIZE, WORKERS_ENV, ProcessBackend, ProcessJob, default_workers

__all__ = ["DEFAULT_STACK_SIZE", "WORKERS_ENV", "ProcessBackend", "ProcessJob", "default_workers"]
