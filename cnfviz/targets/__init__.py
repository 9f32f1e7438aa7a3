"""Target distributions for a flow to learn: named 1D/2D densities, scipy.stats, data and images.

Every target draws reproducible samples and evaluates a log-density. A density is either ``"exact"``
(analytic, or the definition of the target) or an ``"estimate"`` (histogram or KDE), and the UI labels the
estimates as such.

=================  ==========================================================================
``base``           :class:`Target`, the interface, and :class:`Param`, a target's parameter
``builtin``        the named targets: 1D normals and mixtures, FFJORD's 2D toy sets, a 2D Gaussian
``distributions``  any continuous ``scipy.stats`` distribution (``scipy:<name>``)
``data``           the user's own data: samples (CSV, a drawing) or a picture, and their parsers
``registry``       :data:`TARGETS` and :func:`make_target`, which builds any of them by name
=================  ==========================================================================

Example:
    >>> t = make_target("normal", loc=0.0, scale=1.0)
    >>> t.sample(4, seed=0).shape
    (4, 1)
    >>> round(float(t.log_prob(np.zeros((1, 1)))[0]), 4)
    -0.9189
"""

import numpy as np  # noqa: F401 - the doctest above uses it

from .base import Param, Target
from .data import IMAGE_FORMATS, MAX_IMAGE_PIXELS, ImageTarget, SamplesTarget, image_from_file, samples_from_csv
from .distributions import SCIPY_PREFIX, SLOW_SCIPY, scipy_distributions, scipy_examples, scipy_params
from .registry import TARGETS, TargetSpec, make_target, target_names, target_spec

__all__ = [
    "IMAGE_FORMATS",
    "MAX_IMAGE_PIXELS",
    "SCIPY_PREFIX",
    "SLOW_SCIPY",
    "TARGETS",
    "ImageTarget",
    "Param",
    "SamplesTarget",
    "Target",
    "TargetSpec",
    "image_from_file",
    "make_target",
    "samples_from_csv",
    "scipy_distributions",
    "scipy_examples",
    "scipy_params",
    "target_names",
    "target_spec",
]
