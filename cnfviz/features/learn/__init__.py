"""The Learn page's lessons: small, exact demonstrations of the ideas behind FFJORD, one module per lesson.

Each lesson module holds its numbers (plain numpy arrays in a frozen dataclass, so the page can cache
them and the tests can check them) and the figure that draws them. The cheap lessons run live; the ones
that train flows (time span, regularizers, sampling) are precomputed by
``assets/learn/make_learn_assets.py`` and stored by :mod:`~cnfviz.features.learn.assets`. Nothing here
touches a device at import.

======================== ==============================================================================
module                   lesson
======================== ==============================================================================
``change_of_variables``  §1 x = a·z + b: the density by the formula against a histogram of samples
``linear_flow``          §2 the instantaneous change of variables, on a linear flow with a closed form
``hutchinson``           §3 the exact trace against Hutchinson's estimator, measured and in theory
``time_span``            §4 why the time span matters (the seed tutorial, trained with each end time)
``regularizers``         §5 kinetic and Jacobian regularizers: the paths with and without them
``sampling``             §6 sampling forwards, density backwards
``flow_matching``        §7 flow matching's straight conditional paths and curved marginal paths, with
                         and without an optimal-transport pairing
``fit``                  training a flow for the precomputed lessons
``assets``               the precomputed lessons, stored in one ``.npz`` file
``style``                the figures' colours (one meaning each) and path polylines
======================== ==============================================================================

Example:
    >>> demo = affine_change_of_variables(2.0, 1.0, n_samples=100)
    >>> round(demo.integral, 3)
    1.0
"""

from typing import Any

from .assets import ASSET_VERSION, LearnAssets, build_learn_assets, load_learn_assets, save_learn_assets
from .change_of_variables import AffineDemo, affine_change_of_variables, change_of_variables_figure
from .fit import fit
from .flow_matching import (
    FLOW_MATCHING_PAIRINGS,
    FlowMatchingDemo,
    flow_matching_demo,
    flow_matching_figure,
    likelihood_iteration_cost,
    marginal_velocity,
)
from .hutchinson import HUTCHINSON_NOISES, HutchinsonDemo, hutchinson_demo, hutchinson_figure, hutchinson_variance
from .linear_flow import LinearFlowDemo, linear_field_matrix, linear_flow_demo, linear_flow_figure
from .regularizers import (
    REGULARIZER_SETTINGS,
    RegularizerRun,
    regularizer_config,
    regularizer_figure,
    regularizer_run,
)
from .sampling import SamplingDemo, sampling_demo, sampling_figure
from .style import COLORS
from .time_span import TIME_SPAN_CONFIG, TIME_SPAN_ENDS, TimeSpanRun, time_span_figure, time_span_run

__all__ = [
    "ASSET_VERSION",
    "COLORS",
    "FLOW_MATCHING_PAIRINGS",
    "HUTCHINSON_NOISES",
    "REGULARIZER_SETTINGS",
    "TIME_SPAN_CONFIG",
    "TIME_SPAN_ENDS",
    "AffineDemo",
    "FlowMatchingDemo",
    "HutchinsonDemo",
    "LearnAssets",
    "LinearFlowDemo",
    "RegularizerRun",
    "SamplingDemo",
    "TimeSpanRun",
    "affine_change_of_variables",
    "build_learn_assets",
    "change_of_variables_figure",
    "fit",
    "flow_matching_demo",
    "flow_matching_figure",
    "hutchinson_demo",
    "hutchinson_figure",
    "hutchinson_variance",
    "likelihood_iteration_cost",
    "linear_field_matrix",
    "linear_flow_demo",
    "linear_flow_figure",
    "load_learn_assets",
    "marginal_velocity",
    "regularizer_config",
    "regularizer_figure",
    "regularizer_run",
    "sampling_demo",
    "sampling_figure",
    "save_learn_assets",
    "time_span_figure",
    "time_span_run",
]


def __getattr__(name: str) -> Any:
    # REGULARIZER_CONFIG is built on first use, not at import: building it asks torch for a GPU.
    if name == "REGULARIZER_CONFIG":
        return regularizer_config()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
