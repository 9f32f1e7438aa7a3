"""Running many trainings at once: jobs, snapshots, the scheduler, stacks, limits and backends.

====================  ==========================================================================
``core``              the contract: the job handle and backend protocols, and their errors
``job``               a run in a thread, seen through lock-guarded snapshots (:class:`~cnfviz.runtime.job.TrainingJob`)
``stack``             runs of one shape trained as one stacked model
``scheduler``         every admitted run trains at once; runs of one shape share a stack
``budget``            the hard limits: what one run may cost on this machine
``admission``         who trains next on a shared server: its memory, a share per student, a time budget
``hosted``            runs hosted in another process, by id, with incremental polls (worker or actor)
``backend``           where runs train: threads here, worker processes (``process/``), or Ray (``ray/``)
``holder``            a browser session's runs, and where a dropped session's runs wait for it
``server``            a web server's backend, chosen once, and its warm start (``warm_server``)
``sweep``             ``cnfviz sweep``: a grid of runs trained together
``housekeeping``      threads, native thread names, memory handed back, torch warm-up
====================  ==========================================================================
"""

__all__: list[str] = []
