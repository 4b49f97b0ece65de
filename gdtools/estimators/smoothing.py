"""Gaussian smoothing with antithetic samples (Nesterov & Spokoiny, 2017).

Estimates the gradient of the smoothed objective ``f_sigma(x) = E[f(x + sigma s u)]``::

    u_j ~ N(0, I),   g_hat = 1/(2 sigma m) * sum_j (f(x + sigma s u_j) - f(x - sigma s u_j)) * u_j / s

with per-coordinate radius ``h = sigma * s`` (at least ``min_step``); 2 evaluations per sample, ``m = n_samples`` samples per step. Antithetic pairs cancel the even part
of ``f``, and each pair shares a PRNG key (common random numbers). ``sigma`` defaults to the same
noise-aware fraction as SPSA's ``c`` and decays like ``c_k``.
"""

from __future__ import annotations

import jax
import numpy as np

from gdtools.estimators.base import Estimate, GradientEstimator
from gdtools.estimators.spsa import GAMMA, _check_fraction, noise_aware_fraction
from gdtools.errors import InputError


class Smoothing(GradientEstimator):
    """Gaussian-smoothing gradient estimate with antithetic samples.

    Args:
      sigma: smoothing radius as a fraction of each coordinate's scale; default noise-aware.
      n_samples: antithetic pairs per step (2 evaluations each).
      gamma: decay exponent of sigma_k.
      average: recommend the mean of this last fraction of the iterates (see ``SPSA``).
    """

    name = "smoothing"
    stochastic = True

    def __init__(self, *, sigma=None, n_samples: int = 4, gamma: float = GAMMA, average: float = 0.0):
        if sigma is not None and not (np.isfinite(sigma) and sigma > 0):
            raise InputError(f"sigma must be a positive number, got {sigma!r}")
        if not isinstance(n_samples, int) or n_samples < 1:
            raise InputError(f"n_samples must be a positive integer, got {n_samples!r}")
        self.sigma = sigma
        self.n_samples = n_samples
        self.gamma = gamma
        self.average = _check_fraction(average)
        self._last_value = None

    def observe(self, value) -> None:
        self._last_value = float(value)

    def estimate(self, fun, x, *, key, iteration, evaluate, noise=0.0, scale=None, bounds=None,
                 min_step=None) -> Estimate:
        x = np.asarray(x, dtype=float)
        s = np.ones_like(x) if scale is None else np.asarray(scale, dtype=float)
        sigma = self.sigma if self.sigma is not None else noise_aware_fraction(noise, self._last_value)
        sigma = sigma / (iteration + 1) ** self.gamma
        u = np.asarray(jax.random.normal(key, (self.n_samples, len(x))), dtype=float)
        h = sigma * s
        if min_step is not None:
            h = np.maximum(h, min_step)
        plus, minus = x + h * u, x - h * u
        if bounds is not None:
            plus, minus = np.clip(plus, *bounds), np.clip(minus, *bounds)
        values = evaluate(np.vstack([plus, minus]))
        m = self.n_samples
        diff = values[:m] - values[m:]
        # E[f(x + h*u) u] / h is the gradient of the objective smoothed with N(0, diag(h^2)).
        grad = np.mean(diff[:, None] * u, axis=0) / (2.0 * h)
        value = float(np.mean(values[np.isfinite(values)])) if np.any(np.isfinite(values)) else np.nan
        self._last_value = value
        return Estimate(value=value, grad=grad, nfev=2 * m)
