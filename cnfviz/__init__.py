"""cnfviz: watch continuous normalizing flows (FFJORD) learn.

The public API, re-exported from one module per concept::

    from cnfviz import TrainConfig, train, FFJORDDistribution
    model, result = train(TrainConfig(target="moons", adam_iters=500))
"""

from ._validation import ConfigError
from .checkpoint import checkpoint_bytes, load_checkpoint, save_checkpoint
from .compare import parameter_count, results_table, runs_from_knob
from .config import DEVICES, ModelConfig, TrainConfig
from .device import configure_threads, device_label, resolve_device, warm_up
from .distribution import FFJORDDistribution
from .divergence import TRACE_ESTIMATORS
from .dynamics import ACTIVATIONS, TIME_CONDITIONING, ODENet
from .export import config_to_code
from .ffjord import FFJORD, standard_normal_logprob
from .job import JobSlots, Snapshot, TrainingJob, Visuals, compute_visuals
from .metrics import EVAL_SOLVER, Metrics, evaluate, grid_metrics, sampling_nfe, seed_tv, test_nll
from .objectives import OBJECTIVES, draw_flow_matching, flow_matching_loss, ot_pairing
from .presets import DEFAULT_TARGET, PRESETS, SEED_CONFIG, Preset, default_config
from .scheduler import Scheduler
from .share import config_to_query, parse_query
from .solver import FIXED_GRID_SOLVERS, SOLVERS, SolverConfig, SolverError
from .stack import StackGroup, stack_key, stacked_flow_matching_losses, stacked_losses
from .targets import TARGETS, ImageTarget, SamplesTarget, Target, make_target, target_names
from .training import IterationRecord, Trainer, TrainResult, train

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "DEFAULT_TARGET",
    "DEVICES",
    "EVAL_SOLVER",
    "FFJORD",
    "FIXED_GRID_SOLVERS",
    "OBJECTIVES",
    "PRESETS",
    "SEED_CONFIG",
    "SOLVERS",
    "TARGETS",
    "TIME_CONDITIONING",
    "TRACE_ESTIMATORS",
    "ConfigError",
    "FFJORDDistribution",
    "ImageTarget",
    "IterationRecord",
    "JobSlots",
    "Metrics",
    "ModelConfig",
    "ODENet",
    "Preset",
    "SamplesTarget",
    "Scheduler",
    "Snapshot",
    "SolverConfig",
    "SolverError",
    "StackGroup",
    "Target",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingJob",
    "Visuals",
    "checkpoint_bytes",
    "compute_visuals",
    "config_to_code",
    "config_to_query",
    "configure_threads",
    "default_config",
    "device_label",
    "draw_flow_matching",
    "evaluate",
    "flow_matching_loss",
    "grid_metrics",
    "load_checkpoint",
    "make_target",
    "ot_pairing",
    "parameter_count",
    "parse_query",
    "resolve_device",
    "results_table",
    "runs_from_knob",
    "sampling_nfe",
    "save_checkpoint",
    "seed_tv",
    "stack_key",
    "stacked_flow_matching_losses",
    "stacked_losses",
    "standard_normal_logprob",
    "target_names",
    "test_nll",
    "train",
    "warm_up",
]
