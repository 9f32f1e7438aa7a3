"""Running many trainings at once: jobs, snapshots, the scheduler, stacks, limits and backends.

====================  ==========================================================================
``job``               a run in a thread, seen through lock-guarded snapshots (:class:`~cnfviz.runtime.job.TrainingJob`)
``stack``             runs of one shape trained as one stacked model
``scheduler``         every admitted run trains at once; runs of one shape share a stack
``budget``            the hard limits: what one run may cost on this machine
``admission``         who trains next on a shared server: its memory, a share per student, a time budget
``backend``           where runs train: this process, or a Ray cluster
``cluster``           the Ray side: an actor per run, and its client handle
``cluster_stacks``    the Ray side of stacks: one actor trains the runs of one shape together
``sweep``             ``cnfviz sweep``: a grid of runs trained together
``housekeeping``      threads, native thread names, memory handed back, torch warm-up
====================  ==========================================================================
"""

__all__: list[str] = []
