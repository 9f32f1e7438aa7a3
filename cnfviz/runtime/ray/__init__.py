"""Runs on a Ray cluster: an actor per run or per stack, and their client handles.

==================  ==========================================================================
``backend``         :class:`~cnfviz.runtime.ray.backend.RayBackend`: where each run's actor goes
``cluster``         connecting, a run's actor and its client handle (:class:`~cnfviz.runtime.ray.cluster.RayJob`)
``cluster_stacks``  one actor trains the runs of one shape together
==================  ==========================================================================

Nothing here imports Ray at import time; ``pip install cnfviz[ray]`` is needed only to build a backend.
"""

__all__: list[str] = []
