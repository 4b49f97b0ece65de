"""Gradient estimators: one small interface (:class:`GradientEstimator`), five implementations."""

from gdtools.errors import InputError
from gdtools.estimators.autodiff import AutoDiff
from gdtools.estimators.base import Estimate, GradientEstimator
from gdtools.estimators.finite_difference import Central, Forward
from gdtools.estimators.smoothing import Smoothing
from gdtools.estimators.spsa import SPSA

__all__ = ["AutoDiff", "Central", "Estimate", "Forward", "GradientEstimator", "SPSA", "Smoothing",
           "resolve"]

BY_NAME = {
    "autodiff": AutoDiff,
    "forward": Forward,
    "central": Central,
    "spsa": SPSA,
    "smoothing": Smoothing,
}


def resolve(gradient) -> GradientEstimator:
    """An estimator from a name in :data:`BY_NAME` or an estimator object."""
    if isinstance(gradient, GradientEstimator):
        return gradient
    if isinstance(gradient, str) and gradient.lower() in BY_NAME:
        return BY_NAME[gradient.lower()]()
    raise InputError(f"unknown gradient {gradient!r}; use one of {sorted(BY_NAME)} or a "
                     f"gdtools.estimators.GradientEstimator instance")
