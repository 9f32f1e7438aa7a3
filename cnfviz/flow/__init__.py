"""The flow's mathematics: a neural vector field carried through an ODE solve, with its log-density.

Modules, each one concept, lowest first (nothing here imports the rest of cnfviz):

================  ==========================================================================
``dynamics``      the vector field f(t, z): the MLP, its activations and time conditioning
``divergence``    tr(∂f/∂z): exact, or Hutchinson's estimator with Gaussian or Rademacher probes
``solver``        the ODE solvers (torchdiffeq behind one guarded registry) and their settings
``config``        :class:`~cnfviz.flow.config.ModelConfig`, the flow's validated settings
``ffjord``        :class:`~cnfviz.flow.ffjord.FFJORD`: log-density by the instantaneous change of variables
``distribution``  a trained flow as a distribution: ``sample`` and ``log_prob``
================  ==========================================================================
"""

__all__: list[str] = []
