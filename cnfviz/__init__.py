"""cnfviz: watch continuous normalizing flows (FFJORD) learn.

The modelling API. Everything else is imported from the sub-package of its concept, lowest first:
:mod:`cnfviz.flow` (the maths), :mod:`cnfviz.targets`, :mod:`cnfviz.training`, :mod:`cnfviz.figures`,
:mod:`cnfviz.runtime` (many runs at once), :mod:`cnfviz.features` (links, compare, export, learn) and,
on top, :mod:`cnfviz.ui` (the only part that imports streamlit)::

    from cnfviz import TrainConfig, train, FFJORDDistribution
    model, result = train(TrainConfig(target="moons", adam_iters=500))
"""

from ._validation import ConfigError
from .flow.config import ModelConfig
from .flow.distribution import FFJORDDistribution
from .flow.dynamics import ODENet
from .flow.ffjord import FFJORD
from .flow.solver import SolverConfig
from .runtime.job import Snapshot, TrainingJob
from .targets import TARGETS, Target, make_target
from .training.checkpoint import load_checkpoint, save_checkpoint
from .training.config import TrainConfig
from .training.metrics import evaluate
from .training.presets import PRESETS, default_config
from .training.trainer import Trainer, TrainResult, train

__version__ = "0.1.0"

__all__ = [
    "FFJORD",
    "PRESETS",
    "TARGETS",
    "ConfigError",
    "FFJORDDistribution",
    "ModelConfig",
    "ODENet",
    "Snapshot",
    "SolverConfig",
    "Target",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingJob",
    "default_config",
    "evaluate",
    "load_checkpoint",
    "make_target",
    "save_checkpoint",
    "train",
]
